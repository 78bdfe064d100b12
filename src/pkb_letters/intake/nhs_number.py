"""NHS number normalisation and validation (modulus 11 check digit, PKB's range rule)."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s-]+")
_ASCII_DIGITS = re.compile(r"[0-9]+")
_EXCEL_SCIENTIFIC = re.compile(r"^\d(\.\d+)?E\+?\d+$", re.IGNORECASE)
_EXCEL_DECIMAL = re.compile(r"^\d+\.0+$")
_EXCEL_THOUSANDS = re.compile(r"^\d{1,3}(,\d{3})+$")


class InvalidNhsNumber(ValueError):
    """The value is not a usable NHS number; the message says why and how to fix it."""


def normalise(raw: str) -> str:
    """Return the 10-digit NHS number, or raise InvalidNhsNumber explaining the problem."""
    value = _SEPARATORS.sub("", raw.strip())
    if not value:
        raise InvalidNhsNumber("NHS number is empty")
    _check_spreadsheet_damage(raw.strip(), value)
    if not _ASCII_DIGITS.fullmatch(value):  # str.isdigit() also accepts '²' and full-width digits
        raise InvalidNhsNumber("NHS number must contain only the digits 0-9, spaces or dashes")
    if len(value) == 9:
        raise InvalidNhsNumber(
            "NHS number has 9 digits: a leading zero was probably lost by a spreadsheet; "
            "re-export the column formatted as text"
        )
    if len(value) != 10:
        raise InvalidNhsNumber(f"NHS number must have 10 digits, this has {len(value)}")
    if check_digit(value[:9]) != value[9]:
        raise InvalidNhsNumber("NHS number check digit is wrong: check for a mistyped digit")
    if value[0] in "0123":
        raise InvalidNhsNumber(
            "NHS numbers starting 0-3 are Scottish CHI or Northern Ireland H&C numbers, "
            "which PKB does not accept as NHS numbers"
        )
    return value


def _check_spreadsheet_damage(shown: str, value: str) -> None:
    """Excel reads a column of NHS numbers as numbers unless told it is text, and saves what it shows."""
    if _EXCEL_SCIENTIFIC.match(value):
        raise InvalidNhsNumber(
            f"NHS number {shown!r} was saved by a spreadsheet in scientific notation, which keeps only the "
            "first few digits: the number is lost; re-export the column formatted as text"
        )
    if _EXCEL_DECIMAL.match(value):
        raise InvalidNhsNumber(
            f"NHS number {shown!r} was saved by a spreadsheet as a decimal number; "
            "re-export the column formatted as text"
        )
    if _EXCEL_THOUSANDS.match(value):
        raise InvalidNhsNumber(
            f"NHS number {shown!r} was saved by a spreadsheet with thousands separators; "
            "re-export the column formatted as text"
        )


def check_digit(first_nine: str) -> str | None:
    """The modulus 11 check digit for nine digits, or None if no valid number has them."""
    total = sum(int(digit) * weight for digit, weight in zip(first_nine, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        return "0"
    if check == 10:
        return None
    return str(check)


def mask(nhs_number: str) -> str:
    """The form safe for logs: only the last four digits."""
    return "*" * max(len(nhs_number) - 4, 0) + nhs_number[-4:]
