"""The job journal: the single source of truth for one job, in `DIR/job.sqlite`.

It takes what each stage decided (rows read, patients resolved, codes issued, letters placed,
rows excluded) and gives it back to the next stage and to the output writers. The PDF and
manifests are derived from it, never the reverse.

`Journal` opens the file and composes its parts, each over one concern and all over one
connection: `rows` (intake and resolve: each input row's `Stage`), `codes` (requests, pairs,
re-issues, carried pairs, erasing), `placements` (render and assemble), `deliveries`, `events`,
`reconciliations` (the inserter's results: reprints and pulls) and `job` (the job's identity,
fingerprint, runs, finished stages, print files and purge).
Every write is one transaction; WAL with full sync survives a power cut.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from pkb_letters.errors import PkbLettersError
from pkb_letters.job.codes import Codes
from pkb_letters.job.deliveries import Deliveries
from pkb_letters.job.events import Events
from pkb_letters.job.mailmarks import SCHEMA as MAILMARKS_SCHEMA
from pkb_letters.job.mailmarks import Mailmarks
from pkb_letters.job.placements import Placements
from pkb_letters.job.reconciliations import SCHEMA as RECONCILIATIONS_SCHEMA
from pkb_letters.job.reconciliations import Reconciliations
from pkb_letters.job.rows import Rows
from pkb_letters.job.sql import Db
from pkb_letters.job.state import JobState
from pkb_letters.records import Exclusion, PatientRow, Step

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

# Added on opening, so older journals gain them too: the print order's sort key (filled in when
# first asked for), the `expiry` part of a held pair's answer (see `Stage.HELD`), and the indexes
# the streaming readers page through.
_STREAMING_COLUMNS = {"print_key": "BLOB", "codes_expiry_part": "TEXT"}
_CARRIED_COLUMNS = {"codes_expiry_part": "TEXT"}
_STREAMING_INDEXES = """
CREATE INDEX IF NOT EXISTS rows_print_order ON rows (stage, print_key, input_row);
CREATE INDEX IF NOT EXISTS rows_sequence ON rows (stage, sequence);
"""


class Journal:
    """One job's state. Use as a context manager; every write commits."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """Open (and, unless `read_only`, create or bring up to date) the journal at `path`. Read-only,
        the file is left exactly as it was, even one that turns out not to be a journal; its
        `sqlite3.Error` then comes from the first read."""
        self.path = path
        if read_only:
            connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        else:
            connection = _open_for_writing(path)
        connection.row_factory = sqlite3.Row
        self.db = Db(connection)
        self.events = Events(self.db)
        self.job = JobState(self.db)
        self.rows = Rows(self.db)
        self.codes = Codes(self.db, self.events)
        self.placements = Placements(self.db)
        self.deliveries = Deliveries(self.db)
        self.mailmarks = Mailmarks(self.db)
        self.reconciliations = Reconciliations(self.db)

    @classmethod
    def in_dir(cls, out_dir: Path) -> Journal:
        return cls(out_dir / JOURNAL_NAME)

    def begin_run(self) -> int:
        """Count this run: pairs issued by an earlier run are the ones re-checked for expiry."""
        self.codes.run = self.job.begin_run()
        return self.codes.run

    def record_intake(self, rows: Iterable[PatientRow | Exclusion]) -> tuple[int, int]:
        """The list's rows, and intake marked finished, in one transaction; gives (rows, excluded)."""
        with self.db.transaction():
            counts = self.rows.record_intake_rows(rows)
            self.job.mark_done(Step.INTAKE)
        return counts

    def last_update(self) -> str | None:
        """When a row moved or an event happened last."""
        return max((t for t in (self.rows.last_update(), self.events.last_time()) if t), default=None)

    def close(self) -> None:
        # Back to a single file at rest (WAL is only for the run): a reader, a copy, `purge` or
        # a restart's rename then sees the whole journal in job.sqlite, with no -wal beside it.
        try:
            self.db.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error:
            pass  # another connection is open (or this one is read-only); the last writer folds the log back
        self.db.connection.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _open_for_writing(path: Path) -> sqlite3.Connection:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # codes live here: owner only
    os.fchmod(fd, 0o600)  # whatever the umask, and even if the file was there before
    os.close(fd)
    try:
        connection = sqlite3.connect(path)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.executescript(_SCHEMA)
        connection.executescript(MAILMARKS_SCHEMA)
        connection.executescript(RECONCILIATIONS_SCHEMA)
        _add_streaming_schema(connection)
    except sqlite3.Error as exc:
        raise PkbLettersError(f"cannot open job journal {path}: {exc}") from exc
    return connection


def _add_streaming_schema(connection: sqlite3.Connection) -> None:
    with connection:
        for table, added in (("rows", _STREAMING_COLUMNS), ("carried_codes", _CARRIED_COLUMNS)):
            columns = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
            for name, kind in added.items():
                if name not in columns:
                    connection.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    connection.executescript(_STREAMING_INDEXES)
