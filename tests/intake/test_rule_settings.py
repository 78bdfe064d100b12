"""The job's patient-safety rules: the [rules] table of the job file and the command-line flags."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, no_weasyprint_warnings

from pkb_letters.cli import main
from pkb_letters.config import RuleSettings, rule_settings
from pkb_letters.errors import ConfigError

RULES_LIST = FIXTURES / "rules" / "patients-utf8.csv"


@pytest.mark.parametrize(
    ("job", "flags", "expected"),
    [
        ({}, {}, RuleSettings(international_post=False, postcode_check=True)),
        ({"rules": {"international_post": True}}, {}, RuleSettings(True, True)),
        ({"rules": {"postcode_check": False}}, {}, RuleSettings(False, False)),
        ({"rules": {"international_post": True}}, {"international_post": False}, RuleSettings(False, True)),
        ({}, {"international_post": True, "postcode_check": False}, RuleSettings(True, False)),
        ({"rules": {"postcode_check": False}}, {"postcode_check": None}, RuleSettings(False, False)),
    ],
)
def test_flags_override_the_job_file(job, flags, expected):
    assert rule_settings(job, **flags) == expected


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ({"deceased_check": False}, "unknown [rules] settings: deceased_check"),
        ({"surname_check": False}, "unknown [rules] settings: surname_check"),
        ({"international_post": "yes"}, "must be true or false"),
    ],
)
def test_rules_that_cannot_be_set_are_refused(table, says):
    with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("]", r"\]")):
        rule_settings({"rules": table})


def test_run_with_rules_from_the_job_file_and_a_flag(tmp_path):
    job_file = tmp_path / "job.toml"
    job_file.write_text("[rules]\npostcode_check = false\n", encoding="utf-8")
    out_dir = tmp_path / "job"
    with no_weasyprint_warnings():
        result = CliRunner().invoke(
            main,
            ["run", str(RULES_LIST), "--out", str(out_dir), "--sandbox", "--api", "rest", "--config", str(job_file),
             "--international-post"],
            catch_exceptions=False,
        )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    assert {entry["postage"] for entry in manifest["letters"]} == {"uk", "europe"}
    with (out_dir / "exceptions.csv").open(encoding="utf-8", newline="") as handle:
        held = [row["customer_ref"] for row in csv.DictReader(handle) if row["reason"] == "demographics-mismatch"]
    assert held == ["demographics-mismatch/surname", "demographics-mismatch/date-of-birth"]


def test_run_refuses_a_bad_rules_table_before_starting(tmp_path):
    job_file = tmp_path / "job.toml"
    job_file.write_text("[rules]\ndeceased_check = false\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["run", str(RULES_LIST), "--out", str(tmp_path / "job"), "--sandbox", "--config", str(job_file)]
    )
    assert result.exit_code == 2 and "unknown [rules] settings: deceased_check" in result.stderr
    assert not (tmp_path / "job").exists()


def test_the_example_job_file_spells_the_defaults():
    from pkb_letters.config import load_job_file

    assert rule_settings(load_job_file(FIXTURES / "job.example.toml")) == RuleSettings()
