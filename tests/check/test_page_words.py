"""The check's word reader (all of a page's characters in one pass) reads what PDFium says of each
character, asked one character at a time: the same words, in the same boxes."""

from __future__ import annotations

import ctypes
import datetime as dt
import math
import re

import pikepdf
import pypdfium2
import pypdfium2.raw as pdfium
import pytest

from pkb_letters.assemble import marks, print_options
from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.check.page_facts import MM_PER_POINT, PdfPages
from pkb_letters.config import DEFAULT_TEMPLATE, LetterSettings
from pkb_letters.records import CodePair, Letter, PatientRow
from pkb_letters.render.chunks import ChunkRenderer, LetterTemplate

SETTINGS = LetterSettings(organisation="Synthetic NHS Trust", date=dt.date(2026, 11, 21))
NAMES = [
    ("Ms", "Zoë", "Ó'Brien-Łukasz", ("Flat 3", "Tŷ Gwyn", "2 Heol y Dŵr", "CARDIFF", "CF10 1EP")),
    ("", "Zoe\u0308", "Ñúñez Çelik", ("12 Straße", "LEEDS", "LS6 1BN")),  # a decomposed diaeresis
    ("Mr", "Wolfgang", "AVAWAY", ("1 Long Road", "YORK", "YO1 7HH")),  # kerned pairs
]
TOLERANCE_MM = 1e-6


def per_character_words(path, number: int) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Each word and its box (left, top, width, height in mm), read as the check read them before:
    PDFium asked for every character's loose box, one call a character."""
    document = pypdfium2.PdfDocument(path)
    try:
        page = document[number - 1]
        textpage = page.get_textpage()
        count = pdfium.FPDFText_CountChars(textpage.raw)
        text = "".join(chr(pdfium.FPDFText_GetUnicode(textpage.raw, i) or 32) for i in range(count))
        left, top = _top_left(path, number)
        box, matrix = pdfium.FS_RECTF(), pdfium.FS_MATRIX()
        words = []
        for match in re.finditer(r"\S+", text):
            boxes = []
            for index in range(*match.span()):
                assert pdfium.FPDFText_GetLooseCharBox(textpage.raw, index, ctypes.byref(box))
                boxes.append((box.left, box.right, box.bottom))
            x0, x1, y0 = min(b[0] for b in boxes), max(b[1] for b in boxes), min(b[2] for b in boxes)
            pdfium.FPDFText_GetMatrix(textpage.raw, match.start(), ctypes.byref(matrix))
            size = pdfium.FPDFText_GetFontSize(textpage.raw, match.start()) * math.hypot(matrix.c, matrix.d)
            words.append((match.group(), ((x0 - left) * MM_PER_POINT, (top - y0 - size) * MM_PER_POINT,
                                          (x1 - x0) * MM_PER_POINT, size * MM_PER_POINT)))
        textpage.close()
        page.close()
        return words
    finally:
        document.close()


def _top_left(path, number: int) -> tuple[float, float]:
    """The page's top-left corner in PDF units, as qpdf reads the media box (PDFium's is in 32-bit floats)."""
    with pikepdf.open(path) as pdf:
        box = [float(v) for v in pdf.pages[number - 1].mediabox]
    return min(box[0], box[2]), max(box[1], box[3])


@pytest.fixture(scope="module", params=["shared-layout", "full-layout"])
def letters_pdf(request, tmp_path_factory):
    options = PrintOptions()
    page = marks.reserve_space(options.envelope, options.marks, marks.sample_payload("JOB1"))
    renderer = ChunkRenderer(LetterTemplate(DEFAULT_TEMPLATE), SETTINGS, page, print_options.print_css(options),
                             print_options.pdf_options(options), share_layout=request.param == "shared-layout")
    letters = []
    for number, (title, first, last, lines) in enumerate(NAMES, 2):
        patient = PatientRow(number, "", "4000000004", title, first, last, None, lines, lines[-1])
        letters.append(Letter(number, f"JOB1-{number:06d}", patient,
                              CodePair(f"Inv{number:07d}", f"acc{number:07d}", dt.date(2026, 12, 21))))
    chunk = renderer.render(letters, [renderer.body(letter) for letter in letters])
    path = tmp_path_factory.mktemp("words") / f"{request.param}.pdf"
    path.write_bytes(chunk.pdf)
    return path


