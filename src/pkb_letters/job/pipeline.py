"""The job: intake → fit → resolve → codes → render → assemble → manifest, over one journal.

`run_job` takes settings and a PKB connection and gives a `JobSummary`; each
stage's decisions are written to the journal as they are made, and every
output file is derived from the journal at the end.

Running it again on the same output folder resumes: each stage works only on the rows
the journal shows it has not finished, so no patient is asked for codes twice and no
letter is laid out twice. A different input file or template is refused unless
`restart` is given; a restart keeps the replaced job's code pairs for its patients.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pkb_letters import variants
from pkb_letters.assemble import mailmark, marks, print_options
from pkb_letters.assemble.print_files import Finishing, Piece, PlacedPiece, pieces_from_placements, stream_print_files
from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.config import JobSettings, LetterSettings, PkbConnection
from pkb_letters.envelope import C5, EnvelopeProfile
from pkb_letters.errors import ConfigError, ExpiryUnreadable, InvariantError, PkbApiError, RenderClusterError
from pkb_letters.files import make_private_dir, sha256_of, write_atomic
from pkb_letters.fit.stage import fit_exclusions
from pkb_letters.intake.patient_list import PatientList, open_patient_list
from pkb_letters.job import handoff, mailmark_run
from pkb_letters.job.journal import JOURNAL_NAME, Journal
from pkb_letters.job.manifest import MANIFEST_JSON, letter_entry, manifest_job, stream_manifest, write_exceptions_csv
from pkb_letters.job.placements import SEQUENCE_ORDER, SORT_SEQUENCE_ORDER
from pkb_letters.job.state import Fingerprint, JobIdentity
from pkb_letters.pkb import codes, resolve
from pkb_letters.pkb.batching import batched
from pkb_letters.pkb.client import PkbClient, expiry_from_part
from pkb_letters.preview.approvals import approval_for_run, page_settings
from pkb_letters.progress import NoProgress, Progress
from pkb_letters.records import (
    CodePair,
    Exclusion,
    HeldPair,
    Letter,
    PieceRecord,
    PlacedLetter,
    PrintFile,
    Reason,
    Reissue,
    Stage,
    Step,
)
from pkb_letters.render import weasyprint_adapter as wp
from pkb_letters.render.chunks import ChunkRenderer, LetterTemplate, RenderSpec, variant_of
from pkb_letters.render.dask_executor import chunk_executor
from pkb_letters.render.executor import render_in_order
from pkb_letters.render.font_subsetting import note_slow_subsetting
from pkb_letters.render.template_digest import directory_digest

PRINT_FILE = "letters.pdf"
WORK_DIR = "work"
STOP_POINTS = (Step.RESOLVE.value, Step.CODES.value)
REST_CANNOT_CONFIRM_REGISTERED = (
    "REST route without a FHIR base (PKB_FHIR_BASE / [pkb] fhir_base): PKB's REST user object has no "
    "registration flag, so patients who have already registered cannot be excluded; they will get a letter "
    "with new codes. Set the FHIR base so $status-query confirms it, or use --api fhir"
)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSummary:
    job_id: str
    out_dir: Path
    input_rows: int
    letters: int
    exceptions: int
    pages: int
    by_reason: dict[str, int] = field(default_factory=dict)
    by_format: dict[str, int] = field(default_factory=dict)  # letters printed and handed off, per format
    by_language: dict[str, int] = field(default_factory=dict)  # the same letters, per language
    handed_off: int = 0  # letters in the hand-off folder (braille, easy read, audio), not in a print file
    reissues: dict[str, int] = field(default_factory=dict)
    resumed: bool = False
    complete: bool = True
    by_stage: dict[str, int] = field(default_factory=dict)
    sheets: int = 0
    files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # said before any code was issued; repeated here for the record
    full_layout: str = ""  # why this run laid every letter out in full, when the fast path was not allowed
    shared_letters: int = 0  # letters this run drew with the job's shared layout
    stamped_letters: int = 0  # letters this run drew into a prototype of their shape (render/stamp.py)


def run_job(
    settings: JobSettings,
    connection: PkbConnection,
    progress: Progress | None = None,
    envelope: EnvelopeProfile = C5,
    print_options: PrintOptions | None = None,
    *,
    restart: bool = False,
    stop_after: str | None = None,
    today: Callable[[], dt.date] = dt.date.today,
) -> JobSummary:
    progress = progress or NoProgress()
    options = print_options or PrintOptions(envelope=envelope)
    template = LetterTemplate(settings.template_dir)  # fail on a broken template before any API call
    note_slow_subsetting()
    fingerprint = job_fingerprint(settings, template, options)
    approval = approval_for_run(
        template.directory, page_settings(settings.letter, settings.rules, options), settings.rules.require_approval
    )  # refused here, before the list is read or PKB is asked anything
    journal_path = settings.out_dir / JOURNAL_NAME
    resuming = journal_path.exists() and not restart
    if journal_path.exists():
        _check_same_job(journal_path, fingerprint, restart)
    # a bad list leaves no job behind
    intake = None if resuming else _read_list(settings)
    make_private_dir(settings.out_dir)
    previous = _archive_journal(journal_path) if restart and journal_path.exists() else None
    with Journal.in_dir(settings.out_dir) as journal:
        if resuming:
            job = journal.job.identity()
            if job is None:  # _check_same_job matched its fingerprint, which is written with the job's identity
                raise InvariantError(f"the journal in {settings.out_dir} records no job id")
            settings = _with_job_letter_date(settings, job)
            logger.info("resuming job %s", job.id, extra={"event": "resume", "job_id": job.id})
        else:
            job = _start(journal, settings, template, fingerprint, previous)
        if approval is not None:
            journal.job.record_approval(approval.summary())
        try:
            return _run_stages(
                journal, job, settings, connection, template, options, progress, stop_after, today, resuming, intake
            )
        except (PkbApiError, RenderClusterError) as exc:
            journal.events.add("stopped", str(exc))
            raise


def _run_stages(
    journal: Journal,
    job: JobIdentity,
    settings: JobSettings,
    connection: PkbConnection,
    template: LetterTemplate,
    options: PrintOptions,
    progress: Progress,
    stop_after: str | None,
    today: Callable[[], dt.date],
    resumed: bool,
    intake: PatientList | None,
) -> JobSummary:
    layout = layout_decision()
    spec = render_spec(template, settings, options, job.id, layout.fast_path)
    renderer = spec.renderer()
    _check_route(settings, connection)
    journal.begin_run()
    _warn_before_codes(journal, settings, connection)
    if not journal.job.is_done(Step.INTAKE):
        _record_intake(journal, intake or _read_list(settings))
    if not journal.job.is_done(Step.FIT):
        with progress.stage(Step.FIT, journal.rows.count_at(Stage.READ)) as advance:
            _check_addresses(journal, renderer, settings.workers, advance)
        prints_qr = renderer.trial_letter(journal.rows.iter_patients_at(Stage.READ))  # a bad template stops here
        if prints_qr is not None:
            journal.job.record_template_prints_qr(prints_qr)
        journal.job.mark_done(Step.FIT)
    with PkbClient(
        connection,
        retry=settings.retry,
        requests_per_second=settings.requests_per_second,
        max_connections=max(settings.concurrency, 2),
    ) as client:
        _resolve(journal, client, settings, progress)
        if stop_after == Step.RESOLVE:
            return _partial_summary(journal, job, resumed, layout)
        _issue(journal, client, settings, progress, today)
        if stop_after == Step.CODES:
            return _partial_summary(journal, job, resumed, layout)
        if _send_back_expiring(journal, settings, today()):
            _issue(journal, client, settings, progress, today)
    _hand_off(journal, settings, job.id)
    files, fast = _render_and_assemble(journal, spec, settings, progress, options)
    summary = _finish(
        journal,
        settings.out_dir,
        {**job.manifest_fields(), "print": _print_summary(options), **_approval(journal)},
        files,
        resumed,
        settings.letter,
        print_order(options),
    )
    if summary.handed_off:
        handoff.write_handoff(settings.out_dir, journal.rows.iter_handed_off(), renderer, settings.letter.handoff_codes)
    summary = dataclasses.replace(
        summary, full_layout=layout.note, shared_letters=fast.shared, stamped_letters=fast.stamped
    )
    if options.preflight and files:
        _preflight(settings.out_dir, files, options, progress, journal)
    return summary


def _check_route(settings: JobSettings, connection: PkbConnection) -> None:
    if settings.api == "fhir" and not connection.fhir_base:
        raise ConfigError("the FHIR route needs PKB_FHIR_BASE (or [pkb] fhir_base)")


def _warn_before_codes(journal: Journal, settings: JobSettings, connection: PkbConnection) -> None:
    """Say, before PKB is asked for anything, what this route cannot check: on the terminal (a warning
    is shown without -v), in the log, and in the journal, from which the summary repeats it."""
    if settings.api == "rest" and not connection.fhir_base:
        logger.warning(REST_CANNOT_CONFIRM_REGISTERED, extra={"event": "cannot-confirm-registered"})
        journal.events.add("warning", REST_CANNOT_CONFIRM_REGISTERED)


def _warnings(journal: Journal) -> tuple[str, ...]:
    return tuple(dict.fromkeys(event["detail"] for event in journal.events.of_kind("warning")))


def render_spec(
    template: LetterTemplate, settings: JobSettings, options: PrintOptions, job_id: str, fast_path: bool
) -> RenderSpec:
    """How this job's letters are laid out, with page margins that keep body text out of the marks' clear zone;
    `fast_path`: whether the WeasyPrint found is one the shared layout and stamping were tested on."""
    page = marks.reserve_space(options.envelope, options.marks, marks.sample_payload(job_id))
    if options.mailmark is not None:  # the address block keeps out of the Mailmark's part of the window
        page = mailmark.reserve_window(page, options.mailmark)
    return RenderSpec(
        job_id,
        template.directory,
        settings.letter,
        page,
        print_options.print_css(options),
        tuple(sorted(print_options.pdf_options(options).items())),
        directory_digest(template.directory),
        settings.share_layout,
        fast_path,
        duplex=options.duplex,
    )


def layout_decision() -> wp.LayoutDecision:
    """Once per run, here in the job's process: whether its workers may use the fast path."""
    decision = wp.check()
    if not decision.fast_path:
        logger.warning("render: %s", decision.note, extra={"event": "full-layout"})
    return decision


