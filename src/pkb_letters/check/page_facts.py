"""What the preflight reads from a PDF's pages: sizes, fonts, text colours, words, rendered zones.

Takes a PDF file; gives, page by page, the facts `check` judges, in millimetres
from the page's top-left corner. Two C libraries do the reading, so that checking
costs a few milliseconds a page rather than a pure-Python parse of every glyph:

- qpdf (via pikepdf) for the structure: page boxes, font dictionaries, and the
  content streams' colour and text-showing operators, from which the colour every
  string of text is filled with is followed exactly, through ``q``/``Q`` and into
  Form XObjects (a colour space, not only a colour: RGB black is not K-only black).
- PDFium (via pypdfium2) for text positions and for rendering a mark's clear zone
  as the inserter's camera sees it. A page's characters are asked for their boxes in
  one pass of ctypes calls that makes no Python object per character, and a word's box
  is worked out from them only when a question needs it (`PageWords`): PDFium has no
  call that answers for many characters at once, and a page has about a thousand.

Fonts and Form XObjects shared by many pages are read once per file. Both libraries keep
every object they have parsed until the file is closed, so a page is found by walking
down the page tree by its nodes' /Count, parsing only the nodes on the way and the pages
asked for, never every page of the file (qpdf's page list would): a reader of a few pages
of a big, balanced file holds little more than the file's cross-reference table.

PDFium cannot be kept from parsing every page before the one asked for (it fills its page
list in order, about 1.8 KB a page), and qpdf holds the whole cross-reference table (about
0.4 KB a page of a print file). So a reader told which pages it will be asked about makes an
excerpt of only those pages (`pdf.excerpt`, from the objects found by /Count), closes the
file, and both libraries read the excerpt: what they hold while checking depends on those
pages, not on the size of the file or on where in it the pages are. The excerpt of a big file
of our print files' shape (`LAZY_FROM_OBJECTS`) is made from objects read one at a time through
its cross-reference table (`pdf.lazy`), so not even the table is read whole; of any other file
(a smaller one, another writer's, an updated or damaged one), from qpdf's reading of the whole
file, opened for this alone.
"""

from __future__ import annotations

import bisect
import ctypes
import io
import logging
import math
import re
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain, repeat
from operator import sub
from pathlib import Path

import pikepdf
import pypdfium2
import pypdfium2.raw as pdfium

from pkb_letters.envelope import Rect
from pkb_letters.pdf.excerpt import excerpt
from pkb_letters.pdf.pages import PageTree, inherited
from pkb_letters.pdf.xref_table import NotLazilyReadable, object_count

logger = logging.getLogger(__name__)
# Objects in a file of our print files' shape from which it is read an object at a time (`pdf.lazy`). Open,
# qpdf holds about 85 bytes for each entry of the file's cross-reference table; the reader of one object at
# a time holds nothing for them, but needs pypdf, whose import costs a process about 16 MB, and takes some
# 40-75 µs a page more to cut out an excerpt. So a file with fewer objects (up to 17 MB of qpdf's table) is
# read by qpdf, as before, and what a reader of some pages holds is never more than it is at this size.
LAZY_FROM_OBJECTS = 200_000
MM_PER_POINT = 25.4 / 72
K_BLACK = (0.0, 0.0, 0.0, 1.0)
PATTERN = ("pattern",)  # a text fill that is a pattern, not a colour
_COLOUR_AND_TEXT_OPERATORS = "q Q cs sc scn g rg k Tj TJ ' \" Do"
_MAX_FORM_DEPTH = 8
_WORD = re.compile(r"\S+")
# The colour `cs` starts a space with (ISO 32000-1, 8.6.5); ICC-based and CIE spaces start at zero.
_INITIAL_COLOURS = {
    "/DeviceGray": (0.0,),
    "/DeviceRGB": (0.0, 0.0, 0.0),
    "/DeviceCMYK": K_BLACK,
    "/CalGray": (0.0,),
    "/CalRGB": (0.0, 0.0, 0.0),
    "/Lab": (0.0, 0.0, 0.0),
}

Colour = tuple  # the fill's component values (float), PATTERN, or None for the default DeviceGray black


