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
from pathlib import Path

import pikepdf

from .pdfstream import StreamingPdfWriter

# A reference "12 0 R", or a literal string, which qpdf writes with every parenthesis and
# backslash escaped, skipped whole so that text inside it is never taken for a reference.
_REFERENCE = re.compile(rb"\((?:[^\\)]|\\.)*\)|(?<![\w.#/+-])(\d+) (\d+) R(?![\w#])", re.S)
_LENGTH = re.compile(rb"/Length (?:\d+ \d+ R|\d+)(?=[\s/>\]])")
# The page tree, annotations, article beads and the structure tree stay behind in the chunk.
_LEFT_BEHIND = frozenset(("/Parent", "/Contents", "/Annots", "/B", "/StructParents"))
_INHERITABLE = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")


class ChunkCopier:
    """One chunk, open, copying into one writer; each object of the chunk is copied at most once."""

    def __init__(self, path: Path, writer: StreamingPdfWriter) -> None:
        self._pdf = pikepdf.open(path)
        self.writer = writer
        self._numbers: dict[int, int | None] = {}  # chunk object → print file object; None while copying

    def close(self) -> None:
        self._pdf.close()

    def page_size(self, index: int) -> tuple[float, float]:
        """Width and height of the chunk's page `index` (from 0), in points."""
        left, bottom, right, top = (float(v) for v in _attribute(self._pdf.pages[index].obj, "/MediaBox"))
        return right - left, top - bottom

    def copy_page(self, index: int, before: list[bytes] | None = None, extra: list[bytes] | None = None) -> None:
        """Copy page `index` (from 0) with content streams added before and after its own."""
        page = self._pdf.pages[index].obj
        kept = pikepdf.Dictionary({key: page[key] for key in page.keys() if key not in _LEFT_BEHIND})
        for key in _INHERITABLE:
            if key not in kept:
                value = _attribute(page, key)
                if value is not None:
                    kept[key] = value
        entries = self._renumber(kept.unparse())[2:-2]  # without the dictionary's << >>
        contents = [self._copy_alone(stream) for stream in _content_streams(page)]
        self.writer.add_serialised_page(entries, contents, before or [], extra or [])

    def _copy_alone(self, stream: pikepdf.Object) -> int:
        """A page's own content stream: written as it is, not looked up among the shared objects."""
        objid, generation = stream.objgen
        number = self._numbers.get(objid)
        if number is None:
            number = self._numbers[objid] = self.writer.allocate()
            self.writer.write_serialised(number, self._serialise(objid, generation))
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
            head = _LENGTH.sub(b"/Length %d" % len(raw), obj.stream_dict.unparse(), count=1)
            return self._renumber(head) + b"\nstream\n" + raw + b"\nendstream"
        return self._renumber(obj.unparse(resolved=True))

    def _renumber(self, serialised: bytes) -> bytes:
        return _REFERENCE.sub(self._renumbered, serialised)

    def _renumbered(self, match: re.Match[bytes]) -> bytes:
        if match.group(1) is None:
            return match.group(0)  # a string
        return b"%d 0 R" % self._number(int(match.group(1)), int(match.group(2)))


def _attribute(page: pikepdf.Dictionary, key: str) -> pikepdf.Object | None:
    """A page's own value for `key`, or the nearest one it inherits from the page tree."""
    node: pikepdf.Object | None = page
    for _ in range(64):  # a page tree is shallow; a /Parent loop is a broken file, not a reason to hang
        if node is None:
            return None
        if key in node:
            return node[key]
        node = node.get("/Parent")
    return None


def _content_streams(page: pikepdf.Dictionary) -> list[pikepdf.Object]:
    contents = page.get("/Contents")
    if contents is None:
        return []
    if isinstance(contents, pikepdf.Array):
        return [stream for stream in contents if stream.is_indirect]
    return [contents] if contents.is_indirect else []
