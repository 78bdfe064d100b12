"""`pkb-letters reconcile`: the inserter's results in, a reprint of spoiled pieces (their very pages, the
same codes, none issued) and the pulled pieces' list out, on a real sandbox job (duplex, DataMatrix marks)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pikepdf
import pytest
from click.testing import CliRunner, Result

from pkb_letters.check.print_check import check_files
from pkb_letters.check.readback import JournalCredentials
from pkb_letters.cli import main
from pkb_letters.envelope import C5
from pkb_letters.job.journal import Journal

REPRINTED, PULLED = (2, 6), (5,)


@pytest.fixture
def job(printed_demo_job, tmp_path) -> Path:
    return Path(shutil.copytree(printed_demo_job, tmp_path / "job"))


def manifest_letters(job: Path) -> list[dict]:
    return json.loads((job / "manifest.json").read_text(encoding="utf-8"))["letters"]


def piece(job: Path, sequence: int) -> str:
    return next(e["piece_id"] for e in manifest_letters(job) if e["sequence"] == sequence)


def results_csv(path: Path, job: Path, statuses: dict[int, str]) -> Path:
    """The default results file: every piece with its status, OK unless given."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["piece_id", "status"])
        for entry in manifest_letters(job):
            writer.writerow([entry["piece_id"], statuses.get(entry["sequence"], "OK")])
    return path


def reconcile(job: Path, results: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["reconcile", str(job), str(results), *args])


def journal_codes(job: Path) -> list[tuple]:
    with sqlite3.connect(job / "job.sqlite") as db:
        return db.execute(
            "SELECT piece_id, invitation_code, access_code, codes_expire FROM rows ORDER BY input_row"
        ).fetchall()


def content(page: pikepdf.Page) -> bytes:
    contents = page.obj.Contents
    streams = contents if isinstance(contents, pikepdf.Array) else [contents]
    return b"".join(stream.read_raw_bytes() for stream in streams)


def rasterised(pdf: Path, page: int, out: Path) -> bytes:
    subprocess.run(["pdftoppm", "-r", "60", "-f", str(page), "-l", str(page), "-gray", str(pdf), str(out)], check=True)
    return next(out.parent.glob(out.name + "*.pgm")).read_bytes()


def test_a_reprint_holds_the_very_pages_passes_the_preflight_and_issues_no_codes(job, sandbox, tmp_path):
    issued_before, codes_before = len(sandbox.issued()), journal_codes(job)
    statuses = {**dict.fromkeys(REPRINTED, "REPRINT"), **dict.fromkeys(PULLED, "PULL")}

    result = reconcile(job, results_csv(tmp_path / "results.csv", job, statuses), "--force")

    assert result.exit_code == 0, result.output
    assert "5 OK, 2 to reprint, 1 pulled" in result.output
    assert len(sandbox.issued()) == issued_before and journal_codes(job) == codes_before  # no pair issued or changed
    reprint = json.loads((job / "reprint-01.json").read_text(encoding="utf-8"))
    originals = {e["sequence"]: e for e in manifest_letters(job)}
    assert [e["sequence"] for e in reprint["letters"]] == list(REPRINTED)
    for entry in reprint["letters"]:  # same piece, same marks, placed where its pages now are
        original = originals[entry["sequence"]]
        assert (entry["piece_id"], entry["marks"]) == (original["piece_id"], original["marks"])
        assert (entry["original_file"], entry["original_first_page"]) == ("letters.pdf", original["first_page"])
    pages = [(originals[s]["first_page"] + n, 2 * i + n + 1) for i, s in enumerate(REPRINTED) for n in range(2)]
    with pikepdf.open(job / "letters.pdf") as letters, pikepdf.open(job / "reprint-01.pdf") as copy:
        assert len(copy.pages) == 4
        for old, new in pages:
            assert content(copy.pages[new - 1]) == content(letters.pages[old - 1])
    for old, new in pages:
        assert rasterised(job / "reprint-01.pdf", new, tmp_path / f"new{new}") == rasterised(
            job / "letters.pdf", old, tmp_path / f"old{old}"
        )
    with Journal(job / "job.sqlite", read_only=True) as journal:
        report = check_files(
            [job / "reprint-01.pdf"], job / "reprint-01.json", C5, credentials=JournalCredentials.of_journal(journal)
        )
    assert report.ok and report.read_back == 2, report.text()
    listed = reprint["job"]["files"][0]
    assert listed["name"] == "reprint-01.pdf" and listed["pages"] == 4
    assert listed["sha256"] == hashlib.sha256((job / "reprint-01.pdf").read_bytes()).hexdigest()
    with (job / "reprint-01.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["piece_id"] for r in rows] == [piece(job, s) for s in REPRINTED]
    assert {r["file_sha256"] for r in rows} == {listed["sha256"]}


def test_pulled_pieces_are_listed_by_piece_id_and_customer_reference_without_codes(job, tmp_path):
    result = reconcile(job, results_csv(tmp_path / "results.csv", job, {5: "PULL", 7: "PULL"}))

    assert result.exit_code == 0, result.output
    text = (job / "pulled.csv").read_text(encoding="utf-8")
    assert list(csv.reader(text.splitlines())) == [
        ["piece_id", "customer_ref"],
        [piece(job, 5), "DEMO-0005"],
        [piece(job, 7), "DEMO-0007"],
    ]
    codes = [code for _, invitation, access, _ in journal_codes(job) for code in (invitation, access) if code]
    assert codes and not any(code in text for code in codes)
    assert not list(job.glob("reprint-*"))  # nothing to reprint, no reprint set


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{piece},SMUDGED", "line 3: status 'SMUDGED' is not one of 'OK', 'REPRINT', 'PULL'"),
        ("PKB-NOT-A-PIECE,REPRINT", "line 3: piece id 'PKB-NOT-A-PIECE' is not a piece of this job"),
        ("{piece},PULL", "is PULL here but OK earlier"),
    ],
)
def test_an_unknown_status_or_piece_stops_with_its_line_and_writes_nothing(job, tmp_path, line, message):
    results = tmp_path / "results.csv"
    results.write_text(f"piece_id,status\n{piece(job, 1)},OK\n{line.format(piece=piece(job, 1))}\n", "utf-8")
    (tmp_path / "job.toml").write_text('[reconcile]\nlists = "failures"\n', "utf-8")

    result = reconcile(job, results, "--config", str(tmp_path / "job.toml"), "--force")

    assert result.exit_code == 2 and message in result.output, result.output
    assert not list(job.glob("reprint-*")) and not (job / "pulled.csv").exists()
    with Journal(job / "job.sqlite", read_only=True) as journal:
        assert journal.reconciliations.all() == []


