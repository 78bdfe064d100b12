"""The job: intake → resolve → tokens → render → assemble → manifest, over one journal.

`run_job` takes settings and a PKB connection and gives a `JobSummary`; each
stage's decisions are written to the journal as they are made, and every
output file is derived from the journal at the end.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import marks, printing, resolve, tokens
from .config import JobSettings, PkbConnection
from .envelope import C5, EnvelopeProfile
from .errors import ConfigError, InvariantError, TemplateError
from .files import make_private_dir, write_atomic
from .intake import IntakeResult, read_patient_list
from .journal import JOURNAL_NAME, Journal, PieceRecord, Stage
from .mailsort import in_print_order
from .manifest import MANIFEST_JSON, build_manifest, write_exceptions_csv, write_manifest_csv, write_manifest_json
from .pkb import PkbClient
from .printfile import Finishing, PrintFile, pieces_from_placements, write_print_files
from .printing import PrintOptions
from .progress import NoProgress, Progress
from .records import CodePair, Eligible, Exclusion, Letter, PatientRow, PlacedLetter, Reason
from .render import ChunkRenderer, LetterTemplate, RenderedChunk

PRINT_FILE = "letters.pdf"
WORK_DIR = "work"
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
    sheets: int = 0
    files: tuple[str, ...] = ()


def run_job(
    settings: JobSettings,
    connection: PkbConnection,
    progress: Progress | None = None,
    envelope: EnvelopeProfile = C5,
    print_options: PrintOptions | None = None,
) -> JobSummary:
    progress = progress or NoProgress()
    options = print_options or PrintOptions(envelope=envelope)
    template = LetterTemplate(settings.template_dir)  # fail on a broken template before any API call
    if (settings.out_dir / JOURNAL_NAME).exists():
        raise ConfigError(f"{settings.out_dir} already holds a job; choose a new --out directory")
    intake = read_patient_list(settings.patients)  # an unreadable list leaves no job folder behind
    make_private_dir(settings.out_dir)
    with Journal.in_dir(settings.out_dir) as journal:
        job = _start(journal, settings, template)
        renderer = _print_renderer(template, settings, options, job["id"])
        _record_intake(journal, intake)
        _check_addresses(journal, renderer)
        with PkbClient(connection) as client:
            _resolve(journal, client, settings, progress)
            _issue(journal, client, settings, progress)
        files = _render_and_assemble(journal, renderer, job["id"], settings, progress, options)
        summary = _finish(journal, settings.out_dir, {**job, "print": _print_summary(options)}, files)
        if options.preflight and files:
            _preflight(settings.out_dir, files, options)
        return summary


def _print_renderer(
    template: LetterTemplate, settings: JobSettings, options: PrintOptions, job_id: str
) -> ChunkRenderer:
    """A renderer whose page margins keep body text out of the marks' clear zone."""
    page = marks.reserve_space(options.envelope, options.marks, marks.sample_payload(job_id))
    printing.warn_without_output_intent(options)
    return ChunkRenderer(
        template, settings.letter, page, printing.print_css(options), printing.pdf_options(options)
    )


def _print_summary(options: PrintOptions) -> dict:
    return {
        "envelope": options.envelope.name,
        "duplex": options.duplex,
        "pdf_variant": options.pdf_variant,
        "marks": str(options.marks.kind),
        "sort": options.sort,
        "split_by": list(options.split_by),
        "max_letters_per_file": options.max_letters_per_file,
    }


def _preflight(out_dir: Path, files: Sequence[PrintFile], options: PrintOptions) -> None:
    from .check import check_files

    report = check_files([out_dir / f.name for f in files], out_dir / MANIFEST_JSON, options.envelope, options.marks)
    if not report.ok:
        raise InvariantError(f"the print files failed their own preflight check:\n{report.text(limit=20)}")
    logger.info("preflight: %d files, %d pages checked, no problems", len(files), report.pages)


def _start(journal: Journal, settings: JobSettings, template: LetterTemplate) -> dict[str, str]:
    job = {
        "id": f"PKB-{settings.letter.date:%Y%m%d}-{secrets.token_hex(3).upper()}",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "template": template.name,
        "api": settings.api,
    }
    journal.set_settings({**job, "patients": str(settings.patients), "letter_date": settings.letter.date.isoformat()})
    return job


