"""Assemble: rendered chunk PDFs in, one print file (`letters.pdf`) out.

Chunks are joined in sequence order with pypdf and the result is checked
(page count, A4 size on every page) before it is renamed into place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pypdf import PdfReader, PdfWriter

from .envelope import A4_HEIGHT_MM, A4_WIDTH_MM
from .errors import InvariantError
from .files import atomic_writer, sha256_of

POINTS_PER_MM = 72 / 25.4
_SIZE_TOLERANCE_PT = 0.5


@dataclass(frozen=True)
class PrintFile:
    name: str
    pages: int
    bytes: int
    sha256: str


def assemble(chunk_paths: Sequence[Path], target: Path, expected_pages: int) -> PrintFile:
    writer = PdfWriter()
    for path in chunk_paths:
        writer.append(PdfReader(path))
    pages = len(writer.pages)
    if pages != expected_pages:
        raise InvariantError(f"{target.name} would have {pages} pages; the letters need {expected_pages}")
    for number, page in enumerate(writer.pages, 1):
        check_a4(page.mediabox.width, page.mediabox.height, f"{target.name} page {number}")
    with atomic_writer(target) as handle:
        writer.write(handle)
    return PrintFile(target.name, pages, target.stat().st_size, sha256_of(target))


def check_a4(width_pt: float, height_pt: float, where: str) -> None:
    want = (A4_WIDTH_MM * POINTS_PER_MM, A4_HEIGHT_MM * POINTS_PER_MM)
    if abs(float(width_pt) - want[0]) > _SIZE_TOLERANCE_PT or abs(float(height_pt) - want[1]) > _SIZE_TOLERANCE_PT:
        raise InvariantError(f"{where} is {float(width_pt):.1f} x {float(height_pt):.1f} pt, not A4 portrait")
