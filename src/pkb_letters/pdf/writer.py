"""A PDF written a page at a time, so a print file of any size needs the memory of one chunk.

pypdf's `PdfWriter` keeps every page it is given until the end; a quarter of a million
letters would not fit. This writer writes each page, and the objects it uses, straight to
the file, and keeps only each object's offset (8 bytes an object). The objects come
serialised already (`chunk_copy` copies them out of the chunks as qpdf writes them); an
object given as `write_shared` whose bytes are those of one written before is not written
again, and its first number is used instead: the fonts, forms and ICC profile every chunk
carries are stored once per file. The table of those is bounded (`_SHARED_OBJECTS` digests,
least recently used first out), so memory does not grow with the file either.

The page tree is balanced (`_FANOUT` kids a node, two levels of nodes under the root), not
one flat list: a reader finding page 90,000 (qpdf, PDFium) then parses a few hundred nodes
on the way instead of every page before it, so the preflight can check a big file a
range of pages at a time in bounded memory.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO

from pypdf import PdfReader
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NumberObject,
    PdfObject,
    StreamObject,
)

from pkb_letters.errors import InvariantError
from pkb_letters.pdf.pypdf_internals import copy_raw_data
from pkb_letters.pdf.syntax import ObjectFile

_CATALOG = 1
_PAGES = 2
_FANOUT = 64  # kids of a page tree node: 4,096 pages under each of the root's kids
_LEVELS = 2  # page tree nodes between a page and the root
# Digests of objects written once and referred to after: a job's shared objects number some tens;
# the rest are per letter (QR codes) and pass through. ~100 bytes a digest.
_SHARED_OBJECTS = 4096
_COMPRESS_OVER = 64  # bytes: a separation mark is a few hundred path operators, compressed; "q" is not


class StreamingPdfWriter:
    def __init__(self, handle: IO[bytes], header: str = "%PDF-1.6") -> None:
        self._file = ObjectFile(handle, header)
        if (self._file.allocate(), self._file.allocate()) != (_CATALOG, _PAGES):
            raise AssertionError("the catalog and the page tree's root are objects 1 and 2")
        self._tree = _PageTreeWriter(self)
        self._identity = hashlib.sha256()
        self._shared: OrderedDict[bytes, int] = OrderedDict()

    @property
    def page_count(self) -> int:
        return self._tree.count

    def add_serialised_page(self, entries: bytes, contents: list[int], before: list[bytes], extra: list[bytes]) -> None:
        """A page whose dictionary entries other than /Contents and /Parent come serialised, drawing
        the streams numbered `contents` between new content streams holding `before` and `extra`."""
        number = self.allocate()
        streams = [self._stream(data) for data in before] + contents + [self._stream(data) for data in extra]
        parent = self._tree.add_page(number)
        drawn = b" /Contents [ %s ]" % b" ".join(b"%d 0 R" % n for n in streams) if streams else b""
        self.write_serialised(number, b"<< %s%s /Parent %d 0 R >>" % (entries, drawn, parent))

    def add_page(
        self, page: DictionaryObject, copier: ObjectCopier, extra: Iterable[bytes] = (), before: Iterable[bytes] = ()
    ) -> None:
        """Copy `page`, read with pypdf, with content streams added before and after its own: every
        object parsed and serialised again in Python (the print files are copied with `chunk_copy`)."""
        number = self.allocate()
        copied = DictionaryObject()
        for key in page:
            if key not in ("/Parent", "/Contents", "/Annots", "/B", "/StructParents"):
                copied[NameObject(key)] = copier.copy(page.raw_get(key))
        own = [copier.copy(c) for c in _content_streams(page)]
        streams = (
            [IndirectObject(self._stream(data), 0, None) for data in before]
            + own
            + [IndirectObject(self._stream(data), 0, None) for data in extra]
        )
        if streams:
            copied[NameObject("/Contents")] = ArrayObject(streams)
        copied[NameObject("/Parent")] = IndirectObject(self._tree.add_page(number), 0, None)
        copier.flush(self)
        self.write(number, copied)

    def add_blank_page(self, width: float, height: float) -> None:
        number = self.allocate()
        box = ArrayObject([NumberObject(0), NumberObject(0), FloatObject(width), FloatObject(height)])
        parent = self._tree.add_page(number)
        self.write(
            number,
            DictionaryObject(
                {
                    NameObject("/Type"): NameObject("/Page"),
                    NameObject("/Parent"): IndirectObject(parent, 0, None),
                    NameObject("/MediaBox"): box,
                    NameObject("/TrimBox"): box,
                    NameObject("/BleedBox"): box,
                    NameObject("/Resources"): DictionaryObject(),
                }
            ),
        )

    def close(self, catalog: dict[str, PdfObject], info: dict[str, PdfObject]) -> None:
        """Write the page tree, catalog, document information and cross-reference table."""
        self._tree.close()
        root = DictionaryObject(
            {NameObject("/Type"): NameObject("/Catalog"), NameObject("/Pages"): IndirectObject(_PAGES, 0, None)}
        )
        root.update({NameObject(k): v for k, v in catalog.items()})
        self.write(_CATALOG, root)
        info_number = self.allocate()
        self.write(info_number, DictionaryObject({NameObject(k): v for k, v in info.items()}))
        self._file.close(_CATALOG, info_number, self._identity.digest()[:16])

    def write(self, number: int, obj: PdfObject) -> None:
        """Write object `number`, a pypdf object."""
        self._file.write_pypdf(number, obj)

    def write_serialised(self, number: int, body: bytes) -> None:
        """Write object `number`, given as its serialised bytes (a stream: dictionary, stream, data, endstream)."""
        self._file.write(number, body)

    def write_shared(self, body: bytes) -> int:
        """The number of an object with these bytes: one written before, or this one, written now."""
        key = hashlib.sha256(body).digest()
        number = self._shared.get(key)
        if number is not None:
            self._shared.move_to_end(key)
            return number
        number = self._shared[key] = self.allocate()
        if len(self._shared) > _SHARED_OBJECTS:
            self._shared.popitem(last=False)
        self.write_serialised(number, body)
        return number

    def allocate(self) -> int:
        return self._file.allocate()

    def _stream(self, data: bytes) -> int:
        """A new content stream: a short one ("q") is written once a file, a longer one (a mark,
        every sheet's own) compressed and written each time, without a digest to keep."""
        self._identity.update(data)
        if len(data) <= _COMPRESS_OVER:
            return self.write_shared(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(data), data))
        packed = zlib.compress(data)
        number = self.allocate()
        self.write_serialised(
            number, b"<< /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream" % (len(packed), packed)
        )
        return number


