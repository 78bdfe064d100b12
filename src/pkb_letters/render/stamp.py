"""Letters of a shape already laid out: only their own short texts are shaped and drawn.

Once the shared blocks are out of a letter's layout (render/shared_layout.py), what is left
to lay out is mostly short text: the address lines, the date and reference, the
greeting, the codes, the piece id, and the QR code. Two letters whose HTML differs
only in the text of *leaf* elements (elements holding text and nothing else) and in
their QR image have the same layout everywhere else, as long as each new text lays
out as one line, in the same font, no wider than its box (or, where the box's width
comes from its content, exactly as wide as the first letter's text).

So the first letter of each shape (its HTML with leaf texts and data-URI images
blanked out) is laid out in full and becomes the shape's prototype. A later letter of
that shape is not laid out: each of its texts is shaped with WeasyPrint's own line
splitting and placed where the prototype's text was (moved by the difference in width
for right- or centre-aligned text), and its QR image replaces the prototype's. The
letter's page tree is the prototype's with those boxes swapped, so the address check
and page count work on it as on any layout. When the chunk is written, the page draws
only the letter's own boxes, over the prototype's page with those boxes hidden (drawn
once per shape and reused as a form XObject, like the shared layer).

A text that breaks any of these rules sends the letter to a full layout; the tests
check stamped letters against a full layout character by character.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pikepdf
from weasyprint import DEFAULT_OPTIONS

from pkb_letters.render import weasyprint_adapter as wp
from pkb_letters.render.shared_layout import element_spans

SLOT_ATTRIBUTE = "data-pkb-slot"
IMAGE_ATTRIBUTE = "data-pkb-image"
_DATA_IMAGE = re.compile(
    r"""(<img\b[^>]*?\ssrc\s*=\s*)("data:image/png;base64,[^"]*"|'data:image/png;base64,[^']*')""", re.I
)
_COLLAPSIBLE = re.compile(r"[ \t\n\r\f]+")
_TEXT_MARK, _IMAGE_MARK = "\x00", "\x01"
_WIDTH_FREE_PARENTS = ("BlockBox", "PageBox")  # boxes whose width never depends on their content
_SAFE_BIDI = frozenset(("L", "EN", "ES", "ET", "CS", "ON", "WS", "NSM"))
_EPSILON = 1e-6
_MAX_PIECES = 16
MAX_SHAPES = 48  # prototypes a renderer keeps: a job has a handful of shapes, a pathological one gets full layouts
MAX_PROTOTYPES_A_SHAPE = 6  # one per width of the texts that size their own box (piece ids: "11" is kerned)


@dataclass(frozen=True)
class Skeleton:
    """A letter body with its leaf texts and data-URI images taken out: letters with equal keys share a shape."""

    key: str
    texts: tuple[str, ...]  # the leaf elements' HTML content, in document order
    images: tuple[str, ...]  # the data URIs (quoted as in the HTML), in document order
    text_spans: tuple[tuple[int, int], ...]  # where each text is in the body
    image_tags: tuple[int, ...]  # where each image's "<img" starts


def skeleton(body: str) -> Skeleton | None:
    """The letter's shape, or None when its tags do not nest cleanly (it is then always laid out in full)."""
    spans = element_spans(body)
    if spans is None:
        return None
    text_spans = []
    for index, span in enumerate(spans):
        if index + 1 < len(spans) and spans[index + 1].start < span.end:
            continue  # has child elements
        inner_start, inner_end = span.start + len(span.start_tag), body.rfind("</", span.start, span.end)
        if inner_end > inner_start and "<" not in body[inner_start:inner_end]:
            text_spans.append((inner_start, inner_end))
    matches = list(_DATA_IMAGE.finditer(body))
    image_spans = [match.span(2) for match in matches]
    cuts = sorted([(s, e, _TEXT_MARK) for s, e in text_spans] + [(s, e, _IMAGE_MARK) for s, e in image_spans])
    pieces, position = [], 0
    for start, end, mark in cuts:
        if start < position:
            return None  # an image inside a text (cannot happen with clean tags), but never guess
        pieces += [body[position:start], mark]
        position = end
    pieces.append(body[position:])
    return Skeleton(
        "".join(pieces),
        tuple(body[s:e] for s, e in text_spans),
        tuple(body[s:e] for s, e in image_spans),
        tuple(text_spans),
        tuple(m.start(1) for m in matches),
    )


