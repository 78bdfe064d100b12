"""The job's own facts, kept in the journal's key/value `settings` table and read back typed:
who the job is (`JobIdentity`), what must not change before a resume (`Fingerprint`), how many
runs it has had, which stages are finished, the print files it made, their read-back, the sign-off
its letters were printed under, and its purge.

Takes and gives records; the keys they are stored under are this module's business. Stages are
marked finished under their progress-bar names (`records.Step`); journals written before that
used other words for two of them, which are read as well.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from pkb_letters.job.sql import Db, now
from pkb_letters.records import PrintFile, PurgeRecord, Step

# Done-markers as journals written before the stages had one vocabulary name them.
_FORMER_NAMES = {Step.FIT: "address-fit", Step.MANIFEST: "job"}


@dataclass(frozen=True)
class JobIdentity:
    id: str
    created: str
    template: str
    api: str
    patients: str  # the list's path as given
    letter_date: dt.date  # a resumed job keeps it, so all its letters carry one date
    replaces: str | None = None  # the archived journal of the job this one replaced

    def manifest_fields(self) -> dict[str, str]:
        """The part of the identity the manifest's `job` record starts from."""
        return {"id": self.id, "created": self.created, "template": self.template, "api": self.api}


@dataclass(frozen=True)
class Fingerprint:
    """What must not change between a job's first run and a resume (digests and settings as text)."""

    input_sha256: str
    template_sha256: str
    api: str
    letter_settings: str
    print: str
    rules: str

    def changed_from(self, other: Fingerprint) -> list[str]:
        """The names of the fields that differ, in field order."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name)]


class JobState:
    def __init__(self, db: Db) -> None:
        self._db = db

    def _get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set(self, values: dict[str, str]) -> None:
        with self._db.transaction():
            self._db.executemany("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", values.items())

    # -- identity and fingerprint ----------------------------------------------------------
    def start(self, identity: JobIdentity, fingerprint: Fingerprint) -> None:
        fields = {**dataclasses.asdict(fingerprint), **dataclasses.asdict(identity)}
        fields["letter_date"] = identity.letter_date.isoformat()
        self._set({key: value for key, value in fields.items() if value is not None})

    @property
    def id(self) -> str | None:
        """The job's id; None in a journal the job never started in."""
        return self._get("id")

    def identity(self) -> JobIdentity | None:
        """Who the job is; None in a journal the job never started in."""
        stored = self._all()
        if "id" not in stored:
            return None
        return JobIdentity(
            stored["id"],
            stored["created"],
            stored["template"],
            stored["api"],
            stored["patients"],
            dt.date.fromisoformat(stored["letter_date"]),
            stored.get("replaces"),
        )

    def fingerprint(self) -> Fingerprint:
        stored = self._all()
        return Fingerprint(**{f.name: stored.get(f.name, "") for f in dataclasses.fields(Fingerprint)})

    def _all(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM settings").fetchall())

    # -- runs and finished stages ----------------------------------------------------------
    def begin_run(self) -> int:
        """Count this run and give its number."""
        with self._db.transaction():
            runs = int(self._get("runs") or "0") + 1
            self._set({"runs": str(runs)})
        return runs

    def mark_done(self, step: Step) -> None:
        self._set({f"done:{step}": now()})

    def is_done(self, step: Step) -> bool:
        names = [f"done:{name}" for name in (step, _FORMER_NAMES.get(step)) if name]
        query = f"SELECT 1 FROM settings WHERE key IN ({', '.join('?' * len(names))})"
        return self._db.execute(query, names).fetchone() is not None

    def undo_done(self, step: Step) -> None:
        with self._db.transaction():
            for name in (step, _FORMER_NAMES.get(step)):
                if name:
                    self._db.execute("DELETE FROM settings WHERE key = ?", (f"done:{name}",))

    @property
    def finished(self) -> bool:
        """The job's manifests are written: a rerun only writes them again."""
        return self.is_done(Step.MANIFEST)

    # -- what it made ----------------------------------------------------------------------
    def record_print_files(self, files: list[PrintFile]) -> None:
        self._set({"print_files": json.dumps([dataclasses.asdict(f) for f in files])})

    def print_files(self) -> list[PrintFile]:
        return [PrintFile(**f) for f in json.loads(self._get("print_files") or "[]")]

    def record_approval(self, approval: dict[str, str]) -> None:
        """The sign-off (who, when, the template's digest) the job's letters are printed under."""
        self._set({"approval": json.dumps(approval)})

    def approval(self) -> dict[str, str] | None:
        stored = self._get("approval")
        return json.loads(stored) if stored else None

    def record_template_prints_qr(self, prints_qr: bool) -> None:
        """Whether the job's template prints the QR code (found by its trial letter, before any code)."""
        self._set({"template_prints_qr": json.dumps(prints_qr)})

    def template_prints_qr(self) -> bool:
        """What the read-back expects of every letter's first page; a job from before it was recorded: yes."""
        stored = self._get("template_prints_qr")
        return True if stored is None else bool(json.loads(stored))

    def record_readback(self, outcome: dict[str, Any]) -> None:
        """The run's read-back of every letter's credentials: {"ok": bool, "failed": [piece ids]}."""
        self._set({"readback": json.dumps(outcome)})

    def readback(self) -> dict[str, Any] | None:
        """The last read-back's outcome; None if the job's letters were never read back."""
        stored = self._get("readback")
        return None if stored is None else json.loads(stored)

    def record_purge(self, record: PurgeRecord) -> None:
        self._set({"purged_at": record.purged_at, "purge_record": json.dumps(dataclasses.asdict(record))})

    @property
    def purged_at(self) -> str | None:
        return self._get("purged_at")
