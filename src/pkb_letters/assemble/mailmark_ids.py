"""Mailmark item IDs: a counter per supply chain ID, shared by every job on this machine.

Takes a state folder (the job file's ``[mailmark] state_dir``, else the user's data folder) and a
piece; gives the piece its 8-digit item ID. Royal Mail needs an item ID to be unique for at least
90 days per supply chain ID, so every ID handed out is kept with its date, an ID used within that
time is never handed out again (the counter wraps after 99,999,999 and stops rather than reuse
one), and a piece asked about again (a resumed or re-assembled job) gets the ID it already has.
One SQLite file, each allocation one immediate transaction: two jobs running at once each get
their own IDs.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from pkb_letters.errors import ConfigError

STATE_FILE = "mailmark-items.sqlite"
ITEM_IDS = 100_000_000  # 8 digits

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (supply_chain_id TEXT PRIMARY KEY, next_item INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    supply_chain_id TEXT NOT NULL,
    item_id         INTEGER NOT NULL,
    job_id          TEXT NOT NULL,
    piece_id        TEXT NOT NULL,
    issued          TEXT NOT NULL,
    PRIMARY KEY (supply_chain_id, item_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS items_by_piece ON items (supply_chain_id, piece_id);
"""


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where item IDs are counted when the job file does not say: the user's data folder (XDG)."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pkb-letters"


class ItemIds:
    """The item-ID counters in `state_dir`. Use as a context manager."""

    def __init__(self, state_dir: Path, reuse_days: int = 90) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = state_dir / STATE_FILE
        self.reuse_days = reuse_days
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.executescript(_SCHEMA)

    def allocate(self, supply_chain_id: str, job_id: str, piece_id: str, today: dt.date) -> int:
        """The piece's item ID: the one it was given before, else the counter's next one not used
        within `reuse_days` of `today`."""
        self._db.execute("BEGIN IMMEDIATE")  # one writer at a time across processes
        try:
            found = self._db.execute(
                "SELECT item_id FROM items WHERE supply_chain_id = ? AND piece_id = ?", (supply_chain_id, piece_id)
            ).fetchone()
            item = found[0] if found else self._next_free(supply_chain_id, today)
            if not found:
                self._db.execute(
                    "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)",
                    (supply_chain_id, item, job_id, piece_id, today.isoformat()),
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return int(item)

    def _next_free(self, supply_chain_id: str, today: dt.date) -> int:
        row = self._db.execute(
            "SELECT next_item FROM counters WHERE supply_chain_id = ?", (supply_chain_id,)
        ).fetchone()
        item = row[0] if row else 0
        used = self._db.execute(
            "SELECT issued FROM items WHERE supply_chain_id = ? AND item_id = ?", (supply_chain_id, item)
        ).fetchone()
        if used and (today - dt.date.fromisoformat(used[0])).days < self.reuse_days:
            raise ConfigError(
                f"Mailmark item ID {item:08d} of supply chain {supply_chain_id} was used on {used[0]}, less than "
                f"{self.reuse_days} days ago: every item ID is in use; ask Royal Mail for another supply chain ID"
            )
        self._db.execute("INSERT OR REPLACE INTO counters VALUES (?, ?)", (supply_chain_id, (item + 1) % ITEM_IDS))
        return int(item)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ItemIds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
