"""Validate: a patient list checked on its own, with no call to PKB.

Takes the list, the letter template and the job's rules, and gives a `ValidationReport`: the
rows that a run would send on to PKB, and an `Exclusion` for every other row, found by the
same intake and address-fit checks a run makes (the address block laid out in the template's
own font). A customer fixes their list with it before a run; `write_report` writes the same
`exceptions.csv` a run writes.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pkb_letters.config import DEFAULT_TEMPLATE, LetterSettings, RuleSettings
from pkb_letters.envelope import C5, EnvelopeProfile
from pkb_letters.errors import ConfigError
from pkb_letters.files import PRIVATE_DIR
from pkb_letters.fit.stage import address_fit_exclusions
from pkb_letters.intake.patient_list import read_patient_list
from pkb_letters.job.journal import JOURNAL_NAME
from pkb_letters.job.manifest import EXCEPTIONS_CSV, write_exceptions_csv
from pkb_letters.records import Exclusion, PatientRow
from pkb_letters.render.chunks import ChunkRenderer, LetterTemplate
from pkb_letters.render.font_subsetting import note_slow_subsetting


@dataclass(frozen=True)
class ValidationReport:
    input_rows: int
    ready: tuple[PatientRow, ...]  # would be sent on to PKB
    exclusions: tuple[Exclusion, ...]  # in input order
    encoding: str
    delimiter: str

    @property
    def by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(e.reason.value for e in self.exclusions).items()))


def validate_list(
    patients: Path,
    template_dir: Path = DEFAULT_TEMPLATE,
    letter: LetterSettings | None = None,
    rules: RuleSettings | None = None,
    envelope: EnvelopeProfile = C5,
    workers: int = 1,
) -> ValidationReport:
    """Intake and address checks alone. Raises InputFileError or TemplateError as a run would."""
    rules = rules or RuleSettings()
    template = LetterTemplate(template_dir)
    note_slow_subsetting()
    intake = read_patient_list(patients, international=rules.international_post)
    renderer = ChunkRenderer(template, letter or LetterSettings(), envelope)
    misfits = address_fit_exclusions(renderer, intake.patients, workers)
    misfit_rows = {e.input_row for e in misfits}
    return ValidationReport(
        input_rows=intake.input_rows,
        ready=tuple(p for p in intake.patients if p.input_row not in misfit_rows),
        exclusions=tuple(sorted([*intake.exclusions, *misfits], key=lambda e: e.input_row)),
        encoding=intake.encoding,
        delimiter=intake.delimiter,
    )


def write_report(report: ValidationReport, out_dir: Path) -> Path:
    """`exceptions.csv` in `out_dir` (created owner-only if new); never in a run's job folder."""
    if (out_dir / JOURNAL_NAME).exists():
        raise ConfigError(f"{out_dir} holds a job, whose {EXCEPTIONS_CSV} belongs to its run; choose another --out")
    if not out_dir.exists():
        out_dir.mkdir(parents=True, mode=PRIVATE_DIR)
        os.chmod(out_dir, PRIVATE_DIR)  # mkdir's mode is cut by the umask
    write_exceptions_csv(out_dir, report.exclusions)
    return out_dir / EXCEPTIONS_CSV
