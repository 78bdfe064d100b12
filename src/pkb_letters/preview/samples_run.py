"""Preview: sample letters for people to sign off, rendered exactly as a run renders them, with no PKB call.

Takes a template, the job's print options and either the built-in edge cases
(`preview/samples.py`) or the first rows of a real patient list; gives, in the output folder:

- ``preview.pdf``: the letters as the print file would hold them (same intake and
  address rules, same renderer with the marks' space reserved and the print CSS,
  same blank backs and separation marks from `printfile`), with made-up codes and
  "SAMPLE – NOT FOR POSTING" across every page;
- ``page-001.png``…: each page of it at 150 dpi;
- ``proof.pdf``: the same pages with the envelope window, the marks' clear zone, the
  printable area and the fold lines outlined (`preview/proof.py`);
- ``index.html`` and ``version.txt``: every sample's pages and the checks that passed or
  failed for it, and whether a named person approved what it shows (`preview/page.py`); the
  page reloads itself when ``version.txt`` changes;
- ``preview.json``: what the letters were made from (the template's files, the settings that
  shape a page) and what the reviewer saw, for `pkb-letters approve` (`preview/approvals.py`).

Rows that would get no letter are reported with their reason code, as a run would
exclude them. Nothing here constructs a `PkbClient`: the codes are made up, of the
shape PKB's are (10 letters and digits), and expire on a date long past.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import random
import string
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pypdfium2

from pkb_letters.assemble import marks
from pkb_letters.assemble.print_files import Finishing, Piece, PlacedPiece, PrintFile, write_print_files
from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.check.print_check import Code, Report, check_files
from pkb_letters.config import JobSettings
from pkb_letters.errors import ConfigError, InvariantError
from pkb_letters.files import make_private_dir, sha256_of, write_atomic
from pkb_letters.fit.stage import address_fit_exclusions
from pkb_letters.intake.patient_list import IntakeResult, read_patient_list
from pkb_letters.job import pipeline
from pkb_letters.job.journal import JOURNAL_NAME
from pkb_letters.job.manifest import build_manifest
from pkb_letters.log import mask_nhs_numbers
from pkb_letters.preview.approvals import (
    PREVIEW_RECORD,
    PageStatus,
    PreviewRecord,
    Subject,
    page_settings,
    page_status,
)
from pkb_letters.preview.page import index_html, with_approval
from pkb_letters.preview.proof import PageRole, proof, watermark
from pkb_letters.preview.results import (
    INDEX_HTML,
    PAGE_PNG,
    PREVIEW_PDF,
    PROOF_PDF,
    SAMPLE_EXPIRY,
    VERSION_FILE,
    Check,
    PreviewRequest,
    PreviewResult,
    SampleResult,
)
from pkb_letters.preview.samples import SAMPLES, samples_csv
from pkb_letters.records import CodePair, Exclusion, Letter, PatientRow, PieceRecord, PlacedLetter, Reason
from pkb_letters.render.chunks import ChunkOutcome, ChunkTask, LetterTemplate, RenderSpec, render_chunk
from pkb_letters.render.font_subsetting import note_slow_subsetting

PNG_DPI = 150
DEFAULT_ROWS = 10  # rows of a real list previewed when no count is given
# PKB's codes are 10 characters from letters and digits (e.g. NKcYiAciBU); made-up ones look the same.
CODE_ALPHABET = string.ascii_letters + string.digits
CODE_LENGTH = 10

logger = logging.getLogger(__name__)


def preview_job_id(day: dt.date) -> str:
    """Shaped like a run's job id, so marks and piece ids are the size they will be; plainly a sample."""
    return f"PKB-{day:%Y%m%d}-SAMPLE"


def sample_codes(input_row: int) -> CodePair:
    """A made-up code pair, the same for a row every time (a re-render shows no spurious change)."""
    chooser = random.Random(f"pkb-letters preview row {input_row}")  # not secret: these codes open nothing
    invitation, access = ("".join(chooser.choices(CODE_ALPHABET, k=CODE_LENGTH)) for _ in range(2))
    return CodePair(invitation, access, SAMPLE_EXPIRY)


