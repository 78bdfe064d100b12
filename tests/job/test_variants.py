"""Large print, hand-off formats and Welsh letters through the real pipeline on the sandbox PKB.

A mixed list (standard, large print, braille, easy read, Welsh then English, Welsh only, and large
print Welsh then English) is run once; each variant's letters are read back from the PDF: their words,
type sizes, pages, sheets and marks, and the hand-off folder and manifest beside them."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import shutil
from collections import Counter
from pathlib import Path

import pdfplumber
import pytest
from conftest import PATIENTS_CSV, connection_to, demo_settings, no_weasyprint_warnings
from pdf_inspect import MM_PER_POINT

from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.check.print_check import check_files
from pkb_letters.config import DEFAULT_TEMPLATE, letter_settings
from pkb_letters.envelope import C5
from pkb_letters.errors import ConfigError
from pkb_letters.job.handoff import WITHHELD
from pkb_letters.job.pipeline import run_job
from pkb_letters.records import PatientRow
from pkb_letters.render.chunks import long_date, variant_of
from pkb_letters.variants import HANDOFF_DIR, Variant

# customer reference -> (Format cell, Language cell); the other demo rows are left empty (standard English)
VARIANTS = {
    "DEMO-0002": ("Large print", ""),
    "DEMO-0003": ("braille", ""),
    "DEMO-0004": ("", "welsh_then_english"),
    "DEMO-0005": ("", "Welsh"),
    "DEMO-0006": ("large-print", "welsh_then_english"),
    "DEMO-0007": ("easy read", ""),
}
HANDED_OFF = {"DEMO-0003": "braille", "DEMO-0007": "easy-read"}


def read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def mixed_list(folder: Path) -> Path:
    rows = read_csv(PATIENTS_CSV)
    path = folder / "mixed.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, [*rows[0], "Format", "Language"])
        writer.writeheader()
        for row in rows:
            letter_format, language = VARIANTS.get(row["Customer ref"], ("", ""))
            writer.writerow({**row, "Format": letter_format, "Language": language})
    return path


def run_mixed(sandbox, folder: Path, template: Path = DEFAULT_TEMPLATE, **print_options):
    folder.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(
        demo_settings(folder / "job", "fhir"), patients=mixed_list(folder), template_dir=template
    )
    with no_weasyprint_warnings():
        summary = run_job(settings, connection_to(sandbox), print_options=PrintOptions(**print_options))
    return summary, folder / "job"


@pytest.fixture(scope="module")
def mixed_job(sandbox, tmp_path_factory):
    return run_mixed(sandbox, tmp_path_factory.mktemp("variants"))


def letters_by_ref(out: Path) -> dict[str, dict]:
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    refs = {int(r["input_row"]): r for r in read_csv(out / "manifest.csv")}
    by_row = {letter["input_row"]: letter for letter in manifest["letters"]}
    customer = {n: row["Customer ref"] for n, row in enumerate(read_csv(PATIENTS_CSV), 2)}
    assert refs.keys() == by_row.keys()
    return {customer[row]: letter for row, letter in by_row.items()}


@dataclasses.dataclass(frozen=True)
class PageFacts:
    """What a test reads of one printed page (pdfplumber's pages close with their file)."""

    text: str
    chars: list[dict]


def letter_pages(out: Path, letter: dict) -> list[PageFacts]:
    first = letter["first_page"] - 1
    with pdfplumber.open(out / letter["file"]) as pdf:
        pages = pdf.pages[first : first + letter["page_count"]]
        return [PageFacts(page.extract_text() or "", list(page.chars)) for page in pages]


def file_text(path: Path) -> str:
    with pdfplumber.open(path) as pdf:
        return " ".join(page.extract_text() or "" for page in pdf.pages)


def body_sizes(page, first: bool) -> Counter:
    """Font sizes (rounded pt) of the characters in the body text: below the body top on page 1, above
    the footer everywhere, leaving out the address window."""
    top = C5.body_top if first else 0
    bottom = 297 - C5.margins.bottom
    return Counter(
        round(ch["size"])
        for ch in page.chars
        if top <= ch["top"] * MM_PER_POINT < bottom and ch["text"].strip()
    )


def test_each_variant_prints_with_its_template_and_type_size(mixed_job):
    summary, out = mixed_job
    letters = letters_by_ref(out)
    assert {ref for ref in HANDED_OFF} & letters.keys() == set()
    expected = {
        "DEMO-0001": ("standard", "english"),
        "DEMO-0002": ("large-print", "english"),
        "DEMO-0004": ("standard", "welsh_then_english"),
        "DEMO-0005": ("standard", "welsh"),
        "DEMO-0006": ("large-print", "welsh_then_english"),
        "DEMO-0008": ("standard", "english"),
    }
    assert {ref: (lt["format"], lt["language"]) for ref, lt in letters.items()} == expected
    for ref, (letter_format, language) in expected.items():
        pages = letter_pages(out, letters[ref])
        text = " ".join(page.text for page in pages)
        welsh, english = "Eich gwahoddiad i weld eich cofnod iechyd" in text, "Your invitation to view" in text
        assert (welsh, english) == (language != "english", language != "welsh"), ref
        if welsh:  # the expiry sentence in Welsh, with the Welsh month
            expires = long_date(dt.date.fromisoformat(letters[ref]["codes_expire"]), "cy")
            assert f"Mae'r codau hyn yn dod i ben ar {expires}" in text.replace("\n", " "), ref
        sizes = sum((body_sizes(page, n == 0) for n, page in enumerate(pages)), Counter())
        if letter_format == "large-print":
            assert min(sizes) >= 16 and sizes.most_common(1)[0][0] == 18, (ref, sizes)
        else:
            assert sizes.most_common(1)[0][0] == 11, (ref, sizes)


def test_large_print_keeps_the_address_block_and_it_fits_the_window(mixed_job):
    _, out = mixed_job
    letters = letters_by_ref(out)
    for ref in ("DEMO-0001", "DEMO-0002", "DEMO-0006"):
        first = letter_pages(out, letters[ref])[0]
        window = [
            ch
            for ch in first.chars
            if C5.window.top <= ch["top"] * MM_PER_POINT <= C5.window.top + C5.window.height and ch["text"].strip()
            and C5.window.left <= ch["x0"] * MM_PER_POINT
            and ch["x1"] * MM_PER_POINT <= C5.window.left + C5.window.width
        ]
        assert window and {round(ch["size"]) for ch in window} == {10}, ref
    # and the run's own preflight (the address in the window, marks, blank backs) passed; check again here
    report = check_files([out / "letters.pdf"], out / "manifest.json", C5, PrintOptions().marks)
    assert report.ok, report.text()


def test_bilingual_letters_start_each_language_on_a_front_with_the_address_once(mixed_job):
    _, out = mixed_job
    letters = letters_by_ref(out)
    for ref in ("DEMO-0004", "DEMO-0006"):
        letter = letters[ref]
        pages = letter_pages(out, letter)
        texts = [page.text for page in pages]
        english_start = next(n for n, t in enumerate(texts) if "Your invitation to view" in t)
        assert english_start % 2 == 0 and english_start > 0, (ref, english_start)
        assert all("Eich gwahoddiad" not in t for t in texts[english_start:])
        postcode = letter["postcode"]
        assert [n for n, t in enumerate(texts) if postcode in t] == [0], ref
        assert letter["sheet_count"] == -(-letter["page_count"] // 2)
        assert len(letter["marks"]) == letter["sheet_count"]
        assert all(f"{n:02d}/{letter['sheet_count']:02d}" in m for n, m in enumerate(letter["marks"], 1))


def test_handed_off_rows_are_in_the_handoff_csv_without_codes_and_not_in_the_print_file(mixed_job, sandbox):
    _, out = mixed_job
    rows = read_csv(out / HANDOFF_DIR / "handoff.csv")
    assert {row["customer_ref"]: row["format"] for row in rows} == HANDED_OFF
    printed = file_text(out / "letters.pdf")
    issued = {code for pair in sandbox.issued() for code in (pair.invitation_code, pair.access_code)}
    for row in rows:
        assert row["name"] not in printed
        assert row["piece_id"].startswith(json.loads((out / "manifest.json").read_text())["job"]["id"] + "-H")
        text = (out / HANDOFF_DIR / f"{row['piece_id']}.txt").read_text(encoding="utf-8")
        assert row["name"] in text and "Your invitation to view your health record online" in text
        assert text.count(WITHHELD) == 2
        assert not any(code in text for code in issued)
    manifest_text = (out / "manifest.json").read_text()
    assert not any(row["piece_id"] in manifest_text for row in rows)


def test_manifest_and_summary_count_letters_per_format_and_language(mixed_job):
    summary, out = mixed_job
    job = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["job"]
    assert job["formats"] == {"large-print": 2, "standard": 4}
    assert job["languages"] == {"english": 3, "welsh": 1, "welsh_then_english": 2}
    assert job["handed_off"] == 2
    assert summary.by_format == {"braille": 1, "easy-read": 1, "large-print": 2, "standard": 4}
    assert summary.by_language == {"english": 5, "welsh": 1, "welsh_then_english": 2}
    assert summary.input_rows == summary.letters + summary.handed_off + summary.exceptions
    assert summary.letters == 6 and summary.handed_off == 2


def test_split_by_format_puts_large_print_in_its_own_file(sandbox, tmp_path):
    summary, out = run_mixed(sandbox, tmp_path, split_by=("format",))
    job_id = summary.job_id
    assert sorted(summary.files) == sorted([f"{job_id}-standard.pdf", f"{job_id}-large-print.pdf"])
    letters = letters_by_ref(out)
    assert {lt["file"] for lt in letters.values() if lt["format"] == "large-print"} == {f"{job_id}-large-print.pdf"}
    files = json.loads((out / "manifest.json").read_text())["job"]["files"]
    assert {f["name"]: f["format"] for f in files} == {
        f"{job_id}-standard.pdf": "standard",
        f"{job_id}-large-print.pdf": "large-print",
    }


def test_a_welsh_row_without_a_welsh_template_is_an_exception_never_an_english_letter(sandbox, tmp_path):
    template = tmp_path / "english-only"
    shutil.copytree(DEFAULT_TEMPLATE, template)
    (template / "letter.cy.html").unlink()
    summary, out = run_mixed(sandbox, tmp_path / "run", template=template)
    exceptions = {row["customer_ref"]: row for row in read_csv(out / "exceptions.csv")}
    for ref in ("DEMO-0004", "DEMO-0005", "DEMO-0006"):
        assert exceptions[ref]["reason"] == "no-welsh-template", ref
    assert summary.by_reason["no-welsh-template"] == 3
    assert not {"DEMO-0004", "DEMO-0005", "DEMO-0006"} & letters_by_ref(out).keys()


def test_job_file_sets_the_default_format_and_language_and_refuses_unknown_ones():
    letter = letter_settings({"letter": {"format": "Large Print", "language": "bilingual"}}, "https://joinpkb.com/")
    assert (letter.format, letter.language, letter.large_print_pt, letter.handoff_codes) == (
        "large-print",
        "welsh_then_english",
        18.0,
        False,
    )
    row = PatientRow(2, "", "5760678914", "", "A", "B", None, ("1 A Street", "LEEDS", "LS1 1AA"), "LS1 1AA")
    assert variant_of(row, letter) == Variant("large-print", "welsh_then_english")
    assert variant_of(dataclasses.replace(row, format="braille", language="english"), letter) == Variant(
        "braille", "english"
    )
    for table, problem in (
        ({"format": "semaphore"}, "format 'semaphore'"),
        ({"language": "klingon"}, "language 'klingon'"),
        ({"large_print_pt": 14}, "at least 16"),
        ({"handoff_codes": "yes"}, "true or false"),
    ):
        with pytest.raises(ConfigError, match=problem):
            letter_settings({"letter": table}, "https://joinpkb.com/")


def test_handoff_texts_carry_the_codes_only_when_the_job_allows_it(sandbox, tmp_path):
    settings = demo_settings(tmp_path / "job", "fhir")
    settings = dataclasses.replace(
        settings,
        patients=mixed_list(tmp_path),
        letter=dataclasses.replace(settings.letter, handoff_codes=True),
    )
    before = len(sandbox.issued())
    with no_weasyprint_warnings():
        run_job(settings, connection_to(sandbox), print_options=PrintOptions())
    issued = {pair.nhs_number: pair for pair in sandbox.issued()[before:]}
    numbers = {row["Customer ref"]: row["NHS number"] for row in read_csv(PATIENTS_CSV)}
    for row in read_csv(tmp_path / "job" / HANDOFF_DIR / "handoff.csv"):
        text = (tmp_path / "job" / HANDOFF_DIR / f"{row['piece_id']}.txt").read_text(encoding="utf-8")
        pair = issued[numbers[row["customer_ref"]].replace(" ", "")]
        assert pair.invitation_code in text and pair.access_code in text and WITHHELD not in text


def overlapping_words(page) -> list[tuple[str, str]]:
    """Pairs of words on a page whose boxes overlap: text printed over other text."""
    words = page.extract_words(use_text_flow=False, keep_blank_chars=False)
    clash = []
    for n, a in enumerate(words):
        for b in words[n + 1 :]:
            if min(a["x1"], b["x1"]) - max(a["x0"], b["x0"]) > 0.5 and min(a["bottom"], b["bottom"]) - max(
                a["top"], b["top"]
            ) > 0.5:
                clash.append((a["text"], b["text"]))
    return clash


def test_no_variant_prints_text_over_text(sandbox, tmp_path):
    """With the demo job's whole letterhead (its contact line too), at every size and in both languages."""
    folder = tmp_path / "letterhead"
    folder.mkdir()
    settings = demo_settings(folder / "job", "fhir")
    letter = dataclasses.replace(settings.letter, contact="Patient Records Team, 0191 000 0000")
    settings = dataclasses.replace(settings, patients=mixed_list(folder), letter=letter)
    with no_weasyprint_warnings():
        run_job(settings, connection_to(sandbox))
    out = folder / "job"
    for letter_entry in letters_by_ref(out).values():
        first = letter_entry["first_page"] - 1
        with pdfplumber.open(out / letter_entry["file"]) as pdf:
            pages = pdf.pages[first : first + letter_entry["page_count"]]
            for number, page in enumerate(pages, letter_entry["first_page"]):
                assert overlapping_words(page) == [], (letter_entry["format"], letter_entry["language"], number)
