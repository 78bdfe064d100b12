"""Pages of our own print files, read an object at a time, read as qpdf's reading of the whole file does.

`pdf.lazy.LazyPdf` reads a file of our print files' shape (one classic cross-reference table, one
trailer without /Prev) by seeking to each object's entry; any other file, or one whose table is
wrong, is left to qpdf, and reads as it always has. Only a file of many objects is read so
(`page_facts.LAZY_FROM_OBJECTS`): here, every file of that shape is, unless a test says otherwise.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pikepdf
import pypdfium2
import pytest
from pypdf import PdfWriter
from pypdf.generic import ArrayObject, FloatObject, NameObject, NumberObject
from test_pdf_excerpt import add_note_and_link
from test_pdf_writer import blank_pages, width

from pkb_letters.assemble import marks
from pkb_letters.assemble.marks import MarkKind
from pkb_letters.check import page_facts, print_check
from pkb_letters.check.page_facts import MM_PER_POINT, PdfPages
from pkb_letters.check.print_check import check_files
from pkb_letters.envelope import Rect
from pkb_letters.pdf import writer as pdf_writer
from pkb_letters.pdf.lazy import LazyPdf, NotLazilyReadable
from pkb_letters.sandbox.synthetic import write_synthetic_print_job

NO_MARKS = marks.DEFAULT_LAYOUTS[MarkKind.NONE]


@pytest.fixture(autouse=True)
def _every_file_of_our_shape_read_lazily(monkeypatch):
    monkeypatch.setattr(page_facts, "LAZY_FROM_OBJECTS", 0)


@pytest.fixture
def good(printed_demo_job) -> Path:
    """A real job's print file (fonts, shared layout forms, QR codes, marks, an output intent) and manifest."""
    return printed_demo_job


