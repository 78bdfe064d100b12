"""Letter separation marks: what the inserter reads on each sheet to know where a letter starts and ends.

Takes a mark layout and a piece's place in the job; gives the payload printed
on each sheet (the manifest records them) and the PDF drawing operators that
print it, in K-only black, as vector shapes. One mark per sheet, on its front.

- ``datamatrix`` (default): a 2D DataMatrix holding
  ``{job id} {piece sequence:06} {sheet:02}/{sheets:02} {check}``, where the check
  character is ISO/IEC 7064 MOD 37,36 over the letters and digits before it.
- ``omr``: six dash tracks read top-down: start (always), insert (on a letter's
  last sheet), a 3-bit sheet sequence within the file (4, 2, 1; wraps after 7 to 0),
  and parity (makes the number of dashes even). The payload is those six bits, e.g. ``110011``.
- ``none``: no marks.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from ppf.datamatrix import DataMatrix

from pkb_letters.envelope import A4_HEIGHT_MM, A4_WIDTH_MM, EnvelopeProfile, Rect
from pkb_letters.errors import ConfigError

POINTS_PER_MM = 72 / 25.4
_ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
OMR_TRACKS = ("start", "insert", "sequence-4", "sequence-2", "sequence-1", "parity")


class MarkKind(StrEnum):
    DATAMATRIX = "datamatrix"
    OMR = "omr"
    NONE = "none"


@dataclass(frozen=True)
class MarkLayout:
    """Where the mark goes on a sheet's front, in mm from the page's top-left corner."""

    kind: MarkKind = MarkKind.DATAMATRIX
    left: float = 17.0  # the symbol's (or the first dash's) top-left corner
    top: float = 279.0
    module: float = 0.45  # DataMatrix module (cell) size
    clear: float = 2.0  # nothing else prints this close to the mark
    dash_length: float = 10.0  # OMR
    dash_thickness: float = 0.5
    pitch: float = 4.23  # OMR track spacing (1/6 inch)


DEFAULT_LAYOUTS = {
    MarkKind.DATAMATRIX: MarkLayout(),
    # Royal Mail-style OMR on the left edge below a C5 window, with the 3 mm clear zone print rooms ask for.
    MarkKind.OMR: MarkLayout(kind=MarkKind.OMR, left=5.0, top=100.0, clear=3.0),
    MarkKind.NONE: MarkLayout(kind=MarkKind.NONE),
}


def layout_from_table(kind: str | None, table: Mapping[str, Any] | None = None) -> MarkLayout:
    """The layout for `kind` (default datamatrix) with a job file's ``[marks]`` values over it."""
    table = dict(table or {})
    try:
        chosen = MarkKind(kind or table.pop("kind", MarkKind.DATAMATRIX))
    except ValueError:
        raise ConfigError(f"marks must be one of {', '.join(MarkKind)}, not {kind!r}") from None
    table.pop("kind", None)
    fields = {f.name for f in dataclasses.fields(MarkLayout)} - {"kind"}
    unknown = set(table) - fields
    if unknown:
        raise ConfigError(f"unknown [marks] settings: {', '.join(sorted(unknown))}")
    try:
        millimetres: dict[str, Any] = {k: float(v) for k, v in table.items()}
        return dataclasses.replace(DEFAULT_LAYOUTS[chosen], **millimetres)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[marks] values are millimetres: {exc}") from None


# -- payloads -------------------------------------------------------------------------------


def check_character(text: str) -> str:
    """ISO/IEC 7064 MOD 37,36 over the letters and digits of `text`: catches any single
    character error and any swap of two neighbours."""
    modulus, product = 36, 36
    for char in text.upper():
        if char in _ALPHANUMERIC:
            total = (product + _ALPHANUMERIC.index(char)) % modulus or modulus
            product = (total * 2) % (modulus + 1)
    return _ALPHANUMERIC[(modulus + 1 - product) % modulus]


def datamatrix_payload(job_id: str, sequence: int, sheet: int, sheets: int) -> str:
    body = f"{job_id} {sequence:06d} {sheet:02d}/{sheets:02d}"
    return f"{body} {check_character(body)}"


def payload_is_consistent(payload: str) -> bool:
    body, _, check = payload.rpartition(" ")
    return bool(body) and check == check_character(body)


def omr_payload(sheet: int, sheets: int, sheet_in_file: int) -> str:
    sequence = sheet_in_file % 8
    bits = [1, int(sheet == sheets), (sequence >> 2) & 1, (sequence >> 1) & 1, sequence & 1]
    bits.append(sum(bits) % 2)  # even parity over all six tracks
    return "".join(map(str, bits))


