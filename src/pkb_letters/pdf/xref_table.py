"""Where a PDF's objects are, by the one classic cross-reference table our print files have.

Takes a PDF file open for reading; gives how many objects its table has and where object N
starts, read from the table's entry N alone. `writer.StreamingPdfWriter` writes one classic
table (``xref``, ``0 N``, then N entries of exactly 20 bytes) and its trailer after it, so entry
N is at a known place and the table need not be read whole, as qpdf and PDFium read it (about
0.4 KB a page of a print file). A file whose last section is not one such table (a
cross-reference stream, or an incremental update's section, which starts elsewhere than 0 or is
followed by another) raises `NotLazilyReadable`; so does an entry not in use. What follows the
table, the trailer, is for the caller to parse (`lazy`): this module needs no PDF parser.
"""

from __future__ import annotations

import os
import re
from typing import BinaryIO

__all__ = ["NotLazilyReadable", "XrefTable", "object_count"]

_ENTRY_BYTES = 20  # ISO 32000-1, 7.5.4: "nnnnnnnnnn ggggg n" and a two-byte end of line
_ENTRY = re.compile(rb"(\d{10}) (\d{5}) n(?: \r| \n|\r\n)")
_TAIL_BYTES = 1024  # the end of the file, where "startxref" must be
_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*\Z")
_TABLE = re.compile(rb"xref(?:\r\n|\r|\n)0 (\d+) ?(?:\r\n|\r|\n)")
_TRAILER = re.compile(rb"\s*trailer\s*")


class NotLazilyReadable(Exception):
    """The file is not of our print files' shape, or an object of it is not where its table says."""


class XrefTable:
    """The table of a file open for reading (binary, seekable), found from the file's end."""

    def __init__(self, handle: BinaryIO) -> None:
        self._file = handle
        end = handle.seek(0, os.SEEK_END)
        handle.seek(max(end - _TAIL_BYTES, 0))
        found = _STARTXREF.search(handle.read())
        if found is None:
            raise NotLazilyReadable("the file does not end in startxref and %%EOF")
        handle.seek(int(found[1]))
        table = _TABLE.match(handle.read(64))
        if table is None:
            raise NotLazilyReadable("startxref does not point to a classic table whose one section starts at 0")
        self._entries = int(found[1]) + table.end()
        self.size = int(table[1])  # objects 0 to size - 1; 0 is the head of the free list

    def trailer_start(self) -> int:
        """Where the trailer's dictionary starts: just after the table's last entry, and the word trailer."""
        end = self._entries + _ENTRY_BYTES * self.size
        self._file.seek(end)
        word = _TRAILER.match(self._file.read(64))
        if word is None:  # a second section, or entries not 20 bytes long
            raise NotLazilyReadable("the table is not one section of 20-byte entries followed by its trailer")
        return end + word.end()

    def offset(self, number: int, generation: int) -> int:
        """Where object `number` starts, by its entry, which must be in use and of `generation`."""
        if not 0 < number < self.size:
            raise NotLazilyReadable(f"object {number} {generation} R is not in the table")
        self._file.seek(self._entries + _ENTRY_BYTES * number)
        entry = _ENTRY.fullmatch(self._file.read(_ENTRY_BYTES))
        if entry is None or int(entry[2]) != generation:
            raise NotLazilyReadable(f"object {number} {generation} R has no entry in use in the table")
        return int(entry[1])


def object_count(path: os.PathLike) -> int | None:
    """How many objects the file's one classic table has (its last section's, for a file of another shape
    that ends in such a table); None for a file that does not end in one, or cannot be opened."""
    try:
        with open(path, "rb") as handle:
            return XrefTable(handle).size
    except (OSError, NotLazilyReadable):
        return None
