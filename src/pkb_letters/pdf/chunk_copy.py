"""Pages copied out of a rendered chunk into a streamed print file, as the chunk holds them.

Takes a chunk PDF and a `StreamingPdfWriter`; gives, page by page, the page and every
object it uses written into the print file. The chunk is read with pikepdf (qpdf, in
C++): each object is written as qpdf serialises it with its references renumbered, and
each stream as its raw, still encoded bytes. Nothing is parsed into Python objects,
decoded or encoded again, which is what made copying with pypdf cost a millisecond a letter.

Objects are copied children first, so an object that is the same in every chunk (a
shared-layout form, its fonts, the ICC profile, the logo) comes out as the same bytes each
time, and the writer stores it once per print file (`StreamingPdfWriter.write_shared`). A
page's own content streams are per letter and are written as they are, unexamined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pikepdf

from pkb_letters.pdf.pages import INHERITABLE, inherited_attributes
from pkb_letters.pdf.syntax import qpdf_text, references, renumberer
from pkb_letters.pdf.writer import StreamingPdfWriter

_LENGTH = re.compile(rb"/Length (?:\d+ \d+ R|\d+)(?=[\s/>\]])")
# The page tree, annotations, article beads and the structure tree stay behind in the chunk.
_LEFT_BEHIND = frozenset(("/Parent", "/Contents", "/Annots", "/B", "/StructParents"))
# A page as qpdf serialises it: "<< /Contents [ 4 0 R 9 0 R ] /MediaBox [ 0 0 595.28 841.89 ] /Parent 2 0 R ... >>"
_PARENT = re.compile(rb" /Parent \d+ \d+ R")
_CONTENTS = re.compile(rb" /Contents (?:(\d+ \d+) R|\[ ((?:\d+ \d+ R )*)\])")
_MEDIA_BOX = re.compile(rb"/MediaBox \[ (\S+) (\S+) (\S+) (\S+) \]")
_SHORT_STREAM = 128  # bytes, serialised: "<< /Length 19 >> stream q /PkbShared0 Do Q endstream" and the like


@dataclass(frozen=True)
class SourcePage:
    """A chunk's page, read: its entries as the print file keeps them (the chunk's numbering), its
    content streams, and its size in points."""

    entries: bytes
    contents: tuple[tuple[int, int], ...]
    width: float
    height: float


class ChunkCopier:
    """One chunk, open, copying into one writer; each object of the chunk is copied at most once."""

    def __init__(self, path: Path, writer: StreamingPdfWriter) -> None:
        self._pdf = pikepdf.open(path)
        self._pages = [page.obj for page in self._pdf.pages]  # a page found by index costs 40 times more
        self.writer = writer
        self._numbers: dict[int, int | None] = {}  # chunk object → print file object; None while copying
        self._inherited: dict[tuple[int, int], dict[str, pikepdf.Object]] = {}  # by page tree node
        self._renumber = renumberer(self._number)

    def close(self) -> None:
        self._pdf.close()

    def page(self, index: int) -> SourcePage:
        """The chunk's page `index` (from 0)."""
        page = self._pages[index]
        keys = page.keys()
        entries, contents = _read_entries(page, keys) or _build_entries(page, keys)
        inherited = self._inherited_by(page) if not keys.issuperset(INHERITABLE) else {}
        missing = [(key, inherited[key]) for key in INHERITABLE if key not in keys and key in inherited]
        if missing:
            entries += b"".join(b" %s %s" % (key.encode(), qpdf_text(value)) for key, value in missing)
        box = _MEDIA_BOX.search(entries) if entries.count(b"/MediaBox ") == 1 else None
        if box is not None:
            left, bottom, right, top = (float(v) for v in box.groups())
        else:
            own = page.get("/MediaBox") if "/MediaBox" in keys else inherited.get("/MediaBox")
            left, bottom, right, top = (float(v) for v in own) if own is not None else (0.0,) * 4
        return SourcePage(entries, contents, right - left, top - bottom)

    def copy_page(self, page: SourcePage, before: list[bytes] | None = None, extra: list[bytes] | None = None) -> None:
        """Copy `page` (one of this chunk's) with content streams added before and after its own."""
        entries = self._renumber(page.entries)
        contents = [self._copy_alone(objid, generation) for objid, generation in page.contents]
        self.writer.add_serialised_page(entries, contents, before or [], extra or [])

    def _inherited_by(self, page: pikepdf.Dictionary) -> dict[str, pikepdf.Object]:
        """What a page of this page tree node inherits: the nearest value of each inheritable key."""
        parent = page.get("/Parent")
        if parent is None:
            return {}
        found = self._inherited.get(parent.objgen)
        if found is None:
            found = self._inherited[parent.objgen] = inherited_attributes(parent)
        return found

    def _copy_alone(self, objid: int, generation: int) -> int:
        """A page's own content stream: written as it is, not looked up among the shared objects
        unless it is a few operators (drawing a shared-layout form), the same on many pages."""
        number = self._numbers.get(objid)
        if number is None:
            body = self._serialise(objid, generation)
            if len(body) <= _SHORT_STREAM:
                number = self.writer.write_shared(body)
            else:
                number = self.writer.allocate()
                self.writer.write_serialised(number, body)
            self._numbers[objid] = number
        return number

    def _number(self, objid: int, generation: int) -> int:
        """The print file's number for a chunk object, copying the object (children first) if it is new."""
        if objid in self._numbers:
            number = self._numbers[objid]
            if number is None:  # a reference back to an object being copied: it gets its number now
                number = self._numbers[objid] = self.writer.allocate()
            return number
        self._numbers[objid] = None
        body = self._serialise(objid, generation)
        number = self._numbers[objid]
        if number is None:
            number = self._numbers[objid] = self.writer.write_shared(body)
        else:  # part of a cycle: its number was handed out before its bytes were known
            self.writer.write_serialised(number, body)
        return number

    def _serialise(self, objid: int, generation: int) -> bytes:
        obj = self._pdf.get_object(objid, generation)
        if obj is None:
            return b"null"
        if isinstance(obj, pikepdf.Stream):
            raw = obj.read_raw_bytes()
            length = b"/Length %d" % len(raw)  # what qpdf read, whatever the chunk's /Length said
            head, found = _LENGTH.subn(length, obj.stream_dict.unparse(), count=1)
            if not found:
                head = b"<< " + length + head[2:]
            return self._renumber(head) + b"\nstream\n" + raw + b"\nendstream"
        return self._renumber(obj.unparse(resolved=True))