def render_preview(request: PreviewRequest) -> PreviewResult:
    """Render, check and write every output; raises TemplateError, InputFileError or ConfigError."""
    check_out_dir(request)
    template = LetterTemplate(request.template_dir)
    # what the letters are made from, read before they are: a template edited mid-render is not approvable
    subject = Subject.of(request.template_dir, page_settings(request.letter, request.rules, request.options))
    note_slow_subsetting()
    found = _candidates(request)
    job_id = preview_job_id(request.letter.date)
    spec = _spec(template, request, job_id)
    renderer = spec.renderer()
    excluded = {e.input_row: e for e in found.exclusions}
    excluded.update((e.input_row, e) for e in address_fit_exclusions(renderer, found.patients))
    renderer.trial_letter(found.patients)  # as a run does: a template fetching outside its folder stops here
    letters, rendered, failed = _lay_out(spec, [p for p in found.patients if p.input_row not in excluded])
    excluded.update((e.input_row, e) for e in failed)
    make_private_dir(request.out_dir)
    placed, report = _write_pdfs(request, letters, rendered, job_id) if letters else ([], Report())
    page_count = _write_pngs(request.out_dir, placed)
    version = str(time.time_ns())
    result = PreviewResult(
        out_dir=request.out_dir,
        samples=tuple(_results(found, letters, placed, excluded, report, request.options.duplex)),
        pages=page_count,
        version=version,
        list_rows=found.list_rows,
        list_exclusions=found.list_by_reason,
    )
    record = _record(request, result, subject, found)
    record.write(request.out_dir)
    _write_index(request, result, page_status(request.template_dir, subject, len(record.failed), request.out_dir))
    return result


def check_out_dir(request: PreviewRequest) -> None:
    """A preview writes only into a folder of its own: never a run's job folder, never its template."""
    out_dir = request.out_dir.resolve()
    if (out_dir / JOURNAL_NAME).exists():
        raise ConfigError(f"{request.out_dir} holds a job; a preview goes in a folder of its own: choose another --out")
    if out_dir.is_relative_to(request.template_dir.resolve()):
        raise ConfigError(
            f"--out {request.out_dir} is inside the template folder, which --watch watches and the "
            "template's fingerprint covers: choose a folder outside it"
        )


# -- which rows -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidates:
    patients: list[PatientRow]  # passed intake, in input order
    exclusions: list[Exclusion]  # failed intake, among the rows previewed
    labels: dict[int, str]  # input row -> what the reviewer sees it called
    list_rows: int = 0
    list_by_reason: dict[str, int] = field(default_factory=dict)


def _candidates(request: PreviewRequest) -> _Candidates:
    international = request.rules.international_post
    if request.patients is None:
        count = request.count or len(SAMPLES)
        if count > len(SAMPLES):
            raise ConfigError(
                f"there are {len(SAMPLES)} built-in samples; --samples {count} asks for more "
                "(use --patients to preview rows of a real list)"
            )
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "samples.csv"
            path.write_text(samples_csv(count), encoding="utf-8")
            intake = read_patient_list(path, international=international)
        labels = {row: sample.label for row, sample in enumerate(SAMPLES[:count], 2)}  # row 1 is the header
        return _Candidates(intake.patients, intake.exclusions, labels)
    intake = read_patient_list(request.patients, international=international)
    rows = sorted([p.input_row for p in intake.patients] + [e.input_row for e in intake.exclusions])
    shown = set(rows[: request.count or DEFAULT_ROWS])
    return _Candidates(
        patients=[p for p in intake.patients if p.input_row in shown],
        exclusions=[e for e in intake.exclusions if e.input_row in shown],
        labels={row: f"Row {row}" for row in sorted(shown)},
        list_rows=intake.input_rows,
        list_by_reason=_by_reason(intake),
    )


def _by_reason(intake: IntakeResult) -> dict[str, int]:
    return dict(sorted(Counter(e.reason.value for e in intake.exclusions).items()))


