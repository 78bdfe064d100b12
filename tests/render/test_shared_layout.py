"""The fast path (shared blocks laid out once per job) prints exactly what a full layout prints."""

from __future__ import annotations

import datetime as dt
import io
import shutil
from pathlib import Path

import pdfplumber
import pytest
from pypdf import PdfReader

from pkb_letters.assemble import marks, print_options
from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.config import DEFAULT_TEMPLATE, LetterSettings
from pkb_letters.records import CodePair, Letter, PatientRow
from pkb_letters.render.chunks import ChunkRenderer, LetterTemplate
from pkb_letters.render.shared_layout import SharedLayout, element_spans, shared_candidates

SETTINGS = LetterSettings(organisation="Synthetic NHS Trust", contact="0113 496 0000", signatory="Dr A Example",
                          signatory_role="Caldicott Guardian", date=dt.date(2026, 11, 21))


def _patients() -> list[tuple[PatientRow, CodePair]]:
    people = [
        ("Mrs", "Amelia", "Smith", ("12 High Street", "LEEDS", "LS6 1BN"), "SYN-1"),
        ("", "Zoë", "O'Brien-Ng", ("Flat 3", "Tŷ Gwyn", "2 Heol y Dŵr", "CARDIFF", "CF10 1EP"), ""),
        ("Dr", "Rhys", "Davies", ("BFPO 105",), "SYN-3"),
        # a reference long enough to wrap in the template below: the blocks after it move, so it cannot share
        ("Ms", "Ivy", "Wilson", ("1 Long Road", "YORK", "YO1 7HH"), "SYN-4 " + "referred by the community "
         "respiratory team after the winter clinic review, please keep with the patient's notes " * 2),
        ("Mr", "Leo", "Patel", ("300 Station Road", "NORWICH", "NR2 4SX"), "SYN-5"),
    ]
    rows = []
    for number, (title, first, last, lines, ref) in enumerate(people, 2):
        postcode = lines[-1] if lines[-1][-1].isalpha() and " " in lines[-1] else ""
        rows.append((PatientRow(number, ref, "4000000004", title, first, last, None, lines, postcode),
                     CodePair(f"Inv{number:07d}", f"acc{number:07d}", dt.date(2026, 12, 21 - number))))
    return rows


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The default letter with the patient's reference printed above the heading, where it can wrap."""
    folder = tmp_path_factory.mktemp("template") / "invitation"
    shutil.copytree(DEFAULT_TEMPLATE, folder)
    html = (folder / "letter.html").read_text(encoding="utf-8")
    html = html.replace("<h1>", '<p class="note">{{ patient.customer_ref }}</p>\n  <h1>', 1)
    (folder / "letter.html").write_text(html, encoding="utf-8")
    return folder


def _renderer(template: Path, share: bool) -> ChunkRenderer:
    options = PrintOptions()
    page = marks.reserve_space(options.envelope, options.marks, marks.sample_payload("JOB1"))
    return ChunkRenderer(LetterTemplate(template), SETTINGS, page, print_options.print_css(options),
                         print_options.pdf_options(options), share_layout=share)


def _render(template: Path, share: bool):
    renderer = _renderer(template, share)
    letters = [Letter(n, f"JOB1-{n:06d}", p, c) for n, (p, c) in enumerate(_patients(), 1)]
    bodies = [renderer.body(letter) for letter in letters]
    return renderer, renderer.render(letters, bodies)


def _words(pdf: bytes) -> list[list[tuple]]:
    with pdfplumber.open(io.BytesIO(pdf)) as document:
        return [sorted((round(c["x0"], 2), round(c["top"], 2), c["text"], c["fontname"].split("+")[-1],
                        round(c["size"], 2), tuple(c["non_stroking_color"] or ()))
                       for c in page.chars) for page in document.pages]


@pytest.fixture(scope="module", params=["default", "with-reference"])
def both(request, template):
    folder = DEFAULT_TEMPLATE if request.param == "default" else template
    return _render(folder, share=False), _render(folder, share=True)


def test_the_fast_path_prints_every_character_where_a_full_layout_does(both):
    (_, full), (_, fast) = both
    assert fast.page_counts == full.page_counts
    full_pages, fast_pages = _words(full.pdf), _words(fast.pdf)
    assert len(full_pages) == len(fast_pages) == sum(full.page_counts)
    for number, (expected, got) in enumerate(zip(full_pages, fast_pages, strict=True), 1):
        assert got == expected, f"page {number} differs"


def test_most_letters_share_and_the_one_whose_text_wraps_above_shared_text_is_laid_out_in_full(both):
    (_, full), (renderer, fast) = both
    assert full.shared_letters == 0
    # with the reference printed above the heading: the empty one (Zoë's) and the long one change its height
    moved = 2 if "note" in renderer.template.directory.joinpath("letter.html").read_text() else 0
    assert fast.shared_letters == len(_patients()) - moved
    shared = renderer.shared_layout()
    assert isinstance(shared, SharedLayout) and len(shared.blocks) >= 5


def test_shared_text_is_drawn_once_per_chunk_as_a_form_not_per_letter(both):
    (_, full), (_, fast) = both
    fast_pages = PdfReader(io.BytesIO(fast.pdf)).pages
    forms = {id(xobject.get_object())
             for page in fast_pages
             for name, xobject in (page["/Resources"].get("/XObject") or {}).items() if name.startswith("/PkbShared")}
    assert 1 <= len(forms) <= 2  # one per page of the prototype letter, whatever the number of letters
    assert fast.pdf[:8] == full.pdf[:8]  # the same PDF version, which PDF/X-4 depends on


def test_no_patient_data_is_in_the_shared_layer(both):
    (_, _), (renderer, _) = both
    with pdfplumber.open(io.BytesIO(renderer.shared_layout().pdf)) as document:
        text = " ".join(page.extract_text() or "" for page in document.pages)
    assert "Probe" not in text and "Alpha" not in text and "AAAAAAAAAA" not in text
    assert "Common questions" in text and "Synthetic NHS Trust" in text


def test_a_letter_whose_html_differs_around_the_shared_blocks_is_laid_out_in_full(both):
    (_, _), (renderer, _) = both
    shared = renderer.shared_layout()
    letter = Letter(1, "JOB1-000001", *_patients()[0])
    body = renderer.body(letter)
    assert shared.placeholders(body) is not None
    nested = body.replace('<main class="pkb-body">', '<main class="pkb-body other">')
    assert shared.placeholders(nested) is None


def test_candidates_are_only_elements_identical_for_two_different_patients():
    first = "<div><p>Hello Ann</p><p>Same text</p><ul><li>x</li></ul></div>"
    second = "<div><p>Hello Bob</p><p>Same text</p><ul><li>x</li></ul></div>"
    found = [first[s.start:s.end] for s in shared_candidates(first, second)]
    assert "<p>Same text</p>" in found and "<ul><li>x</li></ul>" in found
    assert not any("Ann" in html for html in found)


def test_html_that_does_not_nest_cleanly_is_never_shared():
    assert element_spans("<div><p>unclosed</div>") is None
    assert shared_candidates("<p>a<p>b", "<p>a<p>b") == []


def test_a_job_renders_the_same_letters_with_and_without_sharing(tmp_path: Path, both):
    (_, full), (_, fast) = both
    text_full = [page.extract_text() for page in PdfReader(io.BytesIO(full.pdf)).pages]
    text_fast = [page.extract_text() for page in PdfReader(io.BytesIO(fast.pdf)).pages]
    assert [set(t.split()) for t in text_fast] == [set(t.split()) for t in text_full]