def marked(body: str, shape: Skeleton) -> str:
    """`body` with each leaf element and data-URI image numbered, so its boxes can be found after layout."""
    inserts = [(body.rfind(">", 0, start), f' {SLOT_ATTRIBUTE}="{n}"') for n, (start, _) in enumerate(shape.text_spans)]
    inserts += [(tag + len("<img"), f' {IMAGE_ATTRIBUTE}="{n}"') for n, tag in enumerate(shape.image_tags)]
    pieces, position = [], 0
    for where, text in sorted(inserts):
        pieces += [body[position:where], text]
        position = where
    pieces.append(body[position:])
    return "".join(pieces)


def displayed(text_html: str) -> str:
    """What a leaf's HTML text shows on one line: entities decoded, white space collapsed and trimmed."""
    return _COLLAPSIBLE.sub(" ", html.unescape(text_html)).strip(" ")


def _plain_text(text: str) -> bool:
    """Left-to-right text with no control, format or break characters (no soft hyphens, no bidi marks)."""
    return bool(text) and all(
        unicodedata.bidirectional(c) in _SAFE_BIDI and unicodedata.category(c)[0] != "C" and c not in "\u2028\u2029"
        for c in text
    )


# -- a shape's prototype: where its slots are, and whether each can take other text --------------------


@dataclass
class TextSlot:
    box: Any  # the prototype's TextBox
    page: int
    block: Any  # the block container the line is in
    width_free: bool  # the block's width does not depend on its content
    align: float  # 0 left, 0.5 centre, 1 right
    fonts: frozenset  # the Pango fonts the prototype's text was drawn with
    pieces: tuple[float, ...] | None  # where the box is sized from its text: the widths of its unbreakable pieces


@dataclass
class ImageSlot:
    box: Any
    page: int


@dataclass
class Prototype:
    """The first letter of a shape, laid out in full, and what a later letter may change in it."""

    pages: list  # WeasyPrint pages of the prototype letter
    anchor: str  # the prototype's own section anchor
    piece_id: str
    texts: tuple[str, ...]  # the leaf HTML texts the prototype was laid out with
    images: tuple[str, ...]
    text_slots: dict[int, TextSlot]  # by leaf number: only the leaves that may change
    image_slots: dict[int, ImageSlot]
    piece_slots: list[TextSlot]  # the piece id in the page margins
    static_layers: list | None = None  # the pages with every slot hidden, written once (render/chunks.py)
    _hidden_pages: list | None = field(default=None, repr=False)

    def hidden_pages(self) -> list:
        """The prototype's pages with every slot hidden: what is the same in every letter of the shape."""
        if self._hidden_pages is None:
            hidden = {id(slot.box) for slot in self._slots()}
            hide = lambda box: _hidden(box) if id(box) in hidden else None  # noqa: E731
            self._hidden_pages = [wp.page_with_tree(page, wp.swap_tree(wp.page_box(page), hide)) for page in self.pages]
        return self._hidden_pages

    def _slots(self) -> Iterator[TextSlot | ImageSlot]:
        yield from self.text_slots.values()
        yield from self.image_slots.values()
        yield from self.piece_slots


