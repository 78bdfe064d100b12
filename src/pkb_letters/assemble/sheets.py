"""Sheets: how a letter's pages fall on paper, printed duplex or simplex.

Duplex, every letter starts on the front of a new sheet, so a letter with an
odd page count gets one blank back page; the inserter counts sheets, not pages.
Pages are numbered from 0 within a letter here; the blank page comes last.
"""

from __future__ import annotations


def sheet_count(pages: int, duplex: bool) -> int:
    return (pages + 1) // 2 if duplex else pages


def padding(pages: int, duplex: bool) -> int:
    """Blank pages to add after a letter so the next one starts on a front."""
    return pages % 2 if duplex else 0


def fronts(pages: int, duplex: bool) -> list[int]:
    """The letter's pages that are the front of a sheet: where the sheet's control mark goes."""
    return list(range(0, pages, 2 if duplex else 1))
