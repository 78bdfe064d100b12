"""A loopback HTTP server that behaves like the PKB APIs the letter pipeline calls.

Takes a `SandboxData` and gives `SandboxServer`: OAuth client credentials at `/oauth/token`,
the REST route under `/json`, the FHIR operations under `/fhir`, and `/_sandbox/issued` (the
issued-code log as JSON, for tests that run the sandbox in another process). Every code pair it
hands out is recorded, so tests can check that what was printed is exactly what was issued.

It never writes request lines to stderr: paths carry NHS numbers and answers carry codes.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
import secrets
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

from pkb_letters.sandbox import _fhir as fhir
from pkb_letters.sandbox._data import (
    NATIONAL_ID_TYPES,
    NOT_FOUND,
    IssuedLog,
    IssuedPair,
    Patient,
    SandboxData,
    ineligibility,
    issued_pair_json,
    load_sandbox_data,
)
from pkb_letters.sandbox._faults import FaultInjector, Faults, Request, RequestStats

JSON = "application/json;charset=UTF-8"
FHIR_JSON = "application/fhir+json;charset=UTF-8"
_FHIR_REQUEST_TYPES = {"application/fhir+json", "application/json", "application/json+fhir"}
MAX_BODY_BYTES = 16 * 1024 * 1024
# Idle keep-alive connections are dropped after this many seconds.
CONNECTION_TIMEOUT = 30
# How often serve_forever looks for a shutdown request: close() waits up to this long.
_POLL_SECONDS = 0.05

_NATIONAL_ID_NAMES = {
    "NHS_NUMBER": "NHS number",
    "CHI_NUMBER": "CHI number",
    "H_AND_C_NUMBER": "H&C number",
}


# --- responses -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Response:
    status: int
    payload: Any
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False


class _Abort(Exception):
    """Stops a request with the given response."""

    def __init__(self, response: _Response) -> None:
        super().__init__(response.status)
        self.response = response


def _json_error(status: int, error: str, description: str | None = None, **kw: Any) -> _Abort:
    """An error in PKB's Spring OAuth style: {"error": ..., "error_description": ...}."""
    payload = {"error": error}
    if description is not None:
        payload["error_description"] = description
    return _Abort(_Response(status, payload, **kw))


def _fhir_error(status: int, code: str, diagnostics: str) -> _Abort:
    return _Abort(_Response(status, fhir.operation_outcome(code, diagnostics), FHIR_JSON))


# --- OAuth access tokens ---------------------------------------------------------------------


class _TokenStore:
    """Bearer tokens and when they expire (monotonic clock), shared by handler threads."""

    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self._expires: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self) -> str:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            # Dropping dead tokens here keeps a long demo run from growing without bound.
            self._expires = {t: e for t, e in self._expires.items() if e > now}
            self._expires[token] = now + self.ttl
        return token

    def problem(self, token: str) -> str | None:
        """Why this token is not accepted, or None when it is."""
        with self._lock:
            expires = self._expires.get(token)
        if expires is None:
            return "Invalid access token"
        if expires <= time.monotonic():
            return "Access token expired"
        return None


# --- routing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: tuple[str, ...]  # "{name}" segments capture
    action: str  # name of the _Handler method that answers


_ROUTES = (
    _Route("POST", ("oauth", "token"), "api_token"),
    _Route("GET", ("json", "v2-beta", "users", "byNationalId", "{id_value}", "{id_type}"), "api_by_national_id"),
    _Route("GET", ("json", "v1", "users", "{pkb_id}", "recordAccessToken"), "api_record_access_token"),
    _Route("POST", ("fhir", "Patient", "$status-query"), "api_status_query"),
    _Route("POST", ("fhir", "Organization", "$generate-invitation-tokens"), "api_generate_tokens"),
    _Route("GET", ("_sandbox", "issued"), "api_issued_log"),
)


