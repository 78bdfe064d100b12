"""Tokens: eligible patients in, each with a fresh `CodePair` or an `Exclusion`.

Every pair PKB issues is a live credential. So each request is written down in the
`RequestLog` (the journal) *before* it is sent, and its answer handed to `record` as soon as
it arrives. A request whose answer is lost stays written down: asking again for that patient
is a re-issue, and the journal says so. No patient is asked for twice for any other reason.

A pair whose expiry cannot be read is still a live credential: it is recorded (held), and the
stage then stops with `ExpiryUnreadable` rather than print a guessed date or ask again.
`$generate-invitation-tokens` refuses a patient by leaving them out of its answer; why is asked
of `$status-query` (which creates nothing), so the exclusion is as specific as PKB lets it be.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Generator, Iterable, Sequence
from itertools import islice
from typing import Protocol

from pkb_letters.errors import ExpiryUnreadable, PkbApiError, PkbUnavailable
from pkb_letters.pkb.batching import (
    SINGLE_ATTEMPTS,
    ConsecutiveFailures,
    Failed,
    batched,
    is_batch_failure,
    isolate_failures,
    run_bounded,
)
from pkb_letters.pkb.client import GENERATE_TOKENS_LIMIT, PatientStatus, PatientTokens, PkbClient, RecordAccessDenied
from pkb_letters.pkb.resolve import MINIMUM_AGE, age_on, exclusion
from pkb_letters.records import CodePair, Eligible, Exclusion, HeldPair, Reason

Issued = tuple[Eligible, CodePair | HeldPair | Exclusion]
Advance = Callable[[int], None]
Record = Callable[[list[Issued]], None]

_FHIR_DIAGNOSTICS = {
    "Not found": Reason.NOT_FOUND,
    "No access": Reason.NO_ACCESS,
    "Deceased": Reason.DECEASED,
    "Already registered": Reason.ALREADY_REGISTERED,
    "No date of birth": Reason.NO_DATE_OF_BIRTH,
    "Under 16": Reason.UNDER_16,
}


class RequestLog(Protocol):
    def begin_code_request(self, input_rows: Sequence[int]) -> None: ...

    def cancel_code_request(self, input_rows: Sequence[int]) -> None: ...


def issue_fhir(
    eligible: Iterable[Eligible],
    client: PkbClient,
    log: RequestLog,
    record: Record,
    advance: Advance,
    today: Callable[[], dt.date] = dt.date.today,
) -> None:
    """`$generate-invitation-tokens` in batches, each taken from `eligible` as it is sent; a failing batch
    is retried, then split. Stops with `ExpiryUnreadable`, once the answer is recorded, when a pair's
    expiry could not be read: the next batch would most likely come back the same."""
    for batch in batched(eligible, GENERATE_TOKENS_LIMIT):
        for part, outcome in isolate_failures(batch, _fhir_request(client, log)):
            if isinstance(outcome, Failed):
                record([(item, _failed(item, outcome)) for item in part])
                continue
            answered, omitted = outcome
            record(answered)  # every pair PKB returned is in the journal before anything else is asked
            if omitted:
                record(explain_omissions(omitted, client, today()))
            held = [(item, pair) for item, pair in answered if isinstance(pair, HeldPair)]
            if held:
                raise ExpiryUnreadable(
                    expiry_unreadable_message([item.patient.input_row for item, _ in held], held[0][1].problem)
                )
        advance(len(batch))


def expiry_unreadable_message(input_rows: Sequence[int], problem: str) -> str:
    """What the operator sees when pairs are held: what happened, what is safe, and what they can do."""
    shown = ", ".join(str(row) for row in input_rows[:10]) + (", …" if len(input_rows) > 10 else "")
    return (
        f"PKB issued code pairs for {len(input_rows)} patient(s) (input rows {shown}) but their expiry could not "
        f"be read: {problem}. The pairs are kept in the job journal and will never be asked for again; no letter "
        "is printed for them until their expiry is known, and no more codes were requested. What you can do: "
        "send this message (it holds no codes) to the pkb-letters maintainers; a version that reads PKB's answer "
        "resumes this job and prints these letters with PKB's expiry. Or, to finish the job without these "
        'patients, set [codes] unreadable_expiry = "exclude" in the job file and run again: their rows become '
        "exceptions (expiry-unreadable), their codes lapse unused at PKB, and every other patient carries on."
    )


def _fhir_request(
    client: PkbClient, log: RequestLog
) -> Callable[[Sequence[Eligible]], tuple[list[Issued], list[Eligible]]]:
    def request(part: Sequence[Eligible]) -> tuple[list[Issued], list[Eligible]]:
        rows = [item.patient.input_row for item in part]
        log.begin_code_request(rows)
        try:
            answers = client.generate_invitation_tokens([item.patient.nhs_number for item in part])
        except PkbUnavailable as error:
            if error.processed is False:
                log.cancel_code_request(rows)
            raise
        except PkbApiError as error:
            if not is_batch_failure(error):  # refused outright, e.g. 403: nothing was issued
                log.cancel_code_request(rows)
            raise
        return _match_answers(part, answers)

    return request


def _match_answers(part: Sequence[Eligible], answers: Sequence[PatientTokens]) -> tuple[list[Issued], list[Eligible]]:
    """(the patients PKB answered for, the patients it left out: its documented way of refusing)."""
    by_number = {a.nhs_number: a for a in answers}
    answered: list[Issued] = []
    omitted: list[Eligible] = []
    for item in part:
        answer = by_number.get(item.patient.nhs_number)
        if answer is None:
            omitted.append(item)
        elif answer.codes is not None:
            answered.append((item, answer.codes))
        else:  # a `diagnostics` part: not in PKB's documentation, kept in case it ever answers so
            answered.append((item, _refusal(item, answer.diagnostics)))
    return answered, omitted


_LEFT_OUT = "PKB left this patient out of its $generate-invitation-tokens answer (it issued no codes)"
_DOCUMENTED_CAUSES = "deceased, not found, already registered, no date of birth, or under 16"


def explain_omissions(omitted: Sequence[Eligible], client: PkbClient, today: dt.date) -> list[Issued]:
    """Why PKB left each patient out, as far as `$status-query` (asked now: it creates no codes) shows."""
    try:
        statuses = {s.nhs_number: s for s in client.status_query([item.patient.nhs_number for item in omitted])}
        unasked = ""
    except PkbApiError as error:
        statuses, unasked = {}, f" ($status-query could not be asked: {error})"
    return [(item, _omission(item, statuses.get(item.patient.nhs_number), today, unasked)) for item in omitted]


def _omission(item: Eligible, status: PatientStatus | None, today: dt.date, unasked: str) -> Exclusion:
    patient = item.patient
    if status is None:
        return exclusion(
            patient,
            Reason.PKB_REFUSED,
            f"{_LEFT_OUT}; PKB does so when a patient is "
            f"{_DOCUMENTED_CAUSES}, and did not say which{unasked}; check the record on PKB",
        )
    if status.diagnostics == "Not found":
        return exclusion(patient, Reason.NOT_FOUND, f"{_LEFT_OUT}; $status-query now finds no record")
    if status.deceased:
        return exclusion(patient, Reason.DECEASED, f"{_LEFT_OUT}; $status-query now says deceased")
    if status.diagnostics == "No access":
        return exclusion(patient, Reason.NO_ACCESS, f"{_LEFT_OUT}; $status-query now says No access")
    if status.registered:
        return exclusion(patient, Reason.ALREADY_REGISTERED, f"{_LEFT_OUT}; $status-query now says registered")
    if status.diagnostics is None and status.date_of_birth is None:
        return exclusion(patient, Reason.NO_DATE_OF_BIRTH, f"{_LEFT_OUT}; $status-query shows no date of birth")
    if status.date_of_birth is not None and age_on(status.date_of_birth, today) < MINIMUM_AGE:
        return exclusion(
            patient,
            Reason.UNDER_16,
            f"{_LEFT_OUT}; the patient is under 16 today, the day PKB "
            "counts age from, though 16 on the letter date: include the row in a later job",
        )
    said = f" (it says {status.diagnostics!r})" if status.diagnostics else ""
    return exclusion(
        patient,
        Reason.PKB_REFUSED,
        f"{_LEFT_OUT}; PKB does so when a patient is {_DOCUMENTED_CAUSES}, "
        f"and $status-query now shows none of these{said}; check the record on PKB",
    )


def _refusal(item: Eligible, diagnostics: str | None) -> Exclusion:
    reason = _FHIR_DIAGNOSTICS.get(diagnostics or "")
    if reason is None:
        return exclusion(item.patient, Reason.PKB_REFUSED, f"PKB issued no codes: {diagnostics or 'no reason given'}")
    return exclusion(item.patient, reason)


def _failed(item: Eligible, failure: Failed) -> Exclusion:
    return exclusion(
        item.patient,
        Reason.PKB_REFUSED,
        f"PKB failed on this patient {failure.attempts} times while other patients succeeded ({failure.error}); "
        "check the patient's record on PKB, then include the row in a new job",
    )


def issue_rest(
    eligible: Iterable[Eligible],
    client: PkbClient,
    log: RequestLog,
    record: Record,
    advance: Advance,
    *,
    validity_days: int,
    workers: int = 8,
    failure_limit: int = 10,
) -> None:
    """One `recordAccessToken` per patient, `workers` at a time, each taken from `eligible` as it is sent;
    REST answers carry no expiry, so it is computed. A patient PKB failed on is asked again after all
    the others."""
    failures = ConsecutiveFailures(failure_limit)
    attempts: dict[int, int] = {}
    fresh = iter(eligible)
    again: list[Eligible] = []

    def send(item: Eligible) -> CodePair | Exclusion:
        issued_on = dt.datetime.now(dt.UTC).date()
        try:
            invitation_code, access_code = client.record_access_token(item.pkb_id or "")
        except RecordAccessDenied:
            return exclusion(item.patient, Reason.NO_ACCESS)
        return CodePair(invitation_code, access_code, issued_on + dt.timedelta(days=validity_days))

    answered: list[Issued] = []

    def next_group() -> list[Eligible]:
        group = list(islice(fresh, workers))
        if not group:
            group, again[:workers] = again[:workers], []
        for item in group:
            if item.pkb_id is None:
                raise ValueError(f"input row {item.patient.input_row}: REST route needs a PKB id")
        return group

    def begin() -> Generator[Eligible, None, None]:
        """Rows are written down as requested a group at a time (one commit, not one per row); a group
        left unsent when the run stops is taken back, so only a crash can leave rows marked unasked."""
        unsent: list[Eligible] = []
        try:
            while unsent := next_group():
                log.begin_code_request([item.patient.input_row for item in unsent])
                while unsent:
                    yield unsent.pop(0)
        finally:
            if unsent:
                log.cancel_code_request([item.patient.input_row for item in unsent])
                again[:0] = unsent

    def settle() -> None:
        if answered:
            record(list(answered))  # the answers that arrived together, in one transaction
            advance(len(answered))
            answered.clear()

    def on_answer(item: Eligible, outcome: CodePair | Exclusion | PkbApiError) -> None:
        row = item.patient.input_row
        if not isinstance(outcome, PkbApiError):
            failures.succeeded()
            answered.append((item, outcome))
            return
        if isinstance(outcome, PkbUnavailable) and outcome.processed is False or not is_batch_failure(outcome):
            log.cancel_code_request([row])
        if not is_batch_failure(outcome):
            raise outcome
        failures.failed(outcome)
        attempts[row] = attempts.get(row, 0) + 1
        if attempts[row] < SINGLE_ATTEMPTS:
            again.append(item)  # asked again later; begin() marks it as a possible re-issue
        else:
            answered.append((item, _failed(item, Failed(outcome, attempts[row]))))

    while True:  # an answer still in flight when `begin` ran dry may send its patient round again
        requests = begin()
        try:
            run_bounded(send, requests, workers, on_answer, settle)
        finally:
            requests.close()
        if not again:
            break
