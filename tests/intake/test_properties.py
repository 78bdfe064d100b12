"""Properties of the whole job for any patient list: every row is accounted for, and no
deceased patient ever gets a letter.

Hypothesis builds lists from the rules fixture's rows (every rule, repeated, reordered, some
rows marked deceased), saves them in any encoding and separator a customer's export uses,
and runs the real job against the sandbox PKB on either route, with any job rules.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import tempfile
from pathlib import Path

from conftest import FIXTURES, SANDBOX_JSON, connection_to, demo_settings, no_weasyprint_warnings
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from pkb_letters.config import RuleSettings
from pkb_letters.intake import nhs_number
from pkb_letters.job.pipeline import run_job
from pkb_letters.sandbox import load_sandbox_data

HEADER, *POOL = [row for row in csv.reader(io.StringIO((FIXTURES / "rules" / "patients-utf8.csv")
                                                       .read_text(encoding="utf-8"), newline="")) if any(row)]
NHS, DECEASED = HEADER.index("NHS number"), HEADER.index("Deceased")
DIALECTS = [  # (encoding, byte order mark, separator, line end)
    ("utf-8", False, ",", "\n"), ("utf-8", True, ",", "\r\n"), ("cp1252", False, ",", "\r\n"),
    ("cp1252", False, ";", "\r\n"), ("utf-8", False, "\t", "\n"),
]
DEAD_ON_PKB = {
    n.value for p in load_sandbox_data(SANDBOX_JSON).patients if p.date_deceased for n in p.national_ids
}



@st.composite
def patient_lists(draw) -> list[tuple[int, bool]]:
    """Rows as (pool index, marked deceased). Drawn from a small cast of patients, so that the
    same patient often appears in several rows, sometimes marked deceased in only one of them."""
    cast = draw(st.lists(st.sampled_from(range(len(POOL))), min_size=1, max_size=4, unique=True))
    row = st.tuples(st.sampled_from(cast), st.sampled_from([False, False, True]))
    return draw(st.lists(row, min_size=1, max_size=6))


FIRST_LETTER_ROW = next(i for i, row in enumerate(POOL) if row[-1] == "letter/plain")


def _row(index: int, marked_dead: bool) -> list[str]:
    row = list(POOL[index])
    if marked_dead:
        row[DECEASED] = "Y"
    return row


def _write(path: Path, rows: list[list[str]], dialect) -> dict[int, list[str]]:
    """Write the list; give each row by the line its record starts on (header = 1)."""
    encoding, bom, separator, line_end = dialect
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=separator, lineterminator=line_end).writerows([HEADER, *rows])
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode(encoding))
    by_line, line = {}, 2
    for row in rows:
        by_line[line] = row
        line += 1 + sum(cell.count("\n") for cell in row)
    return by_line


def _number(row: list[str]) -> str | None:
    try:
        return nhs_number.normalise(row[NHS])
    except nhs_number.InvalidNhsNumber:
        return None


# Each example is a whole job (about half a second); a failing list has at most 6 rows, readable
# unshrunk, so the shrink phase (hundreds of jobs) is left out.
@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.generate])
@example(picks=[(FIRST_LETTER_ROW, False), (FIRST_LETTER_ROW, True)], dialect=DIALECTS[0], api="fhir",
         rules=RuleSettings())  # alive in one row, marked deceased in a later one
@given(
    picks=patient_lists(),
    dialect=st.sampled_from(DIALECTS),
    api=st.sampled_from(["fhir", "rest"]),
    rules=st.builds(RuleSettings, international_post=st.booleans(), postcode_check=st.booleans()),
)
def test_every_row_is_a_letter_or_an_exception_and_no_deceased_patient_gets_a_letter(sandbox, picks, dialect, api,
                                                                                       rules):
    rows = [_row(index, dead) for index, dead in picks]
    with tempfile.TemporaryDirectory() as folder:
        patients = Path(folder) / "patients.csv"
        by_line = _write(patients, rows, dialect)
        job_settings = dataclasses.replace(demo_settings(Path(folder) / "job", api), patients=patients, rules=rules)
        before = len(sandbox.issued())
        with no_weasyprint_warnings():
            summary = run_job(job_settings, connection_to(sandbox))
        issued = sandbox.issued()[before:]
        manifest = json.loads((job_settings.out_dir / "manifest.json").read_text(encoding="utf-8"))
        with (job_settings.out_dir / "exceptions.csv").open(encoding="utf-8", newline="") as handle:
            exceptions = list(csv.DictReader(handle))

    lettered = [entry["input_row"] for entry in manifest["letters"]]
    excluded = [int(row["input_row"]) for row in exceptions]
    assert summary.input_rows == len(rows) == summary.letters + summary.exceptions
    assert sorted(lettered + excluded) == sorted(by_line)  # each row exactly once

    dead = {_number(row) for row in rows if row[DECEASED] == "Y"} | DEAD_ON_PKB
    assert not [line for line in lettered if _number(by_line[line]) in dead]
    assert not [pair for pair in issued if pair.nhs_number in dead]  # not even a code pair
    assert len(issued) == len(lettered)