def _read_entries(page: pikepdf.Dictionary, keys: set[str]) -> tuple[bytes, tuple] | None:
    """The page's entries but /Parent and /Contents, and its content streams, from qpdf's
    serialisation of it; None for a page this cannot be sure of (the entries are then built)."""
    if keys & {"/Annots", "/B", "/StructParents"}:
        return None
    serialised = page.unparse(resolved=True)[2:-3]  # without "<<" and " >>"
    if serialised.count(b"/Parent ") != ("/Parent" in keys) or serialised.count(b"/Contents ") != ("/Contents" in keys):
        return None  # the name is also inside a value: leave it to the slow path
    contents: tuple = ()
    if "/Contents" in keys:
        found = _CONTENTS.search(serialised)
        if found is None:
            return None
        pairs = found.group(1) + b" R" if found.group(1) else found.group(2)
        contents = tuple(references(pairs))
        serialised = serialised[: found.start()] + serialised[found.end() :]
    return _PARENT.sub(b"", serialised, count=1), contents


def _build_entries(page: pikepdf.Dictionary, keys: set[str]) -> tuple[bytes, tuple]:
    kept = pikepdf.Dictionary({key: page[key] for key in keys if key not in _LEFT_BEHIND})
    contents = page.get("/Contents")
    streams = [] if contents is None else list(contents) if isinstance(contents, pikepdf.Array) else [contents]
    return kept.unparse()[2:-3], tuple(stream.objgen for stream in streams if stream.is_indirect)