def _match(pattern: tuple[str, ...], segments: list[str]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    captured = {}
    for want, got in zip(pattern, segments, strict=False):
        if want.startswith("{"):
            captured[want[1:-1]] = got
        elif want != got:
            return None
    return captured


def _path_segments(target: str) -> list[str]:
    path = urllib.parse.urlsplit(target).path
    return [urllib.parse.unquote(s) for s in path.strip("/").split("/")]


def _find_route(method: str, target: str) -> tuple[_Route, dict[str, str]]:
    segments = _path_segments(target)
    allowed = []
    for route in _ROUTES:
        captured = _match(route.pattern, segments)
        if captured is None:
            continue
        if route.method == method:
            return route, captured
        allowed.append(route.method)
    if allowed:
        raise _json_error(
            405, "method_not_allowed", f"Use {', '.join(allowed)}", headers=(("Allow", ", ".join(allowed)),)
        )
    raise _json_error(404, "not_found", "No such endpoint")


# --- request handler -------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PKBSandbox/1.0"
    timeout = CONNECTION_TIMEOUT
    # Headers and body go out in two writes; with Nagle on, each answer waits ~40 ms for an ACK.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silent on purpose: request lines carry NHS numbers, answers carry codes."""

    def _dispatch(self) -> None:
        faulty = worked = False
        try:
            self._body = self._read_body()
            route, params = _find_route(self.command, self.path)
            faulty = route.action != "api_issued_log"
            if faulty:
                self._sandbox.stats.enter(route.action)
                try:
                    self._refuse_by_fault()
                    response = getattr(self, route.action)(**params)
                    worked = True
                finally:
                    self._sandbox.stats.leave()
            else:
                response = getattr(self, route.action)(**params)
        except _Abort as abort:
            response = abort.response
        except Exception:
            self._send(_Response(500, {"error": "server_error"}, close=True))
            raise  # handle_error reports it without the message
        if faulty and worked and self._sandbox.faults.drop_after_work(self._request(), route.action):
            self.close_connection = True  # the work is done, the answer is lost: the nastiest case
            return
        self._send(response)

    def _refuse_by_fault(self) -> None:
        refusal = self._sandbox.faults.before(self._request())
        if refusal is None:
            return
        if refusal.status == 429:
            raise _json_error(
                429, "too_many_requests", "Rate limit exceeded", headers=(("Retry-After", str(refusal.retry_after)),)
            )
        raise _json_error(refusal.status, "server_error" if refusal.status == 500 else "unavailable", "Injected fault")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    @property
    def _sandbox(self) -> SandboxServer:
        return self.server.sandbox

    # -- plumbing --

    def _request(self) -> Request:
        return self.command, self.path, self._body

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise _json_error(411, "invalid_request", "Send a Content-Length", close=True)
        raw_length = self.headers.get("Content-Length", "0")
        try:
            length = int(raw_length)
        except ValueError:
            raise _json_error(400, "invalid_request", "Bad Content-Length", close=True) from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise _json_error(413, "invalid_request", "Body too large", close=True)
        body = self.rfile.read(length)
        if len(body) != length:
            raise _json_error(400, "invalid_request", "Body shorter than Content-Length", close=True)
        return body

    def _send(self, response: _Response) -> None:
        body = json.dumps(response.payload, ensure_ascii=False).encode("utf-8")
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(body)))
        # Answers carry credentials to health records: nothing may cache them.
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        for name, value in response.headers:
            self.send_header(name, value)
        if response.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _require_bearer(self) -> None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        problem: str | None
        if scheme.lower() != "bearer" or not token.strip():
            problem = "Full authentication is required to access this resource"
        else:
            problem = self._sandbox.tokens.problem(token.strip())
        if problem is not None:
            raise _json_error(
                401, "invalid_token", problem, headers=(("WWW-Authenticate", 'Bearer error="invalid_token"'),)
            )

    # -- POST /oauth/token --

    def api_token(self) -> _Response:
        form = urllib.parse.parse_qs(self._body.decode("utf-8", "replace"), keep_blank_values=True)
        client_id, secret = self._client_credentials(form)
        if not self._sandbox.client_is_valid(client_id, secret):
            raise _json_error(
                401, "unauthorized", "Bad credentials", headers=(("WWW-Authenticate", 'Basic realm="oauth2/client"'),)
            )
        grant_type = form.get("grant_type", [""])[0]
        if not grant_type:
            raise _json_error(400, "invalid_request", "Missing grant type")
        if grant_type != "client_credentials":
            raise _json_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")
        tokens = self._sandbox.tokens
        payload = {
            "access_token": tokens.issue(),
            "token_type": "bearer",
            "expires_in": tokens.ttl,
            "scope": "none",
            "jti": str(uuid.uuid4()),
        }
        return _Response(200, payload)

    def _client_credentials(self, form: dict[str, list[str]]) -> tuple[str, str]:
        scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return "", ""
            client_id, _, secret = decoded.partition(":")
            return client_id, secret
        return form.get("client_id", [""])[0], form.get("client_secret", [""])[0]

    # -- REST route --

    def api_by_national_id(self, id_value: str, id_type: str) -> _Response:
        self._require_bearer()
        if id_type not in NATIONAL_ID_TYPES:
            raise _json_error(400, "invalid_request", f"Unknown national id type {id_type!r}")
        denied = dict(self._sandbox.faults.faults.deny_lookup).get(id_value)
        if denied is not None:  # no error body is documented: this one is Spring's, like the token endpoint's
            raise _json_error(denied, "unauthorized" if denied == 401 else "access_denied", "Access is denied")
        patient = self._sandbox.data.find_by_national_id(id_type, id_value)
        if patient is None:
            raise _json_error(404, "not_found", "No user with that national id")
        return _Response(200, _user_json(patient))

    def api_record_access_token(self, pkb_id: str) -> _Response:
        self._require_bearer()
        data = self._sandbox.data
        patient = data.find_by_pkb_id(pkb_id)
        if patient is None:
            raise _json_error(404, "not_found", "No user with that id")
        if not data.can_access(patient):
            raise _json_error(401, "unauthorized", "Record created by another organisation")
        pair = self._sandbox.log.issue("rest", patient, patient.primary_id_value)
        return _Response(200, {"invitationCode": pair.invitation_code, "token": pair.access_code})

    # -- FHIR route --

    def api_status_query(self) -> _Response:
        idents = self._fhir_identifiers(fhir.STATUS_QUERY_LIMIT)
        self._fail_on_poisoned(idents)
        return _fhir_ok([self._status_of(ident) for ident in idents])

    def api_generate_tokens(self) -> _Response:
        idents = self._fhir_identifiers(fhir.TOKENS_LIMIT)
        self._fail_on_poisoned(idents)
        today = self._sandbox.today()
        answers = (self._tokens_for(ident, today) for ident in idents)
        return _fhir_ok([answer for answer in answers if answer is not None])

    def _fail_on_poisoned(self, idents: list[fhir.RequestedIdentifier]) -> None:
        poisoned = self._sandbox.faults.faults.fail_on
        if poisoned and any(ident.value in poisoned for ident in idents):
            raise _json_error(500, "server_error", "Injected fault: an identifier in this batch breaks the server")

    def _status_of(self, ident: fhir.RequestedIdentifier) -> dict[str, Any]:
        data = self._sandbox.data
        patient = data.find_by_national_id(ident.id_type, ident.value)
        if patient is None:
            return fhir.patient_status_not_found(ident)
        if not data.can_access(patient):
            return fhir.patient_status_no_access(ident, patient)
        return fhir.patient_status_found(ident, patient)

    def _tokens_for(self, ident: fhir.RequestedIdentifier, today: dt.date) -> dict[str, Any] | None:
        """A `patientTokens`, or None: PKB refuses by leaving the patient out of the answer."""
        data, faults = self._sandbox.data, self._sandbox.faults.faults
        patient = data.find_by_national_id(ident.id_type, ident.value)
        refusal = ineligibility(data, patient, today)
        if refusal is not None or patient is None:
            return fhir.patient_tokens_refused(ident, refusal or NOT_FOUND) if faults.refusal_diagnostics else None
        pair = self._sandbox.log.issue("fhir", patient, ident.value)
        return fhir.patient_tokens_issued(ident, pair, faults.expiry_key, faults.expiry_text)

    def _fhir_identifiers(self, limit: int) -> list[fhir.RequestedIdentifier]:
        self._require_bearer()
        self._require_org_header()
        media_type = self.headers.get("Content-Type", "").partition(";")[0].strip().lower()
        if media_type and media_type not in _FHIR_REQUEST_TYPES:
            raise _fhir_error(415, "not-supported", f"Content-Type {media_type!r}: send application/fhir+json")
        try:
            return fhir.parse_identifiers(self._body, limit)
        except fhir.FhirRequestError as exc:
            raise _Abort(_Response(exc.status, exc.outcome(), FHIR_JSON)) from None

    def _require_org_header(self) -> None:
        org = self.headers.get("X-Org-Public-Id")
        if org is None or not org.strip():
            raise _fhir_error(400, "required", "Missing X-Org-Public-Id header")
        if org.strip().lower() != self._sandbox.org_id.lower():
            raise _fhir_error(403, "forbidden", "X-Org-Public-Id is not this client's organisation")

    # -- sandbox only --

    def api_issued_log(self) -> _Response:
        return _Response(200, [issued_pair_json(p) for p in self._sandbox.issued()])


