"""The journal's `rows` table as intake and resolve see it: one record per input row, whose `stage`
moves ``read → eligible`` or to ``excluded`` with a reason code, and the counts read back from it.

Takes the list's rows and resolve's decisions; gives the rows at a stage a page at a time.
Codes (`Codes`) and places in the print files (`Placements`) are written by their own parts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pkb_letters.job import rowcodec, sql
from pkb_letters.job.sql import Db, now
from pkb_letters.pkb.batching import batched
from pkb_letters.records import CodePair, Eligible, Exclusion, PatientRow, Reason, Stage


class Rows:
    def __init__(self, db: Db) -> None:
        self._db = db

    # -- writing ------------------------------------------------------------
    def record_intake_rows(self, rows: Iterable[PatientRow | Exclusion]) -> tuple[int, int]:
        """The list's rows as intake checks them, in input order and in one transaction (a crash leaves
        every row or none), written `PAGE_ROWS` at a time; gives (rows, excluded)."""
        total = excluded = 0
        with self._db.transaction():
            for page in batched(rows, sql.PAGE_ROWS):
                exclusions = [row for row in page if isinstance(row, Exclusion)]
                self._insert_patients(row for row in page if isinstance(row, PatientRow))
                self._insert_exclusions(exclusions)
                total, excluded = total + len(page), excluded + len(exclusions)
        return total, excluded

    def _insert_patients(self, patients: Iterable[PatientRow]) -> None:
        self._db.executemany(
            "INSERT INTO rows (input_row, customer_ref, nhs_number, stage, patient, updated) VALUES (?, ?, ?, ?, ?, ?)",
            (
                (p.input_row, p.customer_ref, p.nhs_number, Stage.READ, rowcodec.patient_json(p), now())
                for p in patients
            ),
        )

    def _insert_exclusions(self, exclusions: Iterable[Exclusion]) -> None:
        self._db.executemany(
            "INSERT INTO rows (input_row, customer_ref, nhs_number, stage, reason, detail, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (e.input_row, e.customer_ref, e.nhs_number, Stage.EXCLUDED, e.reason, e.detail, now())
                for e in exclusions
            ),
        )

    def exclude(self, input_row: int, reason: Reason, detail: str) -> None:
        with self._db.transaction():
            self._db.execute(
                "UPDATE rows SET stage = ?, reason = ?, detail = ?, updated = ? WHERE input_row = ?",
                (Stage.EXCLUDED, reason, detail, now(), input_row),
            )

    def record_decisions(self, decisions: Iterable[Eligible | Exclusion]) -> None:
        """A batch of resolve outcomes in one transaction."""
        stamp = now()
        with self._db.transaction():
            for decision in decisions:
                if isinstance(decision, Exclusion):
                    self._db.execute(
                        "UPDATE rows SET stage = ?, reason = ?, detail = ?, updated = ? WHERE input_row = ?",
                        (Stage.EXCLUDED, decision.reason, decision.detail, stamp, decision.input_row),
                    )
                else:
                    self._db.execute(
                        "UPDATE rows SET stage = ?, pkb_id = ?, updated = ? WHERE input_row = ?",
                        (Stage.ELIGIBLE, decision.pkb_id, stamp, decision.patient.input_row),
                    )

    def hand_off(self, pieces: Iterable[tuple[int, str]]) -> None:
        """Coded rows (input row, piece id) whose letter a specialist provider makes (braille...)."""
        stamp = now()
        with self._db.transaction():
            self._db.executemany(
                "UPDATE rows SET stage = ?, piece_id = ?, updated = ? WHERE input_row = ? AND stage = ?",
                ((Stage.HANDED_OFF, piece_id, stamp, input_row, Stage.CODED) for input_row, piece_id in pieces),
            )

    # -- reading back, a page at a time -----------------------------------------
    def iter_handed_off(self) -> Iterator[tuple[PatientRow, CodePair, str]]:
        """Handed-off rows in input order, a page at a time: patient, code pair and hand-off piece id."""
        for r in self._db.pages("SELECT * FROM rows WHERE stage = ?", (Stage.HANDED_OFF,), ("input_row",)):
            yield rowcodec.patient_from_json(r["patient"]), rowcodec.codes(r), r["piece_id"]

    def count_variants(self, stage: Stage) -> dict[tuple[str, str], int]:
        """Rows at `stage` by the (format, language) their list cells gave ("" for the job's default)."""
        rows = self._db.execute(
            "SELECT coalesce(json_extract(patient, '$.format'), '') AS format,"
            " coalesce(json_extract(patient, '$.language'), '') AS language, COUNT(*) AS n"
            " FROM rows WHERE stage = ? GROUP BY 1, 2",
            (stage,),
        )
        return {(row["format"], row["language"]): row["n"] for row in rows}

    def iter_patients_at(self, stage: Stage) -> Iterator[PatientRow]:
        """Patients at `stage` in input order, a page at a time; one moved on while this is read is not
        given again (each page starts after the last row of the one before)."""
        for r in self._db.pages("SELECT input_row, patient FROM rows WHERE stage = ?", (stage,), ("input_row",)):
            yield rowcodec.patient_from_json(r["patient"])

    def iter_eligible(self) -> Iterator[Eligible]:
        """Eligible patients, with their PKB ids, in input order, a page at a time."""
        query = "SELECT input_row, patient, pkb_id FROM rows WHERE stage = ?"
        for r in self._db.pages(query, (Stage.ELIGIBLE,), ("input_row",)):
            yield Eligible(rowcodec.patient_from_json(r["patient"]), r["pkb_id"])

    def iter_exclusions(self) -> Iterator[Exclusion]:
        """Excluded rows in input order, a page at a time."""
        for r in self._db.pages("SELECT * FROM rows WHERE stage = ?", (Stage.EXCLUDED,), ("input_row",)):
            yield rowcodec.exclusion(r)

    # -- counts ---------------------------------------------------------------
    def count_at(self, stage: Stage) -> int:
        return self._db.execute("SELECT COUNT(*) FROM rows WHERE stage = ?", (stage,)).fetchone()[0]

    def count_by_stage(self) -> dict[str, int]:
        rows = self._db.execute("SELECT stage, COUNT(*) AS n FROM rows GROUP BY stage")
        return {row["stage"]: row["n"] for row in rows}

    def count_by_reason(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT reason, COUNT(*) AS n FROM rows WHERE stage = ? GROUP BY reason ORDER BY reason",
            (Stage.EXCLUDED,),
        )
        return {row["reason"]: row["n"] for row in rows}

    def count_unfinished(self) -> int:
        """Rows neither placed, handed off nor excluded: a finished job has none."""
        return self._db.execute(
            "SELECT COUNT(*) FROM rows WHERE stage NOT IN (?, ?, ?)", (Stage.PLACED, Stage.EXCLUDED, Stage.HANDED_OFF)
        ).fetchone()[0]

    def row_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]

    def last_update(self) -> str | None:
        return self._db.execute("SELECT MAX(updated) FROM rows").fetchone()[0]
