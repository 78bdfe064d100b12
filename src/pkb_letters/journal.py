"""The job journal: the single source of truth for one job, in `DIR/job.sqlite`.

It takes what each stage decided (rows read, patients resolved, codes issued,
letters placed, rows excluded) and gives it back to the next stage and to the
output writers. The PDF and manifests are derived from it, never the reverse.

Each input row has exactly one record, whose `stage` moves forward:
``read → eligible → coded → placed``, or to ``excluded`` with a reason code. A pair PKB issued
whose expiry could not be read waits at ``held`` (never asked for again) until it can be.

Code requests are written down *before* they are sent (`codes_requested`) and cleared when
the answer is recorded, so after a crash the journal knows which patients PKB may have
issued codes to without us seeing them. A second request for such a patient, or for one
whose codes expire too soon, is a re-issue: the row's `reissue` column and the `events`
table say why. Every write is one transaction; WAL with full sync survives a power cut.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from pathlib import Path

from .batching import batched
from .errors import PkbLettersError
from .mailsort import postcode_order_key
from .records import (
    CodePair,
    DeliveredFile,
    Delivery,
    DeliveryOutcome,
    Eligible,
    Exclusion,
    HeldPair,
    Letter,
    PatientRow,
    PlacedLetter,
    Reason,
)

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
    chunk           INTEGER,
    layout_page     INTEGER,
    codes_requested TEXT,
    codes_issued    TEXT,
    codes_run       INTEGER,
    reissue         TEXT,
    updated         TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id        INTEGER PRIMARY KEY,
    time      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    input_row INTEGER,
    detail    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS carried_codes (
    nhs_number      TEXT PRIMARY KEY,
    invitation_code TEXT,
    access_code     TEXT,
    codes_expire    TEXT,
    codes_issued    TEXT,
    uncertain       INTEGER NOT NULL
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

# Added on opening, so older journals gain them too: the print order's sort key (filled in when
# first asked for), and the `expiry` part of a held pair's answer (see `Stage.HELD`).
_STREAMING_COLUMNS = {"print_key": "BLOB", "codes_expiry_part": "TEXT"}
_CARRIED_COLUMNS = {"codes_expiry_part": "TEXT"}
_STREAMING_INDEXES = """
CREATE INDEX IF NOT EXISTS rows_print_order ON rows (stage, print_key, input_row);
CREATE INDEX IF NOT EXISTS rows_sequence ON rows (stage, sequence);
"""
# Rows read back per query by the streaming readers: memory holds one page, whatever the job's size.
PAGE_ROWS = 500

# Created on first use, so journals written before deliveries existed gain it too.
_DELIVERIES_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started     TEXT NOT NULL,
    finished    TEXT NOT NULL,
    destination TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    host_key    TEXT,
    files       TEXT NOT NULL,
    detail      TEXT NOT NULL
);
"""


class Reissue(StrEnum):
    """Why a patient was asked for a second code pair: the only two reasons there are."""

    LOST_RESPONSE = "lost-response"  # a request's answer never arrived; PKB may have issued a pair
    EXPIRING = "expiring"  # the pair would expire within --min-validity-days of printing


class Stage(StrEnum):
    READ = "read"
    ELIGIBLE = "eligible"
    CODED = "coded"
    PLACED = "placed"
    EXCLUDED = "excluded"
    HELD = "held"  # PKB issued a pair whose expiry could not be read: kept, never asked for again