@dataclass(frozen=True)
class Word:
    text: str
    rect: Rect

    def __str__(self) -> str:
        return f"{self.text!r} at ({self.rect.left:.1f}, {self.rect.top:.1f}) mm"


def _cut_excerpt(path: Path, pages: range) -> tuple[bytes | None, int, dict[tuple[int, int], str]]:
    """`pages` of the PDF at `path` as a PDF of their own (`pdf.excerpt`), the file's page count, and what
    the page tree's nodes on the way to them say wrongly of their pages; None for the excerpt, logged,
    when qpdf cannot read the pages on their own. A big file of our print files' shape is read an object
    at a time (`_lazily`); any other is opened whole by qpdf for this alone and closed at once: qpdf keeps
    every object it parses, and the cross-reference table, until then."""
    cut = _cut_lazily(path, pages)
    if cut is not None:
        return cut
    with pikepdf.open(path, inherit_page_attributes=False) as pdf:
        tree = PageTree(pdf.Root.Pages)
        if not _within(pages, tree.count):
            raise IndexError(f"pages {pages.start}-{pages.stop - 1} are not all in the file's {tree.count} pages")
        try:
            data = excerpt(pdf, [tree.page(number) for number in pages])
        except Exception as exc:  # something qpdf cannot read: the file is read whole, as before
            logger.warning(
                "pages %d-%d of %s cannot be read on their own (%s); reading the whole file",
                pages.start,
                pages.stop - 1,
                path.name,
                exc,
            )
            data = None
        return data, tree.count, tree.disagreements


def _cut_lazily(path: Path, pages: range) -> tuple[bytes, int, dict[tuple[int, int], str]] | None:
    """`_cut_excerpt`'s answer, the file read an object at a time; None where qpdf is to read it: a file
    not read so (`_lazily`), or pages not all in the file (qpdf says why)."""

    def cut(pdf, tree: PageTree) -> tuple[bytes, int, dict[tuple[int, int], str]] | None:
        from pkb_letters.pdf.lazy import LazyExcerptObjects

        if not _within(pages, tree.count):
            return None
        return excerpt(LazyExcerptObjects(pdf), map(tree.page, pages)), tree.count, tree.disagreements

    return _lazily(path, cut)


def lazy_page_count(path: Path) -> tuple[int, dict[tuple[int, int], str]] | None:
    """The file's page count by its page tree's /Count, and what the root and its kids say wrongly of
    their pages (as `PdfPages` says on opening the file), read an object at a time; None for a file
    not read so (`_lazily`)."""
    return _lazily(path, lambda pdf, tree: (tree.count, tree.disagreements))


def _lazily(path: Path, read):
    """`read`(the file open in `pdf.lazy.LazyPdf`, its page tree), for a file of our print files' shape with
    at least `LAZY_FROM_OBJECTS` objects; None for any other, or one in which pypdf, told to be strict,
    finds something to repair: qpdf is to read those."""
    objects = object_count(path)
    if objects is None or objects < LAZY_FROM_OBJECTS:
        return None
    from pkb_letters.pdf.lazy import LazyPdf, resolved  # pypdf: imported only when a file is read with it

    try:
        with LazyPdf(path) as pdf:
            return read(pdf, PageTree(pdf.root["/Pages"], resolved))
    except NotLazilyReadable as exc:
        logger.debug("%s is read by qpdf: %s", path.name, exc)
    except Exception as exc:  # damage qpdf may repair, or report as it always has
        logger.info("%s is read by qpdf, not an object at a time: %s", path.name, exc)
    return None


def _within(pages: range, count: int) -> bool:
    return bool(pages) and pages.step == 1 and pages[0] >= 1 and pages[-1] <= count


