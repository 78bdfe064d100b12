"""The journal's `reconciliations` and `reconciled_pieces` tables: each `pkb-letters reconcile`, what the
inserter's results said of each piece it named, and the reprint set it made.

Takes a `Reconciliation` and the pieces' outcomes; gives them back for `status`, for `deliver
--reprint` (the set's files and whether it passed its preflight), for `pulled.csv` (every piece
pulled by any reconciliation) and for numbering the next one. Holds no codes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from pkb_letters.job.sql import Db, now

SCHEMA = """
CREATE TABLE IF NOT EXISTS reconciliations (
    number          INTEGER PRIMARY KEY,
    time            TEXT NOT NULL,
    results_file    TEXT NOT NULL,
    results_sha256  TEXT NOT NULL,
    forced          INTEGER NOT NULL,
    counts          TEXT NOT NULL,
    reprint_files   TEXT NOT NULL,
    preflight_ok    INTEGER
);
CREATE TABLE IF NOT EXISTS reconciled_pieces (
    number    INTEGER NOT NULL,
    sequence  INTEGER NOT NULL,
    piece_id  TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    PRIMARY KEY (number, sequence)
);
"""

OK, REPRINT, PULL = "OK", "REPRINT", "PULL"
OUTCOMES = (OK, REPRINT, PULL)


@dataclass(frozen=True)
class Reconciliation:
    """One reconciliation as the journal keeps it. `reprint_files`: each file of its reprint set
    (name → SHA-256), empty when it asked for no reprint; `preflight_ok`: whether the set passed
    its preflight (None without a set)."""

    number: int
    time: str
    results_file: str
    results_sha256: str
    forced: bool
    counts: dict[str, int]
    reprint_files: dict[str, str]
    preflight_ok: bool | None


class Reconciliations:
    def __init__(self, db: Db) -> None:
        self._db = db

    def next_number(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM reconciliations").fetchone()[0])

    def record(self, reconciliation: Reconciliation, pieces: Iterable[tuple[int, str, str]]) -> None:
        """The reconciliation and its pieces' outcomes, (sequence, piece id, outcome), in one transaction."""
        r = reconciliation
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO reconciliations (number, time, results_file, results_sha256, forced, counts,"
                " reprint_files, preflight_ok) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    r.number,
                    r.time or now(),
                    r.results_file,
                    r.results_sha256,
                    int(r.forced),
                    json.dumps(r.counts),
                    json.dumps(r.reprint_files),
                    None if r.preflight_ok is None else int(r.preflight_ok),
                ),
            )
            self._db.executemany(
                "INSERT INTO reconciled_pieces (number, sequence, piece_id, outcome) VALUES (?, ?, ?, ?)",
                ((r.number, sequence, piece, outcome) for sequence, piece, outcome in pieces),
            )

    def all(self) -> list[Reconciliation]:
        """Every reconciliation, oldest first."""
        return [_reconciliation(row) for row in self._db.execute("SELECT * FROM reconciliations ORDER BY number")]

    def get(self, number: int) -> Reconciliation | None:
        row = self._db.execute("SELECT * FROM reconciliations WHERE number = ?", (number,)).fetchone()
        return None if row is None else _reconciliation(row)

    def pieces_with(self, outcome: str) -> list[tuple[int, str]]:
        """(sequence, piece id) of every piece any reconciliation gave `outcome`, in sequence order, once each."""
        rows = self._db.execute(
            "SELECT DISTINCT sequence, piece_id FROM reconciled_pieces WHERE outcome = ? ORDER BY sequence",
            (outcome,),
        )
        return [(row["sequence"], row["piece_id"]) for row in rows]

    def pulled_for_customer(self) -> list[tuple[str, str]]:
        """(piece id, the customer's reference for its row) of every piece pulled, in sequence order."""
        rows = self._db.execute(
            "SELECT DISTINCT p.sequence, p.piece_id, r.customer_ref FROM reconciled_pieces AS p"
            " JOIN rows AS r ON r.piece_id = p.piece_id WHERE p.outcome = ? ORDER BY p.sequence",
            (PULL,),
        )
        return [(row["piece_id"], row["customer_ref"]) for row in rows]


def _reconciliation(row) -> Reconciliation:
    return Reconciliation(
        number=row["number"],
        time=row["time"],
        results_file=row["results_file"],
        results_sha256=row["results_sha256"],
        forced=bool(row["forced"]),
        counts=json.loads(row["counts"]),
        reprint_files=json.loads(row["reprint_files"]),
        preflight_ok=None if row["preflight_ok"] is None else bool(row["preflight_ok"]),
    )
