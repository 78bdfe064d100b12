"""`pkb-letters check` catches a PDF broken in each way a print room would reject, built here."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import connection_to, demo_settings, no_weasyprint_warnings
from pdf_inspect import pages_read
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NameObject, NumberObject
from weasyprint import HTML

from pkb_letters.assemble import marks
from pkb_letters.assemble.marks import MarkKind
from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.check import print_check
from pkb_letters.check.print_check import Code, check_files
from pkb_letters.cli import main
from pkb_letters.envelope import Rect
from pkb_letters.job.pipeline import run_job
from pkb_letters.pdf.pypdf_internals import add_object

MM = 72 / 25.4


@pytest.fixture
def good(printed_demo_job) -> Path:
    return printed_demo_job


def copy_job(good: Path, tmp_path: Path) -> tuple[Path, Path]:
    shutil.copy(good / "letters.pdf", tmp_path / "letters.pdf")
    shutil.copy(good / "manifest.json", tmp_path / "manifest.json")
    return tmp_path / "letters.pdf", tmp_path / "manifest.json"


def rewrite(pdf: Path, change) -> None:
    writer = PdfWriter(clone_from=PdfReader(pdf))
    change(writer)
    with pdf.open("wb") as handle:
        writer.write(handle)


def draw_on(writer: PdfWriter, page: int, operators: str) -> None:
    stamp(writer, writer.pages[page - 1], operators.encode("latin-1"))


def stamp(writer: PdfWriter, page, operators: bytes) -> None:
    """Draw `operators` over a page held by a pypdf writer, in default user space whatever state its
    own content leaves."""
    before, after = DecodedStreamObject(), DecodedStreamObject()
    before.set_data(b"q\n")
    after.set_data(b"\nQ\n" + operators)
    contents = page.get("/Contents")
    existing = [] if contents is None else list(contents) if isinstance(contents, ArrayObject) else [contents]
    page[NameObject("/Contents")] = ArrayObject([add_object(writer, before), *existing, add_object(writer, after)])


def codes(report) -> set[Code]:
    return {p.code for p in report.problems}


def html_pdf(tmp_path: Path, body: str, page_css: str = "size: A4; margin: 20mm") -> Path:
    path = tmp_path / "customer.pdf"
    with no_weasyprint_warnings():
        style = f"<style>@page {{ {page_css} }} body {{ color: device-cmyk(0 0 0 1) }}</style>"
        HTML(string=style + body).write_pdf(path)
    return path


def test_the_good_job_passes(good):
    report = check_files([good / "letters.pdf"], good / "manifest.json")
    assert report.ok, report.text()
    assert report.pages == json.loads((good / "manifest.json").read_text())["job"]["pages"]


def test_not_a4(tmp_path):
    pdf = html_pdf(tmp_path, "<p>Hello</p>", "size: letter; margin: 20mm")
    problems = [p for p in check_files([pdf], layout=marks.DEFAULT_LAYOUTS[MarkKind.NONE]).problems]
    assert [(p.code, p.page) for p in problems if p.code is Code.NOT_A4] == [(Code.NOT_A4, 1)]


def test_font_not_embedded(good, tmp_path):
    pdf, manifest = copy_job(good, tmp_path)

    def add_helvetica(writer):
        page = writer.pages[0]
        font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                                 NameObject("/BaseFont"): NameObject("/Helvetica")})
        fonts = page["/Resources"].get_object()["/Font"].get_object()
        fonts[NameObject("/FHelv")] = add_object(writer, font)
        draw_on(writer, 1, "BT /FHelv 9 Tf 0 0 0 1 k 300 400 Td (Not embedded) Tj ET")

    rewrite(pdf, add_helvetica)
    report = check_files([pdf], manifest)
    problems = [p for p in report.problems if p.code is Code.FONT_NOT_EMBEDDED]
    assert problems[0].page == 1 and "Helvetica" in problems[0].detail


def test_rgb_black_text(tmp_path):
    path = tmp_path / "rgb.pdf"
    with no_weasyprint_warnings():
        HTML(string="<style>@page { size: A4; margin: 20mm }</style><p style='color: #000'>RGB</p>").write_pdf(path)
    report = check_files([path], layout=marks.DEFAULT_LAYOUTS[MarkKind.NONE])
    (problem,) = [p for p in report.problems if p.code is Code.NON_BLACK_TEXT]
    assert "RGB 0 0 0" in problem.detail


def test_text_outside_the_printable_area(tmp_path):
    pdf = html_pdf(tmp_path, "<p>Too close to the edge</p>", "size: A4; margin: 2mm")
    assert Code.OUTSIDE_PRINTABLE in codes(check_files([pdf], layout=marks.DEFAULT_LAYOUTS[MarkKind.NONE]))


def test_address_outside_the_window(good, tmp_path):
    pdf, manifest = copy_job(good, tmp_path)

    def shift_first_page(writer):  # the whole first page 15 mm lower, as a mis-set template would print it
        page = writer.pages[0]
        shift = DecodedStreamObject()
        shift.set_data(f"1 0 0 1 0 {-15 * MM:.2f} cm\n".encode())
        contents = page["/Contents"]
        existing = list(contents) if isinstance(contents, ArrayObject) else [contents]
        page[NameObject("/Contents")] = ArrayObject([add_object(writer, shift), *existing])

    rewrite(pdf, shift_first_page)
    report = check_files([pdf], manifest)
    assert [p.page for p in report.problems if p.code is Code.ADDRESS_NOT_IN_WINDOW][:1] == [1]


def test_a_customer_pdf_without_a_manifest_with_text_across_the_window_edge(tmp_path):
    pdf = html_pdf(tmp_path, "<p style='position: absolute; left: 0; top: 30mm'>Across the window edge</p>",
                   "size: A4; margin: 15mm")
    report = check_files([pdf], layout=marks.DEFAULT_LAYOUTS[MarkKind.NONE])
    assert Code.ADDRESS_NOT_IN_WINDOW in codes(report)


def test_page_count_disagrees_with_the_manifest(good, tmp_path):
    pdf, manifest = copy_job(good, tmp_path)

    def drop_last(writer):
        writer.remove_page(len(writer.pages) - 1)

    rewrite(pdf, drop_last)
    assert Code.PAGE_COUNT in codes(check_files([pdf], manifest))


def test_mark_missing(good, tmp_path):
    pdf, manifest = copy_job(good, tmp_path)
    zone = marks.clear_zone(marks.DEFAULT_LAYOUTS[MarkKind.DATAMATRIX], "x" * 34)
    white_out = (f"0 0 0 0 k {zone.left * MM:.2f} {(297 - zone.bottom) * MM:.2f} "
                 f"{zone.width * MM:.2f} {zone.height * MM:.2f} re f")
    rewrite(pdf, lambda writer: draw_on(writer, 3, white_out))
    report = check_files([pdf], manifest)
    assert [(p.code, p.page) for p in report.problems] == [(Code.MARK_MISSING, 3)]


def test_mark_disagrees_with_the_manifest(good, tmp_path):
    pdf, manifest = copy_job(good, tmp_path)
    data = json.loads(manifest.read_text())
    first, second = data["letters"][0], data["letters"][1]
    first["marks"], second["marks"] = second["marks"], first["marks"]  # the manifest's pieces swapped
    manifest.write_text(json.dumps(data))
    report = check_files([pdf], manifest)
    mismatches = [p.page for p in report.problems if p.code is Code.MARK_MISMATCH]
    assert mismatches == [first["first_page"], second["first_page"]]


def test_something_printed_on_a_blank_back(sandbox, tmp_path):
    out = tmp_path / "job"
    with no_weasyprint_warnings():
        run_job(demo_settings(out, "fhir"), connection_to(sandbox), print_options=PrintOptions(duplex=True))
    data = json.loads((out / "manifest.json").read_text())
    data["job"]["print"]["duplex"] = True
    # make the first letter look one page long, so its second page is "the blank back"
    data["letters"][0]["page_count"] = 1
    (out / "manifest.json").write_text(json.dumps(data))
    report = check_files([out / "letters.pdf"], out / "manifest.json")
    assert (Code.BLANK_NOT_BLANK, 2) in {(p.code, p.page) for p in report.problems}


def test_cli_check_reports_json_and_exit_codes(good, tmp_path):
    runner = CliRunner()
    for workers in ([], ["--workers", "2"]):
        ok = runner.invoke(main, ["check", str(good / "letters.pdf"), "--manifest", str(good / "manifest.json"),
                                  *workers])
        assert ok.exit_code == 0, ok.output
        assert "no problems" in ok.output
    pdf = html_pdf(tmp_path, "<p style='color: red'>Red</p>", "size: A5; margin: 20mm")
    bad = runner.invoke(main, ["check", str(pdf), "--json", "--marks", "none"])
    assert bad.exit_code == 1
    report = json.loads(bad.output)
    assert report["ok"] is False
    assert {p["code"] for p in report["problems"]} >= {"not-a4", "non-black-text"}
    assert all(p["file"] == "customer.pdf" for p in report["problems"])


def renamed_copy(good: Path, tmp_path: Path, name: str = "PKB-upload-0001.pdf") -> tuple[Path, Path]:
    """The print file as SFTP automation leaves it: under another name, beside its manifest."""
    pdf, manifest = copy_job(good, tmp_path)
    return pdf.rename(pdf.with_name(name)), manifest


def test_cli_check_matches_a_renamed_print_file_to_its_manifest_entry_by_sha256(good, tmp_path):
    pdf, manifest = renamed_copy(good, tmp_path)
    result = CliRunner().invoke(main, ["check", str(pdf), "--manifest", str(manifest)])
    assert result.exit_code == 0, result.output
    assert "no problems" in result.output
    assert f"{pdf.name}: checked as the manifest's letters.pdf, whose SHA-256 it has" in result.output
    report = check_files([pdf], manifest)
    assert report.matched == {pdf.name: "letters.pdf"}
    # checked against that entry: a manifest whose pieces disagree with the file is caught through the new name
    data = json.loads(manifest.read_text())
    data["letters"][0]["marks"], data["letters"][1]["marks"] = data["letters"][1]["marks"], data["letters"][0]["marks"]
    manifest.write_text(json.dumps(data))
    assert Code.MARK_MISMATCH in codes(check_files([pdf], manifest))


def test_cli_check_reports_a_renamed_print_file_missing_a_page(good, tmp_path):
    pdf, manifest = renamed_copy(good, tmp_path)
    rewrite(pdf, lambda writer: writer.remove_page(len(writer.pages) - 1))
    result = CliRunner().invoke(main, ["check", str(pdf), "--manifest", str(manifest), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert report["matched"] == {}
    unlisted = [p for p in report["problems"] if p["code"] == "not-in-manifest"]
    assert [(p["file"], p["page"]) for p in unlisted] == [(pdf.name, None)]
    assert "not listed in the manifest" in unlisted[0]["detail"]


def test_cli_run_takes_the_print_options(tmp_path):
    from conftest import PATIENTS_CSV

    out = tmp_path / "job"
    with no_weasyprint_warnings():
        result = CliRunner().invoke(main, ["run", str(PATIENTS_CSV), "--out", str(out), "--sandbox",
                                           "--envelope", "dl", "--simplex", "--marks", "none", "--sort", "postcode",
                                           "--postage-class", "first", "--split-by", "class"],
                                    catch_exceptions=False)
    assert result.exit_code == 0, result.output
    job = json.loads((out / "manifest.json").read_text())["job"]
    assert job["print"] == {"envelope": "dl", "duplex": False, "pdf_variant": "pdf/x-4", "marks": "none",
                            "sort": "postcode", "split_by": ["class"], "max_letters_per_file": None}
    assert [f["name"] for f in job["files"]] == [f"{job['id']}-first.pdf"]
    assert f"{job['pages']} pages, {job['sheets']} sheets in {job['id']}-first.pdf" in result.output


# --- how check reads pages: fast readers, same answers ------------------------------------------


def test_words_and_positions_agree_with_an_independent_reader(good):
    from pdf_inspect import page_words

    from pkb_letters.check.page_facts import PdfPages

    expected = page_words(good / "letters.pdf")  # pdfplumber, in pure Python
    with PdfPages(good / "letters.pdf") as pdf:
        assert len(pdf) == len(expected)
        for number, words in enumerate(expected, 1):
            found = pdf.words(number)
            assert [w.text for w in found] == [w.text for w in words]
            for mine, theirs in zip(found, words, strict=True):
                assert abs(mine.rect.left - theirs.left) < 0.1 and abs(mine.rect.right - theirs.right) < 0.1
                assert abs(mine.rect.top - theirs.top) < 0.1 and abs(mine.rect.bottom - theirs.bottom) < 0.1


def same_reading(part, whole, number: int) -> None:
    """Both readers find the same text, and draw the same pixels, on page `number`."""
    assert part.words(number) == whole.words(number)
    assert (part.has_text(number), part.is_empty(number)) == (whole.has_text(number), whole.is_empty(number))
    everything = Rect(0, 0, 1000, 1000)
    assert part.render_mm(number, everything, 36).tobytes() == whole.render_mm(number, everything, 36).tobytes()


def test_a_reader_of_some_pages_reads_them_as_the_reader_of_the_whole_file_does(good):
    from pkb_letters.check.page_facts import PdfPages

    path = good / "letters.pdf"
    with PdfPages(path) as whole:
        numbers = range(2, len(whole))  # the middle: PDFium is given neither the first page nor the last
        with PdfPages(path, numbers) as part:
            assert pages_read(part) == len(numbers) < pages_read(whole)
            for number in numbers:
                same_reading(part, whole, number)
            with pytest.raises(IndexError):
                part.words(1)


def test_a_page_read_alone_keeps_what_it_inherits_from_the_page_tree(tmp_path):
    """Page size, turn and fonts set on a /Pages node, not on the page, are taken along with it."""
    import pikepdf

    from pkb_letters.check.page_facts import PdfPages

    path = tmp_path / "inherits.pdf"
    with pikepdf.new() as pdf:
        font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                    BaseFont=pikepdf.Name.Helvetica))
        for n in range(3):
            text = f"0 0 0 1 k BT /F1 14 Tf {40 + 60 * n} 500 Td (Page {n + 1} of three) Tj ET 0 0 m 90 90 l S"
            page = pikepdf.Dictionary(Type=pikepdf.Name.Page, Contents=pdf.make_stream(text.encode()))
            pdf.pages.append(pikepdf.Page(pdf.make_indirect(page)))
        pages = pdf.Root.Pages
        pages.MediaBox = pikepdf.Array([0, 0, 420, 595])
        pages.Rotate = 90
        pages.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        pdf.save(path)
    with pikepdf.open(path, inherit_page_attributes=False) as pdf:
        assert not {"/MediaBox", "/Rotate", "/Resources"} & set(pdf.pages[1].obj.keys())
    with PdfPages(path) as whole, PdfPages(path, range(2, 3)) as part:
        assert pages_read(part) == 1
        assert [w.text for w in part.words(2)] == ["Page", "2", "of", "three"]
        same_reading(part, whole, 2)


def test_a_page_read_alone_hides_the_layers_the_file_hides(tmp_path):
    import pikepdf

    from pkb_letters.check.page_facts import PdfPages

    path = tmp_path / "layers.pdf"
    with pikepdf.new() as pdf:
        hidden = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.OCG, Name=pikepdf.String("draft")))
        pdf.Root.OCProperties = pikepdf.Dictionary(OCGs=[hidden], D=pikepdf.Dictionary(OFF=[hidden]))
        for _ in range(2):
            pdf.add_blank_page(page_size=(595, 842))
            page = pdf.pages[-1]
            page.Resources = pikepdf.Dictionary(Properties=pikepdf.Dictionary(Draft=hidden))
            page.Contents = pdf.make_stream(b"/OC /Draft BDC 0 0 0 1 k 100 100 300 300 re f EMC")
        pdf.save(path)
    with PdfPages(path) as whole, PdfPages(path, range(2, 3)) as part:
        assert pages_read(part) == 1
        everything = Rect(0, 0, 1000, 1000)
        assert part.render_mm(2, everything, 36).getextrema() == (255, 255)  # nothing drawn: the layer is off
        same_reading(part, whole, 2)


def first_font(writer: PdfWriter, page: int = 1) -> str:
    return next(iter(writer.pages[page - 1]["/Resources"].get_object()["/Font"].get_object()))


def add_form(writer: PdfWriter, page: int, name: str, operators: str) -> None:
    """A Form XObject drawing `operators` with the page's own fonts, as /name on the page."""
    resources = writer.pages[page - 1]["/Resources"].get_object()
    form = DecodedStreamObject()
    form.set_data(operators.encode("latin-1"))
    form.update({NameObject("/Type"): NameObject("/XObject"), NameObject("/Subtype"): NameObject("/Form"),
                 NameObject("/BBox"): ArrayObject([NumberObject(0), NumberObject(0), NumberObject(595),
                                                   NumberObject(842)]),
                 NameObject("/Resources"): DictionaryObject({NameObject("/Font"): resources["/Font"]})})
    xobjects = resources.get("/XObject")
    if xobjects is None:
        xobjects = resources[NameObject("/XObject")] = DictionaryObject()
    xobjects.get_object()[NameObject(name)] = add_object(writer, form)