class PageWords(Sequence[Word]):
    """A page's words, in the order the page draws them; indexing gives a `Word`.

    A word's box is made from its characters' loose boxes (see `PdfPages.words`). The characters are
    held as columns of numbers, in points as PDFium gives them, and a word's box is worked out only
    when a question needs it: whether every word is inside an area is first asked of the page's
    extremes, and which words overlap an area is asked only of the words with a character in its
    band of the page. A page has a few hundred words, nearly all far from any edge."""

    __slots__ = ("texts", "_lefts", "_rights", "_bottoms", "_offsets", "_sizes", "_origin", "_boxes", "_extremes")

    def __init__(
        self,
        texts: list[str],
        chars: tuple[Sequence[float], Sequence[float], Sequence[float]],
        offsets: list[int],
        sizes: list[float],
        origin: tuple[float, float],
    ) -> None:
        self.texts = texts
        # the words' characters, in points; word k's are offsets[k]:offsets[k + 1]
        self._lefts, self._rights, self._bottoms = chars
        self._offsets = offsets
        self._sizes = sizes  # each word's size, in points
        self._origin = origin  # the page's top-left corner, in points
        self._boxes: list[tuple[float, float, float, float]] | None = None  # every box, once all were needed
        self._extremes: tuple[float, float, float, float, float] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return Word(self.texts[index], Rect(*self.box(range(len(self))[index])))

    def box(self, index: int) -> tuple[float, float, float, float]:
        """Word `index`'s left, top, width and height in millimetres from the page's top-left corner."""
        if self._boxes is not None:
            return self._boxes[index]
        start, end = self._offsets[index], self._offsets[index + 1]
        return self._millimetres(
            min(self._lefts[start:end]), max(self._rights[start:end]), min(self._bottoms[start:end]), self._sizes[index]
        )

    def _millimetres(self, x0: float, x1: float, y0: float, size: float) -> tuple[float, float, float, float]:
        left, top = self._origin
        return (
            (x0 - left) * MM_PER_POINT,
            (top - y0 - size) * MM_PER_POINT,
            (x1 - x0) * MM_PER_POINT,
            size * MM_PER_POINT,
        )

    def _all_boxes(self) -> list[tuple[float, float, float, float]]:
        if self._boxes is None:
            pieces = list(map(slice, self._offsets, self._offsets[1:]))
            self._boxes = list(
                map(
                    self._millimetres,
                    map(min, map(self._lefts.__getitem__, pieces)),
                    map(max, map(self._rights.__getitem__, pieces)),
                    map(min, map(self._bottoms.__getitem__, pieces)),
                    self._sizes,
                )
            )
        return self._boxes

    def not_inside(self, area: Rect) -> list[int]:
        """The words whose box `area` does not contain (as `Rect.contains` says), by index."""
        if not self.texts or self._all_inside(area):
            return []
        return [n for n, box in enumerate(self._all_boxes()) if not _contains(area, box)]

    def overlapping(self, area: Rect) -> list[int]:
        """The words whose box overlaps `area` (as `Rect.overlaps` says), by index."""
        return [n for n in self._in_band(area) if _overlaps(self.box(n), area)]

    def _all_inside(self, area: Rect) -> bool:
        """Whether the page's extremes put every word's box inside `area`. Each bound is what the
        extreme word's box would be (subtraction and multiplication round monotonically); a right or
        bottom edge is a sum whose rounding `_SLACK_MM` covers."""
        left, top = self._origin
        leftmost, rightmost, lowest, highest, largest = self._extreme_values()
        return (
            (leftmost - left) * MM_PER_POINT >= area.left
            and (rightmost - left) * MM_PER_POINT + _SLACK_MM <= area.right
            and (top - highest - largest) * MM_PER_POINT >= area.top
            and (top - lowest) * MM_PER_POINT + _SLACK_MM <= area.bottom
        )

    def _extreme_values(self) -> tuple[float, float, float, float, float]:
        """The leftmost character's left, the rightmost's right, the lowest and highest bottoms, the largest size."""
        if self._extremes is None:
            self._extremes = (
                min(self._lefts),
                max(self._rights),
                min(self._bottoms),
                max(self._bottoms),
                max(self._sizes),
            )
        return self._extremes

    def _in_band(self, area: Rect) -> list[int]:
        """The words that may reach into `area`'s rows of the page: those with a character whose bottom
        is between the area's bottom, lowered by the largest word's size, and its top. (A word's bottom
        is its lowest character's.)"""
        if not self.texts:
            return []
        top = self._origin[1]
        _, _, lowest, highest, largest = self._extreme_values()
        low = top - area.bottom / MM_PER_POINT - largest - _SLACK_POINTS
        high = top - area.top / MM_PER_POINT + _SLACK_POINTS
        if highest <= low or lowest >= high:
            return []
        bottoms = self._bottoms
        offsets = self._offsets
        return sorted({bisect.bisect_right(offsets, n) - 1 for n, y in enumerate(bottoms) if low < y < high})

    def find(self, tokens: Sequence[str]) -> range | None:
        """Where `tokens` are the texts of consecutive words, first found; None if nowhere."""
        texts, size = self.texts, len(tokens)
        if not size:
            return None
        first = tokens[0]
        for start in range(len(texts) - size + 1):
            if texts[start] == first and texts[start : start + size] == tokens:
                return range(start, start + size)
        return None


