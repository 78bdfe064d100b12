"""The read-back: print files of a real job, damaged as a renderer or a hand could damage them, are
caught naming the right piece and field (never a value); the same files undamaged read back clean."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pikepdf
import pypdfium2
import pytest
from click.testing import CliRunner
from conftest import PATIENTS_CSV, edited_default_template

from pkb_letters.check.print_check import Code, Report, check_files
from pkb_letters.check.readback import JournalCredentials
from pkb_letters.cli import main
from pkb_letters.job.journal import JOURNAL_NAME, Journal
from pkb_letters.job.manifest import MANIFEST_JSON
from pkb_letters.job.purge import purge_job
from pkb_letters.records import Stage
from pkb_letters.render.chunks import long_date

PRINT_FILE = "letters.pdf"
READBACK_CODES = {
    Code.CREDENTIAL_MISMATCH,
    Code.QR_MISMATCH,
    Code.EXPIRY_MISMATCH,
    Code.ADDRESS_MISMATCH,
    Code.NAME_MISMATCH,
    Code.FOREIGN_CREDENTIAL,
    Code.PIECE_MISMATCH,
}


@pytest.fixture
def job(printed_demo_job: Path, tmp_path: Path) -> Path:
    out = tmp_path / "job"
    out.mkdir()
    for name in (PRINT_FILE, MANIFEST_JSON, JOURNAL_NAME):
        shutil.copy2(printed_demo_job / name, out / name)
    return out


def letters(job: Path) -> list[dict]:
    return json.loads((job / MANIFEST_JSON).read_text())["letters"]


def codes_of(job: Path, piece: str) -> tuple[str, str, dt.date]:
    with Journal(job / JOURNAL_NAME, read_only=True) as journal:
        row = journal.db.execute(
            "SELECT invitation_code, access_code, codes_expire FROM rows WHERE piece_id = ?", (piece,)
        ).fetchone()
    return row[0], row[1], dt.date.fromisoformat(row[2])


def read_back(job: Path) -> Report:
    with Journal(job / JOURNAL_NAME, read_only=True) as journal:
        return check_files([job / PRINT_FILE], job / MANIFEST_JSON, credentials=JournalCredentials.of_journal(journal))


def readback_problems(report: Report) -> set[tuple[str, str]]:
    """(code, piece) of every read-back problem; every detail names its piece first."""
    return {(str(p.code), p.detail.split()[1].rstrip(":")) for p in report.problems if p.code in READBACK_CODES}


def assert_no_codes_in(report: Report, job: Path) -> None:
    text = report.text() + report.json()
    for entry in letters(job):
        invitation, access, _ = codes_of(job, entry["piece_id"])
        assert invitation not in text and access not in text


# -- editing a print file ---------------------------------------------------------------------


def edit_pdf(job: Path, change: Callable[[pikepdf.Pdf], None]) -> None:
    path = job / PRINT_FILE
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        change(pdf)
        pdf.save(path)


def shown_text(instruction: pikepdf.ContentStreamInstruction) -> str:
    """The text a TJ/Tj shows, for the DejaVu fonts the default template embeds: WeasyPrint keeps the
    font's glyph ids, and DejaVu's glyph for an ASCII character is its code less 29."""
    operand = instruction.operands[0]
    strings = (
        [bytes(item) for item in operand if isinstance(item, pikepdf.String)]
        if instruction.operator == pikepdf.Operator("TJ")
        else [bytes(operand)]
    )
    data = b"".join(strings)
    return "".join(chr(int.from_bytes(data[n : n + 2], "big") + 29) for n in range(0, len(data), 2))


def glyphs(text: str) -> bytes:
    return b"".join((ord(c) - 29).to_bytes(2, "big") for c in text)


def instructions(pdf: pikepdf.Pdf, index: int) -> list[pikepdf.ContentStreamInstruction]:
    return list(pikepdf.parse_content_stream(pdf.pages[index]))


def write(pdf: pikepdf.Pdf, index: int, found: list) -> None:
    pdf.pages[index].obj.Contents = pdf.make_stream(pikepdf.unparse_content_stream(found))


def text_showing(found: list, predicate: Callable[[str], bool]) -> int:
    hits = [n for n, i in enumerate(found) if str(i.operator) in ("TJ", "Tj") and predicate(shown_text(i))]
    assert len(hits) == 1, [shown_text(found[n]) for n in hits]
    return hits[0]


def replace_text(job: Path, page_index: int, old: str, new: str, font_of: str | None = None) -> None:
    """The text-showing instruction of the page that shows exactly `old` shows `new` instead: in the
    page's own content (a stamped letter's texts), or else in a Form XObject the page draws, copied
    for this page alone (texts the letters of one shape share). `font_of`: a text shown nearby in a
    font that has `new`'s glyphs (a subset font has only those its texts use)."""

    def change(pdf: pikepdf.Pdf) -> None:
        found = instructions(pdf, page_index)
        hits = [n for n, i in enumerate(found) if str(i.operator) in ("TJ", "Tj") and shown_text(i) == old]
        if hits:
            found[hits[0]] = shown(new)
            write(pdf, page_index, found)
            return
        forms = pdf.pages[page_index].Resources.XObject
        for n, instruction in enumerate(found):
            if str(instruction.operator) != "Do" or forms[instruction.operands[0]].get("/Subtype") != "/Form":
                continue
            form = forms[instruction.operands[0]]
            inside = list(pikepdf.parse_content_stream(form))
            hits = [k for k, i in enumerate(inside) if str(i.operator) in ("TJ", "Tj") and shown_text(i) == old]
            if not hits:
                continue
            inside[hits[0] : hits[0] + 1] = [*font_showing(inside, font_of), shown(new)]
            copy = pdf.make_stream(pikepdf.unparse_content_stream(inside))
            for key, value in form.items():
                if key not in ("/Length", "/Filter", "/DecodeParms"):
                    copy[key] = value
            forms[pikepdf.Name("/PkbDamaged")] = copy
            found[n] = pikepdf.ContentStreamInstruction([pikepdf.Name("/PkbDamaged")], pikepdf.Operator("Do"))
            write(pdf, page_index, found)
            return
        raise AssertionError(f"page {page_index + 1} shows no {old!r}")

    edit_pdf(job, change)


