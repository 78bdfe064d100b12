"""Render: letters in, one PDF per chunk of letters out, with each letter's page count.

The customer's template (`letter.html` + `letter.css` in a folder) is Jinja
rendered once per letter; the letters of a chunk then go through ONE WeasyPrint
document, which is what makes rendering fast. This module adds only what every
letter needs whatever its wording: page size and margins, the address window
from the envelope profile, a new page per letter and per-letter page numbers
(`counter(page)` and `string(pkb-letter-pages)` for "Page n of m").
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree

import jinja2
import tinyhtml5
import zxingcpp
from PIL import Image
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration

from . import stamp
from . import weasyprint_adapter as wp
from .config import LetterSettings
from .envelope import EnvelopeProfile
from .errors import TemplateError, TemplateResourceError
from .records import CodePair, Letter, PatientRow, Reason
from .shared_layout import (
    CLASS_ATTRIBUTE,
    SHARED_ONLY_CSS,
    Layer,
    SharedLayout,
    accepted_blocks,
    element_spans,
    mark,
    runs_of,
    shared_candidates,
    underlay,
)
from .template_fetcher import TemplateFolderFetcher
from .template_sandbox import render_error, template_environment

LETTER_TEMPLATE = "letter.html"
LETTER_STYLESHEET = "letter.css"
ANCHOR_PREFIX = "pkb-letter-"
ADDRESS_WINDOW_CLASS = "pkb-address-window"
MM_PER_PX = 25.4 / 96
_MAX_LAYOUT_PASSES = 3

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Misfit:
    """A letter whose address does not fit the envelope window at the template's font."""

    sequence: int
    reason: Reason
    detail: str


@dataclass(frozen=True)
class RenderedChunk:
    pdf: bytes | None  # None when any letter is a misfit: the chunk must be laid out again without it
    page_counts: tuple[int, ...]  # one per letter, in the chunk's order
    misfits: tuple[Misfit, ...] = ()
    shared_letters: int = 0  # letters drawn with the job's shared layout
    stamped_letters: int = 0  # letters drawn into a prototype of their shape without being laid out


def _moved(shared: SharedLayout, fast: Sequence[str | None], pages: Sequence, counts: Sequence[int]) -> list[int]:
    """The letters on the fast path whose placeholders did not land where the shared blocks were laid out."""
    moved, first = [], 0
    for index, (quick, count) in enumerate(zip(fast, counts, strict=True)):
        if quick and not shared.fits(pages[first:first + count]):
            moved.append(index)
        first += count
    return moved