_SLACK_MM = 1e-9  # far above the rounding of a sum of two page coordinates, far below anything printed
_SLACK_POINTS = 1e-6


def _contains(area: Rect, box: tuple[float, float, float, float]) -> bool:
    return area.contains(Rect(*box))


def _overlaps(box: tuple[float, float, float, float], area: Rect) -> bool:
    return Rect(*box).overlaps(area)


class PdfPages:
    """One PDF opened for reading; pages are numbered from 1 (the file's numbers, always).
    Raises on a file neither library can parse.

    Given the only `pages` that will be asked about, both libraries read an excerpt of just those
    (`_cut_excerpt`), not the file: what they hold then depends on those pages alone."""

    def __init__(self, path: Path, pages: range | None = None) -> None:
        data: bytes | None = None
        count = 0
        self._cut_disagreements: dict[tuple[int, int], str] = {}
        if pages is not None:
            data, count, self._cut_disagreements = _cut_excerpt(path, pages)
        # not inherit_page_attributes: copying inherited attributes down walks every page; we read them up
        self._pdf = pikepdf.open(path if data is None else io.BytesIO(data), inherit_page_attributes=False)
        try:
            self._tree = PageTree(self._pdf.Root.Pages)
            self._document = pypdfium2.PdfDocument(path if data is None else data)
        except Exception:
            self._pdf.close()
            raise
        self._count = self._tree.count if data is None else count
        self._pages = range(1, self._count + 1) if data is None or pages is None else pages  # numbered as in the file
        self._fonts: dict[tuple[int, int], str | None] = {}  # font object -> its name when not embedded
        self._resource_fonts: dict[tuple[int, int], list[str]] = {}  # resource dictionary -> its fonts not embedded
        self._forms: dict[tuple, frozenset] = {}  # (form object, colour on entry) -> colours of its text
        self._current: tuple[int, pypdfium2.PdfPage, pypdfium2.PdfTextPage | None] | None = None
        self._last_box: tuple[int, tuple[float, float, float, float]] = (0, (0.0, 0.0, 0.0, 0.0))

    def __len__(self) -> int:
        return self._count

    @property
    def page_tree_disagreements(self) -> dict[tuple[int, int], str]:
        """Page tree nodes met so far whose /Count is not the pages under them, by object: readers that
        count and readers that walk the /Kids (as qpdf, PDFium and most printers do) find different pages."""
        return {**self._cut_disagreements, **self._tree.disagreements}

    def _page_object(self, number: int) -> pikepdf.Dictionary:
        if number not in self._pages:
            raise IndexError(
                f"page {number} is not among the {self._count} pages of the file, "
                f"or not among pages {self._pages.start}-{self._pages.stop - 1} this reader reads"
            )
        return self._tree.page(number - self._pages.start + 1)

    def close(self) -> None:
        self._release()
        self._document.close()
        self._pdf.close()

    def __enter__(self) -> PdfPages:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- structure (qpdf) --------------------------------------------------------------------

    def size_mm(self, number: int) -> tuple[float, float]:
        """Width and height as the page is shown (a /Rotate of 90 or 270 turns it)."""
        left, bottom, right, top = self._mediabox(number)
        width, height = (right - left) * MM_PER_POINT, (top - bottom) * MM_PER_POINT
        rotate = int(inherited(self._page_object(number), "/Rotate") or 0)
        return (height, width) if rotate % 180 else (width, height)

    def unembedded_fonts(self, number: int) -> list[str]:
        resources = inherited(self._page_object(number), "/Resources")
        key = resources.objgen if isinstance(resources, pikepdf.Object) else (0, 0)
        if key == (0, 0):
            return self._unembedded_in(resources)
        # WeasyPrint gives a document's pages one resource dictionary, naming every image of the document
        if key not in self._resource_fonts:
            self._resource_fonts[key] = self._unembedded_in(resources)
        return list(self._resource_fonts[key])

    def _unembedded_in(self, page_resources) -> list[str]:
        missing = []
        for resources in _resource_dicts(page_resources):
            fonts = resources.get("/Font")
            for font in fonts.values() if isinstance(fonts, pikepdf.Dictionary) else ():
                name = self._unembedded_name(font)
                if name is not None:
                    missing.append(name)
        return missing

    def _unembedded_name(self, font: pikepdf.Object) -> str | None:
        key = font.objgen
        if key != (0, 0) and key in self._fonts:
            return self._fonts[key]
        name = None
        if font.get("/Subtype") != "/Type3":  # a Type 3 font draws its glyphs with its own content streams
            descendants = font.get("/DescendantFonts")
            target = descendants[0] if descendants else font
            descriptor = target.get("/FontDescriptor") or pikepdf.Dictionary()
            if not any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")):
                name = str(font.get("/BaseFont", "(unnamed)"))
        if key != (0, 0):
            self._fonts[key] = name
        return name

    def text_colours(self, number: int) -> frozenset[Colour | None]:
        """Every fill colour any text on the page is shown in, whatever draws it."""
        page = self._page_object(number)
        return self._shown_colours(pikepdf.Page(page), inherited(page, "/Resources"), None, 0)

    def _shown_colours(self, owner, resources, colour: Colour | None, depth: int) -> frozenset[Colour | None]:
        found: set[Colour | None] = set()
        saved: list[Colour | None] = []
        # each instruction's operands are made Python objects only when asked for: most are q and Q
        for instruction in pikepdf.parse_content_stream(owner, _COLOUR_AND_TEXT_OPERATORS):
            op = str(instruction.operator)
            if op == "q":
                saved.append(colour)
            elif op == "Q":
                colour = saved.pop() if saved else colour
            elif op in ("g", "rg", "k"):
                colour = tuple(float(v) for v in instruction.operands)
            elif op in ("sc", "scn"):
                operands = instruction.operands
                colour = (
                    PATTERN
                    if operands and isinstance(operands[-1], pikepdf.Name)
                    else (tuple(float(v) for v in operands))
                )
            elif op == "cs":
                colour = _initial_colour(instruction.operands[0], resources)
            elif op == "Do":
                found |= self._form_colours(instruction.operands[0], resources, colour, depth)
            elif colour not in found and _shows_text(op, instruction.operands):  # found: no need to look again
                found.add(colour)
        return frozenset(found)

    def _form_colours(self, name, resources, colour: Colour | None, depth: int) -> frozenset[Colour | None]:
        xobjects = resources.get("/XObject") if resources is not None else None
        form = xobjects.get(name) if isinstance(xobjects, pikepdf.Dictionary) else None
        if form is None or form.get("/Subtype") != "/Form" or depth >= _MAX_FORM_DEPTH:
            return frozenset()
        key = (form.objgen, colour)
        if key not in self._forms:
            self._forms[key] = self._shown_colours(form, form.get("/Resources", resources), colour, depth + 1)
        return self._forms[key]

    def _mediabox(self, number: int) -> tuple[float, float, float, float]:
        if self._last_box[0] != number:  # each page's is asked for its size, its words and its marks
            box = [float(v) for v in pikepdf.Page(self._page_object(number)).mediabox]
            self._last_box = (
                number,
                (min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])),
            )
        return self._last_box[1]

    # -- text and pixels (PDFium) ------------------------------------------------------------

    def has_text(self, number: int) -> bool:
        return pdfium.FPDFText_CountChars(self._textpage(number).raw) > 0

    def is_empty(self, number: int) -> bool:
        """Nothing at all is drawn on the page."""
        return pdfium.FPDFPage_CountObjects(self._page(number).raw) == 0

    def words(self, number: int) -> list[Word]:
        """Words in the order the page draws them, each boxed like pdfminer boxes a glyph: from the
        font's descent up by the font size, so the box does not depend on the font's ascender."""
        return list(self.page_words(number))

    def page_words(self, number: int) -> PageWords:
        """The page's `words`, their boxes held as columns of numbers (`PageWords`)."""
        textpage = self._textpage(number).raw
        count = pdfium.FPDFText_CountChars(textpage)
        text = self._text(number, count)
        spans = [match.span() for match in _WORD.finditer(text)]
        if not spans:
            return PageWords([], ([], [], []), [0], [], (0.0, 0.0))
        page_left, _, _, page_top = self._mediabox(number)
        starts, ends = [start for start, _ in spans], [end for _, end in spans]
        # the words' characters only (no spaces, no line ends)
        chars = _loose_char_boxes(textpage, list(chain.from_iterable(map(range, starts, ends))))
        return PageWords(
            [text[start:end] for start, end in spans],
            chars,
            list(accumulate(map(sub, ends, starts), initial=0)),
            _word_sizes(textpage, starts),
            (page_left, page_top),
        )

    def _text(self, number: int, count: int) -> str:
        text = self._textpage(number).get_text_range(0, count)
        if len(text) == count:
            return text
        # the text did not map one to one onto the page's characters: ask character by character
        textpage = self._textpage(number).raw
        return "".join(chr(pdfium.FPDFText_GetUnicode(textpage, i) or 32) for i in range(count))

    def square_images(self, number: int, smallest: float, largest: float) -> list[SquareImage]:
        """The page's square images (a QR code is one) from `smallest` to `largest` mm a side, drawn by the
        page itself (not in a Form XObject), in millimetres from the page's top-left corner; each with its
        own pixels when they are what the page shows (`_plain`)."""
        page = self._page(number).raw
        page_left, _, _, page_top = self._mediabox(number)
        count = pdfium.FPDFPage_CountObjects(page)
        found = []
        for index in range(count):
            item = pdfium.FPDFPage_GetObject(page, index)
            if pdfium.FPDFPageObj_GetType(item) != pdfium.FPDF_PAGEOBJ_IMAGE:
                continue
            bounds = _bounds(item)
            if bounds is None:
                continue
            left, bottom, right, top = bounds
            width, height = (right - left) * MM_PER_POINT, (top - bottom) * MM_PER_POINT
            if smallest <= width <= largest and abs(width - height) <= 0.02 * width:
                area = Rect((left - page_left) * MM_PER_POINT, (page_top - top) * MM_PER_POINT, width, height)
                later = (pdfium.FPDFPage_GetObject(page, after) for after in range(index + 1, count))
                pixels = _own_pixels(item) if _plain(item, bounds, later) else None
                found.append(SquareImage(area, pixels))
        return found

    def render_mm(self, number: int, zone: Rect, dpi: float):
        """`zone` of the page, rendered in grey at `dpi` (a PIL image)."""
        page = self._page(number)
        left, bottom, right, top = self._mediabox(number)
        to_pt = 1 / MM_PER_POINT
        width, height = right - left, top - bottom
        crop = (
            max(zone.left * to_pt, 0),
            max(height - zone.bottom * to_pt, 0),
            max(width - zone.right * to_pt, 0),
            max(zone.top * to_pt, 0),
        )
        return page.render(scale=dpi / 72, crop=crop, grayscale=True).to_pil()

    def _page(self, number: int) -> pypdfium2.PdfPage:
        if self._current is None or self._current[0] != number:
            self._page_object(number)  # a number out of range is an IndexError
            self._release()
            self._current = (number, self._document[number - self._pages.start], None)
        return self._current[1]

    def _textpage(self, number: int) -> pypdfium2.PdfTextPage:
        page = self._page(number)
        assert self._current is not None
        if self._current[2] is None:
            self._current = (number, page, page.get_textpage())
        return self._current[2]

    def _release(self) -> None:
        """Close the page in hand: PDFium keeps every loaded page's parsed content until it is closed."""
        if self._current is not None:
            _, page, textpage = self._current
            if textpage is not None:
                textpage.close()
            page.close()
            self._current = None


