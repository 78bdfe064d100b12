"""Intake: the customer's patient list (CSV) in, `PatientRow`s and `Exclusion`s out.

Headers are matched case-, space- and punctuation-insensitively against the
aliases PKB's "Add many patients" file and common exports use. The encoding
(UTF-8 with or without BOM, or Windows-1252) and the separator are detected;
a file that is neither encoding is refused. Every cell is text. Each non-blank
record becomes exactly one `PatientRow` or one `Exclusion`, and a patient
marked deceased in any row gets a `PatientRow` from none.

The file is read a block at a time, never held whole: once to find its encoding, once
to find which NHS numbers are marked deceased and which row has each number first (kept
in a temporary SQLite file, not in memory), and once more to check the rows in order.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from pkb_letters import variants
from pkb_letters.errors import InputFileError
from pkb_letters.intake import nhs_number
from pkb_letters.intake.address import (
    INVALID_FIRST_CHARACTERS,
    AddressRejected,
    has_letter_or_digit,
    invalid_first_character,
    normalise_address,
)
from pkb_letters.records import Exclusion, PatientRow, Reason

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
    "format": ("format", "letterformat", "communicationformat", "accessibleformat"),
    "language": ("language", "letterlanguage", "languagepreference"),
}
_POSTAGE_CLASSES = {
    "first": "first",
    "1st": "first",
    "1": "first",
    "second": "second",
    "2nd": "second",
    "2": "second",
    "economy": "economy",
    "3": "economy",
    "": "",
}
MANDATORY = {"first_name": "First name", "last_name": "Last name", "nhs_number": "NHS number"}
_NOT_DECEASED = {"", "n", "no", "false", "0"}
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y")
_SPREADSHEET_DATE_SERIAL = re.compile(r"^\d{5}(?:\.0+)?$")  # days since 1900: a date cell saved as a number
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_ZIP_MAGIC = b"PK\x03\x04"  # .xlsx and .ods workbooks are zip files
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # never in a text CSV; tab, CR, LF are fine
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")  # the five bytes Windows-1252 leaves undefined
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
    with open_patient_list(path, international=international) as patient_list:
        result = IntakeResult(encoding=patient_list.encoding, delimiter=patient_list.delimiter)
        for outcome in patient_list.rows():
            if isinstance(outcome, PatientRow):
                result.patients.append(outcome)
            else:
                result.exclusions.append(outcome)
    return result


def open_patient_list(path: Path, *, international: bool = False) -> PatientList:
    """The list with every file-level check made (encoding, header, CSV syntax), so that a file
    that cannot be used is refused now; its rows are checked as `PatientList.rows` gives them."""
    read_as = _detect_encoding(path)
    with _open_text(path, read_as) as handle:
        delimiter = _delimiter(_first_line(handle))
    with _open_text(path, read_as) as handle:
        records = _records(handle, path, delimiter)
        _, header = next(records, (0, []))
        columns = _map_columns(header, path)
        numbers = _NumberIndex()
        try:
            numbers.add(_number_facts(columns, records))
        except BaseException:
            numbers.close()
            raise
    return PatientList(path, delimiter, columns, international, numbers, read_as)


class PatientList:
    """A patient list whose file is known to be usable; `rows` checks it a row at a time, in order.
    Close it (or use it as a context manager) to delete its index of NHS numbers."""

    def __init__(
        self,
        path: Path,
        delimiter: str,
        columns: list[str],
        international: bool,
        numbers: _NumberIndex,
        read_as: _ReadAs,
    ) -> None:
        self.path = path
        self.encoding = read_as.encoding  # as detected: utf-8, utf-8-sig (with BOM) or cp1252
        self.delimiter = delimiter
        self._columns = columns
        self._international = international
        self._numbers = numbers
        self._read_as = read_as

    def rows(self) -> Iterator[PatientRow | Exclusion]:
        """One `PatientRow` or `Exclusion` for each non-blank record, in input order."""
        checks = _RowChecks(self._columns, self._numbers, self._international)
        with _open_text(self.path, self._read_as) as handle:
            records = _records(handle, self.path, self.delimiter)
            next(records, None)  # the header
            for line, cells in records:
                yield checks.check(line, cells)
            _check_unchanged(handle, self.path, self._read_as.stat)

    def close(self) -> None:
        self._numbers.close()

    def __enter__(self) -> PatientList:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -- the file's encoding, found a block at a time -----------------------------------------------------

_BLOCK = 1 << 16


@dataclass(frozen=True)
class _ReadAs:
    encoding: str  # also the codec that reads it: "utf-8-sig" drops the byte order mark
    stat: tuple[int, int]  # size and modification time when the encoding was found


def _detect_encoding(path: Path) -> _ReadAs:
    try:
        with path.open("rb") as handle:
            return _ReadAs(_EncodingCheck(path).run(handle), _stat_of(handle))
    except OSError as exc:
        raise InputFileError(f"cannot read patient list {path}: {exc.strerror}") from exc


class _EncodingCheck:
    """Which encoding a file is in, read a block at a time; the same answers, and the same byte offsets
    in its refusals, as decoding the whole file at once would give."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0  # of the block being read
        self.bom = False
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.first_bad: tuple[int, int] | None = None  # (offset, byte) where UTF-8 first fails
        self.utf8_text: int | None = None  # offset of the first UTF-8 sequence of two or more bytes
        self.cp1252_bad: tuple[int, int] | None = None  # the first byte undefined in Windows-1252
        self.tail = b""  # the last three bytes read: a UTF-8 sequence may straddle blocks

    def run(self, handle: BinaryIO) -> str:
        start = handle.read(len(_ZIP_MAGIC))
        _refuse_binary_start(start, self.path)
        self.bom = start.startswith(_UTF8_BOM)
        handle.seek(0)
        while block := handle.read(_BLOCK):
            self._read(block)
            self.offset += len(block)
        return self._verdict()

    def _read(self, block: bytes) -> None:
        control = _CONTROL_BYTES.search(block)
        if control:
            raise _not_text(self.path, control.group()[0], self.offset + control.start())
        if self.first_bad is None:
            skip = max(0, len(_UTF8_BOM) - self.offset) if self.bom else 0  # a tiny block may hold part of it
            self._decode_utf8(block[skip:], self.offset + skip)
        if self.utf8_text is None:
            self.utf8_text = self._first_utf8_text(block)
            self.tail = (self.tail + block[-3:])[-3:]
        if self.cp1252_bad is None:
            undefined = _CP1252_UNDEFINED.search(block)
            if undefined:
                self.cp1252_bad = (self.offset + undefined.start(), block[undefined.start()])

    def _first_utf8_text(self, block: bytes) -> int | None:
        straddling = _UTF8_MULTIBYTE.search(self.tail + block[:3])
        if straddling and straddling.start() < len(self.tail):
            return self.offset - len(self.tail) + straddling.start()
        found = _UTF8_MULTIBYTE.search(block)
        return self.offset + found.start() if found else None

    def _decode_utf8(self, data: bytes, offset: int, final: bool = False) -> None:
        held = self.utf8.getstate()[0]  # the start of a sequence the last block cut short
        try:
            self.utf8.decode(data, final)
        except UnicodeDecodeError as exc:
            self.first_bad = (offset - len(held) + exc.start, exc.object[exc.start])

    def _verdict(self) -> str:
        if self.first_bad is None:
            self._decode_utf8(b"", self.offset, final=True)
        if self.bom:
            if self.first_bad is None:
                return "utf-8-sig"
            problem = f"starts with a UTF-8 byte order mark, but {_byte(*self.first_bad)} is not UTF-8"
            raise _unreadable(self.path, problem)
        if self.first_bad is None:
            return "utf-8"
        if self.utf8_text is not None:  # part UTF-8, part something else: reading it either way would garble names
            problem = f"mixes encodings: it has UTF-8 text at offset {self.utf8_text}, but {_byte(*self.first_bad)}"
            raise _unreadable(self.path, problem + " is not UTF-8")
        if self.cp1252_bad is None:
            return "cp1252"
        first_bad, byte = self.first_bad
        also = "" if self.cp1252_bad[0] == first_bad else f"; {_byte(*self.cp1252_bad)} is undefined in Windows-1252"
        raise _unreadable(
            self.path,
            f"is neither UTF-8 nor Windows-1252 text: first bad byte at offset {first_bad} (0x{byte:02X}){also}",
        )