def test_results_that_leave_out_pieces_need_lists_failures(job, tmp_path):
    results = tmp_path / "results.csv"
    results.write_text(f"piece_id,status\n{piece(job, 3)},PULL\n", "utf-8")

    refused = reconcile(job, results)
    (tmp_path / "job.toml").write_text('[reconcile]\nlists = "failures"\n', "utf-8")
    taken = reconcile(job, results, "--config", str(tmp_path / "job.toml"))

    assert refused.exit_code == 2 and "7 piece(s) of the job are not in the results" in refused.output
    assert taken.exit_code == 0 and "7 OK, 0 to reprint, 1 pulled" in taken.output, taken.output


def test_more_than_the_jobs_share_of_reprints_needs_force(job, tmp_path):
    results = results_csv(tmp_path / "results.csv", job, {4: "REPRINT"})  # 1 of 8: 12.5 %

    refused = reconcile(job, results)
    (tmp_path / "job.toml").write_text("[reconcile]\nmax_reprint_share = 0.2\n", "utf-8")
    allowed = reconcile(job, results, "--config", str(tmp_path / "job.toml"))

    assert refused.exit_code == 2, refused.output
    assert "1 of 8 pieces (12.5%) are to be reprinted, more than the 5.0%" in refused.output
    assert "--force" in refused.output
    assert allowed.exit_code == 0 and (job / "reprint-01.pdf").is_file(), allowed.output


def test_a_fixed_width_file_keyed_by_the_marks_sequence_with_the_inserters_own_status_values(job, tmp_path):
    (tmp_path / "job.toml").write_text(
        "[reconcile]\n"
        'format = "fixed"\nkey = "sequence"\nlists = "failures"\nskip_lines = 1\nmax_reprint_share = 0.5\n'
        "key_column = [1, 6]\nstatus_column = [8, 9]\n"
        '[reconcile.statuses]\n"00" = "OK"\n"17" = "REPRINT"\n"99" = "pull"\n',
        "utf-8",
    )
    results = tmp_path / "results.txt"
    results.write_text("SEQNO  ST\n000003 17 torn\n000008 99\n000001 00\n", "utf-8")

    result = reconcile(job, results, "--config", str(tmp_path / "job.toml"))

    assert result.exit_code == 0, result.output
    reprint = json.loads((job / "reprint-01.json").read_text(encoding="utf-8"))
    assert [e["piece_id"] for e in reprint["letters"]] == [piece(job, 3)]
    assert (job / "pulled.csv").read_text(encoding="utf-8").splitlines()[1] == f"{piece(job, 8)},DEMO-0008"


def test_every_reconciliation_is_recorded_and_status_shows_pieces_reprinted_and_pulled(job, tmp_path):
    first = results_csv(tmp_path / "first.csv", job, {2: "REPRINT", 5: "PULL"})
    second = results_csv(tmp_path / "second.csv", job, {2: "REPRINT", 3: "REPRINT"})
    assert reconcile(job, first, "--force").exit_code == 0
    assert reconcile(job, second, "--force").exit_code == 0

    status = CliRunner().invoke(main, ["status", str(job)])

    assert (job / "reprint-01.pdf").is_file() and (job / "reprint-02.pdf").is_file()
    with Journal(job / "job.sqlite", read_only=True) as journal:
        made = journal.reconciliations.all()
    assert [(r.number, r.results_file, r.counts, r.forced, r.preflight_ok) for r in made] == [
        (1, "first.csv", {"ok": 6, "reprint": 1, "pull": 1}, True, True),
        (2, "second.csv", {"ok": 6, "reprint": 2, "pull": 0}, True, True),
    ]
    assert "inserter results: 2 piece(s) reprinted, 1 pulled" in status.output, status.output
    assert "02  " in status.output
    assert "second.csv: 6 OK, 2 reprint, 0 pull (--force) -> reprint-02.pdf (preflight passed)" in status.output


def test_reconcile_after_purge_refuses_and_says_why(job, tmp_path):
    results = results_csv(tmp_path / "results.csv", job, {2: "REPRINT"})
    purged = CliRunner().invoke(main, ["purge", str(job), "--dispatched-on", dt.date.today().isoformat()])
    assert purged.exit_code == 0, purged.output

    result = reconcile(job, results, "--force")

    assert result.exit_code == 2
    assert "was purged on" in result.output and "no reprint can carry the same codes" in result.output
    assert not list(job.glob("reprint-*"))


def test_a_print_file_changed_since_the_run_is_not_reprinted_from(job, tmp_path):
    results = results_csv(tmp_path / "results.csv", job, {2: "REPRINT"})
    with (job / "letters.pdf").open("ab") as handle:
        handle.write(b"\n% changed\n")

    result = reconcile(job, results, "--force")

    assert result.exit_code == 2 and "letters.pdf is missing or changed since the run" in result.output
