"""Print files: rendered letters in, the files the print room runs out, with blank backs and marks.

Takes the rendered chunk PDFs and each letter's place in them; gives one or
more print files (split by postage class, sheet count and letters per file, as
the mail house asks) and, per letter, where it landed and the mark payload
printed on each of its sheets. Duplex, a letter with an odd page count gets a
blank back page, which carries no mark.

Split files are named ``{job}-{class}-{sheets}s-{part:03}.pdf``, leaving out the
fields the job is not split on; a job that is not split at all is ``letters.pdf``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DecodedStreamObject, NameObject

from . import marks, output_intent, sheets
from .envelope import A4_HEIGHT_MM, A4_WIDTH_MM
from .errors import ConfigError, InvariantError
from .files import atomic_writer, sha256_of
from .marks import MarkLayout

UNSPLIT_FILE = "letters.pdf"
_SIZE_TOLERANCE_PT = 0.5
SPLIT_FIELDS = ("class", "sheets")
# What a PDF/X or PDF/A reader looks for in the catalog; pypdf copies pages only, so
# carry these (and the document info) over from the rendered chunks.
_CATALOG_KEYS = ("/OutputIntents", "/Metadata")


@dataclass(frozen=True)
class Piece:
    """A rendered letter: one envelope. `source_page` is 0-based over the chunks, in order."""

    sequence: int
    piece_id: str
    page_count: int
    postcode: str
    postage_class: str
    source_page: int


@dataclass(frozen=True)
class PlacedPiece:
    piece: Piece
    file: str
    first_page: int  # 1-based within `file`
    sheet_count: int
    marks: tuple[str, ...]  # the payload printed on each sheet's front


@dataclass(frozen=True)
class FilePlan:
    name: str
    postage_class: str | None
    sheet_count: int | None
    pieces: tuple[Piece, ...]


@dataclass(frozen=True)
class PrintFile:
    name: str
    letters: int
    pages: int
    sheets: int
    bytes: int
    sha256: str
    postage_class: str | None = None  # set when the job is split by class
    sheet_count: int | None = None  # set when split by sheets: every letter in the file has this many


@dataclass(frozen=True)
class Finishing:
    """How to lay letters on paper and split them into files."""

    job_id: str
    duplex: bool = True
    marks: MarkLayout = marks.DEFAULT_LAYOUTS[marks.MarkKind.DATAMATRIX]
    split_by: tuple[str, ...] = ()
    max_letters_per_file: int | None = None
    output_profile: Path | None = None  # the ICC profile the chunks' output intent was made from


def plan_files(pieces: Sequence[Piece], finishing: Finishing) -> list[FilePlan]:
    """Group pieces into files, keeping print order within each; groups in order of first appearance."""
    unknown = set(finishing.split_by) - set(SPLIT_FIELDS)
    if unknown:
        raise ConfigError(f"--split-by takes {' or '.join(SPLIT_FIELDS)}, not {', '.join(sorted(unknown))}")
    by_class, by_sheets = "class" in finishing.split_by, "sheets" in finishing.split_by
    groups: dict[tuple, list[Piece]] = {}
    for piece in pieces:
        key = (
            piece.postage_class if by_class else None,
            sheets.sheet_count(piece.page_count, finishing.duplex) if by_sheets else None,
        )
        groups.setdefault(key, []).append(piece)
    plans = []
    for (postage_class, sheet_count), members in groups.items():
        parts = list(_batched(members, finishing.max_letters_per_file))
        for number, part in enumerate(parts, 1):
            name = file_name(finishing, postage_class, sheet_count, number)
            plans.append(FilePlan(name, postage_class, sheet_count, tuple(part)))
    return plans


def file_name(finishing: Finishing, postage_class: str | None, sheet_count: int | None, part: int) -> str:
    fields = [finishing.job_id]
    if postage_class is not None:
        fields.append(postage_class)
    if sheet_count is not None:
        fields.append(f"{sheet_count}s")
    if finishing.max_letters_per_file:
        fields.append(f"{part:03d}")
    return UNSPLIT_FILE if len(fields) == 1 else "-".join(fields) + ".pdf"


def _batched(items: list[Piece], size: int | None) -> Iterable[list[Piece]]:
    if not size:
        yield items
        return
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write_print_files(
    chunk_paths: Sequence[Path], pieces: Sequence[Piece], finishing: Finishing, out_dir: Path
) -> tuple[list[PrintFile], list[PlacedPiece]]:
    readers = [PdfReader(path) for path in chunk_paths]
    source = [page for reader in readers for page in reader.pages]
    expected = sum(p.page_count for p in pieces)
    if len(source) != expected:
        raise InvariantError(f"the rendered chunks hold {len(source)} pages; the letters need {expected}")
    files, placed = [], []
    for plan in plan_files(pieces, finishing):
        print_file, in_file = _write_file(plan, source, readers[0], finishing, out_dir / plan.name)
        files.append(print_file)
        placed.extend(in_file)
    placed.sort(key=lambda p: p.piece.sequence)
    return files, placed


def _write_file(plan: FilePlan, source, template: PdfReader, finishing: Finishing, target: Path):
    writer = PdfWriter()
    placed = []
    sheet_in_file = 1
    for piece in plan.pieces:
        first_page = len(writer.pages) + 1
        count = sheets.sheet_count(piece.page_count, finishing.duplex)
        payloads = marks.payloads(finishing.marks, finishing.job_id, piece.sequence, count, sheet_in_file)
        _add_letter(writer, source[piece.source_page : piece.source_page + piece.page_count], payloads, finishing)
        placed.append(PlacedPiece(piece, plan.name, first_page, count, tuple(payloads)))
        sheet_in_file += count
    _carry_print_metadata(template, writer, finishing.output_profile)
    for number, page in enumerate(writer.pages, 1):
        check_a4(page.mediabox.width, page.mediabox.height, f"{plan.name} page {number}")
    with atomic_writer(target) as handle:
        writer.write(handle)
    print_file = PrintFile(
        name=plan.name, letters=len(plan.pieces), pages=len(writer.pages), sheets=sheet_in_file - 1,
        bytes=target.stat().st_size, sha256=sha256_of(target),
        postage_class=plan.postage_class, sheet_count=plan.sheet_count,
    )
    return print_file, placed


def _add_letter(writer: PdfWriter, pages, payloads: Sequence[str], finishing: Finishing) -> None:
    front_pages = sheets.fronts(len(pages), finishing.duplex)
    for index, page in enumerate(pages):
        added = writer.add_page(page)
        if payloads and index in front_pages:
            stamp(writer, added, marks.draw(finishing.marks, payloads[front_pages.index(index)]))
    for _ in range(sheets.padding(len(pages), finishing.duplex)):
        width, height = pages[-1].mediabox.width, pages[-1].mediabox.height
        blank = writer.add_blank_page(width, height)
        blank.trimbox = blank.mediabox  # PDF/X wants a trim box on every page
        blank.bleedbox = blank.mediabox


def stamp(writer: PdfWriter, page, operators: bytes) -> None:
    """Draw `operators` over a page, in default user space whatever state its own content leaves."""
    before, after = DecodedStreamObject(), DecodedStreamObject()
    before.set_data(b"q\n")
    after.set_data(b"\nQ\n" + operators)
    contents = page.get("/Contents")
    existing = [] if contents is None else list(contents) if isinstance(contents, ArrayObject) else [contents]
    # pypdf has no public call to add a bare object; _add_object is what its own helpers use
    page[NameObject("/Contents")] = ArrayObject([writer._add_object(before), *existing, writer._add_object(after)])


def _carry_print_metadata(template: PdfReader, writer: PdfWriter, profile: Path | None) -> None:
    root = template.trailer["/Root"]
    for key in _CATALOG_KEYS:
        if key in root:  # raw_get keeps the XMP stream an indirect object, as every stream must be
            writer.root_object[NameObject(key)] = root.raw_get(key).clone(writer)
    if profile is not None:
        for intent in writer.root_object.get("/OutputIntents", []):
            output_intent.restore(intent.get_object(), profile.read_bytes())
    info = template.trailer.get("/Info")
    if info is not None:
        # WeasyPrint's entries as they are: /Trapped must stay a name, not the string add_metadata
        # would make of it, and /Producer must match the XMP's (PDF/A); pypdf has no public setter for that
        writer._info = info.get_object().clone(writer)
    if template.pdf_header:
        writer.pdf_header = template.pdf_header


def pieces_from_placements(placed, postage_class_of) -> list[Piece]:
    """Pieces from the render stage's placements (first pages counted over the chunks, from 1)."""
    return [
        Piece(p.letter.sequence, p.letter.piece_id, p.page_count, p.letter.patient.postcode,
              postage_class_of(p.letter.patient), p.first_page - 1)
        for p in placed
    ]


def sheets_total(files: Iterable[PrintFile]) -> int:
    return sum(f.sheets for f in files)


def check_a4(width_pt: float, height_pt: float, where: str) -> None:
    want = (A4_WIDTH_MM * marks.POINTS_PER_MM, A4_HEIGHT_MM * marks.POINTS_PER_MM)
    if abs(float(width_pt) - want[0]) > _SIZE_TOLERANCE_PT or abs(float(height_pt) - want[1]) > _SIZE_TOLERANCE_PT:
        raise InvariantError(f"{where} is {float(width_pt):.1f} x {float(height_pt):.1f} pt, not A4 portrait")
