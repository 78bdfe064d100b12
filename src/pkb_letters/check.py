"""Preflight: letter PDFs (ours or a customer's) in, a report of what a print room would reject out.

Per page: not A4, fonts not embedded, text not in pure K-only black, text
outside the printable area or inside the marks' clear zone, the address on a
letter's first page not inside the envelope window, page counts that disagree
with the manifest, and separation marks missing or whose decoded payload
disagrees with the manifest. DataMatrix marks are decoded from the rendered
clear zone by libdmtx (via pylibdmtx), a reader independent of the encoder we print with.

`page_facts` does the reading; this module judges. Pages can be checked in
several processes (``workers``); the report is the same, in the same order.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

from . import marks
from .envelope import A4_HEIGHT_MM, A4_WIDTH_MM, C5, EnvelopeProfile, Rect
from .marks import MarkKind, MarkLayout
from .page_facts import K_BLACK, MM_PER_POINT, PATTERN, PdfPages, Word

with warnings.catch_warnings():  # pylibdmtx 0.1.10 imports distutils' LooseVersion, deprecated since 3.10
    warnings.filterwarnings("ignore", "distutils Version classes", DeprecationWarning)
    from pylibdmtx import pylibdmtx

__all__ = ["MM_PER_POINT", "Code", "Problem", "Report", "check_files", "available_cpus"]

_SIZE_TOLERANCE_MM = 0.2
_POSITION_TOLERANCE_MM = 0.3
_PIXELS_PER_FEATURE = 4  # a DataMatrix module or an OMR dash's thickness, as scanned: libdmtx reads 3 reliably
_DECODE_TIMEOUT_MS = 1000  # a readable mark decodes in about 2 ms
_DARK = 96  # grey level below which a scanned OMR track counts as a dash
# Pages per process: starting one (Python, pikepdf, PDFium, libdmtx) costs about as much as checking
# 100 pages. Each job opens the file afresh and closes it when done: qpdf and PDFium keep every object
# they parse until then (about 12 KB a page checked), so a bounded job is a bounded amount of memory.
_MIN_PAGES_PER_JOB = 250
_MAX_PAGES_PER_JOB = 2000


class Code(StrEnum):
    UNREADABLE = "unreadable-pdf"
    NOT_A4 = "not-a4"
    FONT_NOT_EMBEDDED = "font-not-embedded"
    NON_BLACK_TEXT = "non-black-text"
    OUTSIDE_PRINTABLE = "text-outside-printable-area"
    IN_MARK_ZONE = "text-in-mark-clear-zone"
    ADDRESS_NOT_IN_WINDOW = "address-not-in-window"
    PAGE_COUNT = "page-count-mismatch"
    BLANK_NOT_BLANK = "padding-page-not-blank"
    MARK_MISSING = "mark-missing"
    MARK_MISMATCH = "mark-mismatch"


@dataclass(frozen=True)
class Problem:
    file: str
    page: int | None  # 1-based; None for the whole file
    code: Code
    detail: str


@dataclass
class Report:
    files: list[str] = field(default_factory=list)
    pages: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "files": self.files, "pages": self.pages,
                "problems": [asdict(p) for p in self.problems]}

    def json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def text(self, limit: int | None = None) -> str:
        lines = [f"{len(self.files)} file(s), {self.pages} page(s) checked: "
                 + ("no problems" if self.ok else f"{len(self.problems)} problem(s)")]
        shown = self.problems if limit is None else self.problems[:limit]
        for p in shown:
            where = f"{p.file} page {p.page}" if p.page else p.file
            lines.append(f"  {where}: {p.code}: {p.detail}")
        if len(shown) < len(self.problems):
            lines.append(f"  … and {len(self.problems) - len(shown)} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Expected:
    """What the manifest says about one file."""

    pages: int | None
    duplex: bool
    letters: list[dict[str, Any]]


def check_files(
    paths: Sequence[Path],
    manifest: Path | Mapping[str, Any] | None = None,
    envelope: EnvelopeProfile = C5,
    layout: MarkLayout | None = None,
    *,
    workers: int = 1,
) -> Report:
    """Check every page of every file. `workers` > 1 spreads the pages over that many processes
    (for jobs big enough to pay for starting them); they are spawned, so a script that asks for
    them must call this under ``if __name__ == "__main__":``, as multiprocessing requires."""
    data = _load_manifest(manifest)
    if layout is None:
        kind = (data or {}).get("job", {}).get("print", {}).get("marks", MarkKind.DATAMATRIX)
        layout = marks.DEFAULT_LAYOUTS[MarkKind(kind)]
    zone = marks.clear_zone(layout, marks.sample_payload("PKB-00000000-000000"))
    plans = [_plan_file(path, _expected_for(data, path.name), envelope, layout, zone) for path in paths]
    size = _pages_per_job(plans, workers)
    jobs = [_jobs(plan, size) for plan in plans]
    results = iter(_run([job for file_jobs in jobs for job in file_jobs], workers))
    report = Report(files=[path.name for path in paths], pages=sum(plan.page_count for plan in plans))
    for plan, file_jobs in zip(plans, jobs, strict=True):
        pages: dict[int, _PageResult] = {}
        for _ in file_jobs:
            pages.update(next(results))
        report.problems.extend(_file_problems(plan, pages))
    return report


def _file_problems(plan: _FilePlan, pages: Mapping[int, _PageResult]) -> list[Problem]:
    found = list(plan.problems)
    for number in sorted(pages):
        found.extend(pages[number].problems)
    if plan.expected is None and plan.page_count:
        found.extend(_judge_without_manifest(plan, pages))
    return [problem for _, problem in sorted(found, key=lambda item: item[0])]


def available_cpus() -> int:
    """The CPUs this process may run on: a sensible `workers` for a job's own preflight."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _load_manifest(manifest: Path | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if manifest is None or isinstance(manifest, Mapping):
        return manifest
    return json.loads(manifest.read_text(encoding="utf-8"))


