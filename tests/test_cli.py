"""The command line, in process with click's CliRunner and as the installed console script."""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from conftest import EXPECTED_EXCLUSIONS, EXPECTED_LETTERS, PATIENTS_CSV, REPO, SANDBOX_JSON, no_weasyprint_warnings
from pdf_inspect import page_texts

from pkb_letters.cli import main

OUTPUTS = ("letters.pdf", "manifest.json", "manifest.csv", "exceptions.csv")
CHECK_LINE = f"check: 15 rows = {len(EXPECTED_LETTERS)} letters + {len(EXPECTED_EXCLUSIONS)} exceptions"
PKB_VARS = ("PKB_TOKEN_URL", "PKB_REST_BASE", "PKB_FHIR_BASE", "PKB_CLIENT_ID", "PKB_ORG_ID", "PKB_CLIENT_SECRET")
NO_PKB_ENV = {name: None for name in {*PKB_VARS, *(k for k in os.environ if k.startswith("PKB_"))}}
CONSOLE_SCRIPT = Path(sys.executable).parent / "pkb-letters"


def invoke(*args: str | Path, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False, prog_name="pkb-letters")


def run_demo(out_dir: Path, *extra: str | Path) -> Result:
    return invoke("run", PATIENTS_CSV, "--out", out_dir, "--sandbox", *extra)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Result, Path]:
    out_dir = tmp_path_factory.mktemp("cli") / "job"
    with no_weasyprint_warnings():  # module fixtures run outside the per-test guard
        return run_demo(out_dir), out_dir


# --- help ------------------------------------------------------------------------------------


def test_top_level_help_lists_the_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "Usage: pkb-letters" in result.output
    assert re.search(r"^\s+run\s", result.output, re.MULTILINE)
    assert re.search(r"^\s+sandbox\s", result.output, re.MULTILINE)


def test_run_help_offers_no_secret_option():
    result = invoke("run", "--help")
    assert result.exit_code == 0
    for option in ("--out", "--sandbox", "--api", "--template", "--config"):
        assert option in result.output
    assert not re.search(r"--\S*secret", result.output, re.IGNORECASE)
    # the client secret comes from the environment or a private file, never from argv
    for command in main.commands.values():
        for param in command.params:
            assert "secret" not in " ".join([param.name or "", *param.opts]).lower(), (command.name, param.opts)


# --- the demo job ----------------------------------------------------------------------------


def test_sandbox_run_succeeds_and_writes_every_output(demo_run):
    result, out_dir = demo_run
    assert result.exit_code == 0, result.output
    assert CHECK_LINE in result.stdout
    assert f"written to {out_dir}" in result.stdout
    for name in OUTPUTS:
        assert (out_dir / name).stat().st_size > 0, name
    job = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))["job"]
    assert (job["input_rows"], job["letters"], job["exceptions"]) == (15, 8, 7)
    for reason in set(EXPECTED_EXCLUSIONS.values()):
        assert re.search(rf"^\s+{reason}\s+1$", result.stdout, re.MULTILINE), reason


def test_rerunning_a_finished_job_resumes_it_and_changes_nothing(demo_run):
    _, out_dir = demo_run
    before = {name: (out_dir / name).read_bytes() for name in OUTPUTS}
    result = run_demo(out_dir)
    assert result.exit_code == 0, result.output
    assert "resumed" in result.stdout and CHECK_LINE in result.stdout
    assert {name: (out_dir / name).read_bytes() for name in OUTPUTS} == before


def test_a_run_with_a_different_list_into_a_job_folder_is_refused_and_changes_nothing(demo_run, tmp_path):
    _, out_dir = demo_run
    other_list = tmp_path / "other.csv"
    other_list.write_bytes(PATIENTS_CSV.read_bytes() + b"\n")
    before = {name: (out_dir / name).read_bytes() for name in OUTPUTS}
    result = invoke("run", other_list, "--out", out_dir, "--sandbox")
    assert result.exit_code == 2
    assert "different input file" in result.stderr and str(out_dir) in result.stderr
    assert "--restart" in result.stderr and "--out" in result.stderr  # says what to do instead
    assert {name: (out_dir / name).read_bytes() for name in OUTPUTS} == before


def test_run_without_sandbox_or_pkb_settings_names_the_missing_variables(tmp_path):
    out_dir = tmp_path / "job"
    result = invoke("run", PATIENTS_CSV, "--out", out_dir, env=NO_PKB_ENV)
    assert result.exit_code == 2
    for name in ("PKB_TOKEN_URL", "PKB_REST_BASE", "PKB_FHIR_BASE", "PKB_CLIENT_ID", "PKB_ORG_ID"):
        assert name in result.stderr
    assert not out_dir.exists()  # nothing started