def font_showing(found: list, text: str | None) -> list[pikepdf.ContentStreamInstruction]:
    """The `Tf` in effect where `text` is shown; none for None."""
    if text is None:
        return []
    font = None
    for instruction in found:
        if str(instruction.operator) == "Tf":
            font = instruction
        elif str(instruction.operator) in ("TJ", "Tj") and shown_text(instruction) == text:
            return [font]
    raise AssertionError(f"no {text!r} shown")


def shown(text: str) -> pikepdf.ContentStreamInstruction:
    return pikepdf.ContentStreamInstruction([pikepdf.Array([pikepdf.String(glyphs(text))])], pikepdf.Operator("TJ"))


def page_text(job: Path, page_index: int) -> str:
    document = pypdfium2.PdfDocument(job / PRINT_FILE)
    try:
        return document[page_index].get_textpage().get_text_range()
    finally:
        document.close()


# -- the tests --------------------------------------------------------------------------------


def test_an_undamaged_job_reads_back_clean(job: Path) -> None:
    report = read_back(job)
    assert report.ok, report.text()
    assert report.read_back == len(letters(job)) and report.read_back_failed == []
    assert "every one matches its journal row" in report.text()


def test_two_letters_first_pages_swapped(job: Path) -> None:
    first, second = letters(job)[:2]

    def swap(pdf: pikepdf.Pdf) -> None:
        a, b = first["first_page"] - 1, second["first_page"] - 1
        page_a, page_b = pikepdf.Page(pdf.pages[a].obj), pikepdf.Page(pdf.pages[b].obj)
        pdf.pages[a], pdf.pages[b] = (
            pdf.pages.from_objgen(*page_b.obj.objgen),
            pdf.pages.from_objgen(*page_a.obj.objgen),
        )

    edit_pdf(job, swap)
    report = read_back(job)
    found = readback_problems(report)
    for piece in (first["piece_id"], second["piece_id"]):
        assert (Code.CREDENTIAL_MISMATCH, piece) in found
        assert (Code.FOREIGN_CREDENTIAL, piece) in found
        assert (Code.QR_MISMATCH, piece) in found
    assert {piece for _, piece in found} == {first["piece_id"], second["piece_id"]}
    assert report.read_back_failed == sorted([first["piece_id"], second["piece_id"]])
    assert_no_codes_in(report, job)