def _expected_for(data: Mapping[str, Any] | None, name: str) -> _Expected | None:
    if data is None:
        return None
    job = data["job"]
    pages = next((f["pages"] for f in job.get("files", []) if f["name"] == name), None)
    letters = [entry for entry in data["letters"] if entry["file"] == name]
    return _Expected(pages, bool(job.get("print", {}).get("duplex", False)), letters)


# -- planning: what to look at on which page ------------------------------------------------
#
# Problems carry a sort key so that, however the pages are shared out, the report lists them
# as one pass would: page by page, then the file's letters in manifest order.

_PAGE, _FILE, _LAST = 0, 1, 2
_START, _BEYOND, _ADDRESS, _PADDING, _MARK = range(5)


@dataclass(frozen=True)
class _Task:
    """Something to check on one page for one letter of the manifest."""

    key: tuple
    kind: int  # _ADDRESS, _PADDING or _MARK
    piece: str
    lines: tuple[str, ...] = ()
    payload: str = ""


@dataclass
class _FilePlan:
    path: Path
    expected: _Expected | None
    envelope: EnvelopeProfile
    layout: MarkLayout
    zone: Rect | None
    page_count: int = 0
    problems: list[tuple[tuple, Problem]] = field(default_factory=list)
    tasks: dict[int, list[_Task]] = field(default_factory=dict)

    def add(self, key: tuple, page: int | None, code: Code, detail: str) -> None:
        self.problems.append((key, Problem(self.path.name, page, code, detail)))


def _plan_file(path: Path, expected: _Expected | None, envelope: EnvelopeProfile, layout: MarkLayout,
               zone: Rect | None) -> _FilePlan:
    plan = _FilePlan(path, expected, envelope, layout, zone)
    try:
        with PdfPages(path) as pdf:
            plan.page_count = len(pdf)
    except Exception as exc:  # any parser failure means the print room cannot use the file either
        plan.add((_FILE, -1), None, Code.UNREADABLE, f"cannot read the PDF: {exc}")
        return plan
    if expected is not None:
        _plan_letters(plan, expected)
    return plan


