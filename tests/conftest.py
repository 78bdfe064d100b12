"""Shared fixtures: the sandbox PKB server on a loopback socket, demo jobs, and a
guard that fails any test during which WeasyPrint logged a warning (a missing
font or image only ever shows up in that log)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.config import (
    DEFAULT_TEMPLATE,
    SANDBOX_JOIN_URL,
    JobSettings,
    LetterSettings,
    PkbConnection,
    sandbox_connection,
)
from pkb_letters.job.pipeline import JobSummary, run_job
from pkb_letters.sandbox import SandboxServer, load_sandbox_data

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
PATIENTS_CSV = FIXTURES / "patients.csv"
SANDBOX_JSON = FIXTURES / "sandbox.json"

# What the demo list is built to exercise, by customer reference.
EXPECTED_EXCLUSIONS = {
    "DEMO-0009": "deceased",
    "DEMO-0010": "already-registered",
    "DEMO-0011": "no-date-of-birth",
    "DEMO-0012": "under-16",
    "DEMO-0013": "no-access",
    "DEMO-0014": "not-found",
    "DEMO-0015": "address-too-wide",
}
EXPECTED_LETTERS = [f"DEMO-{n:04d}" for n in range(1, 9)]


class _WarningCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def edited_default_template(folder: Path, before: str, after: str) -> Path:
    """A copy of the default template in `folder`, its letter.html with `before` (which must be there)
    replaced by `after` once."""
    shutil.copytree(DEFAULT_TEMPLATE, folder)
    html = (folder / "letter.html").read_text(encoding="utf-8")
    assert before in html, before
    (folder / "letter.html").write_text(html.replace(before, after, 1), encoding="utf-8")
    return folder


@contextmanager
def no_weasyprint_warnings() -> Iterator[None]:
    collector = _WarningCollector()
    logger = logging.getLogger("weasyprint")
    logger.addHandler(collector)
    try:
        yield
    finally:
        logger.removeHandler(collector)
    assert not collector.messages, f"WeasyPrint warned: {collector.messages}"


@pytest.fixture(autouse=True)
def _fail_on_weasyprint_warnings() -> Iterator[None]:
    with no_weasyprint_warnings():
        yield


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(load_sandbox_data(SANDBOX_JSON)) as server:
        yield server


def connection_to(server: SandboxServer) -> PkbConnection:
    return sandbox_connection(server)


def demo_settings(out_dir: Path, api: str, **overrides) -> JobSettings:
    letter = LetterSettings(organisation="Demo NHS Foundation Trust", join_url=SANDBOX_JOIN_URL)
    return JobSettings(patients=PATIENTS_CSV, out_dir=out_dir, api=api, letter=letter, **overrides)


class DemoJob:
    """A finished demo run and the code pairs the sandbox issued during it."""

    def __init__(self, server: SandboxServer, out_dir: Path, api: str) -> None:
        before = len(server.issued())
        with no_weasyprint_warnings():  # session fixtures run outside the per-test guard
            self.summary: JobSummary = run_job(demo_settings(out_dir, api), connection_to(server))
        self.issued = server.issued()[before:]
        self.out_dir = out_dir
        self.api = api


@pytest.fixture(scope="session")
def printed_demo_job(sandbox, tmp_path_factory) -> Path:
    """The demo job's folder, run with the default print options (duplex, marks, output intent); copy
    what a test changes."""
    out = tmp_path_factory.mktemp("printed-demo") / "job"
    with no_weasyprint_warnings():
        run_job(demo_settings(out, "fhir"), connection_to(sandbox), print_options=PrintOptions())
    return out


@pytest.fixture(scope="session", params=["fhir", "rest"])
def demo_job(request, sandbox, tmp_path_factory) -> DemoJob:
    return DemoJob(sandbox, tmp_path_factory.mktemp(f"demo-{request.param}"), request.param)
