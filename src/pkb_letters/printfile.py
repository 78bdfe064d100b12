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

import bisect
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
from .pdfstream import ObjectCopier, StreamingPdfWriter

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
    """Write each file a page at a time, reading one chunk at a time: memory does not grow with the job."""
    chunks = _ChunkPages(chunk_paths)
    expected = sum(p.page_count for p in pieces)
    if chunks.total != expected:
        raise InvariantError(f"the rendered chunks hold {chunks.total} pages; the letters need {expected}")
    files, placed = [], []
    for plan in plan_files(pieces, finishing):
        print_file, in_file = _write_file(plan, chunks, finishing, out_dir / plan.name)
        files.append(print_file)
        placed.extend(in_file)
    placed.sort(key=lambda p: p.piece.sequence)
    return files, placed


class _ChunkPages:
    """The rendered chunks' pages, counted over all chunks from 0; one chunk open at a time."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.starts, total = [], 0
        for path in self.paths:
            self.starts.append(total)
            total += len(PdfReader(path).pages)
        self.total = total
        self._open: tuple[int, PdfReader, object] | None = None

    def first(self) -> PdfReader:
        return PdfReader(self.paths[0])

    def page(self, number: int, writer: StreamingPdfWriter):
        """The page and the copier that copies it (and what it uses) into `writer`."""
        index = bisect.bisect_right(self.starts, number) - 1
        if self._open is None or self._open[0] != index or self._open[2]._writer is not writer:
            reader = PdfReader(self.paths[index])
            self._open = (index, reader, ObjectCopier(reader, writer))
        _, reader, copier = self._open
        return reader.pages[number - self.starts[index]], copier


def _write_file(plan: FilePlan, chunks: _ChunkPages, finishing: Finishing, target: Path):
    placed = []
    sheet_in_file = 1
    first_chunk = chunks.first()
    with atomic_writer(target) as handle:
        writer = StreamingPdfWriter(handle, first_chunk.pdf_header or "%PDF-1.6")
        for piece in plan.pieces:
            first_page = writer.page_count + 1
            count = sheets.sheet_count(piece.page_count, finishing.duplex)
            payloads = marks.payloads(finishing.marks, finishing.job_id, piece.sequence, count, sheet_in_file)
            _add_letter(writer, chunks, piece, payloads, finishing, f"{plan.name} page {first_page}")
            placed.append(PlacedPiece(piece, plan.name, first_page, count, tuple(payloads)))
            sheet_in_file += count
        catalog, info = _print_metadata(first_chunk, writer, finishing.output_profile)
        writer.close(catalog, info)
        pages = writer.page_count
    print_file = PrintFile(
        name=plan.name, letters=len(plan.pieces), pages=pages, sheets=sheet_in_file - 1,
        bytes=target.stat().st_size, sha256=sha256_of(target),
        postage_class=plan.postage_class, sheet_count=plan.sheet_count,
    )
    return print_file, placed


def _add_letter(writer: StreamingPdfWriter, chunks: _ChunkPages, piece: Piece, payloads: Sequence[str],
                finishing: Finishing, where: str) -> None:
    front_pages = sheets.fronts(piece.page_count, finishing.duplex)
    width = height = 0.0
    for index in range(piece.page_count):
        page, copier = chunks.page(piece.source_page + index, writer)
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        check_a4(width, height, where)
        if payloads and index in front_pages:
            # drawn in default user space, whatever state the page's own content leaves
            operators = marks.draw(finishing.marks, payloads[front_pages.index(index)])
            writer.add_page(page, copier, before=[b"q\n"], extra=[b"\nQ\n" + operators])
        else:
            writer.add_page(page, copier)
    for _ in range(sheets.padding(piece.page_count, finishing.duplex)):
        writer.add_blank_page(width, height)  # PDF/X wants a trim box on every page: it has one


def _print_metadata(template: PdfReader, writer: StreamingPdfWriter, profile: Path | None) -> tuple[dict, dict]:
    """What a PDF/X or PDF/A reader looks for in the catalog, from the first chunk, with the output
    intent carrying the profile's own bytes; and WeasyPrint's document information as it wrote it
    (/Trapped stays a name, /Producer matches the XMP's, as PDF/A wants)."""
    root = template.trailer["/Root"]
    if profile is not None:
        for intent in root.get("/OutputIntents", []):
            output_intent.restore(intent.get_object(), profile.read_bytes())
    copier = ObjectCopier(template, writer)
    catalog = {key: copier.copy(root.raw_get(key)) for key in _CATALOG_KEYS if key in root}
    info = template.trailer.get("/Info")
    info = {} if info is None else {key: copier.copy(info.get_object().raw_get(key)) for key in info.get_object()}
    copier.flush(writer)
    return catalog, info


def stamp(writer: PdfWriter, page, operators: bytes) -> None:
    """Draw `operators` over a page held by a pypdf writer, in default user space whatever state its
    own content leaves (for editing a PDF in place; the print files are written by `_add_letter`)."""
    before, after = DecodedStreamObject(), DecodedStreamObject()
    before.set_data(b"q\n")
    after.set_data(b"\nQ\n" + operators)
    contents = page.get("/Contents")
    existing = [] if contents is None else list(contents) if isinstance(contents, ArrayObject) else [contents]
    # pypdf has no public call to add a bare object; _add_object is what its own helpers use
    page[NameObject("/Contents")] = ArrayObject([writer._add_object(before), *existing, writer._add_object(after)])


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