class _PageTreeWriter:
    """The page tree, written as it fills: a node is written once it has all its kids (or at the end).

    Only the nodes still filling are held (one a level), and the root's kids: one per 4,096 pages.
    """

    def __init__(self, writer: StreamingPdfWriter) -> None:
        self._writer = writer
        self._open: list[_Node | None] = [None] * _LEVELS  # [0] holds pages; the last level hangs off the root
        self._root_kids: list[int] = []
        self.count = 0

    def add_page(self, number: int) -> int:
        """Count the page in and give the number of the node it hangs from (its /Parent)."""
        node = self._node(0)
        node.kids.append(number)
        for open_node in self._open:
            assert open_node is not None
            open_node.count += 1
        self.count += 1
        return node.number

    def _node(self, level: int) -> _Node:
        """The node at `level` that takes the next kid, opening a fresh one (and above it) when full."""
        node = self._open[level]
        if node is not None and len(node.kids) < _FANOUT:
            return node
        if node is not None:
            self._write(level)
        if level + 1 < _LEVELS:
            parent = self._node(level + 1)
        else:
            parent = None
        number = self._writer.allocate()
        if parent is None:
            self._root_kids.append(number)
        else:
            parent.kids.append(number)
        node = self._open[level] = _Node(number, _PAGES if parent is None else parent.number)
        return node

    def close(self) -> None:
        for level in range(_LEVELS):
            if self._open[level] is not None:
                self._write(level)
        self._writer.write(_PAGES, _pages_node(None, self._root_kids, self.count))

    def _write(self, level: int) -> None:
        node = self._open[level]
        assert node is not None
        self._writer.write(node.number, _pages_node(node.parent, node.kids, node.count))
        self._open[level] = None


@dataclass
class _Node:
    number: int
    parent: int
    kids: list[int] = field(default_factory=list)
    count: int = 0


def _pages_node(parent: int | None, kids: list[int], count: int) -> DictionaryObject:
    node = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Pages"),
            NameObject("/Count"): NumberObject(count),
            NameObject("/Kids"): ArrayObject(IndirectObject(k, 0, None) for k in kids),
        }
    )
    if parent is not None:
        node[NameObject("/Parent")] = IndirectObject(parent, 0, None)
    return node


class ObjectCopier:
    """Copies objects out of one reader, each once, numbering them in the writer as they are met."""

    def __init__(self, reader: PdfReader, writer: StreamingPdfWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._numbers: dict[int, int] = {}
        self._todo: deque[tuple[int, PdfObject]] = deque()

    def copy(self, value: PdfObject) -> PdfObject:
        if isinstance(value, IndirectObject):
            number = self._numbers.get(value.idnum)
            if number is None:
                number = self._numbers[value.idnum] = self._writer.allocate()
                target = value.get_object()
                if target is None:  # pypdf, not strict, answers None for an object the file does not define
                    raise InvariantError(f"the PDF refers to object {value.idnum}, which it does not define")
                self._todo.append((number, target))
            return IndirectObject(number, 0, None)
        if isinstance(value, StreamObject):
            stream = StreamObject()
            copy_raw_data(value, stream)  # still encoded: written as read
            for key, item in value.items():
                stream[NameObject(key)] = self.copy(item)
            return stream
        if isinstance(value, DictionaryObject):
            return DictionaryObject({NameObject(k): self.copy(v) for k, v in value.items()})
        if isinstance(value, ArrayObject):
            return ArrayObject(self.copy(item) for item in value)
        return value

    def flush(self, writer: StreamingPdfWriter) -> None:
        """Write every object copied so far that has not been written yet."""
        while self._todo:
            number, value = self._todo.popleft()
            writer.write(number, self.copy(value))


def _content_streams(page: DictionaryObject) -> list[PdfObject]:
    """The page's content streams, as references where the page has them as references."""
    if "/Contents" not in page:
        return []
    raw = page.raw_get("/Contents")
    resolved = raw.get_object()
    if isinstance(resolved, ArrayObject):
        return list(resolved)  # an array holds its streams as references
    return [raw]
