"""A template folder's fingerprint: each file's SHA-256, and one digest over them all.

Takes a template folder; gives `template_files` (path inside the folder -> SHA-256, in the order the
digest reads them) and `template_digest` over such a mapping. The job's fingerprint, the renderer's
cache key and the sign-offs (`preview/approvals.py`) all use it, so a template means one digest
everywhere.

The sign-off record, `approvals.json` at the top of the folder, is left out: it travels with the
template (a copy of the folder, its version history) but is not part of what is printed, and an
approval written into the folder must not change the digest it approves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from pkb_letters.files import sha256_of

APPROVALS_FILE = "approvals.json"


def template_files(directory: Path) -> dict[str, str]:
    """Every file under `directory` but its approvals record, by path inside it (POSIX form)."""
    approvals = directory / APPROVALS_FILE
    paths = sorted(p for p in directory.rglob("*") if p.is_file() and p != approvals)
    return {path.relative_to(directory).as_posix(): sha256_of(path) for path in paths}


def template_digest(files: Mapping[str, str]) -> str:
    """One SHA-256 over the files' paths and digests, in path order: recomputable from the mapping alone."""
    digest = hashlib.sha256()
    for inside in sorted(files, key=PurePosixPath):
        digest.update(inside.encode() + b"\0")
        digest.update(files[inside].encode())
    return digest.hexdigest()


def directory_digest(directory: Path) -> str:
    return template_digest(template_files(directory))
