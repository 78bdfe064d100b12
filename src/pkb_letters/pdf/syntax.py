"""PDF syntax written: the one place where PDF objects become a file's bytes, and references are renumbered.

Takes objects as their text in PDF syntax (qpdf's serialisation of them, or text written here from
what pypdf or pikepdf parsed), or as pypdf objects the print file's writer built or copied; gives a
PDF file: each object framed as ``N 0 obj ... endobj`` where the cross-reference table says it is,
the table, and the trailer (`ObjectFile`). Renumbering finds the references in such text and writes
each one's new number, or null for an object left out (`renumberer`, `references`).

A value pypdf parsed is written with nothing lost (`pypdf_text`): a number as read (pypdf would
round a real to 8 digits), a string's bytes in hex (however pypdf decoded them). pypdf is imported
only when such a value is first written: a process that reads a small file with qpdf alone (the
preflight's workers) does not pay the 16 MB its import costs.
"""

from __future__ import annotations

import functools
import re
from array import array
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import IO

import pikepdf

__all__ = [
    "ObjectFile",
    "pypdf_dictionary_text",
    "pypdf_text",
    "qpdf_dictionary_text",
    "qpdf_text",
    "references",
    "renumberer",
]

_BINARY_MARK = b"%\xe2\xe3\xcf\xd3\n"  # the comment after the header that tells a reader the file is binary
_XREF_LINES_A_WRITE = 4096
# A reference "12 0 R"; or a literal string (qpdf writes every bracket and backslash inside one escaped)
# or a hex string, skipped whole so that text inside one is never taken for a reference.
_REFERENCE = re.compile(rb"\((?:[^\\)]|\\.)*\)|<[0-9A-Fa-f\s]*>|(?<![\w.#/+-])(\d+) (\d+) R(?![^\s()<>\[\]{}/%])", re.S)
# printable ASCII but delimiters and #: a name written as it reads
_PLAIN_NAME = re.compile(r"/[^\x00-\x20\x7f-\U0010ffff#()<>\[\]{}/%]*\Z")


class ObjectFile:
    """A PDF file written to `out` an object at a time: numbers are handed out (`allocate`), each object is
    written when its text is known, in any order, and only its offset is kept (8 bytes an object)."""

    def __init__(self, out: IO[bytes], header: str) -> None:
        self._out = out
        self._offsets = array("Q", [0])  # by object number; 0 is the free-list head
        out.write(header.encode("ascii") + b"\n" + _BINARY_MARK)

    def allocate(self) -> int:
        self._offsets.append(0)
        return len(self._offsets) - 1

    def write(self, number: int, body: bytes) -> None:
        """Write object `number`, given as its text (a stream's: dictionary, stream, data, endstream)."""
        self._offsets[number] = self._out.tell()
        self._out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))

    def write_pypdf(self, number: int, obj) -> None:
        """Write object `number`, a pypdf object, as pypdf writes it."""
        self._offsets[number] = self._out.tell()
        self._out.write(b"%d 0 obj\n" % number)
        obj.write_to_stream(self._out)
        self._out.write(b"\nendobj\n")

    def close(self, root: int, info: int | None = None, identity: bytes | None = None) -> None:
        """Write the cross-reference table and the trailer: the catalog `root`, the document information
        `info`, and the file's identifier `identity` (the first and the last are the same, as it is new)."""
        xref = self._out.tell()
        size = len(self._offsets)
        self._out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
        for start in range(1, size, _XREF_LINES_A_WRITE):
            offsets = self._offsets[start : start + _XREF_LINES_A_WRITE]
            self._out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
        entries = [b"/Size %d" % size, b"/Root %d 0 R" % root]
        if info is not None:
            entries.append(b"/Info %d 0 R" % info)
        if identity is not None:
            entries.append(b"/ID [ <%s> <%s> ]" % (identity.hex().encode(), identity.hex().encode()))
        self._out.write(b"trailer\n<<\n%s\n>>\nstartxref\n%d\n%%%%EOF\n" % (b"\n".join(entries), xref))


# -- references ---------------------------------------------------------------------------------


def references(text: bytes) -> Iterator[tuple[int, int]]:
    """The objects `text` refers to (number, generation), in the order met; a reference may come again."""
    for match in _REFERENCE.finditer(text):
        if match[1] is not None:
            yield int(match[1]), int(match[2])


