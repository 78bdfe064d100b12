"""Purge: once the mail house confirms dispatch, remove the parts of a job that are credentials.

Takes a finished job folder and the date the mail house confirmed it posted the letters;
gives a `PurgeRecord`, written to `purge.json` and to the journal. Removes:

- every code pair from the journal (`job.sqlite`): the columns are set to NULL with
  SQLite's `secure_delete` on, then the file is rebuilt (VACUUM), so no free page
  still holds an old value;
- every PDF in the folder (`letters.pdf`, and chunk files a crashed run left in `work/`):
  the printed codes live there; and the hand-off folder's letter texts (`handoff/*.txt`, `*.brf`).

Keeps `manifest.json`, `manifest.csv`, `exceptions.csv` and the journal without codes:
who was sent a letter, when, and which codes' expiry date, for the customer's audit.
Refuses (`PurgeRefused`, nothing touched) unless the folder is a finished job whose
journal and manifest agree.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pkb_letters.errors import PurgeRefused
from pkb_letters.files import atomic_writer, sha256_of
from pkb_letters.job.journal import JOURNAL_NAME, Journal
from pkb_letters.job.manifest import MANIFEST_JSON
from pkb_letters.records import DeletedFile, PurgeRecord
from pkb_letters.variants import HANDOFF_DIR

PURGE_RECORD = "purge.json"
WORK_DIR = "work"


def purge_job(job_dir: Path, dispatched_on: dt.date, today: dt.date | None = None) -> PurgeRecord:
    """Erase codes, delete PDFs, record the purge. See the module docstring."""
    manifest = confirm_finished_job(job_dir)
    job = manifest["job"]
    _check_dispatch_date(dispatched_on, dt.date.fromisoformat(job["created"][:10]), today or dt.date.today())
    to_delete = _pdfs(job_dir)
    listed = {entry["name"]: entry.get("sha256") for entry in job.get("files", [])}
    deleted = tuple(_describe(job_dir, path, listed) for path in to_delete)  # digests before anything goes

    with Journal.in_dir(job_dir) as journal:
        erased = journal.codes.erase_codes()
        for path in to_delete:
            path.unlink()
        if (job_dir / WORK_DIR).is_dir() and not any((job_dir / WORK_DIR).iterdir()):
            (job_dir / WORK_DIR).rmdir()
        record = PurgeRecord(
            job_id=job["id"],
            purged_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            dispatched_on=dispatched_on.isoformat(),
            purged_by=_user(),
            codes_erased=erased,
            deleted_files=deleted,
            kept=tuple(sorted({p.name for p in job_dir.iterdir() if p.is_file()} | {PURGE_RECORD})),
        )
        _write_record(job_dir, record)
        journal.job.record_purge(record)
    return record


def confirm_finished_job(job_dir: Path) -> dict[str, Any]:
    """The job's manifest, once the folder is shown to be a finished, not yet purged, job."""
    journal_path, manifest_path = job_dir / JOURNAL_NAME, job_dir / MANIFEST_JSON
    if not journal_path.is_file() or not manifest_path.is_file():
        raise PurgeRefused(
            f"{job_dir} is not a finished pkb-letters job (it needs both {JOURNAL_NAME} and {MANIFEST_JSON}); "
            "nothing was removed"
        )
    job_id, purged_at, stuck = _read_journal(journal_path)
    manifest = _read_manifest(manifest_path)
    if purged_at:
        raise PurgeRefused(f"job {job_id} in {job_dir} was already purged at {purged_at}")
    if manifest.get("job", {}).get("id") != job_id or not job_id:
        raise PurgeRefused(
            f"{MANIFEST_JSON} (job {manifest.get('job', {}).get('id')!r}) and {JOURNAL_NAME} "
            f"(job {job_id!r}) in {job_dir} are not the same job; nothing was removed"
        )
    if stuck:
        raise PurgeRefused(f"job {job_id} did not finish ({stuck} rows mid-way); nothing was removed")
    return manifest


def _read_journal(path: Path) -> tuple[str | None, str | None, int]:
    """The job's id, when it was purged, and how many rows are neither placed nor excluded; read-only,
    so a file that is not our journal is left exactly as it was."""
    try:
        with Journal(path, read_only=True) as journal:
            return journal.job.id, journal.job.purged_at, journal.rows.count_unfinished()
    except sqlite3.Error as exc:
        raise PurgeRefused(f"{path} is not a pkb-letters job journal ({exc}); nothing was removed") from exc


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PurgeRefused(f"cannot read {path}: {exc}; nothing was removed") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("job"), dict):
        raise PurgeRefused(f"{path} is not a pkb-letters manifest; nothing was removed")
    return manifest


def _check_dispatch_date(dispatched_on: dt.date, created: dt.date, today: dt.date) -> None:
    if dispatched_on > today:
        raise PurgeRefused(f"dispatch date {dispatched_on} is in the future; purge once the letters are posted")
    if dispatched_on < created:
        raise PurgeRefused(f"dispatch date {dispatched_on} is before the job was made ({created})")


def _pdfs(job_dir: Path) -> list[Path]:
    # and the hand-off folder's letter texts: the job may have let them carry the codes
    handoff = [*(job_dir / HANDOFF_DIR).glob("*.txt"), *(job_dir / HANDOFF_DIR).glob("*.brf")]
    return sorted([*job_dir.glob("*.pdf"), *(job_dir / WORK_DIR).glob("*.pdf"), *handoff])


def _describe(job_dir: Path, path: Path, listed: dict[str, str | None]) -> DeletedFile:
    name = path.relative_to(job_dir).as_posix()
    digest = sha256_of(path)
    matches = (listed[name] == digest) if name in listed else None
    return DeletedFile(name, path.stat().st_size, digest, matches)


def _write_record(job_dir: Path, record: PurgeRecord) -> None:
    with atomic_writer(job_dir / PURGE_RECORD, "w", encoding="utf-8") as handle:
        json.dump(asdict(record), handle, indent=2)
        handle.write("\n")


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"
