"""Manifest: the journal's placed letters and exclusions in, the hand-off files out.

`manifest.json` and `manifest.csv` go to the mail house: no codes, no NHS
numbers. `exceptions.csv` goes back to the customer to fix their data.
`manifest.json` is read back (by the preflight) a letter at a time, as it is written.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ijson

from pkb_letters import variants
from pkb_letters.files import atomic_writer
from pkb_letters.records import Exclusion, PieceRecord, PlacedLetter
from pkb_letters.variants import Variant

MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
EXCEPTIONS_CSV = "exceptions.csv"
LETTER_FIELDS = (
    "sequence",
    "piece_id",
    "file",
    "first_page",
    "page_count",
    "input_row",
    "name",
    "address_lines",
    "postcode",
    "codes_expire",
    "codes_reissued",
    "postage",
    "sheet_count",
    "postage_class",
    "marks",
    "format",
    "language",
)
EXCEPTION_FIELDS = ("input_row", "customer_ref", "nhs_number", "reason", "detail")


def letter_entry(
    placed: PlacedLetter,
    piece: PieceRecord | None = None,
    reissued: str | None = None,
    variant: Variant | None = None,
) -> dict[str, Any]:
    """One envelope: the mail run data file's record. `marks` is the payload printed on each sheet;
    `codes_reissued` says why this patient's pair is a second one (see `records.Reissue`), or is empty;
    `format` and `language` are the letter's (`variant`: the row's, with the job's defaults)."""
    letter = placed.letter
    entry = {
        "sequence": letter.sequence,
        "piece_id": letter.piece_id,
        "file": placed.file,
        "first_page": placed.first_page,
        "page_count": placed.page_count,
        "input_row": letter.patient.input_row,
        "name": letter.patient.display_name,
        "address_lines": list(letter.patient.address_lines),
        "postcode": letter.patient.postcode,
        "codes_expire": letter.codes.expires.isoformat(),
        "codes_reissued": reissued or "",
        "postage": letter.patient.postage,  # Royal Mail zone: uk, europe or rest-of-world
    }
    if piece is not None:
        entry.update(sheet_count=piece.sheet_count, postage_class=piece.postage_class, marks=list(piece.marks))
    variant = variant or variants.variant_of(letter.patient.format, letter.patient.language, "", "")
    entry.update(format=variant.format, language=variant.language)
    return entry


def build_manifest(
    job: dict[str, Any],
    placed: Iterable[PlacedLetter],
    files: Sequence[Any],
    pieces: Mapping[int, PieceRecord] | None = None,
    reissues: Mapping[int, str] | None = None,
) -> dict[str, Any]:
    pieces = pieces or {}
    reissues = reissues or {}
    letters = [letter_entry(p, pieces.get(p.letter.sequence), reissues.get(p.letter.patient.input_row)) for p in placed]
    return {"job": manifest_job(job, len(letters), files, bool(pieces)), "letters": letters}


def manifest_job(job: dict[str, Any], letters: int, files: Sequence[Any], with_sheets: bool) -> dict[str, Any]:
    """The manifest's `job` record: `job` with the letter, page and (for print files) sheet totals."""
    totals = {"pages": sum(f.pages for f in files)}
    if with_sheets:
        totals["sheets"] = sum(getattr(f, "sheets", 0) for f in files)
    return {**job, "letters": letters, **totals, "files": [asdict(f) for f in files]}


def _csv_row(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, **{key: " | ".join(entry.get(key, [])) for key in ("address_lines", "marks")}}


def stream_manifest(out_dir: Path, job: dict[str, Any], letters: Iterable[dict[str, Any]]) -> None:
    """`manifest.json` and `manifest.csv` written a letter at a time, byte for byte what `json.dump`
    (indent 2) and a `csv.DictWriter` write for `{"job": job, "letters": [...]}` held whole.
    `manifest.json` is in place first, as when they are written one after the other."""
    with (
        atomic_writer(out_dir / MANIFEST_CSV, "w", encoding="utf-8", newline="") as csv_handle,
        atomic_writer(out_dir / MANIFEST_JSON, "w", encoding="utf-8") as json_handle,
    ):
        rows = csv.DictWriter(csv_handle, LETTER_FIELDS, extrasaction="ignore")  # Mailmarks: mailmark-items.csv
        rows.writeheader()
        head = json.dumps({"job": job}, indent=2, ensure_ascii=False)
        json_handle.write(head.removesuffix("\n}") + ',\n  "letters": [')
        separator = "\n" + _ENTRY_INDENT
        for entry in letters:
            # JSON text holds no raw newline, so indenting every line break indents every line
            text = json.dumps(entry, indent=2, ensure_ascii=False)
            json_handle.write(separator + text.replace("\n", "\n" + _ENTRY_INDENT))
            separator = ",\n" + _ENTRY_INDENT
            rows.writerow(_csv_row(entry))
        json_handle.write("]\n}\n" if separator.startswith("\n") else "\n  ]\n}\n")


_ENTRY_INDENT = " " * 4  # a letter sits two levels deep: in the manifest, in its `letters` list


def read_manifest_job(path: Path) -> dict[str, Any]:
    """The `job` record of the manifest at `path`, read without the letters after it.
    Raises ValueError when the file is not JSON or has no `job`."""
    for job in _items(path, "job"):
        return job
    raise ValueError(f"{path.name} has no job record")


def iter_manifest_letters(path: Path) -> Iterator[dict[str, Any]]:
    """The manifest's letters one at a time, each as `json.load` gives it: a job's worth of
    letters is never held at once. Raises ValueError, as far as it has read, on a file that is not JSON."""
    yield from _items(path, "letters.item")


def _items(path: Path, prefix: str) -> Iterator[Any]:
    with path.open("rb") as handle:
        try:
            yield from ijson.items(handle, prefix, use_float=True)  # floats as json gives them, not Decimal
        except ijson.JSONError as exc:
            raise ValueError(f"{path.name} is not valid JSON: {exc}") from exc


def write_exceptions_csv(out_dir: Path, exclusions: Iterable[Exclusion]) -> None:
    with atomic_writer(out_dir / EXCEPTIONS_CSV, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(EXCEPTION_FIELDS)
        for e in exclusions:
            writer.writerow([e.input_row, e.customer_ref, e.nhs_number, e.reason.value, e.detail])
