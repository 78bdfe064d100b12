"""Streaming from the journal: the main process holds a page of rows, not the job.

The render, assemble and finish stages read the journal a page at a time and write the
manifests a letter at a time. These tests check that the streamed readers and writers give
exactly what the whole-list ones gave, and that the main process's traced allocations across
render, assemble and finish stay the same when the job has four times the letters.
"""

from __future__ import annotations

import csv
import datetime as dt
import gc
import json
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter
from traced import traced_peak

from pkb_letters.assemble import marks, print_files
from pkb_letters.assemble.mailsort import postcode_key, postcode_order_key
from pkb_letters.assemble.marks import POINTS_PER_MM
from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.envelope import A4_HEIGHT_MM, A4_WIDTH_MM
from pkb_letters.job import pipeline
from pkb_letters.job import sql as journal_sql
from pkb_letters.job.journal import Journal
from pkb_letters.job.manifest import LETTER_FIELDS, MANIFEST_CSV, MANIFEST_JSON, letter_entry, stream_manifest
from pkb_letters.pkb.batching import batched
from pkb_letters.records import CodePair, Letter, PatientRow, PieceRecord, PlacedLetter

POSTCODES = [
    "NE1 7RU", "NE10 1AA", "NE2 4HH", "ne2 4hh", "N1 9GU", "N10 1AA", "NE1 7RA", "NE1A 1AA", "NE1 7R",
    "BFPO 123", "BFPO 12", "", "SW1A 1AA", "SW1A 1A", "E1W 1AA", "E1 6AN", "EC1A 1BB", "W1 1AA",
    "75001", "D02 X285", "Z\x00 1", "Z\x01 1", "Z 1", "Z\x02", "ZZ99 9ZZ", "A9 9A", "É1 1AA", "NE1  7RU",
]


def test_the_postcode_order_key_sorts_as_the_postcode_key_does():
    for a in POSTCODES:
        for b in POSTCODES:
            assert (postcode_order_key(a) < postcode_order_key(b)) == (postcode_key(a) < postcode_key(b)), (a, b)
            assert (postcode_order_key(a) == postcode_order_key(b)) == (postcode_key(a) == postcode_key(b)), (a, b)


def _patient(row: int, postcode: str) -> PatientRow:
    return PatientRow(row, f"ref-{row}", "9999999999", "", "Ann", f"Lee {row}", None, ("1 Road", "TOWN", postcode),
                      postcode)


def _codes(row: int) -> CodePair:
    return CodePair(f"INV{row:05d}", f"ACC{row:05d}", dt.date(2030, 1, 1))


def _patients(rows: int) -> list[PatientRow]:
    return [_patient(row, POSTCODES[row % len(POSTCODES)]) for row in range(2, rows + 2)]


def _coded_journal(path: Path, rows: int) -> Journal:
    journal = Journal.in_dir(path)
    journal.rows.record_intake_rows(_patients(rows))
    journal.codes.record_issued([(row, _codes(row)) for row in range(2, rows + 2)], [])
    return journal


def _in_print_order(patients: list[PatientRow], order: str) -> list[PatientRow]:
    """The print order held whole, as a stable sort gives it: ties keep input order."""
    return sorted(patients, key=lambda p: postcode_key(p.postcode)) if order == "postcode" else list(patients)


@pytest.mark.parametrize("order", ["input", "postcode"])
def test_coded_rows_come_in_print_order_a_page_at_a_time_while_the_journal_is_written(tmp_path, monkeypatch, order):
    monkeypatch.setattr(journal_sql, "PAGE_ROWS", 4)
    with _coded_journal(tmp_path, 50) as journal:
        expected = [patient.input_row for patient in _in_print_order(_patients(50), order)]
        given = []
        for sequence, (patient, codes) in enumerate(journal.placements.coded_in_print_order(order), 1):
            given.append(patient.input_row)
            assert codes == _codes(patient.input_row)
            # placed as they are read, as the render stage does: each page starts after the last row given
            letter = Letter(sequence, f"P{sequence}", patient, codes)
            journal.placements.record_placements([PlacedLetter(letter, "letters.pdf", sequence, 1)], chunk=sequence)
        assert given == expected
        assert [p.letter.patient.input_row for p in journal.placements.placed()] == expected


def test_the_streamed_manifest_is_byte_for_byte_the_whole_one(tmp_path):
    job = {"id": "PKB-1", "letters": 3, "files": [{"name": "letters.pdf", "postage_class": None}], "reissued": {}}
    entries = [
        letter_entry(PlacedLetter(Letter(n, f"P{n}", _patient(n, "NE1 7RU"), _codes(n)), "letters.pdf", n, 2),
                     PieceRecord(n, "letters.pdf", n, 1, "2nd", (f"mark {n}",) * n), "lost-response" if n else None)
        for n in range(3)
    ]
    entries[0]["name"] = 'Zoë "Ann", Lee\nSmith'  # quotes, a comma, a line break, a letter beyond ASCII
    for letters in (entries, entries[:1], []):
        whole, streamed = tmp_path / "whole", tmp_path / "streamed"
        for folder in (whole, streamed):
            folder.mkdir(exist_ok=True)
        _write_whole_manifests(whole, {"job": {**job, "letters": len(letters)}, "letters": letters})
        stream_manifest(streamed, {**job, "letters": len(letters)}, iter(letters))
        for name in (MANIFEST_JSON, MANIFEST_CSV):
            assert (streamed / name).read_bytes() == (whole / name).read_bytes(), (name, len(letters))
        assert json.loads((streamed / MANIFEST_JSON).read_text(encoding="utf-8"))["letters"] == letters


