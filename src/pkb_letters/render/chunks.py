"""Render: letters in, one PDF per chunk of letters out, with each letter's page count.

The customer's template (`letter.html` + `letter.css` in a folder) is Jinja
rendered once per letter; the letters of a chunk then go through ONE WeasyPrint
document, which is what makes rendering fast. This module adds only what every
letter needs whatever its wording: page size and margins, the address window
from the envelope profile, a new page per letter and per-letter page numbers
(`counter(page)` and `string(pkb-letter-pages)` for "Page n of m").

`ChunkRenderer` runs a chunk's letters (each a `ChunkLetter`) through three layout
paths, each its own class: `Stamping` (drawn into a prototype of the letter's shape),
`SharedLayer` (laid out around placeholders for the job's shared blocks) and
`FullLayout` (WeasyPrint documents, which the other two start from). The fit stage's
`AddressFit` (fit/address_fit.py) measures address blocks with the same layout, before any code is issued.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode, urlsplit

import jinja2
import zxingcpp
from PIL import Image
from weasyprint import CSS, HTML
from weasyprint.document import Document
from weasyprint.text.fonts import FontConfiguration

from pkb_letters import variants
from pkb_letters.config import LetterSettings
from pkb_letters.envelope import EnvelopeProfile
from pkb_letters.errors import InvariantError, NoWelshTemplate, TemplateError, TemplateResourceError
from pkb_letters.fit.address_fit import PLACEHOLDER_CODES, AddressFit
from pkb_letters.fit.window import ANCHOR_PREFIX, Misfit, address_misfits
from pkb_letters.records import CodePair, Letter, PatientRow, Reason
from pkb_letters.render import stamp
from pkb_letters.render import weasyprint_adapter as wp
from pkb_letters.render.font_subsetting import quiet_fallback_warnings
from pkb_letters.render.shared_layout import (
    SHARED_ONLY_CSS,
    Layer,
    SharedLayout,
    accepted_blocks,
    mark,
    runs_of,
    shared_candidates,
    underlay,
)
from pkb_letters.render.stamp import Prototype
from pkb_letters.render.template_fetcher import TemplateFolderFetcher
from pkb_letters.render.template_sandbox import render_error, template_environment
from pkb_letters.variants import WELSH_MONTHS

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

LETTER_TEMPLATE = "letter.html"
WELSH_TEMPLATE = "letter.cy.html"  # the Welsh letter, beside the English one
LETTER_STYLESHEET = "letter.css"
# Where a bilingual letter's English part starts: a bookmark, not an id, since every letter of a chunk
# (one document) has one and stamped pages keep their prototype's bookmarks
SECOND_PART_BOOKMARK = "pkb-second-language"
_MAX_LAYOUT_PASSES = 3

logger = logging.getLogger(__name__)
# on import, so in every render worker too: without libharfbuzz-subset0 WeasyPrint warns per chunk and font
quiet_fallback_warnings()


@dataclass(frozen=True)
class RenderedChunk:
    pdf: bytes | None  # None when any letter is a misfit: the chunk must be laid out again without it
    page_counts: tuple[int, ...]  # one per letter, in the chunk's order
    misfits: tuple[Misfit, ...] = ()
    shared_letters: int = 0  # letters drawn with the job's shared layout
    stamped_letters: int = 0  # letters drawn into a prototype of their shape without being laid out
    second_parts: tuple[int | None, ...] = ()  # per letter: the page its second language starts on


class LetterTemplate:
    """A template folder: `letter.html` (one letter's body, Jinja) and `letter.css`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        if not (self.directory / LETTER_TEMPLATE).is_file():
            raise TemplateError(f"template folder {directory} has no {LETTER_TEMPLATE}")
        self._env = template_environment(self.directory)
        self._env.filters["long_date"] = _long_date_filter
        self._template = self._load(LETTER_TEMPLATE)
        self._welsh = self._load(WELSH_TEMPLATE) if (self.directory / WELSH_TEMPLATE).is_file() else None

    def _load(self, name: str) -> jinja2.Template:
        try:
            return self._env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{exc.filename or name}, line {exc.lineno}: {exc.message}") from exc

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def has_welsh(self) -> bool:
        """Whether the folder holds a Welsh letter (`letter.cy.html`)."""
        return self._welsh is not None

    def render_body(self, context: dict[str, Any], welsh: bool = False) -> str:
        """The English letter, or with `welsh` the Welsh one (TemplateError if the folder has none)."""
        template, file = (self._welsh, WELSH_TEMPLATE) if welsh else (self._template, LETTER_TEMPLATE)
        if template is None:
            raise NoWelshTemplate(
                f"the row asks for a Welsh letter and template {self.name} has none ({WELSH_TEMPLATE}): "
                "add the Welsh letter to the template, or change the row's Language"
            )
        try:
            return template.render({**context, "language": "cy" if welsh else "en"})
        except Exception as exc:  # whatever the template's code raises, it is the template's error
            raise render_error(exc, self.directory, f"{self.name}/{file}") from exc


def long_date(day: dt.date, language: str = "en") -> str:
    """'21 November 2026', the form NHS letters use; in Welsh ("cy") '21 Tachwedd 2026'."""
    if language == "cy":
        return f"{day.day} {WELSH_MONTHS[day.month - 1]} {day.year}"
    return f"{day.day} {day:%B %Y}"


@jinja2.pass_context
def _long_date_filter(context: Any, day: dt.date) -> str:
    """`long_date` in the language of the letter being rendered (the Welsh letter gets Welsh months)."""
    return long_date(day, context.get("language", "en"))


def letter_context(letter: Letter, settings: LetterSettings, qr: bool = True) -> dict[str, Any]:
    """What a template may use. Deliberately no date of birth and no NHS number."""
    patient = letter.patient
    join_url = f"{settings.join_url}?{urlencode({'t1': letter.codes.invitation_code, 't2': letter.codes.access_code})}"
    return {
        "letter": {
            "sequence": letter.sequence,
            "piece_id": letter.piece_id,
            "date": settings.date,
            "format": variant_of(patient, settings).format,
        },
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
    bitmap = code.to_image(scale=1, add_quiet_zones=False)
    height, width = bitmap.shape
    modules = memoryview(cast("ReadableBuffer", bitmap))  # cast: zxing-cpp's stub leaves out its buffer protocol
    buffer = io.BytesIO()
    Image.frombytes("L", (width, height), modules.tobytes()).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _website(join_url: str) -> str:
    parts = urlsplit(join_url)
    return (parts.netloc + parts.path).rstrip("/")


def variant_of(patient: PatientRow, settings: LetterSettings) -> variants.Variant:
    """The patient's letter: the row's format and language, else the job's."""
    return variants.variant_of(patient.format, patient.language, settings.format, settings.language)


def variant_body(template: LetterTemplate, context: dict[str, Any], variant: variants.Variant, blank_side: bool) -> str:
    """A letter that is not standard English: wrapped in one element whose classes name its format and
    language, so its layout (and its shape, render/stamp.py) is never taken for a standard letter's.
    Welsh then English: the Welsh letter, then (after a blank page when `blank_side`, so that the English
    starts on the front of a sheet) the English one, whose address block pkb-letters' CSS leaves out."""
    if variant.language == variants.WELSH_THEN_ENGLISH:
        blank = '<div class="pkb-blank-side"></div>' if blank_side else ""
        inner = (
            template.render_body(context, welsh=True)
            + f'{blank}<div class="pkb-second-language" lang="en-GB">'
            + template.render_body(context)
            + "</div>"
        )
    else:
        inner = template.render_body(context, welsh=variant.language == variants.WELSH)
    lang = "en-GB" if variant.language == variants.ENGLISH else "cy"
    return (
        f'<div class="pkb-variant pkb-format-{variant.format} pkb-language-{variant.language}" lang="{lang}">'
        f"{inner}</div>"
    )


def variant_css(settings: LetterSettings, envelope: EnvelopeProfile) -> str:
    """Large print (body text at `[letter] large_print_pt`, headings in proportion; the address block
    untouched, so it still fits the window) and the second language of a bilingual letter (on a new
    page, without a second address block). A variant's headings make no bookmarks: stamping
    (render/stamp.py) never takes a letter whose bookmarks name its texts, and a variant has no shared
    layer to hold them. Unused by a standard English letter."""
    size = settings.large_print_pt
    second_body_top = min(55.0, envelope.body_top - envelope.margins.top)
    return f"""
.pkb-format-large-print .pkb-body {{ font-size: {size:g}pt !important; }}
.pkb-format-large-print .pkb-body * {{ font-size: 1em !important; }}
.pkb-format-large-print .pkb-body h1 {{ font-size: 1.35em !important; }}
.pkb-format-large-print .pkb-body h2 {{ font-size: 1.2em !important; }}
.pkb-format-large-print .pkb-body h3 {{ font-size: 1.1em !important; }}
.pkb-format-large-print .pkb-body :is(ol, ul) {{ padding-left: 1.6em !important; }}
.pkb-second-language {{
  display: flow-root; position: relative; break-before: page;
  bookmark-level: 1; bookmark-label: "{SECOND_PART_BOOKMARK}";
}}
.pkb-second-language .pkb-address-window {{ display: none !important; }}
.pkb-second-language .pkb-body {{ margin-top: {second_body_top:.2f}mm !important; }}
.pkb-blank-side {{ break-before: page; }}
.pkb-variant :is(h1, h2, h3, h4, h5, h6) {{ bookmark-level: none; }}
"""


def second_part_start(pages: Sequence) -> int | None:
    """The index, among a letter's pages, of the page its second language starts on (None: no second part)."""
    for index, page in enumerate(pages):
        if any(bookmark[1] == SECOND_PART_BOOKMARK for bookmark in page.bookmarks):
            return index
    return None


class Placeholders(Enum):
    """Whether a letter's shared blocks are drawn from the job's shared layer."""

    NONE = "none"  # the job has no shared layer, or the letter's HTML around the shared blocks differs
    SET = "set"  # each run of shared blocks is an empty placeholder; the shared layer draws the blocks
    MOVED = "moved"  # laid out with placeholders that did not land where the shared layer draws: laid out in full


class LayoutPath(Enum):
    """How a letter's pages were made."""

    PENDING = "pending"
    LAID_OUT = "laid out"  # by WeasyPrint (around placeholders if its Placeholders is SET)
    STAMPED = "stamped"  # drawn into a prototype of its shape, never laid out


@dataclass
class ChunkLetter:
    """One letter of a chunk on its way through the layout paths."""

    letter: Letter
    body: str  # the letter's whole HTML
    placeholder_body: str | None  # its HTML with each run of shared blocks a placeholder, if the shared layer fits it
    shape: stamp.Skeleton | None  # of the HTML it is laid out with; None when it is never stamped
    placeholders: Placeholders = Placeholders.NONE
    path: LayoutPath = LayoutPath.PENDING
    pages: list = field(default_factory=list)  # as printed
    prototype: stamp.Prototype | None = None  # the prototype whose layer its pages are drawn over

    @property
    def html(self) -> str:
        """What WeasyPrint lays out for this letter."""
        if self.placeholders is not Placeholders.SET:
            return self.body
        if self.placeholder_body is None:
            raise InvariantError(f"letter {self.letter.sequence} is set to placeholders it was never given")
        return self.placeholder_body

    @property
    def anchor(self) -> str:
        return f"{ANCHOR_PREFIX}{self.letter.sequence}"


class FullLayout:
    """WeasyPrint documents of letters with one template, envelope and font set: the path every letter
    can take, and what the shared layer and stamping start from."""

    def __init__(
        self, template: LetterTemplate, envelope: EnvelopeProfile, print_css: str, pdf_options: Mapping[str, Any]
    ) -> None:
        self.directory = template.directory
        self.font_config = FontConfiguration()
        self._color_profiles: dict = {}  # filled by an @color-profile rule in print_css: the output intent
        self._css = CSS(
            string=layout_css(envelope) + print_css, font_config=self.font_config, color_profiles=self._color_profiles
        )
        self.pdf_options = dict(pdf_options)  # WeasyPrint's write_pdf options: the PDF variant
        self.fetcher = TemplateFolderFetcher(template.directory)
        self.expected_pages = 1  # the first pass's guess at each letter's "Page n of m"
        self._shell: Document | None = None  # an empty WeasyPrint document: what chunks of pages are written through

    def css(self, string: str) -> CSS:
        return CSS(string=string, font_config=self.font_config)

    def lay_out(
        self, letters: Sequence[Letter], bodies: Sequence[str], page_totals: Sequence[int], extra_css: CSS | None = None
    ):
        return self.document(_sections(letters, bodies, page_totals), extra_css)

    def document(self, sections: str, extra_css: CSS | None = None):
        html = (
            '<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8">'
            f'<link rel="stylesheet" href="{LETTER_STYLESHEET}"></head><body>{sections}</body></html>'
        )
        base_url = self.directory.as_uri() + "/"
        stylesheets = [self._css] if extra_css is None else [self._css, extra_css]
        with self.fetcher.guarded():
            return HTML(string=html, base_url=base_url, url_fetcher=self.fetcher).render(
                stylesheets=stylesheets,
                font_config=self.font_config,
                color_profiles=self._color_profiles,
                **self.pdf_options,  # the PDF variant decides colour handling at layout time too
            )

    def settled(self, letter: Letter, body: str, name: str) -> list:
        """One letter's pages, laid out until its "Page n of m" settles."""
        totals = [1]
        for _ in range(_MAX_LAYOUT_PASSES):
            document = self.lay_out([letter], [body], totals)
            counts = pages_per_letter(document, [letter.sequence])
            if counts == totals:
                return document.pages
            totals = counts
        raise TemplateError(f"{name}: page counts did not settle after {_MAX_LAYOUT_PASSES} layouts")

    def settle(self, document, counts: Sequence[int]) -> None:
        """A chunk's layout settled: the next chunk's first guess, and the shell pages are written through."""
        self.expected_pages = max(set(counts), key=counts.count)
        if self._shell is None:
            self._shell = document.copy([])

    def write(self, pages: Sequence) -> bytes:
        """Pages of any of this layout's documents, as one PDF."""
        if self._shell is None:
            raise InvariantError("pages written before any chunk's layout settled")
        with self.fetcher.guarded():
            # a chunk is an intermediate file, copied into a print file that gets its own /ID; without
            # one, pydyf need not serialise (and compress) every object a second time to hash it
            return self._shell.copy(list(pages)).write_pdf(**{**self.pdf_options, "pdf_identifier": False})

    def write_document(self, document) -> bytes:
        with self.fetcher.guarded():
            return document.write_pdf(**self.pdf_options)


class SharedLayer:
    """The blocks every letter of the job shares, laid out once (render/shared_layout.py), and each letter's
    HTML with those blocks as placeholders."""

    def __init__(self, full: FullLayout, body: Callable[[Letter], str], name: str) -> None:
        self._full, self._body, self._name = full, body, name
        self.css: CSS | None = None  # the placeholders' sizes, once the layout is built

    @cached_property
    def layout(self) -> SharedLayout | None:
        """Built on first use; None if the template has no shared blocks."""
        probes = [Letter(n, f"PROBE-{n}", patient, codes) for n, (patient, codes) in enumerate(_PROBES, 1)]
        first, second = (self._body(probe) for probe in probes)
        candidates = shared_candidates(first, second)
        if not candidates:
            return None
        marked = mark(first, candidates, range(len(candidates)))
        pages = self._full.settled(probes[0], marked, self._name)
        self._full.expected_pages = len(pages)  # the first chunk's "Page n of m" guess: right first time, usually
        blocks = accepted_blocks(pages, candidates, first)
        if not blocks:
            return None
        only_shared = mark(first, [candidates[b.key] for b in blocks], [b.key for b in blocks])
        document = self._full.document(_sections([probes[0]], [only_shared], [len(pages)]), _SHARED_ONLY_CSS)
        shared = SharedLayout(tuple(runs_of(blocks, first)), self._full.write_document(document))
        self.css = self._full.css(shared.css())
        logger.debug(
            "shared layout: %d of %d candidate blocks shared, in %d runs",
            len(blocks),
            len(candidates),
            len(shared.runs),
        )
        return shared

    def moved(self, letters: Sequence[ChunkLetter], pages: Sequence, counts: Sequence[int]) -> list[ChunkLetter]:
        """The letters laid out around placeholders that did not land where the shared blocks were laid out."""
        moved, first = [], 0
        for letter, count in zip(letters, counts, strict=True):
            if letter.placeholders is Placeholders.SET and not self._built().fits(pages[first : first + count]):
                moved.append(letter)
            first += count
        return moved

    def _built(self) -> SharedLayout:
        """The shared layout, for a letter given placeholders: only a shared layout gives them."""
        if self.layout is None:
            raise InvariantError("a letter has placeholders, but the template has no shared layout")
        return self.layout

    def layers(self, letter: ChunkLetter) -> list[list[Layer]]:
        """The shared layer's page (if any) under each of the letter's pages."""
        if letter.placeholders is not Placeholders.SET or self.layout is None:
            return [[] for _ in letter.pages]
        return self.layout.layers(len(letter.pages))


class Stamping:
    """Letters of a shape laid out before, drawn into that shape's prototype (render/stamp.py) instead of laid out."""

    def __init__(self, full: FullLayout, enabled: bool) -> None:
        self._full = full
        self.enabled = enabled
        self._image_options = stamp.image_options(full.pdf_options)
        self._prototypes: dict[tuple[str, bool], list[stamp.Prototype | None]] = {}  # None: never stamped
        self._count = 0

    def prototypes(self) -> Iterator[Prototype]:
        return (proto for known in self._prototypes.values() for proto in known if proto is not None)

    def shape(self, html: str) -> stamp.Skeleton | None:
        return stamp.skeleton(html) if self.enabled else None

    def seeds(self, letters: Sequence[ChunkLetter]) -> list[ChunkLetter]:
        """The first letter of each shape no prototype has been made for yet."""
        seeds, seen = [], set()
        for letter in letters:
            key = _shape_key(letter)
            if key is not None and key not in seen and self.is_new(letter):
                seen.add(key)
                seeds.append(letter)
        return seeds

    def is_new(self, letter: ChunkLetter) -> bool:
        """Whether the letter, laid out, should become a prototype: a shape has one per width its
        box-sized texts take (a piece id with a kerned "11" in it, say), up to a limit."""
        key = _shape_key(letter)
        if key is None or self._count >= stamp.MAX_SHAPES:
            return False
        known = self._prototypes.get(key, [])
        return None not in known and len(known) < stamp.MAX_PROTOTYPES_A_SHAPE

    def remember(self, letter: ChunkLetter, pages: list) -> None:
        """Make the laid-out letter its shape's prototype, unless one already covers it."""
        key, shape = _shape_key(letter), letter.shape
        if key is None or shape is None or not self.is_new(letter) or self._stamped(letter):
            return  # no shape; its places are full; or an earlier letter of this chunk already covers this one
        try:
            proto = stamp.prototype(pages, letter.anchor, letter.letter.piece_id, shape)
        except stamp.NoStamp:
            proto = None
        self._prototypes.setdefault(key, []).append(proto)
        self._count += 1

    def stamp(self, letter: ChunkLetter) -> None:
        """Draw the letter into a prototype of its shape, if one will take it."""
        found = self._stamped(letter)
        if found is not None:
            letter.prototype, letter.pages = found
            if letter.path is LayoutPath.PENDING:
                letter.path = LayoutPath.STAMPED

    def _stamped(self, letter: ChunkLetter) -> tuple[Prototype, list] | None:
        key, shape = _shape_key(letter), letter.shape
        if key is None or shape is None:
            return None  # a letter of no shape is laid out
        for proto in self._prototypes.get(key, ()):
            if proto is None:
                continue  # the shape's letter that could not become a prototype
            pages = stamp.stamped_pages(proto, shape, letter.anchor, letter.letter.piece_id, self._image_options)
            if pages:
                return proto, pages
        return None

    def layers(self, letter: ChunkLetter) -> list[list[Layer]]:
        """What every letter of the prototype's shape shares, written once: one layer under each page."""
        proto = letter.prototype
        if proto is None:
            return [[] for _ in letter.pages]
        if proto.static_layers is None:
            pdf = self._full.write(proto.hidden_pages())
            proto.static_layers = [
                (f"PkbStamp{digest}", pdf, number) for number, digest in enumerate(stamp.page_digests(pdf))
            ]
        return [[layer] for layer in proto.static_layers[: len(letter.pages)]]


def _shape_key(letter: ChunkLetter) -> tuple[str, bool] | None:
    return None if letter.shape is None else (letter.shape.key, letter.placeholders is Placeholders.SET)


class ChunkRenderer:
    """Lays out chunks of letters with one template, envelope and font set: each letter stamped into a
    prototype of its shape where one takes it, else laid out around the shared layer's placeholders
    where they land where the shared blocks were, else laid out in full."""

    def __init__(
        self,
        template: LetterTemplate,
        settings: LetterSettings,
        envelope: EnvelopeProfile,
        print_css: str = "",
        pdf_options: Mapping[str, Any] | None = None,
        share_layout: bool | None = None,
    ) -> None:
        self.template = template
        self.settings = settings
        # the shared layout and stamping read WeasyPrint's internals: by default, only on a tested version
        self.share_layout = wp.check().fast_path if share_layout is None else share_layout
        self.envelope = envelope
        self.full = FullLayout(template, envelope, print_css + variant_css(settings, envelope), pdf_options or {})
        self.shared = SharedLayer(self.full, self.body, template.name)
        # a tagged PDF's structure tree is built from the boxes as they are drawn, which stamping skips
        self.stamping = Stamping(self.full, self.share_layout and not stamp.tagged(self.full.pdf_options))
        self.fit = AddressFit(
            self.full, self.body, f"{template.name}/{LETTER_TEMPLATE}", envelope, self.stamping.enabled
        )

    def body(self, letter: Letter, qr: bool = True, blank_side: bool = False) -> str:
        """One letter's HTML; raises TemplateError for this letter alone. Without `qr`, a blank
        stands in for the QR code (for measuring the address, which never needs it); `blank_side`
        puts a blank page before a bilingual letter's second language (see `variant_body`)."""
        context = letter_context(letter, self.settings, qr)
        variant = variant_of(letter.patient, self.settings)
        if variant.plain:
            return self.template.render_body(context)
        return variant_body(self.template, context, variant, blank_side)

    def check_addresses(self, patients: Sequence[PatientRow]) -> dict[int, Misfit | TemplateError]:
        """Before any code is issued: lay out each patient's address block alone, with the
        template's own markup and CSS, and report (by input row) those that would not print."""
        return self.fit.check(patients)

    def shared_layout(self) -> SharedLayout | None:
        """The blocks every letter of this job shares, laid out once (None if the template has none)."""
        return self.shared.layout

    def render(self, letters: Sequence[Letter], bodies: Sequence[str]) -> RenderedChunk:
        """Lay out letters as one document: shared blocks from the job's shared layout where a letter
        allows it, everything else in full; a letter whose placeholders moved is laid out again in full.
        A letter of a shape laid out before (render/stamp.py) is not laid out at all: its own texts are drawn
        into its shape's prototype."""
        shared = self.shared.layout if self.share_layout else None
        chunk = [self._chunk_letter(letter, body, shared) for letter, body in zip(letters, bodies, strict=True)]
        pending, seeded = chunk, False
        while pending:
            for letter in pending:
                self.stamping.stamp(letter)
            to_lay_out = [letter for letter in pending if letter.path is LayoutPath.PENDING]
            seeds = [] if seeded else self.stamping.seeds(to_lay_out)
            if seeds and len(seeds) < len(to_lay_out):
                to_lay_out, seeded = seeds, True  # one letter of each new shape first: the rest may stamp
            misfit = self._lay_out(to_lay_out, shared)
            if misfit is not None:
                return misfit  # the chunk is laid out again without the misfits
            pending = [letter for letter in pending if letter.path is LayoutPath.PENDING]
        counts = tuple(len(letter.pages) for letter in chunk)
        misfits = address_misfits(_Pages([page for letter in chunk for page in letter.pages]))
        if misfits:
            return RenderedChunk(None, counts, tuple(misfits))
        return RenderedChunk(
            self._write(chunk),
            counts,
            shared_letters=sum(1 for lt in chunk if lt.placeholders is Placeholders.SET),
            stamped_letters=sum(1 for lt in chunk if lt.path is LayoutPath.STAMPED),
            second_parts=tuple(second_part_start(letter.pages) for letter in chunk),
        )

    def _chunk_letter(self, letter: Letter, body: str, shared: SharedLayout | None) -> ChunkLetter:
        if not variant_of(letter.patient, self.settings).plain:
            shared = None  # the shared layer is laid out from standard English letters: never under a variant
        placeholder_body = shared.placeholders(body) if shared else None
        return ChunkLetter(
            letter,
            body,
            placeholder_body,
            self.stamping.shape(placeholder_body or body),
            Placeholders.SET if placeholder_body else Placeholders.NONE,
        )

    def _lay_out(self, letters: Sequence[ChunkLetter], shared: SharedLayout | None) -> RenderedChunk | None:
        """Lay the letters out with WeasyPrint (until "Page n of m" settles); a letter of a shape not seen
        before becomes that shape's prototype, and a letter a prototype takes is then stamped from it, so
        it prints as its shape's other letters do. A RenderedChunk of misfits if any."""
        if not letters:
            return None
        page_totals = [self.full.expected_pages] * len(letters)
        for _ in range(_MAX_LAYOUT_PASSES + 1):
            new = [self.stamping.is_new(letter) for letter in letters]
            bodies = [
                stamp.marked(letter.html, letter.shape) if is_new and letter.shape is not None else letter.html
                for letter, is_new in zip(letters, new, strict=True)
            ]
            document = self.full.lay_out(
                [letter.letter for letter in letters], bodies, page_totals, self.shared.css if shared else None
            )
            counts = pages_per_letter(document, [letter.letter.sequence for letter in letters])
            misfits = address_misfits(document)
            if misfits:
                return RenderedChunk(None, tuple(counts), tuple(misfits))
            moved = self.shared.moved(letters, document.pages, counts) if shared else []
            for letter in moved:
                letter.placeholders = Placeholders.MOVED
                letter.shape = letter.shape and stamp.skeleton(letter.html)
            if counts == page_totals and not moved:
                self.full.settle(document, counts)
                self._laid_out(letters, document.pages, counts, new)
                return None
            page_totals = counts  # "Page n of m" changed the layout: lay out again with real totals
        raise TemplateError(f"{self.template.name}: page counts did not settle after {_MAX_LAYOUT_PASSES} layouts")

    def _laid_out(
        self, letters: Sequence[ChunkLetter], pages: list, counts: Sequence[int], new: Sequence[bool]
    ) -> None:
        first = 0
        for letter, count, is_new in zip(letters, counts, new, strict=True):
            letter.pages, letter.path = pages[first : first + count], LayoutPath.LAID_OUT
            first += count
            if is_new:
                self.stamping.remember(letter, letter.pages)
        for letter in letters:
            letter.shape = self.stamping.shape(letter.html)
            if self.stamping.enabled:
                self.stamping.stamp(letter)

    def _write(self, chunk: Sequence[ChunkLetter]) -> bytes:
        """The chunk's PDF: each letter's own drawing over its shared layer and its shape's layer, if any."""
        layers = []
        for letter in chunk:
            for shared, stamped in zip(self.shared.layers(letter), self.stamping.layers(letter), strict=True):
                layers.append([*shared, *stamped])
        return underlay(self.full.write([page for letter in chunk for page in letter.pages]), layers)

    def trial_letter(self, patients: Iterable[PatientRow]) -> bool | None:
        """Before any code is issued: lay out and write one whole letter, with placeholder
        codes, so that a template reaching for a resource it may not read, placing a box
        that would print on other patients' letters, or printing no codes, stops the job now.
        Gives whether the template prints the QR code (what the read-back then expects on every
        letter), or None when no patient's letter could be tried."""
        for patient in patients:
            trial = Letter(1, "TRIAL", patient, PLACEHOLDER_CODES)
            try:
                body = self.body(trial)
            except TemplateError:
                continue  # that row's own problem; it is reported when its letter is rendered
            rendered = self.render([trial], [body])
            self._refuse_fixed_boxes(trial, body)
            self._refuse_no_codes(rendered.pdf)
            return letter_context(trial, self.settings)["codes"]["qr_svg"] in body
        return None

    def _refuse_no_codes(self, pdf: bytes | None) -> None:
        """The run reads every letter's codes back from its first page (`check.readback`): a template
        that does not print both, as text, would fail every letter after PKB had issued their codes."""
        if pdf is None:
            return
        import pypdfium2  # only here: render workers never try a letter

        document = pypdfium2.PdfDocument(pdf)
        try:
            text = document[0].get_textpage().get_text_range()
        finally:
            document.close()
        if "".join(text.split()).count(PLACEHOLDER_CODES.invitation_code) < 2:
            raise TemplateError(
                f"{self.template.name}/{LETTER_TEMPLATE} does not print the invitation code and the access code "
                "as text on the letter's first page ({{ codes.invitation }} and {{ codes.access }}): every letter's "
                "codes are read back from its print file, so a letter without them could never be verified"
            )

    def _refuse_fixed_boxes(self, trial: Letter, body: str) -> None:
        """WeasyPrint draws a fixed box on every page of a document, and a chunk of letters is one
        document: what one letter puts in a fixed box would print on every other letter of its chunk."""
        document = self.full.lay_out([trial], [body], [self.full.expected_pages])
        for page in document.pages:
            for box in wp.page_box(page).descendants(placeholders=True):  # a fixed box leaves a placeholder
                if box.style["position"] == "fixed":
                    tag = getattr(box, "element_tag", "an element")
                    raise TemplateError(
                        f"{self.template.name}/{LETTER_TEMPLATE}: <{tag}> is position: fixed, which prints on "
                        "every page of a chunk of letters, so one patient's details would reach other patients' "
                        "letters; place it with position: absolute inside the letter instead"
                    )


def _sections(letters: Sequence[Letter], bodies: Sequence[str], page_totals: Sequence[int]) -> str:
    return "\n".join(
        f'<section class="pkb-letter" id="{ANCHOR_PREFIX}{lt.sequence}" data-pages="{total}"'
        f' data-piece="{lt.piece_id}">\n{body}\n</section>'
        for lt, body, total in zip(letters, bodies, page_totals, strict=True)
    )


# A 1x1 white PNG: stands in for the QR code where only the address is measured.
_BLANK_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGP4DwABAQEAWaF9KQAAAABJRU5ErkJggg=="
)
_SHARED_ONLY_CSS = CSS(string=SHARED_ONLY_CSS)
# Two made-up patients who differ in every value a letter may print, so only truly shared text matches.
_PROBES = (
    (
        PatientRow(
            2,
            "PROBE-REF-A",
            "0000000000",
            "Mr",
            "Probe",
            "Alpha",
            None,
            ("1 Alpha Street", "ALPHATOWN", "AA1 1AA"),
            "AA1 1AA",
        ),
        CodePair("AAAAAAAAAA", "aaaaaaaaaa", dt.date(2000, 1, 1)),
    ),
    (
        PatientRow(
            3,
            "",
            "0000000000",
            "",
            "Bea",
            "Betaworth-Ng",
            None,
            ("Flat 2", "22 Beta Road", "Betaby", "BETACASTER", "Betashire", "BB2 2BB"),
            "BB2 2BB",
        ),
        CodePair("BBBBBBBBBB", "bbbbbbbbbb", dt.date(2001, 2, 2)),
    ),
)


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
    # whether the job found a WeasyPrint the fast path (shared layout, stamping) was tested on: decided
    # where the spec is made, in the job's process, so every worker lays out as the job decided
    fast_path: bool = field(default_factory=lambda: wp.check().fast_path)
    duplex: bool = True  # a bilingual letter's second language then starts on the front of a sheet

    def renderer(self) -> ChunkRenderer:
        return ChunkRenderer(
            LetterTemplate(self.template_dir),
            self.letter,
            self.page,
            self.print_css,
            dict(self.pdf_options),
            share_layout=self.share_layout and self.fast_path,
        )


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
    shared_letters: int = 0  # of `letters`, drawn with the job's shared layout
    stamped_letters: int = 0  # of `letters`, drawn into a prototype of their shape without being laid out


_renderers: dict[RenderSpec, ChunkRenderer] = {}


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
    failed: Sequence[tuple[Letter, TemplateError | Misfit]]
    blank_sides: set[int] = set()  # input rows whose second language needs a blank page before it
    while True:
        letters = [
            Letter(n, f"{spec.job_id}-{n:06d}", patient, codes)
            for n, (patient, codes) in enumerate(candidates, task.first_sequence)
        ]
        bodies, failed = _bodies(renderer, letters, blank_sides)
        if not failed and letters:
            try:
                rendered = renderer.render(letters, bodies)
            except TemplateResourceError:
                failed = _letters_refusing_resources(renderer, letters, bodies)
                if not failed:
                    raise
            else:
                failed = [(lt, m) for lt in letters for m in rendered.misfits if m.sequence == lt.sequence]
                on_backs = _second_parts_on_backs(letters, rendered, blank_sides) if spec.duplex else set()
                if not failed and on_backs:
                    blank_sides |= on_backs
                    continue  # laid out again, each language starting on the front of a sheet
                if not failed:
                    return ChunkOutcome(
                        task,
                        tuple(letters),
                        rendered.pdf,
                        rendered.page_counts,
                        tuple(refused),
                        rendered.shared_letters,
                        rendered.stamped_letters,
                    )
        if not letters:
            return ChunkOutcome(task, (), None, (), tuple(refused))
        refused.extend(_refusal(letter, problem) for letter, problem in failed)
        left_out = {letter.sequence for letter, _ in failed}
        candidates = [(lt.patient, lt.codes) for lt in letters if lt.sequence not in left_out]


def _refusal(letter: Letter, problem: TemplateError | Misfit) -> Refusal:
    if isinstance(problem, Misfit):
        return Refusal(letter.patient, problem.reason, problem.detail)
    return Refusal(letter.patient, template_reason(problem), str(problem))


def template_reason(problem: TemplateError) -> Reason:
    """The reason code for a letter the template could not make."""
    return Reason.NO_WELSH_TEMPLATE if isinstance(problem, NoWelshTemplate) else Reason.TEMPLATE_ERROR


def _second_parts_on_backs(letters: Sequence[Letter], rendered: RenderedChunk, blank_sides: set[int]) -> set[int]:
    """The bilingual letters (by input row) whose second language starts on the back of a sheet."""
    return {
        letter.patient.input_row
        for letter, start in zip(letters, rendered.second_parts, strict=True)
        if start is not None and start % 2 == 1 and letter.patient.input_row not in blank_sides
    }


def _bodies(
    renderer: ChunkRenderer, letters: Sequence[Letter], blank_sides: set[int] | None = None
) -> tuple[list[str], list[tuple[Letter, TemplateError]]]:
    bodies, failed = [], []
    for letter in letters:
        try:
            bodies.append(renderer.body(letter, blank_side=letter.patient.input_row in (blank_sides or ())))
        except TemplateError as exc:
            failed.append((letter, exc))
    return bodies, failed


def _letters_refusing_resources(
    renderer: ChunkRenderer, letters: Sequence[Letter], bodies: Sequence[str]
) -> list[tuple[Letter, TemplateResourceError]]:
    """The letters that, laid out alone, ask for a resource outside the template folder.

    The trial letter showed the template itself asks for none, so these rows' own data
    did (say, a URL in a reference column); slow, but only ever on this error path.
    """
    refused = []
    for letter, body in zip(letters, bodies, strict=True):
        try:
            renderer.render([letter], [body])
        except TemplateResourceError as exc:
            refused.append((letter, exc))
    return refused
