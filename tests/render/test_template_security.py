"""Templates are untrusted input: no escape from Jinja's sandbox, hostile names print as
typed, and one patient's bad data costs that patient's letter, not the job."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PATIENTS_CSV, connection_to, demo_settings, edited_default_template
from pdf_inspect import page_texts

from pkb_letters.cli import main
from pkb_letters.config import DEFAULT_TEMPLATE
from pkb_letters.errors import TemplateError, UnsafeTemplateError
from pkb_letters.job.pipeline import run_job
from pkb_letters.render.chunks import LetterTemplate

ADDRESS = '<div class="pkb-address-window">{% for line in address.lines %}<p>{{ line }}</p>{% endfor %}</div>\n'


def make_template(folder: Path, body: str, css: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "letter.html").write_text(ADDRESS + body, encoding="utf-8")
    (folder / "letter.css").write_text(css, encoding="utf-8")
    return folder


ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ ''['__class__'] }}",
    "{{ patient|attr('__class__') }}",
    "{{ self._TemplateReference__context }}",
    "{{ joiner.mro() }}",
    "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{% set g = namespace.__init__.__globals__ %}",
]


@pytest.mark.parametrize("escape", ESCAPES)
def test_reaching_for_python_internals_fails_on_load_naming_file_and_line(tmp_path, escape):
    folder = make_template(tmp_path / "hostile", f"<p>Hello</p>\n<p>{escape}</p>\n")
    with pytest.raises(TemplateError, match=r"letter\.html, line 3: reaches for Python internals"):
        LetterTemplate(folder)


def _stopped_before_any_code(folder: Path, tmp_path: Path, sandbox) -> str:
    """Run a job with the template; it must fail cleanly with no code issued. Its output."""
    before = len(sandbox.issued())
    result = CliRunner().invoke(
        main, ["run", str(PATIENTS_CSV), "--sandbox", "--template", str(folder), "--out", str(tmp_path / "job")]
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert len(sandbox.issued()) == before
    return result.output


def test_an_escape_attempt_stops_the_job_before_any_code_is_issued(tmp_path, sandbox):
    folder = make_template(tmp_path / "hostile", "<p>{{ cycler.__init__.__globals__.os }}</p>\n")
    output = _stopped_before_any_code(folder, tmp_path, sandbox)
    assert "letter.html, line 2: reaches for Python internals ('__init__')" in output
    assert not (tmp_path / "job").exists()


def test_an_escape_built_at_run_time_is_stopped_by_the_sandbox_and_stops_the_job(tmp_path, sandbox):
    # No literal dunder for the load-time check to see: Jinja's sandbox refuses it when rendering.
    body = "<p>ok</p>\n<p>{{ (patient.first_name | attr('_' ~ '_class__')).x }}</p>\n"
    folder = make_template(tmp_path / "sly", body)
    LetterTemplate(folder)  # loads
    before = len(sandbox.issued())
    with pytest.raises(UnsafeTemplateError, match=r"sly/letter\.html, line 3: access to attribute '__class__'"):
        run_job(demo_settings(tmp_path / "job", "fhir", template_dir=folder), connection_to(sandbox))
    assert len(sandbox.issued()) == before


def test_default_template_passes_the_load_time_check():
    LetterTemplate(DEFAULT_TEMPLATE)


HOSTILE_NAMES = {"5760678914": "<img src=x onerror=alert(1)>", "9434765919": "{{7*7}}"}


def hostile_patient_list(path: Path) -> Path:
    with PATIENTS_CSV.open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["NHS number"] in HOSTILE_NAMES]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "First name": HOSTILE_NAMES[row["NHS number"]]})
    return path


@pytest.mark.parametrize("api", ["fhir", "rest"])
def test_hostile_names_print_exactly_as_typed(tmp_path, sandbox, api):
    settings = demo_settings(tmp_path / "job", api)
    settings = type(settings)(**{**settings.__dict__, "patients": hostile_patient_list(tmp_path / "hostile.csv")})
    summary = run_job(settings, connection_to(sandbox))
    assert summary.letters == 2

    lines = "\n".join(page_texts(tmp_path / "job" / "letters.pdf")).splitlines()
    assert [line for line in lines if "Richards" in line][0] == "Mr <img src=x onerror=alert(1)> Richards"
    assert [line for line in lines if "Adeyemi" in line][0] == "Mr {{7*7}} Adeyemi"  # never evaluated: no 49


def copy_default_template_with(folder: Path, line: str) -> tuple[Path, int]:
    """The default template with one extra line after <main>; gives the folder and that line's number."""
    shutil.copytree(DEFAULT_TEMPLATE, folder)
    html = (folder / "letter.html").read_text(encoding="utf-8").splitlines()
    at = next(n for n, text in enumerate(html) if 'class="pkb-body"' in text) + 1
    html.insert(at, line)
    (folder / "letter.html").write_text("\n".join(html) + "\n", encoding="utf-8")
    return folder, at + 1


@pytest.mark.parametrize("api", ["fhir", "rest"])
def test_template_failing_on_one_patients_data_excludes_that_row_and_the_job_goes_on(tmp_path, sandbox, api):
    # A template author's ASCII-only name: fine for every patient but Zoë (DEMO-0002).
    folder, line = copy_default_template_with(
        tmp_path / "ascii", "<p>{{ patient.first_name.encode('ascii').decode() }}</p>"
    )
    before = len(sandbox.issued())
    summary = run_job(demo_settings(tmp_path / "job", api, template_dir=folder), connection_to(sandbox))
    issued = sandbox.issued()[before:]

    with (tmp_path / "job" / "exceptions.csv").open(encoding="utf-8", newline="") as handle:
        exceptions = {row["customer_ref"]: row for row in csv.DictReader(handle)}
    zoe = exceptions["DEMO-0002"]
    assert zoe["reason"] == "template-error"
    assert zoe["detail"].startswith(f"ascii/letter.html, line {line}: UnicodeEncodeError: 'ascii' codec")
    assert summary.letters == 7 and summary.input_rows == summary.letters + summary.exceptions
    assert "7569602005" not in {pair.nhs_number for pair in issued}  # excluded before a code was asked for
    assert len(issued) == 7


def test_a_fixed_box_stops_the_job_before_any_code_is_issued(tmp_path, sandbox):
    """WeasyPrint draws a fixed box on every page of a chunk of letters: one patient's details in it
    would print on the other patients' letters."""
    fixed = '<p style="position: fixed; top: 0">For {{ patient.last_name }}</p>\n<main class="pkb-body">'
    folder = edited_default_template(tmp_path / "fixed", '<main class="pkb-body">', fixed)
    assert "fixed/letter.html: <p> is position: fixed" in _stopped_before_any_code(folder, tmp_path, sandbox)
