"""Postal address normalisation to Royal Mail style, with reasons for rejection.

Takes the address cells of one row and gives the lines to print (without the
addressee) ending in a normalised postcode, or raises `AddressRejected`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .records import Reason

MIN_LINES = 3  # counted with the addressee line, as GOV.UK Notify counts them
MAX_LINES = 7

_POSTCODE_AREAS = (
    "AB AL B BA BB BD BH BL BN BR BS BT CA CB CF CH CM CO CR CT CV CW DA DD DE DG DH DL DN DT DY "
    "E EC EH EN EX FK FY G GL GU GY HA HD HG HP HR HS HU HX IG IM IP IV JE KA KT KW KY L LA LD LE "
    "LL LN LS LU M ME MK ML N NE NG NN NP NR NW OL OX PA PE PH PL PO PR RG RH RM S SA SE SG SK SL "
    "SM SN SO SP SR SS ST SW SY TA TD TF TN TQ TR TS TW UB W WA WC WD WF WN WR WS WV YO ZE"
).split()
# Longest first so that "BA1 1AA" is read as area BA, not B.
_AREA_PATTERN = "|".join(sorted(_POSTCODE_AREAS, key=len, reverse=True))
_POSTCODE = re.compile(rf"^(?:{_AREA_PATTERN})[0-9][0-9A-Z]?[0-9][ABD-HJLNP-UW-Z]{{2}}$")
_TRAILING_PUNCTUATION = re.compile(r"[\s,.]+$")
_INNER_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class PostalAddress:
    lines: tuple[str, ...]  # without the addressee; the postcode is the last line
    postcode: str


class AddressRejected(ValueError):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def normalise_postcode(raw: str) -> str | None:
    """`OUTWARD INWARD` in capitals, or None if it is not a UK postcode."""
    compact = re.sub(r"\s+", "", raw).upper()
    if not _POSTCODE.match(compact):
        return None
    return f"{compact[:-3]} {compact[-3:]}"


def normalise_address(street_lines: list[str], town: str, county: str, postcode: str) -> PostalAddress:
    """Royal Mail style: trimmed, no empty lines, no trailing punctuation, TOWN and POSTCODE in capitals."""
    lines = [_clean(line) for line in street_lines]
    lines.append(_clean(town).upper())
    lines.append(_clean(county))
    lines = [line for line in lines if line]
    normalised = normalise_postcode(postcode)
    if normalised is None:
        shown = postcode.strip() or "(empty)"
        raise AddressRejected(
            Reason.ADDRESS_BAD_POSTCODE,
            f"post code {shown!r} is not a valid UK postcode; correct the Post code column",
        )
    lines.append(normalised)
    total = len(lines) + 1  # the addressee's name is the first line of the block
    if total < MIN_LINES:
        raise AddressRejected(
            Reason.ADDRESS_TOO_FEW_LINES,
            f"address has {total} lines with the name; at least {MIN_LINES} are needed "
            "(name, street, postcode): fill in Address1",
        )
    if total > MAX_LINES:
        raise AddressRejected(
            Reason.ADDRESS_TOO_MANY_LINES,
            f"address has {total} lines with the name; at most {MAX_LINES} fit the envelope window: "
            "merge or drop lines (a county is rarely needed)",
        )
    return PostalAddress(tuple(lines), normalised)


def _clean(line: str) -> str:
    return _TRAILING_PUNCTUATION.sub("", _INNER_SPACE.sub(" ", line.strip()))