@contextmanager
def qpdf_only():
    """The check as it was: every file opened whole by qpdf."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(page_facts, "_cut_lazily", lambda path, pages: None)
        patch.setattr(print_check, "lazy_page_count", lambda path: None)
        yield


def both_cuts(path: Path, pages: range):
    lazily = page_facts._cut_lazily(path, pages)
    assert lazily is not None, "the file was not read an object at a time"
    with qpdf_only():
        whole = page_facts._cut_excerpt(path, pages)
    return lazily, whole


def canonical(obj, seen: dict) -> object:
    """What pikepdf reads, as plain values; an indirect object met again is named by when it was first met,
    so that two excerpts whose objects are numbered differently compare equal when they read the same."""
    if isinstance(obj, pikepdf.Object) and obj.is_indirect:
        if obj.objgen in seen:
            return ("object", seen[obj.objgen])
        seen[obj.objgen] = len(seen)
    if isinstance(obj, pikepdf.Stream):
        head = obj.stream_dict
        return {"stream": {key: canonical(head[key], seen) for key in sorted(head.keys()) if key != "/Length"},
                "data": obj.read_raw_bytes()}
    if isinstance(obj, pikepdf.Dictionary):
        return {key: canonical(obj[key], seen) for key in sorted(obj.keys())}
    if isinstance(obj, pikepdf.Array):
        return [canonical(item, seen) for item in obj]
    if isinstance(obj, pikepdf.Name):
        return ("name", str(obj))
    if isinstance(obj, pikepdf.String):
        return ("string", bytes(obj))
    return obj  # a number (a real as a Decimal: equal whatever digits write it), a boolean, None


def assert_read_alike(lazily: bytes, whole: bytes) -> None:
    """Both excerpts hold the same objects for qpdf, and PDFium finds the same text and pixels on every page."""
    with pikepdf.open(io.BytesIO(lazily)) as one, pikepdf.open(io.BytesIO(whole)) as other:
        assert canonical(one.Root, {}) == canonical(other.Root, {})
        assert len(one.pages) == len(other.pages)
    one, other = pypdfium2.PdfDocument(lazily), pypdfium2.PdfDocument(whole)
    try:
        assert len(one) == len(other)
        for index in range(len(one)):
            assert _page_reading(one, index) == _page_reading(other, index)
    finally:
        one.close()
        other.close()


def _page_reading(document: pypdfium2.PdfDocument, index: int) -> tuple[str, bytes]:
    page = document[index]
    textpage = page.get_textpage()
    try:
        return textpage.get_text_range(), page.render(scale=0.5).to_pil().tobytes()
    finally:
        textpage.close()
        page.close()


# --- the same reading as qpdf's ------------------------------------------------------------------


def test_real_pages_read_an_object_at_a_time_read_as_qpdf_reads_them(good):
    path = good / "letters.pdf"
    with PdfPages(path) as whole:
        count = len(whole)
    (data, found, disagreements), (expected, expected_count, expected_disagreements) = both_cuts(path, range(2, count))
    assert (found, disagreements) == (expected_count, expected_disagreements) == (count, {})
    assert b"/OutputIntents" not in data  # the catalog's other entries stay behind, as before
    assert_read_alike(data, expected)


def test_a_synthetic_print_job_s_pages_read_alike(tmp_path):
    pdf, _ = write_synthetic_print_job(tmp_path, 300)
    (data, count, _), (expected, _, _) = both_cuts(pdf, range(120, 260))
    assert count == 300
    assert_read_alike(data, expected)


def test_pages_across_the_page_tree_s_edges_are_found_where_qpdf_finds_them(tmp_path):
    count = pdf_writer._FANOUT**pdf_writer._LEVELS + 70
    path = tmp_path / "pages.pdf"
    path.write_bytes(blank_pages(count))
    numbers = range(count - 140, count + 1)  # across the edge of the root's first kid
    (data, found, _), (expected, _, _) = both_cuts(path, numbers)
    assert found == count
    assert_read_alike(data, expected)
    with PdfPages(path, numbers) as pages:
        assert [round(pages.size_mm(n)[0] / MM_PER_POINT, 3) for n in numbers] == [width(n - 1) for n in numbers]


def test_annotations_links_inherited_attributes_and_layers_come_along_alike(tmp_path):
    """A file qpdf wrote with one classic table is read an object at a time too: a note whose text looks
    like a reference, a link to a page left out, attributes on the page tree node, a hidden layer."""
    path = tmp_path / "annotated.pdf"
    with pikepdf.new() as pdf:
        hidden = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.OCG, Name=pikepdf.String("draft")))
        pdf.Root.OCProperties = pikepdf.Dictionary(OCGs=[hidden], D=pikepdf.Dictionary(OFF=[hidden]))
        font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                    BaseFont=pikepdf.Name.Helvetica))
        for n in range(3):
            text = (f"0 0 0 1 k BT /F1 14 Tf {40 + 60 * n} 500 Td (Page {n + 1} \\(1 0 R\\)) Tj ET "
                    "/OC /Draft BDC 100 100 300 300 re f EMC")
            page = pikepdf.Dictionary(Type=pikepdf.Name.Page, Contents=pdf.make_stream(text.encode()),
                                      PkbNumbers=[Decimal("123456.123456"), Decimal("0.000012345678"), -1])
            pdf.pages.append(pikepdf.Page(pdf.make_indirect(page)))
        pages = pdf.Root.Pages
        pages.MediaBox = pikepdf.Array([0, 0, 420.5, Decimal("595.123456789")])  # pypdf would write 595.123457
        pages.Rotate = 90
        pages.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font),
                                             Properties=pikepdf.Dictionary(Draft=hidden))
        add_note_and_link(pdf, "see 1 0 R (and 4 0 R) \u00e9")
        pdf.save(path)
    (data, _, _), (expected, _, _) = both_cuts(path, range(2, 4))
    assert_read_alike(data, expected)
    with pikepdf.open(io.BytesIO(data)) as cut:
        page = cut.pages[0]
        assert int(page.Rotate) == 90 and "/Font" in page.Resources  # inherited, set on the page
        note, link = page.Annots
        assert str(note.Contents) == "see 1 0 R (and 4 0 R) \u00e9"
        assert note.P.objgen == page.obj.objgen
        assert link.Dest[0] is None  # the first page is not in the excerpt
        assert "/OCProperties" in cut.Root


def test_a_stream_whose_length_is_an_object_of_its_own_is_read_whole(tmp_path):
    drawing = b"0 0 0 1 k 100 100 300 300 re f " * 40
    path = tmp_path / "length.pdf"
    with path.open("wb") as handle:
        writer = pdf_writer.StreamingPdfWriter(handle)
        length, stream = writer.allocate(), writer.allocate()
        writer.write_serialised(stream, b"<< /Length %d 0 R >>\nstream\n%s\nendstream" % (length, drawing))
        writer.write_serialised(length, b"%d" % len(drawing))
        for _ in range(2):
            writer.add_serialised_page(b"/Type /Page /MediaBox [ 0 0 595.275591 841.889764 ] /Resources << >>",
                                       [stream], [], [])
        writer.close({}, {})
    (data, _, _), (expected, _, _) = both_cuts(path, range(2, 3))
    assert_read_alike(data, expected)
    with PdfPages(path, range(2, 3)) as pages:
        assert not pages.is_empty(2)
        assert pages.render_mm(2, Rect(40, 200, 10, 10), 36).getextrema()[1] < 128  # inside the square


# --- page trees whose /Count lies --------------------------------------------------------------


@pytest.mark.parametrize(("count", "lie"), [
    (b"/Count 64", b"/Count 10"),  # a node deep down: pages 11-64 under it are never reached
    (b"/Count 64", b"/Count 0 "),  # no page number leads into it
    (b"/Count 200", b"/Count 100"),  # the root's only kid: the file looks half as long
    (b"/Count 200", b"/Count 300"),  # the same, twice as long
])
def test_wrong_counts_are_found_alike(tmp_path, count, lie):
    path = tmp_path / "pages.pdf"
    data = blank_pages(200)
    path.write_bytes(data.replace(count, lie, 1))  # as long as before: every offset stays right
    (cut, found, disagreements), (expected, expected_count, expected_disagreements) = both_cuts(path, range(1, 40))
    assert disagreements and (found, disagreements) == (expected_count, expected_disagreements)
    assert_read_alike(cut, expected)
    opened_whole = print_check._page_count(path)  # PdfPages: qpdf, whatever the file
    assert print_check._lazy_page_count(path) == opened_whole
    assert check_files([path], layout=NO_MARKS).as_dict() == qpdf_report(path)


def qpdf_report(path: Path) -> dict:
    with qpdf_only():
        return check_files([path], layout=NO_MARKS).as_dict()


# --- files of another shape: qpdf reads them, as it always has ---------------------------------


def with_object_streams(path: Path) -> None:
    with pikepdf.open(io.BytesIO(blank_pages(5))) as pdf:
        pdf.save(path, object_stream_mode=pikepdf.ObjectStreamMode.generate)


def updated(path: Path) -> None:
    """Page 2 made 700 points wide by an incremental update: a second table, and a trailer with /Prev."""
    writer = PdfWriter(io.BytesIO(blank_pages(5)), incremental=True)
    writer.pages[1][NameObject("/MediaBox")] = ArrayObject(
        [NumberObject(0), NumberObject(0), FloatObject(700), FloatObject(842)])
    with path.open("wb") as handle:
        writer.write(handle)
    assert b"/Prev" in path.read_bytes()[-300:]


def entries_swapped(path: Path) -> None:
    """The table's entries for two pages swapped: each points at the other's object."""
    data = blank_pages(5)
    start = re.search(rb"\nxref\n0 \d+\n", data).end()
    first, second = (start + 20 * number for number in _page_numbers(data)[1:3])  # pages 2 and 3
    swapped = bytearray(data)
    swapped[first:first + 20], swapped[second:second + 20] = data[second:second + 20], data[first:first + 20]
    path.write_bytes(bytes(swapped))


def _page_numbers(data: bytes) -> list[int]:
    return [int(number) for number in re.findall(rb"(\d+) 0 obj\n<<\n/Type /Page\n", data)]


def truncated(path: Path) -> None:
    data = blank_pages(5)
    path.write_bytes(data[:data.rindex(b"\nxref\n")])


def named_in_latin_1(path: Path) -> None:
    """A font named in Latin-1 bytes (not UTF-8): pypdf could not say which bytes it read, qpdf can."""
    data = blank_pages(5).replace(b"/Resources <<\n>>", b"/Resources <</F\xe9 3 0 R>>")
    path.write_bytes(_with_offsets_mended(data))


def _with_offsets_mended(data: bytes) -> bytes:
    """The table rewritten for objects moved by an edit (pikepdf would write the file afresh)."""
    offsets = {int(m[1]): m.start() + 1 for m in re.finditer(rb"\n(\d+) 0 obj\n", data)}
    start = data.rindex(b"\nxref\n") + 1
    size = int(data[start:].split(b"\n")[1].split()[1])
    entries = b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, size))
    table = b"xref\n0 %d\n0000000000 65535 f \n" % size + entries
    trailer = data[data.rindex(b"trailer"):]
    trailer = trailer[:trailer.rindex(b"startxref")] + b"startxref\n%d\n%%%%EOF\n" % start
    return data[:start] + table + trailer


@pytest.mark.parametrize("make", [with_object_streams, updated, entries_swapped, truncated, named_in_latin_1])
def test_a_file_of_another_shape_is_read_by_qpdf_as_before(tmp_path, make):
    path = tmp_path / "other.pdf"
    make(path)
    assert page_facts._cut_lazily(path, range(2, 4)) is None
    assert check_files([path], layout=NO_MARKS).as_dict() == qpdf_report(path)
    with PdfPages(path, range(2, 4)) as pages:
        sizes = [round(pages.size_mm(n)[0] / MM_PER_POINT, 3) for n in (2, 3)]
    assert sizes == [700 if make is updated else width(1), width(2)]


def test_a_file_of_another_shape_does_not_open_lazily(tmp_path):
    for make in (with_object_streams, updated, truncated):
        path = tmp_path / f"{make.__name__}.pdf"
        make(path)
        with pytest.raises(NotLazilyReadable):
            LazyPdf(path)


# --- what this is for: qpdf and PDFium never open our own file whole ---------------------------


def test_checking_our_own_file_never_opens_it_whole(good, tmp_path, monkeypatch):
    """Opening the file has qpdf and PDFium read its whole cross-reference table, so a worker's memory grows
    with the file: each job's pages are cut out an object at a time, and the libraries read only those."""
    shutil.copytree(good, tmp_path / "job")
    pdf, manifest = tmp_path / "job" / "letters.pdf", tmp_path / "job" / "manifest.json"
    opened, documents = [], []
    real_open, real_document = pikepdf.open, pypdfium2.PdfDocument
    monkeypatch.setattr(pikepdf, "open", lambda source, *a, **k: opened.append(source) or real_open(source, *a, **k))
    monkeypatch.setattr(pypdfium2, "PdfDocument",
                        lambda source, *a, **k: documents.append(source) or real_document(source, *a, **k))
    monkeypatch.setattr(print_check, "_MAX_PAGES_PER_JOB", 5)  # several jobs, each in this process
    report = check_files([pdf], manifest)
    assert report.ok and report.pages > 10, report.text()
    assert len(opened) == len(documents) == -(-report.pages // 5)  # one excerpt a job
    assert all(isinstance(source, io.BytesIO) for source in opened)
    assert all(isinstance(source, bytes) for source in documents)


# --- a small file: qpdf reads it as before, and pypdf is not even imported -------------------------


def test_only_a_file_of_many_objects_is_read_an_object_at_a_time(tmp_path, monkeypatch):
    path = tmp_path / "pages.pdf"
    path.write_bytes(blank_pages(70))
    with LazyPdf(path) as pdf:
        objects = pdf.trailer["/Size"]
    monkeypatch.setattr(page_facts, "LAZY_FROM_OBJECTS", objects)
    assert page_facts._cut_lazily(path, range(60, 70)) is not None
    assert page_facts.lazy_page_count(path) == (70, {})
    monkeypatch.setattr(page_facts, "LAZY_FROM_OBJECTS", objects + 1)
    assert page_facts._cut_lazily(path, range(60, 70)) is None
    assert page_facts.lazy_page_count(path) is None


CHECK_SMALL_FILE = """
import sys
from pathlib import Path
from pkb_letters.assemble import marks
from pkb_letters.check.print_check import check_files
report = check_files([Path(sys.argv[1])], layout=marks.DEFAULT_LAYOUTS[marks.MarkKind.NONE])
print(report.pages, "pypdf" in sys.modules)
"""


def test_a_small_file_is_checked_without_importing_pypdf(tmp_path):
    """Importing pypdf costs a process about 16 MB, more than qpdf's table of a small file."""
    path = tmp_path / "pages.pdf"
    path.write_bytes(blank_pages(70))
    source = Path(page_facts.__file__).parents[2]
    checked = subprocess.run([sys.executable, "-c", CHECK_SMALL_FILE, str(path)], check=True, capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                 [str(source), os.environ.get("PYTHONPATH", "")])})
    assert checked.stdout.split() == ["70", "False"]