class LetterTemplate:
    """A template folder: `letter.html` (one letter's body, Jinja) and `letter.css`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        if not (self.directory / LETTER_TEMPLATE).is_file():
            raise TemplateError(f"template folder {directory} has no {LETTER_TEMPLATE}")
        self._env = template_environment(self.directory)
        self._env.filters["long_date"] = long_date
        try:
            self._template = self._env.get_template(LETTER_TEMPLATE)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{exc.filename or LETTER_TEMPLATE}, line {exc.lineno}: {exc.message}") from exc

    @property
    def name(self) -> str:
        return self.directory.name

    def render_body(self, context: dict[str, Any]) -> str:
        try:
            return self._template.render(context)
        except Exception as exc:  # whatever the template's code raises, it is the template's error
            raise render_error(exc, self.directory, f"{self.name}/{LETTER_TEMPLATE}") from exc


def long_date(day: dt.date) -> str:
    """'21 November 2026', the form NHS letters use."""
    return f"{day.day} {day:%B %Y}"


def letter_context(letter: Letter, settings: LetterSettings, qr: bool = True) -> dict[str, Any]:
    """What a template may use. Deliberately no date of birth and no NHS number."""
    patient = letter.patient
    join_url = f"{settings.join_url}?{urlencode({'t1': letter.codes.invitation_code, 't2': letter.codes.access_code})}"
    return {
        "letter": {"sequence": letter.sequence, "piece_id": letter.piece_id, "date": settings.date},
        "patient": {
            "title": patient.title,
            "first_name": patient.first_name,
            "last_name": patient.last_name,
            "display_name": patient.display_name,
            "customer_ref": patient.customer_ref,
        },
        "address": {"lines": [patient.display_name, *patient.address_lines], "postcode": patient.postcode},
        "codes": {
            "invitation": letter.codes.invitation_code,
            "access": letter.codes.access_code,
            "expires": letter.codes.expires,
            "join_url": join_url,
            "qr_svg": qr_data_uri(join_url) if qr else _BLANK_PNG,
        },
        "website": _website(settings.join_url),
        "organisation": {
            "name": settings.organisation,
            "contact": settings.contact,
            "signatory": settings.signatory,
            "signatory_role": settings.signatory_role,
        },
    }


def qr_data_uri(url: str) -> str:
    """The QR code (error correction M) as a greyscale PNG of one pixel per module: printed on the
    black plate alone. The template draws it `image-rendering: pixelated`, so the PDF says
    /Interpolate false and a RIP scales each module up as a sharp square."""
    code = zxingcpp.create_barcode(url, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    modules = memoryview(code.to_image(scale=1, add_quiet_zones=False))
    height, width = modules.shape
    buffer = io.BytesIO()
    Image.frombytes("L", (width, height), modules.tobytes()).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _website(join_url: str) -> str:
    parts = urlsplit(join_url)
    return (parts.netloc + parts.path).rstrip("/")


class ChunkRenderer:
    """Lays out chunks of letters with one template, envelope and font set."""

    def __init__(
        self,
        template: LetterTemplate,
        settings: LetterSettings,
        envelope: EnvelopeProfile,
        print_css: str = "",
        pdf_options: Mapping[str, Any] | None = None,
        share_layout: bool = True,
    ) -> None:
        self.template = template
        self.settings = settings
        self._font_config = FontConfiguration()
        self._color_profiles: dict = {}  # filled by an @color-profile rule in print_css: the output intent
        self._layout_css = CSS(string=layout_css(envelope) + print_css, font_config=self._font_config,
                               color_profiles=self._color_profiles)
        self._pdf_options = dict(pdf_options or {})  # WeasyPrint's write_pdf options: the PDF variant
        self._fetcher = TemplateFolderFetcher(template.directory)
        self._expected_pages = 1
        self.share_layout = share_layout
        self._shared: SharedLayout | None | object = _NOT_YET
        self._shared_css: CSS | None = None
        self._fit_css: CSS | None = None
        self._page = envelope
        self._fit_shapes: dict[str, list[tuple[tuple[str, ...], dict]]] = {}  # address blocks seen fitting
        self._prototypes: dict[tuple[str, bool], list[stamp.Prototype | None]] = {}  # None: never stamped
        self._prototype_count = 0
        self._shell = None  # an empty WeasyPrint document: what chunks of pages are written through
        self._image_options = stamp.image_options(self._pdf_options)
        # a tagged PDF's structure tree is built from the boxes as they are drawn, which stamping skips
        self._stamps = share_layout and not stamp.tagged(self._pdf_options)

    @property
    def fit_spec(self) -> FitSpec:
        """What a worker process needs to run this renderer's address fit."""
        return FitSpec(self.template.directory, self.settings, self._page)

    def body(self, letter: Letter, qr: bool = True) -> str:
        """One letter's HTML; raises TemplateError for this letter alone. Without `qr`, a blank
        stands in for the QR code (for measuring the address, which never needs it)."""
        return self.template.render_body(letter_context(letter, self.settings, qr))

    def check_addresses(self, patients: Sequence[PatientRow]) -> dict[int, Misfit | TemplateError]:
        """Before any code is issued: lay out each patient's address block alone, with the
        template's own markup and CSS, and report (by input row) those that would not print."""
        problems: dict[int, Misfit | TemplateError] = {}
        for start in range(0, len(patients), FIT_BATCH):
            blocks: dict[int, str] = {}
            for patient in patients[start:start + FIT_BATCH]:
                trial = Letter(patient.input_row, "", patient, _PLACEHOLDER_CODES)
                try:
                    block = _address_block(self.body(trial, qr=False), self.template.name)
                except TemplateError as exc:
                    problems[patient.input_row] = exc
                    continue
                if not self._fits_like_a_known_address(block):
                    blocks[patient.input_row] = block
            if blocks:
                problems.update((m.sequence, m) for m in self._fit_misfits(blocks))
        return problems

    def _fits_like_a_known_address(self, block: str) -> bool:
        """Whether an address block of a shape seen fitting before fits too: each of its lines, shaped
        alone, is one line in the same font, no wider than the window (stamp.py's rules)."""
        shape = stamp.skeleton(block) if self._stamps else None
        return shape is not None and self._fits_known_shape(shape)

    def _fits_known_shape(self, shape: stamp.Skeleton) -> bool:
        return any(stamp.swapped_texts(texts, slots, shape.texts) is not None
                   for texts, slots in self._fit_shapes.get(shape.key, ()))

    def _fit_misfits(self, blocks: dict[int, str]) -> list[Misfit]:
        """Address blocks stacked on tall pages, each in a box the window's size: laying them out a
        page each, as letters, would cost a page's overhead per patient. A block of a shape not seen
        before that fits is kept, so later blocks of that shape need no layout."""
        shapes = {row: stamp.skeleton(block) if self._stamps else None for row, block in blocks.items()}
        new = {row for row, shape in shapes.items() if shape is not None and self._wants_fit_shape(shape)}
        sections = "\n".join(f'<section class="pkb-fit" id="{ANCHOR_PREFIX}{row}">'
                             f'{stamp.marked(block, shapes[row]) if row in new else block}</section>'
                             for row, block in blocks.items())
        if self._fit_css is None:
            self._fit_css = CSS(string=fit_css(self._page), font_config=self._font_config)
        document = self._document(sections, self._fit_css)
        misfits = []
        for page in document.pages:
            for sequence, window in _windows(wp.page_box(page)):
                misfit = _address_misfit(sequence, window)
                if misfit:
                    misfits.append(misfit)
        if new:
            self._remember_fitting_shapes(document, shapes, new - {m.sequence for m in misfits})
        return misfits

    def _wants_fit_shape(self, shape: stamp.Skeleton) -> bool:
        known = self._fit_shapes.get(shape.key, [])
        return len(known) < stamp.MAX_PROTOTYPES_A_SHAPE and sum(map(len, self._fit_shapes.values())) < stamp.MAX_SHAPES

    def _remember_fitting_shapes(self, document, shapes: dict, rows: set[int]) -> None:
        found: dict[int, dict[int, list]] = {}
        for number, page in enumerate(document.pages):
            for leaf, box, path in stamp.slot_boxes(wp.page_box(page)):
                row = _section_row(path)
                if row in rows:
                    found.setdefault(row, {}).setdefault(leaf, []).append((number, box, path))
        for row, texts in found.items():
            shape = shapes[row]
            slots = stamp.text_slots_of(texts, shape)
            if slots is not None and self._wants_fit_shape(shape) and not self._fits_known_shape(shape):
                self._fit_shapes.setdefault(shape.key, []).append((shape.texts, slots))

    def render(self, letters: Sequence[Letter], bodies: Sequence[str]) -> RenderedChunk:
        """Lay out letters as one document: shared blocks from the job's shared layout where a letter
        allows it, everything else in full; a letter whose placeholders moved is laid out again in full.
        A letter of a shape laid out before (stamp.py) is not laid out at all: its own texts are drawn
        into its shape's prototype."""
        shared = self.shared_layout() if self.share_layout else None
        fast = [shared.placeholders(body) if shared else None for body in bodies]
        shapes = [stamp.skeleton(quick or body) if self._stamps else None
                  for quick, body in zip(fast, bodies, strict=True)]
        stamped: list[tuple | None] = [None] * len(letters)
        pages_of: dict[int, list] = {}
        pending, seeded = list(range(len(letters))), False
        while pending:
            for index in pending:
                stamped[index] = self._stamped(letters[index], shapes[index], fast[index] is not None)
            to_lay_out = [index for index in pending if stamped[index] is None]
            seeds = [] if seeded else self._seeds(to_lay_out, shapes, fast)
            if seeds and len(seeds) < len(to_lay_out):
                to_lay_out, seeded = seeds, True  # one letter of each new shape first: the rest may stamp
            misfit = self._lay_out_letters(to_lay_out, letters, bodies, fast, shapes, shared, stamped, pages_of)
            if misfit is not None:
                return misfit  # the chunk is laid out again without the misfits
            pending = [index for index in pending if stamped[index] is None and index not in pages_of]
        letter_pages = [stamped[i][1] if stamped[i] else pages_of[i] for i in range(len(letters))]
        counts = tuple(len(pages) for pages in letter_pages)
        misfits = address_misfits(_Pages([page for pages in letter_pages for page in pages]))
        if misfits:
            return RenderedChunk(None, counts, tuple(misfits))
        pdf = self._write(letter_pages, [found and found[0] for found in stamped], fast, shared)
        return RenderedChunk(pdf, counts, shared_letters=sum(1 for quick in fast if quick),
                             stamped_letters=len(letters) - len(pages_of))

    def _write(self, letter_pages: Sequence[list], prototypes: Sequence, fast: Sequence, shared) -> bytes:
        """The chunk's PDF: each letter's own drawing over its shared layer and its shape's layer, if any."""
        layers = []
        for pages, proto, quick in zip(letter_pages, prototypes, fast, strict=True):
            for number in range(len(pages)):
                page_layers = shared.layers(len(pages))[number] if quick and shared else []
                if proto is not None:
                    page_layers = [*page_layers, self._static_layers(proto)[number]]
                layers.append(page_layers)
        with self._fetcher.guarded():
            pdf = self._shell.copy([page for pages in letter_pages for page in pages]).write_pdf(**self._pdf_options)
        return underlay(pdf, layers)

    def _seeds(self, indices: Sequence[int], shapes: Sequence, fast: Sequence) -> list[int]:
        """The first letter of each shape no prototype has been made for yet."""
        seeds, seen = [], set()
        for index in indices:
            key = self._shape_key(shapes[index], fast[index] is not None)
            if key is not None and key not in seen and self._is_new_shape(shapes[index], fast[index] is not None):
                seen.add(key)
                seeds.append(index)
        return seeds

    def _lay_out_letters(self, indices: Sequence[int], letters, bodies, fast: list, shapes: list, shared,
                         stamped: list, pages_of: dict) -> RenderedChunk | None:
        """Lay out the letters at `indices` into `pages_of`; a letter that became a prototype is then
        stamped from it, so it prints as its shape's other letters do. A RenderedChunk of misfits if any."""
        if not indices:
            return None
        fast_of_laid_out = [fast[i] for i in indices]  # a letter whose placeholders moved loses its own
        laid_out = self._lay_out([letters[i] for i in indices], [bodies[i] for i in indices],
                                 fast_of_laid_out, [shapes[i] for i in indices], shared)
        if isinstance(laid_out, RenderedChunk):
            return laid_out
        for index, pages, quick in zip(indices, laid_out, fast_of_laid_out, strict=True):
            pages_of[index], fast[index] = pages, quick
            if self._stamps:
                shapes[index] = stamp.skeleton(quick or bodies[index])
                stamped[index] = self._stamped(letters[index], shapes[index], quick is not None)
        return None

    def _lay_out(self, letters: Sequence[Letter], bodies: Sequence[str], fast: list[str | None],
                 shapes: Sequence[stamp.Skeleton | None], shared: SharedLayout | None) -> list[list] | RenderedChunk:
        """Each letter's pages, laid out with WeasyPrint (until "Page n of m" settles); a letter of a shape
        not seen before becomes that shape's prototype."""
        page_totals = [self._expected_pages] * len(letters)
        for _ in range(_MAX_LAYOUT_PASSES + 1):
            new = [self._is_new_shape(shape, quick is not None) for shape, quick in zip(shapes, fast, strict=True)]
            laid_out = [stamp.marked(quick or body, shape) if is_new else quick or body
                        for quick, body, shape, is_new in zip(fast, bodies, shapes, new, strict=True)]
            document = self._layout(letters, laid_out, page_totals, self._shared_css if shared else None)
            counts = pages_per_letter(document, [lt.sequence for lt in letters])
            misfits = address_misfits(document)
            if misfits:
                return RenderedChunk(None, tuple(counts), tuple(misfits))
            moved = _moved(shared, fast, document.pages, counts) if shared else []
            for index in moved:
                fast[index] = None
            if counts == page_totals and not moved:
                self._expected_pages = max(set(counts), key=counts.count)
                if self._shell is None:
                    self._shell = document.copy([])
                pages, first = [], 0
                for letter, count, shape, quick, is_new in zip(letters, counts, shapes, fast, new, strict=True):
                    pages.append(document.pages[first:first + count])
                    first += count
                    if is_new:
                        self._remember(shape, quick is not None, pages[-1], letter)
                return pages
            if moved:
                shapes = [stamp.skeleton(quick or body) if shape else None
                          for quick, body, shape in zip(fast, bodies, shapes, strict=True)]
            page_totals = counts  # "Page n of m" changed the layout: lay out again with real totals
        raise TemplateError(f"{self.template.name}: page counts did not settle after {_MAX_LAYOUT_PASSES} layouts")

    @staticmethod
    def _shape_key(shape: stamp.Skeleton | None, quick: bool) -> tuple[str, bool] | None:
        return None if shape is None else (shape.key, quick)

    def _is_new_shape(self, shape: stamp.Skeleton | None, quick: bool) -> bool:
        """Whether a letter of this shape, laid out, should become a prototype: a shape has one per
        width its box-sized texts take (a piece id with a kerned "11" in it, say), up to a limit."""
        key = self._shape_key(shape, quick)
        if key is None or self._prototype_count >= stamp.MAX_SHAPES:
            return False
        known = self._prototypes.get(key, [])
        return None not in known and len(known) < stamp.MAX_PROTOTYPES_A_SHAPE

    def _remember(self, shape: stamp.Skeleton, quick: bool, pages: list, letter: Letter) -> None:
        if not self._is_new_shape(shape, quick) or self._stamped(letter, shape, quick):
            return  # the shape's places are full, or an earlier letter of this chunk already covers this one
        try:
            proto = stamp.prototype(pages, f"{ANCHOR_PREFIX}{letter.sequence}", letter.piece_id, shape)
        except stamp.NoStamp:
            proto = None
        self._prototypes.setdefault(self._shape_key(shape, quick), []).append(proto)
        self._prototype_count += 1

    def _stamped(self, letter: Letter, shape: stamp.Skeleton | None, quick: bool) -> tuple | None:
        """(prototype, pages) for a letter drawn into a prototype of its shape; None if none will take it."""
        for proto in self._prototypes.get(self._shape_key(shape, quick), ()) if shape is not None else ():
            pages = proto and stamp.stamped_pages(proto, shape, f"{ANCHOR_PREFIX}{letter.sequence}",
                                                  letter.piece_id, self._image_options)
            if pages:
                return proto, pages
        return None

    def _static_layers(self, proto: stamp.Prototype) -> list[Layer]:
        """What every letter of the prototype's shape shares, written once: a layer per page."""
        if proto.static_layers is None:
            with self._fetcher.guarded():
                pdf = self._shell.copy(proto.hidden_pages()).write_pdf(**self._pdf_options)
            proto.static_layers = [(f"PkbStamp{digest}", pdf, number)
                                   for number, digest in enumerate(stamp.page_digests(pdf))]
        return proto.static_layers

    def shared_layout(self) -> SharedLayout | None:
        """The blocks every letter of this job shares, laid out once (None if the template has none)."""
        if self._shared is _NOT_YET:
            self._shared = self._build_shared_layout()
        return self._shared

    def _build_shared_layout(self) -> SharedLayout | None:
        probes = [Letter(n, f"PROBE-{n}", patient, codes) for n, (patient, codes) in enumerate(_PROBES, 1)]
        first, second = (self.body(probe) for probe in probes)
        candidates = shared_candidates(first, second)
        if not candidates:
            return None
        marked = mark(first, candidates, range(len(candidates)))
        pages = self._prototype_pages(probes[0], marked)
        self._expected_pages = len(pages)  # the first chunk's "Page n of m" guess: right first time, usually
        blocks = accepted_blocks(pages, candidates, first)
        if not blocks:
            return None
        only_shared = mark(first, [candidates[b.key] for b in blocks], [b.key for b in blocks])
        document = self._document(self._sections([probes[0]], [only_shared], [len(pages)]), _SHARED_ONLY_CSS)
        with self._fetcher.guarded():
            pdf = document.write_pdf(**self._pdf_options)
        shared = SharedLayout(tuple(runs_of(blocks, first)), pdf)
        self._shared_css = CSS(string=shared.css(), font_config=self._font_config)
        logger.debug("shared layout: %d of %d candidate blocks shared, in %d runs",
                     len(blocks), len(candidates), len(shared.runs))
        return shared

    def _prototype_pages(self, probe: Letter, body: str):
        totals = [1]
        for _ in range(_MAX_LAYOUT_PASSES):
            document = self._layout([probe], [body], totals)
            counts = pages_per_letter(document, [probe.sequence])
            if counts == totals:
                return document.pages
            totals = counts
        raise TemplateError(f"{self.template.name}: page counts did not settle after {_MAX_LAYOUT_PASSES} layouts")

    def _layout(self, letters: Sequence[Letter], bodies: Sequence[str], page_totals: Sequence[int],
                extra_css: CSS | None = None):
        return self._document(self._sections(letters, bodies, page_totals), extra_css)

    @staticmethod
    def _sections(letters: Sequence[Letter], bodies: Sequence[str], page_totals: Sequence[int]) -> str:
        return "\n".join(
            f'<section class="pkb-letter" id="{ANCHOR_PREFIX}{lt.sequence}" data-pages="{total}"'
            f' data-piece="{lt.piece_id}">\n{body}\n</section>'
            for lt, body, total in zip(letters, bodies, page_totals, strict=True)
        )

    def _document(self, sections: str, extra_css: CSS | None = None):
        html = (
            '<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8">'
            f'<link rel="stylesheet" href="{LETTER_STYLESHEET}"></head><body>{sections}</body></html>'
        )
        base_url = self.template.directory.as_uri() + "/"
        stylesheets = [self._layout_css] if extra_css is None else [self._layout_css, extra_css]
        with self._fetcher.guarded():
            return HTML(string=html, base_url=base_url, url_fetcher=self._fetcher).render(
                stylesheets=stylesheets, font_config=self._font_config, color_profiles=self._color_profiles,
                **self._pdf_options,  # the PDF variant decides colour handling at layout time too
            )

    def preflight(self, patients: Iterable[PatientRow]) -> None:
        """Before any code is issued: lay out and write one whole letter, with placeholder
        codes, so that a template reaching for a resource it may not read, or placing a box
        that would print on other patients' letters, stops the job now."""
        for patient in patients:
            trial = Letter(1, "PREFLIGHT", patient, _PLACEHOLDER_CODES)
            try:
                body = self.body(trial)
            except TemplateError:
                continue  # that row's own problem; it is reported when its letter is rendered
            self.render([trial], [body])
            self._refuse_fixed_boxes(trial, body)
            return

    def _refuse_fixed_boxes(self, trial: Letter, body: str) -> None:
        """WeasyPrint draws a fixed box on every page of a document, and a chunk of letters is one
        document: what one letter puts in a fixed box would print on every other letter of its chunk."""
        document = self._layout([trial], [body], [self._expected_pages])
        for page in document.pages:
            for box in wp.page_box(page).descendants(placeholders=True):  # a fixed box leaves a placeholder
                if box.style["position"] == "fixed":
                    tag = getattr(box, "element_tag", "an element")
                    raise TemplateError(
                        f"{self.template.name}/{LETTER_TEMPLATE}: <{tag}> is position: fixed, which prints on "
                        "every page of a chunk of letters, so one patient's details would reach other patients' "
                        "letters; place it with position: absolute inside the letter instead")


