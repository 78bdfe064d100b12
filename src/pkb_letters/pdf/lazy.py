"""A PDF of the one shape our print files have, read an object at a time through its cross-reference table.

Takes the path of a PDF; gives its objects, parsed by pypdf's own object parser, one at a
time as they are asked for, and nothing else: what it holds depends on the objects asked for,
not on the size of the file. qpdf and PDFium read the whole cross-reference table when they
open a file, which is what made a preflight worker grow with the file it checks a few pages of.

`writer.StreamingPdfWriter` writes one classic cross-reference table, whose entry for object
N is found without reading the rest (`xref_table`), and a trailer with /Size and /Root and no
/Prev, no /XRefStm, no /Encrypt; no object streams. Another writer's file of that shape (qpdf
writes one when it need not write object streams) is read so too; a file of any other shape
(several sections, an incremental update, a cross-reference stream, an encrypted or damaged
file) raises `NotLazilyReadable`, and so does an object that is not where its entry says, or
that pypdf, told to be strict, would have to repair: the caller reads the file with qpdf instead,
which repairs what it can as it always has. A reference to an object the table does not have (a
free entry, a number beyond /Size) raises too, rather than reading as the null the standard makes
of it: our writer never writes one, so it says the file is not ours.

Nothing is kept but the trailer and the last few page tree nodes read (`_NODES_KEPT`): walking
down the tree, and up it again for the attributes a page inherits, reads the same few nodes over
and over. `LazyExcerptObjects` gives `excerpt` the objects an excerpt of some pages needs,
as text written from what pypdf parsed, with nothing lost.
"""

from __future__ import annotations

import io
import re
from collections import OrderedDict
from pathlib import Path

from pypdf.generic import DictionaryObject, IndirectObject, NameObject, NullObject, PdfObject, StreamObject

from pkb_letters.pdf.excerpt import CATALOG_KEYS, Body, ObjGen
from pkb_letters.pdf.pages import INHERITABLE, inherited_attributes
from pkb_letters.pdf.pypdf_internals import raw_data, read_object_in
from pkb_letters.pdf.syntax import pypdf_dictionary_text, pypdf_text
from pkb_letters.pdf.xref_table import NotLazilyReadable, XrefTable

__all__ = ["LazyExcerptObjects", "LazyPdf", "NotLazilyReadable", "resolved"]

_HEADER = re.compile(rb"(\d+)\s+(\d+)\s+obj\s*")
# Most objects of a print file are smaller: parsed from memory, pypdf's parser is a sixth faster than
# from the file (the parser reads a byte at a time and steps back).
_CHUNK_BYTES = 4096
_WHITESPACE = b"\x00\t\n\x0c\r "  # ISO 32000-1, 7.2.2
_AFTER_OBJECT_BYTES = 64  # enough for the line ends between an object and its endobj
_NODES_KEPT = 8  # page tree nodes: those above the pages being read, where their inherited attributes are
_FOREIGN_TRAILER_KEYS = ("/Prev", "/XRefStm", "/Encrypt")


class LazyPdf:
    """A PDF of our print files' shape, open for reading objects one by one (`get_object`).
    Raises `NotLazilyReadable` on a file of another shape. Objects are parsed by pypdf, which
    is given this reader as the document its references (`IndirectObject`) resolve in."""

    strict = True  # pypdf raises where it would repair: repairing is qpdf's to do

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 -- closed by close()
        self._nodes: OrderedDict[tuple[int, int], DictionaryObject] = OrderedDict()
        try:
            self._table = XrefTable(self._file)
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

    def _read_trailer(self) -> DictionaryObject:
        self._file.seek(self._table.trailer_start())
        trailer = read_object_in(self._file, self)
        if not isinstance(trailer, DictionaryObject):
            raise NotLazilyReadable("the trailer is not a dictionary")
        found = [key for key in _FOREIGN_TRAILER_KEYS if key in trailer]
        if found:
            raise NotLazilyReadable(f"the trailer has {', '.join(found)}")
        if trailer.get("/Size") != self._table.size or not isinstance(trailer.get("/Root"), IndirectObject):
            raise NotLazilyReadable("the trailer's /Size is not the table's, or it has no /Root reference")
        return trailer

    def _read(self, number: int, generation: int) -> PdfObject:
        offset = self._table.offset(number, generation)
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
        obj = read_object_in(stream, self)
        if not stream.read(_AFTER_OBJECT_BYTES).lstrip(_WHITESPACE).startswith(b"endobj"):
            raise NotLazilyReadable(f"the object at byte {start} does not end in endobj")
        return obj


def resolved(value):
    """The object a pypdf reference points to; any other value as it is (pikepdf's come resolved)."""
    return value.get_object() if isinstance(value, IndirectObject) else value


# -- an excerpt's objects -------------------------------------------------------------------


class LazyExcerptObjects:
    """The objects of `pdf` an excerpt of some of its pages needs (`excerpt.ExcerptObjects`)."""

    def __init__(self, pdf: LazyPdf) -> None:
        self._pdf = pdf
        self._inherited: dict[ObjGen, dict[str, object]] = {}  # by parent: what the pages under it inherit

    def page(self, page: DictionaryObject) -> tuple[ObjGen, bytes]:
        items = {key: value for key, value in page.items() if key != "/Parent"}
        if not all(key in items for key in INHERITABLE):
            items = {**self._inherited_by(page), **items}
        reference = page.indirect_reference
        objgen = (0, 0) if reference is None else (reference.idnum, reference.generation)
        return objgen, pypdf_dictionary_text(items)

    def _inherited_by(self, page: DictionaryObject) -> dict[str, object]:
        """What `page` would inherit, looked up once for all the pages with its parent (an excerpt's pages
        share a few dozen parents)."""
        parent = page.get("/Parent")
        if not isinstance(parent, IndirectObject):
            return inherited_attributes(page, resolved, NullObject)
        key = (parent.idnum, parent.generation)
        if key not in self._inherited:
            self._inherited[key] = inherited_attributes(parent.get_object(), resolved, NullObject)
        return self._inherited[key]

    def catalog_entries(self) -> bytes:
        root = self._pdf.root
        return b"".join(
            b" " + pypdf_text(NameObject(key)) + b" " + pypdf_text(root.raw_get(key))
            for key in CATALOG_KEYS
            if key in root
        )

    def body(self, objgen: ObjGen) -> Body | None:
        obj = self._pdf.get_object(IndirectObject(*objgen, self._pdf))
        if isinstance(obj, StreamObject):
            return pypdf_dictionary_text(obj, leave_out="/Length"), raw_data(obj)  # as read: still encoded
        if isinstance(obj, DictionaryObject) and resolved(obj.get("/Type")) in ("/Page", "/Pages"):
            return None
        return pypdf_text(obj)