@dataclass
class _FastPathCount:
    """How many of this run's letters were drawn by the fast path, chunk by chunk."""

    shared: int = 0
    stamped: int = 0


def _print_summary(options: PrintOptions) -> dict:
    summary: dict[str, Any] = {
        "envelope": options.envelope.name,
        "duplex": options.duplex,
        "pdf_variant": options.pdf_variant,
        "marks": str(options.marks.kind),
        "sort": options.sort,
        "split_by": list(options.split_by),
        "max_letters_per_file": options.max_letters_per_file,
    }
    if options.mailmark is not None:
        summary["mailmark"] = {
            "mode": str(options.mailmark.mode),
            **mailmark.placement_record(options.envelope, options.mailmark),
        }
        if options.mailmark.print_order is not mailmark.PrintOrder.JOB:  # said only when asked: older jobs resume
            summary["mailmark"]["print_order"] = str(options.mailmark.print_order)
    return summary


def _approval(journal: Journal) -> dict[str, Any]:
    """The sign-off the letters were printed under, for the manifest; nothing when none covered them."""
    approval = journal.job.approval()
    return {"approval": approval} if approval else {}


def _preflight(
    out_dir: Path, files: Sequence[PrintFile], options: PrintOptions, progress: Progress, journal: Journal
) -> None:
    """The print room's check of the print files, and every letter's credentials read back from them and
    matched to its journal row; the read-back's outcome is kept in the journal for `deliver`."""
    from pkb_letters.check.print_check import available_cpus, check_files
    from pkb_letters.check.readback import JournalCredentials, outcome

    report = check_files(
        [out_dir / f.name for f in files],
        out_dir / MANIFEST_JSON,
        options.envelope,
        options.marks,
        workers=available_cpus(),
        progress=progress,
        credentials=JournalCredentials.of_journal(journal, qr=journal.job.template_prints_qr()),
    )
    read_back = outcome(report.problems)
    journal.job.record_readback(read_back)
    if not read_back["ok"]:
        journal.events.add("failed", f"read-back failed for piece(s) {', '.join(read_back['failed'])}")
    if not report.ok:
        raise InvariantError(f"the print files failed their own preflight check:\n{report.text(limit=20)}")
    logger.info("preflight: %d files, %d pages checked, no problems", len(files), report.pages)


