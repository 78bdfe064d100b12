"""The job journal: journals written before its split into parts still open, read back and resume;
its parts' writes compose into one transaction; the job's facts read back typed."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import connection_to, demo_settings
from test_progress import RecordingProgress

from pkb_letters.job.journal import JOURNAL_NAME, Journal
from pkb_letters.job.pipeline import run_job
from pkb_letters.job.sql import Db
from pkb_letters.job.status import job_status
from pkb_letters.records import (
    CodePair,
    DeletedFile,
    Exclusion,
    PatientRow,
    PrintFile,
    PurgeRecord,
    Reason,
    Stage,
    Step,
)

# The tables as journals were written before the split (and before deliveries and the print-order
# key existed), with the settings such a journal held for a job that had made its print files.
OLD_SCHEMA = """
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE rows (
    input_row INTEGER PRIMARY KEY, customer_ref TEXT NOT NULL, nhs_number TEXT NOT NULL, stage TEXT NOT NULL,
    patient TEXT, pkb_id TEXT, reason TEXT, detail TEXT, invitation_code TEXT, access_code TEXT,
    codes_expire TEXT, sequence INTEGER, piece_id TEXT, file TEXT, first_page INTEGER, page_count INTEGER,
    chunk INTEGER, layout_page INTEGER, codes_requested TEXT, codes_issued TEXT, codes_run INTEGER,
    reissue TEXT, updated TEXT NOT NULL
);
CREATE TABLE events (id INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL, input_row INTEGER,
                     detail TEXT NOT NULL);
CREATE TABLE carried_codes (nhs_number TEXT PRIMARY KEY, invitation_code TEXT, access_code TEXT,
                            codes_expire TEXT, codes_issued TEXT, uncertain INTEGER NOT NULL);
CREATE TABLE pieces (sequence INTEGER PRIMARY KEY, file TEXT NOT NULL, first_page INTEGER NOT NULL,
                     sheet_count INTEGER NOT NULL, postage_class TEXT NOT NULL, marks TEXT NOT NULL);