@pytest.mark.parametrize(("operators", "colours"), [
    ("0 0 0 1 k q 1 0 0 rg Q {text}", set()),  # the red is undone by Q before the text
    ("0 0 0 1 k q 1 0 0 rg {text} Q", {"RGB 1 0 0"}),
    ("{text}", {"the default (DeviceGray) colour"}),
    ("/DeviceCMYK cs {text}", set()),  # a CMYK space starts at 0 0 0 1
    ("/DeviceCMYK cs 0.1 0 0 1 scn {text}", {"CMYK 0.1 0 0 1"}),
    ("0 0 0 1 k /FmBlue Do", {"RGB 0 0 1"}),  # text inside a form
    ("0 0 1 rg q 0 0 0 1 k /FmInherit Do Q", set()),  # a form's text takes the colour it is drawn in
    ("0 0 1 rg /FmInherit Do", {"RGB 0 0 1"}),
], ids=["restored", "saved", "default", "cmyk-space", "rich-black", "form", "form-inherits-k", "form-inherits-rgb"])
def test_the_colour_of_text_is_followed_through_saved_states_and_forms(good, tmp_path, operators, colours):
    pdf, manifest = copy_job(good, tmp_path)

    def draw(writer):
        font = first_font(writer)
        text = f"BT {font} 9 Tf 300 420 Td <0001> Tj ET"
        add_form(writer, 1, "/FmBlue", f"BT {font} 9 Tf 0 0 1 rg 300 440 Td <0001> Tj ET")
        add_form(writer, 1, "/FmInherit", f"BT {font} 9 Tf 300 440 Td <0001> Tj ET")
        draw_on(writer, 1, operators.format(text=text))

    rewrite(pdf, draw)
    report = check_files([pdf], manifest)
    found = [p for p in report.problems if p.code is Code.NON_BLACK_TEXT]
    if not colours:
        assert not found, report.text()
    else:
        (problem,) = found
        assert problem.page == 1
        assert problem.detail.startswith(f"text in {', '.join(sorted(colours))};")


