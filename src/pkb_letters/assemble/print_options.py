"""Print options: what the mail house's print room and inserters need, gathered in one record.

Takes the command line and the job file's ``[print]``, ``[marks]``,
``[envelope]`` and ``[mailmark]`` tables; gives a frozen `PrintOptions` and, from it, the CSS and
WeasyPrint options every letter is rendered with (K-only black, the PDF
variant and its output intent).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pkb_letters import envelope as envelopes
from pkb_letters.assemble import output_intent
from pkb_letters.assemble.mailmark import MailmarkSettings, settings_from_table
from pkb_letters.assemble.marks import DEFAULT_LAYOUTS, MarkKind, MarkLayout, layout_from_table
from pkb_letters.envelope import C5, EnvelopeProfile
from pkb_letters.errors import ConfigError

PDF_VARIANTS = ("pdf/x-4", "pdf/a-2b")
SORT_ORDERS = ("input", "postcode")
POSTAGE_CLASSES = ("first", "second", "economy")
K_BLACK = "device-cmyk(0 0 0 1)"  # pure black on the K plate: no registration fringes on small text


@dataclass(frozen=True)
class PrintOptions:
    envelope: EnvelopeProfile = C5
    duplex: bool = True
    pdf_variant: str = "pdf/x-4"
    # The print room's CMYK ICC profile, embedded as the output intent; None: our FOGRA39 profile
    output_profile: Path | None = None
    marks: MarkLayout = field(default_factory=lambda: DEFAULT_LAYOUTS[MarkKind.DATAMATRIX])
    sort: str = "input"
    postage_class: str = "second"  # for rows without a postage class column value
    split_by: tuple[str, ...] = ()
    max_letters_per_file: int | None = None
    preflight: bool = True  # run `check` on the job's own files before declaring it ready
    mailmark: MailmarkSettings | None = None  # the job file's [mailmark]: None prints no Mailmark

    def __post_init__(self) -> None:
        if self.pdf_variant not in PDF_VARIANTS:
            raise ConfigError(f"--pdf-variant must be one of {', '.join(PDF_VARIANTS)}")
        if self.sort not in SORT_ORDERS:
            raise ConfigError(f"--sort must be one of {', '.join(SORT_ORDERS)}")
        if self.postage_class not in POSTAGE_CLASSES:
            raise ConfigError(f"postage class must be one of {', '.join(POSTAGE_CLASSES)}")
        if self.max_letters_per_file is not None and self.max_letters_per_file < 1:
            raise ConfigError("--max-letters-per-file must be at least 1")
        if self.output_profile is not None and not self.output_profile.is_file():
            raise ConfigError(f"output intent profile {self.output_profile} is not a file")


def intent_profile(options: PrintOptions) -> Path:
    """The CMYK profile of the files' output intent: the print room's, or our FOGRA39 one."""
    return output_intent.profile_path(options.output_profile)


def print_css(options: PrintOptions) -> str:
    """Rendered with every letter, before the template's own CSS (which may override the colour)."""
    url = intent_profile(options).resolve().as_uri()
    return (
        f'html {{ color: {K_BLACK}; }}\n@color-profile device-cmyk {{ src: url("{url}"); components: c, m, y, k; }}\n'
    )


def pdf_options(options: PrintOptions) -> dict[str, Any]:
    """WeasyPrint's own PDF/X-4 or PDF/A-2b output, with the CMYK profile as the output intent of
    either, so that the K-only black is defined colour in both (PDF/A's own default is sRGB)."""
    return {"pdf_variant": options.pdf_variant, "output_intent": "device-cmyk"}


def options_from_job(job: Mapping[str, Any], job_dir: Path, **cli: Any) -> PrintOptions:
    """Command-line values (None when not given) over the job file's tables over the defaults."""
    table = dict(job.get("print", {}))
    known = {
        "envelope",
        "duplex",
        "pdf_variant",
        "output_profile",
        "sort",
        "postage_class",
        "split_by",
        "max_letters_per_file",
    }
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"unknown [print] settings: {', '.join(sorted(unknown))}")
    merged = {**table, **{k: v for k, v in cli.items() if v is not None and k != "marks"}}
    custom = {}
    if "envelope" in job:
        custom_profile = envelopes.profile_from_table(job["envelope"])
        custom[custom_profile.name] = custom_profile
        merged.setdefault("envelope", custom_profile.name)
    values: dict[str, Any] = {
        "envelope": envelopes.profile(str(merged.pop("envelope", "c5")), custom),
        "marks": layout_from_table(cli.get("marks"), job.get("marks")),
        "mailmark": settings_from_table(job.get("mailmark"), job_dir),
    }
    if "output_profile" in merged:
        values["output_profile"] = job_dir / str(merged.pop("output_profile"))
    if "split_by" in merged:
        split = merged.pop("split_by")
        values["split_by"] = tuple([split] if isinstance(split, str) else split)
    fields = {f.name for f in dataclasses.fields(PrintOptions)}
    values.update({k: v for k, v in merged.items() if k in fields})
    return PrintOptions(**values)
