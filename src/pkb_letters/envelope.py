"""Envelope profiles: where the address window sits on page 1, in millimetres.

The one place that geometry lives: the renderer places the address block from
it, the address-fit check measures against it, the marks keep clear of it and
`pkb-letters check` verifies printed positions with it.

Two profiles are built in (`c5`, the default, and `dl`); a job file may define
its own in an ``[envelope]`` table (see `profile_from_table`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pkb_letters.errors import ConfigError

A4_WIDTH_MM = 210.0
A4_HEIGHT_MM = 297.0


@dataclass(frozen=True)
class Rect:
    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def overlaps(self, other: Rect) -> bool:
        horizontal = self.left < other.right and other.left < self.right
        return horizontal and self.top < other.bottom and other.top < self.bottom

    def contains(self, other: Rect, tolerance: float = 0.0) -> bool:
        return (
            other.left >= self.left - tolerance
            and other.right <= self.right + tolerance
            and other.top >= self.top - tolerance
            and other.bottom <= self.bottom + tolerance
        )

    def grown(self, by: float) -> Rect:
        return Rect(self.left - by, self.top - by, self.width + 2 * by, self.height + 2 * by)


@dataclass(frozen=True)
class PageMargins:
    top: float
    right: float
    bottom: float
    left: float

    def inner(self) -> Rect:
        """The area of an A4 page inside these margins."""
        return Rect(self.left, self.top, A4_WIDTH_MM - self.left - self.right, A4_HEIGHT_MM - self.top - self.bottom)


# Notify's printable area: nothing may be printed closer to the edge of the sheet.
PRINTABLE = PageMargins(top=5.0, right=15.0, bottom=5.0, left=15.0)


@dataclass(frozen=True)
class EnvelopeProfile:
    name: str
    window: Rect  # the address block, from the page's top-left corner
    body_top: float  # where the letter body may start on page 1
    margins: PageMargins  # the body text's page margins
    fold: str = "half"  # how the inserter folds the sheet: "half" (C5) or "c" (DL)
    printable: PageMargins = field(default=PRINTABLE)  # outside it, only separation marks may print

    @property
    def printable_area(self) -> Rect:
        return self.printable.inner()


# GOV.UK Notify's C5 specification (A4 folded in half), used by DVLA.
C5 = EnvelopeProfile(
    name="c5",
    window=Rect(left=24.6, top=39.5, width=95.4, height=26.8),
    body_top=95.0,
    margins=PageMargins(top=10.0, right=15.0, bottom=20.0, left=15.0),
    fold="half",
)

# A DL window envelope with A4 C-folded into thirds (99 mm panels). Stock differs: the
# 90 x 45 mm window 20 mm from the left is common UK stock, and 45 mm from the top is
# DIN 5008 form B's address field. Our inference; check against the envelope you buy.
DL = EnvelopeProfile(
    name="dl",
    window=Rect(left=20.0, top=45.0, width=90.0, height=45.0),
    body_top=99.0,  # the first fold: the body starts on the middle panel
    margins=PageMargins(top=10.0, right=15.0, bottom=20.0, left=15.0),
    fold="c",
)

PROFILES = {C5.name: C5, DL.name: DL}


def profile(name: str, custom: Mapping[str, EnvelopeProfile] | None = None) -> EnvelopeProfile:
    known = {**PROFILES, **(custom or {})}
    try:
        return known[name]
    except KeyError:
        raise ConfigError(f"unknown envelope profile {name!r}; known: {', '.join(known)}") from None


def profile_from_table(table: Mapping[str, Any]) -> EnvelopeProfile:
    """A custom profile from a job file's ``[envelope]`` table, for stock the built-in ones do not fit:

    [envelope]
    name = "dl-acme"
    window = { left = 22, top = 48, width = 88, height = 40 }
    body_top = 100
    margins = { top = 10, right = 15, bottom = 20, left = 15 }   # optional, C5's by default
    fold = "c"                                                  # optional
    """
    unknown = set(table) - {"name", "window", "body_top", "margins", "fold", "printable"}
    if unknown:
        raise ConfigError(f"unknown [envelope] settings: {', '.join(sorted(unknown))}")
    try:
        name = str(table["name"])
        envelope = EnvelopeProfile(
            name=name,
            window=Rect(**_millimetres(table["window"], ("left", "top", "width", "height"))),
            body_top=float(table["body_top"]),
            margins=PageMargins(**_millimetres(table.get("margins", _asdict(C5.margins)), _SIDES)),
            fold=str(table.get("fold", "half")),
            printable=PageMargins(**_millimetres(table.get("printable", _asdict(PRINTABLE)), _SIDES)),
        )
    except KeyError as exc:
        raise ConfigError(f"[envelope] needs {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[envelope] {exc}") from None
    validate(envelope)
    return envelope


_SIDES = ("top", "right", "bottom", "left")


def _asdict(margins: PageMargins) -> dict[str, float]:
    return {side: getattr(margins, side) for side in _SIDES}


def _millimetres(value: Any, keys: tuple[str, ...]) -> dict[str, float]:
    if not isinstance(value, Mapping) or set(value) != set(keys):
        raise ValueError(f"expected a table with {', '.join(keys)} (millimetres), got {value!r}")
    return {key: float(value[key]) for key in keys}


def validate(envelope: EnvelopeProfile) -> None:
    """Refuse geometry no letter could be printed with."""
    page = Rect(0, 0, A4_WIDTH_MM, A4_HEIGHT_MM)
    if not page.contains(envelope.window) or envelope.window.width <= 0 or envelope.window.height <= 0:
        raise ConfigError(f"envelope {envelope.name}: the window {envelope.window} is not on the A4 page")
    if envelope.body_top < envelope.window.bottom:
        raise ConfigError(f"envelope {envelope.name}: body_top {envelope.body_top} mm is above the window's bottom")
    if envelope.fold not in ("half", "c", "z"):
        raise ConfigError(f"envelope {envelope.name}: fold must be half, c or z, not {envelope.fold!r}")
