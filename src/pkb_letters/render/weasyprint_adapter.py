"""The one door to WeasyPrint's internals: what the fast paths need beyond its public API, and the
WeasyPrint releases they were tested on.

Takes WeasyPrint's laid-out pages and boxes; gives the few operations the shared layer,
stamping and the address fit need of them: a page's box tree, a page with another tree, one
line of text shaped as WeasyPrint's line breaking shapes it, the fonts a line uses, a tree
with some boxes swapped, a raster image, and a page that draws only some of its boxes.

WeasyPrint promises nothing about any of this (only `weasyprint.__all__`, `FontConfiguration`
and the URL fetcher are its documented API), so no other module imports another WeasyPrint
name or reads a private attribute (tests/render/test_weasyprint_adapter.py checks both, and that
every name used here still has the shape used). A change in these internals could draw one
patient's text on another's letter, so the fast paths run only on the releases in
`TESTED_VERSIONS`, which pyproject.toml pins ("manual testing needed to bump"): `check()` is
a job's decision, made once in its own process and carried to every worker in the render
settings. On any other release, or one that lacks a name imported here, every letter is laid
out in full (WeasyPrint's public `HTML.render` and `write_pdf`), slower and the same print, and
the job's summary says so once. What the full layout still reads of the page boxes is a check,
not a drawing: the address window measured against the envelope, and the refusal of
`position: fixed` boxes.

To move to a new WeasyPrint: run the stamp, shared-layout, fit, page-words and adapter tests
on it, compare a stamped and a full-layout job page by page (tools/compare-job-output compares
two revisions), then add its version here and to pyproject.toml.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NamedTuple

from PIL import Image
from weasyprint import Page

try:
    from weasyprint.css.properties import INITIAL_VALUES
    from weasyprint.draw import draw_replacedbox
    from weasyprint.draw.text import draw_text
    from weasyprint.images import RasterImage
    from weasyprint.layout.absolute import AbsolutePlaceholder
    from weasyprint.pdf import VARIANTS
    from weasyprint.text import ffi as text_ffi
    from weasyprint.text.ffi import ffi, pango
    from weasyprint.text.line_break import split_first_line as _split_first_line
except ImportError as exc:  # a release that moved them: check() says so, and the fast paths are never used
    _MISSING_INTERNALS = str(exc)
else:
    _MISSING_INTERNALS = ""

# package -> the releases the fast paths were tested on: tests/render/test_stamp.py and
# tests/render/test_shared_layout.py passed, stamped and shared letters printing every character where a
# full layout does (pydyf writes the PDFs the stamped layers come from). Add a release only after they pass on it.
TESTED_VERSIONS: dict[str, tuple[str, ...]] = {
    "weasyprint": ("70.0",),
    "pydyf": ("0.13.0",),
}


@dataclass(frozen=True)
class LayoutDecision:
    """Whether a job may use the fast paths; `note` says why not, for the summary and the log."""

    fast_path: bool
    note: str = ""


def installed_version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def untested() -> list[str]:
    """'weasyprint 71.0 (tested: 70.0)' for each package whose installed version was not tested."""
    found = []
    for package, tested in TESTED_VERSIONS.items():
        installed = installed_version(package)
        if installed not in tested:
            found.append(f"{package} {installed or 'not installed'} (tested: {', '.join(tested)})")
    return found


def check() -> LayoutDecision:
    """This process's decision: the fast paths only on the releases they were tested on."""
    problems = untested()
    if _MISSING_INTERNALS:
        problems.append(f"WeasyPrint lacks an internal used ({_MISSING_INTERNALS})")
    if not problems:
        return LayoutDecision(True)
    return LayoutDecision(
        False,
        f"every letter laid out in full (slower, the same print): {'; '.join(problems)} "
        "is not a version the fast render path was tested on",
    )


# WeasyPrint's own test of the same thing (weasyprint/pdf/fonts.py): 4.1.0 added hb_set_add_sorted_array.
_HARFBUZZ_SUBSET_SINCE = (4, 1, 0)


def harfbuzz_subsetting() -> bool:
    """True when WeasyPrint subsets fonts with HarfBuzz's subsetting library, not (slower) fontTools."""
    harfbuzz = text_ffi.harfbuzz
    return bool(text_ffi.harfbuzz_subset) and bool(harfbuzz.hb_version_atleast(*_HARFBUZZ_SUBSET_SINCE))


# -- pages ------------------------------------------------------------------------------------------


def page_box(page):
    """The laid-out box tree of one of a document's pages."""
    return page._page_box


def page_with_tree(page, tree):
    """A copy of `page` (size, anchors, links...) drawing the box tree `tree` instead of its own."""
    copy = Page.__new__(Page)
    copy.__dict__.update(page.__dict__)
    copy._page_box = tree
    return copy


