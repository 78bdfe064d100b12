"""The preflight's Mailmark check: every piece's Royal Mail Mailmark read back and compared.

Takes the print files and the manifest (its job record says where the Mailmark prints, each
letter the string it carries); gives a finding for each first page whose Mailmark zxing-cpp cannot
read, reads differently from the manifest, or has text in its quiet zone. A reader independent of
libzint, which encoded it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import zxingcpp

from pkb_letters.check.page_facts import PdfPages
from pkb_letters.envelope import Rect

MISSING = "mailmark-missing"
MISMATCH = "mailmark-mismatch"
IN_ZONE = "text-in-mailmark-clear-zone"
_PIXELS_PER_MODULE = 4
_POSITION_TOLERANCE_MM = 0.5

Finding = tuple[str, int, str, str]  # file, page, code, detail


def check(
    paths_by_name: Mapping[str, Path], placement: Mapping[str, float], letters: Iterable[Mapping[str, Any]]
) -> Iterator[Finding]:
    """`paths_by_name`: each print file by the name the manifest lists it under."""
    symbol = Rect(placement["left"], placement["top"], placement["size"], placement["size"])
    zone = symbol.grown(placement["clear"])
    dpi = _PIXELS_PER_MODULE * 25.4 / placement["module"]
    by_file: dict[str, list[tuple[int, str]]] = {}
    for letter in letters:
        if letter.get("file") in paths_by_name:
            by_file.setdefault(letter["file"], []).append((letter["first_page"], letter.get("mailmark", "")))
    for name, pages in by_file.items():
        path = paths_by_name[name]
        with PdfPages(path) as pdf:
            for number, expected in pages:
                yield from _check_page(pdf, path.name, number, expected, zone, dpi)


def _check_page(pdf: PdfPages, file: str, number: int, expected: str, zone: Rect, dpi: float) -> Iterator[Finding]:
    words = pdf.page_words(number)
    intruders = words.overlapping(zone.grown(-_POSITION_TOLERANCE_MM))
    if intruders:
        yield (
            file,
            number,
            IN_ZONE,
            f"{len(intruders)} word(s) in the Mailmark's quiet zone, e.g. {words[intruders[0]]}",
        )
    found = read(pdf, number, zone, dpi)
    if found is None:
        yield file, number, MISSING, f"no Mailmark found; the manifest says {expected!r}"
    elif found != expected:
        yield file, number, MISMATCH, f"the Mailmark reads {found!r}; the manifest says {expected!r}"


def read(pdf: PdfPages, number: int, zone: Rect, dpi: float) -> str | None:
    image = pdf.render_mm(number, zone, dpi)
    if image.getextrema()[0] == 255:
        return None
    formats = cast(zxingcpp.BarcodeFormats, zxingcpp.BarcodeFormat.DataMatrix)
    found = zxingcpp.read_barcode(image, formats=formats, try_invert=False, try_downscale=False)
    return None if found is None else found.bytes.decode("ascii", "replace")