def prototype(pages: Sequence, anchor: str, piece_id: str, shape: Skeleton) -> Prototype:
    """Find the slots in a prototype letter's laid-out pages (its body was `marked`).

    Raises NoStamp for a letter whose pages carry links or form fields, or bookmarks naming a text that
    changes from letter to letter: those are written from the prototype's own data, which must never
    reach another patient's letter."""
    if any(page.links or any(page.forms.values()) for page in pages):
        raise NoStamp
    texts: dict[int, list] = {}
    images: dict[int, list] = {}
    pieces: list[TextSlot] = []
    for page_number, page in enumerate(pages):
        for box, path in _boxes_with_paths(wp.page_box(page), ()):
            element = getattr(box, "element", None)
            numbered = element is not None and (element.get(SLOT_ATTRIBUTE) or element.get(IMAGE_ATTRIBUTE))
            if _repeated(box) or (numbered and any(wp.box_kind(p) == "MarginBox" for p in path)):
                raise NoStamp  # the box may be another letter's: a fixed box, or a running one in the margins
            kind = wp.box_kind(box)
            if kind == "TextBox" and element is not None and element.get(SLOT_ATTRIBUTE) is not None:
                texts.setdefault(int(element.get(SLOT_ATTRIBUTE)), []).append((page_number, box, path))
            elif "ReplacedBox" in kind and element is not None and element.get(IMAGE_ATTRIBUTE) is not None:
                images.setdefault(int(element.get(IMAGE_ATTRIBUTE)), []).append((page_number, box, path))
            elif kind == "TextBox" and box.text == piece_id and any(wp.box_kind(p) == "MarginBox" for p in path):
                slot = _text_slot(page_number, box, path, None)
                if slot is None:
                    raise NoStamp
                pieces.append(slot)
    text_slots = text_slots_of(texts, shape)
    if text_slots is None:
        raise NoStamp
    image_slots = {
        leaf: ImageSlot(box, page_number)
        for leaf, found in images.items()
        if len(found) == 1
        for page_number, box, path in found
        if _drawn_plainly(path) and wp.is_raster(box.replacement)
    }
    changing = [slot.box.text for slot in [*text_slots.values(), *pieces]]
    if any(text in label for page in pages for _, label, _, _ in page.bookmarks for text in changing):
        raise NoStamp
    return Prototype(list(pages), anchor, piece_id, shape.texts, shape.images, text_slots, image_slots, pieces)


def text_slots_of(found: dict[int, list[tuple[int, Any, tuple]]], shape: Skeleton) -> dict[int, TextSlot] | None:
    """The leaves (found by number: page, text box, path) whose text another letter may change; None if
    a leaf found is not one of the shape's (a box another letter of the document put on these pages)."""
    if any(leaf >= len(shape.texts) for leaf in found):
        return None
    slots = {}
    for leaf, boxes in found.items():
        if len(boxes) == 1:
            slot = _text_slot(*boxes[0], shape.texts[leaf])
            if slot is not None:
                slots[leaf] = slot
    return slots


def slot_boxes(page_box) -> Iterator[tuple[int, Any, tuple]]:
    """(leaf number, text box, path) for each text box of a `marked` leaf under `page_box`."""
    for box, path in _boxes_with_paths(page_box, ()):
        element = getattr(box, "element", None)
        if wp.box_kind(box) == "TextBox" and element is not None and element.get(SLOT_ATTRIBUTE) is not None:
            yield int(element.get(SLOT_ATTRIBUTE)), box, path


def swapped_texts(texts: Sequence[str], slots: dict[int, TextSlot], new_texts: Sequence[str]) -> dict | None:
    """The text boxes (by id of the one they replace) holding `new_texts`; None if any will not fit."""
    swaps: dict[int, Any] = {}
    for leaf, (old, new) in enumerate(zip(texts, new_texts, strict=True)):
        slot = slots.get(leaf)
        if slot is None:
            if old != new:
                return None
            continue
        box = restyled(slot, displayed(new)) if old != new else slot.box
        if box is None:
            return None
        swaps[id(slot.box)] = box
    return swaps


def _repeated(box) -> bool:
    """A fixed box is drawn on every page of the document: on a letter's pages, it may be another letter's."""
    return box.style["position"] == "fixed"


