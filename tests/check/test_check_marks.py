"""The check reads DataMatrix marks with zxing-cpp, and with libdmtx where zxing-cpp reads none."""

from __future__ import annotations

import pikepdf
import pytest

from pkb_letters.assemble import marks
from pkb_letters.assemble.marks import MarkKind
from pkb_letters.check import print_check
from pkb_letters.check.page_facts import PdfPages

LAYOUT = marks.DEFAULT_LAYOUTS[MarkKind.DATAMATRIX]
PAYLOADS = [marks.datamatrix_payload("PKB-20261121-54D442", n, 1, 1) for n in (1, 2, 345678)]


@pytest.fixture(scope="module")
def marked(tmp_path_factory):
    """A page per payload with its mark drawn, then a page with none."""
    path = tmp_path_factory.mktemp("marks") / "marked.pdf"
    with pikepdf.new() as pdf:
        for operators in [*(marks.draw(LAYOUT, payload) for payload in PAYLOADS), b""]:
            pdf.add_blank_page(page_size=(595.28, 841.89))
            pdf.pages[-1].Contents = pdf.make_stream(operators)
        pdf.save(path)
    return path


def read_all(path) -> list[str | None]:
    zone = marks.clear_zone(LAYOUT, marks.sample_payload("PKB-00000000-000000"))
    with PdfPages(path) as pdf:
        return [print_check._decode_datamatrix(pdf, number, LAYOUT, zone) for number in range(1, len(pdf) + 1)]


def test_each_mark_reads_as_its_payload(marked):
    assert read_all(marked) == [*PAYLOADS, None]


def test_libdmtx_reads_every_mark_zxing_cpp_does_not(marked, monkeypatch):
    calls = []
    monkeypatch.setattr(print_check.zxingcpp, "read_barcode", lambda *args, **kwargs: calls.append(args) or None)
    assert read_all(marked) == [*PAYLOADS, None]
    assert len(calls) == len(PAYLOADS)  # the blank zone was not given to either reader


def test_zxing_cpp_reads_what_libdmtx_reads(marked, monkeypatch):
    monkeypatch.setattr(print_check.pylibdmtx, "decode", lambda *args, **kwargs: pytest.fail("libdmtx was asked"))
    assert read_all(marked) == [*PAYLOADS, None]