def _fhir_ok(params: list[dict[str, Any]]) -> _Response:
    return _Response(200, fhir.parameters(params), FHIR_JSON)


def _user_json(patient: Patient) -> dict[str, Any]:
    return {
        "id": patient.id,
        "firstName": patient.first_name,
        "lastName": patient.last_name,
        "dob": patient.dob.isoformat() if patient.dob else None,
        "dateDeceased": patient.date_deceased.isoformat() if patient.date_deceased else None,
        "postalCode": patient.postal_code,
        "nationalIds": [
            {"value": n.value, "name": _NATIONAL_ID_NAMES[n.type], "countryCodes": ["GB"]} for n in patient.national_ids
        ],
    }


# --- the server ------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    """Tracks open connections so close() can end idle keep-alive ones instead of waiting."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def end_open_connections(self) -> None:
        with self._open_lock:
            open_now = list(self._open)
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            return  # the client went away or refused our certificate; nothing to report
        # Type and place only: an exception message could quote patient data.
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc else None
        place = f" at {where.filename}:{where.lineno}" if where else ""
        print(f"PKB sandbox: internal error {type(exc).__name__}{place}", file=sys.stderr)


class SandboxServer:
    """A PKB stand-in on a real socket. Use as a context manager, or start() and close()."""

    def __init__(
        self,
        data: SandboxData,
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl: int | None = None,
        today: dt.date | None = None,
        faults: Faults | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.data = data
        self.faults = FaultInjector(faults or Faults())
        self.stats = RequestStats()
        self.tokens = _TokenStore(token_ttl if token_ttl is not None else data.token_ttl)
        self.log = IssuedLog(data.token_validity_days)
        self._today = today
        self._httpd = _HTTPServer((host, port), self)
        scheme = "http"
        if ssl_context is not None:  # HTTPS, for tests of the client's certificate checks
            # The handshake happens on the first read, in the request's own thread, so a
            # client that refuses our certificate cannot hold up the accepting thread.
            self._httpd.socket = ssl_context.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
            scheme = "https"
        # cast: typeshed allows a bytes host for any AF_INET server; one bound to a str host reports a str
        bound_host, bound_port = cast(tuple[str, int], self._httpd.server_address[:2])
        self.url = f"{scheme}://{bound_host}:{bound_port}"
        self.token_url = self.url + "/oauth/token"
        self.rest_base = self.url + "/json"
        self.fhir_base = self.url + "/fhir"
        self.client_id = data.clients[0].client_id
        self.client_secret = data.clients[0].client_secret
        self.org_id = data.organisation.id
        self._thread: threading.Thread | None = None
        self._closed = False
        self._close_lock = threading.Lock()

    def start(self) -> SandboxServer:
        if self._closed:
            raise RuntimeError("SandboxServer is closed")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                args=(_POLL_SECONDS,),
                name="pkb-sandbox",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.end_open_connections()
        self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def today(self) -> dt.date:
        return self._today if self._today is not None else dt.date.today()

    def issued(self) -> list[IssuedPair]:
        return self.log.snapshot()

    def client_is_valid(self, client_id: str, secret: str) -> bool:
        # Check every client without stopping early, so timing says nothing about which matched.
        matches = [
            hmac.compare_digest(c.client_id.encode(), client_id.encode())
            & hmac.compare_digest(c.client_secret.encode(), secret.encode())
            for c in self.data.clients
        ]
        return any(matches)


def serve(
    data_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8700,
    token_ttl: int | None = None,
    faults: Faults | None = None,
) -> None:
    """Run a sandbox in the foreground until Ctrl-C."""
    data = load_sandbox_data(data_path)
    with SandboxServer(data, host=host, port=port, token_ttl=token_ttl, faults=faults) as server:
        print(
            f"PKB sandbox listening on {server.url} (client_id={server.client_id}, org_id={server.org_id})",
            flush=True,
        )
        if server.faults.faults.any:
            print(f"  injecting faults: {server.faults.faults}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
