"""PKB's answers as PKB's developer pages document them, served by the real sandbox over sockets.

Where each shape comes from (see the README's table "Where each sandbox answer comes from"):
- "Generate invitation tokens" (definition): `expiry` is a DateTime, so `valueDateTime`.
- "Generate invitation tokens" examples page, PKB's own example answer:
  `{"name": "expiry", "valueDatetime": "2021-01-01T09:29:23.356+00:00"}`.
- the same page: "patientTokens will not be returned where patient is deceased, not found, already
  registered, has no date of birth, or is under 16"; no `diagnostics` part is documented.
- "Status query": `deceased` and `registered` are returned with "No access" too.
- the REST mass-registration page: the user object has no registration flag; recordAccessToken
  "might" answer 401 for another organisation's record.
`valueInstant`, an unreadable expiry and a 401/403 on byNationalId are our inference: served so the
client is shown to fail safe on them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re

import pytest
from conftest import SANDBOX_JSON, connection_to, demo_settings

from pkb_letters.config import PkbConnection
from pkb_letters.errors import ExpiryUnreadable, PkbAuthError
from pkb_letters.job.journal import Journal
from pkb_letters.job.pipeline import REST_CANNOT_CONFIRM_REGISTERED, run_job
from pkb_letters.pkb.client import PatientStatus, PkbClient
from pkb_letters.pkb.codes import _omission
from pkb_letters.records import CodePair, Eligible, PatientRow, Reason
from pkb_letters.sandbox import Faults, SandboxServer, load_sandbox_data

READ_RICHARDS = "5760678914"  # DEMO-0001, input row 2
REGISTERED = "9185261904"  # DEMO-0010, Fatima Hussain
UNDER_16 = "5275518900"  # DEMO-0012, born 2019-05-14
OTHER_ORG = "7611268783"  # DEMO-0013, another organisation's patient
DOCUMENTED_EXPIRY_KEYS = ["valueDateTime", "valueDatetime", "valueInstant"]


def sandbox(faults: Faults | None = None, data=None, **kwargs) -> SandboxServer:
    return SandboxServer(data or load_sandbox_data(SANDBOX_JSON), faults=faults, **kwargs)


def with_patient(number: str, **changes):
    """The demo sandbox data with one patient changed."""
    data = load_sandbox_data(SANDBOX_JSON)
    patients = tuple(dataclasses.replace(p, **changes) if p.primary_id_value == number else p for p in data.patients)
    return dataclasses.replace(data, patients=patients)


def journal_rows(out_dir) -> dict[str, dict]:
    with Journal.in_dir(out_dir) as journal:
        return {r["nhs_number"]: dict(r) for r in journal.db.execute("SELECT * FROM rows")}


def assert_every_issued_pair_is_in_the_journal(server: SandboxServer, out_dir) -> None:
    rows = journal_rows(out_dir)
    for pair in server.issued():
        row = rows[pair.nhs_number]
        assert (row["invitation_code"], row["access_code"]) == (pair.invitation_code, pair.access_code)


# --- the expiry, however PKB spells it ------------------------------------------------------------


@pytest.mark.parametrize("key", DOCUMENTED_EXPIRY_KEYS)
def test_client_reads_every_documented_expiry_spelling(key):
    with sandbox(Faults(expiry_key=key)) as server, PkbClient(connection_to(server)) as client:
        (answer,) = client.generate_invitation_tokens([READ_RICHARDS])
        (issued,) = server.issued()
    assert isinstance(answer.codes, CodePair)
    assert answer.codes.invitation_code == issued.invitation_code
    assert answer.codes.expires == issued.expiry.date()


@pytest.mark.parametrize("key", DOCUMENTED_EXPIRY_KEYS)
def test_no_pair_pkb_returned_is_dropped_whatever_the_expiry_spelling(tmp_path, key):
    with sandbox(Faults(expiry_key=key)) as server:
        run_job(demo_settings(tmp_path, "fhir"), connection_to(server), stop_after="codes")
        issued = server.issued()
    assert len(issued) == 8  # the demo list's eligible patients whose address fits
    assert_every_issued_pair_is_in_the_journal(server, tmp_path)
    rows = journal_rows(tmp_path)
    assert {rows[p.nhs_number]["stage"] for p in issued} == {"coded"}
    assert {rows[p.nhs_number]["codes_expire"] for p in issued} == {p.expiry.date().isoformat() for p in issued}


UNREADABLE = {
    "no expiry part": (Faults(expiry_key=""), "no 'expiry' part"),
    "another key": (Faults(expiry_key="valueString"), "has no valueDateTime, valueDatetime or valueInstant"),
    "not a date": (Faults(expiry_text="in ten weeks"), "valueDateTime is not a date"),
    "no time zone": (Faults(expiry_text="2031-01-01T09:29:23"), "valueDateTime is not a date"),
}


@pytest.mark.parametrize("case", UNREADABLE)
def test_unreadable_expiry_holds_every_pair_stops_and_is_never_asked_again(tmp_path, case):
    faults, field_named = UNREADABLE[case]
    with sandbox(faults) as server:
        with pytest.raises(ExpiryUnreadable) as stopped:
            run_job(demo_settings(tmp_path, "fhir"), connection_to(server), stop_after="codes")
        issued = server.issued()
        message = str(stopped.value)
        assert field_named in message and "expiry" in message
        assert "input rows 2, 3" in message  # the patients by row, never by NHS number or code
        assert not any(p.nhs_number in message or p.invitation_code in message or p.access_code in message
                       for p in issued)
        assert 'unreadable_expiry = "exclude"' in message  # what the operator can do
        assert_every_issued_pair_is_in_the_journal(server, tmp_path)
        assert {journal_rows(tmp_path)[p.nhs_number]["stage"] for p in issued} == {"held"}

        asked = server.stats.count("api_generate_tokens")
        with pytest.raises(ExpiryUnreadable):
            run_job(demo_settings(tmp_path, "fhir"), connection_to(server), stop_after="codes")
        assert server.stats.count("api_generate_tokens") == asked and server.issued() == issued

        summary = run_job(demo_settings(tmp_path, "fhir", unreadable_expiry="exclude"), connection_to(server),
                          stop_after="codes")
        assert server.stats.count("api_generate_tokens") == asked and server.issued() == issued
    assert summary.by_reason[Reason.EXPIRY_UNREADABLE] == len(issued)


def test_a_held_pair_whose_expiry_a_later_version_reads_is_printed_with_it(tmp_path):
    with sandbox(Faults(expiry_key="valueString", expiry_text="2031-01-01T09:29:23.356+00:00")) as server:
        with pytest.raises(ExpiryUnreadable):
            run_job(demo_settings(tmp_path, "fhir"), connection_to(server), stop_after="codes")
        with Journal.in_dir(tmp_path) as journal:  # as if this version read valueString: the part is kept as sent
            journal.db.execute("UPDATE rows SET codes_expiry_part = replace(codes_expiry_part, "
                                "'valueString', 'valueDateTime') WHERE stage = 'held'")
            journal.db.connection.commit()
        run_job(demo_settings(tmp_path, "fhir"), connection_to(server), stop_after="codes")
        issued = server.issued()
    assert len(issued) == 8
    rows = journal_rows(tmp_path)
    assert {rows[p.nhs_number]["stage"] for p in issued} == {"coded"}
    assert {rows[p.nhs_number]["codes_expire"] for p in issued} == {"2031-01-01"}


# --- refusal by omission ----------------------------------------------------------------------------


def test_a_patient_left_out_because_under_16_on_pkbs_day_is_excluded_as_under_16(tmp_path):
    """16 on the letter date, so eligible at resolve; 15 on the day PKB issues, so left out."""
    issue_day = dt.date(2035, 5, 13)
    settings = demo_settings(tmp_path, "fhir")
    settings = dataclasses.replace(settings, letter=dataclasses.replace(settings.letter, date=dt.date(2035, 5, 14)))
    with sandbox(today=issue_day) as server:
        summary = run_job(settings, connection_to(server), stop_after="codes", today=lambda: issue_day)
    row = journal_rows(tmp_path)[UNDER_16]
    assert (row["stage"], row["reason"]) == ("excluded", "under-16")
    assert "today" in row["detail"] and "left this patient out" in row["detail"]
    assert summary.by_reason["under-16"] == 1


@pytest.mark.parametrize(("changes", "reason", "says"), [
    ({"registered": True}, "already-registered", "registered"),
    ({"date_deceased": dt.date(2030, 1, 1)}, "deceased", "deceased"),
    ({"organisations": ("fe636934-64c1-46dc-8868-f4df17437fed",)}, "no-access", "No access"),
    ({"dob": None}, "no-date-of-birth", "no date of birth"),
])
def test_a_patient_left_out_gets_the_reason_status_query_gives_now(tmp_path, changes, reason, says):
    with sandbox() as server:
        run_job(demo_settings(tmp_path, "fhir"), connection_to(server), stop_after="resolve")
    with sandbox(data=with_patient(READ_RICHARDS, **changes)) as server:  # changed on PKB in between
        run_job(demo_settings(tmp_path, "fhir"), connection_to(server), stop_after="codes")
        assert READ_RICHARDS not in {p.nhs_number for p in server.issued()}
    row = journal_rows(tmp_path)[READ_RICHARDS]
    assert (row["stage"], row["reason"]) == ("excluded", reason)
    assert says in row["detail"]


def test_a_patient_left_out_for_no_reason_status_query_shows_is_told_the_documented_causes():
    patient = PatientRow(2, "", READ_RICHARDS, "", "Read", "Richards", None, ("1 Road", "TOWN", "NE1 7RU"), "NE1 7RU")
    status = PatientStatus(READ_RICHARDS, False, False, dt.date(2000, 9, 15), None)
    for seen in (status, None):
        refusal = _omission(Eligible(patient, None), seen, dt.date(2030, 1, 1), "")
        assert refusal.reason == Reason.PKB_REFUSED
        assert "deceased, not found, already registered, no date of birth, or under 16" in refusal.detail


# --- $status-query's No access still carries the flags ----------------------------------------------


def test_no_access_and_deceased_is_excluded_as_deceased(tmp_path):
    with sandbox(data=with_patient(OTHER_ORG, date_deceased=dt.date(2024, 1, 1))) as server:
        run_job(demo_settings(tmp_path, "fhir"), connection_to(server), stop_after="resolve")
    row = journal_rows(tmp_path)[OTHER_ORG]
    assert (row["reason"], "another organisation" in row["detail"]) == ("deceased", True)


def test_no_access_alive_is_no_access(tmp_path):
    with sandbox() as server:
        run_job(demo_settings(tmp_path, "fhir"), connection_to(server), stop_after="resolve")
    assert journal_rows(tmp_path)[OTHER_ORG]["reason"] == "no-access"


# --- the REST route: no registration flag ------------------------------------------------------------


def test_rest_route_confirms_registered_with_status_query_before_asking_for_codes(tmp_path):
    with sandbox() as server:
        summary = run_job(demo_settings(tmp_path, "rest"), connection_to(server), stop_after="codes")
        issued = {p.nhs_number for p in server.issued()}
        assert server.stats.count("api_status_query") >= 1
    assert REGISTERED not in issued
    assert journal_rows(tmp_path)[REGISTERED]["reason"] == "already-registered"
    assert summary.warnings == ()


class _CountsAtWarning(logging.Handler):
    """Notes how many recordAccessToken requests the sandbox had seen when each warning was logged."""

    def __init__(self, server: SandboxServer) -> None:
        super().__init__(logging.WARNING)
        self.server, self.seen = server, []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.getMessage(), self.server.stats.count("api_record_access_token")))


def test_rest_route_without_a_fhir_base_says_so_before_the_first_code_is_issued(tmp_path):
    with sandbox() as server:
        connection: PkbConnection = dataclasses.replace(connection_to(server), fhir_base="")
        watcher = _CountsAtWarning(server)
        logging.getLogger("pkb_letters").addHandler(watcher)
        try:
            summary = run_job(demo_settings(tmp_path, "rest"), connection, stop_after="codes")
        finally:
            logging.getLogger("pkb_letters").removeHandler(watcher)
        issued = {p.nhs_number for p in server.issued()}
        assert server.stats.count("api_status_query") == 0
    assert (REST_CANNOT_CONFIRM_REGISTERED, 0) in watcher.seen  # said before any recordAccessToken request
    assert summary.warnings == (REST_CANNOT_CONFIRM_REGISTERED,)
    assert REGISTERED in issued  # the limit, as the warning says: PKB's REST answer cannot tell us


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_by_national_id_excludes_only_that_patient_as_no_access(tmp_path, status):
    with sandbox(Faults(deny_lookup={READ_RICHARDS: status})) as server:
        summary = run_job(demo_settings(tmp_path, "rest"), connection_to(server), stop_after="codes")
        issued = {p.nhs_number for p in server.issued()}
    row = journal_rows(tmp_path)[READ_RICHARDS]
    assert (row["reason"], str(status) in row["detail"]) == ("no-access", True)
    assert READ_RICHARDS not in issued and len(issued) == 7
    assert summary.by_stage["coded"] == 7


def test_a_refused_oauth_token_still_stops_the_rest_route(tmp_path):
    with sandbox() as server:
        connection = dataclasses.replace(connection_to(server), client_secret="wrong")
        with pytest.raises(PkbAuthError, match="client credentials"):
            run_job(demo_settings(tmp_path, "rest"), connection, stop_after="codes")


def test_byNationalId_refused_for_every_patient_from_the_start_stops_the_job(tmp_path):
    numbers = re.findall(r"\n[^,]*,[^,]*,[^,]*,(\d{10}),", (SANDBOX_JSON.parent / "patients.csv").read_text())
    with sandbox(Faults(deny_lookup={n: 403 for n in numbers})) as server:
        with pytest.raises(PkbAuthError, match="first 10 patients"):
            run_job(demo_settings(tmp_path, "rest"), connection_to(server), stop_after="codes")
        assert server.issued() == []


def test_status_says_what_a_rerun_does_with_held_pairs(tmp_path):
    from pkb_letters.job.status import job_status

    with sandbox(Faults(expiry_key="")) as server, pytest.raises(ExpiryUnreadable):
        run_job(demo_settings(tmp_path, "fhir"), connection_to(server), stop_after="codes")
    report = job_status(tmp_path).report()
    assert "8 held pairs" in report and "never asked again" in report


def test_only_the_rest_route_may_go_without_a_fhir_base(tmp_path):
    from pkb_letters.config import pkb_connection
    from pkb_letters.errors import ConfigError

    table = {"token_url": "https://pkb.example/oauth/token", "rest_base": "https://pkb.example/json",
             "client_id": "c", "org_id": "a14acc9a-a14b-4fb8-8558-539d93a038d3"}
    env = {"PKB_CLIENT_SECRET": "s"}
    assert pkb_connection({"pkb": table}, env, tmp_path, api="rest").fhir_base == ""
    with pytest.raises(ConfigError, match="PKB_FHIR_BASE"):
        pkb_connection({"pkb": table}, env, tmp_path, api="fhir")
