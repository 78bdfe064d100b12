"""Intake: the customer's patient list (CSV) in, `PatientRow`s and `Exclusion`s out.

Headers are matched case-, space- and punctuation-insensitively against the
aliases PKB's "Add many patients" file and common exports use. The encoding
(UTF-8 with or without BOM, or Windows-1252) and the separator are detected;
a file that is neither encoding is refused. Every cell is text. Each non-blank
record becomes exactly one `PatientRow` or one `Exclusion`, and a patient
marked deceased in any row gets a `PatientRow` from none.
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
from .address import INVALID_FIRST_CHARACTERS, AddressRejected, invalid_first_character, normalise_address
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
    "country": ("country",),
    "customer_ref": ("customerref", "customerreference", "reference", "ref", "patientreference"),
    "deceased": ("deceased", "datedeceased", "dateofdeath"),
    "postage_class": ("postageclass", "postage", "mailclass", "class"),
}
_POSTAGE_CLASSES = {"first": "first", "1st": "first", "1": "first", "second": "second", "2nd": "second",
                    "2": "second", "economy": "economy", "3": "economy", "": ""}
MANDATORY = {"first_name": "First name", "last_name": "Last name", "nhs_number": "NHS number"}
_NOT_DECEASED = {"", "n", "no", "false", "0"}
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y")
_SPREADSHEET_DATE_SERIAL = re.compile(r"^\d{5}(?:\.0+)?$")  # days since 1900: a date cell saved as a number
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_ZIP_MAGIC = b"PK\x03\x04"  # .xlsx and .ods workbooks are zip files
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # never in a text CSV; tab, CR, LF are fine
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


@dataclass
class IntakeResult:
    patients: list[PatientRow] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)
    encoding: str = "utf-8"  # as detected: utf-8, utf-8-sig (with BOM) or cp1252
    delimiter: str = ","

    @property
    def input_rows(self) -> int:
        return len(self.patients) + len(self.exclusions)


class _RowProblem(ValueError):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def read_patient_list(path: Path, *, international: bool = False) -> IntakeResult:
    """Read and check the whole list; raise InputFileError only if the file itself is unusable.

    `international` lets addresses abroad through (the last line must name the country);
    otherwise they are excluded as `address-international`."""
    text, encoding = _decode(path)
    delimiter = _delimiter(text)
    records = _records(text, path, delimiter)
    _, header = next(records, (0, []))
    columns = _map_columns(header, path)
    result = IntakeResult(encoding=encoding, delimiter=delimiter)
    rows = list(records)
    checks = _RowChecks(columns, _marked_deceased(columns, rows), international)
    for line, cells in rows:
        outcome = checks.check(line, cells)
        if isinstance(outcome, PatientRow):
            result.patients.append(outcome)
        else:
            result.exclusions.append(outcome)
    return result


def _decode(path: Path) -> tuple[str, str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read patient list {path}: {exc.strerror}") from exc
    return decode_text(data, path)


def decode_text(data: bytes, path: Path) -> tuple[str, str]:
    """The text and the encoding it was in: UTF-8 (with or without BOM) if it is valid UTF-8,
    else Windows-1252 if every byte is defined there and no UTF-8 is mixed in; else refused."""
    _refuse_binary(data, path)
    if data.startswith(_UTF8_BOM):
        try:
            return data[len(_UTF8_BOM) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            offset = len(_UTF8_BOM) + exc.start
            problem = f"starts with a UTF-8 byte order mark, but {_byte_at(data, offset)} is not UTF-8"
            raise _unreadable(path, problem) from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    utf8_text = _UTF8_MULTIBYTE.search(data)
    if utf8_text:  # part UTF-8, part something else: reading it either way would garble names
        problem = f"mixes encodings: it has UTF-8 text at offset {utf8_text.start()}, but {_byte_at(data, first_bad)}"
        raise _unreadable(path, problem + " is not UTF-8")
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as exc:
        also = "" if exc.start == first_bad else f"; {_byte_at(data, exc.start)} is undefined in Windows-1252"
        raise _unreadable(
            path, f"is neither UTF-8 nor Windows-1252 text: first bad byte at offset {first_bad} "
            f"(0x{data[first_bad]:02X}){also}"
        ) from exc


def _byte_at(data: bytes, offset: int) -> str:
    return f"the byte 0x{data[offset]:02X} at offset {offset}"


def _unreadable(path: Path, problem: str) -> InputFileError:
    return InputFileError(f"{path} {problem}; save the list from the spreadsheet as 'CSV UTF-8'")


def _refuse_binary(data: bytes, path: Path) -> None:
    if data.startswith(_UTF16_BOMS):
        raise InputFileError(f"{path} is UTF-16 text (Excel's 'Unicode Text'); save it as 'CSV UTF-8' instead")
    if data.startswith(_ZIP_MAGIC):
        raise InputFileError(f"{path} is a spreadsheet workbook (a zip file), not CSV; save it as 'CSV UTF-8'")
    control = _CONTROL_BYTES.search(data)
    if control:
        raise InputFileError(
            f"{path} is not a text file: byte 0x{control.group()[0]:02X} at offset {control.start()} is a control "
            "character; save the list from the spreadsheet as 'CSV UTF-8'"
        )


def _delimiter(text: str) -> str:
    """The separator the header line uses most: comma, semicolon (Excel in many locales) or tab."""
    first_line = text.split("\n", 1)[0]
    return max(",;\t", key=first_line.count)


def _records(text: str, path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number where the record starts, cells) for each non-blank record."""
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