def test_an_empty_back_passes_and_a_mark_on_it_is_caught(good, tmp_path):
    pdf, manifest = copy_job(good, tmp_path)
    data = json.loads(manifest.read_text())
    data["letters"][0]["page_count"] = 1  # the first letter's second page becomes its blank back
    manifest.write_text(json.dumps(data))

    def empty_page_two(writer):
        writer.pages[1][NameObject("/Contents")] = ArrayObject()

    rewrite(pdf, empty_page_two)
    assert check_files([pdf], manifest).ok
    layout = marks.DEFAULT_LAYOUTS[MarkKind.DATAMATRIX]
    rewrite(pdf, lambda writer: stamp(writer, writer.pages[1], marks.draw(layout, data["letters"][0]["marks"][0])))
    report = check_files([pdf], manifest)
    assert [(p.code, p.page) for p in report.problems] == [(Code.BLANK_NOT_BLANK, 2)]


def test_our_file_passes_without_its_manifest(good):
    """Marks decoded on every page find where each letter starts, and its address is in the window."""
    report = check_files([good / "letters.pdf"])
    assert report.ok, report.text()


def test_several_processes_give_the_same_report_in_the_same_order(good, tmp_path, monkeypatch):
    pdf, manifest = copy_job(good, tmp_path)
    data = json.loads(manifest.read_text())
    first, second = data["letters"][0], data["letters"][1]
    first["marks"], second["marks"] = second["marks"], first["marks"]
    manifest.write_text(json.dumps(data))
    zone = marks.clear_zone(marks.DEFAULT_LAYOUTS[MarkKind.DATAMATRIX], "x" * 34)
    white_out = (f"0 0 0 0 k {zone.left * MM:.2f} {(297 - zone.bottom) * MM:.2f} "
                 f"{zone.width * MM:.2f} {zone.height * MM:.2f} re f")

    def break_pages(writer):
        draw_on(writer, data["letters"][-1]["first_page"], white_out)
        draw_on(writer, 3, f"1 0 0 rg BT {first_font(writer, 3)} 9 Tf 300 400 Td <0001> Tj ET")  # red text
        shift = DecodedStreamObject()
        shift.set_data(f"1 0 0 1 {-14 * MM:.2f} 0 cm\n".encode())  # page 4 printed 14 mm too far left
        page = writer.pages[3]
        contents = page["/Contents"]
        existing = list(contents) if isinstance(contents, ArrayObject) else [page.raw_get("/Contents")]
        page[NameObject("/Contents")] = ArrayObject([add_object(writer, shift), *existing])

    rewrite(pdf, break_pages)
    one = check_files([pdf, pdf], manifest)
    assert {p.code for p in one.problems} >= {Code.MARK_MISMATCH, Code.MARK_MISSING, Code.NON_BLACK_TEXT,
                                              Code.OUTSIDE_PRINTABLE}
    jobs = []
    run = print_check._run
    monkeypatch.setattr(print_check, "_run", lambda batch, workers: jobs.append(len(batch)) or run(batch, workers))
    monkeypatch.setattr(print_check, "_MIN_PAGES_PER_JOB", 3)  # so that this small job is shared out,
    monkeypatch.setattr(print_check, "_MAX_PAGES_PER_JOB", 5)  # each file in several parts
    many = check_files([pdf, pdf], manifest, workers=2)
    assert jobs == [2 * math.ceil(one.pages / 2 / 5)]
    assert many.as_dict() == one.as_dict()


