"""FHIR STU3 pieces the sandbox's two operations need.

Takes the raw body of a `$status-query` or `$generate-invitation-tokens` request and gives the
list of requested identifiers (or a `FhirRequestError` saying exactly what is wrong, which the
server turns into a 400 OperationOutcome). Also builds the answering `Parameters` resources
and `OperationOutcome`s as plain JSON-ready dicts.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from pkb_letters.sandbox._data import NO_ACCESS, NOT_FOUND, IssuedPair, Patient, iso_utc

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
CHI_SYSTEM = "urn:oid:2.16.840.1.113883.2.1.3.2.4.16.53"
H_AND_C_SYSTEM = "urn:uuid:1479257a-ce8f-482a-89fa-429ac066c158"

SYSTEM_TO_TYPE = {
    NHS_SYSTEM: "NHS_NUMBER",
    CHI_SYSTEM: "CHI_NUMBER",
    H_AND_C_SYSTEM: "H_AND_C_NUMBER",
}

STATUS_QUERY_LIMIT = 5000
TOKENS_LIMIT = 500


class FhirRequestError(Exception):
    """A request the operation refuses as a whole."""

    def __init__(self, diagnostics: str, code: str = "invalid", status: int = 400) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.code = code
        self.status = status

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.code, self.diagnostics)


@dataclass(frozen=True)
class RequestedIdentifier:
    id_type: str  # NHS_NUMBER, CHI_NUMBER or H_AND_C_NUMBER
    value: str
    # The valueIdentifier exactly as sent, echoed back in the answer.
    raw: dict[str, Any] = field(compare=False, repr=False)


def parse_identifiers(body: bytes, limit: int) -> list[RequestedIdentifier]:
    parameters = _parameter_list(_parse_json(body))
    if not parameters:
        raise FhirRequestError(f"no patientIdentifier parameters: send 1 to {limit}")
    if len(parameters) > limit:
        raise FhirRequestError(
            f"{len(parameters)} patientIdentifier parameters: at most {limit} per request",
            code="too-costly",
        )
    return [_identifier(item, i) for i, item in enumerate(parameters)]


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise FhirRequestError("body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise FhirRequestError(f"body is not valid JSON: {exc}") from None


def _parameter_list(resource: Any) -> list[Any]:
    if not isinstance(resource, dict):
        raise FhirRequestError("body must be a JSON object (a Parameters resource)")
    kind = resource.get("resourceType")
    if kind != "Parameters":
        raise FhirRequestError(f"resourceType must be 'Parameters', not {kind!r}")
    parameters = resource.get("parameter", [])
    if not isinstance(parameters, list):
        raise FhirRequestError("Parameters.parameter must be a list")
    return parameters


def _identifier(item: Any, index: int) -> RequestedIdentifier:
    where = f"parameter[{index}]"
    if not isinstance(item, dict) or item.get("name") != "patientIdentifier":
        raise FhirRequestError(f"{where}: expected a parameter named 'patientIdentifier'")
    ident = item.get("valueIdentifier")
    if not isinstance(ident, dict):
        raise FhirRequestError(f"{where}: patientIdentifier needs a valueIdentifier")
    system, value = ident.get("system"), ident.get("value")
    if system not in SYSTEM_TO_TYPE:
        raise FhirRequestError(f"{where}: unknown identifier system {system!r}")
    if not isinstance(value, str) or not value.strip():
        raise FhirRequestError(f"{where}: valueIdentifier.value must be a non-empty string")
    return RequestedIdentifier(SYSTEM_TO_TYPE[system], value, dict(ident))


# --- building answers ------------------------------------------------------------------------


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    issue = {"severity": severity, "code": code, "diagnostics": diagnostics}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def parameters(params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": params}


def patient_status_found(ident: RequestedIdentifier, patient: Patient) -> dict[str, Any]:
    parts = [
        _identifier_part(ident),
        {"name": "deceased", "valueBoolean": patient.date_deceased is not None},
        {"name": "registered", "valueBoolean": patient.registered},
    ]
    if patient.dob is not None:
        parts.append({"name": "dateOfBirth", "valueDate": patient.dob.isoformat()})
    return {"name": "patientStatus", "part": parts}


def patient_status_not_found(ident: RequestedIdentifier) -> dict[str, Any]:
    """PKB's "Status query" page: deceased and registered are absent when the patient is not found."""
    parts = [_identifier_part(ident), _string_part("diagnostics", NOT_FOUND)]
    return {"name": "patientStatus", "part": parts}


def patient_status_no_access(ident: RequestedIdentifier, patient: Patient) -> dict[str, Any]:
    """PKB's "Status query" page: deceased and registered ARE returned with "No access". The date of
    birth is left out (our inference: the page does not say it is shown)."""
    parts = [
        _identifier_part(ident),
        {"name": "deceased", "valueBoolean": patient.date_deceased is not None},
        {"name": "registered", "valueBoolean": patient.registered},
        _string_part("diagnostics", NO_ACCESS),
    ]
    return {"name": "patientStatus", "part": parts}


def patient_tokens_issued(
    ident: RequestedIdentifier, pair: IssuedPair, expiry_key: str = "valueDateTime", expiry_text: str | None = None
) -> dict[str, Any]:
    """`expiry_key` "valueDateTime" is the operation definition's type; "valueDatetime", with milliseconds
    and `+00:00`, is how PKB's own example answer writes it; "" leaves the part out."""
    parts = [
        _identifier_part(ident),
        _string_part("code", pair.invitation_code),
        _string_part("token", pair.access_code),
    ]
    if expiry_key:
        value = expiry_text if expiry_text is not None else _expiry_text(pair, expiry_key)
        parts.append({"name": "expiry", expiry_key: value})
    return {"name": "patientTokens", "part": parts}


def _expiry_text(pair: IssuedPair, expiry_key: str) -> str:
    if expiry_key == "valueDatetime":  # "2021-01-01T09:29:23.356+00:00", as in PKB's example
        return pair.expiry.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return iso_utc(pair.expiry)


def patient_tokens_refused(ident: RequestedIdentifier, diagnostics: str) -> dict[str, Any]:
    """The opt-in `refusal_diagnostics` variant: PKB documents no such part (it leaves the patient out)."""
    parts = [_identifier_part(ident), _string_part("diagnostics", diagnostics)]
    return {"name": "patientTokens", "part": parts}


def _identifier_part(ident: RequestedIdentifier) -> dict[str, Any]:
    return {"name": "patientIdentifier", "valueIdentifier": dict(ident.raw)}


def _string_part(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "valueString": value}
