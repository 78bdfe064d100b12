"""Stamped letters (drawn into their shape's prototype, not laid out) print what a full layout prints."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from urllib.parse import parse_qs, urlsplit

import pdfplumber
import pypdfium2
import pytest
import zxingcpp
from conftest import edited_default_template
from test_shared_layout import SETTINGS, _renderer, _words

from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.config import DEFAULT_TEMPLATE
from pkb_letters.records import CodePair, Letter, PatientRow
from pkb_letters.render import stamp
from pkb_letters.render.chunks import ChunkRenderer, LetterTemplate

EXPIRES = dt.date(2026, 12, 21)
PEOPLE = [
    ("Mrs", "Amelia", "Smith", ("12 High Street", "LEEDS", "LS6 1BN"), "SYN-1"),
    ("", "Zoë", "O'Brien-Ng", ("Flat 3", "Tŷ Gwyn", "2 Heol y Dŵr", "CARDIFF", "CF10 1EP"), ""),
    ("Dr", "Rhys", "Davies", ("BFPO 105",), "SYN-3"),
    ("Ms", "Ivy", "Wilson-Łukasiewicz", ("1 Long Road", "YORK", "YO1 7HH"), "SYN-4"),
    ("Mr", "Leo", "Patel", ("300 Station Road", "NORWICH", "NR2 4SX"), "SYN-5"),
    ("Mx", "Åsa", "Ærø", ("The Old Rectory, Church Lane, Little Snoring", "FAKENHAM", "NR21 0AA"), "A&B <1>"),
]


def _letter(sequence: int, person: tuple, expires: dt.date = EXPIRES, salt: str = "vXyZ", job: str = "JOB1") -> Letter:
    title, first, last, lines, ref = person
    patient = PatientRow(sequence + 1, ref, "4000000004", title, first, last, None, lines, lines[-1])
    codes = CodePair(f"In{sequence:04d}{salt}", f"ac{sequence:04d}Kp9Q", expires)
    return Letter(sequence, f"{job}-{sequence:06d}", patient, codes)


def _letters(first: int, count: int, salt: str = "vXyZ") -> list[Letter]:
    return [_letter(n, PEOPLE[n % len(PEOPLE)], salt=salt) for n in range(first, first + count)]


def _render(renderer, letters):
    return renderer.render(letters, [renderer.body(letter) for letter in letters])


@pytest.fixture(scope="module")
def renderers():
    """A renderer that has seen one chunk (so it knows the shapes), and one that lays out every letter."""
    fast, full = _renderer(DEFAULT_TEMPLATE, True), _renderer(DEFAULT_TEMPLATE, False)
    _render(fast, _letters(1, 12))
    return fast, full


def _assert_same_print(fast_chunk, full_chunk, tolerance: float = 0.0) -> None:
    assert fast_chunk.page_counts == full_chunk.page_counts
    fast_pages, full_pages = _words(fast_chunk.pdf), _words(full_chunk.pdf)
    assert len(fast_pages) == len(full_pages) == sum(full_chunk.page_counts)
    for number, (got, expected) in enumerate(zip(fast_pages, full_pages, strict=True), 1):
        if tolerance:
            assert [c[2:] for c in got] == [c[2:] for c in expected], f"page {number} differs"
            moved = [max(abs(g[0] - e[0]), abs(g[1] - e[1])) for g, e in zip(got, expected, strict=True)]
            assert max(moved, default=0) <= tolerance, f"page {number}: a character moved more than {tolerance} pt"
        else:
            assert got == expected, f"page {number} differs"


def test_letters_of_known_shapes_are_stamped_and_print_every_character_where_a_full_layout_does(renderers):
    fast, full = renderers
    letters = _letters(101, 24)  # piece ids 000101..000124: some with a kerned "11" (a width not seen yet)
    stamped = _render(fast, letters)
    assert stamped.stamped_letters >= len(letters) // 2
    _assert_same_print(stamped, _render(full, letters))
    same_shapes = _letters(101, 24, salt="QrSt")  # other codes: every shape and width is known now
    stamped = _render(fast, same_shapes)
    assert stamped.stamped_letters == len(same_shapes)
    _assert_same_print(stamped, _render(full, same_shapes))


def test_piece_ids_that_could_break_a_line_are_stamped_where_their_pieces_are_as_wide():
    """A job id like the pipeline's ("PKB-20261121-F204F6") lets a line break before its last part."""
    fast, full = _renderer(DEFAULT_TEMPLATE, True), _renderer(DEFAULT_TEMPLATE, False)
    job = "PKB-20261121-F204F6"
    _render(fast, [_letter(n, PEOPLE[0], job=job) for n in range(1, 5)])
    later = [_letter(n, PEOPLE[0], job=job) for n in (5, 6, 7, 8)]
    chunk = _render(fast, later)
    assert chunk.stamped_letters == len(later)
    _assert_same_print(chunk, _render(full, later))