@dataclass(frozen=True)
class SquareImage:
    """A square image on a page: where it is, and its own pixels when the page shows exactly them,
    scaled, and they are grey (None otherwise: then only rendering the area shows what is printed)."""

    area: Rect
    pixels: memoryview | None  # grey, rows by columns, framed in white (`_own_pixels`)


def _bounds(item) -> tuple[float, float, float, float] | None:
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    if not pdfium.FPDFPageObj_GetBounds(item, left, bottom, right, top):
        return None
    return left.value, bottom.value, right.value, top.value


def _plain(image, bounds: tuple[float, float, float, float], later: Iterable) -> bool:
    """The page shows `image`'s own pixels, only scaled: it is opaque (no mask, alpha or blend, so what is
    under it is hidden), drawn upright and unmirrored, not clipped, and nothing drawn after it reaches it."""
    if pdfium.FPDFPageObj_HasTransparency(image):
        return False
    matrix = pdfium.FS_MATRIX()
    if not pdfium.FPDFPageObj_GetMatrix(image, matrix):
        return False
    if matrix.b != 0 or matrix.c != 0 or matrix.a <= 0 or matrix.d <= 0:
        return False
    clip = pdfium.FPDFPageObj_GetClipPath(image)
    if clip and pdfium.FPDFClipPath_CountPaths(clip) != -1:  # -1: the clip path holds nothing, nothing is cut
        return False
    left, bottom, right, top = bounds
    for item in later:
        other = _bounds(item)
        if other is None or not (other[2] <= left or other[0] >= right or other[3] <= bottom or other[1] >= top):
            return False
    return True


