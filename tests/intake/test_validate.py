"""`validate`: the list's own checks (intake and address fit) with no PKB call, and the same report a run writes."""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import shutil
import stat

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, PATIENTS_CSV, connection_to, demo_settings, no_weasyprint_warnings

from pkb_letters.cli import main
from pkb_letters.config import DEFAULT_TEMPLATE, RuleSettings
from pkb_letters.errors import ConfigError, InputFileError
from pkb_letters.intake.validate import validate_list, write_report
from pkb_letters.job.pipeline import run_job

RULES_LIST = FIXTURES / "rules" / "patients-cp1252-semicolon.csv"
NO_PKB = {name: None for name in os.environ if name.startswith("PKB_")}


def read_csv(path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], env=NO_PKB, catch_exceptions=False)


def test_validate_reports_what_a_run_reports_for_the_lists_own_problems(sandbox, tmp_path):
    report = validate_list(RULES_LIST)
    written = write_report(report, tmp_path / "checked")
    with no_weasyprint_warnings():
        run_job(dataclasses.replace(demo_settings(tmp_path / "run", "rest"), patients=RULES_LIST),
                connection_to(sandbox))
    from_run = read_csv(tmp_path / "run" / "exceptions.csv")
    from_validate = read_csv(written)
    assert list(from_validate[0]) == ["input_row", "customer_ref", "nhs_number", "reason", "detail"]
    # the run's report is the validation's report plus what PKB said, row for row
    validated_rows = {row["input_row"] for row in from_validate}
    assert [row for row in from_run if row["input_row"] in validated_rows] == from_validate
    assert {row["input_row"] for row in from_run} - validated_rows  # PKB's reasons come only with a run
    assert report.input_rows == len(report.ready) + len(report.exclusions)


def test_validate_lays_out_addresses_in_the_letters_font(tmp_path):
    report = validate_list(PATIENTS_CSV)
    assert [(e.customer_ref, e.reason.value) for e in report.exclusions] == [("DEMO-0015", "address-too-wide")]
    assert re.search(r"\d+\.\d mm wide in the letter's font", report.exclusions[0].detail)


def test_validate_with_international_post(tmp_path):
    uk_only = validate_list(RULES_LIST)
    abroad = validate_list(RULES_LIST, rules=RuleSettings(international_post=True))
    assert "address-international" in uk_only.by_reason and "address-international" not in abroad.by_reason
    assert len(abroad.ready) == len(uk_only.ready) + 1


def test_command_needs_no_pkb_connection_and_prints_counts_per_reason(tmp_path):
    result = invoke("validate", RULES_LIST, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "Checked 35 rows (cp1252, semicolon-separated); no PKB call made" in result.stdout
    assert re.search(r"^\s+invalid-nhs-number\s+4$", result.stdout, re.MULTILINE)
    assert re.search(r"^\s+address-too-wide\s+1$", result.stdout, re.MULTILINE)
    assert re.search(r"^\s+ready for PKB\s+18$", result.stdout, re.MULTILINE)
    report = tmp_path / "out" / "exceptions.csv"
    assert f"see {report}" in result.stdout
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700
    assert len(read_csv(report)) == 17  # 35 rows, 18 of which go on to PKB


def test_command_rewrites_its_report_but_never_a_runs(tmp_path):
    assert invoke("validate", PATIENTS_CSV, "--out", tmp_path).exit_code == 0
    assert invoke("validate", PATIENTS_CSV, "--out", tmp_path).exit_code == 0  # after fixing the list, again
    (tmp_path / "job.sqlite").write_bytes(b"")
    refused = invoke("validate", PATIENTS_CSV, "--out", tmp_path)
    assert refused.exit_code == 2 and "holds a job" in refused.stderr


def test_command_refuses_an_unreadable_list_like_a_run(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"First name,Last name,NHS number\nAnna,Sm\x81ith,9434765919\n")
    result = invoke("validate", bad, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "offset 39" in result.stderr
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputFileError):
        validate_list(bad)


def test_write_report_refuses_a_job_folder(tmp_path):
    (tmp_path / "job.sqlite").write_bytes(b"")
    with pytest.raises(ConfigError, match="choose another --out"):
        write_report(validate_list(PATIENTS_CSV), tmp_path)


def test_help_lists_validate_and_the_rule_flags():
    assert re.search(r"^\s+validate\s", invoke("--help").stdout, re.MULTILINE)
    run_help = invoke("run", "--help").stdout
    for flag in ("--international-post", "--no-postcode-check"):
        assert flag in run_help
    assert "--international-post" in invoke("validate", "--help").stdout


# --- the address fit is measured in the template's font, not counted in characters -------------------


def _list(tmp_path, *address_rows: list[str]):
    header = "First name,Last name,NHS number,Address1,Address2,Address3,Address4,Address5,City,Post code\n"
    numbers = ["9434765919", "5760678914", "7569602005"]
    lines = [",".join(["Al", "Ng", number, *row]) + "\n" for number, row in zip(numbers, address_rows, strict=False)]
    path = tmp_path / "patients.csv"
    path.write_text(header + "".join(lines), encoding="utf-8")
    return path


def test_width_is_measured_with_the_font_not_counted_in_characters(tmp_path):
    wide, narrow = "W" * 38, "i" * 38  # the same number of characters
    path = _list(tmp_path, [wide, "", "", "", "", "LEEDS", "LS1 1UR"], [narrow, "", "", "", "", "LEEDS", "LS1 1UR"])
    report = validate_list(path)
    assert [(e.input_row, e.reason.value) for e in report.exclusions] == [(2, "address-too-wide")]
    assert [p.input_row for p in report.ready] == [3]


def test_too_many_lines_for_the_window_height_at_the_templates_font(tmp_path):
    template = tmp_path / "big-address"
    shutil.copytree(DEFAULT_TEMPLATE, template)
    with (template / "letter.css").open("a", encoding="utf-8") as css:
        css.write("\n.pkb-address-window { font-size: 12pt; line-height: 1.5; }\n")  # Royal Mail allows 12 pt
    seven = ["1 Mill Lane", "Lower Town", "Upper Ward", "Parish", "", "LEEDS", "LS1 1UR"]  # 7 with the name
    three = ["1 Mill Lane", "", "", "", "", "LEEDS", "LS1 1UR"]
    path = _list(tmp_path, seven, three)
    assert not validate_list(path).exclusions  # the default template fits the 7 lines Royal Mail allows
    report = validate_list(path, template)
    assert [(e.input_row, e.reason.value) for e in report.exclusions] == [(2, "address-too-tall")]
    assert "mm tall in the letter's font" in report.exclusions[0].detail