def test_each_stamped_letter_carries_its_own_qr_code(renderers):
    fast, _ = renderers
    letters = _letters(201, 6)
    chunk = _render(fast, letters)
    assert chunk.stamped_letters == len(letters)
    document = pypdfium2.PdfDocument(chunk.pdf)
    first_page = 0
    for letter, count in zip(letters, chunk.page_counts, strict=True):
        bitmap = document[first_page].render(scale=150 / 72).to_pil()
        (found,) = [b for b in zxingcpp.read_barcodes(bitmap) if b.format == zxingcpp.BarcodeFormat.QRCode]
        query = parse_qs(urlsplit(found.text).query)
        assert (query["t1"], query["t2"]) == ([letter.codes.invitation_code], [letter.codes.access_code])
        first_page += count


def test_the_shapes_own_layer_holds_none_of_the_prototype_patients_data(renderers):
    fast, _ = renderers
    _render(fast, _letters(301, 6))
    prototypes = [p for p in fast.stamping.prototypes() if p.static_layers]
    assert prototypes
    for proto in prototypes:
        with pdfplumber.open(io.BytesIO(proto.static_layers[0][1])) as document:
            text = " ".join(page.extract_text() or "" for page in document.pages)
            assert not any(page.images for page in document.pages)  # the QR code is each letter's own
        assert "Common questions" not in text  # shared text is in the shared layer, not here
        assert proto.piece_id not in text
        for leaf, slot in proto.text_slots.items():
            assert stamp.displayed(proto.texts[leaf]) not in text, slot


@pytest.mark.parametrize("person, expires, why", [
    (("Mr", "Leo", "Patel", ("300 Station Road", "NORWICH", "NR2 4SX"), "SYN-5 referred by the respiratory team"),
     EXPIRES, "the reference wraps onto a second line"),
    (("Mr", "Aram", "Պետրոսյան", ("300 Station Road", "NORWICH", "NR2 4SX"), "SYN-5"), EXPIRES,
     "the name needs a fallback font (Armenian: DejaVu Sans has it, the template's Liberation Sans not)"),
    (("Mr", "Leo", "Patel", ("300 Station Road", "NORWICH", "NR2 4SX"), "SYN-5"), dt.date(2027, 1, 3),
     "the expiry date is inside a paragraph of several lines"),
    (("Mr", "Leo", "Patel\u00adson", ("300 Station Road", "NORWICH", "NR2 4SX"), "SYN-5"), EXPIRES,
     "a soft hyphen could break the line"),
])
def test_a_letter_whose_text_the_prototype_cannot_take_is_laid_out_in_full(renderers, person, expires, why):
    fast, full = renderers
    letters = [*_letters(401, 4), _letter(405, person, expires)]
    stamped = _render(fast, letters)
    assert stamped.stamped_letters == 4, why
    # laid out in full around the shared blocks, whose placeholders may land up to 0.01 px from where
    # the shared layer draws them (shared_layout._TOLERANCE_PX): a fallback font's line is that much taller
    _assert_same_print(stamped, _render(full, letters), tolerance=0.05)


