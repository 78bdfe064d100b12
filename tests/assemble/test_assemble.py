"""Assembling the print files: the same pages and marks as a straightforward copy, for less work.

The marks are drawn from a cached grid of module edges; the pages are copied out of the
chunks as raw bytes; objects the chunks share (fonts, shared-layout forms, the ICC profile)
are stored once per print file.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pikepdf
import pypdfium2
import pytest
from conftest import connection_to, demo_settings, no_weasyprint_warnings
from hypothesis import example, given, settings
from hypothesis import strategies as st
from ppf.datamatrix import DataMatrix
from test_print import QPDF, varied_template

from pkb_letters.assemble import marks, output_intent, print_files, sheets
from pkb_letters.assemble.marks import MarkKind, MarkLayout
from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.envelope import A4_HEIGHT_MM, Rect
from pkb_letters.job import pipeline
from pkb_letters.job.pipeline import run_job
from pkb_letters.pdf import writer as pdf_writer


def drawn_rect_by_rect(layout: MarkLayout, payload: str) -> bytes:
    """The DataMatrix mark as it was drawn before the grid was cached: ppf-datamatrix's own symbol,
    a Rect per run of dark modules, formatted each time."""
    def pt(mm: float) -> str:
        return f"{mm * marks.POINTS_PER_MM:.3f}"

    rects = []
    size = layout.module
    for y, row in enumerate(DataMatrix(payload, codecs=["ascii", "C40"]).matrix):
        x = 0
        while x < len(row):
            if not row[x]:
                x += 1
                continue
            start = x
            while x < len(row) and row[x]:
                x += 1
            rects.append(Rect(layout.left + start * size, layout.top + y * size, (x - start) * size, size))
    ops = ["q", "0 0 0 1 k"]
    ops += [f"{pt(r.left)} {pt(A4_HEIGHT_MM - r.bottom)} {pt(r.width)} {pt(r.height)} re" for r in rects]
    ops += ["f", "Q", ""]
    return "\n".join(ops).encode("ascii")


@pytest.mark.parametrize("layout", [
    marks.DEFAULT_LAYOUTS[MarkKind.DATAMATRIX],
    MarkLayout(left=12.3, top=250.7, module=0.5),
    MarkLayout(left=180.0, top=10.0, module=0.33),
])
@pytest.mark.parametrize("job_id", ["PKB-20300101-ABCDEF", "J", "PKB-20991231-ZZ99ZZ-LONGER-ID"])
def test_a_datamatrix_mark_is_drawn_byte_for_byte_as_rect_by_rect(layout, job_id):
    for sequence, sheet, of in [(1, 1, 1), (42, 2, 3), (999999, 99, 99), (123456, 1, 2)]:
        payload = marks.datamatrix_payload(job_id, sequence, sheet, of)
        assert marks.draw(layout, payload) == drawn_rect_by_rect(layout, payload)


# ASCII, C40's basic and shift sets, and beyond (an upper shift in ASCII); lengths across symbol sizes
PAYLOAD_TEXT = st.text(alphabet=st.sampled_from("ABCXYZ0123456789 -/.:abcé"), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(PAYLOAD_TEXT)
@example("PKB-20300101-ABCDEF 000042 01/02 " * 3)  # 32 x 32 modules: four regions
def test_every_symbol_is_the_one_ppf_datamatrix_makes(payload):
    try:
        expected = tuple(bytes(row) for row in DataMatrix(payload, codecs=["ascii", "C40"]).matrix)
    except ValueError:  # a payload neither encodation can hold
        with pytest.raises(ValueError):
            marks._matrix(payload)
        return
    assert marks._matrix(payload) == expected


# -- the pages: what the chunks hold, with marks over the fronts ---------------------------------------------


def resolved(obj, seen: tuple = ()) -> object:
    """`obj` with every reference followed, as plain values; a stream as its dictionary and decoded data.
    Object numbers are gone, so two files are compared on what they say, not on how they number it."""
    if isinstance(obj, pikepdf.Stream):
        if obj.objgen in seen:
            return ("cycle", len(seen) - seen.index(obj.objgen))
        inner = (*seen, obj.objgen)
        head = {k: resolved(v, inner) for k, v in obj.stream_dict.items() if k not in STREAM_ENCODING}
        return ("stream", head, obj.read_bytes())
    if isinstance(obj, pikepdf.Dictionary | pikepdf.Array) and obj.is_indirect:
        if obj.objgen in seen:
            return ("cycle", len(seen) - seen.index(obj.objgen))
        seen = (*seen, obj.objgen)
    if isinstance(obj, pikepdf.Dictionary):
        return {k: resolved(v, seen) for k, v in obj.items() if k != "/Parent"}
    if isinstance(obj, pikepdf.Array):
        return [resolved(v, seen) for v in obj]
    if isinstance(obj, pikepdf.Object):
        return obj.unparse()  # a name, string, number, boolean or null
    return obj


STREAM_ENCODING = ("/Length", "/Filter", "/DecodeParms")
LEFT_IN_THE_CHUNK = ("/Contents", "/Annots", "/B", "/StructParents")


def page_content(page: pikepdf.Page) -> bytes:
    contents = page.obj.get("/Contents")
    if contents is None:
        return b""
    streams = list(contents) if isinstance(contents, pikepdf.Array) else [contents]
    return b"".join(s.read_bytes() for s in streams)


def page_without_content(page: pikepdf.Page) -> dict:
    return {k: v for k, v in resolved(page.obj).items() if k not in LEFT_IN_THE_CHUNK}


def assert_pages_are_the_chunks_with_marks(chunk_paths, pieces, finishing, out_dir, files, placed):
    """Every letter's pages in its print file are its chunk's pages (resources, boxes, content) with
    "q" before and "Q" and the sheet's mark after the fronts' content, as the pypdf copy wrote them,
    and blank backs where duplex needs them."""
    chunk_pages = []  # (chunk, index) by page over all chunks
    chunks = [pikepdf.open(path) for path in chunk_paths]
    for number, pdf in enumerate(chunks):
        chunk_pages += [(number, index) for index in range(len(pdf.pages))]
    printed = {f.name: pikepdf.open(out_dir / f.name) for f in files}
    try:
        assert sum(len(pdf.pages) for pdf in printed.values()) == sum(f.pages for f in files)
        for where in placed:
            pages = printed[where.file].pages
            fronts = sheets.fronts(where.piece.page_count, finishing.duplex)
            for index in range(where.piece.page_count):
                chunk, at = chunk_pages[where.piece.source_page + index]
                source, copy = chunks[chunk].pages[at], pages[where.first_page - 1 + index]
                assert page_without_content(copy) == page_without_content(source)
                content = page_content(source)
                if index in fronts and where.marks:
                    operators = marks.draw(finishing.marks, where.marks[fronts.index(index)])
                    content = b"q\n" + content + b"\nQ\n" + operators
                assert page_content(copy) == content
            for blank in range(where.piece.page_count, 2 * where.sheet_count if finishing.duplex else 0):
                page = pages[where.first_page - 1 + blank]
                assert page_content(page) == b"" and resolved(page.obj["/Resources"]) == {}
    finally:
        for pdf in [*chunks, *printed.values()]:
            pdf.close()


def capture_chunks(monkeypatch, keep: Path) -> dict:
    """Copy the render chunks and pieces aside as the job's assemble stage starts."""
    real, captured = pipeline.stream_print_files, {}

    def capture(chunk_paths, pieces, finishing, out_dir, record):
        keep.mkdir()
        captured["chunks"] = [Path(shutil.copy(path, keep / path.name)) for path in chunk_paths]
        captured["pieces"] = list(pieces())
        captured["finishing"] = finishing
        return real(chunk_paths, pieces, finishing, out_dir, record)

    monkeypatch.setattr(pipeline, "stream_print_files", capture)
    return captured