# -- the job's identity and resuming ------------------------------------------------------------


def job_fingerprint(settings: JobSettings, template: LetterTemplate, options: PrintOptions) -> Fingerprint:
    """What must not change between a job's first run and a resume."""
    letter = {k: str(v) for k, v in dataclasses.asdict(settings.letter).items() if k != "date"}
    return Fingerprint(
        input_sha256=sha256_of(settings.patients),
        template_sha256=directory_digest(template.directory),
        api=settings.api,
        letter_settings=json.dumps(letter, sort_keys=True),
        print=json.dumps(
            {
                **_print_summary(options),
                "postage_class": options.postage_class,
                "envelope_geometry": str(options.envelope),
                "marks_layout": str(options.marks),
            },
            sort_keys=True,
        ),
        rules=json.dumps(_printing_rules(settings), sort_keys=True),
    )


def _printing_rules(settings: JobSettings) -> dict[str, bool]:
    """The rules as a job's fingerprint holds them: requiring approval changes nothing printed (and a
    job from before it was a rule resumes)."""
    rules = dataclasses.asdict(settings.rules)
    del rules["require_approval"]
    return rules


_FINGERPRINT_WORDS = {
    "input_sha256": "input file",
    "template_sha256": "letter template",
    "api": "PKB route (--api)",
    "letter_settings": "[letter] settings",
    "print": "print settings (envelope, duplex, marks, sort, split)",
    "rules": "[rules] settings",
}


