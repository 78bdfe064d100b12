"""The WeasyPrint versions the fast render path was tested on, and whether this process has one.

Takes nothing; gives `TESTED_VERSIONS` and `check()`, a `LayoutDecision`: whether a job may use the
fast path, and if not, the one sentence its summary and log say why.

The fast path reads WeasyPrint's private modules and page boxes, which change without notice
between releases: a change there could draw one patient's text on another's letter. These are:

- stamp.py: `weasyprint.draw`, `weasyprint.draw.text`, `weasyprint.text.ffi`,
  `weasyprint.text.line_break`, `weasyprint.layout.absolute`, `weasyprint.pdf.VARIANTS`,
  `weasyprint.css.properties`, `weasyprint.images`, `weasyprint.document.Page` and `page._page_box`;
- shared_layout.py: `page._page_box` (where each shared block was laid out);
- render.py: the address fit's reuse of shapes already seen fitting (stamp.py's rules).

On any other version the job lays out every letter in full (WeasyPrint's public `HTML.render`
and `write_pdf`), slower and the same print. What the full layout still reads of the page boxes
has no public equivalent and is a check, not a drawing: the address window measured against the
envelope (`render._address_misfit`) and the refusal of `position: fixed` boxes.

The decision is made once per job, in the main process, and travels to render workers (spawned
processes, Dask workers) in the render spec, so every worker of a job lays out the same way.
To move to a new WeasyPrint: run the stamp, shared-layout, fit and page-words tests on it, compare
a stamped and a full-layout job page by page, then add its version here and to pyproject.toml.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

# package -> the versions the fast path was tested on (pydyf writes the PDFs the stamped layers come from)
TESTED_VERSIONS: dict[str, tuple[str, ...]] = {
    "weasyprint": ("70.0",),
    "pydyf": ("0.13.0",),
}


@dataclass(frozen=True)
class LayoutDecision:
    """Whether a job may use the fast path; `note` says why not, for the summary and the log."""

    fast_path: bool
    note: str = ""


def installed_version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def untested() -> list[str]:
    """'WeasyPrint 71.0 (tested: 70.0)' for each package whose installed version was not tested."""
    found = []
    for package, tested in TESTED_VERSIONS.items():
        installed = installed_version(package)
        if installed not in tested:
            found.append(f"{package} {installed or 'not installed'} (tested: {', '.join(tested)})")
    return found


def check() -> LayoutDecision:
    """This process's decision: the fast path only on the versions it was tested on."""
    versions = untested()
    if not versions:
        return LayoutDecision(True)
    return LayoutDecision(False, f"every letter laid out in full (slower, the same print): {'; '.join(versions)} "
                                 "is not a version the fast render path was tested on")