_PLACEHOLDER_CODES = CodePair("X" * 10, "X" * 10, dt.date(2000, 1, 1))
_NOT_YET = object()
FIT_BATCH = 500  # address blocks laid out together before any code is issued (more holds more memory, no faster)
# A 1x1 white PNG: stands in for the QR code where only the address is measured.
_BLANK_PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGP4DwABAQEA"
              "WaF9KQAAAABJRU5ErkJggg==")
_SHARED_ONLY_CSS = CSS(string=SHARED_ONLY_CSS)
# Two made-up patients who differ in every value a letter may print, so only truly shared text matches.
_PROBES = (
    (PatientRow(2, "PROBE-REF-A", "0000000000", "Mr", "Probe", "Alpha", None,
                ("1 Alpha Street", "ALPHATOWN", "AA1 1AA"), "AA1 1AA"),
     CodePair("AAAAAAAAAA", "aaaaaaaaaa", dt.date(2000, 1, 1))),
    (PatientRow(3, "", "0000000000", "", "Bea", "Betaworth-Ng", None,
                ("Flat 2", "22 Beta Road", "Betaby", "BETACASTER", "Betashire", "BB2 2BB"), "BB2 2BB"),
     CodePair("BBBBBBBBBB", "bbbbbbbbbb", dt.date(2001, 2, 2))),
)


