"""A PDF of the one shape our print files have, read an object at a time through its cross-reference table.

Takes the path of a PDF; gives its objects, parsed by pypdf's own object parser, one at a
time as they are asked for, and nothing else: what it holds depends on the objects asked for,
not on the size of the file. qpdf and PDFium read the whole cross-reference table when they
open a file (about 0.4 KB a page of a print file), which is what made a preflight worker grow
with the file it checks a few pages of.

`pdfstream.StreamingPdfWriter` writes one classic cross-reference table (``xref``, ``0 N``,
then N entries of exactly 20 bytes), a trailer with /Size and /Root and no /Prev, no
/XRefStm, no /Encrypt, and no object streams. Object N's entry is then at a known place, so
its offset is read by seeking there, not by reading the table. Another writer's file of that
shape (qpdf writes one when it need not write object streams) is read so too; a file of any other
(several sections, an incremental update, a cross-reference stream, an encrypted or damaged
file) raises `NotLazilyReadable`, and so does an object that is not where
its entry says, or that pypdf, told to be strict, would have to repair: the caller reads the
file with qpdf instead, which repairs what it can as it always has. A reference to an object the
table does not have (a free entry, a number beyond /Size) raises too, rather than reading as the
null the standard makes of it: our writer never writes one, so it says the file is not ours.

Nothing is kept but the trailer and the last few page tree nodes read (`_NODES_KEPT`): walking
down the tree, and up it again for the attributes a page inherits, reads the same few nodes over
and over.
"""

from __future__ import annotations

import io
import os
import re
from collections import OrderedDict
from pathlib import Path

from pypdf._utils import read_non_whitespace
from pypdf.generic import DictionaryObject, IndirectObject, PdfObject, read_object

__all__ = ["LazyPdf", "NotLazilyReadable", "resolved"]

_ENTRY_BYTES = 20  # ISO 32000-1, 7.5.4: "nnnnnnnnnn ggggg n" and a two-byte end of line
_ENTRY = re.compile(rb"(\d{10}) (\d{5}) n(?: \r| \n|\r\n)")
_TAIL_BYTES = 1024  # the end of the file, where "startxref" must be
_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*\Z")
_TABLE = re.compile(rb"xref(?:\r\n|\r|\n)0 (\d+) ?(?:\r\n|\r|\n)")
_TRAILER = re.compile(rb"\s*trailer\s*")
_HEADER = re.compile(rb"(\d+)\s+(\d+)\s+obj\s*")
# Most objects of a print file are smaller: parsed from memory, pypdf's parser is a sixth faster than
# from the file (the parser reads a byte at a time and steps back).
_CHUNK_BYTES = 4096
_NODES_KEPT = 8  # page tree nodes: those above the pages being read, where their inherited attributes are
_FOREIGN_TRAILER_KEYS = ("/Prev", "/XRefStm", "/Encrypt")


class NotLazilyReadable(Exception):
    """The file is not of the shape `LazyPdf` reads, or an object of it is not where its table says."""