def _record_intake(journal: Journal, result: IntakeResult) -> None:
    journal.add_patients(result.patients)
    journal.add_exclusions(result.exclusions)
    logger.info("intake: %d rows, %d excluded", result.input_rows, len(result.exclusions))


def _check_addresses(journal: Journal, renderer: ChunkRenderer) -> None:
    """Exclude, before any code is issued, rows whose letter could not be printed as it is."""
    problems = renderer.check_addresses(journal.patients_at(Stage.READ))
    for input_row, problem in problems.items():
        if isinstance(problem, TemplateError):
            journal.exclude(input_row, Reason.TEMPLATE_ERROR, str(problem))
        else:
            journal.exclude(input_row, problem.reason, problem.detail)
    logger.info("address fit: %d blocks would not print", len(problems))


def _resolve(journal: Journal, client: PkbClient, settings: JobSettings, progress: Progress) -> None:
    patients = journal.patients_at(Stage.READ)
    route = resolve.resolve_fhir if settings.api == "fhir" else resolve.resolve_rest
    with progress.stage("resolve", len(patients)) as advance:
        for decision in route(patients, client, settings.letter.date, advance):
            _record_decision(journal, decision)
    logger.info("resolve: %d patients asked, %d eligible", len(patients), len(journal.eligible()))


def _record_decision(journal: Journal, decision: Eligible | Exclusion) -> None:
    if isinstance(decision, Exclusion):
        journal.exclude(decision.input_row, decision.reason, decision.detail)
    else:
        journal.mark_eligible(decision)


def _issue(journal: Journal, client: PkbClient, settings: JobSettings, progress: Progress) -> None:
    eligible = journal.eligible()
    with progress.stage("codes", len(eligible)) as advance:
        if settings.api == "fhir":
            batches = tokens.issue_fhir(eligible, client, advance)
        else:
            batches = tokens.issue_rest(eligible, client, settings.rest_code_validity_days, advance)
        for batch in batches:
            for item, outcome in batch:
                if isinstance(outcome, CodePair):
                    journal.record_codes(item.patient.input_row, outcome)
                else:
                    journal.exclude(outcome.input_row, outcome.reason, outcome.detail)
    logger.info("codes: %d asked, %d pairs issued", len(eligible), len(journal.coded()))


def _render_and_assemble(
    journal: Journal,
    renderer: ChunkRenderer,
    job_id: str,
    settings: JobSettings,
    progress: Progress,
    options: PrintOptions | None = None,
) -> list[PrintFile]:
    """Number, lay out and place letters chunk by chunk, then join the chunks into the print file."""
    work = settings.out_dir / WORK_DIR
    make_private_dir(work)
    options = options or PrintOptions()
    coded = in_print_order(journal.coded(), options.sort)
    chunk_paths: list[Path] = []
    next_sequence = next_page = 1
    with progress.stage("render", len(coded)) as advance:
        for index, chunk in enumerate(_chunks(coded, settings.chunk_size), 1):
            letters, rendered = _render_chunk(journal, renderer, job_id, chunk, next_sequence)
            if letters:
                path = work / f"chunk-{index:05d}.pdf"
                write_atomic(path, rendered.pdf)
                chunk_paths.append(path)
                next_page = _place(journal, letters, rendered.page_counts, next_page)
                next_sequence += len(letters)
            advance(len(chunk))
    logger.info("render: %d letters in %d chunks, %d pages", next_sequence - 1, len(chunk_paths), next_page - 1)
    files: list[PrintFile] = []
    if chunk_paths:  # a job where nobody is eligible hands over no PDF at all
        files = _finish_print_files(journal, chunk_paths, job_id, settings.out_dir, options)
    for path in chunk_paths:
        path.unlink()
    work.rmdir()
    return files


def _finish_print_files(
    journal: Journal, chunk_paths: Sequence[Path], job_id: str, out_dir: Path, options: PrintOptions
) -> list[PrintFile]:
    """Blank backs, marks and splitting; then record where each letter landed."""
    finishing = Finishing(job_id, options.duplex, options.marks, options.split_by, options.max_letters_per_file)
    pieces = pieces_from_placements(journal.placed(), lambda patient: patient.postage_class or options.postage_class)
    files, placed = write_print_files(chunk_paths, pieces, finishing, out_dir)
    by_sequence = {p.letter.sequence: p for p in journal.placed()}
    journal.record_placements(
        PlacedLetter(by_sequence[p.piece.sequence].letter, p.file, p.first_page, p.piece.page_count) for p in placed
    )
    journal.record_pieces(
        PieceRecord(p.piece.sequence, p.file, p.first_page, p.sheet_count, p.piece.postage_class, p.marks)
        for p in placed
    )
    logger.info("print files: %d, %d sheets", len(files), sum(f.sheets for f in files))
    return files


