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
from .marks import MarkKind
from .pipeline import JobSummary, run_job
from .printfile import SPLIT_FIELDS
from .printing import PDF_VARIANTS, POSTAGE_CLASSES, SORT_ORDERS, options_from_job
from .progress import NoProgress, TerminalProgress

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
              help="Job file (TOML) with [pkb], [letter] and [codes] tables.")
@click.option("--envelope", default=None, help="Envelope profile: c5 (default, half-fold), dl (C-fold), or one "
              "defined in the job file's [envelope] table.")
@click.option("--simplex", is_flag=True, default=None, help="Print one side only (default: duplex, each letter "
              "starting on the front of a sheet).")
@click.option("--pdf-variant", type=click.Choice(PDF_VARIANTS), default=None, help="PDF standard (default pdf/x-4).")
@click.option("--marks", type=click.Choice([kind.value for kind in MarkKind]), default=None,
              help="Letter separation marks on each sheet (default datamatrix).")
@click.option("--sort", type=click.Choice(SORT_ORDERS), default=None, help="Print order (default input).")
@click.option("--postage-class", type=click.Choice(POSTAGE_CLASSES), default=None,
              help="Postage class for rows without one in a postage class column (default second).")
@click.option("--split-by", type=click.Choice(SPLIT_FIELDS), multiple=True,
              help="One print file per postage class and/or per sheet count; repeat for both.")
@click.option("--max-letters-per-file", type=click.IntRange(min=1), default=None,
              help="Split print files into parts of at most N letters.")
def run(patients: Path, out_dir: Path, sandbox: bool, sandbox_data: Path, api: str,
        template_dir: Path, job_file: Path | None, envelope: str | None, simplex: bool | None,
        pdf_variant: str | None, marks: str | None, sort: str | None, postage_class: str | None,
        split_by: tuple[str, ...], max_letters_per_file: int | None) -> None:
    """Make letters for every eligible patient in PATIENTS (CSV)."""
    with _errors_to_exit_codes():
        job = config.load_job_file(job_file)
        job_dir = job_file.parent if job_file else Path.cwd()
        print_options = options_from_job(
            job, job_dir, envelope=envelope, duplex=False if simplex else None, pdf_variant=pdf_variant,
            marks=marks, sort=sort, postage_class=postage_class, split_by=split_by or None,
            max_letters_per_file=max_letters_per_file,
        )
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
            )
            progress = TerminalProgress() if sys.stderr.isatty() else NoProgress()
            summary = run_job(settings, connection, progress, print_options=print_options)
        _print_summary(summary)


@main.command()
@click.argument("pdfs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--manifest", "manifest_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The job's manifest.json: also check page counts, addresses and marks against it.")
@click.option("--envelope", default="c5", show_default=True, help="Envelope profile the letters are for.")
@click.option("--marks", type=click.Choice([kind.value for kind in MarkKind]), default=None,
              help="Marks to expect (default: the manifest's, else datamatrix).")
@click.option("--config", "job_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Job file with a custom [envelope] or [marks] layout.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check(pdfs: tuple[Path, ...], manifest_path: Path | None, envelope: str, marks: str | None,
          job_file: Path | None, as_json: bool) -> None:
    """Preflight letter PDFs as a print room would; exits 1 when anything fails."""
    from .check import check_files

    with _errors_to_exit_codes():
        job = config.load_job_file(job_file)
        options = options_from_job(job, job_file.parent if job_file else Path.cwd(), envelope=envelope, marks=marks)
        layout = options.marks if (marks or "marks" in job or not manifest_path) else None
        report = check_files(list(pdfs), manifest_path, options.envelope, layout)
    click.echo(report.json() if as_json else report.text())
    sys.exit(0 if report.ok else 1)


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
    echo(f"  letters      {summary.letters:>7}   {summary.pages} pages, {summary.sheets} sheets in "
         f"{', '.join(summary.files) or 'no print file'}")
    echo(f"  exceptions   {summary.exceptions:>7}   see exceptions.csv")
    for reason, count in summary.by_reason.items():
        echo(f"    {reason:<24}{count:>5}")
    echo(f"  check: {summary.input_rows} rows = {summary.letters} letters + {summary.exceptions} exceptions")
