"""The files the installed command runs with besides its code: the default letter template, the
sandbox's patients and the demo job.

Each has one home, the checkout's top-level `templates/` and `fixtures/` folders, which the build
ships inside the package as `pkb_letters.templates` and `pkb_letters.fixtures` (pyproject's
package-dir). Found through importlib.resources, so an installed wheel and the editable install
give paths that work from any working folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _folder(package: str) -> Path:
    # A file-system path, not a Traversable: Jinja and WeasyPrint read a template folder by path,
    # and pip never installs a package zipped.
    return Path(str(resources.files(package)))


DEFAULT_TEMPLATE = _folder("pkb_letters.templates") / "invitation"
SANDBOX_DATA = _folder("pkb_letters.fixtures") / "sandbox.json"
DEMO_PATIENTS = _folder("pkb_letters.fixtures") / "patients.csv"
DEMO_JOB_FILE = _folder("pkb_letters.fixtures") / "demo-job.toml"
