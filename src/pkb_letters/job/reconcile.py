"""Reconcile: the inserter's results for a finished job in; reprints of spoiled pieces and the list of pulled ones out.

Takes a finished, not purged, job folder, the inserter's results file and the job file's
``[reconcile]`` table (`ResultsFormat`); maps each piece the results name to OK, REPRINT or PULL and gives:

- ``reprint-NN.pdf``: exactly the reprinted pieces' pages (blank backs included), copied from the print
  files as they are (`pdf.page_set`): the same piece ids, marks and code pairs, never issued again;
- ``reprint-NN.json``: the set's manifest, in `manifest.json`'s shape (so `check` reads it as one),
  with each piece's place in the original print file and every file's SHA-256; ``reprint-NN.csv``
  the same a row a piece;
- ``pulled.csv``: every piece pulled by any reconciliation, by piece id and the customer's reference,
  for the customer (no codes, no NHS numbers).

The reprint set is checked by the preflight, every letter read back against the journal, before it
is recorded. Every reconciliation is recorded in the journal (`job.reconciliations`), its
number NN counting from 01. An unknown piece or status, too many reprints without ``force``, or
a purged job stop it with `ReconcileRefused` before anything is written.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pkb_letters.assemble.print_options import options_from_job
from pkb_letters.errors import ConfigError, InputFileError, InvariantError, ReconcileRefused
from pkb_letters.files import atomic_writer, sha256_of
from pkb_letters.job.journal import JOURNAL_NAME, Journal
from pkb_letters.job.manifest import LETTER_FIELDS, MANIFEST_JSON, iter_manifest_letters, read_manifest_job
from pkb_letters.job.reconciliations import OK, OUTCOMES, REPRINT, Reconciliation
from pkb_letters.job.sql import now
from pkb_letters.pdf.page_set import copy_pages

PULLED_CSV = "pulled.csv"
PULLED_FIELDS = ("piece_id", "customer_ref")
REPRINT_EXTRA_FIELDS = ("original_file", "original_first_page", "file_sha256")
FORMATS = ("csv", "fixed")
KEYS = ("piece_id", "sequence")
LISTS = ("all", "failures")
DEFAULT_MAX_REPRINT_SHARE = 0.05
_SHOWN = 10  # problems named in a refusal; the rest are counted


def reprint_name(number: int, suffix: str) -> str:
    return f"reprint-{number:02d}.{suffix}"


# -- the job file's [reconcile] table ----------------------------------------------------------


@dataclass(frozen=True)
class ResultsFormat:
    """How to read an inserter's results file: its `format`, what identifies a piece (`key`), which
    columns hold the key and the status (names for csv, 1-based inclusive character spans for fixed),
    its status values (raw value → OK, REPRINT or PULL), and whether it lists every piece or only
    failures (then a piece it does not list is OK)."""

    format: str = "csv"
    key: str = "piece_id"
    key_column: str | tuple[int, int] = "piece_id"
    status_column: str | tuple[int, int] = "status"
    statuses: Mapping[str, str] = field(default_factory=lambda: {o: o for o in OUTCOMES})
    lists: str = "all"
    delimiter: str = ","
    skip_lines: int = 0  # fixed width: heading lines before the first piece
    max_reprint_share: float = DEFAULT_MAX_REPRINT_SHARE


_KNOWN = {
    "format",
    "key",
    "key_column",
    "status_column",
    "statuses",
    "lists",
    "delimiter",
    "skip_lines",
    "max_reprint_share",
}


def format_from_table(table: Mapping[str, Any] | None) -> ResultsFormat:
    """The job file's ``[reconcile]`` table, checked; the defaults without one."""
    values = dict(table or {})
    unknown = set(values) - _KNOWN
    if unknown:
        raise ConfigError(
            f"unknown [reconcile] settings: {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KNOWN))}"
        )
    for name, allowed in (("format", FORMATS), ("key", KEYS), ("lists", LISTS)):
        if name in values and values[name] not in allowed:
            raise ConfigError(f"[reconcile] {name} must be one of {', '.join(allowed)}, not {values[name]!r}")
    fixed = values.get("format") == "fixed"
    if "key" in values and "key_column" not in values and not fixed:
        values["key_column"] = values["key"]  # a CSV's key column is named as the key unless told otherwise
    for name in ("key_column", "status_column"):
        if name in values or fixed:
            values[name] = _column(name, values.get(name), fixed)
    if "statuses" in values:
        values["statuses"] = _statuses(values["statuses"])
    share = values.get("max_reprint_share", DEFAULT_MAX_REPRINT_SHARE)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ConfigError(f"[reconcile] max_reprint_share is a fraction from 0 to 1 (0.05 is 5 %), not {share!r}")
    values["max_reprint_share"] = float(share)
    skip = values.get("skip_lines", 0)
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        raise ConfigError(f"[reconcile] skip_lines must be a whole number of lines, not {skip!r}")
    delimiter = values.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ConfigError(f"[reconcile] delimiter must be one character, not {delimiter!r}")
    return ResultsFormat(**values)


