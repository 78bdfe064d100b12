"""Lay out once per job what every letter shares; per letter, only what differs.

Most of a letter (the explanation, the steps, the questions on the back) is the
same for every patient, and laying that text out is most of the cost of a
letter. The template stays an ordinary Jinja/HTML template: which parts are
shared is found by rendering it for two made-up patients who differ in every
per-letter value (name, title, reference, address, codes, expiry, piece id), and
keeping the outermost blocks (paragraphs, headings, whole lists and sections)
that come out identical.

A shared block is laid out once, in a prototype letter, and drawn from that
layout into every letter as one form XObject per page (stored once per chunk).
In each letter's own layout a run of neighbouring blocks is replaced by one
empty, invisible block with the same height and (collapsed) margins, so the
letter's variable parts flow exactly as they would around the real text. A letter keeps this
fast path only if, laid out, every placeholder sits exactly where the prototype
put the block; otherwise (or if its HTML around the shared blocks differs) it is
laid out in full. So the fast path can only ever produce the letter a full
layout would, which the tests check against a straightforward render.

Only blocks whose layout cannot depend on the rest of the letter are shared:
in normal flow inside a block parent, on one page, with no floats or positioned
boxes inside, touching no counters or page strings outside themselves, and with
no background on any ancestor that would be painted over them.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import pikepdf

from pkb_letters.render import weasyprint_adapter as wp

SHARED_ATTRIBUTE = "data-pkb-shared"
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*?)(/?)>|<!--.*?-->", re.S)
_VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())
_RAW_TEXT = frozenset(("script", "style", "textarea", "title"))
_TOLERANCE_PX = 0.01
Layer = tuple[str, bytes, int]  # a form XObject's name, the PDF it comes from, and the page of that PDF
# Every page-margin box: the prototype's own footer and header belong to the letter, not the shared layer.
_MARGIN_BOXES = (
    "top-left-corner top-left top-center top-right top-right-corner right-top right-middle "
    "right-bottom bottom-right-corner bottom-right bottom-center bottom-left bottom-left-corner "
    "left-bottom left-middle left-top"
).split()
SHARED_ONLY_CSS = (
    "html, html * { visibility: hidden !important; }\n"
    f"[{SHARED_ATTRIBUTE}], [{SHARED_ATTRIBUTE}] * {{ visibility: visible !important; }}\n"
    "@page { " + " ".join(f"@{box} {{ content: none !important; }}" for box in _MARGIN_BOXES) + " }\n"
)


@dataclass(frozen=True)
class Span:
    """One element of a letter body: where it is in the text, and its open ancestors' start tags."""

    start: int
    end: int  # just after its end tag
    tag: str
    start_tag: str
    chain: tuple[str, ...]


def element_spans(html: str) -> list[Span] | None:
    """Every element with an end tag, in document order; None when tags do not nest cleanly."""
    spans: list[Span] = []
    stack: list[tuple[str, int, str]] = []
    position = 0
    while (match := _TAG.search(html, position)) is not None:
        position = match.end()
        closing, name = match.group(1), (match.group(2) or "").lower()
        if not name:
            continue  # a comment
        if not closing:
            if name in _VOID or match.group(4):
                continue
            stack.append((name, match.start(), match.group(0)))
            if name in _RAW_TEXT:
                end = html.lower().find(f"</{name}", position)
                if end < 0:
                    return None
                position = end
            continue
        if not stack or stack[-1][0] != name:
            return None  # an implied end tag or stray one: not worth guessing what the parser does
        tag, start, start_tag = stack.pop()
        spans.append(Span(start, match.end(), tag, start_tag, tuple(s[2] for s in stack)))
    if stack:
        return None
    spans.sort(key=lambda s: s.start)
    return spans


def shared_candidates(first: str, second: str) -> list[Span]:
    """Elements of `first` whose whole HTML, and whose ancestors' start tags, are the same in `second`."""
    spans_a, spans_b = element_spans(first), element_spans(second)
    if spans_a is None or spans_b is None:
        return []
    in_b = {(second[s.start : s.end], s.chain) for s in spans_b}
    return [s for s in spans_a if (first[s.start : s.end], s.chain) in in_b]


