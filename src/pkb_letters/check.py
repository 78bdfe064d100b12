"""Preflight: letter PDFs (ours or a customer's) in, a report of what a print room would reject out.

Per page: not A4, fonts not embedded, text not in pure K-only black, text
outside the printable area or inside the marks' clear zone, the address on a
letter's first page not inside the envelope window, page counts that disagree
with the manifest, and separation marks missing or whose decoded payload
disagrees with the manifest. DataMatrix marks are decoded from the rendered
page by libdmtx (via pylibdmtx), a reader independent of the encoder we print with.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import pdfplumber
import pypdfium2
from pypdf import PdfReader

from . import marks
from .envelope import A4_HEIGHT_MM, A4_WIDTH_MM, C5, EnvelopeProfile, Rect
from .marks import MarkKind, MarkLayout

with warnings.catch_warnings():  # pylibdmtx 0.1.10 imports distutils' LooseVersion, deprecated since 3.10
    warnings.filterwarnings("ignore", "distutils Version classes", DeprecationWarning)
    from pylibdmtx import pylibdmtx

MM_PER_POINT = 25.4 / 72
_SIZE_TOLERANCE_MM = 0.2
_POSITION_TOLERANCE_MM = 0.3
_K_BLACK = (0.0, 0.0, 0.0, 1.0)
_SCAN_DPI = 300
_DARK = 96  # grey level below which a scanned OMR track counts as a dash


class Code(StrEnum):
    UNREADABLE = "unreadable-pdf"
    NOT_A4 = "not-a4"
    FONT_NOT_EMBEDDED = "font-not-embedded"
    NON_BLACK_TEXT = "non-black-text"
    OUTSIDE_PRINTABLE = "text-outside-printable-area"
    IN_MARK_ZONE = "text-in-mark-clear-zone"
    ADDRESS_NOT_IN_WINDOW = "address-not-in-window"
    PAGE_COUNT = "page-count-mismatch"
    BLANK_NOT_BLANK = "padding-page-not-blank"
    MARK_MISSING = "mark-missing"
    MARK_MISMATCH = "mark-mismatch"


@dataclass(frozen=True)
class Problem:
    file: str
    page: int | None  # 1-based; None for the whole file
    code: Code
    detail: str


@dataclass
class Report:
    files: list[str] = field(default_factory=list)
    pages: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "files": self.files, "pages": self.pages,
                "problems": [asdict(p) for p in self.problems]}

    def json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def text(self, limit: int | None = None) -> str:
        lines = [f"{len(self.files)} file(s), {self.pages} page(s) checked: "
                 + ("no problems" if self.ok else f"{len(self.problems)} problem(s)")]
        shown = self.problems if limit is None else self.problems[:limit]
        for p in shown:
            where = f"{p.file} page {p.page}" if p.page else p.file
            lines.append(f"  {where}: {p.code}: {p.detail}")
        if len(shown) < len(self.problems):
            lines.append(f"  … and {len(self.problems) - len(shown)} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Expected:
    """What the manifest says about one file."""

    pages: int | None
    duplex: bool
    letters: list[dict[str, Any]]


def check_files(
    paths: Sequence[Path],
    manifest: Path | Mapping[str, Any] | None = None,
    envelope: EnvelopeProfile = C5,
    layout: MarkLayout | None = None,
) -> Report:
    data = _load_manifest(manifest)
    if layout is None:
        kind = (data or {}).get("job", {}).get("print", {}).get("marks", MarkKind.DATAMATRIX)
        layout = marks.DEFAULT_LAYOUTS[MarkKind(kind)]
    report = Report()
    for path in paths:
        report.files.append(path.name)
        _check_file(path, _expected_for(data, path.name), envelope, layout, report)
    return report


def _load_manifest(manifest: Path | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if manifest is None or isinstance(manifest, Mapping):
        return manifest
    return json.loads(manifest.read_text(encoding="utf-8"))


def _expected_for(data: Mapping[str, Any] | None, name: str) -> _Expected | None:
    if data is None:
        return None
    job = data["job"]
    pages = next((f["pages"] for f in job.get("files", []) if f["name"] == name), None)
    letters = [entry for entry in data["letters"] if entry["file"] == name]
    return _Expected(pages, bool(job.get("print", {}).get("duplex", False)), letters)


def _check_file(path: Path, expected: _Expected | None, envelope: EnvelopeProfile, layout: MarkLayout,
                report: Report) -> None:
    add = lambda page, code, detail: report.problems.append(Problem(path.name, page, code, detail))  # noqa: E731
    try:
        reader = PdfReader(path)
        plumber = pdfplumber.open(path)
        rendered = pypdfium2.PdfDocument(path)
    except Exception as exc:  # any parser failure means the print room cannot use the file either
        add(None, Code.UNREADABLE, f"cannot read the PDF: {exc}")
        return
    with plumber:
        report.pages += len(reader.pages)
        sample = marks.sample_payload("PKB-00000000-000000")
        zone = marks.clear_zone(layout, sample)
        for number, page in enumerate(plumber.pages, 1):
            _check_page(number, reader.pages[number - 1], page, envelope, zone, add)
        _check_structure(path.name, expected, plumber, rendered, envelope, layout, zone, add)
    rendered.close()


# -- per page -------------------------------------------------------------------------------


def _check_page(number: int, pypdf_page, page, envelope: EnvelopeProfile, zone: Rect | None, add) -> None:
    width, height = float(page.width) * MM_PER_POINT, float(page.height) * MM_PER_POINT
    if abs(width - A4_WIDTH_MM) > _SIZE_TOLERANCE_MM or abs(height - A4_HEIGHT_MM) > _SIZE_TOLERANCE_MM:
        add(number, Code.NOT_A4, f"page is {width:.1f} x {height:.1f} mm, not A4 portrait (210 x 297)")
    for font in _unembedded_fonts(pypdf_page):
        add(number, Code.FONT_NOT_EMBEDDED, f"font {font} is not embedded")
    colours = sorted({_colour_name(c.get("non_stroking_color")) for c in page.chars
                      if tuple(c.get("non_stroking_color") or ()) != _K_BLACK})
    if colours:
        add(number, Code.NON_BLACK_TEXT, f"text in {', '.join(colours)}; print rooms want K-only black (0 0 0 1 k)")
    printable = envelope.printable_area.grown(_POSITION_TOLERANCE_MM)
    outside = [w for w in _words(page) if not printable.contains(w.rect)]
    if outside:
        add(number, Code.OUTSIDE_PRINTABLE, f"{len(outside)} word(s) outside the printable area, e.g. {outside[0]}")
    if zone is not None:
        inner = zone.grown(-_POSITION_TOLERANCE_MM)
        intruders = [w for w in _words(page) if w.rect.overlaps(inner)]
        if intruders:
            add(number, Code.IN_MARK_ZONE, f"{len(intruders)} word(s) in the marks' clear zone, e.g. {intruders[0]}")


def _colour_name(colour) -> str:
    if colour is None:
        return "the default (DeviceGray) colour"
    values = " ".join(f"{float(v):g}" for v in colour)
    return {1: f"gray {values}", 3: f"RGB {values}", 4: f"CMYK {values}"}.get(len(colour), f"colour {values}")


def _unembedded_fonts(page) -> list[str]:
    missing = []
    for resources in _resource_dicts(page.get("/Resources")):
        for font in (resources.get("/Font") or {}).values():
            font = font.get_object()
            if font.get("/Subtype") == "/Type3":
                continue  # glyphs are drawn by the font's own content streams
            descendants = font.get("/DescendantFonts")
            target = descendants[0].get_object() if descendants else font
            descriptor = target.get("/FontDescriptor")
            descriptor = descriptor.get_object() if descriptor else {}
            if not any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")):
                missing.append(str(font.get("/BaseFont", "(unnamed)")))
    return missing


def _resource_dicts(resources, depth: int = 0) -> Iterable:
    if resources is None or depth > 4:
        return
    resources = resources.get_object()
    yield resources
    for xobject in (resources.get("/XObject") or {}).values():
        xobject = xobject.get_object()
        if xobject.get("/Subtype") == "/Form":
            yield from _resource_dicts(xobject.get("/Resources"), depth + 1)


@dataclass(frozen=True)
class _Word:
    text: str
    rect: Rect

    def __str__(self) -> str:
        return f"{self.text!r} at ({self.rect.left:.1f}, {self.rect.top:.1f}) mm"


def _words(page) -> list[_Word]:
    return [
        _Word(w["text"], Rect(w["x0"] * MM_PER_POINT, w["top"] * MM_PER_POINT,
                              (w["x1"] - w["x0"]) * MM_PER_POINT, (w["bottom"] - w["top"]) * MM_PER_POINT))
        for w in page.extract_words(use_text_flow=True)
    ]


# -- per file: letters, padding and marks ---------------------------------------------------


def _check_structure(name, expected, plumber, rendered, envelope, layout, zone, add) -> None:
    pages = plumber.pages
    if expected is None:
        _check_without_manifest(pages, rendered, envelope, layout, zone, add)
        return
    if expected.pages is not None and expected.pages != len(pages):
        add(None, Code.PAGE_COUNT, f"the file has {len(pages)} pages; the manifest says {expected.pages}")
    next_page = 1
    for entry in expected.letters:
        first, count = entry["first_page"], entry["page_count"]
        sheets = entry.get("sheet_count", count)
        printed = 2 * sheets if expected.duplex else count
        if first != next_page:
            add(first, Code.PAGE_COUNT, f"piece {entry['piece_id']} starts on page {first}; after the letter before "
                                         f"it, it should start on page {next_page}")
        next_page = first + printed
        if first + printed - 1 > len(pages):
            add(None, Code.PAGE_COUNT, f"piece {entry['piece_id']} needs pages {first}-{first + printed - 1}; "
                                       f"the file has {len(pages)}")
            continue
        _check_address(pages[first - 1], first, envelope, [entry["name"], *entry["address_lines"]], add)
        for padding in range(first + count, first + printed):
            if pages[padding - 1].chars or _mark_present(rendered, padding, layout, zone):
                add(padding, Code.BLANK_NOT_BLANK, f"the blank back of piece {entry['piece_id']} has something on it")
        fronts = [first + (2 if expected.duplex else 1) * n for n in range(sheets)]
        for front, payload in zip(fronts, entry.get("marks", []), strict=False):
            _check_mark(rendered, front, layout, zone, payload, add)
    if expected.letters and next_page - 1 != len(pages):
        add(None, Code.PAGE_COUNT, f"the manifest's letters fill {next_page - 1} pages; the file has {len(pages)}")


def _check_without_manifest(pages, rendered, envelope, layout, zone, add) -> None:
    """A customer's file: first pages are those whose mark says sheet 1 (or page 1 when unmarked)."""
    firsts = [1]
    if layout.kind is MarkKind.DATAMATRIX:
        decoded = {n: _decode_datamatrix(rendered, n, zone) for n in range(1, len(pages) + 1)}
        marked = {n: p for n, p in decoded.items() if p}
        if not marked:
            add(None, Code.MARK_MISSING, "no DataMatrix separation mark found on any page")
        for n, payload in marked.items():
            if not marks.payload_is_consistent(payload):
                add(n, Code.MARK_MISMATCH, f"mark {payload!r} fails its check character")
        firsts = [n for n, p in marked.items() if " 01/" in p] or [1]
    for first in firsts:
        _check_address(pages[first - 1], first, envelope, None, add)


