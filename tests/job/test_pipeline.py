"""The end-to-end job against the sandbox PKB over real sockets, checked from its outputs."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from urllib.parse import urlencode

import pypdfium2
import pytest
import zxingcpp
from conftest import EXPECTED_EXCLUSIONS, EXPECTED_LETTERS, PATIENTS_CSV, DemoJob
from pdf_inspect import page_texts, page_words
from pypdf import PdfReader

from pkb_letters.config import SANDBOX_JOIN_URL
from pkb_letters.envelope import C5
from pkb_letters.render.chunks import long_date

A4_POINTS = (595.28, 841.89)


def manifest(job: DemoJob) -> dict:
    return json.loads((job.out_dir / "manifest.json").read_text(encoding="utf-8"))


def csv_rows(path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def input_rows_by_line() -> dict[int, dict]:
    return {line: row for line, row in enumerate(csv_rows(PATIENTS_CSV), start=2)}


def test_every_input_row_is_a_letter_or_an_exception(demo_job: DemoJob):
    job = manifest(demo_job)["job"]
    exceptions = csv_rows(demo_job.out_dir / "exceptions.csv")
    assert job["input_rows"] == len(input_rows_by_line()) == 15
    assert job["letters"] + job["exceptions"] == job["input_rows"]
    assert len(exceptions) == job["exceptions"]


def test_ineligible_patients_get_no_letter_and_a_reason(demo_job: DemoJob):
    exceptions = csv_rows(demo_job.out_dir / "exceptions.csv")
    assert {row["customer_ref"]: row["reason"] for row in exceptions} == EXPECTED_EXCLUSIONS
    assert all(row["detail"] and row["nhs_number"] for row in exceptions)
    rows = input_rows_by_line()
    lettered = {rows[entry["input_row"]]["Customer ref"] for entry in manifest(demo_job)["letters"]}
    assert sorted(lettered) == EXPECTED_LETTERS


def test_printed_codes_are_exactly_those_issued_one_pair_per_patient(demo_job: DemoJob):
    rows = input_rows_by_line()
    texts = page_texts(demo_job.out_dir / "letters.pdf")
    issued_by_nhs = {pair.nhs_number: pair for pair in demo_job.issued}
    letters = manifest(demo_job)["letters"]

    assert len(demo_job.issued) == len(letters) == len(issued_by_nhs)  # one pair each, no spares
    for entry in letters:
        nhs_number = rows[entry["input_row"]]["NHS number"]
        pair = issued_by_nhs[nhs_number]
        letter_text = "\n".join(texts[entry["first_page"] - 1 : entry["first_page"] - 1 + entry["page_count"]])
        assert pair.invitation_code in letter_text and pair.access_code in letter_text
        assert entry["codes_expire"] == pair.expiry.date().isoformat()
        others = [p for p in demo_job.issued if p is not pair]
        assert not any(p.invitation_code in letter_text or p.access_code in letter_text for p in others)


def test_each_letters_qr_code_opens_the_joining_page_with_its_own_codes(demo_job: DemoJob):
    rows = input_rows_by_line()
    issued_by_nhs = {pair.nhs_number: pair for pair in demo_job.issued}
    document = pypdfium2.PdfDocument(demo_job.out_dir / "letters.pdf")
    for entry in manifest(demo_job)["letters"]:
        pair = issued_by_nhs[rows[entry["input_row"]]["NHS number"]]
        scan = document[entry["first_page"] - 1].render(scale=150 / 72, grayscale=True).to_pil()
        expected = f"{SANDBOX_JOIN_URL}?{urlencode({'t1': pair.invitation_code, 't2': pair.access_code})}"
        assert [code.text for code in zxingcpp.read_barcodes(scan, formats=zxingcpp.BarcodeFormat.QRCode)] == [expected]


def test_page_count_matches_manifest_and_every_page_is_a4(demo_job: DemoJob):
    reader = PdfReader(demo_job.out_dir / "letters.pdf")
    data = manifest(demo_job)
    assert len(reader.pages) == sum(e["page_count"] for e in data["letters"]) == data["job"]["pages"]
    for page in reader.pages:
        assert (float(page.mediabox.width), float(page.mediabox.height)) == pytest.approx(A4_POINTS, abs=0.5)
    expected_first = 1
    for entry in data["letters"]:
        assert entry["first_page"] == expected_first
        expected_first += entry["page_count"]


def test_file_entry_describes_the_pdf(demo_job: DemoJob):
    import hashlib

    pdf = demo_job.out_dir / "letters.pdf"
    (entry,) = manifest(demo_job)["job"]["files"]
    letters = manifest(demo_job)["letters"]
    assert entry == {
        "name": "letters.pdf",
        "letters": len(letters),
        "pages": len(PdfReader(pdf).pages),
        "sheets": sum(e["sheet_count"] for e in letters),
        "bytes": pdf.stat().st_size,
        "sha256": hashlib.sha256(pdf.read_bytes()).hexdigest(),
        "postage_class": None,
        "sheet_count": None,
        "format": None,
    }


def test_every_font_is_embedded(demo_job: DemoJob):
    reader = PdfReader(demo_job.out_dir / "letters.pdf")
    seen = 0
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descendants = font.get("/DescendantFonts")
            target = descendants[0].get_object() if descendants else font
            descriptor = target["/FontDescriptor"].get_object()
            assert any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")), font["/BaseFont"]
            seen += 1
    assert seen > 0


def test_address_lies_inside_the_window_on_each_first_page(demo_job: DemoJob):
    words = page_words(demo_job.out_dir / "letters.pdf")
    window = C5.window
    for entry in manifest(demo_job)["letters"]:
        page = words[entry["first_page"] - 1]
        for line in [entry["name"], *entry["address_lines"]]:
            placed = _find_line(page, line)
            assert placed, f"address line {line!r} not found on page {entry['first_page']}"
            for word in placed:
                assert window.left <= word.left and word.right <= window.right, (line, word)
                assert window.top <= word.top and word.bottom <= window.bottom, (line, word)
        first_word = _find_line(page, entry["name"])[0]
        assert first_word.left == pytest.approx(window.left, abs=0.5)  # block is flush with the window


def _find_line(words, line: str):
    """The run of words on one baseline that spells `line`, or []."""
    tokens = line.split()
    for start in range(len(words)):
        run = words[start : start + len(tokens)]
        if [w.text for w in run] == tokens and len({round(w.bottom, 1) for w in run}) == 1:
            return run
    return []


def test_nothing_else_is_printed_in_the_window(demo_job: DemoJob):
    words = page_words(demo_job.out_dir / "letters.pdf")
    window = C5.window
    for entry in manifest(demo_job)["letters"]:
        expected = " ".join([entry["name"], *entry["address_lines"]]).split()
        inside = [
            w.text for w in words[entry["first_page"] - 1]
            if w.right > window.left and w.left < window.right and w.bottom > window.top and w.top < window.bottom
        ]
        assert inside == expected


def test_letters_carry_page_numbers_and_never_the_date_of_birth(demo_job: DemoJob):
    texts = page_texts(demo_job.out_dir / "letters.pdf")
    rows = input_rows_by_line()
    for entry in manifest(demo_job)["letters"]:
        pages = texts[entry["first_page"] - 1 : entry["first_page"] - 1 + entry["page_count"]]
        for n, text in enumerate(pages, 1):
            assert f"Page {n} of {entry['page_count']}" in text
        dob = dt.date.fromisoformat(rows[entry["input_row"]]["DoB"])
        letter_text = "\n".join(pages)
        for form in (dob.isoformat(), f"{dob:%d/%m/%Y}", long_date(dob)):
            assert form not in letter_text


def test_manifests_hold_no_codes_and_no_nhs_numbers(demo_job: DemoJob):
    secrets = [p.invitation_code for p in demo_job.issued] + [p.access_code for p in demo_job.issued]
    nhs_numbers = [row["NHS number"] for row in input_rows_by_line().values()]
    for name in ("manifest.json", "manifest.csv"):
        text = (demo_job.out_dir / name).read_text(encoding="utf-8")
        assert not [s for s in secrets + nhs_numbers if s in text], name


def test_manifest_csv_matches_manifest_json(demo_job: DemoJob):
    rows = csv_rows(demo_job.out_dir / "manifest.csv")
    letters = manifest(demo_job)["letters"]
    assert [r["piece_id"] for r in rows] == [e["piece_id"] for e in letters]
    assert [r["address_lines"].split(" | ") for r in rows] == [e["address_lines"] for e in letters]


def test_manifest_schema(demo_job: DemoJob):
    data = manifest(demo_job)
    assert set(data) == {"job", "letters"}
    assert set(data["job"]) == {
        "id", "created", "template", "api", "input_rows", "letters", "exceptions", "pages", "sheets", "files",
        "print", "reissued", "formats", "languages", "handed_off",
    }
    assert data["job"]["formats"] == {"standard": data["job"]["letters"]}  # no Format column: the job's default
    assert data["job"]["languages"] == {"english": data["job"]["letters"]}
    assert data["job"]["reissued"] == {}  # a clean run asks once per patient
    assert data["job"]["api"] == demo_job.api
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", data["job"]["created"])
    for n, entry in enumerate(data["letters"], 1):
        assert set(entry) == {"sequence", "piece_id", "file", "first_page", "page_count", "input_row",
                              "name", "address_lines", "postcode", "codes_expire", "codes_reissued", "postage",
                              "sheet_count", "postage_class", "marks", "format", "language"}
        assert entry["codes_reissued"] == ""
        assert entry["sequence"] == n
        assert entry["piece_id"] == f"{data['job']['id']}-{n:06d}"
        assert entry["address_lines"][-1] == entry["postcode"]
        assert entry["postage"] == "uk"  # the demo list has no address abroad


def test_letters_are_in_input_order(demo_job: DemoJob):
    rows = [e["input_row"] for e in manifest(demo_job)["letters"]]
    assert rows == sorted(rows)


def test_fhir_and_rest_produce_the_same_letters(sandbox, tmp_path):
    jobs = {api: DemoJob(sandbox, tmp_path / api, api) for api in ("fhir", "rest")}
    comparable = {
        api: [{k: v for k, v in e.items() if k not in ("piece_id", "marks")} for e in manifest(job)["letters"]]
        for api, job in jobs.items()
    }
    assert comparable["fhir"] == comparable["rest"]
    assert len(comparable["fhir"]) == len(EXPECTED_LETTERS)
    assert {p.route for p in jobs["rest"].issued} == {"rest"}
    assert {p.route for p in jobs["fhir"].issued} == {"fhir"}
