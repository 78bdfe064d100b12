"""Royal Mail Mailmark 2D: the barcode Royal Mail prices bulk letters by, printed through the envelope window.

Takes the job file's ``[mailmark]`` table, a piece's postage class, postcode and item ID (generate
mode) or the mail house's barcode string (supplied mode), and the envelope profile; gives the
45-character-header string, its validation, where the symbol sits in the window (and the narrower
address block left beside or below it) and the PDF operators that print it in K-only black.

The string's layout (Royal Mail's Mailmark Barcode Definition Document):
``JGB `` · information type · version ``1`` · class · supply chain ID (7 digits) · item ID (8 digits)
· destination postcode + DPS (9, space-padded) · service type · return-to-sender postcode (7)
· 6 spaces reserved; then optional customer content. libzint (PyPI ``zint-bindings``) encodes it and
applies Royal Mail's input rules; we never encode it ourselves. The symbol is always type 7
(24 x 24 modules), so a job's symbols all take the same space; that holds up to 51 characters.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from pkb_letters.envelope import A4_HEIGHT_MM, EnvelopeProfile, Rect
from pkb_letters.errors import ConfigError

POINTS_PER_MM = 72 / 25.4
HEADER_LENGTH = 45
MAX_LENGTH = 51  # the most a type 7 (24 x 24) symbol holds
SYMBOL_MODULES = 24
_ZINT_TYPE_7 = 8  # zint's option_2 for the 24 x 24 symbol
CLASS_DIGITS = {"first": "1", "second": "2", "economy": "3"}
REUSE_DAYS = 90  # Royal Mail: an item ID is unique for at least 90 days per supply chain ID
_HEADER_CHARACTERS = re.compile(r"[A-Z0-9 ]*")
INTERNATIONAL = "XY11"
_MIN_BLOCK = (40.0, 15.0)  # mm: narrower or shorter, hardly any address (3 lines at least) would fit


class Mode(StrEnum):
    GENERATE = "generate"
    SUPPLIED = "supplied"


class Position(StrEnum):
    RIGHT = "right"  # beside the address, at the window's right edge
    BELOW = "below"  # under the address, at the window's bottom left


class PrintOrder(StrEnum):
    JOB = "job"  # the job's own order (`--sort`), which the piece ids follow
    SORT_SEQUENCE = "sort_sequence"  # supplied: the mail house's sort sequence, from its file


class MailmarkInvalid(ValueError):
    """A Mailmark string Royal Mail's rules (as libzint applies them) refuse; the message says why."""


@dataclass(frozen=True)
class MailmarkSettings:
    mode: Mode
    supply_chain_id: str = ""  # generate: Royal Mail's 7-digit ID for the mailer or mail house
    information_type: str = "0"  # 0 sorted/unsorted, A online postage, B franking, C consolidation
    service_type: str = "0"  # 0 letter, 1 large letter
    return_postcode: str = ""  # return-to-sender postcode, printed without its space; blank allowed
    default_dps: str = "9Z"  # the delivery point suffix used where the list gives none (see `destination`)
    state_dir: Path | None = None  # generate: where item IDs are counted (None: the user's data folder)
    supplied: Path | None = None  # supplied: the mail house's CSV (piece_id, barcode, sort_sequence)
    print_order: PrintOrder = PrintOrder.JOB  # supplied: SORT_SEQUENCE prints in the file's sort sequence
    position: Position = Position.RIGHT
    module: float = 0.5  # mm; Royal Mail recommends 0.5, allows at most 0.7
    clear: float = 2.0  # mm of quiet zone around the symbol

    @property
    def size(self) -> float:
        return SYMBOL_MODULES * self.module