class NoStamp(Exception):
    """The prototype has links, bookmarks or a piece id this module cannot redraw: its shape is always laid
    out in full."""


def _boxes_with_paths(box, path: tuple) -> Iterator[tuple[Any, tuple]]:
    for child in box.all_children() if hasattr(box, "all_children") else ():
        yield child, path + (box,)
        yield from _boxes_with_paths(child, path + (box,))


def _text_slot(page: int, box, path: tuple, text_html: str | None) -> TextSlot | None:
    """A text box that can take other text: alone on the only line of its block, drawn plainly."""
    line, block = path[-1], path[-2]
    if wp.box_kind(line) != "LineBox" or line.children != [box] or block.children != [line]:
        return None
    if text_html is not None and (block.element is not box.element or box.text != displayed(text_html)):
        return None
    style = box.style
    if (
        style["white_space"] not in ("normal", "nowrap")
        or style["text_transform"] != "none"
        or style["direction"] != "ltr"
        or style["text_indent"].value != 0
        or style["text_decoration_line"] != "none"
        or style["visibility"] != "visible"
        or block.style["text_overflow"] != "clip"
        or block.style["direction"] != "ltr"
        or not _drawn_plainly(path)
    ):
        return None
    align = _alignment(block.style)
    if align is None:
        return None
    width_free = all(
        wp.box_kind(p) in _WIDTH_FREE_PARENTS
        and (p.style["position"] in ("static", "relative") or p.style["width"] != "auto")
        and p.style["float"] == "none"
        for p in path[:-1]
    )
    if width_free and align and box.width >= block.width:
        return None  # text-align does nothing to a full line, so a narrower text would not stay aligned
    pieces = None if width_free else _piece_widths(box.text, style)
    if not width_free and pieces is None:
        return None
    fonts = wp.text_box_fonts(box)
    if fonts is None:
        return None
    return TextSlot(box, page, block, width_free, align, fonts, pieces)


def _piece_widths(text: str, style) -> tuple[float, ...] | None:
    """The widths of the pieces a text breaks into where a line could break (None for too many).

    A box sized from its content (a table cell, a page-margin box) can take its min-content width,
    its longest piece, as well as its max-content one: a text whose pieces are as wide as another's
    sizes such a box as that one did."""
    widths, rest = [], text
    for _ in range(_MAX_PIECES):
        line = wp.split_first_line(rest, style, 0)
        widths.append(line.width)
        if line.resume is None:
            return tuple(widths)
        rest = rest.encode()[line.resume :].decode()
    return None


def _same_widths(widths: tuple[float, ...] | None, others: tuple[float, ...] | None) -> bool:
    return (
        widths is not None
        and others is not None
        and len(widths) == len(others)
        and all(abs(a - b) <= _EPSILON for a, b in zip(widths, others, strict=True))
    )


def _alignment(style) -> float | None:
    align, last = style["text_align_all"], style["text_align_last"]
    align = align if last == "auto" else last
    return {"left": 0.0, "start": 0.0, "center": 0.5, "right": 1.0, "end": 1.0}.get(align)


def _drawn_plainly(path: tuple) -> bool:
    """Nothing between the page and the box changes how its content is drawn (clipping, opacity, transforms)."""
    for box in path:
        style = box.style
        if (
            style["opacity"] != 1
            or style["transform"]
            or style["clip"] != wp.initial_value("clip")
            or style["mask_border_source"] != wp.initial_value("mask_border_source")
            or (wp.box_kind(box) not in ("PageBox", "MarginBox", "LineBox") and style["overflow"] != "visible")
        ):
            return False
    return True


