"""Which letter a patient gets: its format (Accessible Information Standard) and language (Welsh
Language Standards), from the row's `Format` and `Language` cells or the job's defaults.

Takes a list's cell text or a job file's value; gives the canonical words the rest of the job uses:
formats `standard`, `large-print` (both printed in the run) and `braille`, `easy-read`, `audio`
(made by a specialist provider from the hand-off folder); languages `english`, `welsh_then_english`
(GOV.UK Notify's order: the Welsh pages first) and `welsh`. An empty cell is the job's default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STANDARD = "standard"
LARGE_PRINT = "large-print"
HANDOFF_FORMATS = ("braille", "easy-read", "audio")
FORMATS = (STANDARD, LARGE_PRINT, *HANDOFF_FORMATS)
PRINTED_FORMATS = (STANDARD, LARGE_PRINT)

ENGLISH = "english"
WELSH_THEN_ENGLISH = "welsh_then_english"
WELSH = "welsh"
LANGUAGES = (ENGLISH, WELSH_THEN_ENGLISH, WELSH)
NEEDS_WELSH = (WELSH_THEN_ENGLISH, WELSH)

# The Welsh letter's expiry date: `long_date(day, "cy")`; the read-back looks for it too.
WELSH_MONTHS = (
    "Ionawr",
    "Chwefror",
    "Mawrth",
    "Ebrill",
    "Mai",
    "Mehefin",
    "Gorffennaf",
    "Awst",
    "Medi",
    "Hydref",
    "Tachwedd",
    "Rhagfyr",
)

HANDOFF_DIR = "handoff"  # in the job folder: the letters specialist providers make (job/handoff.py)

LARGE_PRINT_MIN_PT = 16.0  # Accessible Information Standard / RNIB: large print is 16 pt or more
LARGE_PRINT_DEFAULT_PT = 18.0  # RNIB's preferred size

# What lists write, squeezed to letters and digits (case, spaces and punctuation ignored).
_FORMAT_WORDS = {
    "standard": STANDARD,
    "print": STANDARD,
    "standardprint": STANDARD,
    "largeprint": LARGE_PRINT,
    "large": LARGE_PRINT,
    "lp": LARGE_PRINT,
    "braille": "braille",
    "easyread": "easy-read",
    "audio": "audio",
}
_LANGUAGE_WORDS = {
    "english": ENGLISH,
    "en": ENGLISH,
    "saesneg": ENGLISH,
    "welshthenenglish": WELSH_THEN_ENGLISH,
    "bilingual": WELSH_THEN_ENGLISH,
    "dwyieithog": WELSH_THEN_ENGLISH,
    "welsh": WELSH,
    "cy": WELSH,
    "cymraeg": WELSH,
}


class UnknownValue(ValueError):
    """A cell or setting that names no format or language we know."""


def _squeezed(raw: str) -> str:
    return re.sub(r"[^0-9a-z]", "", raw.lower())


def parse_format(raw: str) -> str:
    """The canonical format for a cell or setting; "" for an empty cell (the job's default)."""
    if not raw.strip():
        return ""
    try:
        return _FORMAT_WORDS[_squeezed(raw)]
    except KeyError:
        raise UnknownValue(f"format {raw!r} is not one of {', '.join(FORMATS)} (or empty)") from None


def parse_language(raw: str) -> str:
    """The canonical language for a cell or setting; "" for an empty cell (the job's default)."""
    if not raw.strip():
        return ""
    try:
        return _LANGUAGE_WORDS[_squeezed(raw)]
    except KeyError:
        raise UnknownValue(f"language {raw!r} is not one of {', '.join(LANGUAGES)} (or empty)") from None


@dataclass(frozen=True)
class Variant:
    """The letter one patient gets."""

    format: str = STANDARD
    language: str = ENGLISH

    @property
    def printed(self) -> bool:
        """Whether the letter goes in the print run (else to the hand-off folder)."""
        return self.format in PRINTED_FORMATS

    @property
    def plain(self) -> bool:
        """A standard English letter: the template exactly as it always was."""
        return self.format == STANDARD and self.language == ENGLISH

    @property
    def needs_welsh(self) -> bool:
        return self.language in NEEDS_WELSH


def variant_of(row_format: str, row_language: str, default_format: str, default_language: str) -> Variant:
    """The row's own format and language where it gives them, else the job's."""
    return Variant(row_format or default_format or STANDARD, row_language or default_language or ENGLISH)
