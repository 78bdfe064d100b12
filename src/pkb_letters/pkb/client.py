"""The PKB API client: OAuth 2.0 client credentials, the REST and the FHIR routes.

Takes a `PkbConnection` (and optionally an httpx transport, for tests) and
gives plain records: user objects, `PatientStatus`, `PatientTokens`. It knows
the wire shapes; it decides nothing about eligibility (that is `resolve`).
httpx and authlib errors are translated here into `PkbApiError`/`PkbAuthError`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import authlib.deprecate  # noqa: F401  (its import adds an "always" filter; ours must come after it)
import httpx

from pkb_letters.config import PkbConnection
from pkb_letters.errors import PkbApiError, PkbAuthError, PkbOutcomeUnknown, PkbUnavailable
from pkb_letters.pkb.retry import RateLimit, Retries, RetryPolicy
from pkb_letters.pkb.tls import pkb_ssl_context
from pkb_letters.records import CodePair, HeldPair

with warnings.catch_warnings():
    # authlib ≥ 1.7 prefers the httpx2 fork and warns when it falls back to
    # httpx, which is the HTTP client this project chose; the API is the same.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
STATUS_QUERY_LIMIT = 5000
GENERATE_TOKENS_LIMIT = 500
FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class PatientStatus:
    """One `patientStatus` of a FHIR `$status-query` answer."""

    nhs_number: str
    deceased: bool | None
    registered: bool | None
    date_of_birth: dt.date | None
    diagnostics: str | None


@dataclass(frozen=True)
class PatientTokens:
    """One `patientTokens` of a FHIR `$generate-invitation-tokens` answer: a pair with a readable
    expiry (`CodePair`), a pair whose expiry could not be read (`HeldPair`, still a live credential),
    or neither (only with the `diagnostics` part PKB does not document)."""

    nhs_number: str
    codes: CodePair | HeldPair | None
    diagnostics: str | None


# The expiry part's value keys we read. PKB's operation definition says DateTime (`valueDateTime`);
# PKB's own example answer ("Generate invitation tokens" examples page) writes `valueDatetime`.
EXPIRY_KEYS = ("valueDateTime", "valueDatetime", "valueInstant")
_BARE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class RecordAccessDenied(PkbApiError):
    """PKB refused codes for a record (created by another organisation)."""


@dataclass(frozen=True)
class UserDenied:
    """`byNationalId` answered 401 with a fresh access token, or 403: PKB will not show us this patient."""

    status: int


class PkbClient:
    """One authenticated session with PKB. Use as a context manager."""

    def __init__(
        self,
        connection: PkbConnection,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        requests_per_second: float | None = None,
        max_connections: int = 10,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.connection = connection
        self.retries = Retries(retry or RetryPolicy())
        self._rate_limit = RateLimit(requests_per_second)
        self._token_lock = threading.Lock()
        self._http = OAuth2Client(
            client_id=connection.client_id,
            client_secret=connection.client_secret,
            token_endpoint=connection.token_url,
            token_endpoint_auth_method="client_secret_basic",
            grant_type="client_credentials",
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            verify=pkb_ssl_context(connection.ca_bundle),  # always verifying; see pkb/tls.py
        )

    def __enter__(self) -> PkbClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- REST -------------------------------------------------------------
    def user_by_nhs_number(self, nhs_number: str) -> dict[str, Any] | UserDenied | None:
        """The PKB user object, None when PKB does not know the NHS number, or `UserDenied`.

        A 401 here comes after `_call_once` fetched a new access token and asked again, so the token
        itself is good (a token PKB refuses fails in `_fetch_token` as `PkbAuthError`): the refusal is
        about this patient's record. 403 is the same. The caller stops the job when every patient is
        refused, which is what a client without permission for this API looks like.
        """
        url = f"{self.connection.rest_base}/v2-beta/users/byNationalId/{nhs_number}/NHS_NUMBER"
        response = self._call("GET", url, what="byNationalId")
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            return UserDenied(response.status_code)
        return _json(_ok(response, "byNationalId"), "byNationalId")

    def record_access_token(self, pkb_id: str) -> tuple[str, str]:
        """A NEW (invitation code, access code) pair: every call creates a live credential."""
        url = f"{self.connection.rest_base}/v1/users/{pkb_id}/recordAccessToken"
        response = self._call("GET", url, what="recordAccessToken", creates_codes=True)
        if response.status_code == 401:
            raise RecordAccessDenied(f"PKB refused codes for PKB user {pkb_id} (401)")
        body = _json(_ok(response, "recordAccessToken"), "recordAccessToken")
        try:
            return str(body["invitationCode"]), str(body["token"])
        except (KeyError, TypeError) as exc:
            raise PkbApiError("recordAccessToken answer has no invitationCode/token") from exc

    # -- FHIR -------------------------------------------------------------
    def status_query(self, nhs_numbers: Sequence[str]) -> list[PatientStatus]:
        _check_batch(nhs_numbers, STATUS_QUERY_LIMIT, "$status-query")
        body = self._fhir("Patient/$status-query", nhs_numbers)
        return [_patient_status(parts) for parts in _parameters(body, "patientStatus")]

    def generate_invitation_tokens(self, nhs_numbers: Sequence[str]) -> list[PatientTokens]:
        _check_batch(nhs_numbers, GENERATE_TOKENS_LIMIT, "$generate-invitation-tokens")
        body = self._fhir("Organization/$generate-invitation-tokens", nhs_numbers, creates_codes=True)
        return [_patient_tokens(parts) for parts in _parameters(body, "patientTokens")]

    def _fhir(self, operation: str, nhs_numbers: Sequence[str], creates_codes: bool = False) -> dict[str, Any]:
        request = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "patientIdentifier", "valueIdentifier": {"system": NHS_NUMBER_SYSTEM, "value": n}}
                for n in nhs_numbers
            ],
        }
        headers = {
            "X-Org-Public-Id": self.connection.org_id,
            "Content-Type": FHIR_JSON,
            "Accept": FHIR_JSON,
        }
        url = f"{self.connection.fhir_base}/{operation}"
        response = self._call("POST", url, what=operation, creates_codes=creates_codes, json=request, headers=headers)
        return _json(_ok(response, operation), operation)

    # -- transport --------------------------------------------------------
    def _call(self, method: str, url: str, *, what: str, creates_codes: bool = False, **kwargs: Any) -> httpx.Response:
        """Send with retries (see `Retries`); a request that creates codes is never resent blindly."""
        for attempt in self.retries.attempts():
            with attempt:
                return self._call_once(method, url, what, creates_codes, **kwargs)
        raise AssertionError("unreachable: Retries re-raises the last error")

    def _call_once(self, method: str, url: str, what: str, creates_codes: bool, **kwargs: Any) -> httpx.Response:
        """One request with a valid access token; on a 401, fetch a new token and try once more."""
        response = self._send(method, url, what, creates_codes, **kwargs)
        if response.status_code == 401:
            self._fetch_token()
            response = self._send(method, url, what, creates_codes, **kwargs)
        return response

    def _send(self, method: str, url: str, what: str, creates_codes: bool, **kwargs: Any) -> httpx.Response:
        if not self._http.token:
            self._fetch_token()
        self._rate_limit.wait()
        try:
            response = self._http.request(method, url, **kwargs)
        except OAuthError as exc:
            raise _auth_error(self.connection, exc) from exc
        except httpx.HTTPError as exc:
            raise _network_error(what, exc, creates_codes) from exc
        return _raise_for_transient(response, what, creates_codes)

    def _fetch_token(self) -> None:
        with self._token_lock:
            for attempt in self.retries.attempts():
                with attempt:
                    self._fetch_token_once()

    def _fetch_token_once(self) -> None:
        self._rate_limit.wait()
        try:
            self._http.fetch_token(grant_type="client_credentials")
        except OAuthError as exc:
            raise _auth_error(self.connection, exc) from exc
        except httpx.HTTPError as exc:
            raise _network_error(f"token endpoint {self.connection.token_url}", exc, creates_codes=False) from exc


# A request that never reached PKB, or that PKB refused before doing anything, is safe to
# resend even when it creates codes. Anything else may have been carried out.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_NOT_PROCESSED_STATUSES = {429, 503}
_TRANSIENT_STATUSES = {429, 502, 503, 504}


def _network_error(what: str, exc: httpx.HTTPError, creates_codes: bool) -> PkbApiError:
    message = f"PKB {what}: {type(exc).__name__}: {exc or 'connection failed'}"
    if _tls_hint(exc):  # an untrusted certificate will not become trusted by trying again
        return PkbApiError(message + _tls_hint(exc))
    if isinstance(exc, _NOT_SENT):
        return PkbUnavailable(message, processed=False)
    if isinstance(exc, httpx.HTTPStatusError):  # authlib raises these for the token endpoint
        status = exc.response.status_code
        if status in _TRANSIENT_STATUSES:
            return PkbUnavailable(
                f"PKB {what}: HTTP {status}", status, retry_after=_retry_after(exc.response), processed=None
            )
        return PkbApiError(f"PKB {what}: HTTP {status}", status)
    if isinstance(exc, httpx.TransportError):
        if creates_codes:
            return PkbOutcomeUnknown(message + " (PKB may have issued codes that never arrived)")
        return PkbUnavailable(message, processed=None)
    return PkbApiError(message)


def _raise_for_transient(response: httpx.Response, what: str, creates_codes: bool) -> httpx.Response:
    """Raise for answers worth another try; others (a plain 500 too) are left to `_ok` and the stage."""
    status = response.status_code
    if status < 500 and status != 429:
        return response
    message = f"PKB {what}: HTTP {status}"
    processed = False if status in _NOT_PROCESSED_STATUSES else None
    if creates_codes and processed is None:
        raise PkbOutcomeUnknown(message + " (PKB may have issued codes that never arrived)", status)
    if status in _TRANSIENT_STATUSES:
        raise PkbUnavailable(message, status, retry_after=_retry_after(response), processed=processed)
    return response


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _tls_hint(exc: httpx.HTTPError) -> str:
    if "CERTIFICATE_VERIFY_FAILED" not in str(exc):
        return ""
    return " (PKB's TLS certificate was not trusted; for a private CA set PKB_CA_BUNDLE or [pkb] ca_bundle)"


def _auth_error(connection: PkbConnection, exc: OAuthError) -> PkbAuthError:
    return PkbAuthError(
        f"PKB refused the client credentials for client_id {connection.client_id!r} at "
        f"{connection.token_url} ({exc.error}); check PKB_CLIENT_ID and the client secret"
    )


def _check_batch(nhs_numbers: Sequence[str], limit: int, operation: str) -> None:
    if not 1 <= len(nhs_numbers) <= limit:
        raise ValueError(f"{operation} takes 1..{limit} identifiers, not {len(nhs_numbers)}")


def _ok(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code == 401:
        raise PkbAuthError(f"PKB {what}: access token refused twice (401); check the client's permissions")
    if response.is_error:
        raise PkbApiError(f"PKB {what}: HTTP {response.status_code}: {_error_summary(response)}", response.status_code)
    return response


def _error_summary(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if body.get("resourceType") == "OperationOutcome":
        return "; ".join(issue.get("diagnostics", "?") for issue in body.get("issue", []))
    return str(body.get("error_description") or body.get("error") or body)[:200]


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise PkbApiError(f"PKB {what}: answer is not JSON") from exc
    if not isinstance(body, dict):
        raise PkbApiError(f"PKB {what}: answer is not a JSON object")
    return body


def _parameters(body: dict[str, Any], name: str) -> list[dict[str, dict[str, Any]]]:
    """Each `name` parameter's parts, keyed by part name."""
    if body.get("resourceType") != "Parameters":
        raise PkbApiError(f"PKB answered {body.get('resourceType')!r}, expected Parameters")
    return [
        {part["name"]: part for part in parameter.get("part", [])}
        for parameter in body.get("parameter", [])
        if parameter.get("name") == name
    ]


