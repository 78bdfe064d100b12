"""The sandbox's fixture model.

Takes a sandbox JSON file (organisation, OAuth clients, patients) and gives an immutable,
validated `SandboxData` with patient lookup by national id or PKB id and the eligibility rules
of `$generate-invitation-tokens`. Also gives `IssuedLog`, the thread-safe record of every code
pair the sandbox has handed out, so tests can compare what was issued with what was printed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import string
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NATIONAL_ID_TYPES = ("NHS_NUMBER", "CHI_NUMBER", "H_AND_C_NUMBER")

DEFAULT_TOKEN_TTL = 600
DEFAULT_TOKEN_VALIDITY_DAYS = 30
ADULT_AGE = 16
CODE_LENGTH = 10
_CODE_ALPHABET = string.ascii_letters + string.digits
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# "Not found" and "No access" are `$status-query`'s documented diagnostics. The others name the
# causes PKB documents for leaving a patient out of `$generate-invitation-tokens`; they are sent only
# in the opt-in `refusal_diagnostics` variant, in wording of our own.
NOT_FOUND = "Not found"
NO_ACCESS = "No access"
DECEASED = "Deceased"
ALREADY_REGISTERED = "Already registered"
NO_DATE_OF_BIRTH = "No date of birth"
UNDER_16 = "Under 16"


@dataclass(frozen=True)
class NationalId:
    type: str
    value: str


@dataclass(frozen=True)
class Patient:
    id: str
    first_name: str
    last_name: str
    dob: dt.date | None
    date_deceased: dt.date | None
    postal_code: str | None
    registered: bool  # the sandbox's state, shown by $status-query; never in the REST user object
    organisations: tuple[str, ...]
    national_ids: tuple[NationalId, ...]

    @property
    def primary_id_value(self) -> str:
        return self.national_ids[0].value


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class Organisation:
    id: str
    name: str


@dataclass(frozen=True)
class SandboxData:
    organisation: Organisation
    clients: tuple[Client, ...]
    patients: tuple[Patient, ...]
    token_ttl: int = DEFAULT_TOKEN_TTL
    token_validity_days: int = DEFAULT_TOKEN_VALIDITY_DAYS
    _by_national_id: dict[tuple[str, str], Patient] = field(init=False, repr=False, compare=False)
    _by_pkb_id: dict[str, Patient] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_nid = {(n.type, n.value): p for p in self.patients for n in p.national_ids}
        object.__setattr__(self, "_by_national_id", by_nid)
        object.__setattr__(self, "_by_pkb_id", {p.id: p for p in self.patients})

    def find_by_national_id(self, id_type: str, value: str) -> Patient | None:
        return self._by_national_id.get((id_type, value))

    def find_by_pkb_id(self, pkb_id: str) -> Patient | None:
        return self._by_pkb_id.get(pkb_id)

    def can_access(self, patient: Patient) -> bool:
        return self.organisation.id in patient.organisations


def age_on(dob: dt.date, today: dt.date) -> int:
    """Whole years; someone born on 29 February turns a year older on 1 March."""
    before_birthday = (today.month, today.day) < (dob.month, dob.day)
    return today.year - dob.year - int(before_birthday)


def ineligibility(data: SandboxData, patient: Patient | None, today: dt.date) -> str | None:
    """Why no invitation tokens may be issued for this patient, or None when they may."""
    if patient is None:
        return NOT_FOUND
    if not data.can_access(patient):
        return NO_ACCESS
    if patient.date_deceased is not None:
        return DECEASED
    if patient.registered:
        return ALREADY_REGISTERED
    if patient.dob is None:
        return NO_DATE_OF_BIRTH
    if age_on(patient.dob, today) < ADULT_AGE:
        return UNDER_16
    return None


# --- issued-code log -------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedPair:
    route: str  # "rest" or "fhir"
    pkb_id: str
    nhs_number: str  # the national id value the pair was issued for
    invitation_code: str
    access_code: str
    expiry: dt.datetime  # timezone-aware UTC
    issued_at: dt.datetime


def iso_utc(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with a `Z` suffix, as FHIR valueDateTime expects."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def issued_pair_json(pair: IssuedPair) -> dict[str, str]:
    return {
        "route": pair.route,
        "pkb_id": pair.pkb_id,
        "nhs_number": pair.nhs_number,
        "invitation_code": pair.invitation_code,
        "access_code": pair.access_code,
        "expiry": iso_utc(pair.expiry),
        "issued_at": iso_utc(pair.issued_at),
    }


def new_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(CODE_LENGTH))


class IssuedLog:
    """Every pair issued, in issue order; handler threads append concurrently."""

    def __init__(self, validity_days: int) -> None:
        self._validity = dt.timedelta(days=validity_days)
        self._pairs: list[IssuedPair] = []
        self._lock = threading.Lock()

    def issue(self, route: str, patient: Patient, id_value: str) -> IssuedPair:
        now = dt.datetime.now(dt.UTC)
        # Whole seconds, so the expiry a client parses equals the one logged here.
        expiry = now.replace(microsecond=0) + self._validity
        pair = IssuedPair(route, patient.id, id_value, new_code(), new_code(), expiry, now)
        with self._lock:
            self._pairs.append(pair)
        return pair

    def snapshot(self) -> list[IssuedPair]:
        with self._lock:
            return list(self._pairs)


# --- loading and validation ------------------------------------------------------------------


def load_sandbox_data(path: str | Path) -> SandboxData:
    """Read and validate a sandbox JSON file; ValueError names the file and the bad field."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read sandbox data: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    try:
        return parse_sandbox_data(raw)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def parse_sandbox_data(raw: Any) -> SandboxData:
    root = _object(raw, "top level")
    organisation = _parse_organisation(root.get("organisation"))
    clients = _parse_clients(root.get("clients"))
    patients = _parse_patients(root.get("patients"))
    _check_unique_ids(patients)
    return SandboxData(
        organisation=organisation,
        clients=clients,
        patients=patients,
        token_ttl=_positive_int(root, "token_ttl", DEFAULT_TOKEN_TTL),
        token_validity_days=_positive_int(root, "token_validity_days", DEFAULT_TOKEN_VALIDITY_DAYS),
    )