@pytest.mark.parametrize("options", [
    {},
    {"split_by": ("sheets",), "marks": marks.DEFAULT_LAYOUTS[MarkKind.OMR]},
])
def test_rendered_letters_are_copied_page_for_page_with_their_marks(sandbox, tmp_path, monkeypatch, options):
    captured = capture_chunks(monkeypatch, tmp_path / "chunks")
    settings = demo_settings(tmp_path / "job", "fhir", template_dir=varied_template(tmp_path), chunk_size=3)
    with no_weasyprint_warnings():
        run_job(settings, connection_to(sandbox), print_options=PrintOptions(**options))
    assert len(captured["chunks"]) > 1
    out = tmp_path / "again"
    out.mkdir()
    files, placed = print_files.write_print_files(captured["chunks"], captured["pieces"], captured["finishing"], out)
    assert {p.piece.page_count for p in placed} == {1, 2, 3}
    assert_pages_are_the_chunks_with_marks(captured["chunks"], captured["pieces"], captured["finishing"], out,
                                           files, placed)
    for f in files:  # and the job's own files are those, byte for byte
        assert (out / f.name).read_bytes() == (tmp_path / "job" / f.name).read_bytes()
        assert subprocess.run([QPDF, "--check", str(out / f.name)], capture_output=True).returncode == 0


