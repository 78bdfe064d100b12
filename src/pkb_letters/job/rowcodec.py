"""Records to and from the journal's `rows` table: a `PatientRow` kept as JSON, a row read back
as the `CodePair`, `PlacedLetter` or `Exclusion` it holds."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import fields

from pkb_letters.assemble.mailsort import postcode_order_key
from pkb_letters.records import CodePair, Exclusion, HeldPair, Letter, PatientRow, PlacedLetter, Reason

_PATIENT_FIELDS = tuple(f.name for f in fields(PatientRow))


def patient_json(patient: PatientRow) -> str:
    # not dataclasses.asdict: it deep-copies every value, and the tuple of fields it makes for each row
    # lands on CPython's free list, which then holds up to 2,000 of them for the rest of the job
    data = {name: getattr(patient, name) for name in _PATIENT_FIELDS}
    data["date_of_birth"] = patient.date_of_birth.isoformat() if patient.date_of_birth else None
    return json.dumps(data, ensure_ascii=False)


def patient_from_json(text: str) -> PatientRow:
    data = json.loads(text)
    dob = data.pop("date_of_birth")
    data["address_lines"] = tuple(data["address_lines"])
    return PatientRow(date_of_birth=dt.date.fromisoformat(dob) if dob else None, **data)


def print_order_key(patient: str) -> bytes:
    # from the stored patient, not SQLite's json_extract, which would cut a postcode at a NUL
    return postcode_order_key(json.loads(patient)["postcode"])


def codes(row: sqlite3.Row) -> CodePair:
    return CodePair(row["invitation_code"], row["access_code"], dt.date.fromisoformat(row["codes_expire"]))


def held_pair(row: sqlite3.Row) -> HeldPair:
    return HeldPair(row["invitation_code"], row["access_code"], row["codes_expiry_part"] or "null", row["detail"] or "")


def placed_letter(row: sqlite3.Row, page_column: str = "first_page") -> PlacedLetter:
    letter = Letter(row["sequence"], row["piece_id"], patient_from_json(row["patient"]), codes(row))
    return PlacedLetter(letter, row["file"], row[page_column], row["page_count"])


def exclusion(row: sqlite3.Row) -> Exclusion:
    return Exclusion(row["input_row"], row["customer_ref"], row["nhs_number"], Reason(row["reason"]), row["detail"])
