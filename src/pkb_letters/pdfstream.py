"""A PDF written a page at a time, so a print file of any size needs the memory of one chunk.

pypdf's `PdfWriter` keeps every page it is given until the end; a quarter of a million
letters would not fit. This writer copies each page, and the objects it uses, out of its
chunk (read with pypdf) straight to the file, and keeps only each object's offset. pypdf
still reads and serialises every object; only the order of writing is ours. Objects a
chunk's pages share (fonts, the shared-layout form) are written once per chunk.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from typing import BinaryIO

from pypdf import PdfReader
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NumberObject,
    PdfObject,
    StreamObject,
)

_CATALOG = 1
_PAGES = 2


class StreamingPdfWriter:
    def __init__(self, handle: BinaryIO, header: str = "%PDF-1.6") -> None:
        self._out = handle
        self._offsets: dict[int, int] = {}
        self._next = _PAGES + 1
        self._kids: list[int] = []
        self._identity = hashlib.sha256()
        self._out.write(header.encode("ascii") + b"\n%\xe2\xe3\xcf\xd3\n")

    @property
    def page_count(self) -> int:
        return len(self._kids)

    def add_page(self, page: DictionaryObject, copier: ObjectCopier, extra: Iterable[bytes] = (),
                 before: Iterable[bytes] = ()) -> None:
        """Copy `page` (from the copier's reader) with content streams added before and after its own."""
        number = self._allocate()
        copied = DictionaryObject()
        for key in page:
            if key not in ("/Parent", "/Contents", "/Annots", "/B", "/StructParents"):
                copied[NameObject(key)] = copier.copy(page.raw_get(key))
        own = [copier.copy(c) for c in _content_streams(page)]
        streams = [self._stream(data) for data in before] + own + [self._stream(data) for data in extra]
        if streams:
            copied[NameObject("/Contents")] = ArrayObject(streams)
        copied[NameObject("/Parent")] = IndirectObject(_PAGES, 0, None)
        copier.flush(self)
        self.write(number, copied)
        self._kids.append(number)

    def add_blank_page(self, width: float, height: float) -> None:
        number = self._allocate()
        box = ArrayObject([NumberObject(0), NumberObject(0), FloatObject(width), FloatObject(height)])
        self.write(number, DictionaryObject({
            NameObject("/Type"): NameObject("/Page"), NameObject("/Parent"): IndirectObject(_PAGES, 0, None),
            NameObject("/MediaBox"): box, NameObject("/TrimBox"): box, NameObject("/BleedBox"): box,
            NameObject("/Resources"): DictionaryObject(),
        }))
        self._kids.append(number)

    def close(self, catalog: dict[str, PdfObject], info: dict[str, PdfObject]) -> None:
        """Write the page tree, catalog, document information and cross-reference table."""
        self.write(_PAGES, DictionaryObject({
            NameObject("/Type"): NameObject("/Pages"), NameObject("/Count"): NumberObject(len(self._kids)),
            NameObject("/Kids"): ArrayObject(IndirectObject(k, 0, None) for k in self._kids),
        }))
        root = DictionaryObject({NameObject("/Type"): NameObject("/Catalog"),
                                 NameObject("/Pages"): IndirectObject(_PAGES, 0, None)})
        root.update({NameObject(k): v for k, v in catalog.items()})
        self.write(_CATALOG, root)
        info_number = self._allocate()
        self.write(info_number, DictionaryObject({NameObject(k): v for k, v in info.items()}))
        xref = self._out.tell()
        size = self._next
        lines = [b"xref\n", f"0 {size}\n".encode(), b"0000000000 65535 f \n"]
        lines += [f"{self._offsets[n]:010d} 00000 n \n".encode() for n in range(1, size)]
        self._out.write(b"".join(lines))
        identity = self._identity.hexdigest()[:32]
        trailer = DictionaryObject({
            NameObject("/Size"): NumberObject(size), NameObject("/Root"): IndirectObject(_CATALOG, 0, None),
            NameObject("/Info"): IndirectObject(info_number, 0, None),
            NameObject("/ID"): ArrayObject([ByteStringObject(bytes.fromhex(identity))] * 2),
        })
        self._out.write(b"trailer\n")
        trailer.write_to_stream(self._out)
        self._out.write(f"\nstartxref\n{xref}\n%%EOF\n".encode())

    def write(self, number: int, obj: PdfObject) -> None:
        self._offsets[number] = self._out.tell()
        self._out.write(f"{number} 0 obj\n".encode())
        obj.write_to_stream(self._out)
        self._out.write(b"\nendobj\n")

    def _allocate(self) -> int:
        number = self._next
        self._next += 1
        return number

    def _stream(self, data: bytes) -> IndirectObject:
        stream = DecodedStreamObject()
        stream.set_data(data)
        if len(data) > 64:  # a separation mark is a few hundred path operators: compress it
            stream = stream.flate_encode()
        number = self._allocate()
        self._identity.update(data)
        self.write(number, stream)
        return IndirectObject(number, 0, None)


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
                number = self._numbers[value.idnum] = self._writer._allocate()
                self._todo.append((number, value.get_object()))
            return IndirectObject(number, 0, None)
        if isinstance(value, StreamObject):
            stream = StreamObject()
            stream._data = value._data  # still encoded: written as read
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