def _address_block(body: str, template_name: str) -> str:
    """The template's address window element, cut out of one rendered letter body."""
    for span in element_spans(body) or ():
        classes = CLASS_ATTRIBUTE.search(span.start_tag)
        if classes and ADDRESS_WINDOW_CLASS in (classes.group(2) or classes.group(3) or "").split():
            return body[span.start:span.end]
    tree = tinyhtml5.parse(body, namespace_html_elements=False)
    for element in tree.iter():
        if ADDRESS_WINDOW_CLASS in (element.get("class") or "").split():
            return ElementTree.tostring(element, method="html", encoding="unicode")
    raise TemplateError(f"{template_name}/{LETTER_TEMPLATE} has no element with class {ADDRESS_WINDOW_CLASS!r}")


def pages_per_letter(document, sequences: Sequence[int]) -> list[int]:
    """Count each letter's pages from the anchor each letter's section carries."""
    counts = dict.fromkeys(sequences, 0)
    for number, page in enumerate(document.pages, 1):
        owners = [int(a.removeprefix(ANCHOR_PREFIX)) for a in page.anchors if a.startswith(ANCHOR_PREFIX)]
        if len(owners) != 1:
            raise TemplateError(f"page {number} of a chunk belongs to {len(owners)} letters; expected 1")
        counts[owners[0]] += 1
    return [counts[s] for s in sequences]


