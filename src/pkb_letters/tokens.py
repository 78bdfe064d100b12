"""Tokens: eligible patients in, each with a fresh `CodePair` or an `Exclusion`.

Every pair PKB issues is a live credential. So each request is written down in the
`RequestLog` (the journal) *before* it is sent, and its answer handed to `record` as soon as
it arrives. A request whose answer is lost stays written down: asking again for that patient
is a re-issue, and the journal says so. No patient is asked for twice for any other reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Protocol

from .batching import (
    SINGLE_ATTEMPTS,
    ConsecutiveFailures,
    Failed,
    batched,
    is_batch_failure,
    isolate_failures,
    run_bounded,
)
from .errors import PkbApiError, PkbUnavailable
from .pkb import GENERATE_TOKENS_LIMIT, PatientTokens, PkbClient, RecordAccessDenied
from .records import CodePair, Eligible, Exclusion, Reason
from .resolve import exclusion

Issued = tuple[Eligible, CodePair | Exclusion]
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
    eligible: Iterable[Eligible], client: PkbClient, log: RequestLog, record: Record, advance: Advance
) -> None:
    """`$generate-invitation-tokens` in batches, each taken from `eligible` as it is sent; a failing batch
    is retried, then split."""
    for batch in batched(eligible, GENERATE_TOKENS_LIMIT):
        for part, outcome in isolate_failures(batch, _fhir_request(client, log)):
            if isinstance(outcome, Failed):
                record([(item, _failed(item, outcome)) for item in part])
            else:
                record(outcome)
        advance(len(batch))


def _fhir_request(client: PkbClient, log: RequestLog) -> Callable[[Sequence[Eligible]], list[Issued]]:
    def request(part: Sequence[Eligible]) -> list[Issued]:
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
        return list(_match_answers(part, answers))

    return request


def _match_answers(part: Sequence[Eligible], answers: Sequence[PatientTokens]) -> Iterator[Issued]:
    by_number = {a.nhs_number: a for a in answers}
    for item in part:
        answer = by_number.get(item.patient.nhs_number)
        if answer is None:
            yield item, exclusion(item.patient, Reason.PKB_REFUSED, "PKB returned no codes and no reason")
        elif answer.codes is not None:
            yield item, answer.codes
        else:
            yield item, _refusal(item, answer.diagnostics)


def _refusal(item: Eligible, diagnostics: str | None) -> Exclusion:
    reason = _FHIR_DIAGNOSTICS.get(diagnostics or "")
    if reason is None:
        return exclusion(item.patient, Reason.PKB_REFUSED, f"PKB issued no codes: {diagnostics or 'no reason given'}")
    return exclusion(item.patient, reason)


def _failed(item: Eligible, failure: Failed) -> Exclusion:
    return exclusion(
        item.patient, Reason.PKB_REFUSED,
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

    def send(item: Eligible) -> tuple[str, str] | Exclusion:
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

    def begin() -> Iterator[Eligible]:
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
