"""The address check before codes are issued agrees with the letters as laid out."""

from __future__ import annotations

import datetime as dt
import multiprocessing

from pkb_letters.assemble import marks, print_options
from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.config import DEFAULT_TEMPLATE, LetterSettings
from pkb_letters.fit.stage import fit_batches
from pkb_letters.pkb.batching import batched
from pkb_letters.records import CodePair, Letter, PatientRow
from pkb_letters.render.chunks import ChunkRenderer, LetterTemplate

CODES = CodePair("Inv0000001", "acc0000001", dt.date(2026, 12, 21))


def _renderer() -> ChunkRenderer:
    options = PrintOptions()
    page = marks.reserve_space(options.envelope, options.marks, marks.sample_payload("JOB1"))
    return ChunkRenderer(LetterTemplate(DEFAULT_TEMPLATE), LetterSettings(organisation="Fit NHS Trust"), page,
                         print_options.print_css(options), print_options.pdf_options(options))


def _patients() -> list[PatientRow]:
    """Street names from comfortably short to far too wide, and address blocks up to too tall."""
    rows = []
    for number, width in enumerate(range(20, 75, 3), 2):
        street = ("12 " + "Wyndham-Montgomery Way " * 4)[:width]
        rows.append(PatientRow(number, "", "4000000004", "Mr", "Leo", "Patel", None,
                               (street, "LEEDS", "LS6 1BN"), "LS6 1BN"))
    for number, lines in enumerate(range(3, 10), 100):
        rows.append(PatientRow(number, "", "4000000004", "", "Ivy", "Wilson", None,
                               tuple(f"Line {n}" for n in range(lines)) + ("LS6 1BN",), "LS6 1BN"))
    return rows


def test_the_fit_check_and_the_laid_out_letters_find_the_same_misfits():
    renderer = _renderer()
    patients = _patients()
    before = {row: problem.reason for row, problem in renderer.check_addresses(patients).items()}
    after = {}
    for patient in patients:
        letter = Letter(patient.input_row, f"JOB1-{patient.input_row:06d}", patient, CODES)
        rendered = renderer.render([letter], [renderer.body(letter)])
        after.update((m.sequence, m.reason) for m in rendered.misfits)
    assert before == after
    reasons = set(before.values())
    assert {"address-too-wide", "address-too-tall"} <= {str(r) for r in reasons}
    assert len(before) < len(patients)  # and the short ones fit


def test_worker_processes_find_the_same_misfits_and_report_progress_batch_by_batch():
    renderer = _renderer()
    patients = _patients()
    progress: list[tuple[int, int]] = []  # (patients done in the batch, worker processes alive)

    def advance(done: int) -> None:
        progress.append((done, len(multiprocessing.active_children())))

    def fit(workers: int, advance=lambda done: None) -> dict:
        found = {}
        for batch, problems in fit_batches(renderer, batched(patients, 5), workers, -(-len(patients) // 5)):
            found.update(problems)
            advance(len(batch))
        return found

    in_workers = fit(2, advance)
    here = fit(1)
    assert {row: (p.reason, p.detail) for row, p in in_workers.items()} == \
        {row: (p.reason, p.detail) for row, p in here.items()}
    assert [done for done, _ in progress] == [5] * (len(patients) // 5) + [len(patients) % 5]
    assert all(alive == 2 for _, alive in progress)


def test_address_blocks_of_a_shape_seen_fitting_are_measured_without_a_layout_and_judged_the_same():
    options = PrintOptions()
    page = marks.reserve_space(options.envelope, options.marks, marks.sample_payload("JOB1"))
    renderer = ChunkRenderer(LetterTemplate(DEFAULT_TEMPLATE), LetterSettings(organisation="Fit NHS Trust"),
                             page, print_options.print_css(options), print_options.pdf_options(options))
    laid_out: list[int] = []  # the rows whose address block was laid out with WeasyPrint
    measure = renderer.fit._misfits

    def counting(blocks):
        laid_out.extend(blocks)
        return measure(blocks)

    renderer.fit._misfits = counting
    full = _renderer()
    full.fit.reuse_shapes = False  # the straightforward judge: every block laid out
    renderer.check_addresses(_patients()[:3])  # three short streets: the three-line shape, seen fitting
    laid_out.clear()
    patients = _patients()
    stamped = {row: (p.reason, p.detail) for row, p in renderer.check_addresses(patients).items()}
    assert stamped == {row: (p.reason, p.detail) for row, p in full.check_addresses(patients).items()}
    # the street addresses that fit were measured line by line; those too wide, and the new shapes, laid out
    streets = [p for p in patients if p.address_lines[1:] == ("LEEDS", "LS6 1BN")]
    fitting_streets = [p for p in streets if p.input_row not in stamped]
    assert len(fitting_streets) >= 5 and len(streets) - len(fitting_streets) >= 5
    assert len(laid_out) == len(patients) - len(fitting_streets)


def test_a_first_batch_lays_out_one_block_of_each_new_shape_and_measures_the_rest_of_it_line_by_line():
    renderer = _renderer()
    laid_out: list[int] = []
    measure = renderer.fit._misfits

    def counting(blocks):
        laid_out.extend(blocks)
        return measure(blocks)

    renderer.fit._misfits = counting
    full = _renderer()
    full.fit.reuse_shapes = False
    patients = _patients()  # one batch, no shape known before it
    seeded = {row: (p.reason, p.detail) for row, p in renderer.check_addresses(patients).items()}
    assert seeded == {row: (p.reason, p.detail) for row, p in full.check_addresses(patients).items()}
    fitting_streets = [p.input_row for p in patients if p.address_lines[1:] == ("LEEDS", "LS6 1BN")
                       and p.input_row not in seeded]
    assert len(fitting_streets) >= 5
    assert [row for row in laid_out if row in fitting_streets] == fitting_streets[:1]  # the shape's seed alone
