"""Preflight: letter PDFs (ours or a customer's) in, a report of what a print room would reject out.

Per page: not A4, fonts not embedded, text not in pure K-only black, text
outside the printable area or inside the marks' clear zone, the address on a
letter's first page not inside the envelope window, page counts that disagree
with the manifest, and separation marks missing or whose decoded payload
disagrees with the manifest. A file is matched to the manifest by name, or else by the
SHA-256 the manifest records (a print file renamed on its way); one matched by neither
is a problem, its pages still checked as those of a file without a manifest.
DataMatrix marks are decoded from the rendered clear zone by zxing-cpp, or by libdmtx
(via pylibdmtx) where zxing-cpp reads none: readers independent of the encoder we print with.

`page_facts` does the reading; this module judges. Pages can be checked in
several processes (``workers``); the report is the same, in the same order.
A file whose page tree's /Count disagrees with its /Kids is unreadable: printers
walk the /Kids, this check finds pages by /Count, so pages could go out unchecked.

Memory: the manifest is read a letter at a time, and the pages are handed out a
job (at most `_MAX_PAGES_PER_JOB`) at a time as the letters for them pass; only
problems come back. So this process holds a few jobs' letters and the problems
found, whatever the size of the files and the manifest.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import multiprocessing
import os
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any, cast

import zxingcpp

from pkb_letters.assemble import marks
from pkb_letters.assemble.marks import MarkKind, MarkLayout
from pkb_letters.check import mailmark_check, readback
from pkb_letters.check.page_facts import K_BLACK, MM_PER_POINT, PATTERN, PageWords, PdfPages, lazy_page_count
from pkb_letters.check.readback import Expected, JournalCredentials
from pkb_letters.envelope import A4_HEIGHT_MM, A4_WIDTH_MM, C5, EnvelopeProfile, Rect
from pkb_letters.files import sha256_of
from pkb_letters.job.manifest import iter_manifest_letters, read_manifest_job
from pkb_letters.progress import NoProgress, Progress

__all__ = ["MM_PER_POINT", "Code", "Problem", "Report", "check_files", "available_cpus"]


@functools.cache
def _libdmtx():
    """pylibdmtx, imported when first needed: it imports distutils and with it setuptools, a tenth of
    a second of every worker's start, and most checks never need it (see `_decode_datamatrix`)."""
    with warnings.catch_warnings():  # pylibdmtx 0.1.10 imports distutils' LooseVersion, deprecated since 3.10
        warnings.filterwarnings("ignore", "distutils Version classes", DeprecationWarning)
        from pylibdmtx import pylibdmtx
    return pylibdmtx


def __getattr__(name: str):
    if name == "pylibdmtx":  # as when it was imported with this module
        return _libdmtx()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_SIZE_TOLERANCE_MM = 0.2
