"""`pkb-letters purge` removes what it says (codes from the journal file's every byte, the PDFs),
keeps what it says, records what it did, and touches nothing in a folder it cannot confirm."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DemoJob

from pkb_letters.cli import main
from pkb_letters.errors import PurgeRefused
from pkb_letters.job.purge import purge_job

TODAY = dt.date.today()


@pytest.fixture(scope="module")
def finished_job(sandbox, tmp_path_factory) -> DemoJob:
    return DemoJob(sandbox, tmp_path_factory.mktemp("finished") / "job", "fhir")


@pytest.fixture
def job(finished_job, tmp_path) -> tuple[Path, list[str]]:
    """A fresh copy of the finished job, and every code it printed."""
    folder = tmp_path / "job"
    shutil.copytree(finished_job.out_dir, folder)
    codes = [code for pair in finished_job.issued for code in (pair.invitation_code, pair.access_code)]
    return folder, codes


def purge(folder: Path, *args: str):
    return CliRunner().invoke(main, ["purge", str(folder), *args])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_purge_erases_codes_from_every_byte_of_the_journal_and_deletes_the_pdf(job):
    folder, codes = job
    assert len(codes) == 16
    journal_before = (folder / "job.sqlite").read_bytes()
    assert all(code.encode() in journal_before for code in codes)  # what the purge must remove
    manifest_before = (folder / "manifest.json").read_bytes()
    pdf_digest = hashlib.sha256((folder / "letters.pdf").read_bytes()).hexdigest()

    result = purge(folder, "--dispatched-on", TODAY.isoformat())

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == [
        "exceptions.csv", "job.sqlite", "manifest.csv", "manifest.json", "purge.json"]
    journal_after = (folder / "job.sqlite").read_bytes()
    assert [code for code in codes if code.encode() in journal_after] == []
    assert (folder / "manifest.json").read_bytes() == manifest_before
    with sqlite3.connect(folder / "job.sqlite") as db:
        rows = db.execute("SELECT piece_id, invitation_code, access_code, codes_expire FROM rows"
                          " WHERE stage = 'placed'").fetchall()
    assert len(rows) == 8 and all(piece and inv is None and acc is None and expire for piece, inv, acc, expire in rows)
    assert "deleted letters.pdf" in result.output and pdf_digest in result.output


def test_purge_leaves_no_code_in_the_journal_files_free_pages(job):
    # Copies of the codes that SQLite freed without zeroing (secure_delete is off in many
    # builds) survive in free pages; only rebuilding the file removes them.
    folder, codes = job
    with sqlite3.connect(folder / "job.sqlite") as db:
        db.execute("PRAGMA secure_delete = OFF")
        db.execute("UPDATE rows SET detail = printf('%.4000c', 'x')")  # rows move; old cells stay in freed pages
        db.execute("UPDATE rows SET detail = NULL")
        free_pages = db.execute("PRAGMA freelist_count").fetchone()[0]
    journal = journal_bytes(folder)
    assert free_pages > 0 and any(journal.count(code.encode()) > 1 for code in codes)

    purge_job(folder, TODAY)

    journal = journal_bytes(folder)
    assert [code for code in codes if code.encode() in journal] == []


def journal_bytes(folder):
    """The journal and any write-ahead log or shared-memory file beside it."""
    return b"".join(path.read_bytes() for path in sorted(folder.glob("job.sqlite*")))


def test_purge_writes_a_record_in_a_file_and_in_the_journal(job):
    folder, _ = job
    manifest = json.loads((folder / "manifest.json").read_text())
    (listed,) = manifest["job"]["files"]

    record = purge_job(folder, TODAY)

    on_disk = json.loads((folder / "purge.json").read_text())
    assert on_disk["job_id"] == manifest["job"]["id"] == record.job_id
    assert on_disk["dispatched_on"] == TODAY.isoformat() and on_disk["codes_erased"] == 8
    assert on_disk["deleted_files"] == [
        {"name": "letters.pdf", "bytes": listed["bytes"], "sha256": listed["sha256"], "matches_manifest": True}]
    assert "manifest.json" in on_disk["kept"] and "letters.pdf" not in on_disk["kept"]
    assert stat.S_IMODE((folder / "purge.json").stat().st_mode) == 0o600
    with sqlite3.connect(folder / "job.sqlite") as db:
        settings = dict(db.execute("SELECT key, value FROM settings"))
    assert json.loads(settings["purge_record"]) == on_disk
    assert settings["purged_at"] == on_disk["purged_at"]


def test_purge_also_deletes_chunk_pdfs_a_crashed_run_left_behind(job):
    folder, _ = job
    (folder / "work").mkdir()
    (folder / "work" / "chunk-00001.pdf").write_bytes(b"%PDF-1.7 left over")
    record = purge_job(folder, TODAY)
    assert [(f.name, f.matches_manifest) for f in record.deleted_files] == [
        ("letters.pdf", True), ("work/chunk-00001.pdf", None)]
    assert not (folder / "work").exists()


def test_purge_reports_a_pdf_that_differs_from_the_manifest(job):
    folder, _ = job
    with (folder / "letters.pdf").open("ab") as handle:
        handle.write(b"\n% changed after the run")
    (deleted,) = purge_job(folder, TODAY).deleted_files
    assert deleted.matches_manifest is False


def _not_a_job(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()
    (folder / "notes.pdf").write_bytes(b"%PDF someone else's")


def _other_sqlite(folder: Path) -> None:
    (folder / "job.sqlite").unlink()
    with sqlite3.connect(folder / "job.sqlite") as db:
        db.execute("CREATE TABLE accounts (name TEXT)")


def _unfinished(folder: Path) -> None:
    (folder / "manifest.json").unlink()


def _stuck_row(folder: Path) -> None:
    with sqlite3.connect(folder / "job.sqlite") as db:
        db.execute("UPDATE rows SET stage = 'coded' WHERE input_row = 2")


def _other_manifest(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["job"]["id"] = "PKB-19990101-000000"
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _garbage_manifest(folder: Path) -> None:
    (folder / "manifest.json").write_text("[1, 2")


REFUSALS = {
    "not a job folder": (_not_a_job, TODAY, "is not a finished pkb-letters job"),
    "someone else's sqlite file": (_other_sqlite, TODAY, "is not a pkb-letters job journal"),
    "no manifest: unfinished": (_unfinished, TODAY, "is not a finished pkb-letters job"),
    "a row mid-way": (_stuck_row, TODAY, r"did not finish \(1 rows mid-way\)"),
    "manifest of another job": (_other_manifest, TODAY, "are not the same job"),
    "manifest not JSON": (_garbage_manifest, TODAY, "cannot read"),
    "dispatched in the future": (lambda f: None, TODAY + dt.timedelta(days=1), "is in the future"),
    "dispatched before the job": (lambda f: None, TODAY - dt.timedelta(days=400), "is before the job was made"),
}


@pytest.mark.parametrize("spoil, dispatched_on, message", REFUSALS.values(), ids=REFUSALS.keys())
def test_purge_refuses_and_removes_nothing(job, spoil, dispatched_on, message):
    folder, _ = job
    spoil(folder)
    before = snapshot(folder)
    result = purge(folder, "--dispatched-on", dispatched_on.isoformat())
    assert result.exit_code == 2
    assert "Error:" in result.output and "Traceback" not in result.output
    with pytest.raises(PurgeRefused, match=message):
        purge_job(folder, dispatched_on)
    assert snapshot(folder) == before


def test_purge_twice_is_refused(job):
    folder, _ = job
    purge_job(folder, TODAY)
    before = snapshot(folder)
    with pytest.raises(PurgeRefused, match="was already purged at"):
        purge_job(folder, TODAY)
    assert snapshot(folder) == before


def test_purge_needs_the_dispatch_confirmation(job):
    folder, _ = job
    result = purge(folder)
    assert result.exit_code == 2 and "Missing option '--dispatched-on'" in result.output
    assert (folder / "letters.pdf").exists()
