"""The command line: parse options, call the library, map errors to exit codes. Nothing else."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from pkb_letters import config, packaged
from pkb_letters.assemble.marks import MarkKind
from pkb_letters.assemble.print_files import SPLIT_FIELDS
from pkb_letters.assemble.print_options import PDF_VARIANTS, POSTAGE_CLASSES, SORT_ORDERS, options_from_job
from pkb_letters.deliver import DEFAULT_KNOWN_HOSTS, SshOptions, deliver_job, parse_destination
from pkb_letters.errors import ConfigError, InvariantError, PkbApiError, PkbLettersError, RenderClusterError
from pkb_letters.intake.validate import ValidationReport, validate_list, write_report
from pkb_letters.job.journal import JOURNAL_NAME, Journal
from pkb_letters.job.pipeline import STOP_POINTS, JobSummary, run_job
from pkb_letters.log import LOG_FORMATS, configure_logging
from pkb_letters.progress import NoProgress, Progress, TerminalProgress
from pkb_letters.records import Delivery, DeliveryOutcome

DEFAULT_SANDBOX_DATA = packaged.SANDBOX_DATA


F = TypeVar("F", bound=Callable[..., Any])  # a click command being decorated


def _template_option(help: str) -> Callable[[F], F]:
    return click.option(
        "--template",
        "template_dir",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        default=config.DEFAULT_TEMPLATE,
        show_default=True,
        help=help,
    )


def _job_file_option(help: str) -> Callable[[F], F]:
    return click.option("--config", "job_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help=help)


_api_option = click.option(
    "--api",
    type=click.Choice(config.APIS),
    default="fhir",
    show_default=True,
    help="PKB route: FHIR $status-query + $generate-invitation-tokens, or REST.",
)
_envelope_option = click.option(
    "--envelope",
    default=None,
    help="Envelope profile: c5 (default, half-fold), dl (C-fold), or one defined in the job file's [envelope] table.",
)


@click.group()
@click.version_option(package_name="pkb-letters")
@click.option("-v", "--verbose", is_flag=True, help="Log each stage's progress to stderr.")
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    help="Log lines for people (text) or one JSON object per line for a log collector (json).",
)
def main(verbose: bool, log_format: str) -> None:
    """Patients Know Best invitation letters, from patient list to print-ready PDF."""
    configure_logging(verbose, log_format)


@main.command()
@click.argument("patients", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for letters.pdf, the manifests, exceptions.csv and the job journal.",
)
@click.option("--sandbox", is_flag=True, help="Start the embedded PKB sandbox and use it (no PKB account needed).")
@click.option(
    "--sandbox-data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=DEFAULT_SANDBOX_DATA,
    show_default=True,
    help="Patients the sandbox knows.",
)
@_api_option
@_template_option("Letter template folder.")
@_job_file_option(
    "Job file (TOML): [pkb], [letter], [codes], [rules], [sandbox], [print], [marks], [envelope], [render]."
)
@click.option(
    "--international-post/--uk-post-only",
    "international_post",
    default=None,
    help="Post letters abroad too (the last address line names the country). Default: the job "
    "file's [rules] international_post, else UK only.",
)
@click.option(
    "--postcode-check/--no-postcode-check",
    "postcode_check",
    default=None,
    help="Compare the list's postcode with PKB's record (REST route). Surname and date of birth "
    "are always compared. Default: the job file's [rules] postcode_check, else on.",
)
@click.option(
    "--require-approval",
    is_flag=True,
    default=None,
    help="Print only a template and page settings someone approved (`pkb-letters approve`); refused before "
    "any PKB call otherwise. Default: the job file's [rules] require_approval, else off.",
)
@_envelope_option
@click.option(
    "--simplex",
    is_flag=True,
    default=None,
    help="Print one side only (default: duplex, each letter starting on the front of a sheet).",
)
@click.option("--pdf-variant", type=click.Choice(PDF_VARIANTS), default=None, help="PDF standard (default pdf/x-4).")
@click.option(
    "--marks",
    type=click.Choice([kind.value for kind in MarkKind]),
    default=None,
    help="Letter separation marks on each sheet (default datamatrix).",
)
@click.option("--sort", type=click.Choice(SORT_ORDERS), default=None, help="Print order (default input).")
@click.option(
    "--postage-class",
    type=click.Choice(POSTAGE_CLASSES),
    default=None,
    help="Postage class for rows without one in a postage class column (default second).",
)
@click.option(
    "--split-by",
    type=click.Choice(SPLIT_FIELDS),
    multiple=True,
    help="One print file per postage class and/or per sheet count; repeat for both.",
)
@click.option(
    "--max-letters-per-file",
    type=click.IntRange(min=1),
    default=None,
    help="Split print files into parts of at most N letters.",
)
@click.option(
    "--restart",
    is_flag=True,
    help="Replace the job already in --out instead of resuming it (its code pairs are kept and reused).",
)
@click.option(
    "--min-validity-days",
    type=click.IntRange(min=0),
    default=21,
    show_default=True,
    help="Re-issue codes from an earlier run that expire within this many days of printing.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=64),
    default=8,
    show_default=True,
    help="REST route: requests to PKB in flight at once.",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="At most this many requests a second to PKB (what you agreed with PKB).",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Letters laid out together; a resumed job redoes at most one chunk.",
)
@click.option(
    "--stop-after",
    type=click.Choice(STOP_POINTS),
    default=None,
    help="Stop once this stage is done; run again without it to carry on.",
)
@click.option(
    "--executor",
    default=None,
    metavar="local|dask://HOST:PORT",
    help="Where chunks are rendered: this machine's processes (local), or the workers of a running "
    "Dask scheduler. Default: the job file's [render] executor, else local.",
)
def run(
    patients: Path,
    out_dir: Path,
    sandbox: bool,
    sandbox_data: Path,
    api: str,
    template_dir: Path,
    job_file: Path | None,
    international_post: bool | None,
    postcode_check: bool | None,
    require_approval: bool | None,
    restart: bool,
    min_validity_days: int,
    concurrency: int,
    rate_limit: float | None,
    chunk_size: int,
    stop_after: str | None,
    envelope: str | None,
    simplex: bool | None,
    pdf_variant: str | None,
    marks: str | None,
    sort: str | None,
    postage_class: str | None,
    split_by: tuple[str, ...],
    max_letters_per_file: int | None,
    executor: str | None,
) -> None:
    """Make letters for every eligible patient in PATIENTS (CSV).

    Running it again with the same --out resumes the job where it stopped: no patient is
    asked for codes twice, no letter is printed twice.
    """
    with _errors_to_exit_codes(out_dir):
        job = config.load_job_file(job_file)
        job_dir = job_file.parent if job_file else Path.cwd()
        print_options = options_from_job(
            job,
            job_dir,
            envelope=envelope,
            duplex=False if simplex else None,
            pdf_variant=pdf_variant,
            marks=marks,
            sort=sort,
            postage_class=postage_class,
            split_by=split_by or None,
            max_letters_per_file=max_letters_per_file,
        )
        with _connection(job, job_dir, sandbox, sandbox_data, api) as (connection, join_url, organisation):
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
                unreadable_expiry=str(job.get("codes", {}).get("unreadable_expiry", "stop")),
                min_validity_days=min_validity_days,
                concurrency=concurrency,
                requests_per_second=rate_limit,
                chunk_size=chunk_size,
                executor=config.executor_setting(job, executor),
                rules=config.rule_settings(job, international_post, postcode_check, require_approval or None),
            )
            summary = run_job(
                settings,
                connection,
                _terminal_progress(),
                print_options=print_options,
                restart=restart,
                stop_after=stop_after,
            )
        _print_summary(summary)


@main.command()
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the demo job's letters.pdf, manifests, exceptions.csv and journal.",
)
@_api_option
@click.pass_context
def demo(ctx: click.Context, out_dir: Path, api: str) -> None:
    """Run the demo job that ships with pkb-letters: its 15-patient list, one row per outcome, with
    its letter settings, on the embedded PKB sandbox. Needs no checkout and no PKB account.

    The same as `run PATIENTS --sandbox --config JOB` with the shipped list and job file.
    """
    ctx.invoke(
        run, patients=packaged.DEMO_PATIENTS, out_dir=out_dir, sandbox=True, api=api, job_file=packaged.DEMO_JOB_FILE
    )


@main.command()
@click.argument("patients", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for exceptions.csv (it holds NHS numbers: keep it private).",
)
@_template_option("Letter template whose address window to fit.")
@_job_file_option("Job file (TOML); its [letter] and [rules] tables are used.")
@click.option(
    "--international-post/--uk-post-only",
    "international_post",
    default=None,
    help="Accept addresses abroad (the last line names the country).",
)
def validate(
    patients: Path, out_dir: Path, template_dir: Path, job_file: Path | None, international_post: bool | None
) -> None:
    """Check PATIENTS (CSV) without calling PKB: intake and address rules, and that every address
    fits the envelope window in the letter's font. Writes exceptions.csv as a run would."""
    from pkb_letters.check.print_check import available_cpus

    with _errors_to_exit_codes():
        job = config.load_job_file(job_file)
        report = validate_list(
            patients,
            template_dir,
            config.letter_settings(job, config.PRODUCTION_JOIN_URL),
            config.rule_settings(job, international_post),
            workers=available_cpus(),
        )
        written = write_report(report, out_dir)
    _print_validation(report, written)