@dataclass(frozen=True)
class _Pages:
    """Pages from several documents, for what reads only a document's pages."""

    pages: list


def address_misfits(document) -> list[Misfit]:
    """Measure each letter's address block as laid out, with the real font: never print it clipped."""
    misfits = []
    seen: set[int] = set()
    for page in document.pages:
        (sequence,) = [int(a.removeprefix(ANCHOR_PREFIX)) for a in page.anchors if a.startswith(ANCHOR_PREFIX)]
        if sequence in seen:
            continue
        seen.add(sequence)
        misfit = _address_misfit(sequence, _address_window_box(page, sequence))
        if misfit:
            misfits.append(misfit)
    return misfits


def _section_row(path: Sequence) -> int | None:
    """The input row of the fit section a box is in."""
    for box in path:
        element = getattr(box, "element", None)
        anchor = element.get("id") or "" if element is not None and element.tag == "section" else ""
        if anchor.startswith(ANCHOR_PREFIX):
            return int(anchor.removeprefix(ANCHOR_PREFIX))
    return None


def _windows(box, section: int | None = None):
    """(input row, window box) for every address window under `box`, from the fit document."""
    for child in box.all_children() if hasattr(box, "all_children") else ():
        element = getattr(child, "element", None)
        if element is None:
            continue
        anchor = element.get("id") or ""
        if element.tag == "section" and anchor.startswith(ANCHOR_PREFIX):
            yield from _windows(child, int(anchor.removeprefix(ANCHOR_PREFIX)))
        elif ADDRESS_WINDOW_CLASS in (element.get("class") or "").split() and element is not box.element:
            yield section, child
        else:
            yield from _windows(child, section)


