"""The sandbox PKB server over real sockets, and the fixtures it serves."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from pkb_letters.sandbox import (
    Faults,
    IssuedPair,
    SandboxData,
    SandboxServer,
    load_sandbox_data,
    serve,
)

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_JSON = ROOT / "fixtures" / "sandbox.json"
PATIENTS_CSV = ROOT / "fixtures" / "patients.csv"

NHS = "https://fhir.nhs.uk/Id/nhs-number"
CHI = "urn:oid:2.16.840.1.113883.2.1.3.2.4.16.53"
H_AND_C = "urn:uuid:1479257a-ce8f-482a-89fa-429ac066c158"

ORG_ID = "a14acc9a-a14b-4fb8-8558-539d93a038d3"
READ_RICHARDS = "5760678914"
DECEASED = "9441358487"
REGISTERED = "9185261904"
NO_DOB = "7512418094"
UNDER_16 = "5275518900"
OTHER_ORG = "7611268783"
NOT_FOUND = "9842011097"
LEAP_DAY = "8428632200"  # Priya Raman, born 29 February 2004

ELIGIBLE = {
    "5760678914": "3594342",
    "7569602005": "3601187",
    "4309136753": "3610025",
    "7998803258": "3622419",
    "9434765919": "3630871",
    "8428632200": "3641256",
    "8371266197": "3655903",
    "7822798839": "3667318",
    "6123456709": "3611137",  # eligible on PKB; its name is too wide for the envelope window
}
# What $generate-invitation-tokens should say for every patients.csv row (None: tokens issued), in the
# opt-in `refusal_diagnostics` variant; by default (as PKB documents) a refused patient is left out.
INTENDED = {
    **{nhs: None for nhs in ELIGIBLE},
    DECEASED: "Deceased",
    REGISTERED: "Already registered",
    NO_DOB: "No date of birth",
    UNDER_16: "Under 16",
    OTHER_ORG: "No access",
    NOT_FOUND: "Not found",
}
CSV_HEADER = ("Title,First name,Last name,NHS number,DoB,Address1,Address2,Address3,City,"
              "County,Post code,Customer ref")
CODE = re.compile(r"[A-Za-z0-9]{10}")


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def data() -> SandboxData:
    return load_sandbox_data(SANDBOX_JSON)


@pytest.fixture
def server(data):
    with SandboxServer(data) as srv:
        yield srv


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as c:
        yield c


def get_token(client: httpx.Client, srv: SandboxServer) -> str:
    response = client.post(srv.token_url, data={"grant_type": "client_credentials"},
                           auth=(srv.client_id, srv.client_secret))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bearer(client: httpx.Client, srv: SandboxServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {get_token(client, srv)}"}


def fhir_headers(client: httpx.Client, srv: SandboxServer) -> dict[str, str]:
    return {**bearer(client, srv), "X-Org-Public-Id": srv.org_id,
            "Content-Type": "application/fhir+json"}


def identifiers(values, system: str = NHS) -> dict:
    return {"resourceType": "Parameters", "parameter": [
        {"name": "patientIdentifier", "valueIdentifier": {"system": system, "value": v}}
        for v in values]}


def post_fhir(client, srv, operation: str, body, headers=None) -> httpx.Response:
    payload = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(f"{srv.fhir_base}/{operation}", content=payload,
                       headers=headers if headers is not None else fhir_headers(client, srv))


STATUS_QUERY = "Patient/$status-query"
TOKENS = "Organization/$generate-invitation-tokens"


def parts(param: dict) -> dict:
    """One patientStatus/patientTokens entry as {part name: value}."""
    out = {}
    for part in param["part"]:
        value = [v for k, v in part.items() if k.startswith("value")]
        assert len(value) == 1, part
        out[part["name"]] = value[0]
    return out


def tokens_by_value(response: httpx.Response) -> dict[str, dict]:
    body = response.json()
    assert body["resourceType"] == "Parameters"
    return {parts(p)["patientIdentifier"]["value"]: parts(p) for p in body["parameter"]}


def check_digit_ok(number: str) -> bool:
    if not re.fullmatch(r"\d{10}", number):
        return False
    remainder = sum(int(d) * w for d, w in zip(number[:9], range(10, 1, -1), strict=True)) % 11
    check = 11 - remainder
    if check == 10:
        return False
    return (0 if check == 11 else check) == int(number[9])


def utc(text: str) -> dt.datetime:
    assert text.endswith("Z"), text
    return dt.datetime.fromisoformat(text[:-1] + "+00:00")


def assert_outcome(response: httpx.Response, status: int, code: str, mentions: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    [issue] = body["issue"]
    assert issue["severity"] == "error"
    assert issue["code"] == code
    assert mentions in issue["diagnostics"]


def read_csv_rows() -> list[dict[str, str]]:
    with PATIENTS_CSV.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# --- fixture files ---------------------------------------------------------------------------


def test_check_digit_helper_rejects_bad_numbers():
    assert check_digit_ok("9999999999") and check_digit_ok("9434765919")
    assert not check_digit_ok("5760678915")
    assert not check_digit_ok("576067891")


def test_every_fixture_national_id_passes_the_check_digit(data):
    numbers = [n.value for p in data.patients for n in p.national_ids]
    numbers += [row["NHS number"] for row in read_csv_rows()]
    assert len(numbers) > 20
    assert [n for n in numbers if not check_digit_ok(n)] == []
    nhs = [n.value for p in data.patients for n in p.national_ids if n.type == "NHS_NUMBER"]
    assert all(n[0] in "456789" for n in nhs)


def test_patients_csv_format():
    raw = PATIENTS_CSV.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert b"\r" not in raw
    text = raw.decode("utf-8")
    assert text.splitlines()[0] == CSV_HEADER
    rows = read_csv_rows()
    assert len(rows) == 15
    assert [r["Customer ref"] for r in rows] == [f"DEMO-{i:04d}" for i in range(1, 16)]
    for row in rows:
        assert row["DoB"] == "" or re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["DoB"]), row
        address = [row[k] for k in ("Address1", "Address2", "Address3", "City", "County",
                                    "Post code") if row[k].strip()]
        assert 3 <= len(address) <= 6, row
        assert re.fullmatch(r"[A-Z]{1,2}[0-9][0-9A-Z]? [0-9][A-Z]{2}", row["Post code"]), row
    assert {r["NHS number"] for r in rows} == set(INTENDED)
    assert any("ë" in r["First name"] and "'" in r["Last name"] for r in rows)
    assert max(len(r["First name"] + r["Last name"]) for r in rows) > 50


def test_csv_agrees_with_sandbox_records(data):
    for row in read_csv_rows():
        patient = data.find_by_national_id("NHS_NUMBER", row["NHS number"])
        if row["NHS number"] == NOT_FOUND:
            assert patient is None
            continue
        assert patient is not None, row
        assert (patient.first_name, patient.last_name) == (row["First name"], row["Last name"])
        assert patient.postal_code == row["Post code"]
        assert (patient.dob.isoformat() if patient.dob else "") == row["DoB"]


def test_every_csv_row_gets_its_intended_outcome(server, client, data):
    numbers = [row["NHS number"] for row in read_csv_rows()]
    answer = tokens_by_value(post_fhir(client, server, TOKENS, identifiers(numbers)))
    assert set(answer) == set(ELIGIBLE)  # "patientTokens will not be returned where patient is …"
    assert {p.nhs_number: p.pkb_id for p in server.issued()} == ELIGIBLE
    with SandboxServer(data, faults=Faults(refusal_diagnostics=True)) as variant:
        answer = tokens_by_value(post_fhir(client, variant, TOKENS, identifiers(numbers)))
    assert {n: answer[n].get("diagnostics") for n in numbers} == INTENDED


# --- loading sandbox data --------------------------------------------------------------------


def write_data(tmp_path: Path, mutate) -> Path:
    raw = json.loads(SANDBOX_JSON.read_text(encoding="utf-8"))
    mutate(raw)
    path = tmp_path / "sandbox.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: r.pop("organisation"), "organisation: must be a JSON object"),
    (lambda r: r["organisation"].update(id="not-a-uuid"), "organisation.id: not a UUID"),
    (lambda r: r.update(clients=[]), "clients: must be a non-empty list"),
    (lambda r: r["patients"][1].update(dob="15/09/2000"), "patients[1].dob"),
    (lambda r: r["patients"][2]["nationalIds"][0].update(type="PASSPORT"),
     "patients[2].nationalIds[0].type"),
    (lambda r: r["patients"][3]["nationalIds"][0].update(value="5760678914"),
     "duplicate NHS_NUMBER"),
    (lambda r: r["patients"][4].update(registered="no"), "patients[4].registered"),
    (lambda r: r.update(token_ttl=0), "token_ttl"),
])
def test_bad_sandbox_data_is_refused_with_a_clear_message(tmp_path, mutate, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_sandbox_data(write_data(tmp_path, mutate))


def test_unreadable_sandbox_data(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        load_sandbox_data(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_sandbox_data(bad)


def test_defaults_when_ttl_settings_absent(tmp_path):
    def drop(raw):
        del raw["token_ttl"], raw["token_validity_days"]
    loaded = load_sandbox_data(write_data(tmp_path, drop))
    assert (loaded.token_ttl, loaded.token_validity_days) == (600, 30)


# --- OAuth -----------------------------------------------------------------------------------


def test_token_with_basic_auth(server, client):
    response = client.post(server.token_url, data={"grant_type": "client_credentials"},
                           auth=(server.client_id, server.client_secret))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "jti"}
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("bearer", 600, "none")
    assert len(body["access_token"]) >= 20
    assert response.headers["cache-control"] == "no-store"


def test_token_with_form_credentials(server, client):
    response = client.post(server.token_url, data={
        "grant_type": "client_credentials", "client_id": server.client_id,
        "client_secret": server.client_secret})
    assert response.status_code == 200
    assert response.json()["access_token"]


@pytest.mark.parametrize("auth", [None, ("pkb-letters-demo", "wrong"), ("someone", "x")])
def test_token_bad_credentials(server, client, auth):
    response = client.post(server.token_url, data={"grant_type": "client_credentials"},
                           auth=auth)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized", "error_description": "Bad credentials"}


def test_token_wrong_grant_type(server, client):
    response = client.post(server.token_url, data={"grant_type": "password"},
                           auth=(server.client_id, server.client_secret))
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_token_ttl_setting_and_sandbox_data_default(data):
    with SandboxServer(data, token_ttl=42) as srv, httpx.Client() as c:
        response = c.post(srv.token_url, data={"grant_type": "client_credentials"},
                          auth=(srv.client_id, srv.client_secret))
        assert response.json()["expires_in"] == 42


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"},
                                     {"Authorization": "Basic abc"}])
def test_api_needs_a_bearer_token(server, client, headers):
    response = client.get(f"{server.rest_base}/v2-beta/users/byNationalId/"
                          f"{READ_RICHARDS}/NHS_NUMBER", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_fhir_needs_a_bearer_token(server, client):
    response = post_fhir(client, server, STATUS_QUERY, identifiers([READ_RICHARDS]),
                         headers={"X-Org-Public-Id": server.org_id})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_expired_token_is_refused(data):
    with SandboxServer(data, token_ttl=1) as srv, httpx.Client() as c:
        headers = bearer(c, srv)
        url = f"{srv.rest_base}/v2-beta/users/byNationalId/{READ_RICHARDS}/NHS_NUMBER"
        assert c.get(url, headers=headers).status_code == 200
        time.sleep(1.1)
        response = c.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": "invalid_token",
                                   "error_description": "Access token expired"}


# --- REST route ------------------------------------------------------------------------------


def test_by_national_id_found(server, client):
    response = client.get(f"{server.rest_base}/v2-beta/users/byNationalId/"
                          f"{READ_RICHARDS}/NHS_NUMBER", headers=bearer(client, server))
    assert response.status_code == 200
    assert response.json() == {
        "id": "3594342", "firstName": "Read", "lastName": "Richards", "dob": "2000-09-15",
        "dateDeceased": None, "postalCode": "NE1 7RU",
        "nationalIds": [{"value": "5760678914", "name": "NHS number", "countryCodes": ["GB"]}],
    }


@pytest.mark.parametrize(("number", "id_type", "pkb_id", "name"), [
    (OTHER_ORG, "NHS_NUMBER", "2210873", "NHS number"),
    (DECEASED, "NHS_NUMBER", "3670044", "NHS number"),
    ("1503858677", "CHI_NUMBER", "3715520", "CHI number"),
    ("3572689430", "H_AND_C_NUMBER", "3726689", "H&C number"),
])
def test_by_national_id_other_types_and_orgs(server, client, number, id_type, pkb_id, name):
    response = client.get(f"{server.rest_base}/v2-beta/users/byNationalId/{number}/{id_type}",
                          headers=bearer(client, server))
    assert response.status_code == 200
    user = response.json()
    assert user["id"] == pkb_id
    assert user["nationalIds"][0]["name"] == name


def test_by_national_id_deceased_shows_date(server, client):
    response = client.get(f"{server.rest_base}/v2-beta/users/byNationalId/{DECEASED}/NHS_NUMBER",
                          headers=bearer(client, server))
    assert response.json()["dateDeceased"] == "2024-11-03"


@pytest.mark.parametrize(("number", "id_type"), [
    (NOT_FOUND, "NHS_NUMBER"),
    (READ_RICHARDS, "CHI_NUMBER"),  # right number, wrong kind of id
])
def test_by_national_id_not_found(server, client, number, id_type):
    response = client.get(f"{server.rest_base}/v2-beta/users/byNationalId/{number}/{id_type}",
                          headers=bearer(client, server))
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_by_national_id_unknown_type(server, client):
    response = client.get(f"{server.rest_base}/v2-beta/users/byNationalId/{READ_RICHARDS}/SSN",
                          headers=bearer(client, server))
    assert response.status_code == 400


def test_record_access_token_gives_a_new_pair_each_call(server, client):
    headers = bearer(client, server)
    url = f"{server.rest_base}/v1/users/3594342/recordAccessToken"
    before = dt.datetime.now(dt.UTC)
    first, second = (client.get(url, headers=headers) for _ in range(2))
    after = dt.datetime.now(dt.UTC)
    pairs = [(r.json()["invitationCode"], r.json()["token"]) for r in (first, second)]
    assert [r.status_code for r in (first, second)] == [200, 200]
    assert set(first.json()) == {"invitationCode", "token"}
    assert all(CODE.fullmatch(code) for pair in pairs for code in pair)
    assert pairs[0] != pairs[1]
    issued = server.issued()
    assert [(p.invitation_code, p.access_code) for p in issued] == pairs
    for pair in issued:
        assert (pair.route, pair.pkb_id, pair.nhs_number) == ("rest", "3594342", READ_RICHARDS)
        assert before.replace(microsecond=0) + dt.timedelta(days=30) <= pair.expiry
        assert pair.expiry <= after + dt.timedelta(days=30)
        assert before <= pair.issued_at <= after


def test_record_access_token_other_organisation(server, client):
    response = client.get(f"{server.rest_base}/v1/users/2210873/recordAccessToken",
                          headers=bearer(client, server))
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized",
                               "error_description": "Record created by another organisation"}
    assert server.issued() == []


def test_record_access_token_unknown_patient(server, client):
    response = client.get(f"{server.rest_base}/v1/users/999/recordAccessToken",
                          headers=bearer(client, server))
    assert response.status_code == 404
    assert server.issued() == []


def test_record_access_token_ignores_eligibility(server, client):
    """Like the real REST API: the client, not PKB, must decide who gets a letter."""
    response = client.get(f"{server.rest_base}/v1/users/3670044/recordAccessToken",
                          headers=bearer(client, server))
    assert response.status_code == 200
    assert [p.nhs_number for p in server.issued()] == [DECEASED]


def test_concurrent_issues_are_all_logged(server, client):
    headers = bearer(client, server)
    url = f"{server.rest_base}/v1/users/3601187/recordAccessToken"
    received: list[tuple[str, str]] = []
    lock = threading.Lock()

    def fetch() -> None:
        with httpx.Client(timeout=10) as c:
            for _ in range(5):
                body = c.get(url, headers=headers).json()
                with lock:
                    received.append((body["invitationCode"], body["token"]))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logged = [(p.invitation_code, p.access_code) for p in server.issued()]
    assert len(received) == len(logged) == 40
    assert sorted(received) == sorted(logged)
    assert len(set(logged)) == 40


# --- FHIR $status-query ----------------------------------------------------------------------


def test_status_query_every_case(server, client):
    numbers = [READ_RICHARDS, DECEASED, REGISTERED, NO_DOB, UNDER_16, OTHER_ORG, NOT_FOUND]
    response = post_fhir(client, server, STATUS_QUERY, identifiers(numbers))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert [p["name"] for p in body["parameter"]] == ["patientStatus"] * len(numbers)
    got = [parts(p) for p in body["parameter"]]
    assert [g["patientIdentifier"] for g in got] == [{"system": NHS, "value": n} for n in numbers]
    summary = [{k: v for k, v in g.items() if k != "patientIdentifier"} for g in got]
    assert summary == [
        {"deceased": False, "registered": False, "dateOfBirth": "2000-09-15"},
        {"deceased": True, "registered": False, "dateOfBirth": "1938-04-12"},
        {"deceased": False, "registered": True, "dateOfBirth": "1979-08-05"},
        {"deceased": False, "registered": False},
        {"deceased": False, "registered": False, "dateOfBirth": "2019-05-14"},
        {"deceased": False, "registered": False, "diagnostics": "No access"},  # flags shown, per "Status query"
        {"diagnostics": "Not found"},
    ]
    assert server.issued() == []


def test_status_query_chi_and_h_and_c(server, client):
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "patientIdentifier", "valueIdentifier": {"system": CHI, "value": "1503858677"}},
        {"name": "patientIdentifier", "valueIdentifier": {"system": H_AND_C,
                                                          "value": "3572689430"}},
        {"name": "patientIdentifier", "valueIdentifier": {"system": CHI, "value": READ_RICHARDS}},
    ]}
    got = [parts(p) for p in post_fhir(client, server, STATUS_QUERY, body).json()["parameter"]]
    assert got[0]["dateOfBirth"] == "1985-03-15"
    assert got[1]["dateOfBirth"] == "1976-07-04"
    assert got[2]["diagnostics"] == "Not found"


def test_status_query_accepts_plain_json_and_5000_identifiers(server, client):
    headers = {**fhir_headers(client, server), "Content-Type": "application/json"}
    response = post_fhir(client, server, STATUS_QUERY,
                         identifiers([READ_RICHARDS] * 4999 + [NOT_FOUND]), headers=headers)
    assert response.status_code == 200
    params = response.json()["parameter"]
    assert len(params) == 5000
    assert parts(params[-1])["diagnostics"] == "Not found"


def test_status_query_over_5000_is_refused(server, client):
    response = post_fhir(client, server, STATUS_QUERY, identifiers([READ_RICHARDS] * 5001))
    assert_outcome(response, 400, "too-costly", "5001")


# --- FHIR $generate-invitation-tokens --------------------------------------------------------


def test_generate_tokens_only_for_eligible_patients(server, client):
    numbers = [READ_RICHARDS, DECEASED, "7569602005", REGISTERED, NO_DOB, UNDER_16, OTHER_ORG,
               NOT_FOUND]
    before = dt.datetime.now(dt.UTC)
    response = post_fhir(client, server, TOKENS, identifiers(numbers))
    after = dt.datetime.now(dt.UTC)
    assert response.status_code == 200
    body = response.json()
    got = [parts(p) for p in body["parameter"]]
    assert [p["name"] for p in body["parameter"]] == ["patientTokens"] * 2  # the refused are left out
    assert [g["patientIdentifier"]["value"] for g in got] == [READ_RICHARDS, "7569602005"]
    issued_parts = got
    for g in issued_parts:
        assert set(g) == {"patientIdentifier", "code", "token", "expiry"}
        assert CODE.fullmatch(g["code"]) and CODE.fullmatch(g["token"])
        expiry = utc(g["expiry"])
        assert before.replace(microsecond=0) + dt.timedelta(days=30) <= expiry
        assert expiry <= after + dt.timedelta(days=30)
    issued = server.issued()
    assert [(p.route, p.pkb_id, p.nhs_number, p.invitation_code, p.access_code, p.expiry)
            for p in issued] == [
        ("fhir", pkb, g["patientIdentifier"]["value"], g["code"], g["token"], utc(g["expiry"]))
        for pkb, g in zip(("3594342", "3601187"), issued_parts, strict=True)]


def test_generate_tokens_twice_gives_new_codes(server, client):
    first = tokens_by_value(post_fhir(client, server, TOKENS, identifiers([READ_RICHARDS])))
    second = tokens_by_value(post_fhir(client, server, TOKENS, identifiers([READ_RICHARDS])))
    assert first[READ_RICHARDS]["code"] != second[READ_RICHARDS]["code"]
    assert len(server.issued()) == 2


def test_generate_tokens_over_500_is_refused(server, client):
    response = post_fhir(client, server, TOKENS, identifiers([READ_RICHARDS] * 501))
    assert_outcome(response, 400, "too-costly", "at most 500")
    assert server.issued() == []


def test_generate_tokens_500_is_accepted(server, client):
    response = post_fhir(client, server, TOKENS, identifiers([READ_RICHARDS] * 499 + [NOT_FOUND]))
    assert response.status_code == 200
    assert len(response.json()["parameter"]) == 499


def test_refusal_diagnostics_variant_names_the_cause(data, client):
    numbers = [READ_RICHARDS, DECEASED, NOT_FOUND]
    with SandboxServer(data, faults=Faults(refusal_diagnostics=True)) as srv:
        got = [parts(p) for p in post_fhir(client, srv, TOKENS, identifiers(numbers)).json()["parameter"]]
    assert [g.get("diagnostics") for g in got] == [None, "Deceased", "Not found"]
    assert set(got[1]) == set(got[2]) == {"patientIdentifier", "diagnostics"}


@pytest.mark.parametrize(("faults", "key", "pattern"), [
    (Faults(), "valueDateTime", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"),
    # PKB's "Generate invitation tokens" example answer: "valueDatetime": "2021-01-01T09:29:23.356+00:00"
    (Faults(expiry_key="valueDatetime"), "valueDatetime", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"),
    (Faults(expiry_key="valueInstant"), "valueInstant", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"),
    (Faults(expiry_key="valueString", expiry_text="in ten weeks"), "valueString", r"in ten weeks"),
])
def test_expiry_variants_are_served_as_named(data, client, faults, key, pattern):
    with SandboxServer(data, faults=faults) as srv:
        body = post_fhir(client, srv, TOKENS, identifiers([READ_RICHARDS])).json()
        [pair] = srv.issued()
    [expiry] = [p for p in body["parameter"][0]["part"] if p["name"] == "expiry"]
    assert set(expiry) == {"name", key}
    assert re.fullmatch(pattern, expiry[key])
    if key != "valueString":
        assert dt.datetime.fromisoformat(expiry[key].replace("Z", "+00:00")) == pair.expiry


def test_expiry_part_can_be_left_out(data, client):
    with SandboxServer(data, faults=Faults(expiry_key="")) as srv:
        got = tokens_by_value(post_fhir(client, srv, TOKENS, identifiers([READ_RICHARDS])))
        assert len(srv.issued()) == 1
    assert set(got[READ_RICHARDS]) == {"patientIdentifier", "code", "token"}


@pytest.mark.parametrize("status", [401, 403])
def test_by_national_id_can_be_denied_for_one_patient(data, client, status):
    with SandboxServer(data, faults=Faults(deny_lookup={READ_RICHARDS: status})) as srv:
        headers = bearer(client, srv)
        denied = client.get(f"{srv.rest_base}/v2-beta/users/byNationalId/{READ_RICHARDS}/NHS_NUMBER", headers=headers)
        shown = client.get(f"{srv.rest_base}/v2-beta/users/byNationalId/7569602005/NHS_NUMBER", headers=headers)
    assert (denied.status_code, shown.status_code) == (status, 200)


def test_deny_lookup_takes_only_401_and_403():
    with pytest.raises(ValueError, match="401 or 403"):
        Faults(deny_lookup={READ_RICHARDS: 500})


def test_generate_tokens_for_chi_patient_records_the_chi_value(server, client):
    response = post_fhir(client, server, TOKENS, identifiers(["1503858677"], system=CHI))
    assert "code" in tokens_by_value(response)["1503858677"]
    [pair] = server.issued()
    assert (pair.pkb_id, pair.nhs_number) == ("3715520", "1503858677")


@pytest.mark.parametrize(("today", "number", "expected"), [
    (dt.date(2016, 9, 14), READ_RICHARDS, "Under 16"),  # the day before the 16th birthday
    (dt.date(2016, 9, 15), READ_RICHARDS, None),
    (dt.date(2020, 2, 28), LEAP_DAY, "Under 16"),
    (dt.date(2020, 2, 29), LEAP_DAY, None),
    (dt.date(2035, 5, 13), UNDER_16, "Under 16"),
    (dt.date(2035, 5, 14), UNDER_16, None),
])
def test_under_16_is_measured_against_today(data, today, number, expected):
    with SandboxServer(data, today=today) as srv, httpx.Client() as c:
        answer = tokens_by_value(post_fhir(c, srv, TOKENS, identifiers([number])))
        assert (number in answer) == (expected is None)  # an under-16 is left out of the answer
        assert len(srv.issued()) == (1 if expected is None else 0)
    with SandboxServer(data, today=today, faults=Faults(refusal_diagnostics=True)) as srv, httpx.Client() as c:
        answer = tokens_by_value(post_fhir(c, srv, TOKENS, identifiers([number])))
        assert answer[number].get("diagnostics") == expected


# --- refused FHIR requests -------------------------------------------------------------------


@pytest.mark.parametrize("operation", [STATUS_QUERY, TOKENS])
def test_unknown_system_rejects_the_whole_request(server, client, operation):
    body = identifiers([READ_RICHARDS, "7569602005", "5760678914"])
    body["parameter"][2]["valueIdentifier"]["system"] = "https://example.org/mrn"
    response = post_fhir(client, server, operation, body)
    assert_outcome(response, 400, "invalid", "parameter[2]: unknown identifier system")
    assert server.issued() == []


@pytest.mark.parametrize(("body", "mentions"), [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[]", "must be a JSON object"),
    ({"resourceType": "Bundle", "parameter": []}, "resourceType must be 'Parameters'"),
    ({"resourceType": "Parameters", "parameter": []}, "no patientIdentifier"),
    ({"resourceType": "Parameters"}, "no patientIdentifier"),
    ({"resourceType": "Parameters", "parameter": {}}, "must be a list"),
    ({"resourceType": "Parameters", "parameter": [
        {"name": "patientIdentifier", "valueIdentifier": {"system": NHS, "value": NOT_FOUND}},
        {"name": "somethingElse", "valueString": "x"}]}, "parameter[1]"),
    ({"resourceType": "Parameters", "parameter": [
        {"name": "patientIdentifier", "valueString": READ_RICHARDS}]},
     "parameter[0]: patientIdentifier needs a valueIdentifier"),
    ({"resourceType": "Parameters", "parameter": [
        {"name": "patientIdentifier", "valueIdentifier": {"system": NHS, "value": ""}}]},
     "parameter[0]: valueIdentifier.value"),
])
def test_malformed_bodies_are_refused(server, client, body, mentions):
    for operation in (STATUS_QUERY, TOKENS):
        assert_outcome(post_fhir(client, server, operation, body), 400, "invalid", mentions)
    assert server.issued() == []


def test_wrong_content_type_is_refused(server, client):
    headers = {**fhir_headers(client, server), "Content-Type": "text/plain"}
    response = post_fhir(client, server, TOKENS, identifiers([READ_RICHARDS]), headers=headers)
    assert_outcome(response, 415, "not-supported", "text/plain")


@pytest.mark.parametrize("operation", [STATUS_QUERY, TOKENS])
def test_org_header_missing_or_wrong(server, client, operation):
    headers = fhir_headers(client, server)
    del headers["X-Org-Public-Id"]
    response = post_fhir(client, server, operation, identifiers([READ_RICHARDS]), headers)
    assert_outcome(response, 400, "required", "X-Org-Public-Id")
    headers["X-Org-Public-Id"] = "fe636934-64c1-46dc-8868-f4df17437fed"
    response = post_fhir(client, server, operation, identifiers([READ_RICHARDS]), headers)
    assert_outcome(response, 403, "forbidden", "X-Org-Public-Id")
    assert server.issued() == []


# --- issued log, routing, lifecycle ----------------------------------------------------------


def test_issued_endpoint_matches_issued(server, client):
    headers = bearer(client, server)
    rest = client.get(f"{server.rest_base}/v1/users/3594342/recordAccessToken",
                      headers=headers).json()
    fhir = tokens_by_value(post_fhir(client, server, TOKENS, identifiers(["7569602005"])))
    listed = client.get(f"{server.url}/_sandbox/issued").json()
    pairs = server.issued()
    assert all(isinstance(p, IssuedPair) for p in pairs)
    assert [(p["invitation_code"], p["access_code"]) for p in listed] == [
        (rest["invitationCode"], rest["token"]),
        (fhir["7569602005"]["code"], fhir["7569602005"]["token"])]
    assert listed == [{
        "route": p.route, "pkb_id": p.pkb_id, "nhs_number": p.nhs_number,
        "invitation_code": p.invitation_code, "access_code": p.access_code,
        "expiry": p.expiry.isoformat().replace("+00:00", "Z"),
        "issued_at": p.issued_at.isoformat().replace("+00:00", "Z")} for p in pairs]
    assert listed[1]["expiry"] == fhir["7569602005"]["expiry"]


def test_issued_returns_a_copy_of_frozen_pairs(server, client):
    client.get(f"{server.rest_base}/v1/users/3594342/recordAccessToken",
               headers=bearer(client, server))
    pairs = server.issued()
    pairs.clear()
    assert len(server.issued()) == 1
    with pytest.raises(AttributeError):
        server.issued()[0].access_code = "x"  # type: ignore[misc]


def test_unknown_path_and_wrong_method(server, client):
    response = client.get(f"{server.url}/json/v3/nothing")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    response = client.get(f"{server.fhir_base}/Patient/$status-query")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    response = client.delete(f"{server.url}/_sandbox/issued")
    assert response.status_code == 405


def raw_exchange(srv: SandboxServer, request: bytes) -> bytes:
    """Send bytes on one connection and read until the server closes it."""
    host, port = srv.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_head_has_no_body_and_keeps_the_connection_usable(server):
    answer = raw_exchange(server, b"HEAD /_sandbox/issued HTTP/1.1\r\nHost: x\r\n\r\n"
                                  b"GET /_sandbox/issued HTTP/1.1\r\nHost: x\r\n"
                                  b"Connection: close\r\n\r\n")
    head, rest = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 405")
    assert rest.startswith(b"HTTP/1.1 200")
    assert rest.endswith(b"\r\n\r\n[]")


def test_oversized_body_is_refused_and_the_connection_closed(server):
    answer = raw_exchange(server, b"POST /oauth/token HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Length: 999999999\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"Connection: close" in answer


def test_urls_and_credentials(server, data):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
    assert not server.url.endswith(":0")
    assert server.token_url == server.url + "/oauth/token"
    assert server.rest_base == server.url + "/json"
    assert server.fhir_base == server.url + "/fhir"
    assert (server.client_id, server.client_secret, server.org_id) == (
        "pkb-letters-demo", "sandbox-secret-not-for-production", ORG_ID)


def test_keep_alive_and_prompt_close_with_an_idle_connection(data):
    srv = SandboxServer(data).start()
    with httpx.Client() as c:
        headers = bearer(c, srv)
        for _ in range(3):
            response = c.get(f"{srv.url}/_sandbox/issued", headers=headers)
            assert response.status_code == 200
            assert response.headers.get("connection", "").lower() != "close"
        started = time.monotonic()
        srv.close()  # the client still holds its keep-alive connection open
        assert time.monotonic() - started < 2
        srv.close()  # idempotent


def test_close_without_start(data):
    srv = SandboxServer(data)
    srv.close()
    with pytest.raises(RuntimeError):
        srv.start()


def test_serve_prints_one_line_and_logs_nothing():
    # Ctrl-C must stop it even when this test run was started in the background, which ignores SIGINT
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from pkb_letters.sandbox import serve; "
            f"serve({str(SANDBOX_JSON)!r}, port=0)")
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            line = proc.stdout.readline()
            match = re.fullmatch(r"PKB sandbox listening on (http://127\.0\.0\.1:\d+) "
                                 rf"\(client_id=pkb-letters-demo, org_id={ORG_ID}\)\n", line)
            assert match, line
            url = match.group(1)
            with httpx.Client() as c:
                token = c.post(url + "/oauth/token", data={"grant_type": "client_credentials"},
                               auth=("pkb-letters-demo", "sandbox-secret-not-for-production"))
                auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
                response = c.get(f"{url}/json/v2-beta/users/byNationalId/{READ_RICHARDS}/"
                                 "NHS_NUMBER", headers=auth)
                assert response.status_code == 200
                c.get(f"{url}/json/v1/users/3594342/recordAccessToken", headers=auth)
                assert len(c.get(url + "/_sandbox/issued").json()) == 1
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0
    assert out == ""
    assert err == ""  # no request log: it would carry NHS numbers and codes


def test_serve_is_exported():
    assert callable(serve)


def _answers_lost(data: SandboxData, faults: Faults, numbers: list[str]) -> set[tuple[str, int]]:
    """Ask for each number twice, in the given order; which (number, attempt) answers never came."""
    lost = set()
    with SandboxServer(data, faults=faults) as srv, httpx.Client(timeout=10) as client:
        headers = _bearer_despite_drops(client, srv)
        for attempt in (1, 2):
            for number in numbers:
                try:
                    client.get(f"{srv.rest_base}/v2-beta/users/byNationalId/{number}/NHS_NUMBER", headers=headers)
                except httpx.RemoteProtocolError:
                    lost.add((number, attempt))
    return lost


def _bearer_despite_drops(client: httpx.Client, srv: SandboxServer) -> dict[str, str]:
    for _ in range(10):
        try:
            return bearer(client, srv)
        except httpx.RemoteProtocolError:
            continue  # the token endpoint's answers are dropped too
    raise AssertionError("ten token answers in a row were dropped")


def test_seeded_faults_hit_the_same_requests_whatever_order_they_arrive_in(data):
    numbers = [READ_RICHARDS, DECEASED, REGISTERED, NO_DOB, OTHER_ORG]
    faults = Faults(drop_rate=0.5, seed=21)
    lost = _answers_lost(data, faults, numbers)
    assert lost and len(lost) < 2 * len(numbers)  # the seed loses some answers and not others
    assert _answers_lost(data, faults, numbers[::-1]) == lost
    assert _answers_lost(data, Faults(drop_rate=0.5, seed=22), numbers) != lost
