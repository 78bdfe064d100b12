"""Drawings over print-file pages for people to review: the sample watermark and the proof overlay.

`watermark` takes a print file and gives the same pages with a light diagonal
"SAMPLE – NOT FOR POSTING" over every one of them, blank backs included, so a
preview can never be mistaken for letters to post. `proof` takes those pages and
outlines what the print room works to: the envelope window on each letter's first
page, the marks' clear zone on each sheet's front, the printable area, and the fold
lines (one for a C5 half fold, two for a DL C- or Z-fold). All geometry comes from
the envelope profile (`envelope.py`) and the mark layout (`assemble/marks.py`).

The drawings are laid out by WeasyPrint (lines and rectangles as SVG, labels as
text in the default template's font) and merged over the pages with pypdf.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from pypdf import PdfReader, PdfWriter
from weasyprint import HTML
from weasyprint.text.fonts import FontConfiguration

from pkb_letters.config import DEFAULT_TEMPLATE
from pkb_letters.envelope import A4_HEIGHT_MM, A4_WIDTH_MM, EnvelopeProfile, Rect
from pkb_letters.render.font_subsetting import quiet_fallback_warnings
from pkb_letters.render.template_fetcher import TemplateFolderFetcher

quiet_fallback_warnings()  # the proof writes PDFs with WeasyPrint too

WATERMARK_TEXT = "SAMPLE – NOT FOR POSTING"
_FONT_DIR = DEFAULT_TEMPLATE / "fonts"
_FONT = _FONT_DIR / "LiberationSans-Regular.ttf"
_DIAGONAL_DEGREES = math.degrees(math.atan2(A4_HEIGHT_MM, A4_WIDTH_MM))  # bottom-left to top-right

# Proof colours: screen colours on purpose, a proof is looked at, never printed for posting.
WINDOW_COLOUR = "#d6007e"
ZONE_COLOUR = "#0060df"
PRINTABLE_COLOUR = "#00875a"
FOLD_COLOUR = "#e05a00"


@dataclass(frozen=True)
class PageRole:
    """What a page of the print file is, for the proof: which outlines belong on it."""

    letter_first_page: bool  # shows through the envelope window
    front: bool  # a sheet's front: carries the separation mark


def fold_lines(envelope: EnvelopeProfile) -> list[float]:
    """Where the inserter folds the sheet, in mm from the top: half for C5, thirds for a DL C- or Z-fold."""
    if envelope.fold == "half":
        return [A4_HEIGHT_MM / 2]
    return [A4_HEIGHT_MM / 3, 2 * A4_HEIGHT_MM / 3]


def watermark(pdf: bytes) -> bytes:
    """`pdf` with the sample watermark drawn over every page."""
    overlay = _overlay_pages([_watermark_html()])[0]
    return _merge(pdf, [overlay] * len(PdfReader(io.BytesIO(pdf)).pages))


def proof(pdf: bytes, roles: Sequence[PageRole], envelope: EnvelopeProfile, mark_zone: Rect | None) -> bytes:
    """`pdf` (one page per role) with the envelope window, clear zone, printable area and folds outlined."""
    kinds = sorted(set(roles), key=lambda r: (not r.letter_first_page, not r.front))
    drawn = _overlay_pages([_proof_svg(kind, envelope, mark_zone) for kind in kinds])
    by_kind = dict(zip(kinds, drawn, strict=True))
    return _merge(pdf, [by_kind[role] for role in roles])


def _merge(pdf: bytes, overlays: Sequence) -> bytes:
    reader = PdfReader(io.BytesIO(pdf))
    if len(overlays) != len(reader.pages):
        raise ValueError(f"{len(overlays)} overlays for {len(reader.pages)} pages")
    writer = PdfWriter(clone_from=reader)
    for page, overlay in zip(writer.pages, overlays, strict=True):
        page.merge_page(overlay)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _overlay_pages(bodies: Sequence[str]):
    """One A4 page per body, transparent where nothing is drawn."""
    pages = "".join(f'<div class="page">{body}</div>' for body in bodies)
    html = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><style>
@font-face {{ font-family: "Proof Sans"; src: url("{_FONT.as_uri()}"); }}
@page {{ size: A4 portrait; margin: 0; }}
html, body {{ margin: 0; font-family: "Proof Sans"; }}
.page {{ position: relative; width: {A4_WIDTH_MM}mm; height: {A4_HEIGHT_MM}mm; break-after: page; overflow: hidden; }}
.page:last-child {{ break-after: auto; }}
svg {{ position: absolute; left: 0; top: 0; width: {A4_WIDTH_MM}mm; height: {A4_HEIGHT_MM}mm; }}
.label {{ position: absolute; margin: 0; font-size: 6.5pt; line-height: 1; white-space: nowrap; }}
.watermark {{ position: absolute; left: 0; top: 0; width: 100%; height: 100%;
              display: flex; align-items: center; justify-content: center; }}
.watermark span {{ transform: rotate(-{_DIAGONAL_DEGREES:.2f}deg); font-size: 50pt; white-space: nowrap;
                   color: #7f7f7f; opacity: 0.3; letter-spacing: 2pt; }}
</style></head><body>{pages}</body></html>"""
    fetcher = TemplateFolderFetcher(_FONT_DIR)  # the overlay reads its font and nothing else
    with fetcher.guarded():
        data = HTML(string=html, base_url=_FONT_DIR.as_uri() + "/", url_fetcher=fetcher).write_pdf(
            font_config=FontConfiguration()
        )
    return list(PdfReader(io.BytesIO(data)).pages)


