"""The fit stage's measure: each patient's address block laid out alone, before any code is issued.

Takes patients and a renderer's template, full layout and envelope; gives, by input row, a `Misfit`
for each address block that would not fit the envelope window (or the `TemplateError` its letter
raised). A block of a shape seen fitting before is measured line by line instead of laid out
(render/stamp.py's rules), where the job's WeasyPrint allows the fast paths.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from xml.etree import ElementTree

import tinyhtml5
from weasyprint import CSS

from pkb_letters.envelope import EnvelopeProfile
from pkb_letters.errors import TemplateError
from pkb_letters.fit.window import (
    ADDRESS_WINDOW_CLASS,
    ANCHOR_PREFIX,
    Misfit,
    address_misfit,
    fit_css,
    section_row,
    windows,
)
from pkb_letters.records import CodePair, Letter, PatientRow
from pkb_letters.render import stamp
from pkb_letters.render import weasyprint_adapter as wp
from pkb_letters.render.shared_layout import CLASS_ATTRIBUTE, element_spans

if TYPE_CHECKING:
    from pkb_letters.render.chunks import FullLayout


class AddressFit:
    """Before any code is issued: each patient's address block laid out alone, with the template's own
    markup and CSS; a block of a shape seen fitting before is measured line by line instead (render/stamp.py)."""

    def __init__(
        self,
        full: FullLayout,
        body: Callable[..., str],
        template_file: str,
        envelope: EnvelopeProfile,
        reuse_shapes: bool,
    ) -> None:
        self._full, self._body, self._template_file, self._envelope = full, body, template_file, envelope
        self.reuse_shapes = reuse_shapes
        self._css: CSS | None = None
        self._shapes: dict[str, list[tuple[tuple[str, ...], dict]]] = {}  # address blocks seen fitting

    def check(self, patients: Sequence[PatientRow]) -> dict[int, Misfit | TemplateError]:
        """The patients (by input row) whose address would not print."""
        problems: dict[int, Misfit | TemplateError] = {}
        for start in range(0, len(patients), FIT_BATCH):
            blocks: dict[int, str] = {}
            for patient in patients[start : start + FIT_BATCH]:
                trial = Letter(patient.input_row, "", patient, PLACEHOLDER_CODES)
                try:
                    block = _address_block(self._body(trial, qr=False), self._template_file)
                except TemplateError as exc:
                    problems[patient.input_row] = exc
                    continue
                if not self._fits_like_a_known_address(block):
                    blocks[patient.input_row] = block
            seeds = self._seeds(blocks)
            if seeds and len(seeds) < len(blocks):  # one block of each new shape first: the rest may not need layout
                problems.update((m.sequence, m) for m in self._misfits(seeds))
                blocks = {
                    row: block
                    for row, block in blocks.items()
                    if row not in seeds and not self._fits_like_a_known_address(block)
                }
            if blocks:
                problems.update((m.sequence, m) for m in self._misfits(blocks))
        return problems

    def _seeds(self, blocks: dict[int, str]) -> dict[int, str]:
        """The first block of each shape among `blocks` that no known shape covers."""
        if not self.reuse_shapes:
            return {}
        first: dict[str, int] = {}
        for row, block in blocks.items():
            shape = stamp.skeleton(block)
            if shape is not None and self._wants_shape(shape):
                first.setdefault(shape.key, row)
        return {row: blocks[row] for row in first.values()}

    def _fits_like_a_known_address(self, block: str) -> bool:
        """Whether an address block of a shape seen fitting before fits too: each of its lines, shaped
        alone, is one line in the same font, no wider than the window (render/stamp.py's rules)."""
        shape = stamp.skeleton(block) if self.reuse_shapes else None
        return shape is not None and self._fits_known_shape(shape)

    def _fits_known_shape(self, shape: stamp.Skeleton) -> bool:
        return any(
            stamp.swapped_texts(texts, slots, shape.texts) is not None
            for texts, slots in self._shapes.get(shape.key, ())
        )

    def _misfits(self, blocks: dict[int, str]) -> list[Misfit]:
        """Address blocks stacked on tall pages, each in a box the window's size: laying them out a
        page each, as letters, would cost a page's overhead per patient. A block of a shape not seen
        before that fits is kept, so later blocks of that shape need no layout."""
        shapes = {row: stamp.skeleton(block) if self.reuse_shapes else None for row, block in blocks.items()}
        new = {row: shape for row, shape in shapes.items() if shape is not None and self._wants_shape(shape)}
        sections = "\n".join(
            f'<section class="pkb-fit" id="{ANCHOR_PREFIX}{row}">'
            f"{stamp.marked(block, new[row]) if row in new else block}</section>"
            for row, block in blocks.items()
        )
        if self._css is None:
            self._css = self._full.css(fit_css(self._envelope))
        document = self._full.document(sections, self._css)
        misfits = []
        for page in document.pages:
            for sequence, window in windows(wp.page_box(page)):
                misfit = address_misfit(sequence, window)
                if misfit:
                    misfits.append(misfit)
        if new:
            self._remember_fitting_shapes(document, shapes, new.keys() - {m.sequence for m in misfits})
        return misfits

    def _wants_shape(self, shape: stamp.Skeleton) -> bool:
        known = self._shapes.get(shape.key, [])
        return len(known) < stamp.MAX_PROTOTYPES_A_SHAPE and sum(map(len, self._shapes.values())) < stamp.MAX_SHAPES

    def _remember_fitting_shapes(self, document, shapes: dict, rows: set[int]) -> None:
        found: dict[int, dict[int, list]] = {}
        for number, page in enumerate(document.pages):
            for leaf, box, path in stamp.slot_boxes(wp.page_box(page)):
                row = section_row(path)
                if row in rows:
                    found.setdefault(row, {}).setdefault(leaf, []).append((number, box, path))
        for row, texts in found.items():
            shape = shapes[row]
            slots = stamp.text_slots_of(texts, shape)
            if slots is not None and self._wants_shape(shape) and not self._fits_known_shape(shape):
                self._shapes.setdefault(shape.key, []).append((shape.texts, slots))


PLACEHOLDER_CODES = CodePair("X" * 10, "X" * 10, dt.date(2000, 1, 1))


FIT_BATCH = 500  # address blocks laid out together before any code is issued (more holds more memory, no faster)


def _address_block(body: str, template_file: str) -> str:
    """The template's address window element, cut out of one rendered letter body."""
    for span in element_spans(body) or ():
        classes = CLASS_ATTRIBUTE.search(span.start_tag)
        if classes and ADDRESS_WINDOW_CLASS in (classes.group(2) or classes.group(3) or "").split():
            return body[span.start : span.end]
    tree = tinyhtml5.parse(body, namespace_html_elements=False)
    for element in tree.iter():
        if ADDRESS_WINDOW_CLASS in (element.get("class") or "").split():
            return ElementTree.tostring(element, method="html", encoding="unicode")
    raise TemplateError(f"{template_file} has no element with class {ADDRESS_WINDOW_CLASS!r}")