def _render_chunk(
    journal: Journal, renderer: ChunkRenderer, job_id: str, chunk: Sequence[tuple[PatientRow, CodePair]], first: int
) -> tuple[list[Letter], RenderedChunk]:
    """Lay out a chunk, excluding letters the template fails on or whose address does not fit.

    Sequence numbers are given here, after those exclusions, so the print file's
    pieces are numbered without gaps.
    """
    candidates = list(chunk)
    while True:
        letters = [Letter(n, f"{job_id}-{n:06d}", p, c) for n, (p, c) in enumerate(candidates, first)]
        bodies, failed = _bodies(renderer, letters)
        if failed:
            for letter, error in failed:
                journal.exclude(letter.patient.input_row, Reason.TEMPLATE_ERROR, str(error))
            failed_sequences = {letter.sequence for letter, _ in failed}
            candidates = [(lt.patient, lt.codes) for lt in letters if lt.sequence not in failed_sequences]
            continue
        if not letters:
            return [], RenderedChunk(None, ())
        rendered = renderer.render(letters, bodies)
        if not rendered.misfits:
            return letters, rendered
        by_sequence = {lt.sequence: lt for lt in letters}
        for misfit in rendered.misfits:
            journal.exclude(by_sequence[misfit.sequence].patient.input_row, misfit.reason, misfit.detail)
        dropped = {m.sequence for m in rendered.misfits}
        candidates = [(lt.patient, lt.codes) for lt in letters if lt.sequence not in dropped]


def _bodies(renderer: ChunkRenderer, letters: Sequence[Letter]) -> tuple[list[str], list[tuple[Letter, TemplateError]]]:
    bodies, failed = [], []
    for letter in letters:
        try:
            bodies.append(renderer.body(letter))
        except TemplateError as exc:
            failed.append((letter, exc))
    return bodies, failed


def _place(journal: Journal, letters: Sequence[Letter], page_counts: Sequence[int], first_page: int) -> int:
    placed = []
    for letter, pages in zip(letters, page_counts, strict=True):
        placed.append(PlacedLetter(letter, PRINT_FILE, first_page, pages))
        first_page += pages
    journal.record_placements(placed)
    return first_page


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _finish(journal: Journal, out_dir: Path, job: dict[str, str], files: list[PrintFile]) -> JobSummary:
    placed = list(journal.placed())
    exclusions = journal.exclusions()
    input_rows = journal.row_count()
    _check_every_row_accounted(journal, input_rows, placed, exclusions)
    manifest = build_manifest(
        {**job, "input_rows": input_rows, "exceptions": len(exclusions)}, placed, files, journal.pieces()
    )
    write_manifest_json(out_dir, manifest)
    write_manifest_csv(out_dir, manifest["letters"])
    write_exceptions_csv(out_dir, exclusions)
    summary = JobSummary(
        job_id=job["id"],
        out_dir=out_dir,
        input_rows=input_rows,
        letters=len(placed),
        exceptions=len(exclusions),
        pages=manifest["job"]["pages"],
        by_reason=journal.count_by_reason(),
        sheets=manifest["job"].get("sheets", 0),
        files=tuple(f.name for f in files),
    )
    logger.info(
        "job %s: %d rows, %d letters, %d exceptions", summary.job_id, input_rows, summary.letters, summary.exceptions
    )
    return summary


def _check_every_row_accounted(
    journal: Journal, input_rows: int, placed: Sequence[PlacedLetter], exclusions: Sequence[Exclusion]
) -> None:
    stuck = {stage: n for stage, n in journal.count_by_stage().items() if stage not in (Stage.PLACED, Stage.EXCLUDED)}
    if stuck or input_rows != len(placed) + len(exclusions):
        raise InvariantError(
            f"input rows ({input_rows}) != letters ({len(placed)}) + exceptions ({len(exclusions)}); "
            f"rows stuck mid-way: {stuck or 'none'}"
        )