def _cells_by_column(columns: list[str], cells: list[str]):
    values = dict(zip(columns, cells, strict=False))  # short rows: the missing trailing cells are empty
    return lambda key: values.get(key, "").strip()


def _marked_deceased(columns: list[str], rows: list[tuple[int, list[str]]]) -> dict[str, int]:
    """NHS number → the first row that marks the patient deceased. Any row counts, even a
    malformed one: a wrong "deceased" costs a letter, a missed one sends a letter to the dead."""
    marked: dict[str, int] = {}
    for line, cells in rows:
        get = _cells_by_column(columns, cells)
        if get("deceased").lower() in _NOT_DECEASED:
            continue
        try:
            marked.setdefault(nhs_number.normalise(get("nhs_number")), line)
        except nhs_number.InvalidNhsNumber:
            continue  # that row is excluded for its number; no other row can be linked to it
    return marked


@dataclass
class _RowChecks:
    columns: list[str]
    marked_deceased: dict[str, int]
    international: bool
    first_row_of: dict[str, int] = field(default_factory=dict)

    def check(self, line: int, cells: list[str]) -> PatientRow | Exclusion:
        get = _cells_by_column(self.columns, cells)
        raw_nhs = get("nhs_number")
        try:
            _check_cell_count(self.columns, cells)
            number = _valid_nhs_number(raw_nhs)
            self._check_not_deceased(number, line)
            self._check_first_row(number, line)
            return _patient(line, get, number, self.international)
        except _RowProblem as problem:
            shown = re.sub(r"[\s-]", "", raw_nhs)
            return Exclusion(line, get("customer_ref"), shown, problem.reason, problem.detail)

    def _check_not_deceased(self, number: str, line: int) -> None:
        marked_in = self.marked_deceased.get(number)
        if marked_in == line:
            raise _RowProblem(Reason.DECEASED, "the list marks this patient as deceased")
        if marked_in is not None:
            raise _RowProblem(
                Reason.DECEASED, f"row {marked_in} of the list marks this patient (same NHS number) as deceased"
            )

    def _check_first_row(self, number: str, line: int) -> None:
        first = self.first_row_of.setdefault(number, line)
        if first != line:
            raise _RowProblem(
                Reason.DUPLICATE_NHS_NUMBER,
                f"same NHS number as row {first}: one patient gets one letter, from the first row with the "
                f"number; remove this row (if row {first} is also in this report, fix that row)",
            )


def _check_cell_count(columns: list[str], cells: list[str]) -> None:
    extra = [cell for cell in cells[len(columns) :] if cell.strip()]
    if extra:
        raise _RowProblem(
            Reason.MALFORMED_ROW,
            f"row has {len(columns) + len(extra)} cells but the header has {len(columns)} columns: "
            "a value probably holds an unquoted separator; quote it or remove the separator",
        )


def _valid_nhs_number(raw: str) -> str:
    try:
        return nhs_number.normalise(raw)
    except nhs_number.InvalidNhsNumber as exc:
        raise _RowProblem(Reason.INVALID_NHS_NUMBER, str(exc)) from exc


def _patient(line: int, get, number: str, international: bool) -> PatientRow:
    title, first_name, last_name = (_one_line(get(key)) for key in ("title", "first_name", "last_name"))
    if not first_name or not last_name:
        missing = "First name" if not first_name else "Last name"
        raise _RowProblem(Reason.MISSING_NAME, f"{missing} is empty; fill it in")
    _check_name_line(" ".join(part for part in (title, first_name, last_name) if part))
    try:
        address = normalise_address(
            [get(f"address{n}") for n in range(1, 6)], get("town"), get("county"), get("postcode"),
            get("country"), international=international,
        )
    except AddressRejected as exc:
        raise _RowProblem(exc.reason, exc.detail) from exc
    return PatientRow(
        input_row=line,
        customer_ref=get("customer_ref"),
        nhs_number=number,
        title=title,
        first_name=first_name,
        last_name=last_name,
        date_of_birth=_date_of_birth(get("date_of_birth")),
        address_lines=address.lines,
        postcode=address.postcode,
        postage=address.postage,
        postage_class=_postage_class(get("postage_class")),
    )


def _one_line(value: str) -> str:
    """A name cell with line breaks or runs of spaces, as one line."""
    return " ".join(value.split())


def _check_name_line(name_line: str) -> None:
    character = invalid_first_character(name_line)
    if character:
        raise _RowProblem(
            Reason.ADDRESS_INVALID_CHARACTER,
            f"the name line of the address starts with {character!r}; no line may start with any of "
            f"{INVALID_FIRST_CHARACTERS}: remove the character from the Title or First name",
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
    if _SPREADSHEET_DATE_SERIAL.match(raw):
        raise _RowProblem(
            Reason.INVALID_DATE_OF_BIRTH,
            f"date of birth {raw!r} is a spreadsheet's day number, not a date: the date column was saved "
            "as a number; format it as a date (DD/MM/YYYY) and save again",
        )
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    raise _RowProblem(
        Reason.INVALID_DATE_OF_BIRTH,
        f"date of birth {raw!r} is not a date in YYYY-MM-DD, DD/MM/YYYY or DD-MM-YYYY form",
    )
