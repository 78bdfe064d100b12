"""The fit stage: address blocks measured against the envelope window before any code is issued.

Takes patients (a list read from the journal a page at a time, or a preview's samples) and the job's
renderer; gives an `Exclusion` (`address-too-wide`, `address-too-tall`, or `template-error`) for each
patient whose address would not print as it is, a batch at a time, fitted in worker processes when
there are enough batches to pay for starting them (`fit_batches`). `address_fit.AddressFit` measures.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pkb_letters.config import LetterSettings
from pkb_letters.envelope import EnvelopeProfile
from pkb_letters.errors import TemplateError
from pkb_letters.fit import address_fit
from pkb_letters.fit.window import Misfit
from pkb_letters.pkb.batching import batched
from pkb_letters.records import Exclusion, PatientRow
from pkb_letters.render.chunks import ChunkRenderer, LetterTemplate, template_reason


@dataclass(frozen=True)
class FitSpec:
    """Everything an address-fit worker needs: the template, its settings and the page. Picklable."""

    template_dir: Path
    letter: LetterSettings
    page: EnvelopeProfile
    share_layout: bool  # the job's decision: reuse shapes seen fitting (render/stamp.py's rules), or lay each block out


def fit_spec(renderer: ChunkRenderer) -> FitSpec:
    """What a worker process needs to run this renderer's address fit."""
    return FitSpec(renderer.template.directory, renderer.settings, renderer.envelope, renderer.share_layout)


_fit_renderers: dict[FitSpec, ChunkRenderer] = {}


def fit_batch(spec: FitSpec, patients: Sequence[PatientRow]) -> dict[int, Misfit | TemplateError]:
    """`ChunkRenderer.check_addresses` in a worker process, which keeps its renderer between batches."""
    renderer = _fit_renderers.get(spec)
    if renderer is None:
        renderer = _fit_renderers.setdefault(
            spec,
            ChunkRenderer(LetterTemplate(spec.template_dir), spec.letter, spec.page, share_layout=spec.share_layout),
        )
    return renderer.check_addresses(patients)


# Starting a worker (Python, WeasyPrint, the fonts) takes about as long as fitting a batch: a list of
# fewer batches than this is fitted sooner in this process.
_MIN_FIT_BATCHES_FOR_WORKERS = 4


def fit_batches(
    renderer: ChunkRenderer, batches: Iterable[Sequence[PatientRow]], workers: int, batch_count: int
) -> Iterator[tuple[Sequence[PatientRow], dict[int, Misfit | TemplateError]]]:
    """Each batch with its address fit, in order, taken from `batches` as the fit goes: in `workers`
    processes when there are `_MIN_FIT_BATCHES_FOR_WORKERS` or more, at most two a worker out at once."""
    if workers <= 1 or batch_count < _MIN_FIT_BATCHES_FOR_WORKERS:
        for batch in batches:
            yield batch, renderer.check_addresses(batch)
        return
    workers = min(workers, batch_count)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        todo = iter(batches)
        pending: deque[tuple[Sequence[PatientRow], Future]] = deque()
        while True:
            while len(pending) < 2 * workers and (queued := next(todo, None)) is not None:
                pending.append((queued, pool.submit(fit_batch, fit_spec(renderer), queued)))
            if not pending:
                return
            batch, future = pending.popleft()
            yield batch, future.result()


def address_fit_exclusions(
    renderer: ChunkRenderer,
    patients: Sequence[PatientRow],
    workers: int = 1,
    advance: Callable[[int], None] = lambda done: None,
) -> list[Exclusion]:
    """An exclusion for each patient whose address block would not print as it is, in input order."""
    found = [e for batch in fit_exclusions(renderer, patients, len(patients), workers, advance) for e in batch]
    return sorted(found, key=lambda e: e.input_row)


def fit_exclusions(
    renderer: ChunkRenderer,
    patients: Iterable[PatientRow],
    count: int,
    workers: int = 1,
    advance: Callable[[int], None] = lambda done: None,
) -> Iterator[list[Exclusion]]:
    """`address_fit_exclusions` a batch at a time, taking the `count` patients from `patients` as the fit
    goes: for a list read from the journal, memory holds a few batches, not the list."""
    size = address_fit.FIT_BATCH
    for batch, problems in fit_batches(renderer, batched(patients, size), workers, -(-count // size)):
        by_row = {p.input_row: p for p in batch}
        yield [_misfit_exclusion(by_row[row], problem) for row, problem in sorted(problems.items())]
        advance(len(batch))


def _misfit_exclusion(patient: PatientRow, problem: Misfit | TemplateError) -> Exclusion:
    if isinstance(problem, TemplateError):
        reason, detail = template_reason(problem), str(problem)
    else:
        reason, detail = problem.reason, problem.detail
    return Exclusion(patient.input_row, patient.customer_ref, patient.nhs_number, reason, detail)
