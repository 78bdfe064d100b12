"""Logs never carry codes, secrets or full NHS numbers, even at -v with httpx underneath."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PATIENTS_CSV, SANDBOX_JSON

CLI = Path(sys.executable).parent / "pkb-letters"


@pytest.mark.parametrize("api", ["fhir", "rest"])
def test_verbose_run_logs_no_codes_secrets_or_nhs_numbers(tmp_path, api):
    out = tmp_path / "job"
    result = subprocess.run(
        [CLI, "-v", "run", PATIENTS_CSV, "--sandbox", "--api", api, "--out", out],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    logged = result.stdout + result.stderr
    assert "INFO pkb_letters.job.pipeline resolve:" in logged  # verbose logging really was on

    with PATIENTS_CSV.open(encoding="utf-8", newline="") as handle:
        nhs_numbers = [row["NHS number"] for row in csv.DictReader(handle)]
    with sqlite3.connect(out / "job.sqlite") as db:
        pairs = db.execute("SELECT invitation_code, access_code FROM rows WHERE invitation_code IS NOT NULL")
        codes = [code for pair in pairs for code in pair]
    secret = json.loads(SANDBOX_JSON.read_text(encoding="utf-8"))["clients"][0]["client_secret"]

    assert len(codes) == 16
    leaked = [value for value in [*nhs_numbers, *codes, secret] if value in logged]
    assert leaked == []