def restyled(slot: TextSlot, text: str):
    """The slot's text box holding `text`, placed as a full layout would place it; None if it would not fit."""
    old = slot.box
    if text == old.text:
        return old
    if not _plain_text(text):
        return None
    line = wp.split_first_line(text, old.style, slot.block.width, old.justification_spacing)
    if line.resume is not None or line.length != len(text.encode()) or line.layout.text != text:
        return None
    if abs(line.height - old.height) > _EPSILON or abs(line.baseline + old.margin_top - old.baseline) > _EPSILON:
        return None
    width = line.width
    if slot.width_free:
        if width > slot.block.width + _EPSILON or (slot.align and width >= slot.block.width):
            return None
    elif abs(width - old.width) > _EPSILON or not _same_widths(_piece_widths(text, old.style), slot.pieces):
        return None
    if wp.line_fonts(line.layout, old.style) != slot.fonts:
        return None
    return wp.text_box_holding(old, text, line, old.position_x + (old.width - width) * slot.align)


def reimaged(slot: ImageSlot, uri: str, options: dict):
    """The slot's image box showing the PNG in `uri` (a data URI), or None if its size in pixels differs."""
    old = slot.box.replacement
    image_id = hashlib.md5(uri.encode(), usedforsecurity=False).hexdigest()  # as WeasyPrint names images
    try:
        data = base64.b64decode(uri.partition(",")[2], validate=True)
        image = wp.raster_image(data, image_id, slot.box.style["image_orientation"], options)
    except (ValueError, OSError):  # not a PNG after all: a full layout says so as WeasyPrint does
        return None
    if (image.width, image.height, image.mode) != (old.width, old.height, old.mode):
        return None
    new = slot.box.copy()
    new.replacement = image
    return new


def page_digests(pdf: bytes) -> list[str]:
    """A name for each page's drawing, from its content and resources: the same shape's layer is the
    same whichever of its letters was the prototype, and so, whichever worker drew it, is stored
    once a print file and prints the same bytes in every run."""
    digests = []
    with pikepdf.open(io.BytesIO(pdf)) as document:
        for page in document.pages:
            contents = page.obj.Contents
            streams = contents if isinstance(contents, pikepdf.Array) else [contents]
            digest = hashlib.sha256(page.obj.Resources.unparse(resolved=True))
            for stream in streams:
                digest.update(stream.read_bytes())
            digests.append(digest.hexdigest()[:16])
    return digests


def image_options(pdf_options: dict) -> dict:
    return {**DEFAULT_OPTIONS, **pdf_options}


def tagged(pdf_options: dict) -> bool:
    """Whether WeasyPrint writes these PDFs tagged (PDF/UA, PDF/A-*a)."""
    variant = pdf_options.get("pdf_variant")
    return bool(pdf_options.get("pdf_tags") or (variant and wp.variant_tags(variant)))


# -- a stamped letter's pages ----------------------------------------------------------------------


def stamped_pages(proto: Prototype, shape: Skeleton, anchor: str, piece_id: str, options: dict) -> list | None:
    """The pages of a letter of `proto`'s shape, or None if any of its texts or images cannot be stamped."""
    swaps = swapped_texts(proto.texts, proto.text_slots, shape.texts)
    if swaps is None:
        return None
    for leaf, (old, new) in enumerate(zip(proto.images, shape.images, strict=True)):
        slot = proto.image_slots.get(leaf)
        if slot is None:
            if old != new:
                return None
            continue
        box = reimaged(slot, new.strip("\"'"), options) if old != new else slot.box
        if box is None:
            return None
        swaps[id(slot.box)] = box
    for piece_slot in proto.piece_slots:
        box = restyled(piece_slot, piece_id)
        if box is None:
            return None
        swaps[id(piece_slot.box)] = box
    pages = []
    for number, page in enumerate(proto.pages):
        own = [swaps[id(slot.box)] for slot in proto._slots() if slot.page == number]
        tree = wp.swap_tree(wp.page_box(page), lambda box: swaps.get(id(box)))
        anchors = {anchor if name == proto.anchor else name: where for name, where in page.anchors.items()}
        pages.append(wp.StampedPage(page, tree, anchors, own))
    return pages


def _hidden(box):
    style = box.style.copy()
    style["visibility"] = "hidden"
    hidden = box.copy()
    hidden.style = style
    return hidden
