"""A page's inherited attributes: one lookup, alike whichever library parsed the page, and alike in
what a chunk's page copied into a print file and an excerpt of it get."""

from __future__ import annotations

import io
from pathlib import Path

import pikepdf
import pytest

from pkb_letters.pdf.chunk_copy import ChunkCopier
from pkb_letters.pdf.excerpt import excerpt
from pkb_letters.pdf.lazy import LazyPdf, resolved
from pkb_letters.pdf.pages import INHERITABLE, PageTree, inherited, inherited_attributes
from pkb_letters.pdf.writer import StreamingPdfWriter


def pages_under_a_rotated_node(path: Path) -> None:
    """Two pages under a node that sets /Rotate 90, /MediaBox and /Resources; the second page has its
    own /Rotate 180."""
    with pikepdf.new() as pdf:
        for own in ({}, {"/Rotate": 180}):
            page = pikepdf.Dictionary({"/Type": pikepdf.Name.Page, "/Contents": pdf.make_stream(b"q Q"), **own})
            pdf.pages.append(pikepdf.Page(pdf.make_indirect(page)))
        pdf.Root.Pages.Rotate = 90
        pdf.Root.Pages.MediaBox = pikepdf.Array([0, 0, 500, 800])
        pdf.Root.Pages.Resources = pikepdf.Dictionary(ProcSet=[pikepdf.Name.PDF])
        pdf.save(path)


@pytest.fixture
def path(tmp_path) -> Path:
    path = tmp_path / "rotated.pdf"
    pages_under_a_rotated_node(path)
    return path


def test_pikepdf_and_pypdf_pages_inherit_alike(path):
    from pypdf.generic import NullObject

    with pikepdf.open(path, inherit_page_attributes=False) as pdf:
        by_qpdf = [{key: str(value) if isinstance(value, pikepdf.Object) else value
                    for key, value in inherited_attributes(PageTree(pdf.Root.Pages).page(n)).items()}
                   for n in (1, 2)]
    with LazyPdf(path) as pdf:
        tree = PageTree(pdf.root["/Pages"], resolved)
        by_pypdf = [inherited_attributes(tree.page(n), resolved, NullObject) for n in (1, 2)]
        assert [int(inherited(tree.page(n), "/Rotate", resolved, NullObject)) for n in (1, 2)] == [90, 180]
    assert [page["/Rotate"] for page in by_qpdf] == [90, 180]
    assert [int(page["/Rotate"]) for page in by_pypdf] == [90, 180]
    assert [sorted(page) for page in by_qpdf] == [sorted(page) for page in by_pypdf] == [
        sorted(set(INHERITABLE) - {"/CropBox"})] * 2


def test_a_null_is_no_attribute_and_the_page_inherits():
    from pypdf.generic import DictionaryObject, NameObject, NullObject, NumberObject

    node = DictionaryObject({NameObject("/Rotate"): NumberObject(90)})
    page = DictionaryObject({NameObject("/Rotate"): NullObject(), NameObject("/Parent"): node})
    assert inherited(page, "/Rotate", null=NullObject) == 90
    assert inherited_attributes(page, null=NullObject) == {"/Rotate": 90}


def test_a_page_is_none_of_a_non_dictionary_s_attributes():
    assert inherited(pikepdf.Array([1]), "/Rotate") is None
    assert inherited(None, "/Rotate") is None


def test_a_chunk_page_inheriting_a_number_is_copied_with_it(path):
    """qpdf gives an inherited number as Python's int: the copier writes it all the same."""
    with io.BytesIO() as out:
        writer = StreamingPdfWriter(out)
        copier = ChunkCopier(path, writer)
        try:
            first, second = copier.page(0), copier.page(1)
            assert b"/Rotate 90" in first.entries and (first.width, first.height) == (500, 800)
            assert b"/Rotate 180" in second.entries and b"/Rotate 90" not in second.entries
            copier.copy_page(first)
        finally:
            copier.close()
        writer.close({}, {})
        with pikepdf.open(io.BytesIO(out.getvalue())) as copied:
            assert int(copied.pages[0].Rotate) == 90


def test_an_excerpt_s_pages_carry_what_they_inherit(path):
    with pikepdf.open(path, inherit_page_attributes=False) as pdf:
        data = excerpt(pdf, [pdf.pages[0].obj, pdf.pages[1].obj])
    with pikepdf.open(io.BytesIO(data), inherit_page_attributes=False) as cut:
        assert [int(page.obj.Rotate) for page in cut.pages] == [90, 180]
        assert all("/MediaBox" in page.obj and "/Resources" in page.obj for page in cut.pages)