def _write_whole_manifests(out_dir: Path, manifest: dict) -> None:
    """The manifests written from the whole job held at once, by json and csv alone."""
    with (out_dir / MANIFEST_JSON).open("w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    with (out_dir / MANIFEST_CSV).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, LETTER_FIELDS)
        writer.writeheader()
        for entry in manifest["letters"]:
            writer.writerow({**entry, **{key: " | ".join(entry.get(key, [])) for key in ("address_lines", "marks")}})


# -- the main process's memory across render, assemble and finish --------------------------------------------
#
# The stages' own functions over a journal of N letters, laid out as blank A4 pages in real chunk
# PDFs (rendering is the workers' business, not this process's): the peak of this process's traced
# allocations in each stage must not grow when N is four times larger. Holding the job's letters,
# as the stages did, costs 1-3 KB a letter in each stage: some megabytes over 1,200 more letters.

SMALL = 400
CHUNK = 50
PAGE = 50  # rows a page and placements a batch, so that even the small job spans several
GROWTH_BOUND = 150_000



def _page_count(input_row: int) -> int:
    return 1 if input_row % 3 else 3  # one sheet or two, duplex


def _lay_out(journal: Journal, work: Path) -> list[Path]:
    """What the render stage does in this process: chunks of coded letters in print order, each chunk's
    PDF written, then its letters placed; here the PDF is blank pages."""
    paths, next_page, sequence = [], 1, 1
    for index, chunk in enumerate(batched(journal.placements.coded_in_print_order("postcode"), CHUNK), 1):
        letters = [Letter(sequence + n, f"P{sequence + n}", patient, codes) for n, (patient, codes) in enumerate(chunk)]
        sequence += len(letters)
        counts = [_page_count(patient.input_row) for patient, _ in chunk]
        writer = PdfWriter()
        for _ in range(sum(counts)):
            writer.add_blank_page(A4_WIDTH_MM * POINTS_PER_MM, A4_HEIGHT_MM * POINTS_PER_MM)
        paths.append(pipeline._chunk_path(work, index))
        writer.write(paths[-1])
        del writer
        gc.collect()  # pypdf's writer is a reference cycle: the peak is this test's PDF, not the stage's
        next_page = pipeline._place(journal, letters, counts, next_page, index)
    return paths


def _stage_peaks(folder: Path, letters: int) -> dict[str, int]:
    folder.mkdir()
    options = PrintOptions(sort="postcode", split_by=("sheets",), max_letters_per_file=SMALL // 4,
                           marks=marks.DEFAULT_LAYOUTS[marks.MarkKind.OMR])
    job = {"id": "PKB-20300101-ABCDEF", "created": "2030-01-01T00:00:00+00:00", "template": "t", "api": "fhir"}
    peaks = {}
    with _coded_journal(folder, letters) as journal:
        peaks["render"], chunks = traced_peak(lambda: _lay_out(journal, folder))
        peaks["assemble"], files = traced_peak(
            lambda: pipeline._finish_print_files(journal, chunks, job["id"], folder, options))
        peaks["finish"], summary = traced_peak(lambda: pipeline._finish(journal, folder, job, files, False))
    assert summary.letters == letters and len(files) > 1
    return peaks


def test_the_main_process_holds_no_more_for_four_times_the_letters(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_sql, "PAGE_ROWS", PAGE)
    monkeypatch.setattr(print_files, "RECORD_BATCH", PAGE)
    # A pypdf reader is a reference cycle: one done with waits for Python's cycle collector, which
    # runs when it likes. Collecting as each chunk is opened measures what assembling holds.
    monkeypatch.setattr(print_files, "PdfReader", lambda *args: (gc.collect(), PdfReader(*args))[1])
    small = _stage_peaks(tmp_path / "small", SMALL)
    large = _stage_peaks(tmp_path / "large", 4 * SMALL)
    for stage in small:
        assert large[stage] - small[stage] < GROWTH_BOUND, (stage, small, large)


def test_drawing_every_sheets_mark_holds_no_more_for_four_times_the_sheets():
    """Each sheet's DataMatrix payload is drawn once, in the assembling process: caching them all held
    ~5 KB a sheet there. (Assembling above is measured with OMR marks, which are quick to draw.)"""
    layout = marks.DEFAULT_LAYOUTS[marks.MarkKind.DATAMATRIX]

    def draw(sheets: int) -> None:
        for n in range(sheets):
            marks.draw(layout, marks.datamatrix_payload("PKB-20300101-ABCDEF", n, 1, 1))

    def draw_all(sheets: int) -> int:
        marks._matrix.cache_clear()
        peak, _ = traced_peak(lambda: draw(sheets))
        return peak

    few, many = draw_all(100), draw_all(400)
    assert many - few < GROWTH_BOUND, (few, many)