def _terminal_progress() -> Progress:
    """A bar per stage on a terminal; nothing when stderr is a file or a pipe (a scheduled job's log)."""
    return TerminalProgress() if sys.stderr.isatty() else NoProgress()


@main.command()
@click.argument("pdfs", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--job",
    "job_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A finished job folder: check its print files (or the PDFs given) against its manifest, and read "
    "every letter's credentials back against its journal.",
)
@click.option(
    "--manifest",
    "manifest_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The job's manifest.json: also check page counts, addresses and marks against it.",
)
@click.option("--envelope", default="c5", show_default=True, help="Envelope profile the letters are for.")
@click.option(
    "--marks",
    type=click.Choice([kind.value for kind in MarkKind]),
    default=None,
    help="Marks to expect (default: the manifest's, else datamatrix).",
)
@_job_file_option("Job file with a custom [envelope] or [marks] layout.")
@click.option(
    "--reprint",
    type=click.IntRange(min=1),
    metavar="NN",
    help="With --job: check reprint set NN (from `pkb-letters reconcile`) against its reprint-NN.json.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes to check pages in (default: one per CPU; small jobs use one).",
)
def check(
    pdfs: tuple[Path, ...],
    job_dir: Path | None,
    manifest_path: Path | None,
    envelope: str,
    marks: str | None,
    job_file: Path | None,
    reprint: int | None,
    as_json: bool,
    workers: int | None,
) -> None:
    """Preflight letter PDFs as a print room would; exits 1 when anything fails."""
    from pkb_letters.check.print_check import available_cpus, check_files

    if job_dir is not None:
        _check_job(job_dir, pdfs, as_json, workers, reprint)
        return
    if reprint is not None:
        raise click.UsageError("--reprint needs --job DIR")
    if not pdfs:
        raise click.UsageError("give the PDFs to check, or --job DIR")
    with _errors_to_exit_codes():
        job = config.load_job_file(job_file)
        options = options_from_job(job, job_file.parent if job_file else Path.cwd(), envelope=envelope, marks=marks)
        layout = options.marks if (marks or "marks" in job or not manifest_path) else None
        report = check_files(
            list(pdfs),
            manifest_path,
            options.envelope,
            layout,
            workers=workers or available_cpus(),
            progress=_terminal_progress(),
        )
    click.echo(report.json() if as_json else report.text())
    sys.exit(0 if report.ok else 1)