# -- objects the chunks share, stored once --------------------------------------------------------------------

A4 = (595.2756, 841.8898)
FORM_TEXT = b"BT /F1 11 Tf 72 500 Td (The same in every letter) Tj ET"
DRAW_FORM = b"q /Shared Do Q\n"  # each page's own stream, the same on every page


def shared_chunk(path: Path, first_letter: int, letters: int, padding: int) -> Path:
    """A chunk as the render stage makes one: every page draws one form (with its font) and has a
    font and an ICC-based colour space of its own resources; each letter has its own content and
    image. `padding` objects first, so that the same objects have other numbers in each chunk."""
    pdf = pikepdf.new()
    for n in range(padding):
        pdf.make_indirect(pikepdf.Dictionary(Padding=n))
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica))
    profile = pdf.make_stream(output_intent.DEFAULT_PROFILE.read_bytes(), N=4)
    form = pdf.make_stream(FORM_TEXT, Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Form,
                           BBox=[0, 0, *A4], Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font)))
    # two objects that refer to each other, and a string that reads like a reference
    first = pdf.make_indirect(pikepdf.Dictionary(Title=pikepdf.String("see 1 0 R (twice)")))
    second = pdf.make_indirect(pikepdf.Dictionary(Prev=first))
    first.Next = second
    for letter in range(first_letter, first_letter + letters):
        image = pdf.make_stream(bytes([letter % 256]) * 4, Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image,
                                Width=2, Height=2, BitsPerComponent=8, ColorSpace=pikepdf.Name.DeviceGray)
        resources = pikepdf.Dictionary(
            Font=pikepdf.Dictionary(F1=font), XObject=pikepdf.Dictionary(Shared=form, QR=image),
            ColorSpace=pikepdf.Dictionary(CS0=pikepdf.Array([pikepdf.Name.ICCBased, profile])),
            Properties=pikepdf.Dictionary(Chain=first),
        )
        text = f"q 20 0 0 20 400 700 cm /QR Do Q BT /F1 12 Tf 72 700 Td (Letter {letter}) Tj ET"
        page = pikepdf.Dictionary(Type=pikepdf.Name.Page, MediaBox=[0, 0, *A4], Resources=resources,
                                  Contents=[pdf.make_stream(DRAW_FORM), pdf.make_stream(text.encode())])
        pdf.pages.append(pikepdf.Page(page))
    pdf.save(path)
    return path


def print_two_chunks(tmp_path: Path, **finishing) -> tuple[Path, list, list, list]:
    chunk_paths = [shared_chunk(tmp_path / "chunk-1.pdf", 1, 3, padding=0),
                   shared_chunk(tmp_path / "chunk-2.pdf", 4, 3, padding=5)]
    pieces = [print_files.Piece(n, f"P{n}", 1, "NE1 7RU", "second", n - 1) for n in range(1, 7)]
    out = tmp_path / "out"
    out.mkdir()
    files, placed = print_files.write_print_files(chunk_paths, pieces, print_files.Finishing("PKB-1", **finishing), out)
    return out, chunk_paths, files, placed