def _check_same_job(journal_path: Path, fingerprint: Fingerprint, restart: bool) -> None:
    with Journal(journal_path) as journal:
        recorded, job_id = journal.job.fingerprint(), journal.job.id
    changed = [_FINGERPRINT_WORDS[name] for name in fingerprint.changed_from(recorded)]
    if changed and not restart:
        raise ConfigError(
            f"{journal_path.parent} holds job {job_id or '?'}, made with a different "
            f"{', '.join(changed)}. Run again with the original settings to resume it, choose a new --out, "
            "or add --restart to replace that job (its code pairs are carried over, never requested again)"
        )


def _archive_journal(journal_path: Path) -> Path:
    """Keep the replaced job's journal beside the new one: its code pairs are live credentials."""
    with Journal(journal_path) as old:
        old_id = old.job.id or "unknown"  # closing folds the log back into this one file
    archived = journal_path.with_name(f"replaced-{old_id}-{secrets.token_hex(2)}.sqlite")
    journal_path.rename(archived)
    work = journal_path.parent / WORK_DIR
    if work.exists():
        for path in work.iterdir():
            path.unlink()
        work.rmdir()
    logger.info("replaced job %s; its journal is kept as %s", old_id, archived.name)
    return archived


def _with_job_letter_date(settings: JobSettings, job: JobIdentity) -> JobSettings:
    """A resumed job keeps the letter date it started with, so all its letters carry one date."""
    return dataclasses.replace(settings, letter=dataclasses.replace(settings.letter, date=job.letter_date))


def _start(
    journal: Journal,
    settings: JobSettings,
    template: LetterTemplate,
    fingerprint: Fingerprint,
    previous: Path | None,
) -> JobIdentity:
    job = JobIdentity(
        id=f"PKB-{settings.letter.date:%Y%m%d}-{secrets.token_hex(3).upper()}",
        created=_now(),
        template=template.name,
        api=settings.api,
        patients=str(settings.patients),
        letter_date=settings.letter.date,
        replaces=previous.name if previous is not None else None,
    )
    journal.job.start(job, fingerprint)
    if previous is not None:
        with Journal(previous) as old:
            carried = journal.codes.carry_codes_from(old.codes)
        journal.events.add("restart", f"replaces the job in {previous.name}; {carried} code requests carried over")
    return job


def _read_list(settings: JobSettings) -> PatientList:
    """The list, refused now if the file cannot be used; its rows are read when they are recorded."""
    return open_patient_list(settings.patients, international=settings.rules.international_post)


def _record_intake(journal: Journal, patient_list: PatientList) -> None:
    with patient_list:
        rows, excluded = journal.record_intake(patient_list.rows())
    logger.info("intake: %d rows, %d excluded", rows, excluded)


