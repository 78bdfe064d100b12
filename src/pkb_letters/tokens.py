"""Tokens: eligible patients in, each with a fresh `CodePair` or an `Exclusion`.

Every pair PKB issues is a live credential, so results are yielded batch by
batch for the caller to record in the journal at once, and no patient is ever
asked for twice here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence

from .pkb import GENERATE_TOKENS_LIMIT, PkbClient, RecordAccessDenied
from .records import CodePair, Eligible, Exclusion, Reason
from .resolve import exclusion

Issued = tuple[Eligible, CodePair | Exclusion]
Advance = Callable[[int], None]

_FHIR_DIAGNOSTICS = {
    "Not found": Reason.NOT_FOUND,
    "No access": Reason.NO_ACCESS,
    "Deceased": Reason.DECEASED,
    "Already registered": Reason.ALREADY_REGISTERED,
    "No date of birth": Reason.NO_DATE_OF_BIRTH,
    "Under 16": Reason.UNDER_16,
}


def issue_fhir(eligible: Sequence[Eligible], client: PkbClient, advance: Advance) -> Iterator[list[Issued]]:
    """Yield one list of results per `$generate-invitation-tokens` batch."""
    for start in range(0, len(eligible), GENERATE_TOKENS_LIMIT):
        batch = eligible[start : start + GENERATE_TOKENS_LIMIT]
        answers = {a.nhs_number: a for a in client.generate_invitation_tokens([e.patient.nhs_number for e in batch])}
        results: list[Issued] = []
        for item in batch:
            answer = answers.get(item.patient.nhs_number)
            if answer is None:
                refused = exclusion(item.patient, Reason.PKB_REFUSED, "PKB returned no codes and no reason")
                results.append((item, refused))
            elif answer.codes is not None:
                results.append((item, answer.codes))
            else:
                results.append((item, _refusal(item, answer.diagnostics)))
        yield results
        advance(len(batch))


def _refusal(item: Eligible, diagnostics: str | None) -> Exclusion:
    reason = _FHIR_DIAGNOSTICS.get(diagnostics or "")
    if reason is None:
        return exclusion(item.patient, Reason.PKB_REFUSED, f"PKB issued no codes: {diagnostics or 'no reason given'}")
    return exclusion(item.patient, reason)


def issue_rest(
    eligible: Sequence[Eligible], client: PkbClient, validity_days: int, advance: Advance
) -> Iterator[list[Issued]]:
    """Yield one result per `recordAccessToken` call; REST answers carry no expiry, so it is computed."""
    for item in eligible:
        if item.pkb_id is None:
            raise ValueError(f"input row {item.patient.input_row}: REST route needs a PKB id")
        issued_on = dt.datetime.now(dt.UTC).date()
        try:
            invitation_code, access_code = client.record_access_token(item.pkb_id)
        except RecordAccessDenied:
            yield [(item, exclusion(item.patient, Reason.NO_ACCESS))]
        else:
            expires = issued_on + dt.timedelta(days=validity_days)
            yield [(item, CodePair(invitation_code, access_code, expires))]
        advance(1)