def test_a_manifest_that_disagrees_with_the_file_gets_each_problem_in_the_report_s_order(good, tmp_path, monkeypatch):
    """Letters out of page order, one beyond the file's end, a padding page that is not, marks swapped:
    the manifest is read a letter at a time and the pages checked a few at a time, and the report is
    the one a single pass over everything gives."""
    pdf, manifest = copy_job(good, tmp_path)
    data = json.loads(manifest.read_text())
    letters = data["letters"]
    pieces = [entry["piece_id"] for entry in letters]
    payloads = [entry["marks"][0] for entry in letters]
    letters[1]["page_count"] = 1  # its second page becomes the blank back of its sheet
    letters[3]["marks"], letters[4]["marks"] = letters[4]["marks"], letters[3]["marks"]
    letters[5]["marks"] = letters[6]["marks"]
    letters.append(letters.pop(5))  # pages 11-12 listed last: met after pages 13-16 were handed out
    beyond = {**letters[6], "first_page": 17, "piece_id": pieces[7] + "X"}
    letters.insert(7, beyond)
    data["job"]["files"][0]["pages"] = 18
    manifest.write_text(json.dumps(data))
    expected = [
        (None, Code.PAGE_COUNT, "the file has 16 pages; the manifest says 18"),
        (4, Code.BLANK_NOT_BLANK, f"the blank back of piece {pieces[1]} has something on it"),
        (7, Code.MARK_MISMATCH, f"the mark reads {payloads[3]!r}; the manifest says {payloads[4]!r}"),
        (9, Code.MARK_MISMATCH, f"the mark reads {payloads[4]!r}; the manifest says {payloads[3]!r}"),
        (13, Code.PAGE_COUNT, f"piece {pieces[6]} starts on page 13; after the letter before it, it should start "
                              "on page 11"),
        (None, Code.PAGE_COUNT, f"piece {pieces[7]}X needs pages 17-18; the file has 16"),
        (11, Code.PAGE_COUNT, f"piece {pieces[5]} starts on page 11; after the letter before it, it should start "
                              "on page 19"),
        (11, Code.MARK_MISMATCH, f"the mark reads {payloads[5]!r}; the manifest says {payloads[6]!r}"),
        (None, Code.PAGE_COUNT, "the manifest's letters fill 12 pages; the file has 16"),
    ]
    whole = check_files([pdf], manifest)
    assert [(p.page, p.code, p.detail) for p in whole.problems] == expected
    monkeypatch.setattr(print_check, "_MAX_PAGES_PER_JOB", 4)  # four jobs: the late letter's pages already checked
    assert check_files([pdf], manifest).as_dict() == whole.as_dict()