def test_a_new_shape_is_laid_out_once_and_stamped_after():
    fast, full = _renderer(DEFAULT_TEMPLATE, True), _renderer(DEFAULT_TEMPLATE, False)
    seven_lines = ("Mr", "Leo", "Patel", ("Flat 9", "Block C", "300 Station Road", "Thorpe", "NORWICH", "NR2 4SX"), "")
    first = [_letter(1, seven_lines), _letter(2, seven_lines), _letter(3, PEOPLE[0]), _letter(4, seven_lines)]
    chunk = _render(fast, first)
    assert chunk.stamped_letters == 2  # the first letter of each shape laid out, the other two stamped from it
    _assert_same_print(chunk, _render(full, first))
    later = [_letter(5, seven_lines), _letter(6, PEOPLE[1])]
    second = _render(fast, later)
    assert second.stamped_letters == 1  # the seven-line shape is known; Zoë's five-line one is new
    _assert_same_print(second, _render(full, later))


def test_skeleton_takes_out_leaf_texts_and_data_images_only():
    body = ('<div class="a"><p class="x">Dear Ann,</p><p>Mixed <b>bold</b> text</p>'
            '<img class="qr" src="data:image/png;base64,AAAA"></div>')
    other = body.replace("Dear Ann,", "Dear Bob Smith,").replace("AAAA", "BBBB")
    shape, other_shape = stamp.skeleton(body), stamp.skeleton(other)
    assert shape.key == other_shape.key
    assert shape.texts == ("Dear Ann,", "bold") and other_shape.images == ('"data:image/png;base64,BBBB"',)
    assert stamp.skeleton(body.replace("Mixed", "Other")).key != shape.key  # mixed content is part of the shape
    numbered = stamp.marked(body, shape)
    assert f'<p class="x" {stamp.SLOT_ATTRIBUTE}="0">Dear Ann,</p>' in numbered
    assert f'<img {stamp.IMAGE_ATTRIBUTE}="0" class="qr"' in numbered
    assert stamp.skeleton("<p>unclosed<div></p>") is None


def test_displayed_text_is_what_html_white_space_rules_show():
    assert stamp.displayed("  Dear&nbsp;Mr\n  O&#39;Brien ") == "Dear\xa0Mr O'Brien"


@pytest.mark.parametrize("before, after", [
    ("<strong>{{ website }}</strong>", '<a href="{{ codes.join_url }}">{{ website }}</a>'),
    ("<h1>Your invitation", "<h1>{{ patient.first_name }}, your invitation"),
    ("<h1>Your invitation", '<p style="position: fixed; bottom: 30mm; left: 0">A note</p><h1>Your invitation'),
    ("<h1>Your invitation", "<style>@page { @top-left { content: element(who) } }</style>"
                            '<p style="position: running(who)">{{ patient.last_name }}</p><h1>Your invitation'),
], ids=["a link carrying the codes", "a bookmark naming the patient", "a fixed box, on every page of a chunk",
        "a running box, which a page without one takes from an earlier letter"])
def test_a_template_whose_pages_may_carry_another_letters_data_is_never_stamped(tmp_path, before, after):
    folder = edited_default_template(tmp_path / "invitation", before, after)
    fast = _renderer(folder, True)
    _render(fast, _letters(1, 6))
    letters = _letters(7, 6)
    later = _render(fast, letters)
    assert later.stamped_letters == 0
    if "href" in after:
        with pdfplumber.open(io.BytesIO(later.pdf)) as document:
            links = [a.get("uri") or "" for page in document.pages for a in page.annots]
        assert [sum(letter.codes.invitation_code in uri for uri in links) for letter in letters] == [1] * len(letters)


