"""Where a job stands, read from its journal alone: `pkb-letters status DIR`.

Takes an output folder and gives a `JobStatus`: counts per stage and per outcome, the time
of the last progress, why it last stopped, and what running it again would do. It never
changes the journal and never shows codes or NHS numbers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pkb_letters.errors import ConfigError
from pkb_letters.job.journal import JOURNAL_NAME, Journal
from pkb_letters.job.reconciliations import PULL, REPRINT, Reconciliation
from pkb_letters.records import Delivery, Stage


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    out_dir: Path
    api: str
    created: str
    last_progress: str | None
    by_stage: dict[str, int]
    by_reason: dict[str, int]
    reissues: dict[str, int]
    awaiting_answer: int
    last_stop: str | None
    finished: bool
    deliveries: tuple[Delivery, ...] = ()
    approval: dict[str, str] | None = None  # the sign-off its letters are printed under, if any covered them
    reconciliations: tuple[Reconciliation, ...] = ()  # the inserter's results read (`pkb-letters reconcile`)
    reprinted: int = 0  # pieces reprinted by any of them, each counted once
    pulled: int = 0  # pieces pulled by any of them

    @property
    def input_rows(self) -> int:
        return sum(self.by_stage.values())

    def next_steps(self) -> list[str]:
        """What `pkb-letters run` with the same options would do now."""
        if self.finished:
            return ["nothing: the job is finished; a rerun rewrites the manifests and asks PKB nothing"]
        steps = []
        count = self.by_stage.get
        if count(Stage.READ):
            steps.append(f"ask PKB about {count(Stage.READ)} patients not yet resolved")
        if count(Stage.HELD):
            steps.append(
                f"read again the expiry of {count(Stage.HELD)} held pairs (PKB is never asked again for "
                'them); if still unreadable, stop again unless [codes] unreadable_expiry = "exclude"'
            )
        if count(Stage.ELIGIBLE):
            step = f"request code pairs for {count(Stage.ELIGIBLE)} eligible patients"
            if self.awaiting_answer:
                step += (
                    f" ({self.awaiting_answer} of them were asked before and the answer never arrived: "
                    "their new pair is a re-issue, marked lost-response)"
                )
            steps.append(step)
        steps.append("re-issue any pair that would expire within --min-validity-days of printing")
        if count(Stage.CODED):
            steps.append(f"lay out {count(Stage.CODED)} letters that have codes but are not yet in a chunk")
        steps.append("join the chunks into letters.pdf, check it, and write the manifests")
        return steps

    def _reconciliation_lines(self) -> list[str]:
        if not self.reconciliations:
            return []
        lines = [f"  inserter results: {self.reprinted} piece(s) reprinted, {self.pulled} pulled (see pulled.csv)"]
        for r in self.reconciliations:
            counts = f"{r.counts.get('ok', 0)} OK, {r.counts.get('reprint', 0)} reprint, {r.counts.get('pull', 0)} pull"
            made = ""
            if r.reprint_files:
                pdf = next(name for name in r.reprint_files if name.endswith(".pdf"))
                made = f" -> {pdf} (preflight {'passed' if r.preflight_ok else 'FAILED'})"
            forced = " (--force)" if r.forced else ""
            lines.append(f"    {r.number:02d}  {r.time}  {r.results_file}: {counts}{forced}{made}")
        return lines

    def report(self) -> str:
        lines = [
            f"Job {self.job_id} in {self.out_dir} ({self.api.upper()} route, started {self.created})",
            f"  last progress  {self.last_progress or 'none'}",
            f"  state          {'finished' if self.finished else 'not finished'}",
            f"  input rows     {self.input_rows:>7}",
        ]
        if self.approval:
            a = self.approval
            lines.insert(3, f"  approved by    {a['by']} on {a['at']} (template sha256 {a['template_sha256'][:12]}…)")
        for stage in Stage:
            lines.append(f"    {stage.value:<12} {self.by_stage.get(stage, 0):>7}")
        if self.by_reason:
            lines.append("  exceptions by reason")
            lines.extend(f"    {reason:<24}{n:>5}" for reason, n in self.by_reason.items())
        if self.reissues:
            lines.append("  re-issued code pairs")
            lines.extend(f"    {why:<24}{n:>5}" for why, n in self.reissues.items())
        if self.last_stop and not self.finished:
            lines.append(f"  last stopped   {self.last_stop}")
        if self.deliveries:
            lines.append("  deliveries to the mail house")
            for d in self.deliveries:
                files = ", ".join(f"{f.name} sha256 {f.sha256[:12]}…" for f in d.files)
                when = f"{d.finished:%Y-%m-%d %H:%M:%S}Z"
                lines.append(f"    {when}  {d.outcome:<17} {d.destination}  {files or d.detail}")
        lines.extend(self._reconciliation_lines())
        lines.append("  a rerun would:")
        lines.extend(f"    - {step}" for step in self.next_steps())
        return "\n".join(lines)


def job_status(out_dir: Path) -> JobStatus:
    path = out_dir / JOURNAL_NAME
    if not path.exists():
        raise ConfigError(f"{out_dir} holds no job (no {JOURNAL_NAME}); give the --out folder of a run")
    with Journal(path) as journal:
        job = journal.job.identity()
        stops = journal.events.of_kind("stopped")
        reissue_counts = Counter(journal.codes.reissues().values())
        return JobStatus(
            job_id=job.id if job else "?",
            out_dir=out_dir,
            api=job.api if job else "?",
            created=job.created if job else "?",
            last_progress=journal.last_update(),
            by_stage=journal.rows.count_by_stage(),
            by_reason=journal.rows.count_by_reason(),
            reissues=dict(sorted(reissue_counts.items())),
            awaiting_answer=len(journal.codes.requested_without_answer()),
            last_stop=f"{stops[-1]['time']}: {stops[-1]['detail']}" if stops else None,
            finished=journal.job.finished,
            deliveries=tuple(journal.deliveries.attempts()),
            approval=journal.job.approval(),
            reconciliations=tuple(journal.reconciliations.all()),
            reprinted=len(journal.reconciliations.pieces_with(REPRINT)),
            pulled=len(journal.reconciliations.pieces_with(PULL)),
        )