def _address_window_box(page, sequence: int):
    for box in wp.page_box(page).descendants():
        element = box.element
        if element is not None and ADDRESS_WINDOW_CLASS in (element.get("class") or "").split():
            return box
    raise TemplateError(f"letter {sequence}: the template has no element with class {ADDRESS_WINDOW_CLASS!r} on page 1")


def _address_misfit(sequence: int, window) -> Misfit | None:
    left, top = window.content_box_x(), window.content_box_y()
    lines = [box for box in window.descendants() if type(box).__name__ == "LineBox"]
    for number, line in enumerate(lines, 1):
        right = max((child.position_x + child.margin_width() for child in line.children), default=left)
        if right - left > window.width + 0.01:
            return Misfit(sequence, Reason.ADDRESS_TOO_WIDE,
                          f"address line {number} is {(right - left) * MM_PER_PX:.1f} mm wide in the letter's font; "
                          f"the envelope window is {window.width * MM_PER_PX:.1f} mm: shorten that line "
                          "(for a name, use initials for middle names)")
    bottom = max((line.position_y + line.height for line in lines), default=top)
    if bottom - top > window.height + 0.01:
        return Misfit(sequence, Reason.ADDRESS_TOO_TALL,
                      f"the address is {(bottom - top) * MM_PER_PX:.1f} mm tall in the letter's font; the envelope "
                      f"window is {window.height * MM_PER_PX:.1f} mm: use fewer address lines")
    return None