def test_tagged_pdfs_are_never_stamped():
    """A tagged PDF's structure tree comes from the boxes as WeasyPrint draws them, which stamping skips."""
    assert [stamp.tagged({"pdf_variant": v}) for v in ("pdf/x-4", "pdf/a-2b", "pdf/a-2a", "pdf/ua-1")] == \
        [False, False, True, True]
    assert stamp.tagged({"pdf_variant": "pdf/x-4", "pdf_tags": True})
    untagged = _renderer(DEFAULT_TEMPLATE, True)
    options = PrintOptions()
    tagged = ChunkRenderer(LetterTemplate(DEFAULT_TEMPLATE), SETTINGS, options.envelope, "",
                           {"pdf_variant": "pdf/ua-1"})
    assert untagged.stamping.enabled and not tagged.stamping.enabled


@pytest.mark.parametrize("separator, stamped", [("-", 4), (" ", 3)])
def test_a_text_sizing_its_own_box_is_stamped_only_if_its_pieces_are_as_wide(tmp_path, separator, stamped):
    """A table cell can be as narrow as its longest unbreakable piece: "SYN 1234" and "SYN1 234" are as
    wide as each other but break in different places, so could size the table differently; "SYN-1234"
    and "SYN1-234" have nowhere to break (no break between a hyphen and a digit)."""
    table = '<table class="ref"><tr><td>{{ patient.customer_ref }}</td></tr></table>\n  <h1>'
    folder = edited_default_template(tmp_path / "invitation", "<h1>", table)
    fast, full = _renderer(folder, True), _renderer(folder, False)

    def letters(numbers: range, reference: str) -> list[Letter]:
        return [_letter(n, (*PEOPLE[0][:4], reference.format(n=n % 10, separator=separator))) for n in numbers]

    _render(fast, letters(range(1, 7), "SYN{separator}{n}234"))
    later = letters(range(7, 11), "SYN{n}{separator}234")  # as wide as the first chunk's, cut elsewhere
    chunk = _render(fast, later)
    assert chunk.stamped_letters == stamped  # with a space: one laid out, a new prototype for the rest
    _assert_same_print(chunk, _render(full, later))


VARIANT_CELLS = [("", ""), ("large-print", ""), ("", "welsh"), ("", "welsh_then_english"), ("large-print", "welsh")]


def _variant_letters(first: int, count: int, salt: str = "vXyZ") -> list[Letter]:
    """Letters of every printed format and language, each variant of every person in turn."""
    letters = []
    for n in range(first, first + count):
        letter = _letter(n, PEOPLE[(n // len(VARIANT_CELLS)) % len(PEOPLE)], salt=salt)
        letter_format, language = VARIANT_CELLS[n % len(VARIANT_CELLS)]
        patient = dataclasses.replace(letter.patient, format=letter_format, language=language)
        letters.append(dataclasses.replace(letter, patient=patient))
    return letters


def test_large_print_and_welsh_letters_are_stamped_only_into_their_own_variants_prototypes():
    """Every variant's letters have the same words as a standard letter's leaves (the shape of a letter
    takes its texts out), so only the variant's wrapper keeps a large-print or Welsh letter from being
    drawn into a standard English prototype: stamped, each prints exactly as a full layout does."""
    fast, full = _renderer(DEFAULT_TEMPLATE, True), _renderer(DEFAULT_TEMPLATE, False)
    _render(fast, _variant_letters(1, 15))  # every variant's shapes seen once
    letters = _variant_letters(1, 15, salt="QrSt")  # the same people and variants, other codes
    stamped = _render(fast, letters)
    plain = sum(1 for letter in letters if not letter.patient.format and not letter.patient.language)
    assert stamped.stamped_letters > plain  # variants were stamped too, not only standard letters
    assert stamped.shared_letters <= plain  # the shared layer (laid out from standard letters) is theirs alone
    _assert_same_print(stamped, _render(full, letters))
