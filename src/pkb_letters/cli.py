"""The command line: parse options, call the library, map errors to exit codes. Nothing else."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from . import config
from .errors import ConfigError, PkbLettersError
from .log import configure_logging
from .pipeline import PRINT_FILE, JobSummary, run_job
from .progress import NoProgress, TerminalProgress
from .validate import ValidationReport, validate_list, write_report

REPO_DIR = config.PACKAGE_DIR.parent.parent
DEFAULT_SANDBOX_DATA = REPO_DIR / "fixtures" / "sandbox.json"


@click.group()
@click.version_option(package_name="pkb-letters")
@click.option("-v", "--verbose", is_flag=True, help="Log each stage's progress to stderr.")
def main(verbose: bool) -> None:
    """Patients Know Best invitation letters, from patient list to print-ready PDF."""
    configure_logging(verbose)


@main.command()
@click.argument("patients", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for letters.pdf, the manifests, exceptions.csv and the job journal.")
@click.option("--sandbox", is_flag=True, help="Start the embedded PKB sandbox and use it (no PKB account needed).")
@click.option("--sandbox-data", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=DEFAULT_SANDBOX_DATA, show_default=True, help="Patients the sandbox knows.")
@click.option("--api", type=click.Choice(config.APIS), default="fhir", show_default=True,
              help="PKB route: FHIR $status-query + $generate-invitation-tokens, or REST.")
@click.option("--template", "template_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=config.DEFAULT_TEMPLATE, show_default=True, help="Letter template folder.")
@click.option("--config", "job_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Job file (TOML) with [pkb], [letter], [codes] and [rules] tables.")
@click.option("--international-post/--uk-post-only", "international_post", default=None,
              help="Post letters abroad too (the last address line names the country). Default: the job "
                   "file's [rules] international_post, else UK only.")
@click.option("--postcode-check/--no-postcode-check", "postcode_check", default=None,
              help="Compare the list's postcode with PKB's record (REST route). Surname and date of birth "
                   "are always compared. Default: the job file's [rules] postcode_check, else on.")
def run(patients: Path, out_dir: Path, sandbox: bool, sandbox_data: Path, api: str,
        template_dir: Path, job_file: Path | None, international_post: bool | None,
        postcode_check: bool | None) -> None:
    """Make letters for every eligible patient in PATIENTS (CSV)."""
    with _errors_to_exit_codes():
        job = config.load_job_file(job_file)
        job_dir = job_file.parent if job_file else Path.cwd()
        with _connection(job, job_dir, sandbox, sandbox_data) as (connection, join_url, organisation):
            letter = config.letter_settings(job, join_url)
            if "organisation" not in job.get("letter", {}) and organisation:
                letter = dataclasses.replace(letter, organisation=organisation)
            settings = config.JobSettings(
                patients=patients,
                out_dir=out_dir,
                api=api,
                template_dir=template_dir,
                letter=letter,
                rest_code_validity_days=int(job.get("codes", {}).get("rest_validity_days", 30)),
                rules=config.rule_settings(job, international_post, postcode_check),
            )
            progress = TerminalProgress() if sys.stderr.isatty() else NoProgress()
            summary = run_job(settings, connection, progress)
        _print_summary(summary)


@main.command()
@click.argument("patients", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Folder for exceptions.csv (it holds NHS numbers: keep it private).")
@click.option("--template", "template_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=config.DEFAULT_TEMPLATE, show_default=True, help="Letter template whose address window to fit.")
@click.option("--config", "job_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Job file (TOML); its [letter] and [rules] tables are used.")
@click.option("--international-post/--uk-post-only", "international_post", default=None,
              help="Accept addresses abroad (the last line names the country).")
def validate(patients: Path, out_dir: Path, template_dir: Path, job_file: Path | None,
             international_post: bool | None) -> None:
    """Check PATIENTS (CSV) without calling PKB: intake and address rules, and that every address
    fits the envelope window in the letter's font. Writes exceptions.csv as a run would."""
    with _errors_to_exit_codes():
        job = config.load_job_file(job_file)
        report = validate_list(
            patients,
            template_dir,
            config.letter_settings(job, config.PRODUCTION_JOIN_URL),
            config.rule_settings(job, international_post),
        )
        written = write_report(report, out_dir)
    _print_validation(report, written)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True, type=int)
@click.option("--data", "data_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=DEFAULT_SANDBOX_DATA, show_default=True)
@click.option("--token-ttl", type=int, default=None, help="OAuth access token lifetime in seconds.")
def sandbox(host: str, port: int, data_path: Path, token_ttl: int | None) -> None:
    """Serve the PKB sandbox (OAuth, REST and FHIR) until interrupted."""
    from .sandbox import serve

    with _errors_to_exit_codes():
        _sandbox_data(data_path)  # refuse bad data with a clear message before binding the port
        serve(data_path, host=host, port=port, token_ttl=token_ttl)


@contextmanager
def _connection(job: dict, job_dir: Path, sandbox: bool, sandbox_data: Path) -> Iterator[tuple]:
    if not sandbox:
        yield config.pkb_connection(job, config.environment(), job_dir), config.PRODUCTION_JOIN_URL, None
        return
    from .sandbox import SandboxServer

    data = _sandbox_data(sandbox_data)
    with SandboxServer(data) as server:
        yield config.sandbox_connection(server), config.SANDBOX_JOIN_URL, data.organisation.name


def _sandbox_data(path: Path):
    from .sandbox import load_sandbox_data

    try:
        return load_sandbox_data(path)
    except ValueError as exc:
        raise ConfigError(f"bad sandbox data: {exc}") from exc


@contextmanager
def _errors_to_exit_codes() -> Iterator[None]:
    try:
        yield
    except PkbLettersError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)


def _print_summary(summary: JobSummary) -> None:
    echo = click.echo
    echo(f"Job {summary.job_id} written to {summary.out_dir}")
    echo(f"  input rows   {summary.input_rows:>7}")
    echo(f"  letters      {summary.letters:>7}   {summary.pages} pages in {PRINT_FILE}")
    echo(f"  exceptions   {summary.exceptions:>7}   see exceptions.csv")
    for reason, count in summary.by_reason.items():
        echo(f"    {reason:<28}{count:>5}")
    echo(f"  check: {summary.input_rows} rows = {summary.letters} letters + {summary.exceptions} exceptions")


def _print_validation(report: ValidationReport, written: Path) -> None:
    echo = click.echo
    separator = {",": "comma", ";": "semicolon", "\t": "tab"}[report.delimiter]
    echo(f"Checked {report.input_rows} rows ({report.encoding}, {separator}-separated); no PKB call made")
    echo(f"  ready for PKB {len(report.ready):>6}")
    echo(f"  exceptions    {len(report.exclusions):>6}   see {written}")
    for reason, count in report.by_reason.items():
        echo(f"    {reason:<28}{count:>5}")