def renumberer(new: Callable[[int, int], int | None]) -> Callable[[bytes], bytes]:
    """A function giving text with each reference "N G R" written "M 0 R", M being `new`(N, G); a
    reference for which `new` gives None (an object left out) reads as null, as the standard has it."""

    def replace(match: re.Match[bytes]) -> bytes:
        if match[1] is None:
            return match[0]  # a string
        number = new(int(match[1]), int(match[2]))
        return b"null" if number is None else b"%d 0 R" % number

    return functools.partial(_REFERENCE.sub, replace)


# -- values as qpdf (pikepdf) reads them ---------------------------------------------------------


def qpdf_dictionary_text(items: dict) -> bytes:
    """A dictionary of pikepdf's values, its entries in the order given."""
    return (
        b"<< "
        + b"".join(qpdf_text(pikepdf.Name(key)) + b" " + qpdf_text(value) + b" " for key, value in items.items())
        + b">>"
    )


def qpdf_text(value) -> bytes:
    """PDF syntax for a value as pikepdf gives it (numbers and booleans come as Python's own)."""
    if isinstance(value, pikepdf.Object):
        return value.unparse()  # an indirect object as a reference, a direct one in full
    return pikepdf.Array([value]).unparse()[2:-2]


# -- values as pypdf reads them ------------------------------------------------------------------


def pypdf_text(value) -> bytes:
    """PDF syntax for a value pypdf parsed, with nothing lost."""
    writers = _pypdf_writers()
    write = writers.get(type(value))
    if write is None:
        write = next((w for kind, w in writers.items() if isinstance(value, kind)), _cannot_write)
    return write(value)


def pypdf_dictionary_text(items: dict, leave_out: str = "") -> bytes:
    """A dictionary of pypdf's values less its null entries, as qpdf leaves them out (and less `leave_out`)."""
    null = _pypdf_null()
    return (
        b"<< "
        + b"".join(
            _name_text(key) + b" " + pypdf_text(value) + b" "
            for key, value in items.items()
            if key != leave_out and not isinstance(value, null)
        )
        + b">>"
    )


def _cannot_write(value) -> bytes:
    raise ValueError(f"cannot write a {type(value).__name__} back")


def _name_text(name: str) -> bytes:
    if _PLAIN_NAME.match(name):
        return name.encode("ascii")
    if not name.isascii():  # pypdf decoded its bytes as UTF-8, or failing that GBK or Latin-1: which, it does not say
        raise ValueError(f"a name not in ASCII cannot be written back as it was read: {name!r}")
    from pkb_letters.pdf.pypdf_internals import escaped_name  # imports pypdf

    return escaped_name(name)


def _real_text(value: float) -> bytes:
    text = repr(float(value))  # the shortest that reads back as the same number
    return (format(Decimal(text), "f") if "e" in text else text).encode("ascii")


def _array_text(values: Iterable) -> bytes:
    return b"[ " + b"".join(pypdf_text(item) + b" " for item in values) + b"]"


@functools.cache
def _pypdf_null() -> type:
    from pypdf.generic import NullObject

    return NullObject


@functools.cache
def _pypdf_writers() -> dict[type, Callable]:
    """How each type of pypdf's values is written, most often met first (a subclass is found by isinstance)."""
    from pypdf.generic import (
        ArrayObject,
        BooleanObject,
        ByteStringObject,
        DictionaryObject,
        FloatObject,
        IndirectObject,
        NameObject,
        NullObject,
        NumberObject,
        TextStringObject,
    )

    return {
        IndirectObject: lambda value: b"%d %d R" % (value.idnum, value.generation),
        NameObject: _name_text,
        NumberObject: lambda value: b"%d" % value,
        FloatObject: _real_text,
        ArrayObject: _array_text,
        DictionaryObject: pypdf_dictionary_text,  # a direct one: a stream is always indirect
        TextStringObject: lambda value: b"<" + value.original_bytes.hex().encode("ascii") + b">",
        ByteStringObject: lambda value: b"<" + value.hex().encode("ascii") + b">",
        BooleanObject: lambda value: b"true" if value.value else b"false",
        NullObject: lambda value: b"null",
    }