class StampedPage(Page):
    """A page with another page's size and box tree that draws only `own` boxes (text and images)."""

    def __init__(self, page, tree, anchors: dict, own: Iterable) -> None:
        # not Page.__init__: that reads the size and links from a page box, which here are the prototype's
        self.width, self.height, self.bleed = page.width, page.height, page.bleed
        self.bookmarks, self.links, self.forms = page.bookmarks, page.links, page.forms
        self.anchors = anchors
        self._page_box = tree
        self.own = tuple(own)

    def paint(self, stream, scale=1):
        with stream.stacked():
            stream.transform(a=scale, d=scale)
            for box in self.own:
                if type(box).__name__ == "TextBox":
                    draw_text(stream, box, 0, "clip", "none")
                else:
                    draw_replacedbox(stream, box)


# -- boxes ------------------------------------------------------------------------------------------


def initial_value(name: str):
    """A CSS property's initial value, as WeasyPrint's computed styles hold it."""
    return INITIAL_VALUES[name]


def box_kind(box) -> str:
    """The box's class name, looking through the placeholder an absolutely positioned box leaves in the flow."""
    return type(box._box if isinstance(box, AbsolutePlaceholder) else box).__name__


def swap_tree(box, replacement: Callable[[Any], Any]):
    """`box` with each descendant for which `replacement` gives a box replaced, copying only their ancestors."""
    if isinstance(box, AbsolutePlaceholder):
        inner = swap_tree(box._box, replacement)
        if inner is box._box:
            return box
        placeholder = AbsolutePlaceholder(inner)
        placeholder.set_laid_out_box(inner)
        return placeholder
    if not hasattr(box, "children"):
        return box
    changed, children = False, []
    for child in box.children:
        new = replacement(child)
        if new is None:
            new = swap_tree(child, replacement)
        changed |= new is not child
        children.append(new)
    return box.copy_with_children(children) if changed else box


def text_box_holding(old, text: str, line: Line, position_x: float):
    """A copy of the text box `old` holding `text`, shaped as `line` (from `split_first_line`), at `position_x`."""
    new = old.copy_with_text(text)
    new.pango_layout, new.width = line.layout, line.width
    new.position_x = position_x
    return new


# -- text -------------------------------------------------------------------------------------------


class Line(NamedTuple):
    """The first line of a text, as WeasyPrint's line breaking lays it out."""

    layout: Any  # WeasyPrint's Pango layout of the line
    length: int  # UTF-8 bytes of the text on the line
    resume: int | None  # the UTF-8 byte the next line starts at; None if the text is all on this line
    width: float
    height: float
    baseline: float


class _Context:
    """What WeasyPrint's line splitting needs of a layout context: only hyphenation dictionaries."""

    def __init__(self) -> None:
        self.dictionaries: dict = {}


_CONTEXT = _Context()


def split_first_line(text: str, style, max_width: float, justification_spacing: float = 0) -> Line:
    """The first line `text` takes in `style` in `max_width` CSS px (0: break wherever a line may break)."""
    return Line(*_split_first_line(text, style, _CONTEXT, max_width, justification_spacing))


def text_box_fonts(box) -> frozenset | None:
    """The Pango fonts a laid-out text box uses; None if any character has no glyph."""
    return line_fonts(box.pango_layout, box.style)


def line_fonts(layout, style) -> frozenset | None:
    """The Pango fonts the first line of a layout (`Line.layout`) uses; None if any character has no glyph."""
    layout.reactivate(style)
    try:
        first_line, _ = layout.get_first_line()
        fonts, run = set(), first_line.runs[0]
        while run != ffi.NULL:
            glyph_item = run.data
            run = run.next
            glyphs = glyph_item.glyphs
            if any(glyphs.glyphs[i].glyph & pango.PANGO_GLYPH_UNKNOWN_FLAG for i in range(glyphs.num_glyphs)):
                return None
            fonts.add(int(ffi.cast("intptr_t", glyph_item.item.analysis.font)))
        return frozenset(fonts)
    finally:
        layout.deactivate()


# -- images and PDF variants ------------------------------------------------------------------------


def raster_image(data: bytes, image_id: str, orientation, options: dict):
    """WeasyPrint's image for PNG/JPEG `data`; raises ValueError or OSError if Pillow cannot read it."""
    return RasterImage(Image.open(io.BytesIO(data)), image_id, data, None, None, orientation, options)


def is_raster(replacement) -> bool:
    """Whether a replaced box shows a raster image (not SVG, not an embedded document)."""
    return isinstance(replacement, RasterImage)


def variant_tags(variant: str) -> bool:
    """Whether WeasyPrint writes a PDF of this variant (PDF/UA, PDF/A-*a) tagged."""
    return bool(VARIANTS[variant][1].get("pdf_tags"))