def test_a_greeting_showing_another_patients_name(job: Path) -> None:
    target, other = letters(job)[2], letters(job)[3]
    greeting_of = lambda entry: next(  # noqa: E731
        t for t in page_text(job, entry["first_page"] - 1).splitlines() if t.startswith("Dear ")
    )
    old, new = greeting_of(target).strip(), greeting_of(other).strip()
    assert old != new
    replace_text(job, target["first_page"] - 1, old, new)
    assert new in page_text(job, target["first_page"] - 1)
    report = read_back(job)
    assert readback_problems(report) == {(Code.NAME_MISMATCH, target["piece_id"])}, report.text()
    assert "greeting" in report.text()


def test_an_address_line_of_another_patient(job: Path) -> None:
    target, other = letters(job)[1], letters(job)[4]
    replace_text(job, target["first_page"] - 1, target["address_lines"][-1], other["address_lines"][-1])
    report = read_back(job)
    assert (Code.ADDRESS_MISMATCH, target["piece_id"]) in readback_problems(report)
    assert {piece for _, piece in readback_problems(report)} == {target["piece_id"]}


def test_a_qr_code_taken_from_another_letter(job: Path) -> None:
    target, other = letters(job)[0], letters(job)[5]

    def image_drawn(pdf: pikepdf.Pdf, index: int) -> tuple[int, list]:
        found = instructions(pdf, index)
        images = pdf.pages[index].Resources.XObject
        hits = [
            n
            for n, i in enumerate(found)
            if str(i.operator) == "Do" and images[i.operands[0]].get("/Subtype") == "/Image"
        ]
        assert len(hits) == 1
        return hits[0], found

    def take_qr(pdf: pikepdf.Pdf) -> None:
        n, theirs = image_drawn(pdf, other["first_page"] - 1)
        m, ours = image_drawn(pdf, target["first_page"] - 1)
        name = theirs[n].operands[0]
        pdf.pages[target["first_page"] - 1].Resources.XObject[name] = pdf.pages[
            other["first_page"] - 1
        ].Resources.XObject[name]
        ours[m] = pikepdf.ContentStreamInstruction([name], pikepdf.Operator("Do"))
        write(pdf, target["first_page"] - 1, ours)

    edit_pdf(job, take_qr)
    report = read_back(job)
    assert readback_problems(report) == {(Code.QR_MISMATCH, target["piece_id"])}, report.text()
    assert "does not open its own codes" in report.text()
    assert_no_codes_in(report, job)


def qr_drawn(pdf: pikepdf.Pdf, index: int) -> tuple[int, list]:
    """Where page `index`'s content draws its one image (the QR code), and the page's instructions."""
    found = instructions(pdf, index)
    images = pdf.pages[index].Resources.XObject
    hits = [
        n for n, i in enumerate(found) if str(i.operator) == "Do" and images[i.operands[0]].get("/Subtype") == "/Image"
    ]
    assert len(hits) == 1
    return hits[0], found


def draw_over_qr(job: Path, entry: dict, drawn: Callable[[pikepdf.Pdf], list]) -> None:
    """`drawn`'s instructions, in the QR image's own space (its unit square), drawn just after the QR code."""

    def change(pdf: pikepdf.Pdf) -> None:
        index = entry["first_page"] - 1
        n, found = qr_drawn(pdf, index)
        write(pdf, index, [*found[: n + 1], *drawn(pdf), *found[n + 1 :]])

    edit_pdf(job, change)


def test_the_qr_code_is_read_from_its_own_pixels_when_the_page_shows_just_them(job: Path) -> None:
    from pkb_letters.check.page_facts import PdfPages

    with PdfPages(job / PRINT_FILE) as pdf:
        for entry in letters(job):
            (image,) = pdf.square_images(entry["first_page"], 8, 80)
            assert image.pixels is not None  # the fast way: no rendering
    assert read_back(job).ok


def test_another_qr_code_drawn_over_the_letters_own_is_read_as_printed(job: Path) -> None:
    """Drawn by a Form XObject, the other code is not an image of the page's own: only the page as
    printed shows it, over the letter's own, whose pixels alone would read back clean."""
    target, other = letters(job)[2], letters(job)[6]

    def their_qr(pdf: pikepdf.Pdf) -> list:
        n, theirs = qr_drawn(pdf, other["first_page"] - 1)
        image = pdf.pages[other["first_page"] - 1].Resources.XObject[theirs[n].operands[0]]
        form = pdf.make_stream(b"/QR Do")
        form.Type, form.Subtype, form.BBox = pikepdf.Name.XObject, pikepdf.Name.Form, [0, 0, 1, 1]
        form.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(QR=image))
        pdf.pages[target["first_page"] - 1].Resources.XObject["/OverQR"] = form
        return [pikepdf.ContentStreamInstruction([pikepdf.Name("/OverQR")], pikepdf.Operator("Do"))]

    draw_over_qr(job, target, their_qr)
    report = read_back(job)
    assert readback_problems(report) == {(Code.QR_MISMATCH, target["piece_id"])}, report.text()
    assert "does not open its own codes" in report.text()