def payloads(layout: MarkLayout, job_id: str, sequence: int, sheets: int, first_sheet_in_file: int) -> list[str]:
    """One payload per sheet of a letter; `first_sheet_in_file` counts from 1."""
    if layout.kind is MarkKind.DATAMATRIX:
        return [datamatrix_payload(job_id, sequence, n, sheets) for n in range(1, sheets + 1)]
    if layout.kind is MarkKind.OMR:
        return [omr_payload(n, sheets, first_sheet_in_file + n - 1) for n in range(1, sheets + 1)]
    return []


# -- geometry -------------------------------------------------------------------------------


# Every sheet's payload is its own, so caching them all only holds ~5 KB a sheet (20 MB at
# 4,096) in the assembling process; the cache is for the sample payload, measured over and over.
@lru_cache(maxsize=64)
def _matrix(payload: str) -> tuple[bytes, ...]:
    """The symbol ppf-datamatrix makes of `payload` (ASCII or C40, whichever is shorter), a row of
    modules at a time, 1 for dark."""
    codewords = _codewords(payload)
    return _linear_code(len(codewords)).symbol(codewords)


def _codewords(payload: str) -> bytes:
    """The payload encoded as ppf-datamatrix encodes it: the shortest of its encodations, the first if tied."""
    encoded = []
    for codec in _ENCODATIONS:
        try:
            encoded.append(payload.encode(f"datamatrix.{codec}"))
        except ValueError:
            pass  # a character this encodation cannot hold
    return min(encoded, key=len)


_ENCODATIONS = ("ascii", "C40")
_DARK = bytes.maketrans(b"01", b"\x00\x01")


@dataclass(frozen=True)
class _LinearCode:
    """Every DataMatrix symbol of one number of codewords, from ppf-datamatrix's own symbols.

    ppf-datamatrix makes a symbol in pure Python in about 250 us (a third of assembling a letter).
    But a symbol is linear in the bits of its codewords: the padding and the symbol's size depend
    only on how many there are, Reed-Solomon check words are linear over GF(2^8), whose addition
    is XOR, and each bit has its fixed place. So a symbol is the one for all-zero codewords with,
    for each bit set, that bit's own pattern of modules flipped: a few dozen XORs of integers,
    given the 8 patterns a codeword, made by ppf-datamatrix once for each length. The tests check
    the result against ppf-datamatrix's own symbols."""

    rows: int
    columns: int
    blank: int  # the modules of the all-zero codewords, row by row, the first the highest bit
    flips: tuple[tuple[int, ...], ...]  # [codeword][bit]: the modules that bit flips

    def symbol(self, codewords: bytes) -> tuple[bytes, ...]:
        modules = self.blank
        for flips, word in zip(self.flips, codewords, strict=True):
            while word:
                lowest = word & -word
                modules ^= flips[lowest.bit_length() - 1]
                word ^= lowest
        cells = format(modules, f"0{self.rows * self.columns}b").encode("ascii").translate(_DARK)
        return tuple(cells[start : start + self.columns] for start in range(0, len(cells), self.columns))


@lru_cache(maxsize=8)
def _linear_code(length: int) -> _LinearCode:
    rows, columns, blank = _ppf_symbol(bytes(length))
    flips = tuple(
        tuple(_ppf_symbol(bytes(length)[:n] + bytes([1 << bit]) + bytes(length - n - 1))[2] ^ blank for bit in range(8))
        for n in range(length)
    )
    return _LinearCode(rows, columns, blank, flips)


def _ppf_symbol(codewords: bytes) -> tuple[int, int, int]:
    """ppf-datamatrix's symbol of these codewords (padded, with their check words), as rows, columns
    and its modules as one integer."""
    code = DataMatrix("", codecs=["ascii"])
    code.message, code.codecs = codewords.decode("latin-1"), ["latin-1"]  # the codewords as they are
    matrix = code.matrix
    return len(matrix), len(matrix[0]), int("".join(str(module) for row in matrix for module in row), 2)


def symbol_rect(layout: MarkLayout, sample_payload: str) -> Rect:
    """The printed mark's extent; every payload of a job has the same length, so the same size."""
    if layout.kind is MarkKind.DATAMATRIX:
        matrix = _matrix(sample_payload)
        return Rect(layout.left, layout.top, len(matrix[0]) * layout.module, len(matrix) * layout.module)
    if layout.kind is MarkKind.OMR:
        height = (len(OMR_TRACKS) - 1) * layout.pitch + layout.dash_thickness
        return Rect(layout.left, layout.top, layout.dash_length, height)
    return Rect(layout.left, layout.top, 0, 0)


def clear_zone(layout: MarkLayout, sample_payload: str) -> Rect | None:
    if layout.kind is MarkKind.NONE:
        return None
    return symbol_rect(layout, sample_payload).grown(layout.clear)