# -- laying out -----------------------------------------------------------------------------


def _spec(template: LetterTemplate, request: PreviewRequest, job_id: str) -> RenderSpec:
    """The run's own layout: the marks' space reserved, the print CSS and PDF variant."""
    settings = JobSettings(
        patients=request.patients or Path("samples.csv"),
        out_dir=request.out_dir,
        template_dir=request.template_dir,
        letter=request.letter,
        rules=request.rules,
    )
    return pipeline.render_spec(template, settings, request.options, job_id, pipeline.layout_decision().fast_path)


def _lay_out(spec: RenderSpec, patients: Sequence[PatientRow]) -> tuple[list[Letter], ChunkOutcome, list[Exclusion]]:
    """The run's own chunk function: letters the template fails on or whose address does not fit
    are left out, and the rest numbered after them, as in a run."""
    outcome = render_chunk(spec, ChunkTask(0, 1, tuple((p, sample_codes(p.input_row)) for p in patients)))
    failed = [_exclusion(r.patient, r.reason, r.detail) for r in outcome.refused]
    return list(outcome.letters), outcome, failed


def _exclusion(patient: PatientRow, reason: Reason, detail: str) -> Exclusion:
    return Exclusion(patient.input_row, patient.customer_ref, patient.nhs_number, reason, detail)


def _write_pdfs(
    request: PreviewRequest, letters: Sequence[Letter], rendered: ChunkOutcome, job_id: str
) -> tuple[list[PlacedPiece], Report]:
    """The print file as a run finishes it, checked as a run's preflight checks it; then watermarked."""
    options = request.options
    finishing = Finishing(job_id, options.duplex, options.marks)
    pieces, first = [], 0
    for letter, count in zip(letters, rendered.page_counts, strict=True):
        postage_class = letter.patient.postage_class or options.postage_class
        pieces.append(Piece(letter.sequence, letter.piece_id, count, letter.patient.postcode, postage_class, first))
        first += count
    with tempfile.TemporaryDirectory(dir=request.out_dir) as folder:  # inside the owner-only folder
        work = Path(folder)
        if rendered.pdf is None:
            raise InvariantError("the sample letters were laid out but their chunk has no PDF")
        write_atomic(work / "chunk.pdf", rendered.pdf)
        files, placed = write_print_files([work / "chunk.pdf"], pieces, finishing, work)
        (print_file,) = files
        manifest = _manifest(letters, rendered.page_counts, placed, print_file, options)
        report = check_files([work / print_file.name], manifest, options.envelope, options.marks)
        print_pdf = (work / print_file.name).read_bytes()
    previewed = watermark(print_pdf)
    write_atomic(request.out_dir / PREVIEW_PDF, previewed)
    zone = marks.clear_zone(options.marks, marks.sample_payload(job_id))
    roles = page_roles(placed, options.duplex)
    write_atomic(request.out_dir / PROOF_PDF, proof(previewed, roles, options.envelope, zone))
    return placed, report


def _manifest(letters, page_counts, placed: Sequence[PlacedPiece], print_file: PrintFile, options: PrintOptions):
    """What a run's manifest would say of these letters: `check` compares the file with it."""
    by_sequence = {p.piece.sequence: p for p in placed}
    laid_out = [
        PlacedLetter(lt, print_file.name, by_sequence[lt.sequence].first_page, count)
        for lt, count in zip(letters, page_counts, strict=True)
    ]
    records = {
        p.piece.sequence: PieceRecord(
            p.piece.sequence, p.file, p.first_page, p.sheet_count, p.piece.postage_class, p.marks
        )
        for p in placed
    }
    job = {"print": {"duplex": options.duplex, "marks": str(options.marks.kind)}}
    return build_manifest(job, laid_out, [print_file], records)


