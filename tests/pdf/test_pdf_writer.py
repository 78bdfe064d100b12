"""The streamed print file's page tree: balanced, and read back page by page by every reader we use."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pikepdf
import pypdfium2
import pytest
from pdf_inspect import pages_read
from pypdf import PdfReader

from pkb_letters.check.page_facts import MM_PER_POINT, PdfPages
from pkb_letters.envelope import Rect
from pkb_letters.pdf import writer as pdf_writer

# across the first node's edge, the second level's edge, and one past it
SIZES = [1, pdf_writer._FANOUT + 1, pdf_writer._FANOUT**pdf_writer._LEVELS + 1]


def blank_pages(count: int) -> bytes:
    """`count` blank pages, each a different width, so a page found at the wrong place shows."""
    buffer = io.BytesIO()
    writer = pdf_writer.StreamingPdfWriter(buffer)
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
            assert len(kids) <= pdf_writer._FANOUT or node.objgen == pdf.Root.Pages.objgen
            assert int(node.Count) == sum(int(k.Count) if "/Kids" in k else 1 for k in kids)
            nodes += [k for k in kids if "/Kids" in k]


def test_a_page_out_of_range_is_an_error(tmp_path):
    path = Path(tmp_path / "pages.pdf")
    path.write_bytes(blank_pages(3))
    with PdfPages(path) as pages, pytest.raises(IndexError):
        pages.size_mm(4)


# PDFium parses every page before the one it is asked for (about 1.8 KB a page of a print file) and
# keeps it until the file is closed; the reader of a range of pages gives it only those pages.
READ_PAGES = """
import resource, sys
from pathlib import Path
from pkb_letters.check.page_facts import PdfPages
first, last = int(sys.argv[2]), int(sys.argv[3])
with PdfPages(Path(sys.argv[1]), range(first, last + 1)) as pages:
    for number in range(first, last + 1):
        pages.words(number)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB, on Linux
"""


def peak_memory_reading(path: Path, first: int, last: int) -> int:
    """Peak resident KiB of a fresh process that reads the words of pages first..last."""
    source = Path(pdf_writer.__file__).parents[2]
    completed = subprocess.run([sys.executable, "-c", READ_PAGES, str(path), str(first), str(last)],
                               check=True, capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join([str(source), os.environ.get(
                                   "PYTHONPATH", "")])})
    return int(completed.stdout)


def test_reading_the_last_pages_of_a_big_file_costs_what_reading_the_first_does(tmp_path):
    count = 20_000  # reading the last 100 pages without the excerpt costs about 33 MB more than the first 100
    path = tmp_path / "pages.pdf"
    path.write_bytes(blank_pages(count))
    at_start = peak_memory_reading(path, 1, 100)
    at_end = peak_memory_reading(path, count - 99, count)
    assert at_end - at_start < 8 * 1024


def test_pdfium_is_given_only_the_pages_a_reader_is_opened_for(tmp_path):
    count = SIZES[-1]
    path = tmp_path / "pages.pdf"
    path.write_bytes(blank_pages(count))
    numbers = range(count - 70, count + 1)  # across the edge of the root's first kid
    with PdfPages(path, numbers) as pages:
        assert len(pages) == count
        assert pages_read(pages) == len(numbers)
        assert [round(pages.size_mm(n)[0] / MM_PER_POINT, 3) for n in numbers] == [width(n - 1) for n in numbers]
        assert all(pages.is_empty(n) for n in numbers)
        whole_page = Rect(0, 0, 1000, 1000)  # rendered at 72 dpi, a page is as many pixels wide as points
        assert [pages.render_mm(n, whole_page, 72).width for n in numbers] == [round(width(n - 1)) for n in numbers]
        with pytest.raises(IndexError):
            pages.is_empty(numbers[0] - 1)
    with PdfPages(path, range(1, 3)) as pages, pytest.raises(IndexError):
        pages.is_empty(3)
    with pytest.raises(IndexError):
        PdfPages(path, range(count, count + 2))


def test_pages_that_cannot_be_read_on_their_own_are_read_from_the_whole_file(tmp_path, monkeypatch, caplog):
    from pkb_letters.check import page_facts

    def cannot(pdf, pages):
        raise pikepdf.PdfError("a stream qpdf cannot read")

    path = tmp_path / "pages.pdf"
    path.write_bytes(blank_pages(5))
    monkeypatch.setattr(page_facts, "excerpt", cannot)
    with PdfPages(path, range(3, 5)) as pages:
        assert pages_read(pages) == 5
        assert [round(pages.size_mm(n)[0] / MM_PER_POINT, 3) for n in (3, 4)] == [width(2), width(3)]
    assert "pages 3-4 of pages.pdf cannot be read on their own" in caplog.text