def test_a_qr_code_half_covered_is_read_as_printed(job: Path) -> None:
    target = letters(job)[4]

    def white_half(pdf: pikepdf.Pdf) -> list:
        return pikepdf.parse_content_stream(pdf.make_stream(b"q 1 g 0 0 1 0.5 re f Q"))

    draw_over_qr(job, target, white_half)
    report = read_back(job)
    assert readback_problems(report) == {(Code.QR_MISMATCH, target["piece_id"])}, report.text()
    assert "does not print the QR code" in report.text()


def test_an_expiry_one_day_off(job: Path) -> None:
    """The expiry is drawn in a subset of the bold font, which has no glyphs for other days: the day is
    drawn in the page's own font (which has every digit of an address), the rest in the bold one."""
    target = letters(job)[4]
    _, _, expires = codes_of(job, target["piece_id"])
    old, later = long_date(expires), long_date(expires + dt.timedelta(days=1))
    day, rest = later.split(" ", 1)
    assert old.split(" ", 1)[1] == rest

    def change(pdf: pikepdf.Pdf) -> None:
        index = target["first_page"] - 1
        page = instructions(pdf, index)
        page_font = font_showing(page, target["address_lines"][-1])[0]
        forms = pdf.pages[index].Resources.XObject
        n = next(k for k, i in enumerate(page) if str(i.operator) == "Do" and "/PkbStamp" in str(i.operands[0]))
        form = forms[page[n].operands[0]]
        inside = list(pikepdf.parse_content_stream(form))
        k = text_showing(inside, lambda text: text == old)
        bold = font_showing(inside, old)[0]
        own = pikepdf.ContentStreamInstruction(
            [pikepdf.Name("/PkbPageFont"), page_font.operands[1]], pikepdf.Operator("Tf")
        )
        inside[k : k + 1] = [own, shown(day), bold, shown(" " + rest)]
        copy = pdf.make_stream(pikepdf.unparse_content_stream(inside))
        for key in ("/Type", "/Subtype", "/BBox"):
            copy[key] = form[key]
        resources = pikepdf.Dictionary({key: value for key, value in form.Resources.items()})
        resources.Font = pikepdf.Dictionary({key: value for key, value in form.Resources.Font.items()})
        resources.Font[pikepdf.Name("/PkbPageFont")] = pdf.pages[index].Resources.Font[page_font.operands[0]]
        copy.Resources = resources
        forms[pikepdf.Name("/PkbDamaged")] = copy
        page[n] = pikepdf.ContentStreamInstruction([pikepdf.Name("/PkbDamaged")], pikepdf.Operator("Do"))
        write(pdf, index, page)

    edit_pdf(job, change)
    assert later in page_text(job, target["first_page"] - 1)
    report = read_back(job)
    assert readback_problems(report) == {(Code.EXPIRY_MISMATCH, target["piece_id"])}, report.text()


def test_an_access_code_with_one_character_changed(job: Path) -> None:
    target = letters(job)[6]
    invitation, access, _ = codes_of(job, target["piece_id"])
    changed = access[1] + access[1:] if access[0] != access[1] else access[2] + access[1:]

    def change(pdf: pikepdf.Pdf) -> None:
        index = target["first_page"] - 1
        found = instructions(pdf, index)
        n = text_showing(found, lambda text: text == access)
        array = pikepdf.Array(found[n].operands[0])
        first = next(k for k, item in enumerate(array) if isinstance(item, pikepdf.String) and len(bytes(item)))
        array[first] = pikepdf.String(glyphs(changed[0]))
        found[n] = pikepdf.ContentStreamInstruction([array], pikepdf.Operator("TJ"))
        write(pdf, index, found)

    edit_pdf(job, change)
    assert changed in page_text(job, target["first_page"] - 1).replace(" ", "")
    report = read_back(job)
    assert readback_problems(report) >= {(Code.CREDENTIAL_MISMATCH, target["piece_id"])}
    assert {piece for _, piece in readback_problems(report)} == {target["piece_id"]}
    assert "its letter does not print the access code issued to it" in report.text()
    assert "invitation code" not in report.text()
    assert changed not in report.text() and access not in report.text() and invitation not in report.text()