def page_roles(placed: Sequence[PlacedPiece], duplex: bool) -> list[PageRole]:
    """For each page of the print file: a letter's first page? a sheet's front?"""
    roles = []
    for piece in sorted(placed, key=lambda p: p.first_page):
        for index in range(_printed_pages(piece, duplex)):
            roles.append(PageRole(letter_first_page=index == 0, front=index % 2 == 0 or not duplex))
    return roles


def _printed_pages(piece: PlacedPiece, duplex: bool) -> int:
    return 2 * piece.sheet_count if duplex else piece.piece.page_count


def _write_pngs(out_dir: Path, placed: Sequence[PlacedPiece]) -> int:
    """One PNG per page of preview.pdf; PNGs of pages an earlier, longer preview had are removed."""
    count = 0
    if placed:
        document = pypdfium2.PdfDocument(out_dir / PREVIEW_PDF)
        try:
            for count, page in enumerate(document, 1):
                buffer = io.BytesIO()
                _page_image(page).save(buffer, "PNG", compress_level=1)
                write_atomic(out_dir / PAGE_PNG.format(count), buffer.getvalue())
        finally:
            document.close()
    else:
        for stale in (PREVIEW_PDF, PROOF_PDF):
            (out_dir / stale).unlink(missing_ok=True)
    for path in out_dir.glob("page-*.png"):
        if _page_number(path) > count:
            path.unlink()
    return count


def _page_image(page):
    """The page at 150 dpi, A4 being 1240 x 1754 pixels: PDFium rounds a part pixel up to a whole one
    (1240.2 to 1241), which the crop takes off again."""
    scale = PNG_DPI / 72
    width, height = (round(side * scale) for side in page.get_size())
    return page.render(scale=scale).to_pil().crop((0, 0, width, height))


def _page_number(path: Path) -> int:
    digits = path.stem.removeprefix("page-")
    return int(digits) if digits.isdigit() else 0


# -- what the reviewer sees -----------------------------------------------------------------

# The preflight's codes, as the checks a reviewer reads, in the order a print room cares about them.
PRINT_CHECKS: tuple[tuple[str, tuple[Code, ...]], ...] = (
    ("address inside the envelope window", (Code.ADDRESS_NOT_IN_WINDOW,)),
    ("text inside the printable area", (Code.OUTSIDE_PRINTABLE,)),
    ("marks' clear zone kept clear", (Code.IN_MARK_ZONE,)),
    ("separation marks read back right", (Code.MARK_MISSING, Code.MARK_MISMATCH)),
    ("blank backs are blank", (Code.BLANK_NOT_BLANK,)),
    ("page count", (Code.PAGE_COUNT,)),
    ("A4 portrait", (Code.NOT_A4, Code.UNREADABLE)),
    ("fonts embedded", (Code.FONT_NOT_EMBEDDED,)),
    ("text in K-only black", (Code.NON_BLACK_TEXT,)),
)
LIST_CHECK = "list rules (names, NHS number, address)"
FIT_CHECK = "address fits the envelope window"
TEMPLATE_CHECK = "template renders"
_FIT_REASONS = {Reason.ADDRESS_TOO_WIDE, Reason.ADDRESS_TOO_TALL}


def _results(
    found: _Candidates,
    letters: Sequence[Letter],
    placed: Sequence[PlacedPiece],
    excluded: dict[int, Exclusion],
    report: Report,
    duplex: bool,
) -> Iterable[SampleResult]:
    patients = {p.input_row: p for p in found.patients}
    pieces = {p.piece.sequence: p for p in placed}
    letters_by_row = {lt.patient.input_row: lt for lt in letters}
    for row, label in found.labels.items():
        patient = patients.get(row)
        name, address = (patient.display_name, patient.address_lines) if patient else ("", ())
        if row in excluded:
            exclusion = excluded[row]
            yield SampleResult(
                label,
                row,
                name,
                address,
                (),
                _failed_checks(exclusion),
                exclusion.reason.value,
                reference=exclusion.customer_ref,
            )
            continue
        piece = pieces[letters_by_row[row].sequence]
        pages = tuple(range(piece.first_page, piece.first_page + _printed_pages(piece, duplex)))
        passed = (Check(LIST_CHECK, True), Check(FIT_CHECK, True), Check(TEMPLATE_CHECK, True))
        yield SampleResult(
            label,
            row,
            name,
            address,
            pages,
            passed + _print_checks(report, pages),
            blank_pages=pages[piece.piece.page_count :],
            reference=letters_by_row[row].patient.customer_ref,
        )


