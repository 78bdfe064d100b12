"""Postal address normalisation to Royal Mail style, with reasons for rejection.

Takes the address cells of one row and gives the lines to print (without the
addressee) ending in a normalised postcode (or, for BFPO, the postcode then
`BFPO n`; abroad, the country), or raises `AddressRejected`. The rules are
Royal Mail's, as GOV.UK Notify applies them to the letters it prints; where we
differ from Notify the function that does it says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pkb_letters.intake.countries import UK, Country, find_country
from pkb_letters.records import Reason

MIN_LINES = 3  # counted with the addressee line, as GOV.UK Notify counts them
MAX_LINES = 7

_POSTCODE_AREAS = (
    "AB AL B BA BB BD BF BH BL BN BR BS BT CA CB CF CH CM CO CR CT CV CW DA DD DE DG DH DL DN DT DY "
    "E EC EH EN EX FK FY G GL GU GY HA HD HG HP HR HS HU HX IG IM IP IV JE KA KT KW KY L LA LD LE "
    "LL LN LS LU M ME MK ML N NE NG NN NP NR NW OL OX PA PE PH PL PO PR RG RH RM S SA SE SG SK SL "
    "SM SN SO SP SR SS ST SW SY TA TD TF TN TQ TR TS TW UB W WA WC WD WF WN WR WS WV YO ZE"
).split()
# Longest first so that "BA1 1AA" is read as area BA, not B.
_AREA_PATTERN = "|".join(sorted(_POSTCODE_AREAS, key=len, reverse=True))
_POSTCODE = re.compile(rf"^(?:{_AREA_PATTERN})[0-9][0-9A-Z]?[0-9][ABD-HJLNP-UW-Z]{{2}}$")
_TRAILING_PUNCTUATION = re.compile(r"[\s,.]+$")
# A line may not start with these: mail sorting software and spreadsheet formulas misread them.
INVALID_FIRST_CHARACTERS = '@()=[]"\\/,<>~'
_BFPO = re.compile(r"^BFPO\s*(?:(?:NO\.?|C/O)\s*)?(\d{1,4})$", re.IGNORECASE)
_BARE_BFPO = re.compile(r"^BFPO$", re.IGNORECASE)
# The postcode area of each Crown Dependency: a letter to the island must carry one of its postcodes.
_ISLAND_POSTCODE_AREAS = {"GG": "GY", "JE": "JE", "IM": "IM"}
_NO_FIXED_ABODE = re.compile(r"\bno\s+fixed\s+(?:abode|address)\b", re.IGNORECASE)
# The ONS "postcode" NHS systems record for a patient of no fixed abode.
_NO_FIXED_ABODE_POSTCODE = "ZZ993VZ"
_INNER_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class PostalAddress:
    lines: tuple[str, ...]  # without the addressee; ends with the postcode, `BFPO n`, or the country
    postcode: str  # "" abroad, and for a BFPO address given without a postcode
    postage: str = UK  # Royal Mail zone: uk, europe or rest-of-world


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


def normalise_address(
    street_lines: list[str],
    town: str,
    county: str,
    postcode: str,
    country: str = "",
    *,
    international: bool = False,
) -> PostalAddress:
    """Royal Mail style: trimmed, no empty lines, no trailing commas or full stops, TOWN and
    POSTCODE in capitals. A cell holding several lines (a quoted value with line breaks) gives
    one address line per line. Abroad is refused unless `international` is set."""
    lines = _lines(street_lines, town, county)
    postcode, country = _clean(postcode), _clean(country)
    _check_fixed_abode([*lines, postcode])
    _check_first_characters(lines)
    _check_letter_or_digit(lines)
    bfpo, lines = _take_bfpo(lines)
    named = find_country(country) if country else None
    if named and named.is_uk:
        lines, country = [*lines, country], ""  # read as a last line: "United Kingdom" dropped, an island kept
    lines, uk_names = _without_trailing_uk(lines)
    if bfpo is not None:
        address = _bfpo_address(lines, postcode, country, bfpo)
    else:
        address = _uk_address(lines, postcode, country, uk_names) or _address_abroad(
            lines, postcode, country, international, uk_names
        )
    _check_line_count(address.lines)
    return address


def invalid_first_character(line: str) -> str | None:
    """The character a line must not start with, if it does."""
    stripped = line.lstrip()
    return stripped[0] if stripped and stripped[0] in INVALID_FIRST_CHARACTERS else None


def _lines(street_lines: list[str], town: str, county: str) -> list[str]:
    lines = [_clean(part) for cell in street_lines for part in cell.splitlines()]
    lines += [_clean(part).upper() for part in town.splitlines()]
    lines += [_clean(part) for part in county.splitlines()]
    return [line for line in lines if line]


def _check_fixed_abode(lines: list[str]) -> None:
    said = any(line.casefold() == "nfa" or _NO_FIXED_ABODE.search(line) for line in lines)
    if said or any(re.sub(r"\s+", "", line).upper() == _NO_FIXED_ABODE_POSTCODE for line in lines):
        raise AddressRejected(
            Reason.ADDRESS_NO_FIXED_ABODE,
            "the address says the patient has no fixed abode, so a letter cannot be delivered: "
            "add a correspondence address, or invite the patient another way",
        )


def _check_first_characters(lines: list[str]) -> None:
    for number, line in enumerate(lines, 1):
        character = invalid_first_character(line)
        if character:
            raise AddressRejected(
                Reason.ADDRESS_INVALID_CHARACTER,
                f"address line {number} ({_excerpt(line)}) starts with {character!r}; no line may start with "
                f"any of {INVALID_FIRST_CHARACTERS}: remove the character",
            )


def _check_letter_or_digit(lines: list[str]) -> None:
    """Every line, not only the first two as Notify checks: a line of symbols alone ("!!!", "???", "-")
    tells the post office nothing, and is most often what is left of a value an export lost (an
    encoding that could not hold it writes "???"), so a person must look at the row."""
    for number, line in enumerate(lines, 1):
        if not has_letter_or_digit(line):
            raise AddressRejected(
                Reason.ADDRESS_INVALID_CHARACTER,
                f"address line {number} ({_excerpt(line)}) has no letter or digit: correct the line "
                "(an export may have lost its text), or empty the cell",
            )


def has_letter_or_digit(line: str) -> bool:
    """True when the line has a letter or digit in any script."""
    return any(character.isalnum() for character in line)


def _take_bfpo(lines: list[str]) -> tuple[int | None, list[str]]:
    """The BFPO number and the other lines. A line reading only "BFPO" beside the numbered line
    is the same routing said twice: it is not printed (as Notify does)."""
    numbers = [match.group(1) for line in lines if (match := _BFPO.match(line))]
    if not numbers:
        return None, lines
    return int(numbers[0]), [line for line in lines if not (_BFPO.match(line) or _BARE_BFPO.match(line))]


def _without_trailing_uk(lines: list[str]) -> tuple[list[str], list[str]]:
    """The lines without the UK names ("England", "GBR", "Guernsey"...) written after the postcode,
    and those names, in the order written."""
    taken: list[str] = []
    while lines and (country := find_country(lines[-1])) and country.is_uk:
        taken.insert(0, lines[-1])
        lines = lines[:-1]
    return lines, taken


def _uk_address(lines: list[str], postcode: str, country: str, uk_names: list[str]) -> PostalAddress | None:
    if country:
        return None  # the Country column names a country abroad
    lines, code = _postcode_and_rest(lines, postcode)
    if code is None:
        return None
    island = _island(uk_names)
    if island:
        lines = _with_island(lines, *island, code)
    return PostalAddress((*lines, code), code)


def _island(uk_names: list[str]) -> tuple[str, Country] | None:
    """The Crown Dependency among the UK names written after the postcode, if any."""
    for name in uk_names:
        country = find_country(name)
        if country and country.code in _ISLAND_POSTCODE_AREAS:
            return name, country
    return None


def _with_island(lines: list[str], name: str, island: Country, code: str) -> list[str]:
    """Lines with the island as the post town above the postcode, as Royal Mail's address file
    writes it (GUERNSEY, JERSEY, ISLE OF MAN). Notify drops the island instead; we keep it where it
    fits, and drop it only when the block would be too tall, since the postcode alone routes the letter."""
    area = _ISLAND_POSTCODE_AREAS[island.code]
    if not re.match(rf"{area}[0-9]", code):
        raise AddressRejected(
            Reason.ADDRESS_BAD_POSTCODE,
            f"the address names {_excerpt(name)} but post code {code!r} is not one of its postcodes "
            f"(they start {area}): correct the postcode or the island",
        )
    already = bool(lines) and find_country(lines[-1]) == island
    if already or len(lines) + 3 > MAX_LINES:  # + the island, the postcode and the addressee
        return lines
    return [*lines, name.upper()]


def _postcode_and_rest(lines: list[str], postcode: str) -> tuple[list[str], str | None]:
    """The normalised postcode, from the Post code column or else the last line, and the other lines.
    A postcode written both in an address line and in the Post code column is printed once."""
    if postcode:
        code = normalise_postcode(postcode)
    else:
        code = normalise_postcode(lines[-1]) if lines else None
        if code:
            lines = lines[:-1]
    if code and lines and normalise_postcode(lines[-1]) == code:
        lines = lines[:-1]
    return lines, code


def _bfpo_address(lines: list[str], postcode: str, country: str, number: int) -> PostalAddress:
    abroad = country or (lines and (named := find_country(lines[-1])) and not named.is_uk)
    if abroad:
        raise AddressRejected(
            Reason.ADDRESS_BAD_POSTCODE,
            "a BFPO address must not name a country (BFPO routes the letter): remove the country",
        )
    lines, code = _postcode_and_rest(lines, postcode)
    if postcode and code is None:
        raise _bad_postcode(postcode, international=False)
    end = (code, f"BFPO {number}") if code else (f"BFPO {number}",)
    return PostalAddress((*lines, *end), code or "")


def _address_abroad(
    lines: list[str], postcode: str, country: str, international: bool, uk_names: list[str]
) -> PostalAddress:
    name = country or (lines[-1] if lines else "")
    named = find_country(name) if name else None
    if country and named is None:
        raise AddressRejected(
            Reason.ADDRESS_BAD_POSTCODE,
            f"the Country column ({_excerpt(country)}) is not a country we recognise: correct it, "
            "or empty it for a UK address",
        )
    if named is None:
        raise _no_postcode(lines, postcode, international, uk_names)
    if not international:
        raise AddressRejected(
            Reason.ADDRESS_INTERNATIONAL,
            f"the address is abroad ({_excerpt(name)}) and this job posts to UK addresses only: correct "
            "the address, or enable international post for the job (--international-post, or "
            "international_post = true in the job file's [rules])",
        )
    body = lines if country else lines[:-1]
    if postcode:
        body = [*body, postcode]
    return PostalAddress((*body, name.upper()), "", named.postage)


def _no_postcode(lines: list[str], postcode: str, international: bool, uk_names: list[str]) -> AddressRejected:
    """Why a UK address has no postcode, naming what is wrong: the Post code column if it holds
    something, else the last line (a last line that is no postcode and no country is not the
    postcode's fault)."""
    if postcode or not lines:
        return _bad_postcode(postcode, international)
    if uk_names:
        return AddressRejected(
            Reason.ADDRESS_BAD_POSTCODE,
            f"the address ends {_excerpt(uk_names[-1])}, in the UK, but has no postcode: fill in the Post code column",
        )
    also = ", or for a letter abroad name the country on the last line" if international else ""
    return AddressRejected(
        Reason.ADDRESS_BAD_POSTCODE,
        f"last line {_excerpt(lines[-1])} is not a UK postcode or a country we recognise, and the Post code "
        f"column is empty: correct the last line or fill in the Post code column{also}",
    )


def _bad_postcode(postcode: str, international: bool) -> AddressRejected:
    shown = postcode or "(empty)"
    also = " or, for a letter abroad, name the country on the last line" if international else ""
    return AddressRejected(
        Reason.ADDRESS_BAD_POSTCODE,
        f"post code {shown!r} is not a valid UK postcode; correct the Post code column{also}",
    )


def _check_line_count(lines: tuple[str, ...]) -> None:
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


def _clean(line: str) -> str:
    return _TRAILING_PUNCTUATION.sub("", _INNER_SPACE.sub(" ", line.strip()))


def _excerpt(text: str, limit: int = 30) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