def _own_pixels(image, margin: int = 4) -> memoryview | None:
    """A grey image's pixels as its stream holds them (decoded), rows by columns, with a white margin
    `margin` pixels wide around them (a QR code's quiet zone, should the image have none); None for an
    image in colour, read otherwise."""
    bitmap = pdfium.FPDFImageObj_GetBitmap(image)
    if not bitmap:
        return None
    try:
        if pdfium.FPDFBitmap_GetFormat(bitmap) != pdfium.FPDFBitmap_Gray:
            return None
        width, height = pdfium.FPDFBitmap_GetWidth(bitmap), pdfium.FPDFBitmap_GetHeight(bitmap)
        stride = pdfium.FPDFBitmap_GetStride(bitmap)
        data = ctypes.string_at(pdfium.FPDFBitmap_GetBuffer(bitmap), stride * height)
    finally:
        pdfium.FPDFBitmap_Destroy(bitmap)
    side, row = b"\xff" * margin, b"\xff" * (width + 2 * margin)
    rows = (side + data[start : start + width] + side for start in range(0, stride * height, stride))
    framed = b"".join((row * margin, *rows, row * margin))
    return memoryview(framed).cast("B", (height + 2 * margin, width + 2 * margin))


def _by_address(function, restype, *argtypes):
    """`function` of PDFium, called with plain integers for its pointers (``c_void_p``), so that
    `map` can call it for every character of a page without making a Python object per call.
    Called keeping the GIL (as PYFUNCTYPE does): each call takes well under a microsecond, and
    letting the GIL go and taking it back cost a sixth of that."""
    return ctypes.PYFUNCTYPE(restype, *argtypes)(ctypes.cast(function, ctypes.c_void_p).value)