def _plan_letters(plan: _FilePlan, expected: _Expected) -> None:
    pages = plan.page_count
    if expected.pages is not None and expected.pages != pages:
        plan.add((_FILE, -1), None, Code.PAGE_COUNT, f"the file has {pages} pages; the manifest says {expected.pages}")
    next_page = 1
    for index, entry in enumerate(expected.letters):
        first, count, piece = entry["first_page"], entry["page_count"], entry["piece_id"]
        sheets = entry.get("sheet_count", count)
        printed = 2 * sheets if expected.duplex else count
        if first != next_page:
            plan.add((_FILE, index, _START), first, Code.PAGE_COUNT,
                     f"piece {piece} starts on page {first}; after the letter before it, it should start on page "
                     f"{next_page}")
        next_page = first + printed
        if first + printed - 1 > pages:
            plan.add((_FILE, index, _BEYOND), None, Code.PAGE_COUNT,
                     f"piece {piece} needs pages {first}-{first + printed - 1}; the file has {pages}")
            continue
        lines = (entry["name"], *entry["address_lines"])
        plan.tasks.setdefault(first, []).append(_Task((_FILE, index, _ADDRESS), _ADDRESS, piece, lines))
        for padding in range(first + count, first + printed):
            plan.tasks.setdefault(padding, []).append(_Task((_FILE, index, _PADDING, padding), _PADDING, piece))
        fronts = [first + (2 if expected.duplex else 1) * n for n in range(sheets)]
        for front, payload in zip(fronts, entry.get("marks", []), strict=False):
            plan.tasks.setdefault(front, []).append(_Task((_FILE, index, _MARK, front), _MARK, piece, payload=payload))
    if expected.letters and next_page - 1 != pages:
        plan.add((_LAST,), None, Code.PAGE_COUNT,
                 f"the manifest's letters fill {next_page - 1} pages; the file has {pages}")


# -- sharing pages out ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """Pages first..last of one file, with everything needed to check them in another process."""

    path: Path
    first: int
    last: int
    tasks: dict[int, list[_Task]]
    envelope: EnvelopeProfile
    layout: MarkLayout
    zone: Rect | None
    unplanned: bool  # no manifest: read every page's mark and window for the file-wide judgement


@dataclass
class _PageResult:
    file: str
    number: int
    problems: list[tuple[tuple, Problem]] = field(default_factory=list)
    mark: str | None = None  # without a manifest: the DataMatrix payload read on the page
    window: list[tuple[tuple, Problem]] = field(default_factory=list)  # without a manifest: if a first page

    def add(self, key: tuple, code: Code, detail: str) -> None:
        self.problems.append((key, Problem(self.file, self.number, code, detail)))


