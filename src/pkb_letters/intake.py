"""Intake: the customer's patient list (CSV) in, `PatientRow`s and `Exclusion`s out.

Headers are matched case-, space- and punctuation-insensitively against the
aliases PKB's "Add many patients" file and common exports use. Every cell is
text. Each non-blank record becomes exactly one `PatientRow` or one `Exclusion`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import nhs_number
from .address import AddressRejected, normalise_address
from .errors import InputFileError
from .records import Exclusion, PatientRow, Reason

_ALIASES: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "first_name": ("firstname", "forename", "forenames", "givenname"),
    "last_name": ("lastname", "surname", "familyname"),
    "nhs_number": ("nationalidentifier", "nhsnumber", "nhsno", "nationalid"),
    "date_of_birth": ("dob", "dateofbirth", "birthdate"),
    "address1": ("address1", "addressline1"),
    "address2": ("address2", "addressline2"),
    "address3": ("address3", "addressline3"),
    "address4": ("address4", "addressline4"),
    "address5": ("address5", "addressline5"),
    "town": ("city", "town", "posttown"),
    "county": ("stateprovincecounty", "county", "stateprovince", "state", "province"),
    "postcode": ("postcode", "postalcode", "zipcode"),
    "customer_ref": ("customerref", "customerreference", "reference", "ref", "patientreference"),
    "deceased": ("deceased", "datedeceased", "dateofdeath"),
    "postage_class": ("postageclass", "postage", "mailclass", "class"),
}
_POSTAGE_CLASSES = {"first": "first", "1st": "first", "1": "first", "second": "second", "2nd": "second",
                    "2": "second", "economy": "economy", "3": "economy", "": ""}
MANDATORY = {"first_name": "First name", "last_name": "Last name", "nhs_number": "NHS number"}
_NOT_DECEASED = {"", "n", "no", "false", "0"}
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y")


@dataclass
class IntakeResult:
    patients: list[PatientRow] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)

    @property
    def input_rows(self) -> int:
        return len(self.patients) + len(self.exclusions)


class _RowProblem(ValueError):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def read_patient_list(path: Path) -> IntakeResult:
    """Read and check the whole list; raise InputFileError only if the file itself is unusable."""
    text = _decode(path)
    records = _records(text, path)
    _, header = next(records, (0, []))
    columns = _map_columns(header, path)
    result = IntakeResult()
    first_row_of: dict[str, int] = {}
    for line, cells in records:
        outcome = _check_row(line, columns, cells, first_row_of)
        if isinstance(outcome, PatientRow):
            result.patients.append(outcome)
        else:
            result.exclusions.append(outcome)
    return result


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read patient list {path}: {exc.strerror}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            raise InputFileError(
                f"{path} is neither UTF-8 nor Windows-1252 text: first bad byte at offset "
                f"{utf8_error.start}; save it from the spreadsheet as 'CSV UTF-8'"
            ) from utf8_error


def _records(text: str, path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number where the record starts, cells) for each non-blank record."""
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    next_line = 1
    try:
        for cells in reader:
            start, next_line = next_line, reader.line_num + 1
            if any(cell.strip() for cell in cells):
                yield start, cells
    except csv.Error as exc:
        raise InputFileError(f"{path}, line {reader.line_num}: malformed CSV ({exc})") from exc


def _normalise_header(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _map_columns(header: list[str], path: Path) -> list[str]:
    lookup = {alias: key for key, aliases in _ALIASES.items() for alias in aliases}
    columns = [lookup.get(_normalise_header(name), f"unused:{name}") for name in header]
    missing = [label for key, label in MANDATORY.items() if key not in columns]
    if missing:
        found = ", ".join(repr(h) for h in header) or "(none)"
        raise InputFileError(
            f"{path}: missing mandatory column {' and '.join(missing)}; headers found: {found}"
        )
    return columns


def _check_row(line: int, columns: list[str], cells: list[str], first_row_of: dict[str, int]) -> PatientRow | Exclusion:
    values = dict(zip(columns, cells, strict=False))  # short rows: the missing trailing cells are empty
    get = lambda key: values.get(key, "").strip()  # noqa: E731
    raw_nhs = get("nhs_number")
    try:
        _check_cell_count(columns, cells)
        number = _checked_nhs_number(raw_nhs, line, first_row_of)
        patient = _patient(line, get, number)
    except _RowProblem as problem:
        shown = re.sub(r"[\s-]", "", raw_nhs)
        return Exclusion(line, get("customer_ref"), shown, problem.reason, problem.detail)
    return patient


def _check_cell_count(columns: list[str], cells: list[str]) -> None:
    extra = [cell for cell in cells[len(columns) :] if cell.strip()]
    if extra:
        raise _RowProblem(
            Reason.MALFORMED_ROW,
            f"row has {len(columns) + len(extra)} cells but the header has {len(columns)} columns: "
            "a value probably holds an unquoted separator; quote it or remove the separator",
        )


def _checked_nhs_number(raw: str, line: int, first_row_of: dict[str, int]) -> str:
    try:
        number = nhs_number.normalise(raw)
    except nhs_number.InvalidNhsNumber as exc:
        raise _RowProblem(Reason.INVALID_NHS_NUMBER, str(exc)) from exc
    if number in first_row_of:
        raise _RowProblem(
            Reason.DUPLICATE_NHS_NUMBER,
            f"same NHS number as row {first_row_of[number]}: one patient gets one letter, from the first "
            f"row with the number; remove this row (if row {first_row_of[number]} is also in this "
            "report, fix that row)",
        )
    first_row_of[number] = line
    return number


def _patient(line: int, get, number: str) -> PatientRow:
    first_name, last_name = get("first_name"), get("last_name")
    if not first_name or not last_name:
        missing = "First name" if not first_name else "Last name"
        raise _RowProblem(Reason.MISSING_NAME, f"{missing} is empty; fill it in")
    if get("deceased").lower() not in _NOT_DECEASED:
        raise _RowProblem(Reason.DECEASED, "the list marks this patient as deceased")
    try:
        address = normalise_address(
            [get(f"address{n}") for n in range(1, 6)], get("town"), get("county"), get("postcode")
        )
    except AddressRejected as exc:
        raise _RowProblem(exc.reason, exc.detail) from exc
    return PatientRow(
        input_row=line,
        customer_ref=get("customer_ref"),
        nhs_number=number,
        title=get("title"),
        first_name=first_name,
        last_name=last_name,
        date_of_birth=_date_of_birth(get("date_of_birth")),
        address_lines=address.lines,
        postcode=address.postcode,
        postage_class=_postage_class(get("postage_class")),
    )


def _postage_class(raw: str) -> str:
    try:
        return _POSTAGE_CLASSES[raw.lower()]
    except KeyError:
        raise _RowProblem(
            Reason.INVALID_POSTAGE_CLASS, f"postage class {raw!r} is not first, second or economy (or empty)"
        ) from None


def _date_of_birth(raw: str) -> dt.date | None:
    if not raw:
        return None
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    raise _RowProblem(
        Reason.INVALID_DATE_OF_BIRTH,
        f"date of birth {raw!r} is not a date in YYYY-MM-DD, DD/MM/YYYY or DD-MM-YYYY form",
    )