def _check_addresses(journal: Journal, renderer: ChunkRenderer, workers: int, advance: Callable[[int], None]) -> None:
    """Exclude, before any code is issued, rows whose letter could not be printed as it is."""
    patients, count = journal.rows.iter_patients_at(Stage.READ), journal.rows.count_at(Stage.READ)
    misfits = 0
    for problems in fit_exclusions(renderer, patients, count, workers, advance):
        for problem in problems:
            journal.rows.exclude(problem.input_row, problem.reason, problem.detail)
        misfits += len(problems)
    logger.info("address fit: %d blocks would not print", misfits)


def _resolve(journal: Journal, client: PkbClient, settings: JobSettings, progress: Progress) -> None:
    to_ask = journal.rows.count_at(Stage.READ)
    if not to_ask:
        return
    patients = journal.rows.iter_patients_at(Stage.READ)  # a page at a time, as they are asked about
    with progress.stage(Step.RESOLVE, to_ask) as advance:
        if settings.api == "fhir":
            resolve.resolve_fhir(patients, client, settings.letter.date, journal.rows.record_decisions, advance)
        else:
            resolve.resolve_rest(
                patients,
                client,
                settings.letter.date,
                journal.rows.record_decisions,
                advance,
                workers=settings.concurrency,
                failure_limit=settings.failure_limit,
                check_postcode=settings.rules.postcode_check,
                confirm=bool(client.connection.fhir_base),
            )
    logger.info("resolve: %d patients asked, %d eligible", to_ask, journal.rows.count_at(Stage.ELIGIBLE))


def _issue(
    journal: Journal,
    client: PkbClient,
    settings: JobSettings,
    progress: Progress,
    today: Callable[[], dt.date],
) -> None:
    _take_carried_codes(journal)
    _settle_held(journal, settings)
    to_ask = journal.rows.count_at(Stage.ELIGIBLE)
    if not to_ask:
        return
    eligible = journal.rows.iter_eligible()  # a page at a time, as they are asked for

    def record(results: list[codes.Issued]) -> None:
        pairs = [(item.patient.input_row, outcome) for item, outcome in results if isinstance(outcome, CodePair)]
        held = [(item.patient.input_row, outcome) for item, outcome in results if isinstance(outcome, HeldPair)]
        refusals = [outcome for _, outcome in results if isinstance(outcome, Exclusion)]
        journal.codes.record_issued(pairs, refusals, held)

    with progress.stage(Step.CODES, to_ask) as advance:
        if settings.api == "fhir":
            codes.issue_fhir(eligible, client, journal.codes, record, advance, today)
        else:
            codes.issue_rest(
                eligible,
                client,
                journal.codes,
                record,
                advance,
                validity_days=settings.rest_code_validity_days,
                workers=settings.concurrency,
                failure_limit=settings.failure_limit,
            )
    logger.info("codes: %d asked, %d pairs held", to_ask, journal.rows.count_at(Stage.CODED))


def _settle_held(journal: Journal, settings: JobSettings) -> None:
    """Pairs held by an earlier run because their expiry could not be read: read again (this version
    may read what the one that held them could not); then excluded as the job file allows, or the
    job stops again before asking PKB for anyone, since the next answer would most likely be the same."""
    unreadable: list[tuple[int, str]] = []
    for input_row, pair in journal.codes.held():
        expires = expiry_from_part(json.loads(pair.expiry_part))
        if isinstance(expires, dt.date):
            journal.codes.release_held(input_row, expires)
        elif settings.unreadable_expiry == "exclude":
            journal.rows.exclude(
                input_row,
                Reason.EXPIRY_UNREADABLE,
                f"PKB issued a pair whose expiry could not be read ({expires}); it was never printed "
                "and lapses unused at PKB. Include the row in a new job for a letter",
            )
        else:
            unreadable.append((input_row, expires))
    if unreadable:
        raise ExpiryUnreadable(codes.expiry_unreadable_message([row for row, _ in unreadable], unreadable[0][1]))


