"""Resolve: patients in, each either `Eligible` or an `Exclusion` with PKB's reason.

The FHIR route asks `$status-query` in batches; the REST route asks
`byNationalId` per patient and applies the same rules to the user object.
PKB's documented user object has no registration flag, so where the job has a FHIR base
the REST route confirms each eligible patient's `deceased` and `registered` with
`$status-query` before they are recorded as eligible (the pipeline warns when it cannot).
The deceased check comes first and is never skipped, even when PKB says "No access". Next, what PKB returned
about the person is compared with the list (`demographics`): a disagreement
holds the row as `demographics-mismatch` before any other rule is applied.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from pkb_letters.errors import PkbApiError, PkbAuthError
from pkb_letters.intake.demographics import PkbDemographics, mismatch_detail, mismatched_fields
from pkb_letters.pkb.batching import (
    SINGLE_ATTEMPTS,
    ConsecutiveFailures,
    Failed,
    batched,
    is_batch_failure,
    isolate_failures,
    run_bounded,
)
from pkb_letters.pkb.client import STATUS_QUERY_LIMIT, PatientStatus, PkbClient, UserDenied
from pkb_letters.records import Eligible, Exclusion, PatientRow, Reason

MINIMUM_AGE = 16

Decision = Eligible | Exclusion
Advance = Callable[[int], None]
Record = Callable[[list[Decision]], None]

_DETAILS = {
    Reason.NOT_FOUND: "PKB has no record with this NHS number; check the number, or add the patient to PKB first",
    Reason.NO_ACCESS: "the PKB record belongs to another organisation, so it cannot invite this patient",
    Reason.DECEASED: "PKB records this patient as deceased; no letter is sent",
    Reason.ALREADY_REGISTERED: "the patient has already registered for their PKB record",
    Reason.NO_DATE_OF_BIRTH: "the PKB record has no date of birth, which the patient needs to register; add it on PKB",
    Reason.UNDER_16: "the patient is under 16 on the letter date; PKB invites only patients aged 16 or over",
}


def exclusion(patient: PatientRow, reason: Reason, detail: str | None = None) -> Exclusion:
    return Exclusion(patient.input_row, patient.customer_ref, patient.nhs_number, reason, detail or _DETAILS[reason])


def age_on(date_of_birth: dt.date, day: dt.date) -> int:
    had_birthday = (day.month, day.day) >= (date_of_birth.month, date_of_birth.day)
    return day.year - date_of_birth.year - (0 if had_birthday else 1)


def resolve_fhir(
    patients: Iterable[PatientRow], client: PkbClient, letter_date: dt.date, record: Record, advance: Advance
) -> None:
    """`$status-query` in batches, each taken from `patients` as it is sent; a failing batch is retried,
    then split to isolate a bad identifier.

    `$status-query` returns no surname or postcode, so only the date of birth is cross-checked.
    """
    for batch in batched(patients, STATUS_QUERY_LIMIT):
        for part, outcome in isolate_failures(batch, client_status_query(client)):
            if isinstance(outcome, Failed):
                record([_failed(patient, outcome) for patient in part])
            else:
                record([_decide_from_status(patient, outcome.get(patient.nhs_number), letter_date) for patient in part])
        advance(len(batch))


def client_status_query(client: PkbClient) -> Callable[[Sequence[PatientRow]], dict[str, PatientStatus]]:
    def query(part: Sequence[PatientRow]) -> dict[str, PatientStatus]:
        return {s.nhs_number: s for s in client.status_query([p.nhs_number for p in part])}

    return query


def _failed(patient: PatientRow, failure: Failed) -> Exclusion:
    return exclusion(
        patient,
        Reason.PKB_REFUSED,
        f"PKB failed on this patient {failure.attempts} times while other patients succeeded ({failure.error}); "
        "check the patient's record on PKB, then include the row in a new job",
    )


def _decide_from_status(patient: PatientRow, status: PatientStatus | None, letter_date: dt.date) -> Decision:
    if status is None:
        return exclusion(patient, Reason.PKB_REFUSED, "PKB's $status-query answer left this patient out; run again")
    if status.diagnostics == "Not found":
        return exclusion(patient, Reason.NOT_FOUND)
    if status.diagnostics == "No access":  # PKB still says whether they died: that must not be lost
        if status.deceased:
            return exclusion(
                patient,
                Reason.DECEASED,
                "PKB records this patient as deceased (the record belongs to another organisation); no letter is sent",
            )
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
    patients: Iterable[PatientRow],
    client: PkbClient,
    letter_date: dt.date,
    record: Record,
    advance: Advance,
    *,
    workers: int = 8,
    failure_limit: int = 10,
    check_postcode: bool = True,
    confirm: bool = False,
) -> None:
    """`byNationalId` per patient, `workers` at a time, each taken from `patients` as it is sent; a patient
    PKB failed on is asked again after all the others, and excluded if PKB keeps failing on them.
    With `confirm`, eligible patients are checked with `$status-query` before they are recorded."""
    failures = ConsecutiveFailures(failure_limit)
    denials = _Denials(failure_limit)
    attempts: dict[int, int] = {}
    fresh = iter(patients)
    again: list[PatientRow] = []
    decided: list[Decision] = []

    def on_answer(patient: PatientRow, outcome: dict[str, Any] | UserDenied | None | PkbApiError) -> None:
        if isinstance(outcome, PkbApiError):
            if not is_batch_failure(outcome):
                raise outcome
            failures.failed(outcome)
            attempts[patient.input_row] = attempts.get(patient.input_row, 0) + 1
            if attempts[patient.input_row] < SINGLE_ATTEMPTS:
                again.append(patient)
                return
            decided.append(_failed(patient, Failed(outcome, attempts[patient.input_row])))
        elif isinstance(outcome, UserDenied):
            failures.succeeded()
            denials.denied(outcome)
            decided.append(
                exclusion(
                    patient,
                    Reason.NO_ACCESS,
                    f"PKB refused to show this patient's record "
                    f"(byNationalId answered {outcome.status}); ask the organisation that holds it",
                )
            )
        else:
            failures.succeeded()
            denials.found()
            decided.append(_decide_from_user(patient, outcome, letter_date, check_postcode))
        if len(decided) >= _RECORD_EVERY:
            _flush(decided, record, advance, client if confirm else None)

    def take() -> Iterator[PatientRow]:
        while (patient := next(fresh, None)) is not None or again:
            yield patient if patient is not None else again.pop(0)

    try:
        while True:  # an answer still in flight when `take` ran dry may send its patient round again
            run_bounded(lambda p: client.user_by_nhs_number(p.nhs_number), take(), workers, on_answer)
            if not again:
                break
    finally:
        _flush(decided, record, advance, client if confirm else None)


_RECORD_EVERY = 200  # resolve decisions are safe to repeat, so they are written in batches


class _Denials:
    """A 401/403 from byNationalId is one patient's; but when PKB refuses every patient from the start,
    it is the client that may not use this API, and excluding the whole list as no-access would hide that."""

    def __init__(self, limit: int) -> None:
        self.limit, self.count, self.any_found = limit, 0, False

    def found(self) -> None:
        self.any_found = True

    def denied(self, denial: UserDenied) -> None:
        self.count += 1
        if not self.any_found and self.count >= self.limit:
            raise PkbAuthError(
                f"PKB refused byNationalId for the first {self.count} patients (HTTP {denial.status}) and showed "
                "none: the client may not be allowed this REST API (PKB's system clients mainly reach the FHIR "
                "API); check its permissions with PKB, or run with --api fhir",
                denial.status,
            )


def _flush(decided: list[Decision], record: Record, advance: Advance, confirm_with: PkbClient | None) -> None:
    if decided:
        record(_confirmed(decided, confirm_with) if confirm_with else list(decided))
        advance(len(decided))
        decided.clear()


def _confirmed(decided: list[Decision], client: PkbClient) -> list[Decision]:
    """The REST route's decisions, each eligible one checked against `$status-query`'s deceased and
    registered flags (the user object has no registration flag)."""
    eligible = [d.patient for d in decided if isinstance(d, Eligible)]
    statuses: dict[str, PatientStatus] = {}
    if eligible:
        for _, outcome in isolate_failures(eligible, client_status_query(client)):
            if not isinstance(outcome, Failed):
                statuses.update(outcome)
    return [d if isinstance(d, Exclusion) else _confirm(d, statuses.get(d.patient.nhs_number)) for d in decided]


def _confirm(eligible: Eligible, status: PatientStatus | None) -> Decision:
    patient = eligible.patient
    if status is None or status.deceased is None or status.registered is None:
        said = f" ({status.diagnostics})" if status is not None and status.diagnostics else ""
        return exclusion(
            patient,
            Reason.PKB_REFUSED,
            f"$status-query could not confirm{said} that the patient is "
            "alive and not yet registered, so no code is asked for; check the record on PKB",
        )
    if status.deceased:
        return exclusion(patient, Reason.DECEASED, "$status-query records this patient as deceased; no letter is sent")
    if status.registered:
        return exclusion(patient, Reason.ALREADY_REGISTERED)
    return eligible


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
        registered=False,  # PKB's user object has no such flag: `_confirmed` asks $status-query
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