def objects_of(pdf: pikepdf.Pdf, test) -> list:
    return [obj for obj in pdf.objects if test(obj)]


def test_a_form_font_profile_and_short_content_every_chunk_holds_are_stored_once_per_file(tmp_path):
    out, chunk_paths, files, placed = print_two_chunks(tmp_path, duplex=False)
    with pikepdf.open(out / "letters.pdf") as pdf:
        assert len(pdf.pages) == 6
        forms = objects_of(pdf, lambda o: isinstance(o, pikepdf.Stream) and o.stream_dict.get("/Subtype") == "/Form")
        assert [f.read_bytes() for f in forms] == [FORM_TEXT]
        profiles = objects_of(pdf, lambda o: isinstance(o, pikepdf.Stream) and "/N" in o.stream_dict)
        assert len(profiles) == 1
        fonts = objects_of(pdf, lambda o: isinstance(o, pikepdf.Dictionary) and o.get("/Type") == "/Font")
        assert len(fonts) == 1
        draws = objects_of(pdf, lambda o: isinstance(o, pikepdf.Stream) and o.read_bytes() == DRAW_FORM)
        assert len(draws) == 1
        images = objects_of(pdf, lambda o: isinstance(o, pikepdf.Stream) and o.stream_dict.get("/Subtype") == "/Image")
        assert sorted(i.read_bytes() for i in images) == sorted(bytes([n]) * 4 for n in range(1, 7))
        for page in pdf.pages:  # every page draws the one copy
            assert page.Resources.XObject.Shared.objgen == forms[0].objgen
            assert page.Resources.XObject.Shared.Resources.Font.F1.objgen == fonts[0].objgen
            chain = page.Resources.Properties.Chain
            assert chain.Next.Prev.objgen == chain.objgen and str(chain.Title) == "see 1 0 R (twice)"
        # a cycle is numbered before its bytes are known, so it is not looked up: one copy a chunk
        assert len(objects_of(pdf, lambda o: isinstance(o, pikepdf.Dictionary) and "/Title" in o)) == 2
    assert_pages_are_the_chunks_with_marks(chunk_paths, [p.piece for p in placed],
                                           print_files.Finishing("PKB-1", duplex=False), out, files, placed)
    assert subprocess.run([QPDF, "--check", str(out / "letters.pdf")], capture_output=True).returncode == 0
    words = [pypdfium2.PdfDocument(out / "letters.pdf")[n].get_textpage().get_text_range() for n in range(6)]
    assert all("The same in every letter" in w and f"Letter {n}" in w for n, w in enumerate(words, 1))


def test_each_split_file_holds_its_own_copy(tmp_path):
    out, *_ = print_two_chunks(tmp_path, duplex=False, max_letters_per_file=4)
    for name, letters in (("PKB-1-001.pdf", 4), ("PKB-1-002.pdf", 2)):
        with pikepdf.open(out / name) as pdf:
            assert len(pdf.pages) == letters
            forms = objects_of(pdf, lambda o: isinstance(o, pikepdf.Stream)
                               and o.stream_dict.get("/Subtype") == "/Form")
            assert len(forms) == 1


def test_the_table_of_shared_objects_is_bounded_and_the_file_stays_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(pdf_writer, "_SHARED_OBJECTS", 3)
    path = tmp_path / "shared.pdf"
    with path.open("wb") as handle:
        writer = pdf_writer.StreamingPdfWriter(handle)
        bodies = [b"<< /N %d >>" % n for n in range(5)]
        numbers = [writer.write_shared(body) for body in bodies]
        assert writer.write_shared(bodies[4]) == numbers[4]  # still in the table
        again = writer.write_shared(bodies[0])  # evicted: written again, under a new number
        assert again not in numbers and len(writer._shared) == 3
        entries = b"/MediaBox [ 0 0 595.2756 841.8898 ] /Resources << /Properties << %s >> >> /Type /Page" % (
            b" ".join(b"/P%d %d 0 R" % (n, number) for n, number in enumerate([*numbers, again])))
        writer.add_serialised_page(entries, [], [b"q\n"], [b"\nQ\n"])
        writer.close({}, {})
    assert subprocess.run([QPDF, "--check", str(path)], capture_output=True).returncode == 0
    with pikepdf.open(path) as pdf:
        properties = pdf.pages[0].Resources.Properties
        assert [int(properties[f"/P{n}"].N) for n in range(6)] == [0, 1, 2, 3, 4, 0]


