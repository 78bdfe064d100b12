"""The rules fixture: one row per rule, in every encoding and separator a customer's export uses.

`fixtures/rules/patients-*.csv` hold the same rows. Each row's customer reference starts with
the outcome it is built for (`letter/...` or a reason code), so the tests read the expectation
from the row itself. PKB's side of each row is in `fixtures/sandbox.json`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import pytest
from conftest import FIXTURES, connection_to, demo_settings, no_weasyprint_warnings

from pkb_letters.config import RuleSettings
from pkb_letters.intake.validate import validate_list
from pkb_letters.job.manifest import EXCEPTION_FIELDS
from pkb_letters.job.pipeline import JobSummary, run_job
from pkb_letters.records import Reason

RULES = FIXTURES / "rules"
MASTER = RULES / "patients-utf8.csv"
VARIANTS = {  # file: (encoding, separator, line end)
    "patients-utf8.csv": ("utf-8", ",", b"\n"),
    "patients-utf8-bom-crlf.csv": ("utf-8-sig", ",", b"\r\n"),
    "patients-cp1252-crlf.csv": ("cp1252", ",", b"\r\n"),
    "patients-cp1252-semicolon.csv": ("cp1252", ";", b"\r\n"),
    "patients-utf8-tab.csv": ("utf-8", "\t", b"\n"),
}
# Reasons no row of a list can be built for: the default template fits 7 lines, and the others
# come from PKB's answers or the template's failures, not from the data.
# The default template has a Welsh letter, so no row asking for Welsh fails for the want of one.
NOT_FROM_A_LIST = {
    Reason.ADDRESS_TOO_TALL,
    Reason.PKB_REFUSED,
    Reason.TEMPLATE_ERROR,
    Reason.MAILMARK_MISSING,  # from the mail house's file of Mailmarks (supplied mode), not from the list
    Reason.MAILMARK_INVALID,
    Reason.MAILMARK_UNSORTED,
    Reason.EXPIRY_UNREADABLE,
    Reason.NO_WELSH_TEMPLATE,
}
# The rules lists carry no postage class, format or language column; test_intake has those rules' own rows
# (and tests/job/test_variants.py the missing Welsh letter's).
NOT_IN_THE_RULES_LISTS = {Reason.INVALID_POSTAGE_CLASS, Reason.INVALID_FORMAT, Reason.INVALID_LANGUAGE}
# PKB's $status-query returns the date of birth only: the FHIR route cannot see these.
FHIR_CANNOT_SEE = {"demographics-mismatch/surname", "demographics-mismatch/postcode"}
# Reasons intake and the address fit give, before PKB is asked.
LIST_REASONS = {
    "malformed-row", "invalid-nhs-number", "duplicate-nhs-number", "missing-name", "invalid-date-of-birth",
    "address-too-few-lines", "address-too-many-lines", "address-bad-postcode",
    "address-invalid-character", "address-no-fixed-abode", "address-international", "address-too-wide",
}
LIST_DECEASED = {"deceased/marked-in-the-list", "deceased/same-patient-marked-deceased-in-a-later-row"}


def rows_of(name: str) -> list[list[str]]:
    encoding, separator, _ = VARIANTS[name]
    text = (RULES / name).read_bytes().decode(encoding)
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=separator))


def refs() -> list[str]:
    header, *rows = rows_of(MASTER.name)
    column = header.index("Customer ref")
    return [row[column] for row in rows if any(row)]


DEFAULT_RULES = RuleSettings()


def expected(ref: str, api: str = "rest", rules: RuleSettings = DEFAULT_RULES) -> str:
    if api == "fhir" and ref in FHIR_CANNOT_SEE:
        return "letter"
    if rules.international_post and ref == "address-international":
        return "letter"
    if not rules.postcode_check and ref == "demographics-mismatch/postcode":
        return "letter"
    return ref.split("/")[0]


def test_one_row_for_every_rule():
    outcomes = {expected(ref) for ref in refs()}
    assert outcomes == {"letter"} | {reason.value for reason in Reason} - NOT_FROM_A_LIST - NOT_IN_THE_RULES_LISTS
    assert len(refs()) == len(set(refs()))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_holds_the_same_rows(name):
    encoding, _, line_end = VARIANTS[name]
    data = (RULES / name).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
    inside_cells = sum(cell.count("\n") for row in rows_of(MASTER.name) for cell in row)  # Excel's Alt+Enter: LF
    assert data.count(b"\r\n") == (data.count(b"\n") - inside_cells if line_end == b"\r\n" else 0)
    if encoding == "cp1252":
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")  # really Windows-1252, not ASCII that happens to be both
    assert rows_of(name) == rows_of(MASTER.name)
    assert rows_of(name)[-2:] == [[""] * 14, []]  # trailing blank rows, as spreadsheets leave them


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_intake_and_address_checks_give_each_row_its_outcome_in_every_variant(name):
    report = validate_list(RULES / name)
    assert report.encoding == VARIANTS[name][0] and report.delimiter == VARIANTS[name][1]
    assert report.input_rows == len(refs())
    outcome = {e.customer_ref: e.reason.value for e in report.exclusions}
    outcome |= {p.customer_ref: "ready" for p in report.ready}
    assert outcome == {ref: _before_pkb(ref) for ref in refs()}


def _before_pkb(ref: str) -> str:
    """What intake and the address fit alone decide for the row: an exclusion, or on to PKB."""
    if ref in LIST_DECEASED:
        return "deceased"
    return expected(ref) if expected(ref) in LIST_REASONS else "ready"


# --- the whole job against the sandbox --------------------------------------------------------------


@dataclasses.dataclass
class Job:
    summary: JobSummary
    manifest: dict
    exceptions: list[dict]
    issued: list


@pytest.fixture(scope="module", ids=["fhir", "rest"],
                params=[("fhir", "patients-cp1252-semicolon.csv"), ("rest", "patients-utf8-bom-crlf.csv")])
def job(request, sandbox, tmp_path_factory) -> tuple[str, Job]:
    api, name = request.param
    return api, _run(sandbox, tmp_path_factory.mktemp(f"rules-{api}"), name, api)


def _run(sandbox, tmp_path, name: str, api: str, rules: RuleSettings = DEFAULT_RULES) -> Job:
    settings = dataclasses.replace(demo_settings(tmp_path, api), patients=RULES / name, rules=rules)
    before = len(sandbox.issued())
    with no_weasyprint_warnings():
        summary = run_job(settings, connection_to(sandbox))
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    with (tmp_path / "exceptions.csv").open(encoding="utf-8", newline="") as handle:
        exceptions = list(csv.DictReader(handle))
    return Job(summary, manifest, exceptions, sandbox.issued()[before:])


def _outcomes(manifest: dict, exceptions: list[dict]) -> dict[str, str]:
    ref_at = {line: ref for line, ref in _refs_by_line().items()}
    outcome = {row["customer_ref"]: row["reason"] for row in exceptions}
    outcome |= {ref_at[entry["input_row"]]: "letter" for entry in manifest["letters"]}
    return outcome


def _refs_by_line() -> dict[int, str]:
    """Customer reference by the line where its record starts (one record spans two lines)."""
    text = MASTER.read_text(encoding="utf-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)
    found, line = {}, 2
    for row in reader:
        if any(row):
            found[line] = row[13]
        line = reader.line_num + 1
    return found


def test_every_row_gets_its_outcome_from_the_whole_job(job):
    api, done = job
    summary = done.summary
    assert summary.input_rows == len(refs()) == summary.letters + summary.exceptions
    assert _outcomes(done.manifest, done.exceptions) == {ref: expected(ref, api) for ref in refs()}
    assert list(done.exceptions[0]) == list(EXCEPTION_FIELDS)
    assert len(done.issued) == summary.letters  # codes only for letters printed
    assert summary.by_reason == {r: sum(expected(x, api) == r for x in refs()) for r in summary.by_reason}


def test_bfpo_and_multi_line_letters_print_royal_mail_lines(job):
    lines = {entry["name"]: entry["address_lines"] for entry in job[1].manifest["letters"]}
    assert lines["Sgt Daniel Hughes"] == ["1st Battalion The Rifles", "BF1 4FB", "BFPO 38"]
    assert lines["Ms Grace Oduya"] == ["Flat 2", "5 Market Street", "LEEDS", "LS1 6DT"]
    assert lines["Mr José García-Pérez"][-1] == "E1 6AN"


def test_demographics_mismatch_names_the_field_never_the_values(job):
    api, done = job
    held = {row["customer_ref"]: row["detail"] for row in done.exceptions if row["reason"] == "demographics-mismatch"}
    assert set(held) == {ref for ref in refs() if expected(ref, api) == "demographics-mismatch"}
    for ref, detail in held.items():
        field = ref.split("/")[1].replace("-", " ")
        assert f"different {field} from the list" in detail
    values = ["Robertson", "Robinson", "1981", "1980", "LS6 1AE", "LS9 8EP", "LS61AE", "LS98EP"]
    assert not [v for v in values for detail in held.values() if v.lower() in detail.lower()]


def test_international_post_and_no_postcode_check(sandbox, tmp_path):
    rules = RuleSettings(international_post=True, postcode_check=False)
    done = _run(sandbox, tmp_path, MASTER.name, "rest", rules)
    assert _outcomes(done.manifest, done.exceptions) == {ref: expected(ref, "rest", rules) for ref in refs()}
    abroad = next(e for e in done.manifest["letters"] if e["name"] == "Mme Camille Dubois")
    assert abroad["address_lines"] == ["12 Rue de Rivoli", "PARIS", "75001", "FRANCE"]
    assert (abroad["postage"], abroad["postcode"]) == ("europe", "")
    assert {e["postage"] for e in done.manifest["letters"] if e is not abroad} == {"uk"}
    # surname and date of birth are still compared: those parts cannot be turned off
    assert done.summary.by_reason["demographics-mismatch"] == 2
