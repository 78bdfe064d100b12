"""The streamed print file's page tree: balanced, and read back page by page by every reader we use."""

from __future__ import annotations

import io
from pathlib import Path

import pikepdf
import pypdfium2
import pytest
from pypdf import PdfReader

from pkb_letters import pdfstream
from pkb_letters.page_facts import MM_PER_POINT, PdfPages

# across the first node's edge, the second level's edge, and one past it
SIZES = [1, pdfstream._FANOUT + 1, pdfstream._FANOUT**pdfstream._LEVELS + 1]


def blank_pages(count: int) -> bytes:
    """`count` blank pages, each a different width, so a page found at the wrong place shows."""
    buffer = io.BytesIO()
    writer = pdfstream.StreamingPdfWriter(buffer)
    for index in range(count):
        writer.add_blank_page(500.0 + index % 97, 842.0)
    writer.close({}, {})
    assert writer.page_count == count
    return buffer.getvalue()


def width(index: int) -> float:
    return 500.0 + index % 97


@pytest.mark.parametrize("count", SIZES)
def test_every_reader_finds_every_page_in_order(count, tmp_path):
    path = tmp_path / "pages.pdf"
    path.write_bytes(blank_pages(count))
    expected = [width(i) for i in range(count)]
    assert [float(p.mediabox.width) for p in PdfReader(path).pages] == expected
    with pikepdf.open(path) as pdf:
        assert [float(p.mediabox[2]) for p in pdf.pages] == expected
    document = pypdfium2.PdfDocument(path)
    try:
        assert len(document) == count
        assert document[count - 1].get_size()[0] == pytest.approx(expected[-1], abs=0.01)
    finally:
        document.close()
    with PdfPages(path) as pages:
        assert len(pages) == count
        assert [round(pages.size_mm(n)[0] / MM_PER_POINT, 3) for n in range(1, count + 1)] == expected


def test_no_page_tree_node_holds_more_than_the_fanout(tmp_path):
    path = tmp_path / "pages.pdf"
    path.write_bytes(blank_pages(SIZES[-1]))
    with pikepdf.open(path) as pdf:
        nodes = [pdf.Root.Pages]
        while nodes:
            node = nodes.pop()
            kids = list(node.Kids)
            assert len(kids) <= pdfstream._FANOUT or node.objgen == pdf.Root.Pages.objgen
            assert int(node.Count) == sum(int(k.Count) if "/Kids" in k else 1 for k in kids)
            nodes += [k for k in kids if "/Kids" in k]


def test_a_page_out_of_range_is_an_error(tmp_path):
    path = Path(tmp_path / "pages.pdf")
    path.write_bytes(blank_pages(3))
    with PdfPages(path) as pages, pytest.raises(IndexError):
        pages.size_mm(4)
