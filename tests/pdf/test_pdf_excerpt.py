"""Pages cut out of a PDF into a PDF of their own: what they use comes along, other pages do not."""

from __future__ import annotations

import io

import pikepdf

from pkb_letters.pdf.excerpt import excerpt


def three_linked_pages() -> pikepdf.Pdf:
    """Three pages; the second has a note whose text looks like a reference, and a link to the first."""
    pdf = pikepdf.new()
    for n in range(3):
        pdf.add_blank_page(page_size=(500 + n, 842))
        pdf.pages[-1].Contents = pdf.make_stream(f"0 0 0 1 k 10 10 {n + 1}0 10 re f".encode())
    add_note_and_link(pdf, "see 1 0 R (and 4 0 R)")
    return pdf


def add_note_and_link(pdf: pikepdf.Pdf, note_text: str) -> None:
    """On the second page: a note saying `note_text`, pointing back at its page, and a link to the first page."""
    second = pdf.pages[1]
    note = pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Text, Rect=[0, 0, 10, 10],
                              Contents=pikepdf.String(note_text), P=second.obj)
    link = pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Link, Rect=[0, 20, 10, 30],
                              Dest=[pdf.pages[0].obj, pikepdf.Name.Fit])
    second.Annots = pdf.make_indirect([pdf.make_indirect(note), pdf.make_indirect(link)])


def test_an_excerpt_holds_its_pages_and_what_they_use_and_no_other_page():
    with three_linked_pages() as pdf, pikepdf.open(io.BytesIO(excerpt(pdf, [pdf.pages[1].obj]))) as cut:
        assert len(cut.pages) == 1
        page = cut.pages[0]
        assert [float(v) for v in page.MediaBox] == [0, 0, 501, 842]
        assert page.Contents.read_bytes() == b"0 0 0 1 k 10 10 20 10 re f"
        note, link = page.Annots
        assert str(note.Contents) == "see 1 0 R (and 4 0 R)"  # text, not references: left as it was
        assert note.P.objgen == page.obj.objgen
        assert link.Dest[0] is None  # the first page is not in the excerpt: the reference reads as null
        assert sum(1 for obj in cut.objects if isinstance(obj, pikepdf.Dictionary)
                   and obj.get("/Type") == pikepdf.Name.Page) == 1


def test_pages_come_in_the_order_asked_for():
    with three_linked_pages() as pdf:
        chosen = [pdf.pages[2].obj, pdf.pages[0].obj]
        with pikepdf.open(io.BytesIO(excerpt(pdf, chosen))) as cut:
            assert [float(p.MediaBox[2]) for p in cut.pages] == [502, 500]