def test_a_page_of_another_letter_inserted(job: Path) -> None:
    target, other = letters(job)[2], letters(job)[6]

    def insert(pdf: pikepdf.Pdf) -> None:
        pdf.pages.insert(target["first_page"], pdf.pages[other["first_page"] - 1])

    edit_pdf(job, insert)
    report = read_back(job)
    found = readback_problems(report)
    assert (Code.FOREIGN_CREDENTIAL, target["piece_id"]) in found
    assert any(
        p.code == Code.FOREIGN_CREDENTIAL and f"of piece {other['piece_id']}" in p.detail for p in report.problems
    )


# -- the run, deliver and check --job ---------------------------------------------------------


def test_check_job_reads_back_a_finished_job(job: Path) -> None:
    result = CliRunner().invoke(main, ["check", "--job", str(job)])
    assert result.exit_code == 0, result.output
    assert f"credentials read back from {len(letters(job))} letter(s)" in result.output


def test_check_job_names_the_piece_whose_letter_does_not_read_back(job: Path) -> None:
    target = letters(job)[1]
    replace_text(job, target["first_page"] - 1, target["address_lines"][-1], "ZZ9 9ZZ")
    result = CliRunner().invoke(main, ["check", "--job", str(job), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["read_back"]["failed"] == [target["piece_id"]]


def test_check_job_after_purge_says_credentials_cannot_be_verified(job: Path, tmp_path: Path) -> None:
    kept = tmp_path / "kept-copy.pdf"
    shutil.copy2(job / PRINT_FILE, kept)
    purge_job(job, dt.date.today())
    gone = CliRunner().invoke(main, ["check", "--job", str(job)])
    assert gone.exit_code != 0 and "no longer holds letters.pdf" in gone.output
    result = CliRunner().invoke(main, ["check", "--job", str(job), str(kept)])
    assert result.exit_code == 0, result.output  # every other check still runs, and passes
    assert "credentials NOT verified" in result.output and "can no longer be verified" in result.output
    assert "by purge on" in result.output


def test_a_run_whose_letters_do_not_read_back_fails_and_cannot_be_delivered(sandbox, tmp_path: Path) -> None:
    """A template that greets patients by first name alone: every letter lacks its patient's surname
    outside the window, the run exits 3, and deliver refuses the job naming the pieces."""
    template = edited_default_template(
        tmp_path / "template",
        "Dear {% if patient.title %}{{ patient.title }} {{ patient.last_name }}{% else %}"
        "{{ patient.first_name }} {{ patient.last_name }}{% endif %},",
        "Dear {{ patient.first_name }},",
    )
    out = tmp_path / "job"
    run = CliRunner().invoke(
        main, ["run", str(PATIENTS_CSV), "--sandbox", "--template", str(template), "--out", str(out)]
    )
    assert run.exit_code == 3, run.output
    assert "name-mismatch" in run.output
    with Journal(out / JOURNAL_NAME, read_only=True) as journal:
        outcome = journal.job.readback()
    assert outcome is not None and not outcome["ok"]
    assert outcome["failed"] == sorted(entry["piece_id"] for entry in letters(out))
    drop = tmp_path / "drop"
    drop.mkdir()
    refused = CliRunner().invoke(main, ["deliver", str(out), "--to", str(drop)])
    assert refused.exit_code == 3, refused.output
    assert "failed its read-back" in refused.output and outcome["failed"][0] in refused.output
    assert list(drop.iterdir()) == []


def test_a_template_printing_no_codes_fails_its_trial_before_any_code_is_issued(sandbox, tmp_path: Path) -> None:
    template = edited_default_template(
        tmp_path / "template",
        '<tr><th scope="row">Invitation code</th><td class="code">{{ codes.invitation }}</td></tr>\n'
        '      <tr><th scope="row">Access code</th><td class="code">{{ codes.access }}</td></tr>',
        "",
    )
    issued = len(sandbox.issued())
    out = tmp_path / "job"
    run = CliRunner().invoke(
        main, ["run", str(PATIENTS_CSV), "--sandbox", "--template", str(template), "--out", str(out)]
    )
    assert run.exit_code != 0
    assert "does not print the invitation code and the access code" in run.output
    assert len(sandbox.issued()) == issued
    with Journal(out / JOURNAL_NAME, read_only=True) as journal:
        assert journal.db.execute("SELECT COUNT(*) FROM rows WHERE invitation_code IS NOT NULL").fetchone()[0] == 0


def test_a_template_printing_the_codes_spaced_reads_back(sandbox, tmp_path: Path) -> None:
    template = edited_default_template(
        tmp_path / "template",
        '<td class="code">{{ codes.access }}</td>',
        '<td class="code">{{ codes.access[:5] }} {{ codes.access[5:] }}</td>',
    )
    out = tmp_path / "job"
    run = CliRunner().invoke(
        main, ["run", str(PATIENTS_CSV), "--sandbox", "--template", str(template), "--out", str(out)]
    )
    assert run.exit_code == 0, run.output
    with Journal(out / JOURNAL_NAME, read_only=True) as journal:
        assert journal.job.readback() == {"ok": True, "failed": []}


def test_a_template_printing_no_qr_code_reads_back_without_one_and_one_that_does_must_print_it(
    sandbox, tmp_path: Path
) -> None:
    qr = '<img class="qr" src="{{ codes.qr_svg }}" alt="QR code that opens the joining page with your codes filled in">'
    template = edited_default_template(tmp_path / "template", qr, "")
    out = tmp_path / "job"
    run = CliRunner().invoke(
        main, ["run", str(PATIENTS_CSV), "--sandbox", "--template", str(template), "--out", str(out)]
    )
    assert run.exit_code == 0, run.output
    with Journal(out / JOURNAL_NAME, read_only=True) as journal:
        assert journal.job.template_prints_qr() is False
        assert journal.job.readback() == {"ok": True, "failed": []}
    # the same letters held to a template that prints the QR code: every letter lacks one
    with Journal(out / JOURNAL_NAME) as journal:
        journal.job.record_template_prints_qr(True)
    checked = CliRunner().invoke(main, ["check", "--job", str(out), "--json"])
    assert checked.exit_code == 1
    assert "its letter does not print the QR code issued to it" in checked.output


def _journal_of(letters: int) -> sqlite3.Connection:
    """Just the journal tables `JournalCredentials` reads, with `letters` placed letters."""
    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    db.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT)")
    db.execute(
        "CREATE TABLE rows (sequence INTEGER PRIMARY KEY, stage TEXT, piece_id TEXT, patient TEXT,"
        " invitation_code TEXT, access_code TEXT, codes_expire TEXT)"
    )
    patient = json.dumps({"title": "Ms", "first_name": "Ann", "last_name": "Lee", "address_lines": ["1 Road"]})
    db.executemany(
        "INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (n, Stage.PLACED, f"J-{n:06d}", patient, f"Inv{n:07d}", f"Acc{n:07d}", "2027-01-07")
            for n in range(1, letters + 1)
        ],
    )
    return db