_VOID_P, _INT = ctypes.c_void_p, ctypes.c_int
_LOOSE_CHAR_BOX = _by_address(pdfium.FPDFText_GetLooseCharBox, _INT, _VOID_P, _INT, _VOID_P)
_FONT_SIZE = _by_address(pdfium.FPDFText_GetFontSize, ctypes.c_double, _VOID_P, _INT)
_CHAR_MATRIX = _by_address(pdfium.FPDFText_GetMatrix, _INT, _VOID_P, _INT, _VOID_P)
_TEXT_OBJECT = _by_address(pdfium.FPDFText_GetTextObject, _VOID_P, _VOID_P, _INT)


def _each(function, textpage, indices: Sequence[int], into=None, size: int = 0) -> list:
    """`function`(textpage, index[, pointer to the index's place in `into`]) for every index, in C's loop
    as far as Python allows: one ctypes call a character, and no Python object made for it."""
    handle = ctypes.cast(textpage, ctypes.c_void_p).value
    if into is None:
        return list(map(function, repeat(handle), indices))
    base = ctypes.addressof(into)
    return list(map(function, repeat(handle), indices, range(base, base + size * len(indices), size)))


def _loose_char_boxes(textpage, indices: Sequence[int]) -> tuple[list[float], list[float], list[float]]:
    """The loose box (PDFium's FPDFText_GetLooseCharBox) of the characters at `indices`: lefts, rights, bottoms."""
    boxes = (pdfium.FS_RECTF * len(indices))()
    _each(_LOOSE_CHAR_BOX, textpage, indices, boxes, ctypes.sizeof(pdfium.FS_RECTF))
    values = array("f", bytes(boxes))  # FS_RECTF is left, top, right, bottom, as 32-bit floats
    return values[0::4].tolist(), values[2::4].tolist(), values[3::4].tolist()