@pytest.mark.parametrize(("count", "lie"), [
    (b"/Count 64", b"/Count 10"),  # a node deep down: pages 11-64 under it would never be read
    (b"/Count 200", b"/Count 100"),  # the root's only kid: the file would look half as long
    (b"/Count 200", b"/Count 300"),  # the same, twice as long
])
def test_a_page_tree_whose_counts_lie_fails_the_check(tmp_path, count, lie):
    """Printers (like qpdf and PDFium) walk the page tree's /Kids; the check finds pages by /Count.
    Where the two disagree, pages may be printed that were never checked: the file is not printable."""
    from pkb_letters.pdf import writer as pdf_writer

    path = tmp_path / "pages.pdf"
    with path.open("wb") as handle:
        writer = pdf_writer.StreamingPdfWriter(handle)
        for _ in range(200):
            writer.add_blank_page(210 * MM, 297 * MM)
        writer.close({}, {})
    none = marks.DEFAULT_LAYOUTS[MarkKind.NONE]
    assert Code.UNREADABLE not in codes(check_files([path], layout=none))
    data = path.read_bytes()
    path.write_bytes(data.replace(count, lie, 1))  # as long as before: every offset stays right
    report = check_files([path], layout=none)
    assert any(p.code is Code.UNREADABLE and p.page is None and "page tree node" in p.detail for p in report.problems)