def _watermark_html() -> str:
    return f'<div class="watermark"><span>{escape(WATERMARK_TEXT)}</span></div>'


def _proof_svg(role: PageRole, envelope: EnvelopeProfile, mark_zone: Rect | None) -> str:
    shapes, labels = [], []
    printable = envelope.printable_area
    shapes.append(_rect(printable, PRINTABLE_COLOUR, "1.5 1"))
    labels.append(_label(printable.left + 1, printable.top + 1, PRINTABLE_COLOUR, "printable area"))
    if role.letter_first_page:
        window = envelope.window
        shapes.append(_rect(window, WINDOW_COLOUR, None))
        labels.append(
            _label(
                window.left,
                window.top - 3,
                WINDOW_COLOUR,
                f"{envelope.name} envelope window {window.width:g} × {window.height:g} mm",
            )
        )
    if role.front and mark_zone is not None:
        shapes.append(_rect(mark_zone, ZONE_COLOUR, None))
        labels.append(_label(mark_zone.right + 1, mark_zone.top, ZONE_COLOUR, "marks' clear zone: keep clear"))
    for number, y in enumerate(fold_lines(envelope), 1):
        shapes.append(
            f'<line x1="0" y1="{y:.2f}" x2="{A4_WIDTH_MM}" y2="{y:.2f}" stroke="{FOLD_COLOUR}" '
            'stroke-width="0.3" stroke-dasharray="4 2"/>'
        )
        labels.append(_label(A4_WIDTH_MM - 14, y - 3, FOLD_COLOUR, f"fold {number}"))
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {A4_WIDTH_MM} {A4_HEIGHT_MM}">'
        + "".join(shapes)
        + "</svg>"
    )
    return svg + "".join(labels)


def _rect(rect: Rect, colour: str, dashes: str | None) -> str:
    dash = f' stroke-dasharray="{dashes}"' if dashes else ""
    return (
        f'<rect x="{rect.left:.2f}" y="{rect.top:.2f}" width="{rect.width:.2f}" height="{rect.height:.2f}" '
        f'fill="none" stroke="{colour}" stroke-width="0.3"{dash}/>'
    )


def _label(left: float, top: float, colour: str, text: str) -> str:
    return f'<p class="label" style="left: {left:.2f}mm; top: {top:.2f}mm; color: {colour}">{escape(text)}</p>'