def _failed_checks(exclusion: Exclusion) -> tuple[Check, ...]:
    detail = f"{exclusion.reason.value}: {mask_nhs_numbers(exclusion.detail)}"
    if exclusion.reason is Reason.TEMPLATE_ERROR:
        return Check(LIST_CHECK, True), Check(FIT_CHECK, True), Check(TEMPLATE_CHECK, False, detail)
    if exclusion.reason in _FIT_REASONS:
        return Check(LIST_CHECK, True), Check(FIT_CHECK, False, detail)
    return (Check(LIST_CHECK, False, detail),)


def _print_checks(report: Report, pages: Sequence[int]) -> tuple[Check, ...]:
    checks = []
    for name, codes in PRINT_CHECKS:
        hits = [p for p in report.problems if p.code in codes and (p.page is None or p.page in pages)]
        details = "; ".join(f"page {p.page}: {p.detail}" if p.page else p.detail for p in hits[:3])
        checks.append(Check(name, not hits, details))
    return tuple(checks)


def _record(request: PreviewRequest, result: PreviewResult, subject: Subject, found: _Candidates) -> PreviewRecord:
    """What `pkb-letters approve` signs off: the subject, the sample set (labels only, never a
    patient's details: the approval travels with the template) and the files the reviewer saw."""
    if request.patients is None:
        samples: dict[str, object] = {"source": "built-in edge cases", "labels": list(found.labels.values())}
    else:
        samples = {
            "source": f"patient list {request.patients.name}",
            "sha256": sha256_of(request.patients),
            "labels": list(found.labels.values()),
        }
    pdfs = [request.out_dir / name for name in (PREVIEW_PDF, PROOF_PDF)]
    preview_sha, proof_sha = (sha256_of(path) if path.exists() else "" for path in pdfs)
    return PreviewRecord(
        template=str(request.template_dir.resolve()),
        subject=subject,
        samples=samples,
        failed=[sample.label for sample in result.failed],
        pages=result.pages,
        preview_pdf_sha256=preview_sha,
        proof_pdf_sha256=proof_sha,
        made=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def show_approval(preview_dir: Path) -> PageStatus:
    """After `approve`: the written page says who approved it, and a served page reloads to show it."""
    record = PreviewRecord.read(preview_dir)
    status = page_status(Path(record.template), record.subject, len(record.failed), preview_dir)
    version = str(time.time_ns())
    page = (preview_dir / INDEX_HTML).read_text(encoding="utf-8")
    write_atomic(preview_dir / INDEX_HTML, with_approval(page, status, version).encode("utf-8"))
    write_atomic(preview_dir / VERSION_FILE, version.encode("ascii"))
    return status


def _write_index(request: PreviewRequest, result: PreviewResult, status: PageStatus) -> None:
    write_atomic(request.out_dir / INDEX_HTML, index_html(request, result, approval=status).encode("utf-8"))
    write_atomic(request.out_dir / VERSION_FILE, result.version.encode("ascii"))  # last: the page reloads on it


def write_error_page(request: PreviewRequest, error: Exception) -> str:
    """When a re-render fails (say, a template mid-edit), the page says why instead of going stale."""
    make_private_dir(request.out_dir)
    (request.out_dir / PREVIEW_RECORD).unlink(missing_ok=True)  # nothing rendered: nothing to approve
    version = str(time.time_ns())
    result = PreviewResult(request.out_dir, (), 0, version)
    write_atomic(request.out_dir / INDEX_HTML, index_html(request, result, error=str(error)).encode("utf-8"))
    write_atomic(request.out_dir / VERSION_FILE, version.encode("ascii"))
    return version