def _byte(offset: int, byte: int) -> str:
    return f"the byte 0x{byte:02X} at offset {offset}"


def _open_text(path: Path, read_as: _ReadAs) -> TextIO:
    try:
        handle = path.open(encoding=read_as.encoding, newline="")
    except OSError as exc:
        raise InputFileError(f"cannot read patient list {path}: {exc.strerror}") from exc
    _check_unchanged(handle, path, read_as.stat)
    return handle


def _stat_of(handle) -> tuple[int, int]:
    stat = os.fstat(handle.fileno())
    return stat.st_size, stat.st_mtime_ns


def _check_unchanged(handle, path: Path, stat: tuple[int, int]) -> None:
    """The list is read more than once: a file saved again in between could differ between readings."""
    if _stat_of(handle) != stat:
        handle.close()
        raise InputFileError(f"{path} changed while it was being read; run again once it is saved")


def _unreadable(path: Path, problem: str) -> InputFileError:
    return InputFileError(f"{path} {problem}; save the list from the spreadsheet as 'CSV UTF-8'")


def _refuse_binary_start(data: bytes, path: Path) -> None:
    if data.startswith(_UTF16_BOMS):
        raise InputFileError(f"{path} is UTF-16 text (Excel's 'Unicode Text'); save it as 'CSV UTF-8' instead")
    if data.startswith(_ZIP_MAGIC):
        raise InputFileError(f"{path} is a spreadsheet workbook (a zip file), not CSV; save it as 'CSV UTF-8'")


