"""Demographic cross-check: does PKB's record describe the person on the customer's list?

Takes a `PatientRow` and what PKB returned about the NHS number (`PkbDemographics`) and gives
the names of the fields that disagree. An NHS number mistyped into another valid number would
otherwise send a live credential to the wrong person's home. Only fields PKB returned are
compared: REST's user object has the surname, date of birth and postcode; FHIR's
`$status-query` has only the date of birth. The values themselves are never reported.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from pkb_letters.records import PatientRow

SURNAME = "surname"
DATE_OF_BIRTH = "date of birth"
POSTCODE = "postcode"


@dataclass(frozen=True)
class PkbDemographics:
    """What PKB holds for the NHS number; None where PKB said nothing."""

    surname: str | None = None
    date_of_birth: dt.date | None = None
    postcode: str | None = None


def mismatched_fields(patient: PatientRow, pkb: PkbDemographics, *, check_postcode: bool = True) -> list[str]:
    """The fields where the list and PKB disagree. Only the postcode part can be turned off
    (PKB addresses go stale when people move); surname and date of birth are always compared."""
    fields = []
    if pkb.surname and fold(pkb.surname) != fold(patient.last_name):
        fields.append(SURNAME)
    if pkb.date_of_birth and patient.date_of_birth and pkb.date_of_birth != patient.date_of_birth:
        fields.append(DATE_OF_BIRTH)
    if check_postcode and pkb.postcode and patient.postcode and fold(pkb.postcode) != fold(patient.postcode):
        fields.append(POSTCODE)
    return fields


def mismatch_detail(fields: list[str]) -> str:
    names = " and ".join(fields) if len(fields) < 3 else f"{fields[0]}, {fields[1]} and {fields[2]}"
    return (
        f"PKB's record for this NHS number has a different {names} from the list: check the NHS number "
        "and the patient's details, and correct the list or the PKB record"
    )


def fold(text: str) -> str:
    """The form compared: no case, accents, spaces, hyphens or other punctuation ("O'Brien-Ng" = "OBRIEN NG")."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[\W_]", "", bare.casefold())
