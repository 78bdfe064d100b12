"""The job journal: the single source of truth for one job, in `DIR/job.sqlite`.

It takes what each stage decided (rows read, patients resolved, codes issued,
letters placed, rows excluded) and gives it back to the next stage and to the
output writers. The PDF and manifests are derived from it, never the reverse.

Each input row has exactly one record, whose `stage` moves forward:
``read → eligible → coded → placed``, or to ``excluded`` with a reason code.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from .errors import PkbLettersError
from .records import CodePair, Eligible, Exclusion, Letter, PatientRow, PlacedLetter, Reason

JOURNAL_NAME = "job.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    input_row       INTEGER PRIMARY KEY,
    customer_ref    TEXT NOT NULL,
    nhs_number      TEXT NOT NULL,
    stage           TEXT NOT NULL,
    patient         TEXT,
    pkb_id          TEXT,
    reason          TEXT,
    detail          TEXT,
    invitation_code TEXT,
    access_code     TEXT,
    codes_expire    TEXT,
    sequence        INTEGER,
    piece_id        TEXT,
    file            TEXT,
    first_page      INTEGER,
    page_count      INTEGER,
    updated         TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pieces (
    sequence        INTEGER PRIMARY KEY,
    file            TEXT NOT NULL,
    first_page      INTEGER NOT NULL,
    sheet_count     INTEGER NOT NULL,
    postage_class   TEXT NOT NULL,
    marks           TEXT NOT NULL
);
"""


class Stage(StrEnum):
    READ = "read"
    ELIGIBLE = "eligible"
    CODED = "coded"
    PLACED = "placed"
    EXCLUDED = "excluded"