def mark(body: str, spans: Sequence[Span], keys: Sequence[int]) -> str:
    """`body` with `data-pkb-shared="key"` added to each span's start tag (spans in document order)."""
    pieces, position = [], 0
    for span, key in sorted(zip(spans, keys, strict=True), key=lambda pair: pair[0].start):
        open_end = span.start + len(span.start_tag) - 1  # the start tag's ">"
        pieces += [body[position:open_end], f' {SHARED_ATTRIBUTE}="{key}"']
        position = open_end
    pieces.append(body[position:])
    return "".join(pieces)


@dataclass(frozen=True)
class SharedBlock:
    key: int
    html: str  # the element's whole HTML, as the template renders it for every letter
    chain: tuple[str, ...]
    page: int  # 0-based within the letter
    rect: tuple[float, float, float, float]  # border box x, y, width, height in CSS px
    margins: tuple[float, float, float, float]  # top (with its children's, collapsed through it), right,
    # bottom (likewise), left: what an empty placeholder needs to sit where the block did
    parent_x: float  # the parent's content box: where a run of blocks starts and how wide it is
    parent_width: float


@dataclass(frozen=True)
class Run:
    """Shared blocks next to each other under one parent: one placeholder in each letter's layout."""

    blocks: tuple[SharedBlock, ...]

    @property
    def key(self) -> int:
        return self.blocks[0].key

    @property
    def merged(self) -> bool:
        return len(self.blocks) > 1

    @property
    def rect(self) -> tuple[float, float, float, float]:
        first, last = self.blocks[0], self.blocks[-1]
        if not self.merged:
            return first.rect
        top, bottom = first.rect[1], last.rect[1] + last.rect[3]
        return (first.parent_x, top, first.parent_width, bottom - top)

    def placeholder(self) -> str:
        return f'<div class="{_CLASS} {_CLASS}-{self.key}"></div>'

    def css(self) -> str:
        first, last = self.blocks[0], self.blocks[-1]
        right, left = (0.0, 0.0) if self.merged else (first.margins[1], first.margins[3])
        return (
            f"div.{_CLASS}-{self.key} {{ height: {self.rect[3]:.4f}px !important; margin: "
            f"{first.margins[0]:.4f}px {right:.4f}px {last.margins[2]:.4f}px {left:.4f}px !important; }}"
        )


_CLASS = "pkb-shared"
_BLOCKS = ("BlockBox", "FlexBox", "GridBox")  # boxes whose layout depends only on their width and content
CLASS_ATTRIBUTE = re.compile(r"""\sclass\s*=\s*("([^"]*)"|'([^']*)')""", re.I)
_PLACEHOLDER_CSS = (
    f"div.{_CLASS} {{ display: block !important; visibility: hidden !important; padding: 0 !important; "
    "border: 0 none !important; min-height: 0 !important; max-height: none !important; "
    "box-sizing: content-box !important; float: none !important; position: static !important; "
    "overflow: hidden !important; break-inside: auto !important; }\n"
)


def runs_of(blocks: Sequence[SharedBlock], body: str) -> list[Run]:
    """Group blocks that follow each other with nothing but white space between them, under one parent."""
    runs: list[list[SharedBlock]] = []
    end = -1
    for block in blocks:
        start = body.find(block.html, max(end, 0))
        previous = runs[-1][-1] if runs else None
        if (
            previous is not None
            and previous.page == block.page
            and previous.chain == block.chain
            and not body[end:start].strip()
        ):
            runs[-1].append(block)
        else:
            runs.append([block])
        end = start + len(block.html)
    return [Run(tuple(run)) for run in runs]