class Journal:
    """One job's state. Use as a context manager; every method commits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # codes live here: owner only
        os.fchmod(fd, 0o600)  # whatever the umask, and even if the file was there before
        os.close(fd)
        try:
            self._db = sqlite3.connect(path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._add_streaming_schema()
        except sqlite3.Error as exc:
            raise PkbLettersError(f"cannot open job journal {path}: {exc}") from exc
        self._db.row_factory = sqlite3.Row
        self.run = 0  # which run of the job this is, once begin_run() is called

    def _add_streaming_schema(self) -> None:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(rows)")}
        carried = {row[1] for row in self._db.execute("PRAGMA table_info(carried_codes)")}
        with self._db:
            for name, kind in _STREAMING_COLUMNS.items():
                if name not in columns:
                    self._db.execute(f"ALTER TABLE rows ADD COLUMN {name} {kind}")
            for name, kind in _CARRIED_COLUMNS.items():
                if name not in carried:
                    self._db.execute(f"ALTER TABLE carried_codes ADD COLUMN {name} {kind}")
        self._db.executescript(_STREAMING_INDEXES)
        self._db.create_function("print_order_key", 1, _print_order_key, deterministic=True)

    def begin_run(self) -> int:
        """Count this run: pairs issued by an earlier run are the ones re-checked for expiry."""
        with self._db:
            runs = int(self.settings().get("runs", "0")) + 1
            self._db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES ('runs', ?)", (str(runs),))
        self.run = runs
        return runs

    @classmethod
    def in_dir(cls, out_dir: Path) -> Journal:
        return cls(out_dir / JOURNAL_NAME)

    def close(self) -> None:
        # Back to a single file at rest (WAL is only for the run): a reader, a copy, `purge` or
        # a restart's rename then sees the whole journal in job.sqlite, with no -wal beside it.
        try:
            self._db.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error:
            pass  # another connection is open; it will fold the log back in when it closes
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
    def record_intake_rows(self, rows: Iterable[PatientRow | Exclusion]) -> tuple[int, int]:
        """The list's rows as intake checks them, in input order and in one transaction (a crash leaves
        every row or none), written `PAGE_ROWS` at a time; gives (rows, excluded)."""
        total = excluded = 0
        with self._db:
            for page in batched(rows, PAGE_ROWS):
                exclusions = [row for row in page if isinstance(row, Exclusion)]
                self._insert_patients(row for row in page if isinstance(row, PatientRow))
                self._insert_exclusions(exclusions)
                total, excluded = total + len(page), excluded + len(exclusions)
            self._mark_done("intake")
        return total, excluded

    def add_patients(self, patients: Iterable[PatientRow]) -> None:
        with self._db:
            self._insert_patients(patients)

    def add_exclusions(self, exclusions: Iterable[Exclusion]) -> None:
        with self._db:
            self._insert_exclusions(exclusions)

    def _insert_patients(self, patients: Iterable[PatientRow]) -> None:
        self._db.executemany(
            "INSERT INTO rows (input_row, customer_ref, nhs_number, stage, patient, updated)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ((p.input_row, p.customer_ref, p.nhs_number, Stage.READ, _patient_json(p), _now()) for p in patients),
        )

    def _insert_exclusions(self, exclusions: Iterable[Exclusion]) -> None:
        self._db.executemany(
            "INSERT INTO rows (input_row, customer_ref, nhs_number, stage, reason, detail, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (e.input_row, e.customer_ref, e.nhs_number, Stage.EXCLUDED, e.reason, e.detail, _now())
                for e in exclusions
            ),
        )

    # -- stages done ------------------------------------------------------
    def _mark_done(self, stage: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (f"done:{stage}", _now()))

    def mark_done(self, stage: str) -> None:
        with self._db:
            self._mark_done(stage)

    def is_done(self, stage: str) -> bool:
        return self._db.execute("SELECT 1 FROM settings WHERE key = ?", (f"done:{stage}",)).fetchone() is not None

    def undo_done(self, stage: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM settings WHERE key = ?", (f"done:{stage}",))

    # -- events -----------------------------------------------------------
    def add_event(self, kind: str, detail: str, input_row: int | None = None) -> None:
        with self._db:
            self._add_event(kind, detail, input_row)

    def _add_event(self, kind: str, detail: str, input_row: int | None = None) -> None:
        self._db.execute(
            "INSERT INTO events (time, kind, input_row, detail) VALUES (?, ?, ?, ?)", (_now(), kind, input_row, detail)
        )

    def events(self, kind: str | None = None) -> list[sqlite3.Row]:
        if kind is None:
            return list(self._db.execute("SELECT * FROM events ORDER BY id"))
        return list(self._db.execute("SELECT * FROM events WHERE kind = ? ORDER BY id", (kind,)))

    # -- stage transitions -----------------------------------------------
    def exclude(self, input_row: int, reason: Reason, detail: str) -> None:
        with self._db:
            self._db.execute(
                "UPDATE rows SET stage = ?, reason = ?, detail = ?, updated = ? WHERE input_row = ?",
                (Stage.EXCLUDED, reason, detail, _now(), input_row),
            )

    def mark_eligible(self, eligible: Eligible) -> None:
        self.record_decisions([eligible])

    def record_decisions(self, decisions: Iterable[Eligible | Exclusion]) -> None:
        """A batch of resolve outcomes in one transaction."""
        now = _now()
        with self._db:
            for decision in decisions:
                if isinstance(decision, Exclusion):
                    self._db.execute(
                        "UPDATE rows SET stage = ?, reason = ?, detail = ?, updated = ? WHERE input_row = ?",
                        (Stage.EXCLUDED, decision.reason, decision.detail, now, decision.input_row),
                    )
                else:
                    self._db.execute(
                        "UPDATE rows SET stage = ?, pkb_id = ?, updated = ? WHERE input_row = ?",
                        (Stage.ELIGIBLE, decision.pkb_id, now, decision.patient.input_row),
                    )

    def begin_code_request(self, input_rows: Iterable[int]) -> None:
        """Write down, before asking PKB, that these rows' codes are being requested.

        A row whose earlier request never got an answer is marked as a re-issue first.
        """
        rows = list(input_rows)
        now = _now()
        with self._db:
            unanswered = self._db.execute(
                f"SELECT input_row, codes_requested FROM rows WHERE codes_requested IS NOT NULL"
                f" AND input_row IN ({', '.join('?' * len(rows))})",
                rows,
            ).fetchall()
            for earlier in unanswered:
                self._db.execute(
                    "UPDATE rows SET reissue = ? WHERE input_row = ?", (Reissue.LOST_RESPONSE, earlier["input_row"])
                )
                self._add_event(
                    "reissue", f"{Reissue.LOST_RESPONSE}: the answer to the code request sent at "
                    f"{earlier['codes_requested']} never arrived; PKB may have issued a pair", earlier["input_row"],
                )
            self._db.executemany(
                "UPDATE rows SET codes_requested = ?, updated = ? WHERE input_row = ?",
                ((now, now, input_row) for input_row in rows),
            )

    def cancel_code_request(self, input_rows: Iterable[int]) -> None:
        """PKB certainly did not act on the request (it was never sent, or refused before any work)."""
        with self._db:
            self._db.executemany(
                "UPDATE rows SET codes_requested = NULL WHERE input_row = ?", ((r,) for r in input_rows)
            )

    def record_codes(self, input_row: int, codes: CodePair) -> None:
        self.record_issued([(input_row, codes)], [])

    def record_issued(
        self, pairs: Iterable[tuple[int, CodePair]], refusals: Iterable[Exclusion],
        held: Iterable[tuple[int, HeldPair]] = (),
    ) -> None:
        """A code request's answer: pairs to print, pairs whose expiry could not be read (held, so they
        are neither lost nor asked for again), and patients PKB gave no pair to."""
        now = _now()
        with self._db:
            self._hold(held, now)
            self._db.executemany(
                "UPDATE rows SET stage = ?, invitation_code = ?, access_code = ?, codes_expire = ?,"
                " codes_issued = ?, codes_run = ?, codes_requested = NULL, updated = ? WHERE input_row = ?",
                (
                    (Stage.CODED, c.invitation_code, c.access_code, c.expires.isoformat(), now, self.run, now,
                     input_row)
                    for input_row, c in pairs
                ),
            )
            self._db.executemany(
                "UPDATE rows SET stage = ?, reason = ?, detail = ?, codes_requested = NULL, updated = ?"
                " WHERE input_row = ?",
                ((Stage.EXCLUDED, e.reason, e.detail, now, e.input_row) for e in refusals),
            )

    def _hold(self, held: Iterable[tuple[int, HeldPair]], now: str) -> None:
        for input_row, pair in held:
            self._db.execute(
                "UPDATE rows SET stage = ?, invitation_code = ?, access_code = ?, codes_expire = NULL,"
                " codes_expiry_part = ?, detail = ?, codes_issued = ?, codes_run = ?, codes_requested = NULL,"
                " updated = ? WHERE input_row = ?",
                (Stage.HELD, pair.invitation_code, pair.access_code, pair.expiry_part, pair.problem, now, self.run,
                 now, input_row),
            )
            self._add_event("held", f"PKB issued a pair whose expiry could not be read: {pair.problem}", input_row)

    def held(self) -> list[tuple[int, HeldPair]]:
        """Rows holding a pair whose expiry could not be read, in input order."""
        rows = self._db.execute("SELECT * FROM rows WHERE stage = ? ORDER BY input_row", (Stage.HELD,))
        return [(r["input_row"], _held_pair(r)) for r in rows]

    def release_held(self, input_row: int, expires: dt.date) -> None:
        """A held pair's expiry is now read: the pair goes on to be printed like any other."""
        with self._db:
            self._db.execute(
                "UPDATE rows SET stage = ?, codes_expire = ?, detail = NULL, updated = ?"
                " WHERE input_row = ? AND stage = ?",
                (Stage.CODED, expires.isoformat(), _now(), input_row, Stage.HELD),
            )
            self._add_event("released", f"the held pair's expiry was read: {expires.isoformat()}", input_row)

    def send_back_for_reissue(self, input_rows: Iterable[int], why: Reissue, detail: str) -> None:
        """Coded rows whose pair must not be printed go back to `eligible` to be asked again."""
        now = _now()
        with self._db:
            for input_row in input_rows:
                self._db.execute(
                    "UPDATE rows SET stage = ?, reissue = ?, invitation_code = NULL, access_code = NULL,"
                    " codes_expire = NULL, codes_issued = NULL, updated = ? WHERE input_row = ?",
                    (Stage.ELIGIBLE, why, now, input_row),
                )
                self._add_event("reissue", f"{why}: {detail}", input_row)

    def requested_without_answer(self) -> list[int]:
        rows = self._db.execute(
            "SELECT input_row FROM rows WHERE codes_requested IS NOT NULL AND stage = ? ORDER BY input_row",
            (Stage.ELIGIBLE,),
        )
        return [r["input_row"] for r in rows]

    def record_placements(self, placed: Iterable[PlacedLetter], chunk: int | None = None) -> None:
        """Where letters sit: with `chunk`, as laid out (pages counted over the chunks, kept as
        `layout_page` so the print files can be made again); without, in the finished print files."""
        now = _now()
        with self._db:
            if chunk is None:
                self._db.executemany(
                    "UPDATE rows SET file = ?, first_page = ?, updated = ? WHERE input_row = ?",
                    ((p.file, p.first_page, now, p.letter.patient.input_row) for p in placed),
                )
                return
            self._db.executemany(
                "UPDATE rows SET stage = ?, sequence = ?, piece_id = ?, file = ?, first_page = ?, layout_page = ?,"
                " page_count = ?, chunk = ?, updated = ? WHERE input_row = ?",
                (
                    (Stage.PLACED, p.letter.sequence, p.letter.piece_id, p.file, p.first_page, p.first_page,
                     p.page_count, chunk, now, p.letter.patient.input_row)
                    for p in placed
                ),
            )

    def record_print_positions(self, positions: Iterable[tuple[int, str, int]]) -> None:
        """Where placed letters landed in the finished print files: (sequence, file, first page)."""
        now = _now()
        with self._db:
            self._db.executemany(
                "UPDATE rows SET file = ?, first_page = ?, updated = ? WHERE stage = ? AND sequence = ?",
                ((file, first_page, now, Stage.PLACED, sequence) for sequence, file, first_page in positions),
            )

    def placed_as_laid_out(self) -> Iterator[PlacedLetter]:
        """Placed letters with pages counted over the render chunks, as the print files are made from."""
        return self.placed(page_column="layout_page")

    def unplace_from_chunk(self, chunk: int) -> int:
        """Send letters in this chunk and later ones back to `coded`, to be laid out again."""
        with self._db:
            cursor = self._db.execute(
                "UPDATE rows SET stage = ?, sequence = NULL, piece_id = NULL, file = NULL, first_page = NULL,"
                " layout_page = NULL, page_count = NULL, chunk = NULL, updated = ? WHERE stage = ? AND chunk >= ?",
                (Stage.CODED, _now(), Stage.PLACED, chunk),
            )
            return cursor.rowcount

    def render_position(self) -> tuple[int, int, int]:
        """(last chunk, last sequence, last page) placed so far; zeros before the first chunk."""
        row = self._db.execute(
            "SELECT MAX(chunk) AS chunk, MAX(sequence) AS sequence, MAX(layout_page + page_count - 1) AS page"
            " FROM rows WHERE stage = ?",
            (Stage.PLACED,),
        ).fetchone()
        return row["chunk"] or 0, row["sequence"] or 0, row["page"] or 0

    def placed_chunks(self) -> list[int]:
        rows = self._db.execute("SELECT DISTINCT chunk FROM rows WHERE stage = ? ORDER BY chunk", (Stage.PLACED,))
        return [r["chunk"] for r in rows]

    # -- carrying codes over a restart ---------------------------------------
    def carry_codes_from(self, previous: Journal) -> int:
        """Remember the previous job's pairs (and unanswered requests), by NHS number."""
        rows = previous._db.execute(
            "SELECT nhs_number, invitation_code, access_code, codes_expire, codes_issued, codes_requested,"
            " codes_expiry_part FROM rows WHERE invitation_code IS NOT NULL OR codes_requested IS NOT NULL"
        ).fetchall()
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO carried_codes (nhs_number, invitation_code, access_code, codes_expire,"
                " codes_issued, uncertain, codes_expiry_part) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (r["nhs_number"], r["invitation_code"], r["access_code"], r["codes_expire"], r["codes_issued"],
                     int(r["invitation_code"] is None),
                     # a held pair's problem travels with its expiry part (re-read when it is taken)
                     r["codes_expiry_part"] if r["codes_expire"] is None and r["invitation_code"] else None)
                    for r in rows
                ),
            )
        return len(rows)

    def carried_codes(self, nhs_number: str) -> tuple[CodePair | HeldPair | None, bool]:
        """A pair issued for this NHS number in the job this one replaced (held, when its expiry could not
        be read), and whether one may be unseen."""
        row = self._db.execute("SELECT * FROM carried_codes WHERE nhs_number = ?", (nhs_number,)).fetchone()
        if row is None:
            return None, False
        if row["uncertain"]:
            return None, True
        if row["codes_expire"] is None:
            return HeldPair(row["invitation_code"], row["access_code"], row["codes_expiry_part"] or "null",
                            "carried over from the job this one replaced, expiry not read"), False
        return _codes(row), False

    def hold_carried(self, input_row: int, pair: HeldPair) -> None:
        """After a restart: the replaced job held this patient's pair; this job holds it too."""
        with self._db:
            self._hold([(input_row, pair)], _now())
            self._add_event("carried", "held code pair carried over from the job this one replaced", input_row)

    def eligible_with_carried_codes(self) -> Iterator[tuple[int, str]]:
        """(input row, NHS number) of eligible rows whose number the replaced job asked codes for, a page
        at a time; a row that takes its pair while this is read is not given again."""
        query = ("SELECT rows.input_row, rows.nhs_number FROM rows JOIN carried_codes"
                 " ON carried_codes.nhs_number = rows.nhs_number WHERE rows.stage = ?")
        for r in self._pages(query, (Stage.ELIGIBLE,), ("rows.input_row",)):
            yield r["input_row"], r["nhs_number"]

    def mark_lost_response_from_previous_job(self, input_row: int) -> None:
        """The replaced job asked for this patient's codes and never saw an answer."""
        with self._db:
            self._db.execute(
                "UPDATE rows SET codes_requested = ? WHERE input_row = ? AND codes_requested IS NULL",
                (_now(), input_row),
            )

    def take_carried_codes(self, input_row: int, codes: CodePair) -> None:
        with self._db:
            self._db.execute(
                "UPDATE rows SET stage = ?, invitation_code = ?, access_code = ?, codes_expire = ?,"
                " codes_issued = ?, updated = ? WHERE input_row = ?",
                (Stage.CODED, codes.invitation_code, codes.access_code, codes.expires.isoformat(), _now(), _now(),
                 input_row),
            )
            self._add_event("carried", "code pair carried over from the job this one replaced", input_row)

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
    def iter_patients_at(self, stage: Stage) -> Iterator[PatientRow]:
        """Patients at `stage` in input order, a page at a time; one moved on while this is read is not
        given again (each page starts after the last row of the one before)."""
        for r in self._pages("SELECT input_row, patient FROM rows WHERE stage = ?", (stage,), ("input_row",)):
            yield _patient_from_json(r["patient"])

    def iter_eligible(self) -> Iterator[Eligible]:
        """Eligible patients, with their PKB ids, in input order, a page at a time."""
        query = "SELECT input_row, patient, pkb_id FROM rows WHERE stage = ?"
        for r in self._pages(query, (Stage.ELIGIBLE,), ("input_row",)):
            yield Eligible(_patient_from_json(r["patient"]), r["pkb_id"])

    def coded(self) -> list[tuple[PatientRow, CodePair]]:
        rows = self._db.execute(
            "SELECT * FROM rows WHERE stage = ? ORDER BY input_row", (Stage.CODED,)
        )
        return [(_patient_from_json(r["patient"]), _codes(r)) for r in rows]

    def coded_expiring_before(self, day: dt.date) -> list[tuple[int, dt.date]]:
        """Coded rows whose pair expires before `day`, issued by an earlier run (or job) than this one.

        A pair PKB has just issued is as fresh as PKB makes them; asking again would not help.
        """
        rows = self._db.execute(
            "SELECT input_row, codes_expire FROM rows WHERE stage = ? AND codes_expire < ?"
            " AND (codes_run IS NULL OR codes_run < ?) ORDER BY input_row",
            (Stage.CODED, day.isoformat(), self.run),
        )
        return [(r["input_row"], dt.date.fromisoformat(r["codes_expire"])) for r in rows]

    def reissues(self) -> dict[int, str]:
        """input row → why its printed pair is a second one."""
        rows = self._db.execute("SELECT input_row, reissue FROM rows WHERE reissue IS NOT NULL")
        return {r["input_row"]: r["reissue"] for r in rows}

    def last_update(self) -> str | None:
        rows = self._db.execute("SELECT MAX(updated) FROM rows").fetchone()[0]
        events = self._db.execute("SELECT MAX(time) FROM events").fetchone()[0]
        return max((t for t in (rows, events) if t), default=None)

    def placed(self, page_column: str = "first_page") -> Iterator[PlacedLetter]:
        """Placed letters in sequence order, a page at a time (the journal may be written in between)."""
        for r in self._pages("SELECT * FROM rows WHERE stage = ?", (Stage.PLACED,), ("sequence",)):
            yield _placed_letter(r, page_column)

    # -- streaming: one page of rows in memory at a time, whatever the job's size ----------------
    def count_at(self, stage: Stage) -> int:
        return self._db.execute("SELECT COUNT(*) FROM rows WHERE stage = ?", (stage,)).fetchone()[0]

    def coded_in_print_order(self, order: str) -> Iterator[tuple[PatientRow, CodePair]]:
        """Coded rows in `mailsort.in_print_order`'s order, a page at a time; a row placed or
        excluded while this is being read is not given again, nor is one given twice."""
        keys: tuple[str, ...] = ("input_row",)
        if order == "postcode":
            with self._db:  # the key never changes once made: a row's postcode is fixed at intake
                self._db.execute(
                    "UPDATE rows SET print_key = print_order_key(patient)"
                    " WHERE stage = ? AND print_key IS NULL",
                    (Stage.CODED,),
                )
            keys = ("print_key", "input_row")  # ties keep input order, as the stable sort does
        for r in self._pages("SELECT * FROM rows WHERE stage = ?", (Stage.CODED,), keys):
            yield _patient_from_json(r["patient"]), _codes(r)

    def placed_for_manifest(self) -> Iterator[tuple[PlacedLetter, PieceRecord | None, str | None]]:
        """The manifest's rows: each placed letter, in sequence order, with where its envelope landed
        (if the print files recorded it) and why its pair is a second one (if it is)."""
        query = (
            "SELECT rows.*, pieces.sequence AS piece_sequence, pieces.file AS piece_file,"
            " pieces.first_page AS piece_first_page, pieces.sheet_count, pieces.postage_class, pieces.marks"
            " FROM rows LEFT JOIN pieces ON pieces.sequence = rows.sequence WHERE rows.stage = ?"
        )
        for r in self._pages(query, (Stage.PLACED,), ("rows.sequence",)):
            piece = None
            if r["piece_sequence"] is not None:
                piece = PieceRecord(r["piece_sequence"], r["piece_file"], r["piece_first_page"], r["sheet_count"],
                                    r["postage_class"], tuple(json.loads(r["marks"])))
            yield _placed_letter(r), piece, r["reissue"]

    def iter_exclusions(self) -> Iterator[Exclusion]:
        """Excluded rows in input order, a page at a time."""
        for r in self._pages("SELECT * FROM rows WHERE stage = ?", (Stage.EXCLUDED,), ("input_row",)):
            yield _exclusion(r)

    def count_reissues(self, stage: Stage | None = None) -> dict[str, int]:
        """Why pairs are second ones → how many, over every row or those at `stage`; sorted by why."""
        rows = self._db.execute(
            "SELECT reissue, COUNT(*) AS n FROM rows WHERE reissue IS NOT NULL AND (? IS NULL OR stage = ?)"
            " GROUP BY reissue ORDER BY reissue",
            (stage, stage),
        )
        return {r["reissue"]: r["n"] for r in rows}

    def has_pieces(self) -> bool:
        return self._db.execute("SELECT 1 FROM pieces LIMIT 1").fetchone() is not None

    def _pages(self, query: str, params: tuple, keys: tuple[str, ...]) -> Iterator[sqlite3.Row]:
        """The rows of `query` (a SELECT ending in a WHERE clause) in order of `keys`, which must be
        unique together, read `PAGE_ROWS` at a time: each page starts after the last row of the
        one before (keyset paging), so no statement stays open while the caller writes."""
        size, order = PAGE_ROWS, ", ".join(keys)
        after, last = "", ()
        while True:
            rows = self._db.execute(f"{query}{after} ORDER BY {order} LIMIT ?", (*params, *last, size)).fetchall()
            yield from rows
            if len(rows) < size:
                return
            last = tuple(rows[-1][key.rpartition(".")[2]] for key in keys)
            after = f" AND ({order}) > ({', '.join('?' * len(keys))})"

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

    # -- deliveries to the mail house ---------------------------------------
    def record_delivery(self, delivery: Delivery) -> None:
        files = json.dumps([asdict(f) for f in delivery.files])
        with self._db:
            self._db.executescript(_DELIVERIES_SCHEMA)
            self._db.execute(
                "INSERT INTO deliveries (started, finished, destination, outcome, host_key, files, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (delivery.started.isoformat(timespec="seconds"), delivery.finished.isoformat(timespec="seconds"),
                 delivery.destination, delivery.outcome, delivery.host_key, files, delivery.detail),
            )

    def deliveries(self) -> list[Delivery]:
        """Every delivery attempt of this job, oldest first (for `status` and for `deliver` itself)."""
        with self._db:
            self._db.executescript(_DELIVERIES_SCHEMA)
        rows = self._db.execute("SELECT * FROM deliveries ORDER BY id")
        return [
            Delivery(
                started=dt.datetime.fromisoformat(r["started"]),
                finished=dt.datetime.fromisoformat(r["finished"]),
                destination=r["destination"],
                outcome=DeliveryOutcome(r["outcome"]),
                host_key=r["host_key"],
                files=tuple(DeliveredFile(**f) for f in json.loads(r["files"])),
                detail=r["detail"],
            )
            for r in rows
        ]

    # -- purge ------------------------------------------------------------
    def erase_codes(self) -> int:
        """Set every code to NULL and rebuild the file, so no free page keeps an old value.
        Gives the number of rows whose codes were erased."""
        self._db.execute("PRAGMA secure_delete = ON")  # zero freed content as it is freed
        with self._db:
            erased = self._db.execute(
                "UPDATE rows SET invitation_code = NULL, access_code = NULL, updated = ?"
                " WHERE invitation_code IS NOT NULL OR access_code IS NOT NULL",
                (_now(),),
            ).rowcount
        self._db.execute("VACUUM")
        return erased


