"""Resolve: patients in, each either `Eligible` or an `Exclusion` with PKB's reason.

The FHIR route asks `$status-query` in batches; the REST route asks
`byNationalId` per patient and applies the same rules to the user object.
The deceased check comes first and is never skipped. Next, what PKB returned
about the person is compared with the list (`demographics`): a disagreement
holds the row as `demographics-mismatch` before any other rule is applied.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .demographics import PkbDemographics, mismatch_detail, mismatched_fields
from .errors import PkbApiError
from .pkb import STATUS_QUERY_LIMIT, PatientStatus, PkbClient
from .records import Eligible, Exclusion, PatientRow, Reason

MINIMUM_AGE = 16

Decision = Eligible | Exclusion
Advance = Callable[[int], None]

_DETAILS = {
    Reason.NOT_FOUND: "PKB has no record with this NHS number; check the number, or add the patient to PKB first",
    Reason.NO_ACCESS: "the PKB record belongs to another organisation, so it cannot invite this patient",
    Reason.DECEASED: "PKB records this patient as deceased; no letter is sent",
    Reason.ALREADY_REGISTERED: "the patient has already registered for their PKB record",
    Reason.NO_DATE_OF_BIRTH: "the PKB record has no date of birth, which the patient needs to register; add it on PKB",
    Reason.UNDER_16: "the patient is under 16 on the letter date; PKB invites only patients aged 16 or over",
}


def exclusion(patient: PatientRow, reason: Reason, detail: str | None = None) -> Exclusion:
    return Exclusion(patient.input_row, patient.customer_ref, patient.nhs_number, reason,
                     detail or _DETAILS[reason])


def age_on(date_of_birth: dt.date, day: dt.date) -> int:
    had_birthday = (day.month, day.day) >= (date_of_birth.month, date_of_birth.day)
    return day.year - date_of_birth.year - (0 if had_birthday else 1)


def resolve_fhir(
    patients: Sequence[PatientRow],
    client: PkbClient,
    letter_date: dt.date,
    advance: Advance,
    *,
    check_postcode: bool = True,  # $status-query returns no postcode: nothing to compare
) -> Iterator[Decision]:
    for start in range(0, len(patients), STATUS_QUERY_LIMIT):
        batch = patients[start : start + STATUS_QUERY_LIMIT]
        statuses = {s.nhs_number: s for s in client.status_query([p.nhs_number for p in batch])}
        for patient in batch:
            status = statuses.get(patient.nhs_number)
            if status is None:
                raise PkbApiError(f"PKB $status-query gave no answer for input row {patient.input_row}")
            yield _decide_from_status(patient, status, letter_date)
        advance(len(batch))


def _decide_from_status(patient: PatientRow, status: PatientStatus, letter_date: dt.date) -> Decision:
    if status.diagnostics == "Not found":
        return exclusion(patient, Reason.NOT_FOUND)
    if status.diagnostics == "No access":
        return exclusion(patient, Reason.NO_ACCESS)
    if status.diagnostics or status.deceased is None or status.registered is None:
        return exclusion(patient, Reason.PKB_REFUSED, f"PKB said: {status.diagnostics or 'no status'}")
    return _decide(
        patient,
        None,
        status.deceased,
        status.registered,
        status.date_of_birth,
        letter_date,
        PkbDemographics(date_of_birth=status.date_of_birth),
    )


def resolve_rest(
    patients: Sequence[PatientRow],
    client: PkbClient,
    letter_date: dt.date,
    advance: Advance,
    *,
    check_postcode: bool = True,
) -> Iterator[Decision]:
    for patient in patients:
        user = client.user_by_nhs_number(patient.nhs_number)
        yield _decide_from_user(patient, user, letter_date, check_postcode)
        advance(1)


def _decide_from_user(
    patient: PatientRow, user: dict[str, Any] | None, letter_date: dt.date, check_postcode: bool = True
) -> Decision:
    if user is None:
        return exclusion(patient, Reason.NOT_FOUND)
    dob = user.get("dob")
    date_of_birth = dt.date.fromisoformat(dob) if dob else None
    return _decide(
        patient,
        str(user["id"]),
        deceased=bool(user.get("dateDeceased")),
        registered=bool(user.get("registered")),
        date_of_birth=date_of_birth,
        letter_date=letter_date,
        demographics=PkbDemographics(user.get("lastName"), date_of_birth, user.get("postalCode")),
        check_postcode=check_postcode,
    )


def _decide(
    patient: PatientRow,
    pkb_id: str | None,
    deceased: bool,
    registered: bool,
    date_of_birth: dt.date | None,
    letter_date: dt.date,
    demographics: PkbDemographics,
    check_postcode: bool = True,
) -> Decision:
    if deceased:
        return exclusion(patient, Reason.DECEASED)
    mismatched = mismatched_fields(patient, demographics, check_postcode=check_postcode)
    if mismatched:
        return exclusion(patient, Reason.DEMOGRAPHICS_MISMATCH, mismatch_detail(mismatched))
    if registered:
        return exclusion(patient, Reason.ALREADY_REGISTERED)
    if date_of_birth is None:
        return exclusion(patient, Reason.NO_DATE_OF_BIRTH)
    if age_on(date_of_birth, letter_date) < MINIMUM_AGE:
        return exclusion(patient, Reason.UNDER_16)
    return Eligible(patient, pkb_id)
