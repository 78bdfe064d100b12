"""The journal's one SQLite connection, shared by its parts (`Rows`, `Codes`, `Placements`, ...).

Takes an open `sqlite3.Connection`; gives transactions that nest (a part's write inside
another's joins it, so a composed write commits once or not at all) and keyset paging, which
reads any number of rows `PAGE_ROWS` at a time.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

# Rows read back per query by the streaming readers: memory holds one page, whatever the job's size.
PAGE_ROWS = 500


class Db:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self._depth = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction; one begun inside it joins it, and only the outermost commits."""
        self._depth += 1
        try:
            if self._depth > 1:
                yield
            else:
                with self.connection:
                    yield
        finally:
            self._depth -= 1

    def execute(self, sql: str, params: Iterable = ()) -> sqlite3.Cursor:
        return self.connection.execute(sql, tuple(params))

    def executemany(self, sql: str, params: Iterable[Sequence]) -> sqlite3.Cursor:
        return self.connection.executemany(sql, params)

    def pages(self, query: str, params: tuple, keys: tuple[str, ...]) -> Iterator[sqlite3.Row]:
        """The rows of `query` (a SELECT ending in a WHERE clause) in order of `keys`, which must be
        unique together, read `PAGE_ROWS` at a time: each page starts after the last row of the
        one before (keyset paging), so no statement stays open while the caller writes."""
        size, order = PAGE_ROWS, ", ".join(keys)
        after, last = "", ()
        while True:
            rows = self.execute(f"{query}{after} ORDER BY {order} LIMIT ?", (*params, *last, size)).fetchall()
            yield from rows
            if len(rows) < size:
                return
            last = tuple(rows[-1][key.rpartition(".")[2]] for key in keys)
            after = f" AND ({order}) > ({', '.join('?' * len(keys))})"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