def settings_from_table(table: Mapping[str, Any] | None, job_dir: Path) -> MailmarkSettings | None:
    """The job file's ``[mailmark]`` table, checked; None when there is none (or ``mode = "off"``)."""
    if not table or table.get("mode") == "off":
        return None
    values = dict(table)
    fields = {f.name for f in dataclasses.fields(MailmarkSettings)}
    unknown = set(values) - fields
    if unknown:
        raise ConfigError(f"unknown [mailmark] settings: {', '.join(sorted(unknown))}")
    for key, kind, default in (
        ("mode", Mode, ""),
        ("position", Position, Position.RIGHT),
        ("print_order", PrintOrder, PrintOrder.JOB),
    ):
        try:
            values[key] = kind(values.get(key, default))
        except ValueError:
            choices = " or ".join(f'"{choice}"' for choice in kind)
            raise ConfigError(f"[mailmark] {key} must be {choices}, not {values.get(key, '')!r}") from None
    for key in ("state_dir", "supplied"):
        if key in values:
            values[key] = job_dir / str(values[key])
    for key in ("module", "clear"):
        if key in values:
            values[key] = float(values[key])
    for key in ("supply_chain_id", "information_type", "service_type", "return_postcode", "default_dps"):
        if key in values:
            values[key] = str(values[key]).upper().replace(" ", "")
    settings = MailmarkSettings(**values)
    _check_settings(settings)
    return settings


def _check_settings(settings: MailmarkSettings) -> None:
    if not 0.3 <= settings.module <= 0.7:
        raise ConfigError(
            f"[mailmark] module must be 0.3 to 0.7 mm (Royal Mail: 0.5 recommended), not {settings.module}"
        )
    if settings.clear < 2.0:
        raise ConfigError(f"[mailmark] clear must be at least 2 mm (Royal Mail's quiet zone), not {settings.clear}")
    if settings.mode is Mode.SUPPLIED:
        if settings.supplied is None:
            raise ConfigError('[mailmark] mode = "supplied" needs supplied = "FILE.csv" (the mail house\'s barcodes)')
        return
    if settings.print_order is not PrintOrder.JOB:
        raise ConfigError(
            f'[mailmark] print_order = "{settings.print_order}" needs mode = "supplied": only the mail house\'s '
            "file gives a sort sequence"
        )
    if not re.fullmatch(r"\d{7}", settings.supply_chain_id):
        raise ConfigError("[mailmark] supply_chain_id must be the 7 digits Royal Mail issued")
    try:  # a sample string: refuses a bad information type, service type or return postcode now
        validate(build(settings, "second", 0, "AB1 9XY"))
    except MailmarkInvalid as exc:
        raise ConfigError(f"[mailmark] settings make an invalid Mailmark: {exc}") from None


# -- the string -------------------------------------------------------------------------------


def build(settings: MailmarkSettings, postage_class: str, item_id: int, postcode: str, dps: str = "") -> str:
    """The 45-character Mailmark string for one piece; `dps` (Royal Mail's delivery point suffix, from
    its licensed address file) defaults to the settings' `default_dps`."""
    return "".join(
        (
            "JGB ",
            settings.information_type,
            "1",
            CLASS_DIGITS[postage_class],
            settings.supply_chain_id,
            f"{item_id:08d}",
            destination(postcode, dps or settings.default_dps).ljust(9),
            settings.service_type,
            settings.return_postcode.ljust(7),
            " " * 6,
        )
    )


def destination(postcode: str, dps: str) -> str:
    """The destination field: the postcode without its space, then the DPS. Royal Mail also allows a
    blank or outward-only destination, but libzint 2.15 (the one zint-bindings bundles) refuses both
    (zint fixed it later, ticket #334), so a full postcode and a DPS it is; a piece without a UK
    postcode (abroad) gets Royal Mail's international designation ``XY11``, which libzint accepts."""
    outward, _, inward = postcode.upper().strip().partition(" ")
    if not outward:
        return INTERNATIONAL
    return f"{outward}{inward}{dps.upper().strip()}"


def item_id(barcode: str) -> str:
    return barcode[14:22]


def validate(barcode: str) -> None:
    """Refuse a string Royal Mail's rules refuse, saying why: ours (a complete header, in the capitals
    it prints in, that fits the type 7 symbol) and libzint's own checks of each field."""
    if not barcode.startswith("JGB "):
        raise MailmarkInvalid("a Mailmark string starts with 'JGB '")
    if not HEADER_LENGTH <= len(barcode) <= MAX_LENGTH:
        raise MailmarkInvalid(
            f"a Mailmark string here is {HEADER_LENGTH} to {MAX_LENGTH} characters (type 7), not {len(barcode)}"
        )
    if not _HEADER_CHARACTERS.fullmatch(barcode[:HEADER_LENGTH]):
        raise MailmarkInvalid("the first 45 characters are A-Z, 0-9 and space only")
    _symbol(barcode)