def _check_job(
    job_dir: Path, pdfs: tuple[Path, ...], as_json: bool, workers: int | None, reprint: int | None = None
) -> None:
    """`check --job`: the job's print files (or `pdfs`, copies of them) against its manifest, or a reprint
    set's against its reprint-NN.json, with every letter's credentials read back against its journal
    (until `purge` erases them)."""
    from pkb_letters.check.print_check import available_cpus, check_files
    from pkb_letters.check.readback import JournalCredentials
    from pkb_letters.job.manifest import MANIFEST_JSON, read_manifest_job
    from pkb_letters.job.reconcile import reprint_name

    with _errors_to_exit_codes():
        manifest = job_dir / (MANIFEST_JSON if reprint is None else reprint_name(reprint, "json"))
        if not manifest.is_file() or not (job_dir / JOURNAL_NAME).is_file():
            raise ConfigError(f"{job_dir} holds no {manifest.name} and {JOURNAL_NAME}; is it a finished job folder?")
        record = read_manifest_job(manifest)
        files = list(pdfs) or [job_dir / f["name"] for f in record.get("files", [])]
        missing = [path.name for path in files if not path.is_file()]
        if missing:
            raise ConfigError(
                f"{job_dir} no longer holds {', '.join(missing)} (purged, or moved); give copies of the print files "
                "as arguments"
            )
        options = options_from_job({}, job_dir, envelope=str(record.get("print", {}).get("envelope", "c5")).lower())
        with Journal(job_dir / JOURNAL_NAME, read_only=True) as journal:
            report = check_files(
                files,
                manifest,
                options.envelope,
                None,
                workers=workers or available_cpus(),
                progress=_terminal_progress(),
                credentials=JournalCredentials.of_journal(journal, qr=journal.job.template_prints_qr()),
            )
    click.echo(report.json() if as_json else report.text())
    sys.exit(0 if report.ok else 1)


