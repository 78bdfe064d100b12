"""pypdf's private and undocumented names the PDF layer uses (`pdf.pypdf_internals`), checked on real objects.

Each test fails if a pypdf upgrade renames or changes what the layer relies on; the module says which
release they were last checked against (`PYPDF_TESTED_ON`).
"""

from __future__ import annotations

import io
import re
import zlib
from pathlib import Path

import pikepdf
import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError
from pypdf.generic import DecodedStreamObject, IndirectObject, NameObject, StreamObject

import pkb_letters
from pkb_letters.pdf import pypdf_internals

DATA = b"0 0 0 1 k 10 10 20 10 re f\n" * 20


def compressed_stream_read_by_pypdf() -> StreamObject:
    """A FlateDecode stream, written by qpdf and read back by pypdf."""
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.pages[0].Contents = pikepdf.Stream(pdf, zlib.compress(DATA), Filter=pikepdf.Name.FlateDecode)
    buffer = io.BytesIO()
    pdf.save(buffer)
    return PdfReader(buffer).pages[0]["/Contents"].get_object()


def test_raw_data_is_the_stream_as_the_file_has_it_still_encoded():
    stream = compressed_stream_read_by_pypdf()
    assert pypdf_internals.raw_data(stream) == zlib.compress(DATA)
    assert stream.get_data() == DATA  # the public call decodes


def test_raw_data_copied_to_another_stream_is_written_as_it_was_read():
    source = compressed_stream_read_by_pypdf()
    copy = StreamObject()
    pypdf_internals.copy_raw_data(source, copy)
    copy[NameObject("/Filter")] = NameObject("/FlateDecode")
    written = io.BytesIO()
    copy.write_to_stream(written)
    assert zlib.compress(DATA) in written.getvalue()
    assert b"/Length %d" % len(zlib.compress(DATA)) in written.getvalue()


def test_an_object_added_to_a_writer_is_an_indirect_object_of_its_own():
    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    stream = DecodedStreamObject()
    stream.set_data(b"q Q")
    reference = pypdf_internals.add_object(writer, stream)
    assert isinstance(reference, IndirectObject)
    assert reference.get_object() is stream
    writer.pages[0][NameObject("/Contents")] = reference
    buffer = io.BytesIO()
    writer.write(buffer)
    with pikepdf.open(buffer) as pdf:
        assert pdf.pages[0].Contents.read_bytes() == b"q Q"


@pytest.mark.parametrize(("name", "written"), [
    ("/Plain", b"/Plain"), ("/A B", b"/A#20B"), ("/Hash#Tag", b"/Hash#23Tag"), ("/(x)", b"/#28x#29")])
def test_a_name_is_escaped_as_a_file_has_it(name, written):
    assert pypdf_internals.escaped_name(name) == written
    with pikepdf.open(io.BytesIO(_pdf_with_catalog_entry(written))) as pdf:
        assert str(next(iter(pdf.Root.Extra.keys()))) == name  # qpdf reads it back as the same name


def _pdf_with_catalog_entry(name: bytes) -> bytes:
    objects = [b"<< /Type /Catalog /Pages 2 0 R /Extra << %s 1 >> >>" % name, b"<< /Type /Pages /Count 0 /Kids [ ] >>"]
    out, offsets = io.BytesIO(), []
    out.write(b"%PDF-1.7\n")
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 3\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets))
    out.write(b"trailer\n<< /Size 3 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


class Document:
    """The least a document of our own must be for pypdf to parse objects in it: `strict`, and `get_object`."""

    def __init__(self, objects: dict[int, object], strict: bool = True) -> None:
        self.objects = objects
        self.strict = strict
        self.asked: list[int] = []

    def get_object(self, reference):
        self.asked.append(reference.idnum)
        return self.objects[reference.idnum]


def test_references_parsed_in_a_document_of_our_own_resolve_through_its_get_object():
    document = Document({7: 12})
    parsed = pypdf_internals.read_object_in(io.BytesIO(b"<< /Kids [ 5 0 R ] /Length 7 0 R >>"), document)
    kid = parsed.raw_get("/Kids")[0]
    assert isinstance(kid, IndirectObject) and (kid.idnum, kid.generation) == (5, 0)
    document.objects[5] = "the kid"
    assert kid.get_object() == "the kid"
    assert document.asked == [5]


def test_a_stream_length_given_as_a_reference_is_read_through_get_object():
    document = Document({7: 3})
    stream = pypdf_internals.read_object_in(io.BytesIO(b"<< /Length 7 0 R >>\nstream\nq Q\nendstream"), document)
    assert pypdf_internals.raw_data(stream) == b"q Q"
    assert document.asked == [7]


def test_a_strict_document_has_pypdf_raise_where_it_would_repair():
    """Repairing, pypdf would look through the document's cross-reference table (`xref`), which `LazyPdf`
    does not have: it is strict, and the file is read by qpdf instead."""
    damaged = b"<< /Length 5 >>\nstream\nq Q\nendstream"  # /Length too long
    with pytest.raises(PdfReadError):
        pypdf_internals.read_object_in(io.BytesIO(damaged), Document({}, strict=True))
    with pytest.raises(AttributeError, match="xref"):
        pypdf_internals.read_object_in(io.BytesIO(damaged), Document({}, strict=False))


def test_no_other_module_uses_a_private_pypdf_name():
    """Every private pypdf name is used in `pdf.pypdf_internals` alone."""
    source = Path(pkb_letters.__file__).parent
    # `._data` not followed by " import": the sandbox's own _data module is no pypdf name
    private = re.compile(r"\w\._data\b(?! import)|\._add_object\(|\.renumber\(\)|\bpypdf\._")
    found = [f"{path.relative_to(source)}: {line.strip()}"
             for path in source.rglob("*.py") if path.name != "pypdf_internals.py"
             for line in path.read_text().splitlines() if private.search(line)]
    assert found == []


def test_pyproject_pins_the_pypdf_these_were_checked_against():
    import tomllib

    pyproject = Path(pkb_letters.__file__).resolve().parents[2] / "pyproject.toml"
    dependencies = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    assert f"pypdf=={pypdf_internals.PYPDF_TESTED_ON}" in dependencies