def _not_text(path: Path, byte: int, offset: int) -> InputFileError:
    return InputFileError(
        f"{path} is not a text file: byte 0x{byte:02X} at offset {offset} is a control "
        "character; save the list from the spreadsheet as 'CSV UTF-8'"
    )


def _delimiter(first_line: str) -> str:
    """The separator the header line uses most: comma, semicolon (Excel in many locales) or tab."""
    return max(",;\t", key=first_line.count)


def _first_line(handle: TextIO) -> str:
    """The text up to the first line feed (a lone CR does not end it)."""
    parts = []
    while chunk := handle.read(_BLOCK):
        head, newline, _ = chunk.partition("\n")
        parts.append(head)
        if newline:
            break
    return "".join(parts)


def _records(handle: TextIO, path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number where the record starts, cells) for each non-blank record."""
    reader = csv.reader(handle, delimiter=delimiter)
    next_line = 1
    try:
        for cells in reader:
            start, next_line = next_line, reader.line_num + 1
            if any(cell.strip() for cell in cells):
                yield start, cells
    except csv.Error as exc:
        raise InputFileError(f"{path}, line {reader.line_num}: malformed CSV ({exc})") from exc
    except UnicodeDecodeError as exc:  # it decoded cleanly when its encoding was found
        raise InputFileError(f"{path} changed while it was being read; run again once it is saved") from exc


def _normalise_header(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _map_columns(header: list[str], path: Path) -> list[str]:
    lookup = {alias: key for key, aliases in _ALIASES.items() for alias in aliases}
    columns = [lookup.get(_normalise_header(name), f"unused:{name}") for name in header]
    missing = [label for key, label in MANDATORY.items() if key not in columns]
    if missing:
        found = ", ".join(repr(h) for h in header) or "(none)"
        raise InputFileError(f"{path}: missing mandatory column {' and '.join(missing)}; headers found: {found}")
    return columns


def _cells_by_column(columns: list[str], cells: list[str]):
    values = dict(zip(columns, cells, strict=False))  # short rows: the missing trailing cells are empty
    return lambda key: values.get(key, "").strip()


def _number_facts(columns: list[str], records) -> Iterator[tuple[str, int | None, int | None]]:
    """For each row with a valid NHS number: (number, the row if it marks the patient deceased, the row
    if it has no cells beyond the header's columns). Any row counts for deceased, even a malformed
    one: a wrong "deceased" costs a letter, a missed one sends a letter to the dead."""
    for line, cells in records:
        get = _cells_by_column(columns, cells)
        try:
            number = nhs_number.normalise(get("nhs_number"))
        except nhs_number.InvalidNhsNumber:
            continue  # that row is excluded for its number; no other row can be linked to it
        marks_deceased = get("deceased").lower() not in _NOT_DECEASED
        well_formed = not _extra_cells(columns, cells)
        yield number, line if marks_deceased else None, line if well_formed else None


class _NumberIndex:
    """NHS number → the first row marking that patient deceased, and the first well-formed row with the
    number (the row that gets the letter, if any does), in a temporary SQLite file: a list's numbers
    would otherwise be held in memory for the whole of intake."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("")  # a temporary file, deleted on closing
        self._db.execute(
            "CREATE TABLE numbers (nhs_number TEXT PRIMARY KEY, deceased_row INTEGER, first_row INTEGER) WITHOUT ROWID"
        )

    def add(self, facts: Iterator[tuple[str, int | None, int | None]]) -> None:
        """Facts in row order: the first row given for each fact is the one kept."""
        with self._db:
            self._db.executemany(
                "INSERT INTO numbers VALUES (?, ?, ?) ON CONFLICT (nhs_number) DO UPDATE SET"
                " deceased_row = coalesce(deceased_row, excluded.deceased_row),"
                " first_row = coalesce(first_row, excluded.first_row)",
                facts,
            )

    def rows_of(self, number: str) -> tuple[int | None, int | None]:
        """(the first row marking the patient deceased, the first well-formed row with the number)."""
        found = self._db.execute(
            "SELECT deceased_row, first_row FROM numbers WHERE nhs_number = ?", (number,)
        ).fetchone()
        return found or (None, None)

    def close(self) -> None:
        self._db.close()


@dataclass
class _RowChecks:
    columns: list[str]
    numbers: _NumberIndex
    international: bool

    def check(self, line: int, cells: list[str]) -> PatientRow | Exclusion:
        get = _cells_by_column(self.columns, cells)
        raw_nhs = get("nhs_number")
        try:
            _check_cell_count(self.columns, cells)
            number = _valid_nhs_number(raw_nhs)
            marked_in, first = self.numbers.rows_of(number)
            _check_not_deceased(marked_in, line)
            _check_first_row(first, line)
            return _patient(line, get, number, self.international)
        except _RowProblem as problem:
            shown = re.sub(r"[\s-]", "", raw_nhs)
            return Exclusion(line, get("customer_ref"), shown, problem.reason, problem.detail)


def _check_not_deceased(marked_in: int | None, line: int) -> None:
    if marked_in == line:
        raise _RowProblem(Reason.DECEASED, "the list marks this patient as deceased")
    if marked_in is not None:
        raise _RowProblem(
            Reason.DECEASED, f"row {marked_in} of the list marks this patient (same NHS number) as deceased"
        )


def _check_first_row(first: int | None, line: int) -> None:
    if first != line:
        raise _RowProblem(
            Reason.DUPLICATE_NHS_NUMBER,
            f"same NHS number as row {first}: one patient gets one letter, from the first row with the "
            f"number; remove this row (if row {first} is also in this report, fix that row)",
        )


def _extra_cells(columns: list[str], cells: list[str]) -> list[str]:
    return [cell for cell in cells[len(columns) :] if cell.strip()]


def _check_cell_count(columns: list[str], cells: list[str]) -> None:
    extra = _extra_cells(columns, cells)
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
            [get(f"address{n}") for n in range(1, 6)],
            get("town"),
            get("county"),
            get("postcode"),
            get("country"),
            international=international,
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
        format=_variant_cell(variants.parse_format, get("format"), Reason.INVALID_FORMAT),
        language=_variant_cell(variants.parse_language, get("language"), Reason.INVALID_LANGUAGE),
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
    if not has_letter_or_digit(name_line):
        raise _RowProblem(
            Reason.ADDRESS_INVALID_CHARACTER,
            "the name line of the address has no letter or digit: correct the Title, First name and Last name",
        )


def _postage_class(raw: str) -> str:
    try:
        return _POSTAGE_CLASSES[raw.lower()]
    except KeyError:
        raise _RowProblem(
            Reason.INVALID_POSTAGE_CLASS, f"postage class {raw!r} is not first, second or economy (or empty)"
        ) from None


def _variant_cell(parse, raw: str, reason: Reason) -> str:
    try:
        return parse(raw)
    except variants.UnknownValue as exc:
        raise _RowProblem(reason, str(exc)) from None


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
