"""Jobs under stress: faults injected by the sandbox over real sockets, resumes, re-issues, SIGKILL.

What must hold whatever happens: every patient ends as exactly one letter or one exception,
the pair printed for a patient is the last pair PKB issued them, and a patient PKB issued
more than one pair to is marked in the journal and manifest as a re-issue, with the reason.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import SANDBOX_JSON, no_weasyprint_warnings

from pkb_letters.config import SANDBOX_JOIN_URL, JobSettings, LetterSettings, sandbox_connection
from pkb_letters.errors import ConfigError, PkbUnavailable
from pkb_letters.job.journal import Journal
from pkb_letters.job.pipeline import run_job
from pkb_letters.job.status import job_status
from pkb_letters.pkb import codes
from pkb_letters.pkb.batching import SINGLE_ATTEMPTS, WHOLE_BATCH_ATTEMPTS
from pkb_letters.pkb.client import PkbClient
from pkb_letters.pkb.retry import RetryPolicy
from pkb_letters.sandbox import Faults, SandboxServer, load_sandbox_data
from pkb_letters.sandbox.synthetic import write_synthetic_job

PATIENTS = 48
FAST_RETRIES = RetryPolicy(attempts=6, initial_delay=0.01, max_delay=0.2, max_retry_after=2.0)
CONSOLE_SCRIPT = Path(sys.executable).parent / "pkb-letters"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return write_synthetic_job(tmp_path_factory.mktemp("synthetic"), PATIENTS)


def settings_for(synthetic, out_dir: Path, api: str, **overrides) -> JobSettings:
    letter = LetterSettings(organisation="Synthetic NHS Trust", join_url=SANDBOX_JOIN_URL)
    defaults = {"retry": FAST_RETRIES, "chunk_size": 16}
    return JobSettings(patients=synthetic.patients_csv, out_dir=out_dir, api=api, letter=letter,
                       **{**defaults, **overrides})


def sandbox_for(synthetic, faults: Faults | None = None, **kwargs) -> SandboxServer:
    return SandboxServer(load_sandbox_data(synthetic.sandbox_json), faults=faults, **kwargs)


def journal_rows(out_dir: Path) -> dict[str, sqlite3.Row]:
    with Journal.in_dir(out_dir) as journal:
        rows = journal.db.execute("SELECT * FROM rows").fetchall()
    return {r["nhs_number"]: r for r in rows}


def issued_by_patient(server: SandboxServer) -> dict[str, list]:
    pairs = defaultdict(list)
    for pair in server.issued():
        pairs[pair.nhs_number].append(pair)
    return pairs


def assert_one_outcome_each_and_pairs_accounted_for(out_dir: Path, server: SandboxServer, coded_stage: str) -> None:
    """Every patient holds PKB's last pair for them; anyone issued two or more is a marked re-issue."""
    rows = journal_rows(out_dir)
    assert len(rows) == PATIENTS
    issued = issued_by_patient(server)
    for nhs_number, row in rows.items():
        assert row["stage"] == coded_stage, (row["input_row"], row["stage"], row["reason"], row["detail"])
        last = issued[nhs_number][-1]
        assert (row["invitation_code"], row["access_code"]) == (last.invitation_code, last.access_code)
        if len(issued[nhs_number]) > 1:
            assert row["reissue"] in ("lost-response", "expiring"), row["input_row"]
    assert not set(issued) - set(rows)  # PKB issued nothing to anyone outside the list


# --- faults, API stages only (fast) ---------------------------------------------------------------

FAULTS = {
    "fail-rate": Faults(fail_rate=0.3, seed=3),
    "drop-rate": Faults(drop_rate=0.25, seed=4),
    "rate-limit": Faults(rate_limit=40, seed=5),
    "latency": Faults(latency_ms=30, seed=6),
    "all-at-once": Faults(latency_ms=5, fail_rate=0.15, drop_rate=0.15, rate_limit=60, seed=7),
}
# The FHIR route makes three requests for 48 patients; only a tight limit makes it meet a 429.
FHIR_FAULTS = {**FAULTS, "rate-limit": Faults(rate_limit=1, seed=5),
               "all-at-once": Faults(latency_ms=5, fail_rate=0.15, drop_rate=0.15, rate_limit=1, seed=7)}