def test_retry_after_an_unreadable_patient_list_is_allowed(tmp_path):
    bad_list = tmp_path / "patients.csv"
    bad_list.write_text("Forename,Surname\nRead,Richards\n", encoding="utf-8")
    out_dir = tmp_path / "job"
    refused = invoke("run", bad_list, "--out", out_dir, "--sandbox")
    assert refused.exit_code == 2 and "missing mandatory column NHS number" in refused.stderr
    retry = run_demo(out_dir)
    assert retry.exit_code == 0, retry.stderr


def test_rest_route(tmp_path):
    result = run_demo(tmp_path / "job", "--api", "rest")
    assert result.exit_code == 0, result.output
    assert CHECK_LINE in result.stdout
    job = json.loads((tmp_path / "job" / "manifest.json").read_text(encoding="utf-8"))["job"]
    assert job["api"] == "rest"


def test_job_file_letter_settings_appear_in_the_letters(tmp_path):
    job_file = tmp_path / "job.toml"
    job_file.write_text(
        "[letter]\n"
        'organisation = "Tyneside Test Hospitals NHS Trust"\n'
        'contact = "0191 000 0000, Monday to Friday"\n'
        'signatory = "Dr Ada Testington"\n'
        'signatory_role = "Chief Clinical Information Officer"\n',
        encoding="utf-8",
    )
    result = run_demo(tmp_path / "job", "--config", job_file)
    assert result.exit_code == 0, result.output
    text = "\n".join(page_texts(tmp_path / "job" / "letters.pdf"))
    for expected in ("Tyneside Test Hospitals NHS Trust", "0191 000 0000, Monday to Friday",
                     "Dr Ada Testington", "Chief Clinical Information Officer"):
        assert text.count(expected) >= len(EXPECTED_LETTERS), expected
    assert "Demo NHS Foundation Trust" not in text  # the job file wins over the sandbox's name


def test_job_file_with_an_unknown_letter_setting_is_refused(tmp_path):
    job_file = tmp_path / "job.toml"
    job_file.write_text('[letter]\norganisation = "X"\nsignature = "Dr Typo"\n', encoding="utf-8")
    result = run_demo(tmp_path / "job", "--config", job_file)
    assert result.exit_code == 2
    assert "unknown [letter] settings: signature" in result.stderr
    assert not (tmp_path / "job").exists()


# --- the installed console script ------------------------------------------------------------


def test_console_script_runs_the_readme_demo(tmp_path):
    out_dir = tmp_path / "job"
    completed = subprocess.run(
        [CONSOLE_SCRIPT, "run", PATIENTS_CSV.relative_to(REPO), "--out", out_dir, "--sandbox"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert CHECK_LINE in completed.stdout
    assert all((out_dir / name).is_file() for name in OUTPUTS)


def test_a_worker_started_from_the_console_script_imports_none_of_the_command_line():
    # what a spawned render or check worker does first: run the parent's main script as __mp_main__
    heavy = ["pkb_letters.cli", "pkb_letters.job.pipeline", "weasyprint", "distributed", "paramiko", "httpx"]
    code = ("import runpy, sys; runpy.run_path(sys.argv[1], run_name='__mp_main__'); "
            "print(' '.join(name for name in sys.argv[2:] if name in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", code, CONSOLE_SCRIPT, *heavy],
                               capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout.split() == []


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    """One line of the process's stdout, or '' if none comes within `timeout` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return proc.stdout.readline()


def test_console_script_sandbox_on_a_free_port_issues_tokens():
    credentials = json.loads(SANDBOX_JSON.read_text(encoding="utf-8"))["clients"][0]
    proc = subprocess.Popen(
        [CONSOLE_SCRIPT, "sandbox", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = _read_line(proc, timeout=30)
        match = re.match(r"PKB sandbox listening on (http://127\.0\.0\.1:(\d+)) ", line)
        assert match, f"stdout {line!r}, exit code {proc.poll()}"
        assert int(match.group(2)) != 0
        with httpx.Client(timeout=10) as client:
            response = client.post(
                match.group(1) + "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(credentials["client_id"], credentials["client_secret"]),
            )
        assert response.status_code == 200
        assert response.json()["token_type"] == "bearer"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert err == ""



def test_bad_sandbox_data_is_a_clear_error_not_a_traceback(tmp_path):
    bad = tmp_path / "sandbox.json"
    bad.write_text('{"patients": 3}', encoding="utf-8")
    result = invoke("run", PATIENTS_CSV, "--out", tmp_path / "job", "--sandbox", "--sandbox-data", bad)
    assert result.exit_code == 2
    assert "bad sandbox data" in result.stderr and "organisation" in result.stderr
    assert not (tmp_path / "job").exists()