def sample_payload(job_id: str) -> str:
    """The longest payload a job prints, for sizing the mark before any letter is numbered."""
    return datamatrix_payload(job_id, 999999, 99, 99)


def reserve_space(envelope: EnvelopeProfile, layout: MarkLayout, sample: str) -> EnvelopeProfile:
    """The envelope profile with page margins widened so body text never enters the mark's clear zone.

    A clear zone over the address window, or off the page, is a setting no letter can be printed with.
    """
    zone = clear_zone(layout, sample)
    if zone is None:
        return envelope
    if zone.left < 0 or zone.top < 0 or zone.right > A4_WIDTH_MM or zone.bottom > A4_HEIGHT_MM:
        raise ConfigError(f"the {layout.kind} mark's clear zone {_mm(zone)} runs off the A4 page")
    if zone.overlaps(envelope.window):
        raise ConfigError(
            f"the {layout.kind} mark's clear zone {_mm(zone)} overlaps the {envelope.name} address window "
            f"{_mm(envelope.window)}: move the mark ([marks] left/top)"
        )
    margins = envelope.margins
    if not zone.overlaps(margins.inner()):
        return envelope
    # push the nearest page edge's margin past the zone: the least body text moves
    options = {
        "left": zone.right,
        "right": A4_WIDTH_MM - zone.left,
        "top": zone.bottom,
        "bottom": A4_HEIGHT_MM - zone.top,
    }
    side = min(options, key=lambda s: options[s] - getattr(margins, s))
    widened = dataclasses.replace(margins, **{side: round(options[side], 2)})
    return dataclasses.replace(envelope, margins=widened)


def _mm(rect: Rect) -> str:
    return f"({rect.left:.1f}, {rect.top:.1f}) {rect.width:.1f} x {rect.height:.1f} mm"


# -- drawing --------------------------------------------------------------------------------


def draw(layout: MarkLayout, payload: str) -> bytes:
    """PDF content-stream operators printing `payload` as filled K-only black rectangles."""
    if layout.kind is MarkKind.DATAMATRIX:
        shapes = _datamatrix_shapes(layout, payload)
    elif layout.kind is MarkKind.OMR:
        shapes = [_rectangle(r) for r in _omr_rects(layout, payload)]
    else:
        return b""
    return "\n".join(["q", "0 0 0 1 k", *shapes, "f", "Q", ""]).encode("ascii")


def _rectangle(r: Rect) -> str:
    return f"{_pt(r.left)} {_pt(A4_HEIGHT_MM - r.bottom)} {_pt(r.width)} {_pt(r.height)} re"


def _pt(mm: float) -> str:
    return f"{mm * POINTS_PER_MM:.3f}"


_DARK_RUN = re.compile(b"\x01+")


def _datamatrix_shapes(layout: MarkLayout, payload: str) -> list[str]:
    """One rectangle per run of dark modules in a row: a compact, exact vector symbol."""
    matrix = _matrix(payload)
    grid = _grid(layout, len(matrix), len(matrix[0]))
    return [
        grid.rectangle(y, run.start(), run.end()) for y, row in enumerate(matrix) for run in _DARK_RUN.finditer(row)
    ]


@dataclass(frozen=True)
class _Grid:
    """A symbol's module edges as the operators write them: formatting some 600 numbers a
    symbol cost more than encoding it, and a job's symbols all sit on the same grid."""

    lefts: tuple[str, ...]  # by column
    bottoms: tuple[str, ...]  # by row
    widths: tuple[str, ...]  # by run length
    height: str

    def rectangle(self, row: int, start: int, end: int) -> str:
        return f"{self.lefts[start]} {self.bottoms[row]} {self.widths[end - start]} {self.height} re"


@lru_cache(maxsize=16)
def _grid(layout: MarkLayout, rows: int, columns: int) -> _Grid:
    size = layout.module
    # the same arithmetic as one Rect a module, so the numbers come out as they always have
    cells = [
        [Rect(layout.left + x * size, layout.top + y * size, size, size) for x in range(columns)] for y in range(rows)
    ]
    return _Grid(
        lefts=tuple(_pt(cell.left) for cell in cells[0]),
        bottoms=tuple(_pt(A4_HEIGHT_MM - row[0].bottom) for row in cells),
        widths=tuple(_pt(n * size) for n in range(columns + 1)),
        height=_pt(size),
    )


def _omr_rects(layout: MarkLayout, payload: str) -> list[Rect]:
    return [
        Rect(layout.left, layout.top + n * layout.pitch, layout.dash_length, layout.dash_thickness)
        for n, bit in enumerate(payload)
        if bit == "1"
    ]


def omr_track_rects(layout: MarkLayout) -> list[Rect]:
    """Where each OMR track's dash would be, printed or not (for reading marks back)."""
    return _omr_rects(layout, "1" * len(OMR_TRACKS))