def fit_css(envelope: EnvelopeProfile) -> str:
    """Many address windows to a (tall) page, each in a box of the window's size."""
    w = envelope.window
    return f"""
@page {{ size: {w.width + 20:.2f}mm 5000mm; margin: 5mm; }}
section.pkb-fit {{ display: block; position: relative; width: {w.width}mm; height: {w.height}mm; margin: 0 0 5mm;
  break-inside: avoid; }}
section.pkb-fit .pkb-address-window {{ position: static; }}
"""


def layout_css(envelope: EnvelopeProfile) -> str:
    """The geometry every letter shares; author CSS loaded last, so a template cannot move the window."""
    m, w = envelope.margins, envelope.window
    return f"""
html, body {{ margin: 0; padding: 0; }}
@page {{ size: A4 portrait; margin: {m.top}mm {m.right}mm {m.bottom}mm {m.left}mm; }}
@page pkb-letter:nth(1 of pkb-letter) {{ counter-reset: page 1; }}
section.pkb-letter {{
  display: flow-root; page: pkb-letter; break-before: page; position: relative;
  string-set: pkb-letter-pages attr(data-pages), pkb-piece-id attr(data-piece);
}}
.pkb-address-window {{
  position: absolute; margin: 0; padding: 0; overflow: visible; white-space: nowrap;
  left: {w.left - m.left:.2f}mm; top: {w.top - m.top:.2f}mm; width: {w.width}mm; height: {w.height}mm;
}}
.pkb-body {{ margin-top: {envelope.body_top - m.top:.2f}mm; }}
"""


# -- the chunk function: what a render worker runs, here or on another machine -------------------


@dataclass(frozen=True)
class RenderSpec:
    """Everything a render worker needs besides the letters. Picklable; no journal, no network."""

    job_id: str
    template_dir: Path
    letter: LetterSettings
    page: EnvelopeProfile  # the envelope profile with the marks' space reserved
    print_css: str = ""
    pdf_options: tuple[tuple[str, Any], ...] = ()
    template_digest: str = ""  # a worker keeps one renderer per spec: an edited template is a new spec
    share_layout: bool = True  # lay out the text every letter shares once per job

    def renderer(self) -> ChunkRenderer:
        return ChunkRenderer(LetterTemplate(self.template_dir), self.letter, self.page, self.print_css,
                             dict(self.pdf_options), share_layout=self.share_layout)