def _check_address(page, number: int, envelope: EnvelopeProfile, lines: list[str] | None, add) -> None:
    window = envelope.window.grown(_POSITION_TOLERANCE_MM)
    words = _words(page)
    if lines is None:
        near = [w for w in words if w.rect.overlaps(window)]
        if not near:
            add(number, Code.ADDRESS_NOT_IN_WINDOW, f"a letter's first page has no text in the {envelope.name} window")
        for word in near:
            if not window.contains(word.rect):
                add(number, Code.ADDRESS_NOT_IN_WINDOW, f"{word} crosses the {envelope.name} window's edge")
        return
    for line in lines:
        run = _find_line(words, line)
        if not run:
            add(number, Code.ADDRESS_NOT_IN_WINDOW, f"address line {line!r} is not on the page")
        elif not all(window.contains(w.rect) for w in run):
            add(number, Code.ADDRESS_NOT_IN_WINDOW, f"address line {line!r} at ({run[0].rect.left:.1f}, "
                                                    f"{run[0].rect.top:.1f}) mm is outside the {envelope.name} window")


def _find_line(words: Sequence[_Word], line: str) -> list[_Word]:
    tokens = line.split()
    for start in range(len(words)):
        run = words[start : start + len(tokens)]
        if [w.text for w in run] == tokens:
            return list(run)
    return []