def _pages_per_job(plans: Sequence[_FilePlan], workers: int) -> int:
    total = max(sum(plan.page_count for plan in plans), 1)
    processes = min(workers, total // _MIN_PAGES_PER_JOB)
    return min(math.ceil(total / processes), _MAX_PAGES_PER_JOB) if processes > 1 else total


def _jobs(plan: _FilePlan, size: int) -> list[_Job]:
    jobs = []
    for first in range(1, plan.page_count + 1, size):
        last = min(first + size - 1, plan.page_count)
        tasks = {page: plan.tasks[page] for page in range(first, last + 1) if page in plan.tasks}
        jobs.append(_Job(plan.path, first, last, tasks, plan.envelope, plan.layout, plan.zone, plan.expected is None))
    return jobs


def _run(jobs: Sequence[_Job], workers: int) -> list[dict[int, _PageResult]]:
    if workers <= 1 or len(jobs) <= 1:
        return [_check_pages(job) for job in jobs]
    # spawn, not fork: the caller may have threads (a progress bar, an HTTP client) a fork would copy mid-step
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
        return list(pool.map(_check_pages, jobs))


# -- one job's pages ------------------------------------------------------------------------


def _check_pages(job: _Job) -> dict[int, _PageResult]:
    results = {}
    numbers = range(job.first, job.last + 1)
    with PdfPages(job.path, numbers) as pdf:  # read from an excerpt of these pages: memory as for them alone
        for number in numbers:
            result = _PageResult(job.path.name, number)
            try:
                words = _check_page(pdf, number, job.envelope, job.zone, result.add)
                for task in job.tasks.get(number, ()):
                    _check_task(pdf, number, task, words, job, result.add)
                if job.unplanned:
                    _read_unplanned(pdf, number, words, job, result)
            except Exception as exc:  # a page the parsers fail on is a page the print room cannot print
                result.add((_PAGE, number, 9), Code.UNREADABLE, f"cannot read the page: {exc}")
            if result.problems or result.mark or result.window:  # a big job's clean pages cost no memory
                results[number] = result
    return results


def _check_page(pdf: PdfPages, number: int, envelope: EnvelopeProfile, zone: Rect | None, add) -> list[Word]:
    key = (_PAGE, number)
    width, height = pdf.size_mm(number)
    if abs(width - A4_WIDTH_MM) > _SIZE_TOLERANCE_MM or abs(height - A4_HEIGHT_MM) > _SIZE_TOLERANCE_MM:
        add((*key, 0), Code.NOT_A4, f"page is {width:.1f} x {height:.1f} mm, not A4 portrait (210 x 297)")
    for font in pdf.unembedded_fonts(number):
        add((*key, 1), Code.FONT_NOT_EMBEDDED, f"font {font} is not embedded")
    colours = sorted({_colour_name(c) for c in pdf.text_colours(number) if c != K_BLACK})
    if colours:
        add((*key, 2), Code.NON_BLACK_TEXT,
            f"text in {', '.join(colours)}; print rooms want K-only black (0 0 0 1 k)")
    words = pdf.words(number)
    printable = envelope.printable_area.grown(_POSITION_TOLERANCE_MM)
    outside = [w for w in words if not printable.contains(w.rect)]
    if outside:
        add((*key, 3), Code.OUTSIDE_PRINTABLE,
            f"{len(outside)} word(s) outside the printable area, e.g. {outside[0]}")
    if zone is not None:
        inner = zone.grown(-_POSITION_TOLERANCE_MM)
        intruders = [w for w in words if w.rect.overlaps(inner)]
        if intruders:
            add((*key, 4), Code.IN_MARK_ZONE,
                f"{len(intruders)} word(s) in the marks' clear zone, e.g. {intruders[0]}")
    return words


def _colour_name(colour) -> str:
    if colour is None:
        return "the default (DeviceGray) colour"
    if colour == PATTERN:
        return "a pattern"
    values = " ".join(f"{float(v):g}" for v in colour)
    return {1: f"gray {values}", 3: f"RGB {values}", 4: f"CMYK {values}"}.get(len(colour), f"colour {values}")


def _check_task(pdf: PdfPages, number: int, task: _Task, words: list[Word], job: _Job, add) -> None:
    if task.kind == _ADDRESS:
        for problem in _address_problems(words, number, job.envelope, list(task.lines)):
            add(task.key, *problem)
    elif task.kind == _PADDING:
        if not pdf.is_empty(number) and (pdf.has_text(number) or _mark_present(pdf, number, job.layout, job.zone)):
            add(task.key, Code.BLANK_NOT_BLANK, f"the blank back of piece {task.piece} has something on it")
    elif task.kind == _MARK:
        _check_mark(pdf, number, job.layout, job.zone, task.payload, partial(add, task.key))


def _read_unplanned(pdf: PdfPages, number: int, words: list[Word], job: _Job, result: _PageResult) -> None:
    if job.layout.kind is MarkKind.DATAMATRIX and job.zone is not None:
        result.mark = _decode_datamatrix(pdf, number, job.layout, job.zone)
    for n, (code, detail) in enumerate(_address_problems(words, number, job.envelope, None)):
        result.window.append(((_FILE, 2, number, n), Problem(job.path.name, number, code, detail)))


def _judge_without_manifest(plan: _FilePlan, facts: Mapping[int, _PageResult]) -> list[tuple[tuple, Problem]]:
    """A customer's file: first pages are those whose mark says sheet 1 (or page 1 when unmarked)."""
    found = []
    firsts = [1]
    if plan.layout.kind is MarkKind.DATAMATRIX:
        marked = {n: facts[n].mark for n in sorted(facts) if facts[n].mark}
        if not marked:
            found.append(((_FILE, 0), Problem(plan.path.name, None, Code.MARK_MISSING,
                                              "no DataMatrix separation mark found on any page")))
        for n, payload in marked.items():
            if not marks.payload_is_consistent(payload):
                found.append(((_FILE, 1, n), Problem(plan.path.name, n, Code.MARK_MISMATCH,
                                                     f"mark {payload!r} fails its check character")))
        firsts = [n for n, p in marked.items() if " 01/" in p] or [1]
    for first in firsts:
        if first in facts:
            found.extend(facts[first].window)
    return found


def _address_problems(words: Sequence[Word], number: int, envelope: EnvelopeProfile,
                      lines: list[str] | None) -> list[tuple[Code, str]]:
    window = envelope.window.grown(_POSITION_TOLERANCE_MM)
    name = envelope.name
    if lines is None:
        near = [w for w in words if w.rect.overlaps(window)]
        found = [] if near else [f"a letter's first page has no text in the {name} window"]
        found += [f"{word} crosses the {name} window's edge" for word in near if not window.contains(word.rect)]
        return [(Code.ADDRESS_NOT_IN_WINDOW, detail) for detail in found]
    found = []
    for line in lines:
        run = _find_line(words, line)
        if not run:
            found.append(f"address line {line!r} is not on the page")
        elif not all(window.contains(w.rect) for w in run):
            found.append(f"address line {line!r} at ({run[0].rect.left:.1f}, {run[0].rect.top:.1f}) mm "
                         f"is outside the {name} window")
    return [(Code.ADDRESS_NOT_IN_WINDOW, detail) for detail in found]


def _find_line(words: Sequence[Word], line: str) -> list[Word]:
    tokens = line.split()
    if not tokens:
        return []
    for start in range(len(words) - len(tokens) + 1):
        if words[start].text == tokens[0] and [w.text for w in words[start : start + len(tokens)]] == tokens:
            return list(words[start : start + len(tokens)])
    return []


# -- marks ----------------------------------------------------------------------------------


def _check_mark(pdf: PdfPages, number: int, layout: MarkLayout, zone: Rect | None, payload: str, add) -> None:
    if layout.kind is MarkKind.NONE or zone is None:
        return
    if layout.kind is MarkKind.DATAMATRIX:
        found = _decode_datamatrix(pdf, number, layout, zone)
    else:
        found = _read_omr(pdf, number, layout, zone)
    if not found or (layout.kind is MarkKind.OMR and not found.startswith("1")):
        add(Code.MARK_MISSING, f"no {layout.kind} mark found; the manifest says {payload!r}")
    elif found != payload:
        add(Code.MARK_MISMATCH, f"the mark reads {found!r}; the manifest says {payload!r}")


def _mark_present(pdf: PdfPages, number: int, layout: MarkLayout, zone: Rect | None) -> bool:
    if layout.kind is MarkKind.NONE or zone is None:
        return False
    if layout.kind is MarkKind.DATAMATRIX:
        return _decode_datamatrix(pdf, number, layout, zone) is not None
    return "1" in _read_omr(pdf, number, layout, zone)


def _scan_dpi(layout: MarkLayout) -> float:
    """Just fine enough for the mark's smallest feature, as the inserter's camera would resolve it;
    rendering and decoding cost grows with the square of this."""
    feature = layout.module if layout.kind is MarkKind.DATAMATRIX else layout.dash_thickness
    return _PIXELS_PER_FEATURE * 25.4 / feature


def _decode_datamatrix(pdf: PdfPages, number: int, layout: MarkLayout, zone: Rect) -> str | None:
    image = pdf.render_mm(number, zone, _scan_dpi(layout))
    found = pylibdmtx.decode(image, max_count=1, timeout=_DECODE_TIMEOUT_MS)
    return found[0].data.decode("ascii", "replace") if found else None


def _read_omr(pdf: PdfPages, number: int, layout: MarkLayout, zone: Rect) -> str:
    dpi = _scan_dpi(layout)
    image = pdf.render_mm(number, zone, dpi)
    pixels_per_mm = dpi / 25.4
    bits = []
    for track in marks.omr_track_rects(layout):
        x = int((track.left + track.width / 2 - zone.left) * pixels_per_mm)
        y = int((track.top + track.height / 2 - zone.top) * pixels_per_mm)
        bits.append("1" if image.getpixel((x, y)) < _DARK else "0")
    return "".join(bits)