@dataclass(frozen=True)
class ChunkTask:
    """Letters to lay out together, numbered from `first_sequence` in order."""

    index: int
    first_sequence: int
    items: tuple[tuple[PatientRow, CodePair], ...]


@dataclass(frozen=True)
class Refusal:
    """A letter the template or the envelope window would not let us print, and why."""

    patient: PatientRow
    reason: Reason
    detail: str


@dataclass(frozen=True)
class ChunkOutcome:
    task: ChunkTask
    letters: tuple[Letter, ...]  # what was laid out, numbered without gaps from task.first_sequence
    pdf: bytes | None  # None when no letter of the chunk could be printed
    page_counts: tuple[int, ...]
    refused: tuple[Refusal, ...] = ()


_renderers: dict[RenderSpec, ChunkRenderer] = {}


@dataclass(frozen=True)
class FitSpec:
    """Everything an address-fit worker needs: the template, its settings and the page. Picklable."""

    template_dir: Path
    letter: LetterSettings
    page: EnvelopeProfile


_fit_renderers: dict[FitSpec, ChunkRenderer] = {}


def fit_batch(spec: FitSpec, patients: Sequence[PatientRow]) -> dict[int, Misfit | TemplateError]:
    """`ChunkRenderer.check_addresses` in a worker process, which keeps its renderer between batches."""
    renderer = _fit_renderers.get(spec)
    if renderer is None:
        renderer = _fit_renderers.setdefault(
            spec, ChunkRenderer(LetterTemplate(spec.template_dir), spec.letter, spec.page))
    return renderer.check_addresses(patients)


def render_chunk(spec: RenderSpec, task: ChunkTask) -> ChunkOutcome:
    """Lay out one chunk, leaving out letters the template fails on or whose address does not fit.

    Sequence numbers are given after those are left out, so the pieces of a chunk are
    numbered without gaps. A worker process keeps its renderer (fonts, CSS) between chunks.
    """
    renderer = _renderers.get(spec)
    if renderer is None:
        renderer = _renderers.setdefault(spec, spec.renderer())
    candidates = list(task.items)
    refused: list[Refusal] = []
    while True:
        letters = [Letter(n, f"{spec.job_id}-{n:06d}", patient, codes)
                   for n, (patient, codes) in enumerate(candidates, task.first_sequence)]
        bodies, failed = _bodies(renderer, letters)
        if not failed and letters:
            try:
                rendered = renderer.render(letters, bodies)
            except TemplateResourceError:
                failed = _letters_refusing_resources(renderer, letters, bodies)
                if not failed:
                    raise
            else:
                failed = [(lt, m) for lt in letters for m in rendered.misfits if m.sequence == lt.sequence]
                if not failed:
                    return ChunkOutcome(task, tuple(letters), rendered.pdf, rendered.page_counts, tuple(refused))
        if not letters:
            return ChunkOutcome(task, (), None, (), tuple(refused))
        refused.extend(_refusal(letter, problem) for letter, problem in failed)
        left_out = {letter.sequence for letter, _ in failed}
        candidates = [(lt.patient, lt.codes) for lt in letters if lt.sequence not in left_out]


def _refusal(letter: Letter, problem: TemplateError | Misfit) -> Refusal:
    if isinstance(problem, Misfit):
        return Refusal(letter.patient, problem.reason, problem.detail)
    return Refusal(letter.patient, Reason.TEMPLATE_ERROR, str(problem))


def _bodies(renderer: ChunkRenderer, letters: Sequence[Letter]) -> tuple[list[str], list[tuple[Letter, TemplateError]]]:
    bodies, failed = [], []
    for letter in letters:
        try:
            bodies.append(renderer.body(letter))
        except TemplateError as exc:
            failed.append((letter, exc))
    return bodies, failed


def _letters_refusing_resources(
    renderer: ChunkRenderer, letters: Sequence[Letter], bodies: Sequence[str]
) -> list[tuple[Letter, TemplateResourceError]]:
    """The letters that, laid out alone, ask for a resource outside the template folder.

    The preflight showed the template itself asks for none, so these rows' own data
    did (say, a URL in a reference column); slow, but only ever on this error path.
    """
    refused = []
    for letter, body in zip(letters, bodies, strict=True):
        try:
            renderer.render([letter], [body])
        except TemplateResourceError as exc:
            refused.append((letter, exc))
    return refused