def _word_sizes(textpage, starts: Sequence[int]) -> list[float]:
    """The size each word is drawn at, its first character's (`_font_sizes`). PDFium gives every character
    of a text object the object's font size and matrix, so each object is asked once; a character of
    none (one PDFium made up) is asked for itself."""
    keys = _each(_TEXT_OBJECT, textpage, starts)
    if None in keys:  # no object: a key of the character's own
        keys = [found or -start for found, start in zip(keys, starts, strict=True)]
    first = dict(zip(reversed(keys), reversed(starts), strict=True))  # each object's first character
    size_of = dict(zip(first, _font_sizes(textpage, list(first.values())), strict=True))
    return list(map(size_of.__getitem__, keys))


def _font_sizes(textpage, indices: Sequence[int]) -> list[float]:
    """The size each character at `indices` is drawn at: its font size scaled by its matrix's y axis."""
    matrices = (pdfium.FS_MATRIX * len(indices))()
    _each(_CHAR_MATRIX, textpage, indices, matrices, ctypes.sizeof(pdfium.FS_MATRIX))
    values = array("f", bytes(matrices))  # FS_MATRIX is a, b, c, d, e, f, as 32-bit floats
    return [
        size * math.hypot(c, d)
        for size, c, d in zip(_each(_FONT_SIZE, textpage, indices), values[2::6], values[3::6], strict=True)
    ]


def _shows_text(operator: str, operands) -> bool:
    if operator in ("Tj", "'", '"'):
        return bool(operands) and isinstance(operands[-1], pikepdf.String) and len(bytes(operands[-1])) > 0
    if operator == "TJ":
        return bool(operands) and any(isinstance(item, pikepdf.String) and len(bytes(item)) > 0 for item in operands[0])
    return False


def _initial_colour(name, resources) -> Colour | None:
    space = str(name)
    if space in _INITIAL_COLOURS:
        return _INITIAL_COLOURS[space]
    if space == "/Pattern":
        return PATTERN
    spaces = resources.get("/ColorSpace") if resources is not None else None
    definition = spaces.get(name) if isinstance(spaces, pikepdf.Dictionary) else None
    if isinstance(definition, pikepdf.Name):
        return _INITIAL_COLOURS.get(str(definition), PATTERN if str(definition) == "/Pattern" else None)
    if not isinstance(definition, pikepdf.Array) or not len(definition):
        return None
    family = str(definition[0])
    if family == "/ICCBased":
        return (0.0,) * int(definition[1].get("/N", 0))
    if family == "/Separation":
        return (1.0,)
    if family == "/DeviceN":
        return (1.0,) * len(definition[1])
    if family == "/Indexed":
        return (0.0,)
    if family == "/Pattern":
        return PATTERN
    return _INITIAL_COLOURS.get(family)


def _resource_dicts(resources, depth: int = 0) -> Iterator[pikepdf.Dictionary]:
    """A page's resources and those of the Form XObjects it draws, a few levels down."""
    if not isinstance(resources, pikepdf.Dictionary) or depth > 4:
        return
    yield resources
    xobjects = resources.get("/XObject")
    for xobject in xobjects.values() if isinstance(xobjects, pikepdf.Dictionary) else ():
        if xobject.get("/Subtype") == "/Form":
            yield from _resource_dicts(xobject.get("/Resources"), depth + 1)
