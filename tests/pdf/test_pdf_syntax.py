"""PDF syntax written: references renumbered in text (and nothing that only looks like one), and a file
of objects written in any order that qpdf reads without repairing."""

from __future__ import annotations

import io

import pikepdf
import pytest

from pkb_letters.pdf.syntax import ObjectFile, references, renumberer

TEXT = (b"<< /Kids [ 4 0 R 12 0 R ] /F12 3 0 R /Note (see 1 0 R \\) 2 0 R) /Hex <31 20 30 20 52> "
        b"/Gone 9 0 R /Real 1.5 0 R >>")


def test_references_are_found_in_order_and_strings_are_skipped():
    assert list(references(TEXT)) == [(4, 0), (12, 0), (3, 0), (9, 0)]


def test_references_are_renumbered_and_one_to_an_object_left_out_reads_as_null():
    numbers = {4: 1, 12: 2, 3: 3}
    renumber = renumberer(lambda number, generation: numbers.get(number))
    assert renumber(TEXT) == (b"<< /Kids [ 1 0 R 2 0 R ] /F12 3 0 R /Note (see 1 0 R \\) 2 0 R) "
                              b"/Hex <31 20 30 20 52> /Gone null /Real 1.5 0 R >>")


@pytest.mark.parametrize("text", [b"12 0 Rx", b"/Name12 0 R", b"#12 0 R"])
def test_what_only_ends_or_starts_like_a_reference_is_not_one(text):
    assert list(references(text)) == []


def test_objects_written_in_any_order_make_a_file_qpdf_reads_as_it_is():
    out = io.BytesIO()
    pdf = ObjectFile(out, "%PDF-1.7")
    catalog, pages, page, info = (pdf.allocate() for _ in range(4))
    pdf.write(page, b"<< /Type /Page /Parent %d 0 R /MediaBox [ 0 0 100 200 ] /Resources << >> >>" % pages)
    pdf.write(info, b"<< /Title (x) >>")
    pdf.write(pages, b"<< /Type /Pages /Count 1 /Kids [ %d 0 R ] >>" % page)
    pdf.write(catalog, b"<< /Type /Catalog /Pages %d 0 R >>" % pages)
    pdf.close(catalog, info, bytes(range(16)))
    with pikepdf.open(io.BytesIO(out.getvalue())) as read:
        assert read.check_pdf_syntax() == [] and read.get_warnings() == []  # nothing to repair
        assert [float(v) for v in read.pages[0].MediaBox] == [0, 0, 100, 200]
        assert str(read.docinfo.Title) == "x"
        assert [bytes(part) for part in read.trailer.ID] == [bytes(range(16))] * 2
