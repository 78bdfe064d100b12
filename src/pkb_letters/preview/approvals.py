"""Sign-offs: who approved which template and page settings, kept in the template's own folder.

Takes a template folder and the settings that shape its pages; gives
- `Subject`: what a page is made from (each template file's SHA-256, their digest, the settings),
  always computed from the folder and the settings in hand, never read from a file;
- `PreviewRecord`: what a preview writes of itself (`preview.json`) for `pkb-letters approve`;
- `approve`: an `Approval` (who, when, the note, the subject, the sample set, the SHA-256 of
  `preview.pdf` and `proof.pdf`) appended to the template's `approvals.json`;
- `approval_for_run`: the latest approval covering what a run is about to print, or, when the job
  requires one, an `ApprovalError` naming what changed since the latest approval.

An approval covers a subject only when the files it lists digest to the digest it states, and both
equal the folder's as recomputed now, and its settings equal the run's: a hand-edited digest covers
nothing. `approvals.json` is a record kept with the template (and in its history), not a
signature: whoever can change the template can change it too, and review of the template's
history is what shows who did.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pkb_letters.assemble.print_options import PrintOptions, intent_profile
from pkb_letters.config import LetterSettings, RuleSettings
from pkb_letters.errors import ApprovalError
from pkb_letters.files import sha256_of, write_atomic
from pkb_letters.render.template_digest import APPROVALS_FILE, template_digest, template_files

PREVIEW_RECORD = "preview.json"
logger = logging.getLogger(__name__)
_ABOUT = (
    "Sign-offs of this template's letters, appended by `pkb-letters approve`; a run with "
    "[rules] require_approval prints only a template and settings one of them covers. Keep this file "
    "with the template and commit it with it."
)


def page_settings(letter: LetterSettings, rules: RuleSettings, options: PrintOptions) -> dict[str, str]:
    """The settings that shape a printed page, as text, by name. Not the letter date (a run's own
    day), nor sorting, splitting, postage or the PKB checks: none of them changes what a page shows."""
    settings = {f"letter.{k}": str(v) for k, v in dataclasses.asdict(letter).items() if k != "date"}
    settings["rules.international_post"] = _text(rules.international_post)
    for part in dataclasses.fields(options.envelope):
        settings[f"envelope.{part.name}"] = _text(getattr(options.envelope, part.name))
    settings["print.duplex"] = _text(options.duplex)
    settings["print.pdf_variant"] = options.pdf_variant
    settings["print.marks"] = _text(options.marks)
    settings["print.output_profile_sha256"] = sha256_of(intent_profile(options))
    return settings


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return " ".join(f"{f.name}={_text(getattr(value, f.name))}" for f in dataclasses.fields(value))
    return str(value)


@dataclass(frozen=True)
class Subject:
    """What the pages are made from: the template's files and the settings that shape them."""

    template_sha256: str
    template_files: dict[str, str]
    settings: dict[str, str]

    @classmethod
    def of(cls, template_dir: Path, settings: Mapping[str, str]) -> Subject:
        files = template_files(template_dir.resolve())
        return cls(template_digest(files), files, dict(settings))


@dataclass(frozen=True)
class Approval:
    by: str
    at: str  # ISO 8601, UTC
    note: str
    template_sha256: str
    template_files: dict[str, str]
    settings: dict[str, str]
    samples: dict[str, Any] = field(default_factory=dict)
    preview_pdf_sha256: str = ""
    proof_pdf_sha256: str = ""

    @property
    def consistent(self) -> bool:
        """Its stated digest is the digest of the files it lists (else the file was edited by hand)."""
        return template_digest(self.template_files) == self.template_sha256

    def covers(self, subject: Subject) -> bool:
        return (
            self.consistent
            and self.template_sha256 == subject.template_sha256
            and self.template_files == subject.template_files
            and self.settings == subject.settings
        )

    def summary(self) -> dict[str, str]:
        """What a manifest and `status` say of it."""
        return {"by": self.by, "at": self.at, "template_sha256": self.template_sha256, "note": self.note}

    def said(self) -> str:
        return f"{self.by} on {self.at}" + (f" ({self.note})" if self.note else "")