@main.command()
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for preview.pdf, proof.pdf, a PNG per page and index.html.",
)
@_template_option("Letter template folder.")
@click.option(
    "--patients",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Preview the first rows of this list (CSV) instead of the built-in samples.",
)
@click.option(
    "--samples",
    "count",
    type=click.IntRange(min=1),
    default=None,
    help="How many samples: built-in edge cases (default all), or rows of --patients (default 10).",
)
@_envelope_option
@_job_file_option("Job file (TOML): its [letter], [rules], [print], [marks] and [envelope] tables are used.")
@click.option("--watch", is_flag=True, help="Render again whenever a template file (or the list) changes.")
@click.option("--serve", is_flag=True, help="Serve index.html on 127.0.0.1; the page reloads after each render.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port for --serve (0: any free port).",
)
def preview(
    out_dir: Path,
    template_dir: Path,
    patients: Path | None,
    count: int | None,
    envelope: str | None,
    job_file: Path | None,
    watch: bool,
    serve: bool,
    port: int,
) -> None:
    """Render sample letters exactly as a run would, with made-up codes and a SAMPLE watermark,
    for people to sign off. Never calls PKB."""
    from pkb_letters.preview.live import render_or_report, run_live
    from pkb_letters.preview.results import PreviewRequest

    with _errors_to_exit_codes():
        job = config.load_job_file(job_file)
        request = PreviewRequest(
            out_dir=out_dir,
            template_dir=template_dir,
            patients=patients,
            count=count,
            options=options_from_job(job, job_file.parent if job_file else Path.cwd(), envelope=envelope),
            letter=config.letter_settings(job, config.PRODUCTION_JOIN_URL),
            rules=config.rule_settings(job),
        )
        outcome = render_or_report(request)
    _print_preview(outcome)
    if watch or serve:
        with _errors_to_exit_codes():
            run_live(request, watch, port if serve else None, _print_preview, click.echo)
    elif isinstance(outcome, PkbLettersError):
        sys.exit(outcome.exit_code)


@main.command()
@click.argument("preview_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--by", "by", required=True, help="Your name: who approves these letters.")
@click.option("--note", default="", help="What you checked, or whose agreement this records.")
def approve(preview_dir: Path, by: str, note: str) -> None:
    """Sign off the letters the preview in PREVIEW_DIR shows: their template (each file's SHA-256) and
    the settings that shape the pages, recorded in the template's approvals.json. A preview that
    failed a check, or whose template has changed since, cannot be approved."""
    from pkb_letters.preview.approvals import APPROVALS_FILE, PreviewRecord
    from pkb_letters.preview.approvals import approve as sign_off
    from pkb_letters.preview.samples_run import show_approval

    with _errors_to_exit_codes():
        approval = sign_off(preview_dir, by, note)
        show_approval(preview_dir)
        recorded = Path(PreviewRecord.read(preview_dir).template) / APPROVALS_FILE
    click.echo(f"Approved by {approval.by} at {approval.at}: template sha256 {approval.template_sha256}")
    click.echo(f"  recorded in {recorded}: commit it with the template")
    click.echo("  a run with --require-approval (or [rules] require_approval) may print these letters")
    click.echo("  until the template or a setting that shapes the pages changes")