def _take_carried_codes(journal: Journal) -> None:
    """After a restart: patients the replaced job already holds a pair for get that pair, not a new one."""
    for input_row, nhs_number in journal.codes.eligible_with_carried_codes():
        codes, uncertain = journal.codes.carried_codes(nhs_number)
        if isinstance(codes, HeldPair):
            journal.codes.hold_carried(input_row, codes)
        elif codes is not None:
            journal.codes.take_carried_codes(input_row, codes)
        elif uncertain:
            journal.codes.mark_lost_response_from_previous_job(input_row)


def _send_back_expiring(journal: Journal, settings: JobSettings, today: dt.date) -> int:
    """Pairs from an earlier run that would expire within the minimum validity are asked for again."""
    deadline = today + dt.timedelta(days=settings.min_validity_days)
    expiring = journal.codes.coded_expiring_before(deadline)
    for input_row, expires in expiring:
        journal.codes.send_back_for_reissue(
            [input_row],
            Reissue.EXPIRING,
            f"the pair expires on {expires.isoformat()}, within {settings.min_validity_days} days of "
            f"printing on {today.isoformat()}",
        )
    if expiring:
        logger.info("codes: %d pairs expire before %s and are re-issued", len(expiring), deadline.isoformat())
    return len(expiring)


def _hand_off(journal: Journal, settings: JobSettings, job_id: str) -> None:
    """Coded rows whose letter a specialist provider makes (braille, easy read, audio) leave the print
    run here, each with a hand-off piece id; the folder itself is written from the journal at the end."""
    done = journal.rows.count_at(Stage.HANDED_OFF)
    pieces: list[tuple[int, str]] = []
    for patient, _ in journal.placements.coded_in_print_order("input"):
        if not variant_of(patient, settings.letter).printed:
            pieces.append((patient.input_row, handoff.piece_id(job_id, done + len(pieces) + 1)))
    journal.rows.hand_off(pieces)
    if pieces:
        logger.info("hand-off: %d letters go to specialist providers, not to the print run", len(pieces))