@dataclass(frozen=True)
class SharedLayout:
    """The blocks every letter shares, where the prototype put them, and the PDF drawing only them."""

    runs: tuple[Run, ...]
    pdf: bytes  # one page per prototype page, showing only the shared blocks

    @property
    def blocks(self) -> tuple[SharedBlock, ...]:
        return tuple(block for run in self.runs for block in run.blocks)

    def css(self) -> str:
        return _PLACEHOLDER_CSS + "\n".join(run.css() for run in self.runs)

    def placeholders(self, body: str) -> str | None:
        """The letter with each run of shared blocks emptied to a placeholder; None if the letter differs."""
        spans = element_spans(body)
        if spans is None or not self.runs:
            return None
        by_start = {s.start: s for s in spans}
        pieces, position = [], 0
        for run in self.runs:
            run_start, end = -1, position
            for block in run.blocks:
                start = body.find(block.html, end)
                span = by_start.get(start)
                if span is None or span.end - span.start != len(block.html) or span.chain != block.chain:
                    return None
                if run_start < 0:
                    run_start = start
                elif body[end:start].strip():
                    return None
                end = span.end
            pieces += [body[position:run_start], run.placeholder()]
            position = end
        pieces.append(body[position:])
        return "".join(pieces)

    def fits(self, pages: Sequence) -> bool:
        """Whether, in one letter's laid-out pages, every placeholder sits exactly where its blocks were."""
        found = placeholder_boxes(pages)
        for run in self.runs:
            placed = found.get(run.key, [])
            if len(placed) != 1:
                return False
            page, box = placed[0]
            if page != run.blocks[0].page or not _same_rect(_border_rect(box), run.rect):
                return False
        return True

    def layers(self, page_count: int) -> list[list[Layer]]:
        """For a letter on the fast path: the page of the shared PDF (if any) to go under each of its pages."""
        pages_with_blocks = {run.blocks[0].page for run in self.runs}
        return [
            [(f"PkbShared{page}", self.pdf, page)] if page in pages_with_blocks else [] for page in range(page_count)
        ]


def placeholder_boxes(pages: Sequence) -> dict[int, list[tuple[int, object]]]:
    """Placeholder block boxes by run key, with their page index."""
    found: dict[int, list[tuple[int, object]]] = {}
    prefix = f"{_CLASS}-"
    for number, page in enumerate(pages):
        for box in wp.page_box(page).descendants():
            element = getattr(box, "element", None)
            if element is None or type(box).__name__ not in _BLOCKS or _is_marker(box):
                continue
            for name in (element.get("class") or "").split():
                if name.startswith(prefix):
                    found.setdefault(int(name[len(prefix) :]), []).append((number, box))
    return found


def _border_rect(box) -> tuple[float, float, float, float]:
    return (box.border_box_x(), box.border_box_y(), box.border_width(), box.border_height())


def _same_rect(a: Iterable[float], b: Iterable[float]) -> bool:
    return all(abs(x - y) <= _TOLERANCE_PX for x, y in zip(a, b, strict=True))


def marked_blocks(pages: Sequence) -> dict[int, list[tuple[int, object, list]]]:
    """Block boxes of elements carrying the shared attribute, by key: (page index, box, ancestor boxes)."""
    found: dict[int, list[tuple[int, object, list]]] = {}
    for number, page in enumerate(pages):
        _walk(wp.page_box(page), [], number, found)
    return found


def _walk(box, ancestors: list, page: int, found: dict) -> None:
    for child in box.all_children() if hasattr(box, "all_children") else ():
        element = getattr(child, "element", None)
        key = element.get(SHARED_ATTRIBUTE) if element is not None else None
        anonymous = element is getattr(box, "element", None)  # a wrapper WeasyPrint made inside the element
        if key is not None and type(child).__name__ in _BLOCKS and not anonymous and not _is_marker(child):
            found.setdefault(int(key), []).append((page, child, [*ancestors, box]))
        _walk(child, [*ancestors, box], page, found)


def _is_marker(box) -> bool:
    return (getattr(box, "element_tag", "") or "").endswith("::marker")


def accepted_blocks(pages: Sequence, spans: Sequence[Span], body: str) -> list[SharedBlock]:
    """The outermost marked candidates (key = index in `spans`) that can be shared, from the prototype's layout."""
    found = marked_blocks(pages)
    blocks: list[SharedBlock] = []
    covered_to = -1
    for key, span in sorted(enumerate(spans), key=lambda pair: (pair[1].start, -pair[1].end)):
        if span.start < covered_to:
            continue  # inside a block already shared
        placed = found.get(key, [])
        if len(placed) != 1:
            continue  # not a block box of its own, or split over two pages
        number, box, ancestors = placed[0]
        ancestors = [a for a in ancestors if type(a).__name__ != "PageBox"]
        if _shareable(box, ancestors):
            parent = ancestors[-1]
            blocks.append(
                SharedBlock(
                    key,
                    body[span.start : span.end],
                    span.chain,
                    number,
                    _border_rect(box),
                    _placeholder_margins(box),
                    parent.content_box_x(),
                    parent.width,
                )
            )
            covered_to = span.end
    return blocks


