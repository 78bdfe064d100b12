"""Some pages of one or more print files, copied as they are into a PDF of their own (a reprint set).

Takes print files and, for each, the page numbers (from 1) to take, in order; gives one PDF holding
those pages in that order, each page's objects written as they were read (`excerpt`): the same
content streams, byte for byte, so the same marks and the same codes, never drawn again. The
catalog's output intent and XMP metadata, and the document information, come from the first
file, so a PDF/X print file's reprint is PDF/X too.

Each file is opened by qpdf (its cross-reference table read, about 85 bytes an object) and the
pages cut out by `excerpt`, not qpdf's own page copying, which lists every page of the file
for each page it copies. The small excerpts are then joined by qpdf.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pikepdf

from pkb_letters.files import atomic_writer
from pkb_letters.pdf.excerpt import excerpt
from pkb_letters.pdf.pages import PageTree

__all__ = ["copy_pages"]

_CATALOG_KEYS = ("/OutputIntents", "/Metadata")  # what a PDF/X or PDF/A reader looks for in the catalog


def copy_pages(sources: Sequence[tuple[Path, Sequence[int]]], target: Path) -> int:
    """Write `target`: the pages of each source file listed beside it, file after file. Gives the
    pages written. Raises IndexError for a page the file does not have."""
    if not sources:
        raise ValueError("no pages to copy")
    with pikepdf.new() as joined:
        first, version = True, "1.4"
        for path, numbers in sources:
            with pikepdf.open(path, inherit_page_attributes=False) as pdf:
                tree = PageTree(pdf.Root.Pages)
                cut = excerpt(pdf, [tree.page(number) for number in numbers])
                if first:
                    _take_document_facts(pdf, joined)
                    first, version = False, pdf.pdf_version
            with pikepdf.open(io.BytesIO(cut)) as part:
                joined.pages.extend(part.pages)
        pages = len(joined.pages)
        with atomic_writer(target) as handle:
            assert isinstance(handle, io.BufferedWriter)  # opened "wb"
            # streams as they were read: neither decoded, nor compressed again, nor packed into object streams
            joined.save(
                handle,
                min_version=version,
                compress_streams=False,
                stream_decode_level=pikepdf.StreamDecodeLevel.none,
                object_stream_mode=pikepdf.ObjectStreamMode.disable,
                deterministic_id=True,  # the same pages make the same file
            )
    return pages


def _take_document_facts(source: pikepdf.Pdf, target: pikepdf.Pdf) -> None:
    for key in _CATALOG_KEYS:
        if key in source.Root:
            target.Root[key] = _copied(source, target, source.Root[key])
    if "/Info" in source.trailer:
        target.trailer.Info = _copied(source, target, source.trailer.Info)


def _copied(source: pikepdf.Pdf, target: pikepdf.Pdf, value: pikepdf.Object) -> pikepdf.Object:
    # qpdf copies only indirect objects between files; a direct one is made indirect in the source
    # first (in memory only: the source is never saved)
    return target.copy_foreign(value if value.is_indirect else source.make_indirect(value))
