"""Envelope profiles: where the address window sits on page 1, in millimetres.

The one place that geometry lives: the renderer places the address block from
it, and tests check printed positions against it.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class PageMargins:
    top: float
    right: float
    bottom: float
    left: float


@dataclass(frozen=True)
class EnvelopeProfile:
    name: str
    window: Rect  # the address block, from the page's top-left corner
    body_top: float  # where the letter body may start on page 1
    margins: PageMargins


# GOV.UK Notify's C5 specification (A4 folded in half), used by DVLA.
C5 = EnvelopeProfile(
    name="c5",
    window=Rect(left=24.6, top=39.5, width=95.4, height=26.8),
    body_top=95.0,
    margins=PageMargins(top=10.0, right=15.0, bottom=20.0, left=15.0),
)

PROFILES = {C5.name: C5}


def profile(name: str) -> EnvelopeProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown envelope profile {name!r}; known: {', '.join(PROFILES)}") from None
