"""The journal's `events` table: what happened to the job besides rows moving on (why it stopped,
a restart, a pair re-issued or carried over), for `status` and for the audit."""

from __future__ import annotations

import sqlite3

from pkb_letters.job.sql import Db, now


class Events:
    def __init__(self, db: Db) -> None:
        self._db = db

    def add(self, kind: str, detail: str, input_row: int | None = None) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO events (time, kind, input_row, detail) VALUES (?, ?, ?, ?)",
                (now(), kind, input_row, detail),
            )

    def of_kind(self, kind: str) -> list[sqlite3.Row]:
        """Events of `kind`, oldest first; each has `time`, `kind`, `input_row` and `detail`."""
        return list(self._db.execute("SELECT * FROM events WHERE kind = ? ORDER BY id", (kind,)))

    def last_time(self) -> str | None:
        return self._db.execute("SELECT MAX(time) FROM events").fetchone()[0]
