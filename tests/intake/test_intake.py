"""Intake of the customer's patient list: headers, encodings, CSV dialects, line numbers, row checks.

Every test reads a small CSV written inline and checks the intake invariant: each non-blank data
row becomes exactly one patient or one exclusion.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pkb_letters.errors import InputFileError
from pkb_letters.intake.patient_list import IntakeResult, read_patient_list
from pkb_letters.records import Reason

HEADER = ["First name", "Last name", "NHS number", "DoB", "Address1", "City", "Post code"]
READ = ["Read", "Richards", "5760678914", "2000-09-15", "12 Grey Street", "Newcastle", "NE1 7RU"]
ZOE = ["Zoë", "O'Brien-Ng", "7569602005", "1987-03-22", "27 Headingley Lane", "Leeds", "LS6 1BN"]
SEUN = ["Oluwaseun", "Adeyemi", "9434765919", "1993-12-08", "88 Gloucester Road", "Bristol", "BS7 8BN"]


def table(*rows: list[str], sep: str = ",", newline: str = "\n") -> str:
    """CSV text of plain cells (no quoting needed), header first."""
    return "".join(sep.join(cells) + newline for cells in rows)


def write(tmp_path: Path, content: str | bytes, encoding: str = "utf-8") -> Path:
    path = tmp_path / "patients.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def intake(path: Path, data_rows: int) -> IntakeResult:
    """Read the list and check that every one of `data_rows` non-blank rows is accounted for."""
    result = read_patient_list(path)
    assert len(result.patients) + len(result.exclusions) == data_rows == result.input_rows
    return result


def only_patient(result: IntakeResult):
    assert not result.exclusions, result.exclusions
    (patient,) = result.patients
    return patient


def only_exclusion(result: IntakeResult):
    assert not result.patients, result.patients
    (exclusion,) = result.exclusions
    return exclusion


# --- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        ["Forename", "Surname", "NHS No.", "Date of Birth", "Address 1", "Town", "Postcode"],
        ["FIRST NAME", "last_name", "nhs-number", "D.O.B.", "Address Line 1", "CITY", "Post Code"],
        [" first name ", "Last  Name", "National Identifier", "dob", "address1", "Post town", "Postal code"],
        ["Given name", "Family name", "NHS Number", "Birth date", "ADDRESS LINE 1", "City", "Zip code"],
    ],
)
def test_header_aliases_are_matched_ignoring_case_spaces_and_punctuation(tmp_path, header):
    patient = only_patient(intake(write(tmp_path, table(header, READ)), data_rows=1))
    assert (patient.first_name, patient.last_name, patient.nhs_number) == ("Read", "Richards", "5760678914")
    assert patient.date_of_birth == dt.date(2000, 9, 15)
    assert patient.address_lines == ("12 Grey Street", "NEWCASTLE", "NE1 7RU")
    assert patient.postcode == "NE1 7RU"
    assert patient.input_row == 2


def test_optional_columns_and_unknown_columns(tmp_path):
    header = ["Title", *HEADER, "Customer ref", "Favourite colour"]
    path = write(tmp_path, table(header, ["Mr", *READ, "DEMO-0001", "blue"]))
    patient = only_patient(intake(path, data_rows=1))
    assert patient.display_name == "Mr Read Richards"
    assert patient.customer_ref == "DEMO-0001"
    assert "blue" not in patient.address_lines


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        (["First name", "Last name", "DoB", "Post code"], ["NHS number"]),
        (["Forename", "NHS No.", "Postcode"], ["Last name"]),
        (["Name", "NHS number"], ["First name", "Last name"]),
        (["Patient name", "Identifier"], ["First name", "Last name", "NHS number"]),
    ],
)
def test_missing_mandatory_column_names_it_and_the_headers_found(tmp_path, header, missing):
    path = write(tmp_path, table(header, ["x"] * len(header)))
    with pytest.raises(InputFileError) as caught:
        read_patient_list(path)
    message = str(caught.value)
    assert "missing mandatory column" in message
    for label in missing:
        assert label in message
    for name in header:
        assert repr(name) in message  # what the person's file actually has
    assert str(path) in message


def test_empty_file_is_refused(tmp_path):
    with pytest.raises(InputFileError, match=r"headers found: \(none\)"):
        read_patient_list(write(tmp_path, ""))


def test_header_only_file_has_no_rows(tmp_path):
    result = intake(write(tmp_path, table(HEADER)), data_rows=0)
    assert result.patients == [] and result.exclusions == []


# --- encodings -------------------------------------------------------------------------------


def test_utf8_with_byte_order_mark(tmp_path):
    path = write(tmp_path, "\ufeff" + table(HEADER, ZOE))
    assert path.read_bytes().startswith(b"\xef\xbb\xbfFirst name")
    patient = only_patient(intake(path, data_rows=1))
    assert patient.first_name == "Zoë"


def test_windows_1252(tmp_path):
    path = write(tmp_path, table(HEADER, ZOE), encoding="cp1252")
    assert b"Zo\xeb," in path.read_bytes()  # really not UTF-8
    patient = only_patient(intake(path, data_rows=1))
    assert patient.first_name == "Zoë"


@pytest.mark.parametrize("bad_byte", [0x81, 0x8D, 0x8F, 0x90, 0x9D])  # undefined in Windows-1252
def test_neither_utf8_nor_windows_1252_is_refused_with_the_byte_offset(tmp_path, bad_byte):
    head = table(HEADER, READ).encode("ascii") + b"Anna,Sm"
    path = write(tmp_path, head + bytes([bad_byte]) + b"ith,9434765919,,,,\n")
    with pytest.raises(InputFileError) as caught:
        read_patient_list(path)
    message = str(caught.value)
    assert f"offset {len(head)}" in message
    assert "UTF-8" in message and "Windows-1252" in message


def test_mostly_utf8_file_with_one_stray_byte_points_at_the_stray_byte(tmp_path):
    # "ō" is C5 8D in UTF-8, and 8D is undefined in Windows-1252: the file is neither
    head = table(HEADER, ["Tōmas", *READ[1:]]).encode("utf-8") + b"Ren"
    path = write(tmp_path, head + b"\xe9e,Durand,9434765919,,,,\n")
    with pytest.raises(InputFileError, match=rf"offset {len(head)}\b"):
        read_patient_list(path)


# --- CSV dialects and line numbers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("sep", "newline"),
    [(",", "\n"), (";", "\n"), ("\t", "\n"), (",", "\r\n"), (";", "\r\n"), ("\t", "\r\n")],
)
def test_separators_and_line_endings(tmp_path, sep, newline):
    path = write(tmp_path, table(HEADER, READ, ZOE, sep=sep, newline=newline))
    result = intake(path, data_rows=2)
    assert [p.first_name for p in result.patients] == ["Read", "Zoë"]
    assert [p.input_row for p in result.patients] == [2, 3]
    assert result.patients[1].address_lines == ("27 Headingley Lane", "LEEDS", "LS6 1BN")


def test_semicolon_file_keeps_commas_inside_cells(tmp_path):
    row = [*READ[:4], "Flat 4, 12 Grey Street", *READ[5:]]
    patient = only_patient(intake(write(tmp_path, table(HEADER, row, sep=";")), data_rows=1))
    assert patient.address_lines[0] == "Flat 4, 12 Grey Street"


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_row_number_is_the_line_where_a_multiline_record_starts(tmp_path, newline):
    header = table(HEADER, newline=newline)
    multiline = f'Read,Richards,5760678914,2000-09-15,"Flat 4{newline}12 Grey Street",Newcastle,NE1 7RU{newline}'
    text = header + multiline + table(ZOE, newline=newline) + table(SEUN, newline=newline)
    result = intake(write(tmp_path, text), data_rows=3)
    assert [(p.first_name, p.input_row) for p in result.patients] == [("Read", 2), ("Zoë", 4), ("Oluwaseun", 5)]
    # each line of a multi-line cell is its own address line, as the customer typed it
    assert result.patients[0].address_lines == ("Flat 4", "12 Grey Street", "NEWCASTLE", "NE1 7RU")


def test_blank_rows_are_ignored_and_counted_as_lines(tmp_path):
    blank_cells = [""] * len(HEADER)
    text = table(HEADER, READ) + "\n" + table(blank_cells, ZOE) + "\n\n" + table(blank_cells) + " \n"
    result = intake(write(tmp_path, text), data_rows=2)
    assert [(p.first_name, p.input_row) for p in result.patients] == [("Read", 2), ("Zoë", 5)]


# --- row checks ------------------------------------------------------------------------------


def test_duplicate_nhs_number_excludes_later_rows_naming_the_first(tmp_path):
    again = [*SEUN[:2], "576 067 8914", *SEUN[3:]]  # same number, written differently
    path = write(tmp_path, table(HEADER, READ, ZOE, again, READ))
    result = intake(path, data_rows=4)
    assert [p.input_row for p in result.patients] == [2, 3]
    assert [(x.input_row, x.reason, x.nhs_number) for x in result.exclusions] == [
        (4, Reason.DUPLICATE_NHS_NUMBER, "5760678914"),
        (5, Reason.DUPLICATE_NHS_NUMBER, "5760678914"),
    ]
    for exclusion in result.exclusions:
        assert "row 2" in exclusion.detail


def test_duplicate_of_an_excluded_row_does_not_claim_the_first_row_gets_the_letter(tmp_path):
    bad_postcode = [*READ[:6], "XX1 1AA"]
    result = intake(write(tmp_path, table(HEADER, bad_postcode, READ)), data_rows=2)
    first, second = result.exclusions
    assert first.reason is Reason.ADDRESS_BAD_POSTCODE
    assert "gets the letter" not in second.detail


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2000-09-15", dt.date(2000, 9, 15)),
        ("15/09/2000", dt.date(2000, 9, 15)),
        ("15-09-2000", dt.date(2000, 9, 15)),
        ("01/02/2000", dt.date(2000, 2, 1)),  # UK day-first, never US month-first
        ("2004-02-29", dt.date(2004, 2, 29)),
        ("", None),
    ],
)
def test_date_of_birth_forms(tmp_path, raw, expected):
    row = [*READ[:3], raw, *READ[4:]]
    patient = only_patient(intake(write(tmp_path, table(HEADER, row)), data_rows=1))
    assert patient.date_of_birth == expected


@pytest.mark.parametrize("raw", ["2001-02-29", "31/31/2000", "09/15/2000", "15.09.2000", "15/09/00", "Sept 15 2000"])
def test_invalid_date_of_birth_is_excluded(tmp_path, raw):
    row = [*READ[:3], raw, *READ[4:]]
    exclusion = only_exclusion(intake(write(tmp_path, table(HEADER, row)), data_rows=1))
    expected = (2, Reason.INVALID_DATE_OF_BIRTH, "5760678914")
    assert (exclusion.input_row, exclusion.reason, exclusion.nhs_number) == expected
    assert repr(raw) in exclusion.detail and "YYYY-MM-DD" in exclusion.detail and "DD/MM/YYYY" in exclusion.detail


@pytest.mark.parametrize(
    ("column", "value", "deceased"),
    [
        ("Deceased", "Y", True),
        ("Deceased", "Yes", True),
        ("Deceased", "TRUE", True),
        ("Date deceased", "2024-11-03", True),
        ("Deceased", "N", False),
        ("Deceased", "no", False),
        ("Deceased", "0", False),
        ("Deceased", "", False),
    ],
)
def test_deceased_column(tmp_path, column, value, deceased):
    path = write(tmp_path, table([*HEADER, column], [*READ, value]))
    result = intake(path, data_rows=1)
    if deceased:
        exclusion = only_exclusion(result)
        assert (exclusion.input_row, exclusion.reason) == (2, Reason.DECEASED)
        assert "deceased" in exclusion.detail
    else:
        assert only_patient(result).nhs_number == "5760678914"


@pytest.mark.parametrize(
    ("change", "reason", "shown_nhs"),
    [
        ({2: "5760678915"}, Reason.INVALID_NHS_NUMBER, "5760678915"),
        ({2: "576 067 891"}, Reason.INVALID_NHS_NUMBER, "576067891"),
        ({0: "  "}, Reason.MISSING_NAME, "5760678914"),
        ({1: ""}, Reason.MISSING_NAME, "5760678914"),
        ({6: "NE1 1XC"}, Reason.ADDRESS_BAD_POSTCODE, "5760678914"),
        ({4: "", 5: ""}, Reason.ADDRESS_TOO_FEW_LINES, "5760678914"),
    ],
)
def test_each_bad_row_is_one_exclusion_and_the_good_rows_still_pass(tmp_path, change, reason, shown_nhs):
    bad = [change.get(i, cell) for i, cell in enumerate(READ)]
    result = intake(write(tmp_path, table(HEADER, ZOE, bad, SEUN)), data_rows=3)
    assert [p.input_row for p in result.patients] == [2, 4]
    (exclusion,) = result.exclusions
    assert (exclusion.input_row, exclusion.reason, exclusion.nhs_number) == (3, reason, shown_nhs)
    assert exclusion.detail


def test_a_row_with_more_cells_than_the_header_is_malformed_not_shifted(tmp_path):
    shifted = [*ZOE[:4], "Flat 2", "27 Headingley Lane", *ZOE[5:]]  # an unquoted comma split Address1
    result = intake(write(tmp_path, table(HEADER, READ, shifted)), data_rows=2)
    (exclusion,) = result.exclusions
    assert exclusion.reason is Reason.MALFORMED_ROW and exclusion.input_row == 3
    assert "quote" in exclusion.detail


# --- encodings: detected, never guessed -------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (table(HEADER, ZOE).encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + table(HEADER, ZOE).encode("utf-8"), "utf-8-sig"),
        (table(HEADER, ZOE).encode("cp1252"), "cp1252"),
        (table(HEADER, READ).encode("ascii"), "utf-8"),
    ],
)
def test_the_encoding_found_is_reported(tmp_path, data, encoding):
    result = intake(write(tmp_path, data), data_rows=1)
    assert result.encoding == encoding
    assert result.patients[0].first_name in ("Zoë", "Read")


def test_utf8_with_bom_and_a_bad_byte_is_refused_at_the_byte_offset_counting_the_bom(tmp_path):
    head = b"\xef\xbb\xbf" + table(HEADER, ZOE).encode("utf-8") + b"Ren"
    path = write(tmp_path, head + b"\xe9e,Durand,9434765919,,,,\n")  # é in Windows-1252
    with pytest.raises(InputFileError) as caught:
        read_patient_list(path)
    assert f"offset {len(head)}" in str(caught.value) and "byte order mark" in str(caught.value)


def test_utf8_and_windows_1252_mixed_in_one_file_is_refused_not_garbled(tmp_path):
    # every byte is defined in Windows-1252, so decoding it that way "works" and prints "ZoÃ«"
    head = table(HEADER, ZOE).encode("utf-8") + b"Ren"
    path = write(tmp_path, head + b"\xe9e,Durand,9434765919,,,,\n")
    with pytest.raises(InputFileError) as caught:
        read_patient_list(path)
    message = str(caught.value)
    assert "mixes encodings" in message and f"offset {len(head)}" in message and "0xE9" in message


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (table(HEADER, READ).encode("utf-16"), "UTF-16"),
        (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 20, "workbook"),
        (table(HEADER).encode() + b"Read,Rich\x00ards,5760678914,,,,\n", "offset"),
    ],
)
def test_files_that_are_not_csv_text_are_refused_saying_what_they_are(tmp_path, data, says):
    with pytest.raises(InputFileError, match=says):
        read_patient_list(write(tmp_path, data))


def test_control_character_is_refused_at_its_offset(tmp_path):
    head = table(HEADER).encode() + b"Read,Rich"
    with pytest.raises(InputFileError, match=rf"0x00 at offset {len(head)}\b"):
        read_patient_list(write(tmp_path, head + b"\x00ards,5760678914,,,,\n"))


@pytest.mark.parametrize(("sep", "name"), [(",", ","), (";", ";"), ("\t", "\t")])
def test_the_separator_found_is_reported(tmp_path, sep, name):
    assert intake(write(tmp_path, table(HEADER, READ, sep=sep)), data_rows=1).delimiter == name


# --- values --------------------------------------------------------------------------------------


@pytest.mark.parametrize("serial", ["36784", "36784.0"])
def test_date_of_birth_saved_as_a_spreadsheet_day_number_says_so(tmp_path, serial):
    row = [*READ[:3], serial, *READ[4:]]
    exclusion = only_exclusion(intake(write(tmp_path, table(HEADER, row)), data_rows=1))
    assert exclusion.reason is Reason.INVALID_DATE_OF_BIRTH
    assert "spreadsheet" in exclusion.detail and "DD/MM/YYYY" in exclusion.detail


@pytest.mark.parametrize(
    ("raw", "says"),
    [("5.76068E+09", "scientific notation"), ("5760678914.0", "decimal"), ('"5,760,678,914"', "thousands")],
)
def test_nhs_number_mangled_by_a_spreadsheet_is_refused_saying_what_happened(tmp_path, raw, says):
    row = [*READ[:2], raw, *READ[3:]]
    exclusion = only_exclusion(intake(write(tmp_path, table(HEADER, row)), data_rows=1))
    assert exclusion.reason is Reason.INVALID_NHS_NUMBER
    assert says in exclusion.detail and "spreadsheet" in exclusion.detail and "text" in exclusion.detail


def test_name_cells_with_line_breaks_print_on_one_line(tmp_path):
    text = table(HEADER) + '"Read\nAlan","Richards ",5760678914,2000-09-15,12 Grey Street,Newcastle,NE1 7RU\n'
    patient = only_patient(intake(write(tmp_path, text), data_rows=1))
    assert patient.display_name == "Read Alan Richards"


@pytest.mark.parametrize(("title", "first"), [("=cmd", "Read"), ("", "@Read"), ("(Mr)", "Read")])
def test_a_name_line_starting_with_a_forbidden_character_is_refused(tmp_path, title, first):
    path = write(tmp_path, table(["Title", *HEADER], [title, first, *READ[1:]]))
    exclusion = only_exclusion(intake(path, data_rows=1))
    assert exclusion.reason is Reason.ADDRESS_INVALID_CHARACTER and "name line" in exclusion.detail


def test_a_name_line_with_no_letter_or_digit_is_refused(tmp_path):
    path = write(tmp_path, table(HEADER, ["!!!", "???", *READ[2:]]))
    exclusion = only_exclusion(intake(path, data_rows=1))
    assert exclusion.reason is Reason.ADDRESS_INVALID_CHARACTER
    assert "name line" in exclusion.detail and "no letter or digit" in exclusion.detail


# --- deceased in any row ---------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["marked row first", "marked row later"])
def test_a_patient_marked_deceased_in_any_row_gets_no_letter_from_any_row(tmp_path, order):
    alive, dead = [*READ, "N"], [*READ[:2], "576 067 8914", *READ[3:], "Y"]
    rows = [dead, alive] if order == "marked row first" else [alive, dead]
    result = intake(write(tmp_path, table([*HEADER, "Deceased"], [*ZOE, ""], *rows)), data_rows=3)
    assert [p.first_name for p in result.patients] == ["Zoë"]
    assert [(x.input_row, x.reason) for x in result.exclusions] == [(3, Reason.DECEASED), (4, Reason.DECEASED)]
    marked_row = 3 if order == "marked row first" else 4
    unmarked = next(x for x in result.exclusions if x.input_row != marked_row)
    assert f"row {marked_row} of the list marks this patient" in unmarked.detail


# --- addresses abroad and postage --------------------------------------------------------------------


def test_country_column_and_international_post(tmp_path):
    paris = ["Camille", "Dubois", "9434765919", "1984-02-17", "12 Rue de Rivoli", "Paris", "75001", "France"]
    path = write(tmp_path, table([*HEADER, "Country"], [*READ, "United Kingdom"], paris))
    uk_only = intake(path, data_rows=2)
    assert [x.reason for x in uk_only.exclusions] == [Reason.ADDRESS_INTERNATIONAL]
    assert uk_only.patients[0].postage == "uk" and uk_only.patients[0].address_lines[-1] == "NE1 7RU"
    both = read_patient_list(path, international=True)
    assert not both.exclusions
    abroad = both.patients[1]
    assert (abroad.address_lines, abroad.postcode, abroad.postage) == (
        ("12 Rue de Rivoli", "PARIS", "75001", "FRANCE"), "", "europe"
    )


def test_postage_class_column_is_read_and_a_bad_class_is_a_row_exception(tmp_path):
    header = ["First name", "Last name", "NHS number", "Address1", "City", "Post code", "Postage class"]
    rows = [
        ["Read", "Richards", "5760678914", "12 Grey Street", "NEWCASTLE UPON TYNE", "NE1 7RU", "1st"],
        ["Zoë", "O'Brien-Ng", "7569602005", "27 Headingley Lane", "LEEDS", "LS6 1BN", "Special Delivery"],
    ]
    result = intake(write(tmp_path, table(header, *rows)), 2)
    (patient,) = result.patients
    assert patient.postage_class == "first"
    (problem,) = result.exclusions
    assert problem.reason == Reason.INVALID_POSTAGE_CLASS and problem.input_row == 3
    assert "'Special Delivery'" in problem.detail and "first, second or economy" in problem.detail


def test_format_and_language_columns_are_read_and_bad_values_are_row_exceptions(tmp_path):
    header = ["First name", "Last name", "NHS number", "Address1", "City", "Post code", "Letter format", "Language"]
    rows = [
        ["Read", "Richards", "5760678914", "12 Grey Street", "NEWCASTLE", "NE1 7RU", "Large Print", "Cymraeg"],
        ["Zoë", "O'Brien-Ng", "7569602005", "27 Headingley Lane", "LEEDS", "LS6 1BN", "", "welsh_then_english"],
        ["Al", "Oakes", "9434765919", "1 High Street", "LEEDS", "LS1 1AA", "", ""],
        ["Bo", "Ng", "9434765870", "2 High Street", "LEEDS", "LS1 1AA", "carrier pigeon", ""],
        ["Cy", "Ap", "4010232137", "3 High Street", "LEEDS", "LS1 1AA", "braille", "Klingon"],
    ]
    result = intake(write(tmp_path, table(header, *rows)), 5)
    assert [(p.format, p.language) for p in result.patients] == [
        ("large-print", "welsh"),
        ("", "welsh_then_english"),
        ("", ""),  # empty cells: the job's defaults
    ]
    assert [(e.input_row, e.reason) for e in result.exclusions] == [
        (5, Reason.INVALID_FORMAT),
        (6, Reason.INVALID_LANGUAGE),
    ]
    assert "'carrier pigeon'" in result.exclusions[0].detail and "large-print" in result.exclusions[0].detail


# --- real-world addresses (issue 19): each row one letter or one reasoned exclusion ------------------

ADDRESS_HEADER = ["First name", "Last name", "NHS number", "Address1", "Address2", "Address3", "Address4", "Country"]


@pytest.mark.parametrize(
    ("address", "lines", "postage"),
    [
        (["Les Vardes", "St Peter Port", "GY1 1AA", "Guernsey", ""],
         ("Les Vardes", "St Peter Port", "GUERNSEY", "GY1 1AA"), "uk"),
        (["12 La Rue", "St Helier", "JE2 3AB", "Jersey", ""], ("12 La Rue", "St Helier", "JERSEY", "JE2 3AB"), "uk"),
        (["3 Prospect Hill", "Douglas", "IM1 1AA", "Isle of Man", ""],
         ("3 Prospect Hill", "Douglas", "ISLE OF MAN", "IM1 1AA"), "uk"),
        (["12 Grey Street", "Newcastle", "NE1 7RU", "GBR", ""], ("12 Grey Street", "Newcastle", "NE1 7RU"), "uk"),
        (["5 High Street", "Belfast", "BT1 1AA", "N. Ireland", ""], ("5 High Street", "Belfast", "BT1 1AA"), "uk"),
        (["BFPO", "BF1 1AA", "BFPO 123", "", ""], ("BF1 1AA", "BFPO 123"), "uk"),
        (["Unit 1", "BFPO C/O 123", "", "", ""], ("Unit 1", "BFPO 123"), "uk"),
        (["5 Hauptstraße", "10115 Berlin", "", "", "Deutschland"], ("5 Hauptstraße", "10115 Berlin", "DEUTSCHLAND"),
         "europe"),
        (["Calle Mayor 5", "38001 Santa Cruz", "Tenerife", "", ""], ("Calle Mayor 5", "38001 Santa Cruz", "TENERIFE"),
         "europe"),
        (["1 Main Street", "Dublin 2", "", "", "ROI"], ("1 Main Street", "Dublin 2", "ROI"), "europe"),
        (["Torggatan 1", "22100 Mariehamn", "Åland Islands", "", ""],
         ("Torggatan 1", "22100 Mariehamn", "ÅLAND ISLANDS"), "rest-of-world"),
        (["1 Ross Road", "Stanley", "FIQQ 1ZZ", "Falklands", ""], ("1 Ross Road", "Stanley", "FIQQ 1ZZ", "FALKLANDS"),
         "rest-of-world"),
    ],
)
def test_real_world_addresses_become_letters(tmp_path, address, lines, postage):
    path = write(tmp_path, table(ADDRESS_HEADER, ["Mx", "One", "5760678914", *address]))
    patient = read_patient_list(path, international=True).patients[0]
    assert (patient.address_lines, patient.postage) == (lines, postage)


@pytest.mark.parametrize(
    ("address", "reason", "says"),
    [
        (["!!!", "12 Grey Street", "Newcastle", "NE1 7RU", ""], Reason.ADDRESS_INVALID_CHARACTER,
         "address line 1 ('!!!') has no letter or digit"),
        (["1 Some Street", "Atlantis", "", "", ""], Reason.ADDRESS_BAD_POSTCODE,
         "last line 'Atlantis' is not a UK postcode or a country we recognise"),
        (["1 Some Street", "Newcastle", "", "", "Atlantis"], Reason.ADDRESS_BAD_POSTCODE,
         "the Country column ('Atlantis') is not a country we recognise"),
    ],
)
@pytest.mark.parametrize("international", [False, True])
def test_real_world_addresses_refused_say_what_is_wrong(tmp_path, address, reason, says, international):
    path = write(tmp_path, table(ADDRESS_HEADER, ["Mx", "One", "5760678914", *address]))
    result = read_patient_list(path, international=international)
    exclusion = only_exclusion(result)
    assert (exclusion.input_row, exclusion.reason) == (2, reason)
    assert says in exclusion.detail