@lru_cache(maxsize=64)
def _symbol(barcode: str) -> tuple[bytes, ...]:
    import zint  # imported here: only the assembling process and the tests draw Mailmarks

    symbol = zint.Symbol()
    symbol.symbology = zint.Symbology.MAILMARK_2D
    symbol.option_2 = _ZINT_TYPE_7
    try:
        symbol.encode(barcode)
    except RuntimeError as exc:  # libzint's error, e.g. "Error 872: Invalid Destination Post Code plus DPS"
        raise MailmarkInvalid(str(exc)) from None
    rows, width = symbol.rows, symbol.width
    data: list[list[int]] = symbol.encoded_data.tolist()  # type: ignore[assignment]  # a 2-D memoryview
    # zint's bitmap: row y, module x is bit x % 8 of byte x // 8
    return tuple(bytes((data[y][x >> 3] >> (x & 7)) & 1 for x in range(width)) for y in range(rows))


def matrix(barcode: str) -> tuple[bytes, ...]:
    """The symbol's modules, row by row, 1 for dark (libzint's encoding of a valid string)."""
    validate(barcode)
    return _symbol(barcode)


# -- where it goes ----------------------------------------------------------------------------


def symbol_rect(envelope: EnvelopeProfile, settings: MailmarkSettings) -> Rect:
    """The symbol inside the envelope's window, its quiet zone inside the window too."""
    window, size, clear = envelope.window, settings.size, settings.clear
    if settings.position is Position.RIGHT:
        return Rect(window.right - clear - size, window.top + clear, size, size)
    return Rect(window.left + clear, window.bottom - clear - size, size, size)


def clear_zone(envelope: EnvelopeProfile, settings: MailmarkSettings) -> Rect:
    return symbol_rect(envelope, settings).grown(settings.clear)


def reserve_window(envelope: EnvelopeProfile, settings: MailmarkSettings) -> EnvelopeProfile:
    """The profile the address block is laid out and fitted in: the window less the Mailmark and its
    quiet zone, so an address that would run into the barcode is an `address-too-wide` (or -tall)."""
    window, zone = envelope.window, clear_zone(envelope, settings)
    if settings.position is Position.RIGHT:
        block = Rect(window.left, window.top, zone.left - window.left, window.height)
    else:
        block = Rect(window.left, window.top, window.width, zone.top - window.top)
    if block.width < _MIN_BLOCK[0] or block.height < _MIN_BLOCK[1]:
        raise ConfigError(
            f"the Mailmark ({settings.size:.1f} mm and {settings.clear:.1f} mm clear) leaves the {envelope.name} "
            f"window only {block.width:.1f} x {block.height:.1f} mm for the address: try position = "
            f"{'below' if settings.position is Position.RIGHT else 'right'}"
        )
    return dataclasses.replace(envelope, window=block)


# -- drawing ----------------------------------------------------------------------------------

_DARK_RUN = re.compile(b"\x01+")


def draw(rect: Rect, module: float, barcode: str) -> bytes:
    """PDF operators printing the Mailmark at `rect` as filled K-only black rectangles, one per run of
    dark modules in a row; drawn in default user space, as the separation marks are."""
    shapes = []
    for y, row in enumerate(matrix(barcode)):
        bottom = A4_HEIGHT_MM - (rect.top + (y + 1) * module)
        for run in _DARK_RUN.finditer(row):
            left, width = rect.left + run.start() * module, (run.end() - run.start()) * module
            shapes.append(f"{_pt(left)} {_pt(bottom)} {_pt(width)} {_pt(module)} re")
    return "\n".join(["q", "0 0 0 1 k", *shapes, "f", "Q", ""]).encode("ascii")


def _pt(mm: float) -> str:
    return f"{mm * POINTS_PER_MM:.3f}"


def placement_record(envelope: EnvelopeProfile, settings: MailmarkSettings) -> dict[str, float]:
    """Where the manifest says the Mailmark is, so `check` can read it without the job file."""
    rect = symbol_rect(envelope, settings)
    return {"left": rect.left, "top": rect.top, "size": rect.width, "module": settings.module, "clear": settings.clear}
