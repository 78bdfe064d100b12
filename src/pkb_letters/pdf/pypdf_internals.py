"""Every use of pypdf's private or undocumented names, in one place, next to the pypdf they were tested on.

Takes pypdf objects; gives what pypdf has no public call for: a stream's data as read, still
encoded; a bare object added to a writer; a name escaped as the file writes it; objects parsed
with a document of our own (`lazy.LazyPdf`) as the one their references resolve in. Nothing else
in the project reaches into pypdf; `tests/pdf/test_pdf_pypdf_internals.py` checks each of these on real
objects and fails if a pypdf upgrade changes it. pikepdf is used through its public names only.
"""

from __future__ import annotations

from typing import BinaryIO

from pypdf import PdfWriter
from pypdf.generic import IndirectObject, NameObject, PdfObject, StreamObject, read_object

PYPDF_TESTED_ON = "7.1.1"  # pyproject.toml pins it (tests/pdf/test_pdf_pypdf_internals.py keeps them in step)


def raw_data(stream: StreamObject) -> bytes:
    """The stream's data as the file has it, still encoded: pypdf keeps it in `_data` (`get_data` decodes)."""
    return stream._data


def copy_raw_data(source: StreamObject, target: StreamObject) -> None:
    """Give `target` the stream data of `source` as read, still encoded, to be written as it was read
    (`set_data` would take it for decoded data, and encode it again)."""
    target._data = source._data


def add_object(writer: PdfWriter, obj: PdfObject) -> IndirectObject:
    """Add `obj` to the writer as an indirect object of its own: pypdf has no public call for a bare
    object; `_add_object` is what its own helpers use."""
    return writer._add_object(obj)


def escaped_name(name: str) -> bytes:
    """A name in ASCII as a file has it, each delimiter, space or # escaped as #xx (`NameObject.renumber`,
    which pypdf's writer uses and does not document)."""
    return NameObject(name).renumber()


def read_object_in(stream: BinaryIO, document) -> PdfObject:
    """The object at `stream`'s position, parsed by pypdf with `document` as the document it is read
    from. `read_object` is public; what it asks of the document is pypdf's private PdfReaderProtocol:
    `strict` (raise, rather than repair), and `get_object(reference)`, which each reference it makes
    (`IndirectObject.get_object`) and a stream's /Length given as a reference resolve through."""
    return read_object(stream, document)
