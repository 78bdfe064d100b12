"""Manifest: the journal's placed letters and exclusions in, the hand-off files out.

`manifest.json` and `manifest.csv` go to the mail house: no codes, no NHS
numbers. `exceptions.csv` goes back to the customer to fix their data.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .files import atomic_writer
from .journal import PieceRecord
from .records import Exclusion, PlacedLetter

MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
EXCEPTIONS_CSV = "exceptions.csv"
LETTER_FIELDS = (
    "sequence", "piece_id", "file", "first_page", "page_count", "input_row",
    "name", "address_lines", "postcode", "codes_expire", "codes_reissued", "postage", "sheet_count",
    "postage_class", "marks",
)
EXCEPTION_FIELDS = ("input_row", "customer_ref", "nhs_number", "reason", "detail")


def letter_entry(
    placed: PlacedLetter, piece: PieceRecord | None = None, reissued: str | None = None
) -> dict[str, Any]:
    """One envelope: the mail run data file's record. `marks` is the payload printed on each sheet;
    `codes_reissued` says why this patient's pair is a second one (see `journal.Reissue`), or is empty."""
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
    letters = [
        letter_entry(p, pieces.get(p.letter.sequence), reissues.get(p.letter.patient.input_row)) for p in placed
    ]
    totals = {"pages": sum(f.pages for f in files)}
    if pieces:
        totals["sheets"] = sum(getattr(f, "sheets", 0) for f in files)
    return {
        "job": {**job, "letters": len(letters), **totals, "files": [asdict(f) for f in files]},
        "letters": letters,
    }


def write_manifest_json(out_dir: Path, manifest: dict[str, Any]) -> None:
    with atomic_writer(out_dir / MANIFEST_JSON, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def write_manifest_csv(out_dir: Path, letters: Iterable[dict[str, Any]]) -> None:
    with atomic_writer(out_dir / MANIFEST_CSV, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, LETTER_FIELDS)
        writer.writeheader()
        for entry in letters:
            joined = {key: " | ".join(entry.get(key, [])) for key in ("address_lines", "marks")}
            writer.writerow({**entry, **joined})


def write_exceptions_csv(out_dir: Path, exclusions: Iterable[Exclusion]) -> None:
    with atomic_writer(out_dir / EXCEPTIONS_CSV, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(EXCEPTION_FIELDS)
        for e in exclusions:
            writer.writerow([e.input_row, e.customer_ref, e.nhs_number, e.reason.value, e.detail])