def _print_preview(outcome) -> None:
    if isinstance(outcome, PkbLettersError):
        click.echo(f"Error: {outcome}", err=True)
        return
    echo = click.echo
    echo(
        f"Preview written to {outcome.out_dir}: {len(outcome.samples)} samples, {outcome.pages} pages "
        "(preview.pdf, proof.pdf, page-NNN.png, index.html); no PKB call made"
    )
    for sample in outcome.samples:
        failed = "; ".join(check.name for check in sample.checks if not check.passed)
        status = f"no letter: {sample.reason}" if sample.reason else f"failed: {failed}" if failed else "ok"
        echo(f"  {sample.label:<28} row {sample.input_row:<5} {status}")
    if outcome.list_rows:
        echo(
            f"  the whole list: {outcome.list_rows} rows; by the list rules, no letter for "
            f"{sum(outcome.list_exclusions.values())}"
        )
        for reason, number in outcome.list_exclusions.items():
            echo(f"    {reason:<28}{number:>5}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True, type=int)
@click.option(
    "--data",
    "data_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=DEFAULT_SANDBOX_DATA,
    show_default=True,
)
@click.option("--token-ttl", type=int, default=None, help="OAuth access token lifetime in seconds.")
@click.option("--latency-ms", type=click.IntRange(min=0), default=0, help="Delay every answer by this much.")
@click.option("--fail-rate", type=click.FloatRange(0, 1), default=0.0, help="Share of requests answered 500 or 503.")
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Requests a second before answering 429 with Retry-After.",
)
@click.option(
    "--drop-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of requests whose connection is closed after the work is done (codes issued, never seen).",
)
@click.option("--seed", type=int, default=None, help="Seed for the faults, for repeatable runs.")
def sandbox(
    host: str,
    port: int,
    data_path: Path,
    token_ttl: int | None,
    latency_ms: int,
    fail_rate: float,
    rate_limit: float | None,
    drop_rate: float,
    seed: int | None,
) -> None:
    """Serve the PKB sandbox (OAuth, REST and FHIR) until interrupted, optionally misbehaving."""
    from pkb_letters.sandbox import Faults, serve

    with _errors_to_exit_codes():
        _sandbox_data(data_path)  # refuse bad data with a clear message before binding the port
        faults = Faults(
            latency_ms=latency_ms, fail_rate=fail_rate, rate_limit=rate_limit, drop_rate=drop_rate, seed=seed
        )
        serve(data_path, host=host, port=port, token_ttl=token_ttl, faults=faults)


