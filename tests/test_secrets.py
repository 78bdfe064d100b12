"""A real job with a known client secret and the codes the sandbox really issued: neither
(nor a full NHS number) appears in any log line or any file the run wrote, beyond the
files whose job is to hold them (the journal until purge; exceptions.csv for NHS numbers)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PATIENTS_CSV, SANDBOX_JSON

from pkb_letters.cli import main
from pkb_letters.sandbox import SandboxServer, load_sandbox_data

CLI = Path(sys.executable).parent / "pkb-letters"
PRINT_FILE = "letters.pdf"


@pytest.fixture(scope="module")
def secret_sandbox(tmp_path_factory) -> Iterator[SandboxServer]:
    """A sandbox whose client secret exists only in this test."""
    data = json.loads(SANDBOX_JSON.read_text(encoding="utf-8"))
    data["clients"][0]["client_secret"] = f"known-secret-{secrets.token_hex(8)}"
    path = tmp_path_factory.mktemp("sandbox") / "sandbox.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with SandboxServer(load_sandbox_data(path)) as server:
        yield server


def pkb_env(server: SandboxServer, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PKB_")}
    return {**env, "PKB_TOKEN_URL": server.token_url, "PKB_REST_BASE": server.rest_base,
            "PKB_FHIR_BASE": server.fhir_base, "PKB_CLIENT_ID": server.client_id, "PKB_ORG_ID": server.org_id,
            **extra}


def nhs_numbers() -> list[str]:
    with PATIENTS_CSV.open(encoding="utf-8", newline="") as handle:
        return [row["NHS number"] for row in csv.DictReader(handle)]


def written_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def where(value: str, files: dict[str, bytes]) -> set[str]:
    return {name for name, content in files.items() if value.encode() in content}


def cli(*args, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("api, log_format, secret_from", [
    ("fhir", "text", "file"), ("rest", "json", "environment"), ("fhir", "json", "file"),
])
def test_no_secret_code_or_nhs_number_outside_the_files_made_to_hold_them(
    tmp_path, secret_sandbox, api, log_format, secret_from
):
    secret = secret_sandbox.client_secret
    env = pkb_env(secret_sandbox)
    job_file = tmp_path / "conf" / "job.toml"
    job_file.parent.mkdir()
    if secret_from == "file":
        (job_file.parent / "secret.txt").write_text(secret + "\n")
        (job_file.parent / "secret.txt").chmod(0o600)
        job_file.write_text('[pkb]\nclient_secret_file = "secret.txt"\n')
    else:
        job_file.write_text("[letter]\n")
        env["PKB_CLIENT_SECRET"] = secret
    out = tmp_path / "job"
    before = len(secret_sandbox.issued())

    run = cli("-v", "--log-format", log_format, "run", PATIENTS_CSV, "--api", api, "--config", job_file,
              "--out", out, env=env)
    issued = secret_sandbox.issued()[before:]
    codes = [code for pair in issued for code in (pair.invitation_code, pair.access_code)]
    files = {name: content for name, content in written_files(out).items() if name != PRINT_FILE}
    logged = run.stdout + run.stderr

    assert len(codes) == 16 and "resolve:" in logged  # a real run, with verbose logging on
    assert set(files) == {"job.sqlite", "manifest.json", "manifest.csv", "exceptions.csv"}
    assert secret not in logged and where(secret, files) == set()
    assert [c for c in codes if c in logged] == []
    assert {c: where(c, files) for c in codes} == {c: {"job.sqlite"} for c in codes}  # until purge
    assert [n for n in nhs_numbers() if n in logged] == []
    assert all(where(n, files) <= {"job.sqlite", "exceptions.csv"} for n in nhs_numbers())

    purged = cli("-v", "--log-format", log_format, "purge", out, "--dispatched-on", dt.date.today(), env=env)
    files = written_files(out)
    logged = purged.stdout + purged.stderr

    assert PRINT_FILE not in files and "purge.json" in files
    assert {c: where(c, files) for c in codes} == {c: set() for c in codes}
    assert secret not in logged and where(secret, files) == set()
    assert [c for c in codes if c in logged] == [] and [n for n in nhs_numbers() if n in logged] == []


def test_a_refused_secret_is_not_repeated_in_the_error(tmp_path, secret_sandbox):
    wrong = f"wrong-secret-{secrets.token_hex(8)}"
    result = subprocess.run(
        [CLI, "-v", "run", PATIENTS_CSV, "--out", tmp_path / "job"],
        capture_output=True, text=True, timeout=300, env=pkb_env(secret_sandbox, PKB_CLIENT_SECRET=wrong),
    )
    assert result.returncode == 1
    assert "PKB refused the client credentials" in result.stderr
    output = result.stdout + result.stderr
    assert wrong not in output and secret_sandbox.client_secret not in output
    assert "Traceback" not in output


@pytest.mark.parametrize("command", [[], ["run"], ["sandbox"], ["purge"]])
def test_help_never_shows_the_secret(secret_sandbox, command):
    env = pkb_env(secret_sandbox, PKB_CLIENT_SECRET=secret_sandbox.client_secret)
    result = CliRunner().invoke(main, [*command, "--help"], env=env)
    assert result.exit_code == 0
    assert secret_sandbox.client_secret not in result.output
    assert "secret" not in result.output.lower()  # no option to pass one on a command line


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_secret_file_others_can_read_is_refused_without_quoting_it(tmp_path, secret_sandbox, mode):
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(secret_sandbox.client_secret)
    secret_file.chmod(mode)
    (tmp_path / "job.toml").write_text('[pkb]\nclient_secret_file = "secret.txt"\n')
    result = CliRunner().invoke(
        main, ["run", str(PATIENTS_CSV), "--config", str(tmp_path / "job.toml"), "--out", str(tmp_path / "job")],
        env=pkb_env(secret_sandbox),
    )
    assert result.exit_code == 2
    assert f"secret file {secret_file} can be read by other users" in result.output
    assert f"chmod 600 {secret_file}" in result.output
    assert secret_sandbox.client_secret not in result.output
    assert not (tmp_path / "job").exists()
