"""Every long stage moves its progress bar: what a stage reports done adds up to what it said it had.

A mail house watches a quarter of a million letters go through; a bar that sits still for the
minutes a stage takes looks like a hung job.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from pkb_letters.check.print_check import check_files
from pkb_letters.config import SANDBOX_JOIN_URL, JobSettings, LetterSettings, sandbox_connection
from pkb_letters.job.pipeline import run_job
from pkb_letters.progress import TerminalProgress
from pkb_letters.sandbox import SandboxServer, load_sandbox_data
from pkb_letters.sandbox.synthetic import write_synthetic_job

PATIENTS = 40


class RecordingProgress:
    """A `Progress` that keeps, per stage, its total and every advance, with the thread it came from."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.advances: dict[str, list[int]] = {}
        self.open: set[str] = set()
        self.late: list[str] = []

    @contextlib.contextmanager
    def stage(self, label: str, total: int) -> Iterator:
        self.totals[label] = self.totals.get(label, 0) + total
        self.advances.setdefault(label, [])
        self.open.add(label)

        def advance(n: int) -> None:
            if label not in self.open:
                self.late.append(label)
            self.advances[label].append(n)
            assert threading.current_thread() is threading.main_thread(), f"{label} advanced off the main thread"

        try:
            yield advance
        finally:
            self.open.discard(label)


def test_every_stage_reports_all_its_items_done_while_it_runs(tmp_path):
    synthetic = write_synthetic_job(tmp_path / "list", PATIENTS)
    settings = JobSettings(patients=synthetic.patients_csv, out_dir=tmp_path / "job", api="fhir", chunk_size=8,
                           letter=LetterSettings(organisation="Synthetic NHS Trust", join_url=SANDBOX_JOIN_URL))
    progress = RecordingProgress()
    with SandboxServer(load_sandbox_data(synthetic.sandbox_json)) as server:
        summary = run_job(settings, sandbox_connection(server), progress)
    assert summary.letters == PATIENTS
    assert set(progress.totals) == {"fit", "resolve", "codes", "render", "assemble", "check"}
    for label, total in progress.totals.items():
        assert total > 0, label
        assert sum(progress.advances[label]) == total, (label, progress.advances[label], total)
    assert progress.totals["assemble"] == PATIENTS  # letters placed in the print file, not chunks
    assert progress.totals["check"] == summary.pages
    assert not progress.late

    # `pkb-letters check` on its own: the bar starts once the pages are counted
    alone = RecordingProgress()
    report = check_files(sorted((tmp_path / "job").glob("*.pdf")), tmp_path / "job" / "manifest.json",
                         progress=alone)
    assert report.ok and alone.totals == {"check": summary.pages}
    assert sum(alone.advances["check"]) == summary.pages and not alone.late


def test_the_terminal_bar_runs_without_deprecated_click_calls():
    """The bar a terminal shows goes through click calls the installed click still stands by: a deprecated
    one (click 8.5 deprecates `get_text_stream`) warns, which these tests treat as an error."""
    with TerminalProgress().stage("render", 3) as advance:
        advance(3)