def _check_mark(rendered, number: int, layout: MarkLayout, zone: Rect | None, payload: str, add) -> None:
    if layout.kind is MarkKind.NONE or zone is None:
        return
    if layout.kind is MarkKind.DATAMATRIX:
        found = _decode_datamatrix(rendered, number, zone)
    else:
        found = _read_omr(rendered, number, layout, zone)
    if not found or (layout.kind is MarkKind.OMR and not found.startswith("1")):
        add(number, Code.MARK_MISSING, f"no {layout.kind} mark found; the manifest says {payload!r}")
    elif found != payload:
        add(number, Code.MARK_MISMATCH, f"the mark reads {found!r}; the manifest says {payload!r}")


def _mark_present(rendered, number: int, layout: MarkLayout, zone: Rect | None) -> bool:
    if layout.kind is MarkKind.NONE or zone is None:
        return False
    if layout.kind is MarkKind.DATAMATRIX:
        return _decode_datamatrix(rendered, number, zone) is not None
    return "1" in _read_omr(rendered, number, layout, zone)


def _scan(rendered, number: int, zone: Rect):
    """The clear zone of a page as a greyscale image at 300 dpi, as the inserter's camera would see it."""
    page = rendered[number - 1]
    width, height = page.get_size()
    to_pt = 1 / MM_PER_POINT
    crop = (max(zone.left * to_pt, 0), max(height - zone.bottom * to_pt, 0),
            max(width - zone.right * to_pt, 0), max(zone.top * to_pt, 0))
    return page.render(scale=_SCAN_DPI / 72, crop=crop, grayscale=True).to_pil()


def _decode_datamatrix(rendered, number: int, zone: Rect) -> str | None:
    found = pylibdmtx.decode(_scan(rendered, number, zone), max_count=1, timeout=2000)
    return found[0].data.decode("ascii", "replace") if found else None


def _read_omr(rendered, number: int, layout: MarkLayout, zone: Rect) -> str:
    image = _scan(rendered, number, zone)
    pixels_per_mm = _SCAN_DPI / 25.4
    bits = []
    for track in marks.omr_track_rects(layout):
        x = int((track.left + track.width / 2 - zone.left) * pixels_per_mm)
        y = int((track.top + track.height / 2 - zone.top) * pixels_per_mm)
        bits.append("1" if image.getpixel((x, y)) < _DARK else "0")
    return "".join(bits)