@dataclass(frozen=True)
class PieceRecord:
    sequence: int
    file: str
    first_page: int
    sheet_count: int
    postage_class: str
    marks: tuple[str, ...]


def _placed_letter(row: sqlite3.Row, page_column: str = "first_page") -> PlacedLetter:
    letter = Letter(row["sequence"], row["piece_id"], _patient_from_json(row["patient"]), _codes(row))
    return PlacedLetter(letter, row["file"], row[page_column], row["page_count"])


def _exclusion(row: sqlite3.Row) -> Exclusion:
    return Exclusion(row["input_row"], row["customer_ref"], row["nhs_number"], Reason(row["reason"]), row["detail"])


def _print_order_key(patient: str) -> bytes:
    # from the stored patient, not SQLite's json_extract, which would cut a postcode at a NUL
    return postcode_order_key(json.loads(patient)["postcode"])


def _held_pair(row: sqlite3.Row) -> HeldPair:
    return HeldPair(row["invitation_code"], row["access_code"], row["codes_expiry_part"] or "null", row["detail"] or "")


def _codes(row: sqlite3.Row) -> CodePair:
    return CodePair(row["invitation_code"], row["access_code"], dt.date.fromisoformat(row["codes_expire"]))


def _patient_json(patient: PatientRow) -> str:
    # not dataclasses.asdict: it deep-copies every value, and the tuple of fields it makes for each row
    # lands on CPython's free list, which then holds up to 2,000 of them for the rest of the job
    data = {name: getattr(patient, name) for name in _PATIENT_FIELDS}
    data["date_of_birth"] = patient.date_of_birth.isoformat() if patient.date_of_birth else None
    return json.dumps(data, ensure_ascii=False)


_PATIENT_FIELDS = tuple(f.name for f in fields(PatientRow))


def _patient_from_json(text: str) -> PatientRow:
    data = json.loads(text)
    dob = data.pop("date_of_birth")
    data["address_lines"] = tuple(data["address_lines"])
    return PatientRow(date_of_birth=dt.date.fromisoformat(dob) if dob else None, **data)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