class LazyPdf:
    """A PDF of our print files' shape, open for reading objects one by one (`get_object`).
    Raises `NotLazilyReadable` on a file of another shape. Objects are parsed by pypdf, which
    is given this reader as the document its references (`IndirectObject`) resolve in."""

    strict = True  # pypdf raises where it would repair: repairing is qpdf's to do

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 -- closed by close()
        self._nodes: OrderedDict[tuple[int, int], DictionaryObject] = OrderedDict()
        try:
            self._entries, self._size = self._find_table()
            self.trailer = self._read_trailer()
        except Exception:
            self._file.close()
            raise

    def close(self) -> None:
        self._file.close()
        self._nodes.clear()

    def __enter__(self) -> LazyPdf:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def root(self) -> DictionaryObject:
        """The document catalog."""
        root = self.trailer.raw_get("/Root").get_object()
        if not isinstance(root, DictionaryObject):
            raise NotLazilyReadable("the trailer's /Root is not a dictionary")
        return root

    def get_object(self, reference: IndirectObject | int) -> PdfObject:
        """The object `reference` points to, read from the file (a page tree node may be kept)."""
        if isinstance(reference, int):
            reference = IndirectObject(reference, 0, self)
        key = (reference.idnum, reference.generation)
        node = self._nodes.get(key)
        if node is not None:
            self._nodes.move_to_end(key)
            return node
        obj = self._read(*key)
        if isinstance(obj, DictionaryObject) and "/Kids" in obj:
            self._nodes[key] = obj
            if len(self._nodes) > _NODES_KEPT:
                self._nodes.popitem(last=False)
        return obj

    def _find_table(self) -> tuple[int, int]:
        """Where the table's first entry is, and its number of entries: there must be one section, from 0."""
        end = self._file.seek(0, os.SEEK_END)
        self._file.seek(max(end - _TAIL_BYTES, 0))
        found = _STARTXREF.search(self._file.read())
        if found is None:
            raise NotLazilyReadable("the file does not end in startxref and %%EOF")
        start = int(found[1])
        self._file.seek(start)
        table = _TABLE.match(self._file.read(64))
        if table is None:
            raise NotLazilyReadable("startxref does not point to a classic table whose one section starts at 0")
        return start + table.end(), int(table[1])

    def _read_trailer(self) -> DictionaryObject:
        self._file.seek(self._entries + _ENTRY_BYTES * self._size)
        word = _TRAILER.match(self._file.read(64))
        if word is None:  # a second section, or entries not 20 bytes long
            raise NotLazilyReadable("the table is not one section of 20-byte entries followed by its trailer")
        self._file.seek(self._entries + _ENTRY_BYTES * self._size + word.end())
        trailer = read_object(self._file, self)
        if not isinstance(trailer, DictionaryObject):
            raise NotLazilyReadable("the trailer is not a dictionary")
        found = [key for key in _FOREIGN_TRAILER_KEYS if key in trailer]
        if found:
            raise NotLazilyReadable(f"the trailer has {', '.join(found)}")
        if trailer.get("/Size") != self._size or not isinstance(trailer.get("/Root"), IndirectObject):
            raise NotLazilyReadable("the trailer's /Size is not the table's, or it has no /Root reference")
        return trailer

    def _offset(self, number: int, generation: int) -> int:
        if not 0 < number < self._size:
            raise NotLazilyReadable(f"object {number} {generation} R is not in the table")
        self._file.seek(self._entries + _ENTRY_BYTES * number)
        entry = _ENTRY.fullmatch(self._file.read(_ENTRY_BYTES))
        if entry is None or int(entry[2]) != generation:
            raise NotLazilyReadable(f"object {number} {generation} R has no entry in use in the table")
        return int(entry[1])

    def _read(self, number: int, generation: int) -> PdfObject:
        offset = self._offset(number, generation)
        self._file.seek(offset)
        chunk = self._file.read(_CHUNK_BYTES)
        header = _HEADER.match(chunk)
        if header is None or (int(header[1]), int(header[2])) != (number, generation):
            raise NotLazilyReadable(f"the table's entry for object {number} {generation} R points elsewhere")
        try:  # an object read whole, up to its endobj, from the chunk is the object: anything cut short fails
            obj = self._parse(io.BytesIO(chunk), header.end())
        except Exception:
            if len(chunk) < _CHUNK_BYTES:  # the file ended within the chunk: the object is as it is
                raise
            obj = self._parse(self._file, offset + header.end())  # longer than a chunk: read from the file
        obj.indirect_reference = IndirectObject(number, generation, self)
        return obj

    def _parse(self, stream, start: int) -> PdfObject:
        stream.seek(start)
        obj = read_object(stream, self)
        if read_non_whitespace(stream) + stream.read(5) != b"endobj":
            raise NotLazilyReadable(f"the object at byte {start} does not end in endobj")
        return obj

def resolved(value):
    """The object a pypdf reference points to; any other value as it is (pikepdf's come resolved)."""
    return value.get_object() if isinstance(value, IndirectObject) else value
