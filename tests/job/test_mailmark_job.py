"""Mailmark 2D in real runs on the sandbox: printed in the window, read back, recorded, never reused."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
import zxingcpp
from click.testing import CliRunner
from conftest import FIXTURES, PATIENTS_CSV, connection_to, demo_settings

from pkb_letters.assemble import mailmark
from pkb_letters.assemble.print_options import options_from_job
from pkb_letters.check.print_check import Code, check_files
from pkb_letters.cli import main
from pkb_letters.config import load_job_file
from pkb_letters.envelope import C5
from pkb_letters.errors import ConfigError
from pkb_letters.job.journal import Journal
from pkb_letters.job.pipeline import run_job
from pkb_letters.records import Reason

MAILMARK_TOML = FIXTURES / "mailmark.toml"


def _run_cli(out: Path, state: Path) -> dict:
    """`pkb-letters run fixtures/patients.csv --sandbox --config fixtures/mailmark.toml`; item IDs in `state`."""
    env = {**os.environ, "XDG_DATA_HOME": str(state)}
    command = [str(Path(sys.executable).with_name("pkb-letters")), "run", str(PATIENTS_CSV), "--sandbox"]
    subprocess.run([*command, "--config", str(MAILMARK_TOML), "--out", str(out)], env=env, check=True)
    return json.loads((out / "manifest.json").read_text())


def _read_first_pages(pdf_path: Path, manifest: dict) -> dict[str, str]:
    """Each piece's Mailmark as zxing-cpp reads it off the rendered window (independently of `check`)."""
    document = pypdfium2.PdfDocument(pdf_path)
    window = C5.window
    found = {}
    for letter in manifest["letters"]:
        page = document[letter["first_page"] - 1]
        crop = tuple(v / 25.4 * 72 for v in (window.left, window.top, 210 - window.right, 297 - window.bottom))
        image = page.render(scale=300 / 72, grayscale=True, crop=(crop[0], crop[3], crop[2], crop[1])).to_pil()
        read = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.DataMatrix)
        assert len(read) == 1, f"{letter['piece_id']}: {len(read)} DataMatrix symbols in the window"
        found[letter["piece_id"]] = read[0].text
    return found


@pytest.fixture(scope="module")
def mailmark_runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """The shipped job file run twice through the command line on one machine's item-ID state."""
    root = tmp_path_factory.mktemp("mailmark")
    state = root / "state"
    _run_cli(root / "first", state)
    _run_cli(root / "second", state)
    return root / "first", root / "second", state