@pytest.mark.parametrize("order", ["print", "sorted by the mail house"])
def test_each_letter_reads_back_as_its_own_row_in_any_order_with_few_queries(order: str) -> None:
    db = _journal_of(2000)
    sequences = list(range(1, 2001))
    if order != "print":
        random.Random(7).shuffle(sequences)
    credentials = JournalCredentials(db, "https://example.org/join/")
    queries: list[str] = []
    db.set_trace_callback(queries.append)
    for sequence in sequences:
        expected = credentials.expected({"sequence": sequence})
        assert expected is not None and expected.piece == f"J-{sequence:06d}"
        assert expected.invitation == f"Inv{sequence:07d}"
    reads = [q for q in queries if q.lstrip().upper().startswith("SELECT")]
    pages = [q for q in reads if "LIMIT" in q]
    # in print order, a page of 500 rows a query; out of it, a letter's own row, never pages read on to it
    assert len(reads) <= 5 if order == "print" else (len(reads) <= 2000 + 5 and len(pages) <= 40), len(pages)


def test_a_letter_is_judged_once_its_pages_are_read_so_what_the_check_holds_stays_flat(job: Path, monkeypatch) -> None:
    from pkb_letters.check import print_check

    held: list[int] = []
    take = print_check._FileCheck.take

    def taking(self, result) -> None:
        take(self, result)
        held.append(len(self.printed))

    monkeypatch.setattr(print_check._FileCheck, "take", taking)
    report = read_back(job)
    assert report.ok and report.read_back == len(letters(job))
    assert held and max(held) == 0  # every letter's pages came in one job: judged as it was taken