def _reaches_outside(box) -> bool:
    """Floats and positioned boxes inside it could land on, or push, the letter's own parts (a list
    item's marker, which WeasyPrint positions itself, stays beside its item)."""
    return any(
        d.is_floated() or d.is_absolutely_positioned() or d.is_running()
        for d in box.descendants()
        if d is not box and not _is_marker(d)
    )


def _shareable(box, ancestors: list) -> bool:
    style = box.style
    if style["position"] != "static" or style["float"] != "none" or box.height <= 0 or not _plain(box):
        return False
    if not ancestors or type(ancestors[-1]).__name__ != "BlockBox":
        return False  # a flex item, table cell or inline-block sizes itself from its content
    if _reaches_outside(box):
        return False
    return all(type(a).__name__ == "BlockBox" and a.style["position"] != "fixed" and not _painted(a) for a in ancestors)


def _placeholder_margins(box) -> tuple[float, float, float, float]:
    return (
        _collapsed(_adjoining(box, "top")),
        box.margin_right,
        _collapsed(_adjoining(box, "bottom")),
        box.margin_left,
    )


def _adjoining(box, side: str) -> list[float]:
    """The box's own margin on `side`, and its children's that collapse through it (CSS 2, 8.3.1)."""
    margins = [getattr(box, f"margin_{side}")]
    if getattr(box, f"padding_{side}") or getattr(box, f"border_{side}_width") or box.establishes_formatting_context():
        return margins
    children = [c for c in box.children if c.is_in_normal_flow()]
    child = (children[0] if side == "top" else children[-1]) if children else None
    if type(child).__name__ == "BlockBox":
        margins += _adjoining(child, side)
    return margins


def _collapsed(margins: list[float]) -> float:
    return max([m for m in margins if m > 0], default=0) + min([m for m in margins if m < 0], default=0)


def _plain(box) -> bool:
    """Neither a list item nor touching counters or page strings outside itself: a list's own reset is fine."""
    style = box.style
    resets = {name for name, _ in style["counter_reset"] or ()}
    return (
        "list-item" not in style["display"]
        and style["counter_increment"] == "auto"
        and resets <= {"list-item"}
        and not style["counter_set"]
        and style["string_set"] == "none"
    )


def _painted(box) -> bool:
    """Whether a box paints a background, which the letter's own layer would paint over shared text."""
    colour = box.style["background_color"]
    if getattr(colour, "alpha", 0):
        return True
    return any(image[0] != "none" for image in box.style["background_image"])


# -- drawing the shared layer under each letter's own page --------------------------------------------


def underlay(chunk_pdf: bytes, layers: Sequence[Sequence[Layer]]) -> bytes:
    """The chunk with, under page i's own content, each of `layers[i]` as a form XObject (in that order).

    A form is stored once per chunk whatever the number of pages drawing it. qpdf (pikepdf) does the
    copying: pypdf took longer over it than WeasyPrint takes to draw a stamped letter."""
    if not any(layers):
        return chunk_pdf
    with ExitStack() as stack:
        pdf = stack.enter_context(pikepdf.open(io.BytesIO(chunk_pdf)))
        sources: dict[int, pikepdf.Pdf] = {}
        forms: dict[str, pikepdf.Object] = {}
        for page, page_layers in zip(pdf.pages, layers, strict=True):
            if not page_layers:
                continue
            draws = []
            for name, source_pdf, number in page_layers:
                if name not in forms:
                    if id(source_pdf) not in sources:
                        sources[id(source_pdf)] = stack.enter_context(pikepdf.open(io.BytesIO(source_pdf)))
                    form = sources[id(source_pdf)].pages[number].as_form_xobject()
                    forms[name] = pdf.copy_foreign(form)
                page.add_resource(forms[name], pikepdf.Name.XObject, pikepdf.Name(f"/{name}"))
                draws.append(f"q /{name} Do Q\n")
            page.contents_add(pikepdf.Stream(pdf, "".join(draws).encode()), prepend=True)
        output = io.BytesIO()
        pdf.save(output, min_version=pdf.pdf_version)  # PDF/X-4 and PDF/A-2 name their version in the header
        return output.getvalue()