"""
PRINT_FILE = {"name": "letters.pdf", "letters": 1, "pages": 2, "sheets": 1, "bytes": 900, "sha256": "ab" * 32,
              "postage_class": None, "sheet_count": None}
OLD_SETTINGS = {
    "id": "PKB-20300101-ABCDEF", "created": "2030-01-01T09:00:00+00:00", "template": "default", "api": "fhir",
    "input_sha256": "11" * 32, "template_sha256": "22" * 32, "letter_settings": "{}", "print": "{}", "rules": "{}",
    "patients": "patients.csv", "letter_date": "2030-01-01", "runs": "2",
    "done:intake": "2030-01-01T09:00:01+00:00", "done:address-fit": "2030-01-01T09:00:02+00:00",
    "done:assemble": "2030-01-01T09:00:03+00:00", "done:job": "2030-01-01T09:00:04+00:00",
    "print_files": json.dumps([PRINT_FILE]),
}


def old_journal(folder: Path, settings: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / JOURNAL_NAME
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.executemany("INSERT INTO settings VALUES (?, ?)", settings.items())
        db.execute("INSERT INTO rows (input_row, customer_ref, nhs_number, stage, reason, detail, updated)"
                   " VALUES (2, 'X-1', '9999999999', 'excluded', 'deceased', 'd', '2030-01-01T09:00:01+00:00')")
    db.close()
    return path


def test_a_journal_written_before_the_split_opens_and_reads_back_typed(tmp_path):
    with Journal(old_journal(tmp_path, OLD_SETTINGS)) as journal:
        job = journal.job.identity()
        assert (job.id, job.api, job.letter_date, job.replaces) == ("PKB-20300101-ABCDEF", "fhir", dt.date(2030, 1, 1),
                                                                     None)
        assert journal.job.fingerprint().input_sha256 == "11" * 32
        assert all(journal.job.is_done(step) for step in (Step.INTAKE, Step.FIT, Step.ASSEMBLE, Step.MANIFEST))
        assert journal.job.finished and journal.job.print_files() == [PrintFile(**PRINT_FILE)]
        assert journal.begin_run() == 3
        assert journal.rows.count_by_reason() == {"deceased": 1} and journal.deliveries.attempts() == []
    assert job_status(tmp_path).finished


def test_a_stage_undone_is_undone_under_its_former_name_too(tmp_path):
    with Journal(old_journal(tmp_path, OLD_SETTINGS)) as journal:
        journal.job.undo_done(Step.FIT)
        journal.job.undo_done(Step.MANIFEST)
        assert not journal.job.is_done(Step.FIT) and not journal.job.finished
        journal.job.mark_done(Step.FIT)
        assert journal.job.is_done(Step.FIT)
        keys = {row[0] for row in journal.db.execute("SELECT key FROM settings WHERE key LIKE 'done:%'")}
    assert keys == {"done:intake", "done:fit", "done:assemble"}


def test_a_job_stopped_before_the_fit_marker_was_renamed_resumes_without_fitting_again(sandbox, tmp_path):
    out = tmp_path / "job"
    first = RecordingProgress()
    run_job(demo_settings(out, "fhir"), connection_to(sandbox), first, stop_after="codes")
    assert "fit" in first.totals
    with sqlite3.connect(out / JOURNAL_NAME) as db:  # as the journal was written before the stages had one name
        assert db.execute("UPDATE settings SET key = 'done:address-fit' WHERE key = 'done:fit'").rowcount == 1
    db.close()
    again = RecordingProgress()
    summary = run_job(demo_settings(out, "fhir"), connection_to(sandbox), again, stop_after="codes")
    assert summary.resumed and "fit" not in again.totals


def test_parts_writing_inside_one_transaction_commit_together_or_not_at_all(tmp_path):
    db = Db(sqlite3.connect(tmp_path / "t.sqlite"))
    db.execute("CREATE TABLE t (n INTEGER)")
    with pytest.raises(RuntimeError), db.transaction():
        with db.transaction():  # a part's own write, joined to the caller's
            db.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("the caller's next write failed")
    assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0
    with db.transaction():
        with db.transaction():
            db.execute("INSERT INTO t VALUES (2)")
    assert sqlite3.connect(tmp_path / "t.sqlite").execute("SELECT n FROM t").fetchall() == [(2,)]


PATIENT = PatientRow(2, "X-1", "9999999999", "", "A", "B", None, ("1 Road", "TOWN", "NE1 7RU"), "NE1 7RU")


def test_intake_s_rows_and_its_done_marker_are_written_together(tmp_path):
    def rows_then_a_failure():
        yield PATIENT
        yield Exclusion(3, "X-2", "9999999999", Reason.DECEASED, "d")
        raise OSError("the list's disk went away")

    with Journal.in_dir(tmp_path) as journal:
        with pytest.raises(OSError):
            journal.record_intake(rows_then_a_failure())
        assert journal.rows.row_count() == 0 and not journal.job.is_done(Step.INTAKE)
        assert journal.record_intake([PATIENT]) == (1, 0)
        assert journal.rows.count_at(Stage.READ) == 1 and journal.job.is_done(Step.INTAKE)


def test_the_purge_record_is_kept_whole_and_a_carried_pair_is_found(tmp_path):
    record = PurgeRecord("PKB-1", "2030-02-01T00:00:00+00:00", "2030-01-31", "ops", 1,
                         (DeletedFile("letters.pdf", 10, "cd" * 32, True),), ("manifest.json",))
    pair = CodePair("INV", "ACC", dt.date(2030, 6, 1))
    (tmp_path / "old").mkdir()
    with Journal.in_dir(tmp_path / "old") as old:
        old.rows.record_intake_rows([PATIENT])
        old.codes.record_issued([(2, pair)], [])
    with Journal.in_dir(tmp_path) as journal, Journal.in_dir(tmp_path / "old") as old:
        journal.job.record_purge(record)
        assert journal.job.purged_at == record.purged_at
        stored = journal.db.execute("SELECT value FROM settings WHERE key = 'purge_record'").fetchone()[0]
        assert json.loads(stored)["deleted_files"][0]["name"] == "letters.pdf"
        assert journal.codes.carry_codes_from(old.codes) == 1
        assert journal.codes.carried_codes("9999999999") == (pair, False)