def _render_and_assemble(
    journal: Journal,
    spec: RenderSpec,
    settings: JobSettings,
    progress: Progress,
    options: PrintOptions,
) -> tuple[list[PrintFile], _FastPathCount]:
    """Number, lay out and place letters chunk by chunk, then finish the chunks into the print files.

    Each chunk's PDF is written before its letters are recorded as placed, so a chunk the
    journal knows about always exists; one written but not recorded is simply written again.
    """
    work = settings.out_dir / WORK_DIR
    fast = _FastPathCount()
    if _print_files_intact(journal, settings.out_dir):
        return journal.job.print_files(), fast
    make_private_dir(work)
    _lay_out_again_from_missing_chunk(journal, work)
    last_chunk, last_sequence, last_page = journal.placements.render_position()
    to_render = journal.rows.count_at(Stage.CODED)
    # read from the journal a page at a time as chunks go out, in print order
    batches = batched(journal.placements.coded_in_print_order(options.sort), settings.chunk_size)
    next_page = last_page + 1
    executor = chunk_executor(settings.executor, spec, settings.workers, -(-to_render // settings.chunk_size))
    try:
        with progress.stage(Step.RENDER, to_render) as advance:
            for outcome in render_in_order(executor, batches, last_chunk + 1, last_sequence + 1):
                for refusal in outcome.refused:
                    journal.rows.exclude(refusal.patient.input_row, refusal.reason, refusal.detail)
                if outcome.letters:
                    if outcome.pdf is None:
                        raise InvariantError(f"chunk {outcome.task.index} has letters but no PDF")
                    write_atomic(_chunk_path(work, outcome.task.index), outcome.pdf)
                    next_page = _place(journal, outcome.letters, outcome.page_counts, next_page, outcome.task.index)
                    fast.shared += outcome.shared_letters
                    fast.stamped += outcome.stamped_letters
                advance(len(outcome.task.items))
    finally:
        executor.close()
    chunks = journal.placements.placed_chunks()
    logger.info(
        "render: %d chunks, %d pages; this run drew %d letters with the shared layout, stamped %d",
        len(chunks),
        next_page - 1,
        fast.shared,
        fast.stamped,
    )
    files: list[PrintFile] = []
    if chunks:  # a job where nobody is eligible hands over no PDF at all
        with progress.stage(Step.ASSEMBLE, journal.rows.count_at(Stage.PLACED)) as advance:
            files = _finish_print_files(
                journal,
                [_chunk_path(work, c) for c in chunks],
                spec.job_id,
                settings.out_dir,
                options,
                advance,
                settings.letter,
            )
            journal.job.record_print_files(files)
    journal.job.mark_done(Step.ASSEMBLE)
    for path in work.iterdir():
        path.unlink()
    work.rmdir()
    return files, fast


def _finish_print_files(
    journal: Journal,
    chunk_paths: Sequence[Path],
    job_id: str,
    out_dir: Path,
    options: PrintOptions,
    advance: Callable[[int], None] = lambda done: None,
    letter: LetterSettings | None = None,
) -> list[PrintFile]:
    """Blank backs, marks and splitting, recording where the letters landed a batch at a time."""
    letter = letter or LetterSettings()
    finishing = Finishing(
        job_id,
        options.duplex,
        options.marks,
        options.split_by,
        options.max_letters_per_file,
        output_profile=print_options.intent_profile(options),
    )

    def laid_out() -> Iterator[Piece]:
        return pieces_from_placements(
            journal.placements.placed_as_laid_out(print_order(options)),
            lambda patient: patient.postage_class or options.postage_class,
            lambda patient: variant_of(patient, letter).format,
        )

    pieces = laid_out
    decided = None
    if options.mailmark is not None:
        decided = mailmark_run.decide(journal, job_id, laid_out(), options.mailmark, dt.date.today())
        finishing = dataclasses.replace(
            finishing,
            mailmark_at=mailmark.symbol_rect(options.envelope, options.mailmark),
            mailmark_module=options.mailmark.module,
        )

        def pieces() -> Iterator[Piece]:
            return map(decided.apply, laid_out())

    def record(placed: Sequence[PlacedPiece]) -> None:
        journal.placements.record_print_positions((p.piece.sequence, p.file, p.first_page) for p in placed)
        journal.placements.record_pieces(
            PieceRecord(p.piece.sequence, p.file, p.first_page, p.sheet_count, p.piece.postage_class, p.marks)
            for p in placed
        )
        advance(len(placed))

    files = stream_print_files(chunk_paths, pieces, finishing, out_dir, record)
    if decided is not None:
        mailmark_run.hold_back(journal, decided)
    logger.info("print files: %d, %d sheets", len(files), sum(f.sheets for f in files))
    return files


def print_order(options: PrintOptions) -> str:
    """The order the print files hold the laid-out letters in: as laid out (their sequence), or in
    the sort sequence the mail house's Mailmark file gives; either way no piece's id or marks change."""
    if options.mailmark is not None and options.mailmark.print_order is mailmark.PrintOrder.SORT_SEQUENCE:
        return SORT_SEQUENCE_ORDER
    return SEQUENCE_ORDER


def _chunk_path(work: Path, index: int) -> Path:
    return work / f"chunk-{index:05d}.pdf"


def _print_files_intact(journal: Journal, out_dir: Path) -> bool:
    if not journal.job.is_done(Step.ASSEMBLE):
        return False
    files = journal.job.print_files()
    if all((out_dir / f.name).exists() and sha256_of(out_dir / f.name) == f.sha256 for f in files):
        return True
    logger.warning("a print file is missing or changed since it was made; laying the letters out again")
    journal.job.undo_done(Step.ASSEMBLE)
    return False


def _lay_out_again_from_missing_chunk(journal: Journal, work: Path) -> None:
    for chunk in journal.placements.placed_chunks():
        if not _chunk_path(work, chunk).exists():
            undone = journal.placements.unplace_from_chunk(chunk)
            logger.info("render: chunk %d is missing; %d letters will be laid out again", chunk, undone)
            return


def _place(journal: Journal, letters: Sequence[Letter], page_counts: Sequence[int], first_page: int, chunk: int) -> int:
    placed = []
    for letter, pages in zip(letters, page_counts, strict=True):
        placed.append(PlacedLetter(letter, PRINT_FILE, first_page, pages))
        first_page += pages
    journal.placements.record_placements(placed, chunk)
    return first_page


def _finish(
    journal: Journal,
    out_dir: Path,
    job: dict[str, Any],
    files: list[PrintFile],
    resumed: bool,
    letter: LetterSettings | None = None,
    order: str = SEQUENCE_ORDER,
) -> JobSummary:
    """The hand-off files, written a letter at a time from the journal, and the job's summary; the
    manifest lists the letters in `order`, the order they were printed in."""
    letter = letter or LetterSettings()
    letters = journal.rows.count_at(Stage.PLACED)
    exceptions = journal.rows.count_at(Stage.EXCLUDED)
    handed_off = journal.rows.count_at(Stage.HANDED_OFF)
    input_rows = journal.rows.row_count()
    _check_every_row_accounted(journal, input_rows, letters + handed_off, exceptions)
    printed = _variant_counts(letter, journal.rows.count_variants(Stage.PLACED))
    every = _variant_counts(letter, *(journal.rows.count_variants(s) for s in (Stage.PLACED, Stage.HANDED_OFF)))
    record = manifest_job(
        {
            **job,
            "input_rows": input_rows,
            "exceptions": exceptions,
            "reissued": journal.codes.count_reissues(),
            "formats": printed[0],
            "languages": printed[1],
            "handed_off": handed_off,
        },
        letters,
        files,
        journal.placements.has_pieces(),
    )
    entries: Iterable[dict[str, Any]] = (
        letter_entry(placed, piece, reissued, variant_of(placed.letter.patient, letter))
        for placed, piece, reissued in journal.placements.placed_for_manifest(order)
    )
    if "mailmark" in job.get("print", {}):
        entries = mailmark_run.with_mailmarks(entries, mailmark_run.manifest_fields(journal))
        mailmark_run.write_items_csv(out_dir, journal)
    stream_manifest(out_dir, record, entries)
    write_exceptions_csv(out_dir, journal.rows.iter_exclusions())
    journal.job.mark_done(Step.MANIFEST)
    summary = JobSummary(
        job_id=job["id"],
        out_dir=out_dir,
        input_rows=input_rows,
        letters=letters,
        exceptions=exceptions,
        pages=record["pages"],
        by_reason=journal.rows.count_by_reason(),
        by_format=every[0],
        by_language=every[1],
        handed_off=handed_off,
        reissues=journal.codes.count_reissues(Stage.PLACED),
        resumed=resumed,
        by_stage=journal.rows.count_by_stage(),
        sheets=record.get("sheets", 0),
        files=tuple(f.name for f in files),
        warnings=_warnings(journal),
    )
    logger.info(
        "job %s: %d rows, %d letters, %d exceptions",
        summary.job_id,
        input_rows,
        summary.letters,
        summary.exceptions,
        extra={"event": "job-finished", "job_id": summary.job_id},
    )
    return summary


def _partial_summary(journal: Journal, job: JobIdentity, resumed: bool, layout: wp.LayoutDecision) -> JobSummary:
    by_stage = journal.rows.count_by_stage()
    return JobSummary(
        job_id=job.id,
        out_dir=journal.path.parent,
        input_rows=journal.rows.row_count(),
        letters=0,
        exceptions=by_stage.get(Stage.EXCLUDED, 0),
        pages=0,
        by_reason=journal.rows.count_by_reason(),
        reissues=_count(journal.codes.reissues().values()),
        resumed=resumed,
        complete=False,
        by_stage=by_stage,
        warnings=_warnings(journal),
        full_layout=layout.note,
    )


def _variant_counts(
    letter: LetterSettings, *counts: dict[tuple[str, str], int]
) -> tuple[dict[str, int], dict[str, int]]:
    """Letters per format and per language, a row's empty cell counted as the job's default."""
    formats: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    for (row_format, row_language), n in (item for count in counts for item in count.items()):
        variant = variants.variant_of(row_format, row_language, letter.format, letter.language)
        formats[variant.format] += n
        languages[variant.language] += n
    return dict(sorted(formats.items())), dict(sorted(languages.items()))


def _count(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _check_every_row_accounted(journal: Journal, input_rows: int, letters: int, exceptions: int) -> None:
    by_stage = journal.rows.count_by_stage().items()
    stuck = {stage: n for stage, n in by_stage if stage not in (Stage.PLACED, Stage.EXCLUDED, Stage.HANDED_OFF)}
    if stuck or input_rows != letters + exceptions:
        raise InvariantError(
            f"input rows ({input_rows}) != letters ({letters}) + exceptions ({exceptions}); "
            f"rows stuck mid-way: {stuck or 'none'}"
        )