def read_approvals(template_dir: Path) -> list[Approval]:
    """The template's approvals, oldest first; none when it has no approvals file."""
    path = template_dir / APPROVALS_FILE
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["approvals"]
        return [_checked(Approval(**entry)) for entry in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ApprovalError(f"{path} cannot be read as approvals: {exc}") from exc


def _checked(approval: Approval) -> Approval:
    """Raises TypeError for an entry not of the shape `approve` writes (a file edited by hand)."""
    texts = [approval.by, approval.at, approval.note, approval.template_sha256]
    maps = [approval.template_files, approval.settings]
    if not all(isinstance(t, str) for t in texts) or not all(
        isinstance(m, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in m.items()) for m in maps
    ):
        raise TypeError(f"the approval by {approval.by!r} is not of the shape `pkb-letters approve` writes")
    return approval


def covering(approvals: list[Approval], subject: Subject) -> list[Approval]:
    """Those that cover `subject`, latest first."""
    return [a for a in reversed(approvals) if a.covers(subject)]


def changes_since(approval: Approval, subject: Subject) -> list[str]:
    """What differs between an approval and a subject: files of the template, then settings."""
    if not approval.consistent:
        return [
            f"the approval states template digest {approval.template_sha256[:12]}…, but the files it lists "
            f"digest to {template_digest(approval.template_files)[:12]}…: {APPROVALS_FILE} was edited by hand"
        ]
    changes = _changed_files(approval.template_files, subject.template_files)
    for name in sorted(set(approval.settings) | set(subject.settings)):
        was, now = approval.settings.get(name, "(not set)"), subject.settings.get(name, "(not set)")
        if was != now:
            changes.append(f"setting {name}: approved {was!r}, now {now!r}")
    return changes


def _changed_files(approved: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    changes = []
    for name in sorted(set(approved) | set(now)):
        if name not in now:
            changes.append(f"template file {name} removed")
        elif name not in approved:
            changes.append(f"template file {name} added")
        elif approved[name] != now[name]:
            changes.append(f"template file {name} changed")
    return changes


def approval_for_run(template_dir: Path, settings: Mapping[str, str], required: bool) -> Approval | None:
    """The latest approval covering this template and these settings; when `required` and there is
    none, an ApprovalError saying what changed since the latest approval (raised before any PKB call)."""
    subject = Subject.of(template_dir, settings)
    try:
        approvals = read_approvals(template_dir)
    except ApprovalError:
        if required:
            raise
        logger.warning("approvals: %s is unreadable; this job does not require approval", APPROVALS_FILE)
        return None
    found = covering(approvals, subject)
    if found:
        return found[0]
    if required:
        raise ApprovalError(_not_covered(template_dir, approvals, subject))
    return None


def _not_covered(template_dir: Path, approvals: list[Approval], subject: Subject) -> str:
    start = (
        f"this job requires approved letters, and no approval in {template_dir / APPROVALS_FILE} covers "
        f"template {template_dir.name} (sha256 {subject.template_sha256[:12]}…) with these settings"
    )
    how = "; preview the letters with this job file, look at them, and run `pkb-letters approve`"
    if not approvals:
        return f"{start}: it has never been approved{how}"
    latest = approvals[-1]
    changes = "; ".join(changes_since(latest, subject)) or "nothing"
    return f"{start}. Changed since the latest approval, by {latest.said()}: {changes}{how}"


# -- what a preview records, and signing it off --------------------------------------------------


@dataclass(frozen=True)
class PreviewRecord:
    """What a preview was made from and what it showed, as `approve` reads it back."""

    template: str  # the template folder, resolved
    subject: Subject
    samples: dict[str, Any]  # which samples: built-in edge cases, or rows of which list
    failed: list[str]  # labels of samples that failed a check
    pages: int
    preview_pdf_sha256: str
    proof_pdf_sha256: str
    made: str

    def write(self, out_dir: Path) -> None:
        write_atomic(out_dir / PREVIEW_RECORD, (json.dumps(dataclasses.asdict(self), indent=2) + "\n").encode())

    @classmethod
    def read(cls, preview_dir: Path) -> PreviewRecord:
        path = preview_dir / PREVIEW_RECORD
        if not path.exists():
            raise ApprovalError(
                f"{preview_dir} holds no {PREVIEW_RECORD}: give the --out folder of a `pkb-letters preview` "
                "that rendered (a preview whose template failed to render cannot be approved)"
            )
        try:
            fields = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{**fields, "subject": Subject(**fields["subject"])})
        except (ValueError, KeyError, TypeError) as exc:
            raise ApprovalError(f"{path} cannot be read: {exc}") from exc


def approve(preview_dir: Path, by: str, note: str = "", now: dt.datetime | None = None) -> Approval:
    """Sign off what the preview in `preview_dir` showed, appending to its template's approvals;
    refused when a sample failed a check, or the preview or the template changed since it was made."""
    if not by.strip():
        raise ApprovalError("--by must name the person approving")
    record = PreviewRecord.read(preview_dir)
    _check_approvable(preview_dir, record)
    template_dir = Path(record.template)
    approval = Approval(
        by=by.strip(),
        at=(now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        note=note.strip(),
        template_sha256=record.subject.template_sha256,
        template_files=record.subject.template_files,
        settings=record.subject.settings,
        samples=record.samples,
        preview_pdf_sha256=record.preview_pdf_sha256,
        proof_pdf_sha256=record.proof_pdf_sha256,
    )
    approvals = read_approvals(template_dir)
    entries = [dataclasses.asdict(a) for a in (*approvals, approval)]
    text = json.dumps({"about": _ABOUT, "approvals": entries}, indent=2, ensure_ascii=False) + "\n"
    write_atomic(template_dir / APPROVALS_FILE, text.encode("utf-8"))
    return approval


def _check_approvable(preview_dir: Path, record: PreviewRecord) -> None:
    if record.failed:
        raise ApprovalError(
            f"the preview in {preview_dir} cannot be approved: {len(record.failed)} sample(s) failed a check "
            f"({', '.join(record.failed)}); fix the template or settings and preview again"
        )
    if not record.pages:
        raise ApprovalError(f"the preview in {preview_dir} shows no letter: there is nothing to approve")
    for name, recorded in (("preview.pdf", record.preview_pdf_sha256), ("proof.pdf", record.proof_pdf_sha256)):
        path = preview_dir / name
        if not path.exists() or sha256_of(path) != recorded:
            raise ApprovalError(f"{path} is missing or changed since the preview was made: preview again")
    template_dir = Path(record.template)
    if not template_dir.is_dir():
        raise ApprovalError(f"the previewed template {template_dir} is not there any more: preview again")
    now = Subject.of(template_dir, record.subject.settings)
    changed = _changed_files(record.subject.template_files, now.template_files)
    if changed:
        raise ApprovalError(
            f"the template changed since this preview was made ({'; '.join(changed)}): preview again and look "
            "at the letters before approving them"
        )


# -- what the preview page says --------------------------------------------------------------


@dataclass(frozen=True)
class PageStatus:
    """Whether what a preview shows is approved, by whom, and how to approve it."""

    approved_by: tuple[Approval, ...]  # latest first
    failed: int  # samples that failed a check: such a preview cannot be approved
    command: str  # the command that approves it
    changes: tuple[str, ...] = ()  # since the latest approval, when none covers it
    latest: Approval | None = None

    @property
    def state(self) -> str:
        return "approved" if self.approved_by else "cannot-approve" if self.failed else "not-approved"


def page_status(template_dir: Path, subject: Subject, failed: int, out_dir: Path) -> PageStatus:
    try:
        approvals = read_approvals(template_dir)
    except ApprovalError:  # the page still shows the letters; approving would say what is wrong
        approvals = []
    found = covering(approvals, subject)
    latest = approvals[-1] if approvals else None
    changes = tuple(changes_since(latest, subject)) if latest and not found else ()
    command = f'pkb-letters approve {shlex.quote(str(out_dir))} --by "YOUR NAME" --note "what you checked"'
    return PageStatus(tuple(found), failed, command, changes, latest)