def _identifier(parts: dict[str, dict[str, Any]]) -> str:
    try:
        return str(parts["patientIdentifier"]["valueIdentifier"]["value"])
    except KeyError as exc:
        raise PkbApiError("PKB answer part has no patientIdentifier") from exc


def _patient_status(parts: dict[str, dict[str, Any]]) -> PatientStatus:
    dob = parts.get("dateOfBirth", {}).get("valueDate")
    return PatientStatus(
        nhs_number=_identifier(parts),
        deceased=parts.get("deceased", {}).get("valueBoolean"),
        registered=parts.get("registered", {}).get("valueBoolean"),
        date_of_birth=dt.date.fromisoformat(dob) if dob else None,
        diagnostics=parts.get("diagnostics", {}).get("valueString"),
    )


def _patient_tokens(parts: dict[str, dict[str, Any]]) -> PatientTokens:
    """Never raises once a code and token are in hand: a pair PKB issued must reach the journal."""
    diagnostics = parts.get("diagnostics", {}).get("valueString")
    code = parts.get("code", {}).get("valueString")
    token = parts.get("token", {}).get("valueString")
    codes: CodePair | HeldPair | None = None
    if code and token:
        expiry_part = parts.get("expiry")
        expires = expiry_from_part(expiry_part)
        if isinstance(expires, dt.date):
            codes = CodePair(str(code), str(token), expires)
        else:
            codes = HeldPair(str(code), str(token), json.dumps(expiry_part), expires)
    return PatientTokens(_identifier(parts), codes, diagnostics)


def expiry_from_part(part: Any) -> dt.date | str:
    """The expiry date from a `patientTokens` `expiry` part, or a sentence saying why it cannot be read."""
    if part is None:
        return "the answer has no 'expiry' part"
    if not isinstance(part, dict):
        return "the 'expiry' part is not a JSON object"
    key = next((k for k in EXPIRY_KEYS if k in part), None)
    if key is None:
        found = ", ".join(k for k in part if k != "name") or "nothing"
        return f"the 'expiry' part has no {', '.join(EXPIRY_KEYS[:-1])} or {EXPIRY_KEYS[-1]} (it has: {found})"
    try:
        return expiry_date(part[key])
    except (TypeError, ValueError):
        return f"the 'expiry' part's {key} is not a date and time PKB documents: {str(part[key])[:40]!r}"


def expiry_date(value: str) -> dt.date:
    """The UTC date of the expiry instant: never later than the UK date, so never overstated.

    FHIR allows a dateTime to be a bare date; a time without a time zone it does not allow, and
    such a value cannot be placed on a calendar safely, so it is refused."""
    if _BARE_DATE.fullmatch(value):
        return dt.date.fromisoformat(value)
    instant = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        raise ValueError("no time zone")
    return instant.astimezone(dt.UTC).date()
