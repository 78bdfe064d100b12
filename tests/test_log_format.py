"""Log lines mask NHS numbers whoever writes them, and `--log-format json` writes one object per line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PATIENTS_CSV

from pkb_letters.log import JsonFormatter, MaskingFormatter, mask_nhs_numbers

CLI = Path(sys.executable).parent / "pkb-letters"


@pytest.mark.parametrize("text, masked", [
    ("5760678914", "******8914"),
    ("/users/byNationalId/5760678914/NHS_NUMBER", "/users/byNationalId/******8914/NHS_NUMBER"),
    ("576 067 8914 and 576-067-8914", "******8914 and ******8914"),
    ("row 7: 9434765919,7569602005", "row 7: ******5919,******2005"),
    ("57606789141 (11 digits)", "57606789141 (11 digits)"),
    ("576067891 (9 digits)", "576067891 (9 digits)"),
    ("576 067-8914 (mixed separators)", "576 067-8914 (mixed separators)"),
    ("job PKB-20261121-3F9A0C: 15 rows", "job PKB-20261121-3F9A0C: 15 rows"),
])
def test_mask_nhs_numbers(text, masked):
    assert mask_nhs_numbers(text) == masked


def record(message: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("pkb_letters.pkb.resolve", logging.WARNING, __file__, 1, message, args, exc_info)
    rec.__dict__.update(extra)
    return rec


def test_text_lines_mask_message_arguments_and_tracebacks():
    try:
        raise ValueError("PKB had no answer for 5760678914")
    except ValueError:
        exc_info = sys.exc_info()
    line = MaskingFormatter("%(levelname)s %(message)s").format(record("patient %s", "9434765919", exc_info=exc_info))
    assert line.startswith("WARNING patient ******5919")
    assert "ValueError: PKB had no answer for ******8914" in line
    assert "5919" in line and "9434765919" not in line and "5760678914" not in line


def test_json_lines_carry_time_level_logger_message_and_extra_fields():
    entry = json.loads(JsonFormatter().format(record("resolve: %d asked", 15, stage="resolve", eligible=8)))
    assert entry.pop("time").endswith("+00:00")
    assert entry == {"level": "WARNING", "logger": "pkb_letters.pkb.resolve", "message": "resolve: 15 asked",
                     "stage": "resolve", "eligible": 8}


def test_json_lines_mask_nhs_numbers_in_extra_fields_and_exceptions():
    try:
        raise KeyError("7569602005")
    except KeyError:
        exc_info = sys.exc_info()
    line = JsonFormatter().format(record("no answer", exc_info=exc_info, nhs_number="5760678914"))
    entry = json.loads(line)
    assert entry["nhs_number"] == "******8914"
    assert "KeyError: '******2005'" in entry["exception"]
    assert "5760678914" not in line and "7569602005" not in line


def test_a_library_logging_an_nhs_number_is_masked_in_a_real_process():
    script = (
        "import logging; from pkb_letters.log import configure_logging; configure_logging(False, '{fmt}');"
        "logging.getLogger('httpx').warning('GET http://pkb/json/v2-beta/users/byNationalId/5760678914/NHS_NUMBER')"
    )
    for fmt in ("text", "json"):
        result = subprocess.run([sys.executable, "-c", script.format(fmt=fmt)], capture_output=True, text=True,
                                check=True)
        assert "byNationalId/******8914/NHS_NUMBER" in result.stderr
        assert "5760678914" not in result.stderr


def test_cli_json_logs_are_one_object_per_line(tmp_path):
    result = subprocess.run(
        [CLI, "--log-format", "json", "-v", "run", PATIENTS_CSV, "--sandbox", "--out", tmp_path / "job"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    pipeline_messages = [e["message"] for e in entries if e["logger"] == "pkb_letters.job.pipeline"]
    assert any(m.startswith("job PKB-") for m in pipeline_messages)
    assert "resolve: 14 patients asked, 8 eligible" in [e["message"] for e in entries]
    assert result.stdout.startswith("Job PKB-")  # the summary stays on stdout for people


def test_cli_refuses_an_unknown_log_format():
    result = subprocess.run([CLI, "--log-format", "xml", "run", "--help"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "'xml' is not one of 'text', 'json'" in result.stderr