class Journal:
    """One job's state. Use as a context manager; every method commits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # codes live here: owner only
        os.close(fd)
        try:
            self._db = sqlite3.connect(path)
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise PkbLettersError(f"cannot open job journal {path}: {exc}") from exc
        self._db.row_factory = sqlite3.Row

    @classmethod
    def in_dir(cls, out_dir: Path) -> Journal:
        return cls(out_dir / JOURNAL_NAME)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- settings ---------------------------------------------------------
    def set_settings(self, settings: dict[str, str]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", settings.items()
            )

    def settings(self) -> dict[str, str]:
        return {row["key"]: row["value"] for row in self._db.execute("SELECT key, value FROM settings")}

    # -- intake -----------------------------------------------------------
    def add_patients(self, patients: Iterable[PatientRow]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT INTO rows (input_row, customer_ref, nhs_number, stage, patient, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (p.input_row, p.customer_ref, p.nhs_number, Stage.READ, _patient_json(p), _now())
                    for p in patients
                ),
            )

    def add_exclusions(self, exclusions: Iterable[Exclusion]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT INTO rows (input_row, customer_ref, nhs_number, stage, reason, detail, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (e.input_row, e.customer_ref, e.nhs_number, Stage.EXCLUDED, e.reason, e.detail, _now())
                    for e in exclusions
                ),
            )

    # -- stage transitions -----------------------------------------------
    def exclude(self, input_row: int, reason: Reason, detail: str) -> None:
        with self._db:
            self._db.execute(
                "UPDATE rows SET stage = ?, reason = ?, detail = ?, updated = ? WHERE input_row = ?",
                (Stage.EXCLUDED, reason, detail, _now(), input_row),
            )

    def mark_eligible(self, eligible: Eligible) -> None:
        with self._db:
            self._db.execute(
                "UPDATE rows SET stage = ?, pkb_id = ?, updated = ? WHERE input_row = ?",
                (Stage.ELIGIBLE, eligible.pkb_id, _now(), eligible.patient.input_row),
            )

    def record_codes(self, input_row: int, codes: CodePair) -> None:
        with self._db:
            self._db.execute(
                "UPDATE rows SET stage = ?, invitation_code = ?, access_code = ?, codes_expire = ?,"
                " updated = ? WHERE input_row = ?",
                (Stage.CODED, codes.invitation_code, codes.access_code, codes.expires.isoformat(),
                 _now(), input_row),
            )

    def record_placements(self, placed: Iterable[PlacedLetter]) -> None:
        with self._db:
            self._db.executemany(
                "UPDATE rows SET stage = ?, sequence = ?, piece_id = ?, file = ?, first_page = ?,"
                " page_count = ?, updated = ? WHERE input_row = ?",
                (
                    (Stage.PLACED, p.letter.sequence, p.letter.piece_id, p.file, p.first_page, p.page_count,
                     _now(), p.letter.patient.input_row)
                    for p in placed
                ),
            )

    def record_pieces(self, pieces: Iterable[PieceRecord]) -> None:
        """Where each envelope landed in the print files, and the marks printed on its sheets."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO pieces (sequence, file, first_page, sheet_count, postage_class, marks)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                ((p.sequence, p.file, p.first_page, p.sheet_count, p.postage_class, json.dumps(list(p.marks)))
                 for p in pieces),
            )

    def pieces(self) -> dict[int, PieceRecord]:
        rows = self._db.execute("SELECT * FROM pieces ORDER BY sequence")
        return {
            r["sequence"]: PieceRecord(r["sequence"], r["file"], r["first_page"], r["sheet_count"],
                                       r["postage_class"], tuple(json.loads(r["marks"])))
            for r in rows
        }

    # -- reading back -----------------------------------------------------
    def patients_at(self, stage: Stage) -> list[PatientRow]:
        rows = self._db.execute(
            "SELECT patient FROM rows WHERE stage = ? ORDER BY input_row", (stage,)
        )
        return [_patient_from_json(row["patient"]) for row in rows]

    def eligible(self) -> list[Eligible]:
        rows = self._db.execute(
            "SELECT patient, pkb_id FROM rows WHERE stage = ? ORDER BY input_row", (Stage.ELIGIBLE,)
        )
        return [Eligible(_patient_from_json(r["patient"]), r["pkb_id"]) for r in rows]

    def coded(self) -> list[tuple[PatientRow, CodePair]]:
        rows = self._db.execute(
            "SELECT * FROM rows WHERE stage = ? ORDER BY input_row", (Stage.CODED,)
        )
        return [(_patient_from_json(r["patient"]), _codes(r)) for r in rows]

    def placed(self) -> Iterator[PlacedLetter]:
        rows = self._db.execute(
            "SELECT * FROM rows WHERE stage = ? ORDER BY sequence", (Stage.PLACED,)
        )
        for r in rows:
            letter = Letter(r["sequence"], r["piece_id"], _patient_from_json(r["patient"]), _codes(r))
            yield PlacedLetter(letter, r["file"], r["first_page"], r["page_count"])

    def exclusions(self) -> list[Exclusion]:
        rows = self._db.execute(
            "SELECT * FROM rows WHERE stage = ? ORDER BY input_row", (Stage.EXCLUDED,)
        )
        return [
            Exclusion(r["input_row"], r["customer_ref"], r["nhs_number"], Reason(r["reason"]), r["detail"])
            for r in rows
        ]

    def count_by_stage(self) -> dict[str, int]:
        rows = self._db.execute("SELECT stage, COUNT(*) AS n FROM rows GROUP BY stage")
        return {row["stage"]: row["n"] for row in rows}

    def count_by_reason(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT reason, COUNT(*) AS n FROM rows WHERE stage = ? GROUP BY reason ORDER BY reason",
            (Stage.EXCLUDED,),
        )
        return {row["reason"]: row["n"] for row in rows}

    def row_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]


@dataclass(frozen=True)
class PieceRecord:
    sequence: int
    file: str
    first_page: int
    sheet_count: int
    postage_class: str
    marks: tuple[str, ...]


def _codes(row: sqlite3.Row) -> CodePair:
    return CodePair(row["invitation_code"], row["access_code"], dt.date.fromisoformat(row["codes_expire"]))


def _patient_json(patient: PatientRow) -> str:
    data = asdict(patient)
    data["date_of_birth"] = patient.date_of_birth.isoformat() if patient.date_of_birth else None
    return json.dumps(data, ensure_ascii=False)


def _patient_from_json(text: str) -> PatientRow:
    data = json.loads(text)
    dob = data.pop("date_of_birth")
    data["address_lines"] = tuple(data["address_lines"])
    return PatientRow(date_of_birth=dt.date.fromisoformat(dob) if dob else None, **data)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