def test_inherited_boxes_and_resources_are_the_pages_own_and_annotations_stay_behind(tmp_path):
    pdf = pikepdf.new()
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica))
    for n, own in enumerate([
        {},  # everything inherited
        {"Annots": pikepdf.Array([pdf.make_indirect(pikepdf.Dictionary(Subtype=pikepdf.Name.Link))]),
         "StructParents": 0, "MediaBox": [0, 0, *A4]},
        {"PieceInfo": pikepdf.Dictionary(Note=pikepdf.String("a /Parent 1 0 R /Contents [ 2 0 R ]"))},
    ], 1):
        text = f"BT /F1 12 Tf 72 700 Td (Page {n}) Tj ET".encode()
        pdf.pages.append(pikepdf.Page(pikepdf.Dictionary(Type=pikepdf.Name.Page, Contents=pdf.make_stream(text),
                                                          **own)))
    pdf.Root.Pages.MediaBox = [0, 0, *A4]
    pdf.Root.Pages.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    pdf.save(tmp_path / "chunk.pdf")
    pieces = [print_files.Piece(1, "P1", 3, "NE1 7RU", "second", 0)]
    out = tmp_path / "out"
    out.mkdir()
    print_files.write_print_files([tmp_path / "chunk.pdf"], pieces,
                                print_files.Finishing("PKB-1", marks=marks.DEFAULT_LAYOUTS[MarkKind.NONE]), out)
    assert subprocess.run([QPDF, "--check", str(out / "letters.pdf")], capture_output=True).returncode == 0
    with pikepdf.open(out / "letters.pdf") as printed:
        assert len(printed.pages) == 4  # and a blank back
        for page in printed.pages[:3]:
            assert "/MediaBox" in page.obj and "/Resources" in page.obj  # on the page, not its tree node
            assert "/Annots" not in page.obj and "/StructParents" not in page.obj
        assert str(printed.pages[2].PieceInfo.Note) == "a /Parent 1 0 R /Contents [ 2 0 R ]"
    words = [pypdfium2.PdfDocument(out / "letters.pdf")[n].get_textpage().get_text_range() for n in range(3)]
    assert [w.strip() for w in words] == ["Page 1", "Page 2", "Page 3"]


def hand_written_pdf(objects: list[bytes]) -> bytes:
    """A PDF of these objects (numbered from 1; 1 the catalog), with a correct cross-reference table."""
    out, offsets = bytearray(b"%PDF-1.6\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_a_stream_whose_length_is_another_object_or_wrong_gets_the_length_of_its_data(tmp_path):
    text = b"BT /F1 12 Tf 72 700 Td (Measured) Tj ET"
    chunk = tmp_path / "chunk.pdf"
    chunk.write_bytes(hand_written_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [ 3 0 R ] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [ 0 0 595.2756 841.8898 ] /Contents [ 4 0 R 6 0 R ]"
        b" /Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>",
        b"<< /Length 5 0 R >>\nstream\n%s\nendstream" % text,
        b"%d" % len(text),
        b"<< /Length 3 >>\nstream\n\nendstream",  # says 3 bytes, holds none: qpdf finds endstream
    ]))
    out = tmp_path / "out"
    out.mkdir()
    print_files.write_print_files([chunk], [print_files.Piece(1, "P1", 1, "NE1 7RU", "second", 0)],
                                print_files.Finishing("PKB-1", duplex=False), out)
    assert subprocess.run([QPDF, "--check", str(out / "letters.pdf")], capture_output=True).returncode == 0
    with pikepdf.open(out / "letters.pdf") as pdf:
        assert b"(Measured) Tj" in page_content(pdf.pages[0])