@pytest.mark.parametrize("api", ["fhir", "rest"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_patient_gets_exactly_the_last_pair_issued_under_faults(synthetic, tmp_path, api, fault):
    faults = (FHIR_FAULTS if api == "fhir" else FAULTS)[fault]
    with sandbox_for(synthetic, faults) as server:
        summary = run_job(settings_for(synthetic, tmp_path / "job", api, concurrency=4),
                          sandbox_connection(server), stop_after="codes")
        injected = dict(server.faults.counts)
        codes_dropped = sum(server.faults.dropped_by_action[a] for a in ("api_record_access_token",
                                                                           "api_generate_tokens"))
    assert summary.by_stage == {"coded": PATIENTS}
    assert_one_outcome_each_and_pairs_accounted_for(tmp_path / "job", server, "coded")
    if fault != "latency":
        assert sum(v for k, v in injected.items() if k != "latency") > 0, "the fault never fired"
    if codes_dropped:
        lost = [r for r in journal_rows(tmp_path / "job").values() if r["reissue"] == "lost-response"]
        assert lost, "answers were dropped after codes were issued, yet no patient is marked as a re-issue"


def test_token_expiring_mid_job_is_renewed(synthetic, tmp_path):
    with sandbox_for(synthetic, Faults(latency_ms=25), token_ttl=1) as server:
        summary = run_job(settings_for(synthetic, tmp_path / "job", "rest", concurrency=2),
                          sandbox_connection(server), stop_after="codes")
        token_requests = server.stats.count("api_token")
    assert summary.by_stage == {"coded": PATIENTS}
    assert token_requests >= 2  # the job outlived its first access token
    assert_one_outcome_each_and_pairs_accounted_for(tmp_path / "job", server, "coded")


def test_dropped_answers_show_as_reissues_in_manifest_and_summary(synthetic, tmp_path):
    with sandbox_for(synthetic, Faults(drop_rate=0.3, seed=11)) as server, no_weasyprint_warnings():
        summary = run_job(settings_for(synthetic, tmp_path / "job", "rest"), sandbox_connection(server))
    assert_one_outcome_each_and_pairs_accounted_for(tmp_path / "job", server, "placed")
    issued = issued_by_patient(server)
    twice = {n for n, pairs in issued.items() if len(pairs) > 1}
    assert twice, "seed 11 drops at least one answer to recordAccessToken"
    letters = json.loads((tmp_path / "job" / "manifest.json").read_text())["letters"]
    by_row = {r["input_row"]: r for r in journal_rows(tmp_path / "job").values()}
    marked = {by_row[e["input_row"]]["nhs_number"] for e in letters if e["codes_reissued"] == "lost-response"}
    assert twice <= marked
    assert summary.reissues == {"lost-response": len(marked)}
    assert summary.letters == PATIENTS


def test_a_batch_with_an_identifier_pkb_chokes_on_is_split_and_only_that_patient_fails(synthetic, tmp_path):
    poison = synthetic.nhs_numbers[29]
    with sandbox_for(synthetic, Faults(fail_on={poison})) as server:
        summary = run_job(settings_for(synthetic, tmp_path / "job", "fhir"), sandbox_connection(server),
                          stop_after="codes")
        status_queries = server.stats.count("api_status_query")
    assert summary.by_stage == {"coded": PATIENTS - 1, "excluded": 1}
    row = journal_rows(tmp_path / "job")[poison]
    assert row["reason"] == "pkb-refused" and "HTTP 500" in row["detail"]
    # the whole batch; at each halving one failing and one succeeding half; then the lone patient
    assert status_queries <= WHOLE_BATCH_ATTEMPTS + 2 * math.ceil(math.log2(PATIENTS)) + SINGLE_ATTEMPTS


def test_pkb_failing_everything_stops_the_job_resumably(synthetic, tmp_path):
    out_dir = tmp_path / "job"
    with sandbox_for(synthetic, Faults(fail_rate=1.0, seed=1)) as broken, pytest.raises(PkbUnavailable):
        run_job(settings_for(synthetic, out_dir, "fhir"), sandbox_connection(broken))
    assert not broken.issued()
    status = job_status(out_dir)
    assert status.by_stage == {"read": PATIENTS} and "PKB" in (status.last_stop or "")
    assert not status.by_reason  # nobody was excluded for PKB's outage
    with sandbox_for(synthetic) as healthy:
        summary = run_job(settings_for(synthetic, out_dir, "fhir"), sandbox_connection(healthy), stop_after="codes")
    assert summary.resumed and summary.by_stage == {"coded": PATIENTS}
    assert_one_outcome_each_and_pairs_accounted_for(out_dir, healthy, "coded")


def test_rest_concurrency_is_bounded_and_used(synthetic, tmp_path):
    with sandbox_for(synthetic, Faults(latency_ms=20)) as server:
        run_job(settings_for(synthetic, tmp_path / "job", "rest", concurrency=3), sandbox_connection(server),
                stop_after="codes")
        most = server.stats.max_in_flight
    assert 2 <= most <= 3


def test_rest_code_requests_are_written_down_a_group_at_a_time_and_every_answer_is_kept(synthetic, tmp_path):
    out_dir = tmp_path / "job"
    workers = 8
    with sandbox_for(synthetic, Faults(latency_ms=10)) as server:
        run_job(settings_for(synthetic, out_dir, "rest"), sandbox_connection(server), stop_after="resolve")
        with Journal.in_dir(out_dir) as journal, PkbClient(sandbox_connection(server), retry=FAST_RETRIES) as client:
            eligible = list(journal.rows.iter_eligible())
            commits: list[str] = []
            journal.db.connection.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
            recorded: list[int] = []

            def record(results):
                recorded.extend(item.patient.input_row for item, _ in results)
                journal.codes.record_issued([(item.patient.input_row, pair) for item, pair in results], [])

            codes.issue_rest(eligible, client, journal.codes, record, lambda n: None, validity_days=30,
                              workers=workers)
    assert sorted(recorded) == sorted(e.patient.input_row for e in eligible)  # each answer kept, once
    requests = math.ceil(len(eligible) / workers)  # one commit per group of requests, not one per patient
    assert len(commits) <= requests + len(eligible)
    assert_one_outcome_each_and_pairs_accounted_for(out_dir, server, "coded")


def test_client_side_rate_limit_keeps_under_the_agreed_rate(synthetic, tmp_path):
    with sandbox_for(synthetic) as server:
        run_job(settings_for(synthetic, tmp_path / "job", "rest", concurrency=4, requests_per_second=40),
                sandbox_connection(server), stop_after="codes")
        arrivals = sorted(t for t, _ in server.stats.arrivals)
    busiest = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    assert len(arrivals) >= 2 * PATIENTS
    assert (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) <= 40.5
    # Requests are spaced as they leave; a stall on this shared machine can bunch a few on arrival.
    assert busiest <= 48


# --- resuming, re-issuing, restarting ---------------------------------------------------------


def test_codes_expiring_before_printing_are_reissued_and_the_manifest_shows_the_new_expiry(synthetic, tmp_path):
    out_dir = tmp_path / "job"
    with sandbox_for(synthetic) as server, no_weasyprint_warnings():
        run_job(settings_for(synthetic, out_dir, "fhir"), sandbox_connection(server), stop_after="codes")
        first_expiry = {n: p[0].expiry.date() for n, p in issued_by_patient(server).items()}
        later = dt.date.today() + dt.timedelta(days=15)  # 30-day codes now have 15 days left, under 21
        summary = run_job(settings_for(synthetic, out_dir, "fhir"), sandbox_connection(server), today=lambda: later)
    issued = issued_by_patient(server)
    assert all(len(pairs) == 2 for pairs in issued.values())
    assert summary.reissues == {"expiring": PATIENTS}
    assert_one_outcome_each_and_pairs_accounted_for(out_dir, server, "placed")
    letters = json.loads((out_dir / "manifest.json").read_text())["letters"]
    rows = {r["input_row"]: r for r in journal_rows(out_dir).values()}
    for entry in letters:
        nhs_number = rows[entry["input_row"]]["nhs_number"]
        assert entry["codes_reissued"] == "expiring"
        assert entry["codes_expire"] == issued[nhs_number][-1].expiry.date().isoformat()
        assert entry["codes_expire"] >= first_expiry[nhs_number].isoformat()
    with Journal.in_dir(out_dir) as journal:
        reasons = [e["detail"] for e in journal.events.of_kind("reissue")]
    assert len(reasons) == PATIENTS
    assert all("within 21 days of printing" in r for r in reasons), reasons[0]


def test_resuming_with_another_template_is_refused_and_restart_reuses_the_pairs(synthetic, tmp_path):
    out_dir = tmp_path / "job"
    template = tmp_path / "template"
    source = Path(__file__).resolve().parents[2] / "templates" / "invitation"
    subprocess.run(["cp", "-r", str(source), str(template)], check=True)
    with sandbox_for(synthetic) as server, no_weasyprint_warnings():
        settings = settings_for(synthetic, out_dir, "fhir", template_dir=template)
        run_job(settings, sandbox_connection(server), stop_after="codes")
        css = template / "letter.css"
        css.write_text(css.read_text() + "\n/* reworded */\n")
        with pytest.raises(ConfigError, match="different letter template") as refused:
            run_job(settings, sandbox_connection(server))
        assert "--restart" in str(refused.value)
        summary = run_job(settings, sandbox_connection(server), restart=True)
    assert not summary.resumed and summary.letters == PATIENTS
    assert all(len(p) == 1 for p in issued_by_patient(server).values())  # no second pair for anyone
    assert_one_outcome_each_and_pairs_accounted_for(out_dir, server, "placed")
    assert list(out_dir.glob("replaced-*.sqlite"))  # the replaced job's credentials are kept, not lost


def test_status_says_what_a_rerun_would_do(synthetic, tmp_path):
    out_dir = tmp_path / "job"
    with sandbox_for(synthetic) as server:
        run_job(settings_for(synthetic, out_dir, "fhir"), sandbox_connection(server), stop_after="resolve")
    report = job_status(out_dir).report()
    assert f"eligible          {PATIENTS}" in report.replace("  ", " ") or f"{PATIENTS}" in report
    assert f"request code pairs for {PATIENTS} eligible patients" in report
    assert "last progress" in report and "not finished" in report
    for nhs_number in synthetic.nhs_numbers:
        assert nhs_number not in report


# --- SIGKILL at several points, then resume ---------------------------------------------------


def _subprocess_env(server: SandboxServer) -> dict[str, str]:
    connection = sandbox_connection(server)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKB_")}
    env.update(PKB_TOKEN_URL=connection.token_url, PKB_REST_BASE=connection.rest_base,
               PKB_FHIR_BASE=connection.fhir_base, PKB_CLIENT_ID=connection.client_id,
               PKB_ORG_ID=connection.org_id, PKB_CLIENT_SECRET=connection.client_secret)
    return env


def _run_command(synthetic, out_dir: Path) -> list[str]:
    return [str(CONSOLE_SCRIPT), "run", str(synthetic.patients_csv), "--out", str(out_dir), "--api", "rest",
            "--concurrency", "2", "--chunk-size", "8"]


def _stage_counts(out_dir: Path) -> dict[str, int]:
    path = out_dir / "job.sqlite"
    if not path.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return dict(db.execute("SELECT stage, COUNT(*) FROM rows GROUP BY stage").fetchall())
    except sqlite3.Error:
        return {}


KILL_POINTS = {
    "mid-resolve": lambda c: c.get("eligible", 0) >= 6,
    "mid-codes": lambda c: c.get("coded", 0) >= 10,
    "mid-render": lambda c: c.get("placed", 0) >= 8,
}


def _comparable(out_dir: Path) -> list[tuple]:
    manifest = json.loads((out_dir / "manifest.json").read_text())
    return [(e["sequence"], e["input_row"], e["name"], tuple(e["address_lines"]), e["page_count"], e["first_page"])
            for e in manifest["letters"]]


@pytest.fixture(scope="module")
def clean_cli_run(synthetic, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("clean") / "job"
    with sandbox_for(synthetic) as server:
        subprocess.run(_run_command(synthetic, out_dir), env=_subprocess_env(server), check=True,
                       capture_output=True, timeout=300)
    return _comparable(out_dir)


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_sigkill_then_rerun_gives_the_same_letters_with_each_patient_once(synthetic, tmp_path, point, clean_cli_run):
    out_dir = tmp_path / "job"
    with sandbox_for(synthetic, Faults(latency_ms=40)) as server:
        env = _subprocess_env(server)
        process = subprocess.Popen(_run_command(synthetic, out_dir), env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not KILL_POINTS[point](_stage_counts(out_dir)):
            assert process.poll() is None, f"the job finished before reaching {point}"
            assert time.monotonic() < deadline, f"never reached {point}: {_stage_counts(out_dir)}"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at = _stage_counts(out_dir)
        assert killed_at.get("placed", 0) < PATIENTS
        rerun = subprocess.run(_run_command(synthetic, out_dir), env=env, capture_output=True, text=True,
                               timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "(resumed)" in rerun.stdout
    assert_one_outcome_each_and_pairs_accounted_for(out_dir, server, "placed")
    assert _comparable(out_dir) == clean_cli_run
    with synthetic.patients_csv.open(encoding="utf-8") as handle:
        refs = [row["Customer ref"] for row in csv.DictReader(handle)]
    assert len(refs) == len(_comparable(out_dir))
    assert not (out_dir / "work").exists() and not list(out_dir.glob(".*.tmp"))


def test_sandbox_command_takes_fault_options(tmp_path):
    from click.testing import CliRunner

    from pkb_letters.cli import main

    result = CliRunner().invoke(main, ["sandbox", "--help"])
    for option in ("--latency-ms", "--fail-rate", "--rate-limit", "--token-ttl", "--drop-rate", "--seed"):
        assert option in result.output
    assert dataclasses.fields(Faults)  # the same names as the [sandbox] table of a job file
    bad = tmp_path / "job.toml"
    bad.write_text("[sandbox]\nfail_rate = 2.0\n")
    result = CliRunner().invoke(main, ["run", str(SANDBOX_JSON), "--out", str(tmp_path / "o"), "--sandbox",
                                       "--config", str(bad)])
    assert result.exit_code == 2 and "fail_rate" in result.output