def test_every_printed_mailmark_decodes_to_the_manifests_value(mailmark_runs):
    out = mailmark_runs[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["letters"], "the demo job prints letters"
    found = _read_first_pages(out / "letters.pdf", manifest)
    for letter in manifest["letters"]:
        assert found[letter["piece_id"]] == letter["mailmark"]
        assert letter["mailmark_item_id"] == letter["mailmark"][14:22]
        mailmark.validate(letter["mailmark"])
        assert letter["mailmark"].startswith("JGB 0120000123")  # second class, the fixture's supply chain ID
    with (out / "mailmark-items.csv").open(newline="") as handle:
        items = list(csv.DictReader(handle))
    assert [(i["piece_id"], i["item_id"], i["mailmark"]) for i in items] == [
        (m["piece_id"], m["mailmark_item_id"], m["mailmark"]) for m in manifest["letters"]
    ]
    assert manifest["job"]["print"]["mailmark"]["mode"] == "generate"


def test_item_ids_never_repeat_across_two_jobs(mailmark_runs):
    first, second, state = mailmark_runs
    ids = [
        letter["mailmark_item_id"]
        for out in (first, second)
        for letter in json.loads((out / "manifest.json").read_text())["letters"]
    ]
    assert len(ids) == len(set(ids)) > 0
    assert (state / "pkb-letters" / "mailmark-items.sqlite").exists()


def test_the_address_fit_leaves_room_for_the_mailmark(mailmark_runs):
    """DEMO-0003's first line (82.9 mm) fits the C5 window alone, not beside the Mailmark."""
    with (mailmark_runs[0] / "exceptions.csv").open(newline="") as handle:
        reasons = {row["customer_ref"]: row for row in csv.DictReader(handle)}
    assert reasons["DEMO-0003"]["reason"] == "address-too-wide"
    assert "79.4 mm" in reasons["DEMO-0003"]["detail"]


def test_the_preflight_finds_a_mailmark_that_disagrees_with_the_manifest(mailmark_runs, tmp_path):
    out = mailmark_runs[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert check_files([out / "letters.pdf"], manifest, C5).ok
    manifest["letters"][0]["mailmark"] = manifest["letters"][1]["mailmark"]
    report = check_files([out / "letters.pdf"], manifest, C5)
    assert [p.code for p in report.problems] == [Code.MAILMARK_MISMATCH]


def _stopped_for_the_mail_house(sandbox, tmp_path: Path, **table) -> tuple[Path, Any, Any, str, int]:
    """A supplied-mode job stopped after its codes, as it is when the mail house writes its file:
    (the file's path, the print options, the job settings, the job id, the letters coded)."""
    supplied = tmp_path / "from-mail-house.csv"
    options = options_from_job({"mailmark": {"mode": "supplied", "supplied": supplied.name, **table}}, tmp_path)
    settings = demo_settings(tmp_path / "job", "fhir")
    run_job(settings, connection_to(sandbox), print_options=options, stop_after="codes")
    with Journal.in_dir(settings.out_dir) as journal:
        job_id = journal.job.id
        coded = journal.rows.count_by_stage()["coded"]
    return supplied, options, settings, job_id, coded


def _supplied_string(n: int, destination: str = "NE17RU1A ") -> str:
    """The mail house's Mailmark for piece n: item ID n."""
    return f"JGB 0120000123{n:08d}{destination}0{' ' * 13}"


def _write_supplied(path: Path, rows: list[tuple[str, str, str]]) -> None:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([("piece_id", "barcode", "sort_sequence"), *rows])


def test_a_supplied_job_prints_the_mail_houses_strings_and_a_piece_without_one_is_an_exception(sandbox, tmp_path):
    supplied, options, settings, job_id, coded = _stopped_for_the_mail_house(sandbox, tmp_path)
    out = settings.out_dir
    # the mail house's sortation answer: every piece but the second, one of them invalid
    rows = []
    for n in range(1, coded + 1):
        if n == 2:
            continue
        destination = "NE17RU1A " if n != 3 else "NE17RU11 "  # piece 3: the DPS is digit then letter
        rows.append((f"{job_id}-{n:06d}", _supplied_string(n, destination), str(100 - n)))
    _write_supplied(supplied, rows)
    run_job(settings, connection_to(sandbox), print_options=options)
    manifest = json.loads((out / "manifest.json").read_text())
    printed = {letter["piece_id"] for letter in manifest["letters"]}
    assert f"{job_id}-000002" not in printed and f"{job_id}-000003" not in printed
    assert len(printed) == coded - 2
    found = _read_first_pages(out / "letters.pdf", manifest)
    assert all(found[m["piece_id"]] == m["mailmark"] for m in manifest["letters"])
    with (out / "exceptions.csv").open(newline="") as handle:
        reasons = [row["reason"] for row in csv.DictReader(handle)]
    assert reasons.count(Reason.MAILMARK_MISSING) == 1 and reasons.count(Reason.MAILMARK_INVALID) == 1
    assert manifest["job"]["input_rows"] == len(manifest["letters"]) + manifest["job"]["exceptions"]
    with (out / "mailmark-items.csv").open(newline="") as handle:
        sort_sequences = {row["piece_id"]: row["sort_sequence"] for row in csv.DictReader(handle)}
    assert sort_sequences[f"{job_id}-000001"] == "99"
    # not asked to print in sort sequence: printed as laid out
    assert [letter["sequence"] for letter in manifest["letters"]] == sorted(m["sequence"] for m in manifest["letters"])


def _mailmarks_in_page_order(pdf_path: Path) -> list[str]:
    """The Mailmark on each page that has one, page by page, read off the window: the print file's own order."""
    document = pypdfium2.PdfDocument(pdf_path)
    window = C5.window
    crop = tuple(v / 25.4 * 72 for v in (window.left, window.top, 210 - window.right, 297 - window.bottom))
    found = []
    for page in document:
        image = page.render(scale=300 / 72, grayscale=True, crop=(crop[0], crop[3], crop[2], crop[1])).to_pil()
        found += [r.text for r in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.DataMatrix)]
    return found


def test_a_supplied_job_prints_in_the_mail_houses_sort_sequence(sandbox, tmp_path):
    supplied, options, settings, job_id, coded = _stopped_for_the_mail_house(
        sandbox, tmp_path, print_order="sort_sequence"
    )
    # the mail house sorted the pieces into the reverse of the order they were numbered in
    _write_supplied(
        supplied, [(f"{job_id}-{n:06d}", _supplied_string(n), str(10 * (coded + 1 - n))) for n in range(1, coded + 1)]
    )
    run_job(settings, connection_to(sandbox), print_options=options)  # its own preflight and read-back pass
    out = settings.out_dir
    manifest = json.loads((out / "manifest.json").read_text())
    reverse = list(range(coded, 0, -1))
    assert coded >= 3
    assert [letter["piece_id"] for letter in manifest["letters"]] == [f"{job_id}-{n:06d}" for n in reverse]
    assert [letter["sequence"] for letter in manifest["letters"]] == reverse  # ids and numbers kept
    pages = [letter["first_page"] for letter in manifest["letters"]]
    assert pages == sorted(pages) and pages[0] == 1  # listed in print order
    assert _mailmarks_in_page_order(out / "letters.pdf") == [_supplied_string(n) for n in reverse]
    for letter in manifest["letters"]:  # each inserter mark still carries its piece's own number
        assert all(mark.split()[1] == f"{letter['sequence']:06d}" for mark in letter["marks"])
    assert manifest["job"]["print"]["mailmark"]["print_order"] == "sort_sequence"
    checked = CliRunner().invoke(main, ["check", "--job", str(out), "--json"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["read_back"]["letters"] == coded


def test_a_piece_without_a_sort_sequence_is_an_exception_when_the_job_prints_in_sort_sequence(sandbox, tmp_path):
    supplied, options, settings, job_id, coded = _stopped_for_the_mail_house(
        sandbox, tmp_path, print_order="sort_sequence"
    )
    rows = [(f"{job_id}-{n:06d}", _supplied_string(n), "" if n == 2 else str(coded - n)) for n in range(1, coded + 1)]
    _write_supplied(supplied, rows)
    run_job(settings, connection_to(sandbox), print_options=options)
    manifest = json.loads((settings.out_dir / "manifest.json").read_text())
    assert [letter["sequence"] for letter in manifest["letters"]] == [n for n in range(coded, 0, -1) if n != 2]
    with (settings.out_dir / "exceptions.csv").open(newline="") as handle:
        unsorted = [row for row in csv.DictReader(handle) if row["reason"] == Reason.MAILMARK_UNSORTED]
    assert len(unsorted) == 1 and "no sort sequence" in unsorted[0]["detail"]


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ("30", "sort_sequence 30 is given to both"),
        ("0030", "sort_sequence 30 is given to both"),
        ("3a", "whole number"),
    ],
)
def test_a_file_whose_sort_sequences_cannot_order_the_run_stops_the_job(sandbox, tmp_path, second, message):
    supplied, options, settings, job_id, coded = _stopped_for_the_mail_house(
        sandbox, tmp_path, print_order="sort_sequence"
    )
    rows = [(f"{job_id}-{n:06d}", _supplied_string(n), str(10 * n)) for n in range(1, coded + 1)]
    rows[1] = (rows[1][0], rows[1][1], second)  # piece 3 is sort sequence 30
    _write_supplied(supplied, rows)
    with pytest.raises(ConfigError, match=message):
        run_job(settings, connection_to(sandbox), print_options=options)
    assert not (settings.out_dir / "letters.pdf").exists()
    rows[1] = (rows[1][0], rows[1][1], "20")  # the mail house's corrected file: the job resumes
    _write_supplied(supplied, rows)
    run_job(settings, connection_to(sandbox), print_options=options)
    manifest = json.loads((settings.out_dir / "manifest.json").read_text())
    assert [letter["sequence"] for letter in manifest["letters"]] == list(range(1, coded + 1))


def test_the_job_file_is_what_the_fixture_says():
    table = load_job_file(MAILMARK_TOML)["mailmark"]
    assert table["mode"] == "generate" and len(table["supply_chain_id"]) == 7