@main.command()
@click.argument("out_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
def status(out_dir: Path) -> None:
    """Show where the job in DIR stands and what running it again would do."""
    from pkb_letters.job.status import job_status

    with _errors_to_exit_codes():
        click.echo(job_status(out_dir).report())


@main.command()
@click.argument("job_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--dispatched-on",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The day the mail house confirmed it posted this job's letters (YYYY-MM-DD).",
)
def purge(job_dir: Path, dispatched_on) -> None:
    """After dispatch: erase JOB_DIR's codes and delete its PDFs, keeping the manifests and a record."""
    from pkb_letters.job.purge import PURGE_RECORD, purge_job

    with _errors_to_exit_codes():
        record = purge_job(job_dir, dispatched_on.date())
    click.echo(f"Job {record.job_id} purged (dispatched on {record.dispatched_on})")
    click.echo(f"  codes erased from the journal   {record.codes_erased:>7}")
    for deleted in record.deleted_files:
        click.echo(f"  deleted {deleted.name}  ({deleted.bytes} bytes, sha256 {deleted.sha256})")
    click.echo(f"  kept: {', '.join(record.kept)}; the record is in {PURGE_RECORD}")


@main.command()
@click.argument("job_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_job_file_option("Job file whose [reconcile] table says how to read the results (columns, status values, share).")
@click.option(
    "--force", is_flag=True, help="Reprint more than the job's share of pieces ([reconcile] max_reprint_share)."
)
def reconcile(job_dir: Path, results: Path, job_file: Path | None, force: bool) -> None:
    """Read the inserter's RESULTS for JOB_DIR: reprint spoiled pieces as they were, list pulled ones.

    Writes reprint-NN.pdf (the pieces' pages copied from the print files: the same codes, none issued),
    reprint-NN.json/.csv and pulled.csv, and records the reconciliation in the journal.
    """
    from pkb_letters.job.reconcile import PULLED_CSV, reconcile_job

    with _errors_to_exit_codes():
        outcome = reconcile_job(job_dir, results, config.load_job_file(job_file), force)
    counts = outcome.counts
    click.echo(
        f"Reconciliation {outcome.number:02d} of {job_dir}: {counts['ok']} OK, {counts['reprint']} to reprint, "
        f"{counts['pull']} pulled"
    )
    for name, digest in outcome.reprint_files.items():
        click.echo(f"  wrote {name:<16} sha256 {digest}")
    for line in outcome.preflight.splitlines()[:2]:  # the summary, and the read-back's
        click.echo(f"  preflight: {line.strip()}")
    click.echo(f"  {PULLED_CSV} lists {outcome.pulled_total} pulled piece(s) for the customer")


@contextmanager
def _connection(job: dict, job_dir: Path, sandbox: bool, sandbox_data: Path, api: str = "fhir") -> Iterator[tuple]:
    if not sandbox:
        yield config.pkb_connection(job, config.environment(), job_dir, api), config.PRODUCTION_JOIN_URL, None
        return
    from pkb_letters.sandbox import SandboxServer

    data = _sandbox_data(sandbox_data)
    with SandboxServer(data, faults=_sandbox_faults(job), token_ttl=job.get("sandbox", {}).get("token_ttl")) as server:
        yield config.sandbox_connection(server), config.SANDBOX_JOIN_URL, data.organisation.name


def _sandbox_faults(job: dict):
    from pkb_letters.sandbox import Faults

    table = dict(job.get("sandbox", {}))
    table.pop("token_ttl", None)
    try:
        return Faults(**table)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad [sandbox] settings in the job file: {exc}") from exc


def _sandbox_data(path: Path):
    from pkb_letters.sandbox import load_sandbox_data

    try:
        return load_sandbox_data(path)
    except ValueError as exc:
        raise ConfigError(f"bad sandbox data: {exc}") from exc


@contextmanager
def _errors_to_exit_codes(out_dir: Path | None = None) -> Iterator[None]:
    try:
        yield
    except PkbLettersError as exc:
        click.echo(f"Error: {exc}", err=True)
        resumable = isinstance(exc, PkbApiError | RenderClusterError) and getattr(exc, "resumable", True)
        if resumable and out_dir is not None and (out_dir / JOURNAL_NAME).exists():
            click.echo(
                f"The job is saved in {out_dir}; run the same command again to resume it "
                f"(`pkb-letters status {out_dir}` shows where it stands).",
                err=True,
            )
        sys.exit(exc.exit_code)


def _print_summary(summary: JobSummary) -> None:
    echo = click.echo
    if not summary.complete:
        echo(
            f"Job {summary.job_id} stopped as asked in {summary.out_dir}"
            f"{' (resumed)' if summary.resumed else ''}; run again without --stop-after to carry on"
        )
        for stage, count in summary.by_stage.items():
            echo(f"  {stage:<12} {count:>7}")
        for warning in summary.warnings:
            echo(f"  warning: {warning}")
        _print_full_layout(summary)
        return
    echo(f"Job {summary.job_id} written to {summary.out_dir}{' (resumed)' if summary.resumed else ''}")
    echo(f"  input rows   {summary.input_rows:>7}")
    echo(
        f"  letters      {summary.letters:>7}   {summary.pages} pages, {summary.sheets} sheets in "
        f"{', '.join(summary.files) or 'no print file'}"
    )
    _print_variants(summary)
    echo(f"  exceptions   {summary.exceptions:>7}   see exceptions.csv")
    for reason, count in summary.by_reason.items():
        echo(f"    {reason:<28}{count:>5}")
    if summary.reissues:
        echo(f"  re-issued code pairs {sum(summary.reissues.values()):>3}   (a second pair was asked for)")
        for why, count in summary.reissues.items():
            echo(f"    {why:<24}{count:>5}")
    handed = f" + {summary.handed_off} handed off" if summary.handed_off else ""
    echo(f"  check: {summary.input_rows} rows = {summary.letters} letters{handed} + {summary.exceptions} exceptions")
    for warning in summary.warnings:
        echo(f"  warning: {warning}")
    _print_full_layout(summary)


def _print_variants(summary: JobSummary) -> None:
    """Letters per format and language (Accessible Information Standard, Welsh Language Standards)."""
    if summary.handed_off:
        click.echo(f"  handed off   {summary.handed_off:>7}   for specialist providers: see handoff/handoff.csv")
    for label, counts in (("format", summary.by_format), ("language", summary.by_language)):
        for value, count in counts.items():
            click.echo(f"    {label} {value:<{26 - len(label)}}{count:>5}")


def _print_full_layout(summary: JobSummary) -> None:
    if summary.full_layout:
        click.echo(f"  layout: {summary.full_layout}")


# -- deliver ------------------------------------------------------------------------------------


@main.command("deliver")
@click.argument("job_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--to",
    "destination",
    required=True,
    metavar="sftp://USER@HOST[:PORT]/PATH | FOLDER",
    help="The mail house's drop folder: an SFTP address, or a local or mounted folder.",
)
@click.option(
    "--identity",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="SSH private key (default: the keys in ~/.ssh and the SSH agent).",
)
@click.option(
    "--known-hosts",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_KNOWN_HOSTS,
    show_default=True,
    help="Known host keys; a server whose key is not there is refused.",
)
@click.option(
    "--redeliver",
    is_flag=True,
    help="Send again a job this journal already delivered there and the mail house has since taken.",
)
@click.option(
    "--reprint",
    type=click.IntRange(min=1),
    metavar="NN",
    help="Send reprint set NN (from `pkb-letters reconcile`) instead, as the job JOB-reprint-NN.",
)
def deliver_command(
    job_dir: Path, destination: str, identity: Path | None, known_hosts: Path, redeliver: bool, reprint: int | None
) -> None:
    """Hand the job in JOB_DIR to the mail house: every file in its manifest, then JOB.done.

    The SFTP password, for servers that take no keys, comes only from
    the PKB_LETTERS_SFTP_PASSWORD environment variable.
    """
    with _errors_to_exit_codes():
        ssh = SshOptions(identity, known_hosts, config.sftp_password(config.environment()))
        delivery = deliver_job(job_dir, parse_destination(destination), ssh, redeliver, reprint)
        with Journal.in_dir(job_dir) as journal:
            job_id, history = journal.job.id, journal.deliveries.attempts()
        if job_id is None:  # deliver_job has just matched the journal's job id to the manifest's
            raise InvariantError(f"the journal in {job_dir} records no job id")
    _print_delivery(job_id if reprint is None else f"{job_id}-reprint-{reprint:02d}", delivery, history)


def _print_delivery(job_id: str, delivery: Delivery, history: list[Delivery]) -> None:
    echo = click.echo
    if delivery.outcome == DeliveryOutcome.ALREADY_DELIVERED:
        echo(f"{delivery.destination} already holds this job, complete: nothing sent")
    else:
        echo(f"Delivered to {delivery.destination}")
    if delivery.host_key:
        echo(f"  host key       {delivery.host_key}")
    for file in delivery.files:
        echo(f"  {file.action:<14} {file.name:<20} {file.bytes:>10} bytes  sha256 {file.sha256}")
    if delivery.outcome == DeliveryOutcome.DELIVERED:
        echo(f"  {'trigger':<14} {job_id}.done, written last")
    echo("Deliveries of this job (journal; also in `pkb-letters status`):")
    for past in history:
        echo(f"  {past.finished:%Y-%m-%d %H:%M:%S}Z  {past.outcome:<17} {past.destination}  {past.detail}".rstrip())


def _print_validation(report: ValidationReport, written: Path) -> None:
    echo = click.echo
    separator = {",": "comma", ";": "semicolon", "\t": "tab"}[report.delimiter]
    echo(f"Checked {report.input_rows} rows ({report.encoding}, {separator}-separated); no PKB call made")
    echo(f"  ready for PKB {len(report.ready):>6}")
    echo(f"  exceptions    {len(report.exclusions):>6}   see {written}")
    for reason, count in report.by_reason.items():
        echo(f"    {reason:<28}{count:>5}")