_POSITION_TOLERANCE_MM = 0.3
_PIXELS_PER_FEATURE = 4  # a DataMatrix module or an OMR dash's thickness, as scanned: libdmtx reads 3 reliably
_DECODE_TIMEOUT_MS = 1000  # a readable mark decodes in about 2 ms
_DARK = 96  # grey level below which a scanned OMR track counts as a dash
# Pages per process: starting one (Python, pikepdf, PDFium, libdmtx) costs about as much as checking
# 100 pages. Each job reads an excerpt of its pages (`page_facts`) and closes it when done: qpdf and PDFium
# keep every object they parse until then (about 12 KB a page checked), so a bounded job is a bounded
# amount of memory.
_MIN_PAGES_PER_JOB = 250
_MAX_PAGES_PER_JOB = 2000
# Opening a whole file (to count the pages of one not read an object at a time) has qpdf and PDFium read
# its cross-reference table: under a byte of memory for every few bytes of a print file. A file bigger
# than this is opened elsewhere.
_COUNT_ELSEWHERE_BYTES = 16 * 2**20


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
    NOT_IN_MANIFEST = "not-in-manifest"
    MAILMARK_MISSING = mailmark_check.MISSING
    MAILMARK_MISMATCH = mailmark_check.MISMATCH
    IN_MAILMARK_ZONE = mailmark_check.IN_ZONE
    # the read-back of each letter's credentials against its journal row (`readback`)
    CREDENTIAL_MISMATCH = readback.CREDENTIAL_MISMATCH
    QR_MISMATCH = readback.QR_MISMATCH
    EXPIRY_MISMATCH = readback.EXPIRY_MISMATCH
    ADDRESS_MISMATCH = readback.ADDRESS_MISMATCH
    NAME_MISMATCH = readback.NAME_MISMATCH
    FOREIGN_CREDENTIAL = readback.FOREIGN_CREDENTIAL
    PIECE_MISMATCH = readback.PIECE_MISMATCH


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
    matched: dict[str, str] = field(default_factory=dict)  # a renamed file -> the manifest's file of its SHA-256
    read_back: int | None = None  # letters whose credentials were read back; None: no journal to compare with
    unverifiable: str | None = None  # why the credentials could not be read back (the journal's codes are erased)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def read_back_failed(self) -> list[str]:
        """The pieces whose credentials did not read back as their journal rows."""
        return readback.failed_pieces(self.problems)

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "ok": self.ok,
            "files": self.files,
            "pages": self.pages,
            "matched": self.matched,
            "problems": [asdict(p) for p in self.problems],
        }
        if self.read_back is not None or self.unverifiable is not None:
            found["read_back"] = {
                "letters": self.read_back or 0,
                "failed": self.read_back_failed,
                "unverifiable": self.unverifiable,
            }
        return found

    def json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def text(self, limit: int | None = None) -> str:
        lines = [
            f"{len(self.files)} file(s), {self.pages} page(s) checked: "
            + ("no problems" if self.ok else f"{len(self.problems)} problem(s)")
        ]
        lines.extend(
            f"  {name}: checked as the manifest's {listed}, whose SHA-256 it has"
            for name, listed in self.matched.items()
        )
        if self.unverifiable is not None:
            lines.append(f"  credentials NOT verified: {self.unverifiable}")
        elif self.read_back is not None:
            failed = self.read_back_failed
            lines.append(
                f"  credentials read back from {self.read_back} letter(s): "
                + (f"{len(failed)} do not match their journal rows" if failed else "every one matches its journal row")
            )
        shown = self.problems if limit is None else self.problems[:limit]
        for p in shown:
            where = f"{p.file} page {p.page}" if p.page else p.file
            lines.append(f"  {where}: {p.code}: {p.detail}")
        if len(shown) < len(self.problems):
            lines.append(f"  … and {len(self.problems) - len(shown)} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Expected:
    """What the manifest's job record says about one file; its letters come after, one at a time."""

    pages: int | None
    duplex: bool


def check_files(
    paths: Sequence[Path],
    manifest: Path | Mapping[str, Any] | None = None,
    envelope: EnvelopeProfile = C5,
    layout: MarkLayout | None = None,
    *,
    workers: int = 1,
    progress: Progress | None = None,
    credentials: JournalCredentials | None = None,
) -> Report:
    """Check every page of every file. `workers` > 1 spreads the pages over that many processes
    (for jobs big enough to pay for starting them); they are spawned, so a script that asks for
    them must call this under ``if __name__ == "__main__":``, as multiprocessing requires.
    `progress` gets a "check" stage once the pages are counted, advanced as each job finishes.

    The manifest's letters are read one at a time and the pages checked a job at a time as they
    pass, so what this process holds depends on a job's pages and on the problems found, not on
    the size of the files or of the manifest.

    `credentials` (the job's journal, with a manifest): every letter is also read back and matched
    to its journal row (`readback`)."""
    job = _manifest_job(manifest)
    if layout is None:
        kind = (job or {}).get("print", {}).get("marks", MarkKind.DATAMATRIX)
        layout = marks.DEFAULT_LAYOUTS[MarkKind(kind)]
    zone = marks.clear_zone(layout, marks.sample_payload("PKB-00000000-000000"))
    listed = [_listed_as(job, path) for path in paths]
    files = [
        _FileCheck(
            position,
            path,
            _expected_for(job, name),
            envelope,
            layout,
            zone,
            *counted,
            listed_as=name,
            unlisted=job is not None and name is None,
            credentials=credentials,
        )
        for position, (path, name, counted) in enumerate(zip(paths, listed, _page_counts(paths, workers), strict=True))
    ]
    size = _pages_per_job(sum(f.page_count for f in files), workers)
    letters = _manifest_letters(manifest) if job is not None and manifest is not None else iter(())
    with (progress or NoProgress()).stage("check", sum(f.page_count for f in files)) as advance:
        for result in _run(_JobStream(files, letters, size), workers):
            files[result.file].take(result)
            advance(result.pages)
        late = [late_job for f in files for late_job in f.late_jobs(size)]
        for result in _run(late, workers) if late else ():
            files[result.file].take(result)
    if credentials is not None:
        for f in files:
            f.judge_candidates(credentials)
    report = Report(
        read_back=credentials.verified if credentials is not None and job is not None else None,
        unverifiable=credentials.unverifiable if credentials is not None else None,
        files=[path.name for path in paths],
        pages=sum(f.page_count for f in files),
        matched={
            path.name: name for path, name in zip(paths, listed, strict=True) if name is not None and name != path.name
        },
    )
    for f in files:
        report.problems.extend(f.problems_in_order())
    report.problems.extend(_mailmark_problems(paths, listed, job, manifest))
    return report


def _mailmark_problems(
    paths: Sequence[Path], listed: Sequence[str | None], job: Mapping[str, Any] | None, manifest
) -> list[Problem]:
    """Each piece's Mailmark read back against the manifest, when the job prints them."""
    placement = (job or {}).get("print", {}).get("mailmark")
    if not placement or manifest is None:
        return []
    by_name = {name: path for path, name in zip(paths, listed, strict=True) if name is not None}
    found = mailmark_check.check(by_name, placement, _manifest_letters(manifest))
    return [Problem(file, page, Code(code), detail) for file, page, code, detail in found]


def available_cpus() -> int:
    """The CPUs this process may run on: a sensible `workers` for a job's own preflight."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _manifest_job(manifest: Path | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if manifest is None or isinstance(manifest, Mapping):
        return None if manifest is None else manifest["job"]
    return read_manifest_job(manifest)


def _manifest_letters(manifest: Path | Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    return iter(manifest["letters"]) if isinstance(manifest, Mapping) else iter_manifest_letters(manifest)


def _listed_as(job: Mapping[str, Any] | None, path: Path) -> str | None:
    """The name the manifest lists `path` under: its own, or, for a file renamed on its way (as SFTP
    automation does), that of the file the manifest records its SHA-256 for. None if neither."""
    listed = job.get("files", []) if job is not None else []
    if any(f["name"] == path.name for f in listed):
        return path.name
    try:
        digest = sha256_of(path)
    except OSError:
        return None  # opened later, to fail as any unreadable file does
    return next((f["name"] for f in listed if f.get("sha256") == digest), None)


def _expected_for(job: Mapping[str, Any] | None, name: str | None) -> _Expected | None:
    if job is None or name is None:
        return None
    pages = next((f["pages"] for f in job.get("files", []) if f["name"] == name), None)
    return _Expected(pages, bool(job.get("print", {}).get("duplex", False)))


def _page_counts(paths: Sequence[Path], workers: int) -> list[tuple[int, str | None, list[tuple[tuple, str]]]]:
    """Each file's page count, or why it cannot be read. A big file of our print files' shape is counted
    here, read an object at a time (`page_facts.lazy_page_count`). Opening any other has qpdf and PDFium
    read its whole cross-reference table, so a big one is opened in a process of its own, which gives
    that memory back when it ends."""
    counted: dict[Path, tuple[int, str | None, list[tuple[tuple, str]]]] = {
        path: found for path in dict.fromkeys(paths) if (found := _lazy_page_count(path)) is not None
    }
    elsewhere = sorted(
        {path for path in paths if path not in counted and workers > 1 and _file_size(path) > _COUNT_ELSEWHERE_BYTES}
    )
    if elsewhere:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            counted.update(zip(elsewhere, pool.map(_page_count, elsewhere), strict=True))
    return [counted[path] if path in counted else _page_count(path) for path in paths]


def _lazy_page_count(path: Path) -> tuple[int, None, list[tuple[tuple, str]]] | None:
    """`_page_count`'s answer for a file `page_facts.lazy_page_count` reads; None for any other."""
    found = lazy_page_count(path)
    if found is None:
        return None
    count, disagreements = found
    return count, None, _tree_problems(disagreements)


def _page_count(path: Path) -> tuple[int, str | None, list[tuple[tuple, str]]]:
    """The file's pages, or why it cannot be read, and what its page tree's root says wrongly."""
    try:
        with PdfPages(path) as pdf:
            return len(pdf), None, _tree_problems(pdf.page_tree_disagreements)
    except Exception as exc:  # any parser failure means the print room cannot use the file either
        return 0, f"cannot read the PDF: {exc}", []


def _tree_problems(disagreements: Mapping[tuple[int, int], str]) -> list[tuple[tuple, str]]:
    """Page tree nodes whose /Count is wrong: printers walk the tree's /Kids, so pages this check
    finds by /Count may not be the pages printed, and pages may be printed that it never read."""
    return [
        ((_FILE, -1, 1, *node), f"{detail}: a printer may print pages this check has not read")
        for node, detail in sorted(disagreements.items())
    ]


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # opened here, to fail as any unreadable file does


# -- planning: what to look at on which page ------------------------------------------------
#
# Problems carry a sort key so that, however the pages are shared out, the report lists them
# as one pass would: page by page, then the file's letters in manifest order.

_PAGE, _FILE, _LAST = 0, 1, 2
_START, _BEYOND, _ADDRESS, _PADDING, _MARK, _READBACK = range(6)


@dataclass(frozen=True)
class _Task:
    """Something to check on one page for one letter of the manifest."""

    key: tuple
    kind: int  # _ADDRESS, _PADDING, _MARK or _READBACK
    piece: str
    lines: tuple[str, ...] = ()
    payload: str = ""
    expected: Expected | None = None  # _READBACK: what the journal issued to the piece
    first: bool = False  # _READBACK: the letter's first page
    first_page: int = 0  # _READBACK: the page the letter starts on
    page_count: int = 0  # _READBACK: the letter's own pages


@dataclass(frozen=True)
class _Letter:
    """One letter of the manifest, as far as the checks of its pages need it."""

    index: int  # among the file's letters, in manifest order
    piece: str
    first: int
    count: int
    printed: int  # pages it takes in the file: its own and, duplex, a blank back to finish its last sheet
    lines: tuple[str, ...]
    fronts: tuple[tuple[int, str], ...]  # each sheet's front page and the mark payload printed on it
    expected: Expected | None = None  # to read its credentials back against

    def span(self) -> tuple[int, int]:
        """The lowest and the highest page something is checked on for this letter."""
        pages = [self.first, *(front for front, _ in self.fronts)]
        if self.expected is not None:
            pages.append(self.first + self.count - 1)
        if self.count < self.printed:
            pages += [self.first + self.count, self.first + self.printed - 1]
        return min(pages), max(pages)

    def tasks(self, pages: range) -> Iterator[tuple[int, _Task]]:
        """What to check on which of `pages`: on any one page in the order the manifest's letter
        lists them (address, blank back, mark), as the report's sort keys expect."""
        key = (_FILE, self.index)
        if self.first in pages:
            yield self.first, _Task((*key, _ADDRESS), _ADDRESS, self.piece, self.lines)
        for padding in range(max(self.first + self.count, pages.start), min(self.first + self.printed, pages.stop)):
            yield padding, _Task((*key, _PADDING, padding), _PADDING, self.piece)
        for front, payload in self.fronts:
            if front in pages:
                yield front, _Task((*key, _MARK, front), _MARK, self.piece, payload=payload)
        if self.expected is not None:
            for own in range(max(self.first, pages.start), min(self.first + self.count, pages.stop)):
                task = _Task(
                    (*key, _READBACK, own), _READBACK, self.piece, expected=self.expected, page_count=self.count
                )
                yield own, dataclasses.replace(task, first=own == self.first, first_page=self.first)


@dataclass(frozen=True)
class _Job:
    """Pages first..last of one file, with everything needed to check them in another process."""

    file: int  # the file's place among those checked
    path: Path
    first: int
    last: int
    letters: tuple[_Letter, ...]  # the manifest's letters with something to check on these pages
    envelope: EnvelopeProfile
    layout: MarkLayout
    zone: Rect | None
    unplanned: bool  # no manifest: read every page's mark and window for the file-wide judgement
    checks_pages: bool = True  # False: only the letters' checks, for letters met after the pages were checked


@dataclass
class _JobResult:
    """What a job found: problems only (clean pages cost nothing), and, without a manifest,
    what the file-wide judgement needs from its pages."""

    file: int
    pages: int = 0  # pages it checked in full (not counting a late letter's checks)
    problems: list[tuple[tuple, Problem]] = field(default_factory=list)
    marked: bool = False  # a DataMatrix mark was read on some page
    first_found: bool = False  # some page's mark says it is the first sheet of a letter
    page_one_window: list[tuple[tuple, Problem]] = field(default_factory=list)  # used when no mark says so
    candidates: list[_Candidates] = field(default_factory=list)  # code-shaped words not of their letter
    printed: list[_Printed] = field(default_factory=list)  # the credentials each read-back page prints


@dataclass(frozen=True)
class _Printed:
    """Which of its credentials one page of a letter prints (`readback.read_page`)."""

    key: tuple  # the letter's first page's read-back task: where a missing credential is reported
    page: int  # the letter's first page
    expected: Expected
    fields: frozenset[str]
    number: int = 0  # the page read
    pages: int = 0  # the letter's own pages: once each is read, the letter can be judged


@dataclass(frozen=True)
class _Candidates:
    """Words on a page of a letter shaped like a code and not its own: the journal says whose they are."""

    key: tuple
    page: int
    piece: str
    words: tuple[str, ...]


_CANDIDATES_A_LOOKUP = 2000  # pages' code-shaped words looked up in the journal at once


@dataclass
class _FileCheck:
    """One file's check as the manifest's letters pass: its jobs are handed out as soon as no
    letter still to come should need their pages, and only its problems are kept."""

    position: int
    path: Path
    expected: _Expected | None
    envelope: EnvelopeProfile
    layout: MarkLayout
    zone: Rect | None
    page_count: int
    unreadable: str | None = None
    tree_problems: list[tuple[tuple, str]] = field(default_factory=list)
    listed_as: str | None = None  # the manifest's name for this file, if it lists it
    unlisted: bool = False  # a manifest was given and lists neither this file's name nor its SHA-256
    problems: list[tuple[tuple, Problem]] = field(default_factory=list)
    letters_read: int = 0
    next_page: int = 1
    handed_out: int = 0  # jobs handed out, in page order
    waiting: dict[int, list[_Letter]] = field(default_factory=dict)  # by job: letters on its pages, read so far
    late: list[_Letter] = field(default_factory=list)  # letters met after a job with their pages was handed out
    marked: bool = False
    first_found: bool = False
    page_one_window: list[tuple[tuple, Problem]] = field(default_factory=list)
    credentials: JournalCredentials | None = None
    candidates: list[_Candidates] = field(default_factory=list)
    printed: dict[tuple, list[_Printed]] = field(default_factory=dict)  # by letter, until each of its pages is read

    def __post_init__(self) -> None:
        for key, detail in self.tree_problems:
            self.add(key, None, Code.UNREADABLE, detail)
        if self.unlisted:
            self.add(
                (_FILE, -2),
                None,
                Code.NOT_IN_MANIFEST,
                "not listed in the manifest, by name or by SHA-256: nothing in it was checked against the "
                "manifest (a file of the job changed since it was made, or another job's file)",
            )
        if self.unreadable is not None:
            self.add((_FILE, -1), None, Code.UNREADABLE, self.unreadable)
        elif self.expected is not None and self.expected.pages not in (None, self.page_count):
            self.add(
                (_FILE, -1),
                None,
                Code.PAGE_COUNT,
                f"the file has {self.page_count} pages; the manifest says {self.expected.pages}",
            )

    def add(self, key: tuple, page: int | None, code: Code, detail: str) -> None:
        self.problems.append((key, Problem(self.path.name, page, code, detail)))

    @property
    def reads_letters(self) -> bool:
        return self.unreadable is None and self.expected is not None

    def read(self, entry: Mapping[str, Any], size: int) -> Iterator[_Job]:
        """Take the manifest's next letter for this file; give the jobs it shows to be complete."""
        letter = self._plan(entry)
        if letter is None:
            return
        low, high = letter.span()
        low, high = max(low, 1), min(high, self.page_count)
        if low > high:
            return
        first_job, last_job = (low - 1) // size, (high - 1) // size
        if first_job < self.handed_out:  # out of page order: checked once every job has been
            self.late.append(letter)
            return
        yield from self.hand_out(first_job, size)
        for number in range(first_job, last_job + 1):
            self.waiting.setdefault(number, []).append(letter)

    def _plan(self, entry: Mapping[str, Any]) -> _Letter | None:
        assert self.expected is not None
        index, pages = self.letters_read, self.page_count
        self.letters_read += 1
        first, count, piece = entry["first_page"], entry["page_count"], entry["piece_id"]
        sheets = entry.get("sheet_count", count)
        printed = 2 * sheets if self.expected.duplex else count
        if first != self.next_page:
            self.add(
                (_FILE, index, _START),
                first,
                Code.PAGE_COUNT,
                f"piece {piece} starts on page {first}; after the letter before it, it should start on page "
                f"{self.next_page}",
            )
        self.next_page = first + printed
        if first + printed - 1 > pages:
            self.add(
                (_FILE, index, _BEYOND),
                None,
                Code.PAGE_COUNT,
                f"piece {piece} needs pages {first}-{first + printed - 1}; the file has {pages}",
            )
            return None
        step = 2 if self.expected.duplex else 1
        fronts = zip((first + step * n for n in range(sheets)), entry.get("marks", []), strict=False)
        expected = self.credentials.expected(entry) if self.credentials is not None else None
        for code, detail in readback.piece_problems(entry, expected) if expected is not None else ():
            self.add((_FILE, index, _READBACK, 0), first, Code(code), detail)
        lines = (entry["name"], *entry["address_lines"])
        return _Letter(index, piece, first, count, printed, lines, tuple(fronts), expected)

    def finish_letters(self) -> None:
        if self.reads_letters and self.letters_read and self.next_page - 1 != self.page_count:
            self.add(
                (_LAST,),
                None,
                Code.PAGE_COUNT,
                f"the manifest's letters fill {self.next_page - 1} pages; the file has {self.page_count}",
            )

    def jobs(self, size: int) -> int:
        return -(-self.page_count // size)

    def hand_out(self, until: int, size: int) -> Iterator[_Job]:
        """Jobs up to (not including) number `until`, with the letters waiting for their pages."""
        while self.handed_out < min(until, self.jobs(size)):
            number = self.handed_out
            self.handed_out += 1
            first, last = number * size + 1, min((number + 1) * size, self.page_count)
            yield self._job(first, last, tuple(self.waiting.pop(number, ())))

    def late_jobs(self, size: int) -> list[_Job]:
        """Jobs that check the late letters alone, on the pages of one job each."""
        spans = [(letter, letter.span()) for letter in self.late]
        numbers = sorted(
            {
                n
                for _, (low, high) in spans
                for n in range((max(low, 1) - 1) // size, (min(high, self.page_count) - 1) // size + 1)
            }
        )
        jobs = []
        for number in numbers:
            first, last = number * size + 1, min((number + 1) * size, self.page_count)
            letters = [(letter, low, high) for letter, (low, high) in spans if low <= last and high >= first]
            first, last = max(first, min(low for _, low, _ in letters)), min(last, max(high for _, _, high in letters))
            jobs.append(self._job(first, last, tuple(letter for letter, _, _ in letters), checks_pages=False))
        return jobs

    def _job(self, first: int, last: int, letters: tuple[_Letter, ...], checks_pages: bool = True) -> _Job:
        return _Job(
            self.position,
            self.path,
            first,
            last,
            letters,
            self.envelope,
            self.layout,
            self.zone,
            self.expected is None,
            checks_pages,
        )

    def take(self, result: _JobResult) -> None:
        """A job's findings. What the read-back found is judged as soon as it can be, so that what is
        held does not grow with the file: a letter once each of its pages is read, the words shaped
        like codes a batch at a time."""
        self.problems.extend(result.problems)
        self.candidates.extend(result.candidates)
        if self.credentials is not None and len(self.candidates) >= _CANDIDATES_A_LOOKUP:
            self._judge_candidates(self.credentials)
        for printed in result.printed:
            pages = self.printed.setdefault(printed.key, [])
            pages.append(printed)
            if len({page.number for page in pages}) == printed.pages:
                self._judge_printed(printed.key)
        self.marked |= result.marked
        self.first_found |= result.first_found
        self.page_one_window.extend(result.page_one_window)

    def judge_candidates(self, credentials: JournalCredentials) -> None:
        """What is left to judge of the read-back once every job is taken."""
        self._judge_candidates(credentials)
        for key in list(self.printed):
            self._judge_printed(key)

    def _judge_candidates(self, credentials: JournalCredentials) -> None:
        """Code-shaped words found on letters' pages that the journal says are another piece's code."""
        owners = credentials.owners(word for found in self.candidates for word in found.words)
        for found in self.candidates:
            for word in found.words:
                owner = owners.get(word)
                if owner is not None and owner[0] != found.piece:
                    self.add(
                        found.key,
                        found.page,
                        Code.FOREIGN_CREDENTIAL,
                        f"piece {found.piece}: page {found.page} carries the {owner[1]} of piece {owner[0]}",
                    )
        self.candidates.clear()

    def _judge_printed(self, key: tuple) -> None:
        """A credential none of a letter's pages prints (two jobs reading one page count it once)."""
        pages = self.printed.pop(key)
        for code, detail in readback.missing(pages[0].expected, (p.fields for p in pages)):
            self.add(key, pages[0].page, Code(code), detail)

    def problems_in_order(self) -> list[Problem]:
        found = list(self.problems)
        if self.expected is None and self.page_count:
            found.extend(self._judge_without_manifest())
        found.sort(key=lambda item: item[0])
        # what two jobs read both (a late letter's page, a page tree node above both) is reported once
        return [
            problem
            for n, (key, problem) in enumerate(found)
            if not (n and (key[0] == _PAGE or key[:3] == (_FILE, -1, 1)) and key == found[n - 1][0])
        ]

    def _judge_without_manifest(self) -> list[tuple[tuple, Problem]]:
        """A customer's file: first pages are those whose mark says sheet 1 (or page 1 when none does);
        the jobs judged each page's mark and kept the window's problems of first pages."""
        found = []
        if self.layout.kind is MarkKind.DATAMATRIX and not self.marked:
            found.append(
                (
                    (_FILE, 0),
                    Problem(self.path.name, None, Code.MARK_MISSING, "no DataMatrix separation mark found on any page"),
                )
            )
        if not self.first_found:
            found.extend(self.page_one_window)
        return found


class _JobStream:
    """Every file's jobs, planned as the manifest's letters are read; its length is known before."""

    def __init__(self, files: Sequence[_FileCheck], letters: Iterator[Mapping[str, Any]], size: int) -> None:
        self._files = files
        self._letters = letters
        self._size = size

    def __len__(self) -> int:
        return sum(f.jobs(self._size) for f in self._files)

    def __iter__(self) -> Iterator[_Job]:
        readers: dict[str, list[_FileCheck]] = {}
        for f in self._files:
            if f.reads_letters and f.listed_as is not None:
                readers.setdefault(f.listed_as, []).append(f)
        for entry in self._letters:
            for f in readers.get(entry["file"], ()):
                yield from f.read(entry, self._size)
        for f in self._files:
            f.finish_letters()
            yield from f.hand_out(f.jobs(self._size), self._size)


# -- sharing pages out ----------------------------------------------------------------------


@dataclass
class _PageResult:
    file: str
    number: int
    problems: list[tuple[tuple, Problem]] = field(default_factory=list)
    mark: str | None = None  # without a manifest: the DataMatrix payload read on the page
    window: list[tuple[tuple, Problem]] = field(default_factory=list)  # without a manifest: if a first page
    candidates: list[_Candidates] = field(default_factory=list)
    printed: list[_Printed] = field(default_factory=list)

    def add(self, key: tuple, code: Code, detail: str) -> None:
        self.problems.append((key, Problem(self.file, self.number, code, detail)))


def _pages_per_job(total: int, workers: int) -> int:
    """Pages a job: enough jobs for every process, none bigger than a job's memory allows."""
    total = max(total, 1)
    processes = min(workers, total // _MIN_PAGES_PER_JOB)
    return min(math.ceil(total / processes) if processes > 1 else total, _MAX_PAGES_PER_JOB)


def _run(jobs: Sequence[_Job] | _JobStream, workers: int) -> Iterator[_JobResult]:
    """Each job's result, in the order of the jobs. A job is taken from `jobs` when a process is
    free for it (with one more waiting a process), so few are planned ahead of the checking."""
    if workers <= 1 or len(jobs) <= 1:
        return map(_check_pages, jobs)
    return _in_processes(jobs, min(workers, len(jobs)))


def _in_processes(jobs: Iterable[_Job], processes: int) -> Iterator[_JobResult]:
    # spawn, not fork: the caller may have threads (a progress bar, an HTTP client) a fork would copy mid-step
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        submitted: deque[Future[_JobResult]] = deque()
        for job in jobs:
            submitted.append(pool.submit(_check_pages, job))
            if len(submitted) >= 2 * processes:
                yield submitted.popleft().result()
        while submitted:
            yield submitted.popleft().result()


# -- one job's pages ------------------------------------------------------------------------


def _check_pages(job: _Job) -> _JobResult:
    numbers = range(job.first, job.last + 1)
    result = _JobResult(job.file, pages=len(numbers) if job.checks_pages else 0)
    tasks: dict[int, list[_Task]] = {}
    for letter in job.letters:
        for number, task in letter.tasks(numbers):
            tasks.setdefault(number, []).append(task)
    with PdfPages(job.path, numbers) as pdf:  # read from an excerpt of these pages: memory as for them alone
        for number in numbers:
            if job.checks_pages or number in tasks:
                _check_one(pdf, number, tasks.get(number, ()), job, result)
        for key, detail in _tree_problems(pdf.page_tree_disagreements):
            result.problems.append((key, Problem(job.path.name, None, Code.UNREADABLE, detail)))
    return result


def _check_one(pdf: PdfPages, number: int, tasks: Sequence[_Task], job: _Job, result: _JobResult) -> None:
    page = _PageResult(job.path.name, number)
    try:
        words = _check_page(pdf, number, job.envelope, job.zone, page.add if job.checks_pages else _ignore)
        for task in tasks:
            _check_task(pdf, number, task, words, job, page)
        if job.unplanned:
            _read_unplanned(pdf, number, words, job, page)
    except Exception as exc:  # a page the parsers fail on is a page the print room cannot print
        page.add((_PAGE, number, 9), Code.UNREADABLE, f"cannot read the page: {exc}")
    result.problems.extend(page.problems)
    result.candidates.extend(page.candidates)
    result.printed.extend(page.printed)
    if job.unplanned:
        _judge_unplanned(page, result)


def _ignore(*_: object) -> None:
    pass


def _check_page(pdf: PdfPages, number: int, envelope: EnvelopeProfile, zone: Rect | None, add) -> PageWords:
    key = (_PAGE, number)
    width, height = pdf.size_mm(number)
    if abs(width - A4_WIDTH_MM) > _SIZE_TOLERANCE_MM or abs(height - A4_HEIGHT_MM) > _SIZE_TOLERANCE_MM:
        add((*key, 0), Code.NOT_A4, f"page is {width:.1f} x {height:.1f} mm, not A4 portrait (210 x 297)")
    for font in pdf.unembedded_fonts(number):
        add((*key, 1), Code.FONT_NOT_EMBEDDED, f"font {font} is not embedded")
    colours = sorted({_colour_name(c) for c in pdf.text_colours(number) if c != K_BLACK})
    if colours:
        add((*key, 2), Code.NON_BLACK_TEXT, f"text in {', '.join(colours)}; print rooms want K-only black (0 0 0 1 k)")
    words = pdf.page_words(number)
    outside = words.not_inside(envelope.printable_area.grown(_POSITION_TOLERANCE_MM))
    if outside:
        add(
            (*key, 3),
            Code.OUTSIDE_PRINTABLE,
            f"{len(outside)} word(s) outside the printable area, e.g. {words[outside[0]]}",
        )
    if zone is not None:
        intruders = words.overlapping(zone.grown(-_POSITION_TOLERANCE_MM))
        if intruders:
            add(
                (*key, 4),
                Code.IN_MARK_ZONE,
                f"{len(intruders)} word(s) in the marks' clear zone, e.g. {words[intruders[0]]}",
            )
    return words


def _colour_name(colour) -> str:
    if colour is None:
        return "the default (DeviceGray) colour"
    if colour == PATTERN:
        return "a pattern"
    values = " ".join(f"{float(v):g}" for v in colour)
    return {1: f"gray {values}", 3: f"RGB {values}", 4: f"CMYK {values}"}.get(len(colour), f"colour {values}")


def _check_task(pdf: PdfPages, number: int, task: _Task, words: PageWords, job: _Job, page: _PageResult) -> None:
    add = page.add
    if task.kind == _READBACK and task.expected is not None:
        window = job.envelope.window.grown(_POSITION_TOLERANCE_MM)
        found, shaped, printed = readback.read_page(pdf, number, words, task.expected, task.first, window)
        for code, detail in found:
            add(task.key, Code(code), detail)
        if shaped:
            page.candidates.append(_Candidates(task.key, number, task.piece, shaped))
        first_key = (*task.key[:-1], task.first_page)
        page.printed.append(_Printed(first_key, task.first_page, task.expected, printed, number, task.page_count))
    elif task.kind == _ADDRESS:
        for problem in _address_problems(words, number, job.envelope, list(task.lines)):
            add(task.key, *problem)
    elif task.kind == _PADDING:
        if not pdf.is_empty(number) and (pdf.has_text(number) or _mark_present(pdf, number, job.layout, job.zone)):
            add(task.key, Code.BLANK_NOT_BLANK, f"the blank back of piece {task.piece} has something on it")
    elif task.kind == _MARK:
        _check_mark(pdf, number, job.layout, job.zone, task.payload, partial(add, task.key))


def _read_unplanned(pdf: PdfPages, number: int, words: PageWords, job: _Job, result: _PageResult) -> None:
    if job.layout.kind is MarkKind.DATAMATRIX and job.zone is not None:
        result.mark = _decode_datamatrix(pdf, number, job.layout, job.zone)
    for n, (code, detail) in enumerate(_address_problems(words, number, job.envelope, None)):
        result.window.append(((_FILE, 2, number, n), Problem(job.path.name, number, code, detail)))


def _judge_unplanned(page: _PageResult, result: _JobResult) -> None:
    """Without a manifest, what the file-wide judgement needs of a page: whether it is marked, its mark's
    problem, and its window's problems if its mark says it is a letter's first sheet (or it is page 1)."""
    if page.mark:
        result.marked = True
        if not marks.payload_is_consistent(page.mark):
            result.problems.append(
                (
                    (_FILE, 1, page.number),
                    Problem(
                        page.file, page.number, Code.MARK_MISMATCH, f"mark {page.mark!r} fails its check character"
                    ),
                )
            )
        if " 01/" in page.mark:
            result.first_found = True
            result.problems.extend(page.window)
    if page.number == 1:
        result.page_one_window = page.window


def _address_problems(
    words: PageWords, number: int, envelope: EnvelopeProfile, lines: list[str] | None
) -> list[tuple[Code, str]]:
    window = envelope.window.grown(_POSITION_TOLERANCE_MM)
    name = envelope.name
    if lines is None:
        near = words.overlapping(window)
        found = [] if near else [f"a letter's first page has no text in the {name} window"]
        crossing = [words[n] for n in near if not window.contains(words[n].rect)]
        found += [f"{word} crosses the {name} window's edge" for word in crossing]
        return [(Code.ADDRESS_NOT_IN_WINDOW, detail) for detail in found]
    found = []
    for line in lines:
        run = words.find(line.split())
        if run is None:
            found.append(f"address line {line!r} is not on the page")
        elif not all(window.contains(words[n].rect) for n in run):
            first = words[run.start].rect
            found.append(
                f"address line {line!r} at ({first.left:.1f}, {first.top:.1f}) mm is outside the {name} window"
            )
    return [(Code.ADDRESS_NOT_IN_WINDOW, detail) for detail in found]


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
    """The mark's payload, as zxing-cpp reads it (in about 0.1 ms) or else libdmtx (about 1.5 ms):
    a mark is missing only when neither reads it."""
    image = pdf.render_mm(number, zone, _scan_dpi(layout))
    if image.getextrema()[0] == 255:  # nothing drawn (a blank back, a page without marks): no mark to read
        return None
    # only as our marks print: dark on light, at the resolution rendered
    # cast: zxing-cpp's stub leaves out that a single BarcodeFormat converts to BarcodeFormats, as its docs say
    formats = cast(zxingcpp.BarcodeFormats, zxingcpp.BarcodeFormat.DataMatrix)
    found = zxingcpp.read_barcode(image, formats=formats, try_invert=False, try_downscale=False)
    if found is not None:
        return found.bytes.decode("ascii", "replace")
    read = _libdmtx().decode(image, max_count=1, timeout=_DECODE_TIMEOUT_MS)
    return read[0].data.decode("ascii", "replace") if read else None


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
