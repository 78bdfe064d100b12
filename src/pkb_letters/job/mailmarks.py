"""The journal's `mailmarks` table: the Mailmark string printed on each piece, by sequence.

Takes what the assemble stage decided for each piece (its Mailmark string, and in supplied mode the
mail house's sort sequence); gives it back to the manifest, `mailmark-items.csv` and a resumed
run, which prints the same string again rather than asking for a new item ID.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pkb_letters.job.sql import Db

SCHEMA = """
CREATE TABLE IF NOT EXISTS mailmarks (
    sequence      INTEGER PRIMARY KEY,
    piece_id      TEXT NOT NULL,
    barcode       TEXT NOT NULL,
    sort_sequence TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class PrintedMailmark:
    sequence: int
    piece_id: str
    barcode: str
    sort_sequence: str = ""  # supplied mode: the mail house's sortation order, as it gave it


class Mailmarks:
    def __init__(self, db: Db) -> None:
        self._db = db

    def record(self, printed: Iterable[PrintedMailmark]) -> None:
        with self._db.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO mailmarks VALUES (?, ?, ?, ?)",
                ((m.sequence, m.piece_id, m.barcode, m.sort_sequence) for m in printed),
            )

    def all(self) -> Iterator[PrintedMailmark]:
        """Every piece's Mailmark in sequence order (none for a job without, or an older journal)."""
        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'mailmarks'").fetchone():
            return
        for r in self._db.pages("SELECT * FROM mailmarks WHERE 1", (), ("sequence",)):
            yield PrintedMailmark(r["sequence"], r["piece_id"], r["barcode"], r["sort_sequence"])

    def by_sequence(self) -> dict[int, PrintedMailmark]:
        return {m.sequence: m for m in self.all()}