def _column(name: str, value: Any, fixed: bool) -> str | tuple[int, int]:
    if not fixed:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"[reconcile] {name} of a CSV is a column's name, not {value!r}")
        return value
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in value)
        or not 1 <= value[0] <= value[1]
    ):
        raise ConfigError(
            f"[reconcile] {name} of a fixed-width file is [first, last], its character positions counted "
            f"from 1, not {value!r}"
        )
    return (value[0], value[1])


def _statuses(table: Any) -> dict[str, str]:
    if not isinstance(table, Mapping) or not table:
        raise ConfigError("[reconcile.statuses] maps each status value the inserter writes to OK, REPRINT or PULL")
    mapped = {}
    for raw, outcome in table.items():
        if not isinstance(outcome, str) or outcome.upper() not in OUTCOMES:
            raise ConfigError(f"[reconcile.statuses] {raw!r} must map to OK, REPRINT or PULL, not {outcome!r}")
        mapped[str(raw).strip()] = outcome.upper()
    return mapped


# -- reading the results --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    number: int  # in the results file, from 1
    key: str
    status: str


def read_results(path: Path, results: ResultsFormat) -> list[_Line]:
    """Each piece line of the results file: its key and status as written, stripped of spaces."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read the results file {path}: {exc}") from exc
    lines = _csv_lines(text, results, path) if results.format == "csv" else _fixed_lines(text, results, path)
    return [line for line in lines if line.key or line.status]


def _csv_lines(text: str, results: ResultsFormat, path: Path) -> Iterator[_Line]:
    reader = csv.DictReader(text.splitlines(), delimiter=results.delimiter)
    columns = [str(results.key_column), str(results.status_column)]
    missing = [name for name in columns if name not in (reader.fieldnames or ())]
    if missing:
        raise ReconcileRefused(
            f"the results file {path.name} has no column {' or '.join(repr(m) for m in missing)} (it has "
            f"{', '.join(repr(f) for f in reader.fieldnames or ()) or 'none'}); name its columns in the job "
            "file's [reconcile] key_column and status_column"
        )
    for row in reader:
        yield _Line(reader.line_num, (row[columns[0]] or "").strip(), (row[columns[1]] or "").strip())


def _fixed_lines(text: str, results: ResultsFormat, path: Path) -> Iterator[_Line]:
    key_span, status_span = results.key_column, results.status_column
    assert isinstance(key_span, tuple) and isinstance(status_span, tuple)  # format_from_table made them so
    width = max(key_span[1], status_span[1])
    for number, line in enumerate(text.splitlines(), 1):
        if number <= results.skip_lines or not line.strip():
            continue
        if len(line) < status_span[0] or len(line) < key_span[0]:
            raise ReconcileRefused(
                f"{path.name} line {number} is {len(line)} characters long; the job file's [reconcile] columns "
                f"reach character {width}"
            )
        yield _Line(number, _span(line, key_span), _span(line, status_span))


def _span(line: str, span: tuple[int, int]) -> str:
    return line[span[0] - 1 : span[1]].strip()


# -- mapping the results to the job's pieces ------------------------------------------------------


@dataclass(frozen=True)
class Outcomes:
    """Each piece of the job the results decide, by sequence: OK, REPRINT or PULL."""

    by_sequence: dict[int, str]
    pieces: int  # in the job

    def of(self, outcome: str) -> list[int]:
        return sorted(sequence for sequence, found in self.by_sequence.items() if found == outcome)

    def counts(self) -> dict[str, int]:
        return {outcome.lower(): len(self.of(outcome)) for outcome in OUTCOMES}


def map_results(lines: Sequence[_Line], letters: Sequence[Mapping[str, Any]], results: ResultsFormat) -> Outcomes:
    """Each line's piece and outcome; refuses (`ReconcileRefused`), naming the lines, on an unknown piece
    or status, on a piece given two outcomes, or, when the results list every piece, on a piece left out."""
    index = {
        (str(entry["piece_id"]) if results.key == "piece_id" else int(entry["sequence"])): int(entry["sequence"])
        for entry in letters
    }
    problems: list[str] = []
    found: dict[int, str] = {}
    for line in lines:
        outcome = results.statuses.get(line.status)
        if outcome is None:
            known = ", ".join(repr(s) for s in results.statuses)
            problems.append(f"line {line.number}: status {line.status!r} is not one of {known}")
        key = _key(line.key, results.key)
        sequence = None if key is None else index.get(key)
        if sequence is None:
            what = "piece id" if results.key == "piece_id" else "sequence number"
            problems.append(f"line {line.number}: {what} {line.key!r} is not a piece of this job")
        if outcome is None or sequence is None:
            continue
        if found.setdefault(sequence, outcome) != outcome:
            problems.append(f"line {line.number}: {line.key!r} is {outcome} here but {found[sequence]} earlier")
    if results.lists == "all":
        left_out = sorted(set(index.values()) - set(found))
        if left_out:
            problems.append(
                f"{len(left_out)} piece(s) of the job are not in the results (e.g. sequence {left_out[0]}); if the "
                'inserter lists only failures, set [reconcile] lists = "failures"'
            )
    if problems:
        shown = "\n  ".join(problems[:_SHOWN])
        more = f"\n  … and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise ReconcileRefused(f"the results file cannot be reconciled; nothing was written:\n  {shown}{more}")
    for sequence in index.values():
        found.setdefault(sequence, OK)  # unlisted: not a failure
    return Outcomes(found, len(index))


def _key(value: str, key: str) -> str | int | None:
    if key == "piece_id":
        return value
    return int(value) if value.isdigit() else None  # the mark prints it zero-padded: 000012 is 12


def check_share(outcomes: Outcomes, results: ResultsFormat, force: bool) -> None:
    reprints = len(outcomes.of(REPRINT))
    share = reprints / outcomes.pieces if outcomes.pieces else 0.0
    if share > results.max_reprint_share and not force:
        raise ReconcileRefused(
            f"{reprints} of {outcomes.pieces} pieces ({share:.1%}) are to be reprinted, more than the "
            f"{results.max_reprint_share:.1%} the job allows ([reconcile] max_reprint_share): check the results "
            "file and the run; rerun with --force to reprint them all. Nothing was written"
        )


# -- the job folder --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconcileOutcome:
    number: int
    counts: dict[str, int]
    reprint_files: dict[str, str]  # name → SHA-256; empty when nothing is reprinted
    pulled_total: int  # pieces pulled by every reconciliation so far (the rows of pulled.csv)
    pages: int  # in reprint-NN.pdf
    preflight: str = ""  # the reprint's preflight report


def reconcile_job(
    job_dir: Path, results_path: Path, job_file_table: Mapping[str, Any], force: bool = False
) -> ReconcileOutcome:
    """Reconcile the job in `job_dir` with the inserter's results (see the module docstring).
    `job_file_table`: the job file as read (its ``[reconcile]`` table; ``[envelope]`` and ``[marks]`` for
    the reprint's preflight)."""
    results = format_from_table(job_file_table.get("reconcile"))
    manifest, job = _confirm_reprintable(job_dir)
    letters = list(iter_manifest_letters(manifest))
    outcomes = map_results(read_results(results_path, results), letters, results)
    check_share(outcomes, results, force)
    with Journal.in_dir(job_dir) as journal:
        number = journal.reconciliations.next_number()
        reprinted = [entry for entry in letters if outcomes.by_sequence[int(entry["sequence"])] == REPRINT]
        files: dict[str, str] = {}
        pages, report = 0, None
        if reprinted:
            files, pages = _write_reprint_set(job_dir, number, job, reprinted)
            report = _preflight(job_dir, number, job, job_file_table, journal)
        record = Reconciliation(
            number=number,
            time=now(),
            results_file=results_path.name,
            results_sha256=sha256_of(results_path),
            forced=force,
            counts=outcomes.counts(),
            reprint_files=files,
            preflight_ok=None if report is None else report.ok,
        )
        pieces = {int(entry["sequence"]): str(entry["piece_id"]) for entry in letters}
        named = sorted(outcomes.by_sequence.items())
        journal.reconciliations.record(record, ((s, pieces[s], outcome) for s, outcome in named if outcome != OK))
        pulled = journal.reconciliations.pulled_for_customer()
        _write_pulled(job_dir, pulled)
    if report is not None and not report.ok:
        raise InvariantError(
            f"{reprint_name(number, 'pdf')} failed its preflight; it must not be printed (deliver refuses it):\n"
            f"{report.text(limit=20)}"
        )
    return ReconcileOutcome(number, record.counts, files, len(pulled), pages, report.text() if report else "")


def _confirm_reprintable(job_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The job's manifest and its `job` record, once the folder is a finished job whose codes and print
    files are still there, unchanged."""
    manifest, journal_path = job_dir / MANIFEST_JSON, job_dir / JOURNAL_NAME
    if not manifest.is_file() or not journal_path.is_file():
        raise ConfigError(f"{job_dir} holds no {MANIFEST_JSON} and {JOURNAL_NAME}; is it a finished job folder?")
    job = read_manifest_job(manifest)
    with Journal(journal_path, read_only=True) as journal:
        job_id, purged_at = journal.job.id, journal.job.purged_at
    if purged_at is not None:
        raise ReconcileRefused(
            f"job {job_id} was purged on {purged_at}: its code pairs were erased from the journal and its print "
            "files deleted, so no reprint can carry the same codes. Nothing was written. A spoiled letter of "
            "this job now needs a new job (with new codes) for that patient"
        )
    if job.get("id") != job_id:
        raise ConfigError(f"{MANIFEST_JSON} is for job {job.get('id')} but the journal in {job_dir} is not")
    for listed in job.get("files", []):
        path = job_dir / listed["name"]
        if not path.is_file() or sha256_of(path) != listed["sha256"]:
            raise ReconcileRefused(
                f"{path.name} is missing or changed since the run: a reprint is cut from the very file the "
                "manifest describes. Nothing was written"
            )
    return manifest, job


def _write_reprint_set(
    job_dir: Path, number: int, job: Mapping[str, Any], reprinted: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, str], int]:
    """reprint-NN.pdf, .json and .csv; gives each one's SHA-256 by name, and the pages written."""
    duplex = bool(job.get("print", {}).get("duplex", False))
    order = {f["name"]: n for n, f in enumerate(job.get("files", []))}
    pieces = sorted(reprinted, key=lambda e: (order.get(e["file"], len(order)), int(e["first_page"])))
    pdf_name = reprint_name(number, "pdf")
    sources: dict[str, list[int]] = {}
    entries, page = [], 1
    for entry in pieces:
        count = _pages_in_file(entry, duplex)
        sources.setdefault(entry["file"], []).extend(range(entry["first_page"], entry["first_page"] + count))
        entries.append(
            {
                **entry,
                "file": pdf_name,
                "first_page": page,
                "original_file": entry["file"],
                "original_first_page": entry["first_page"],
            }  # fmt: skip
        )
        page += count
    pdf = job_dir / pdf_name
    pages = copy_pages([(job_dir / name, numbers) for name, numbers in sources.items()], pdf)
    if pages != page - 1:
        raise InvariantError(f"{pdf_name} has {pages} pages; its pieces take {page - 1}")
    printed = {
        "name": pdf_name,
        "letters": len(entries),
        "pages": pages,
        "sheets": sum(int(e.get("sheet_count", 0)) for e in entries),
        "bytes": pdf.stat().st_size,
        "sha256": sha256_of(pdf),
    }
    reprint_job = {
        **{k: v for k, v in job.items() if k not in ("files", "letters", "pages", "sheets")},
        "reprint": {"number": number, "made": now(), "of_files": [_file_record(f) for f in job.get("files", [])]},
        "letters": len(entries),
        "pages": pages,
        "sheets": printed["sheets"],
        "files": [printed],
    }
    with atomic_writer(job_dir / reprint_name(number, "json"), "w", encoding="utf-8") as handle:
        json.dump({"job": reprint_job, "letters": entries}, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    _write_reprint_csv(job_dir / reprint_name(number, "csv"), entries, str(printed["sha256"]))
    names = (pdf_name, reprint_name(number, "json"), reprint_name(number, "csv"))
    return {name: sha256_of(job_dir / name) for name in names}, pages


def _pages_in_file(entry: Mapping[str, Any], duplex: bool) -> int:
    """The pages a piece takes in its print file: its own and, duplex, a blank back to finish its last sheet."""
    sheets = entry.get("sheet_count")
    if sheets is None:
        return int(entry["page_count"])
    return int(sheets) * 2 if duplex else int(sheets)


def _file_record(listed: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": listed["name"], "sha256": listed["sha256"]}


def _write_reprint_csv(path: Path, entries: Sequence[Mapping[str, Any]], sha256: str) -> None:
    with atomic_writer(path, "w", encoding="utf-8", newline="") as handle:
        rows = csv.DictWriter(handle, (*LETTER_FIELDS, *REPRINT_EXTRA_FIELDS), extrasaction="ignore")
        rows.writeheader()
        for entry in entries:
            joined = {key: " | ".join(entry.get(key, [])) for key in ("address_lines", "marks")}
            rows.writerow({**entry, **joined, "file_sha256": sha256})


def _preflight(job_dir: Path, number: int, job: Mapping[str, Any], job_file: Mapping[str, Any], journal: Journal):
    """The print room's check of the reprint, every letter read back against its journal row."""
    from pkb_letters.check.print_check import available_cpus, check_files
    from pkb_letters.check.readback import JournalCredentials

    layout = {
        key: job_file[key] for key in ("envelope", "marks") if key in job_file
    }  # the Mailmark's is the manifest's
    envelope = None if "envelope" in layout else str(job.get("print", {}).get("envelope", "c5")).lower()
    options = options_from_job(layout, job_dir, envelope=envelope)
    return check_files(
        [job_dir / reprint_name(number, "pdf")],
        job_dir / reprint_name(number, "json"),
        options.envelope,
        options.marks if "marks" in job_file else None,
        workers=available_cpus(),
        credentials=JournalCredentials.of_journal(journal, qr=journal.job.template_prints_qr()),
    )


def _write_pulled(job_dir: Path, pulled: Sequence[tuple[str, str]]) -> None:
    with atomic_writer(job_dir / PULLED_CSV, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PULLED_FIELDS)
        writer.writerows(pulled)
