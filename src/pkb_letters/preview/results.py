"""What a preview is asked for and what it gives: the request, each sample's pages and checks, and
the names of the files it writes (`preview/samples_run.py` makes them, `preview/page.py` shows them)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.config import DEFAULT_TEMPLATE, LetterSettings, RuleSettings

PREVIEW_PDF = "preview.pdf"
PROOF_PDF = "proof.pdf"
INDEX_HTML = "index.html"
VERSION_FILE = "version.txt"
PAGE_PNG = "page-{:03d}.png"
# Long past, so plainly not real; September is the longest month name, so the widest date a letter prints.
SAMPLE_EXPIRY = dt.date(1999, 9, 30)


@dataclass(frozen=True)
class PreviewRequest:
    out_dir: Path
    template_dir: Path = DEFAULT_TEMPLATE
    options: PrintOptions = field(default_factory=PrintOptions)
    letter: LetterSettings = field(default_factory=LetterSettings)
    rules: RuleSettings = field(default_factory=RuleSettings)
    patients: Path | None = None  # a real list; None for the built-in samples
    count: int | None = None  # samples, or rows of the list; None: every built-in sample, or DEFAULT_ROWS rows

    def watched_paths(self) -> list[Path]:
        return [self.template_dir, *([self.patients] if self.patients else [])]


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class SampleResult:
    label: str  # the edge case ("BFPO address") or the list row ("Row 7")
    input_row: int
    name: str  # the addressee line; empty for a row that failed before it had one
    address: tuple[str, ...]
    pages: tuple[int, ...]  # 1-based pages of preview.pdf, blank backs included; empty: no letter
    checks: tuple[Check, ...]
    reason: str = ""  # the reason code when this row would get no letter
    blank_pages: tuple[int, ...] = ()  # the blank backs added after the letter's own pages
    reference: str = ""  # the list's customer reference, to find the row by

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


@dataclass(frozen=True)
class PreviewResult:
    out_dir: Path
    samples: tuple[SampleResult, ...]
    pages: int
    version: str
    list_rows: int = 0  # with --patients: rows in the whole list
    list_exclusions: dict[str, int] = field(default_factory=dict)  # and those intake would exclude, by reason

    @property
    def failed(self) -> list[SampleResult]:
        return [s for s in self.samples if not s.passed]