def _parse_organisation(raw: Any) -> Organisation:
    org = _object(raw, "organisation")
    org_id = _string(org, "id", "organisation")
    try:
        uuid.UUID(org_id)
    except ValueError:
        raise ValueError(f"organisation.id: not a UUID: {org_id!r}") from None
    return Organisation(id=org_id, name=_string(org, "name", "organisation"))


def _parse_clients(raw: Any) -> tuple[Client, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("clients: must be a non-empty list")
    clients = []
    for i, item in enumerate(raw):
        where = f"clients[{i}]"
        obj = _object(item, where)
        clients.append(Client(_string(obj, "client_id", where), _string(obj, "client_secret", where)))
    return tuple(clients)


def _parse_patients(raw: Any) -> tuple[Patient, ...]:
    if not isinstance(raw, list):
        raise ValueError("patients: must be a list")
    return tuple(_parse_patient(item, f"patients[{i}]") for i, item in enumerate(raw))


def _parse_patient(raw: Any, where: str) -> Patient:
    obj = _object(raw, where)
    registered = obj.get("registered", False)
    if not isinstance(registered, bool):
        raise ValueError(f"{where}.registered: must be true or false")
    return Patient(
        id=_string(obj, "id", where),
        first_name=_string(obj, "firstName", where),
        last_name=_string(obj, "lastName", where),
        dob=_optional_date(obj, "dob", where),
        date_deceased=_optional_date(obj, "dateDeceased", where),
        postal_code=_optional_string(obj, "postalCode", where),
        registered=registered,
        organisations=_organisations(obj.get("organisations"), where),
        national_ids=_national_ids(obj.get("nationalIds"), where),
    )


def _organisations(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(o, str) and o for o in raw):
        raise ValueError(f"{where}.organisations: must be a list of organisation ids")
    return tuple(raw)


def _national_ids(raw: Any, where: str) -> tuple[NationalId, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}.nationalIds: must be a non-empty list")
    ids = []
    for i, item in enumerate(raw):
        here = f"{where}.nationalIds[{i}]"
        obj = _object(item, here)
        id_type = _string(obj, "type", here)
        if id_type not in NATIONAL_ID_TYPES:
            raise ValueError(f"{here}.type: {id_type!r} is not one of {NATIONAL_ID_TYPES}")
        ids.append(NationalId(id_type, _string(obj, "value", here)))
    return tuple(ids)


def _check_unique_ids(patients: tuple[Patient, ...]) -> None:
    seen_pkb: set[str] = set()
    seen_nid: set[NationalId] = set()
    for i, patient in enumerate(patients):
        if patient.id in seen_pkb:
            raise ValueError(f"patients[{i}].id: duplicate PKB id {patient.id!r}")
        seen_pkb.add(patient.id)
        for nid in patient.national_ids:
            if nid in seen_nid:
                raise ValueError(f"patients[{i}]: duplicate {nid.type} {nid.value!r}")
            seen_nid.add(nid)


def _object(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: must be a JSON object")
    return raw


def _string(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}.{key}: must be a non-empty string")
    return value


def _optional_string(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where}.{key}: must be a string or null")
    return value


def _optional_date(obj: dict[str, Any], key: str, where: str) -> dt.date | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError(f"{where}.{key}: must be a YYYY-MM-DD string or null, not {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{where}.{key}: not a YYYY-MM-DD date: {value!r}") from None


def _positive_int(obj: dict[str, Any], key: str, default: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{key}: must be a positive whole number")
    return value
