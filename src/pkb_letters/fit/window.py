"""Where each letter's address block lies in a laid-out document, measured against the envelope window.

Takes WeasyPrint documents: a chunk of letters, each in a section anchored `pkb-letter-N`, or the
fit stage's address blocks stacked in window-sized boxes; gives a `Misfit` for each letter whose
address block, laid out in the template's own font, is wider or taller than the window. An address
is never printed clipped: such a letter is an exception for a person to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pkb_letters.envelope import EnvelopeProfile
from pkb_letters.errors import TemplateError
from pkb_letters.records import Reason
from pkb_letters.render import weasyprint_adapter as wp

ANCHOR_PREFIX = "pkb-letter-"


ADDRESS_WINDOW_CLASS = "pkb-address-window"


MM_PER_PX = 25.4 / 96


@dataclass(frozen=True)
class Misfit:
    """A letter whose address does not fit the envelope window at the template's font."""

    sequence: int
    reason: Reason
    detail: str


def address_misfits(document) -> list[Misfit]:
    """Measure each letter's address block as laid out, with the real font: never print it clipped."""
    misfits = []
    seen: set[int] = set()
    for page in document.pages:
        (sequence,) = [int(a.removeprefix(ANCHOR_PREFIX)) for a in page.anchors if a.startswith(ANCHOR_PREFIX)]
        if sequence in seen:
            continue
        seen.add(sequence)
        misfit = address_misfit(sequence, _address_window_box(page, sequence))
        if misfit:
            misfits.append(misfit)
    return misfits


def section_row(path: Sequence) -> int | None:
    """The input row of the fit section a box is in."""
    for box in path:
        element = getattr(box, "element", None)
        anchor = element.get("id") or "" if element is not None and element.tag == "section" else ""
        if anchor.startswith(ANCHOR_PREFIX):
            return int(anchor.removeprefix(ANCHOR_PREFIX))
    return None


def windows(box, section: int | None = None):
    """(input row, window box) for every address window under `box`, from the fit document."""
    for child in box.all_children() if hasattr(box, "all_children") else ():
        element = getattr(child, "element", None)
        if element is None:
            continue
        anchor = element.get("id") or ""
        if element.tag == "section" and anchor.startswith(ANCHOR_PREFIX):
            yield from windows(child, int(anchor.removeprefix(ANCHOR_PREFIX)))
        elif ADDRESS_WINDOW_CLASS in (element.get("class") or "").split() and element is not box.element:
            yield section, child
        else:
            yield from windows(child, section)


def _address_window_box(page, sequence: int):
    for box in wp.page_box(page).descendants():
        element = box.element
        if element is not None and ADDRESS_WINDOW_CLASS in (element.get("class") or "").split():
            return box
    raise TemplateError(f"letter {sequence}: the template has no element with class {ADDRESS_WINDOW_CLASS!r} on page 1")


def address_misfit(sequence: int, window) -> Misfit | None:
    left, top = window.content_box_x(), window.content_box_y()
    lines = [box for box in window.descendants() if type(box).__name__ == "LineBox"]
    for number, line in enumerate(lines, 1):
        right = max((child.position_x + child.margin_width() for child in line.children), default=left)
        if right - left > window.width + 0.01:
            return Misfit(
                sequence,
                Reason.ADDRESS_TOO_WIDE,
                f"address line {number} is {(right - left) * MM_PER_PX:.1f} mm wide in the letter's font; "
                f"the envelope window is {window.width * MM_PER_PX:.1f} mm: shorten that line "
                "(for a name, use initials for middle names)",
            )
    bottom = max((line.position_y + line.height for line in lines), default=top)
    if bottom - top > window.height + 0.01:
        return Misfit(
            sequence,
            Reason.ADDRESS_TOO_TALL,
            f"the address is {(bottom - top) * MM_PER_PX:.1f} mm tall in the letter's font; the envelope "
            f"window is {window.height * MM_PER_PX:.1f} mm: use fewer address lines",
        )
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