def test_every_word_and_box_is_what_pdfium_says_character_by_character(letters_pdf):
    with PdfPages(letters_pdf) as pdf:
        assert len(pdf) >= len(NAMES)
        for number in range(1, len(pdf) + 1):
            expected = per_character_words(letters_pdf, number)
            found = pdf.words(number)
            assert [w.text for w in found] == [text for text, _ in expected], f"page {number}"
            for word, (text, box) in zip(found, expected, strict=True):
                rect = word.rect
                got = (rect.left, rect.top, rect.width, rect.height)
                assert all(abs(a - b) < TOLERANCE_MM for a, b in zip(got, box, strict=True)), (number, text, got, box)


def test_the_names_are_read_whole(letters_pdf):
    with PdfPages(letters_pdf) as pdf:
        texts = " ".join(w.text for number in range(1, len(pdf) + 1) for w in pdf.words(number))
    for name in ("Zoë", "Ó'Brien-Łukasz", "Ñúñez", "Çelik", "Tŷ", "Dŵr", "AVAWAY", "Straße"):
        assert name in texts


def test_page_words_are_the_words_and_judge_areas_as_rects_do(letters_pdf):
    from pkb_letters.envelope import C5, Rect

    printable = C5.printable_area
    areas = [C5.window, printable, printable.grown(0.3), printable.grown(-0.5), Rect(0, 0, 210, 297),
             Rect(15, 277, 13, 13), Rect(150, 280, 40, 10), Rect(150, 280, 40, 6.5), Rect(20, 40, 60, 10),
             Rect(0, 0, 1, 1), Rect(14.99, 0, 0.02, 297), Rect(0, 15.5, 210, 281), Rect(0, 27, 210, 260)]
    found = []
    with PdfPages(letters_pdf) as pdf:
        for number in range(1, len(pdf) + 1):
            page = pdf.page_words(number)
            words = pdf.words(number)
            assert list(page) == words and len(page) == len(words) and page[1:3] == words[1:3]
            for area in areas:
                assert page.not_inside(area) == [n for n, w in enumerate(words) if not area.contains(w.rect)]
                assert page.overlapping(area) == [n for n, w in enumerate(words) if w.rect.overlaps(area)]
                assert pdf.page_words(number).overlapping(area) == page.overlapping(area)  # before and after all boxes
                found.append((bool(page.not_inside(area)), bool(page.overlapping(area))))
            run = page.find([w.text for w in words[5:9]])
            assert run is not None and [w.text for w in words[run.start:run.stop]] == [w.text for w in words[5:9]]
            assert page.find(["no-such-word"]) is None and page.find([]) is None
    assert {(True, True), (True, False), (False, True)} <= set(found)  # the areas cut words and miss them


def test_words_drawn_out_of_order_are_boxed_by_all_their_characters(tmp_path):
    """A word kerned back over its own start, turned text, scaled text and text in a form: the box
    is every character's, not its first and last character's."""
    path = tmp_path / "unusual.pdf"
    with pikepdf.new() as pdf:
        font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                    BaseFont=pikepdf.Name.Helvetica))
        form = pdf.make_stream(b"BT /F1 9 Tf 10 10 Td (In a form) Tj ET", Type=pikepdf.Name.XObject,
                               Subtype=pikepdf.Name.Form, BBox=[0, 0, 200, 50],
                               Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font)))
        pdf.add_blank_page(page_size=(595, 842))
        page = pdf.pages[0]
        page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font),
                                            XObject=pikepdf.Dictionary(Fm1=form))
        page.Contents = pdf.make_stream(
            b"BT /F1 12 Tf 100 700 Td [(Back) 3000 (wards) -200 (W) 800 (ide)] TJ ET"
            b" BT /F1 10 Tf 0 1 -1 0 300 300 Tm (Turned text) Tj ET"
            b" BT /F1 10 Tf 2 0 0 0.5 100 500 Tm (Squashed) Tj 0 -30 Td 3 Ts (Raised) Tj ET"
            b" q 1 0 0 1 100 200 cm /Fm1 Do Q")
        pdf.save(path)
    expected = per_character_words(path, 1)
    assert [text for text, _ in expected] == ["Backwards", "Wide", "Turned", "text", "Squashed", "Raised",
                                              "In", "a", "form"]
    backwards = expected[0][1]
    with PdfPages(path) as reader:
        found = reader.words(1)
    assert [w.text for w in found] == [text for text, _ in expected]
    for word, (text, box) in zip(found, expected, strict=True):
        got = (word.rect.left, word.rect.top, word.rect.width, word.rect.height)
        assert all(abs(a - b) < TOLERANCE_MM for a, b in zip(got, box, strict=True)), (text, got, box)
    assert backwards[0] < 100 * MM_PER_POINT - 1  # "wards" is kerned back 3 em, to the left of "Back"
