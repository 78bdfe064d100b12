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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import pikepdf
from pypdf import PdfReader
from pypdf.generic import DictionaryObject

from pkb_letters.assemble import mailmark, marks, output_intent, sheets
from pkb_letters.assemble.marks import MarkLayout
from pkb_letters.envelope import A4_HEIGHT_MM, A4_WIDTH_MM, Rect
from pkb_letters.errors import ConfigError, InvariantError
from pkb_letters.files import atomic_writer, sha256_of
from pkb_letters.pdf.chunk_copy import ChunkCopier, SourcePage
from pkb_letters.pdf.writer import ObjectCopier, StreamingPdfWriter
from pkb_letters.records import PrintFile

UNSPLIT_FILE = "letters.pdf"
_SIZE_TOLERANCE_PT = 0.5
SPLIT_FIELDS = ("class", "sheets", "format")
RECORD_BATCH = 500  # placed pieces handed to `record` at a time
# What a PDF/X or PDF/A reader looks for in the catalog; pypdf copies pages only, so
# carry these (and the document info) over from the rendered chunks.
_CATALOG_KEYS = ("/OutputIntents", "/Metadata")
# A group of files: (postage class, sheet count, format), None for a field the job is not split on.
Group = tuple[str | None, int | None, str | None]


@dataclass(frozen=True)
class Piece:
    """A rendered letter: one envelope. `source_page` is 0-based over the chunks, in order."""

    sequence: int
    piece_id: str
    page_count: int
    postcode: str
    postage_class: str
    source_page: int
    mailmark: str = ""  # the Royal Mail Mailmark string printed in its window, if the job prints them
    held: bool = False  # laid out but not printed (its supplied Mailmark is missing or invalid)
    format: str = "standard"  # variants.FORMATS: standard or large-print in a print file


@dataclass(frozen=True)
class PlacedPiece:
    piece: Piece
    file: str
    first_page: int  # 1-based within `file`
    sheet_count: int
    marks: tuple[str, ...]  # the payload printed on each sheet's front


@dataclass(frozen=True)
class Finishing:
    """How to lay letters on paper and split them into files."""

    job_id: str
    duplex: bool = True
    marks: MarkLayout = marks.DEFAULT_LAYOUTS[marks.MarkKind.DATAMATRIX]
    split_by: tuple[str, ...] = ()
    max_letters_per_file: int | None = None
    output_profile: Path | None = None  # the ICC profile the chunks' output intent was made from
    mailmark_at: Rect | None = None  # where each piece's Mailmark prints on its first page
    mailmark_module: float = 0.5


def plan_groups(pieces: Iterable[Piece], finishing: Finishing) -> tuple[dict[Group, int], int]:
    """How many pieces go to each group of files, groups in order of first appearance, and the pages
    they need. A group is a (postage class, sheet count, format), None for a field the job is not split on."""
    groups: dict[Group, int] = {}
    pages = 0
    for piece in pieces:
        pages += piece.page_count
        if piece.held:
            continue
        key = _group(piece, finishing)
        groups[key] = groups.get(key, 0) + 1
    return groups, pages


def _group(piece: Piece, finishing: Finishing) -> Group:
    return (
        piece.postage_class if "class" in finishing.split_by else None,
        sheets.sheet_count(piece.page_count, finishing.duplex) if "sheets" in finishing.split_by else None,
        piece.format if "format" in finishing.split_by else None,
    )


def _check_split_fields(finishing: Finishing) -> None:
    unknown = set(finishing.split_by) - set(SPLIT_FIELDS)
    if unknown:
        raise ConfigError(f"--split-by takes {' or '.join(SPLIT_FIELDS)}, not {', '.join(sorted(unknown))}")


def file_name(
    finishing: Finishing, postage_class: str | None, sheet_count: int | None, letter_format: str | None, part: int
) -> str:
    fields = [finishing.job_id]
    if postage_class is not None:
        fields.append(postage_class)
    if sheet_count is not None:
        fields.append(f"{sheet_count}s")
    if letter_format is not None:
        fields.append(letter_format)
    if finishing.max_letters_per_file:
        fields.append(f"{part:03d}")
    return UNSPLIT_FILE if len(fields) == 1 else "-".join(fields) + ".pdf"


def write_print_files(
    chunk_paths: Sequence[Path], pieces: Sequence[Piece], finishing: Finishing, out_dir: Path
) -> tuple[list[PrintFile], list[PlacedPiece]]:
    """`stream_print_files` for pieces in hand, giving every placed piece back in sequence order."""
    placed: list[PlacedPiece] = []
    files = stream_print_files(chunk_paths, lambda: iter(pieces), finishing, out_dir, placed.extend)
    placed.sort(key=lambda p: p.piece.sequence)
    return files, placed


def stream_print_files(
    chunk_paths: Sequence[Path],
    pieces: Callable[[], Iterable[Piece]],
    finishing: Finishing,
    out_dir: Path,
    record: Callable[[Sequence[PlacedPiece]], None],
) -> list[PrintFile]:
    """Write each file a page at a time, reading one chunk at a time, and hand where the pieces
    landed to `record` a batch at a time: memory does not grow with the job.

    `pieces()` gives the pieces afresh in print order each time it is called: once to count
    them, then once per group of files (postage class, sheet count); each group's pieces keep
    print order and fill its files in turn, up to `max_letters_per_file` each."""
    groups, expected = plan_groups(pieces(), finishing)
    chunks = _ChunkPages(chunk_paths)
    if chunks.total != expected:
        raise InvariantError(f"the rendered chunks hold {chunks.total} pages; the letters need {expected}")
    _check_split_fields(finishing)
    files = []
    try:
        for key, count in groups.items():
            members = (piece for piece in pieces() if not piece.held and _group(piece, finishing) == key)
            size = finishing.max_letters_per_file or count
            for number in range(1, -(-count // size) + 1):
                name = file_name(finishing, *key, number)
                files.append(_write_file(name, key, islice(members, size), chunks, finishing, out_dir / name, record))
    finally:
        chunks.close()
    return files


class _ChunkPages:
    """The rendered chunks' pages, counted over all chunks from 0; one chunk open at a time."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.starts, total = [], 0
        for path in self.paths:
            self.starts.append(total)
            with pikepdf.open(path) as pdf:
                total += len(pdf.pages)
        self.total = total
        self._open: tuple[int, ChunkCopier] | None = None

    def first(self) -> PdfReader:
        return PdfReader(self.paths[0])

    def page(self, number: int, writer: StreamingPdfWriter) -> tuple[ChunkCopier, SourcePage]:
        """Page `number`, and the copier of its chunk into `writer`."""
        index = bisect.bisect_right(self.starts, number) - 1
        if self._open is None or self._open[0] != index or self._open[1].writer is not writer:
            self.close()
            self._open = (index, ChunkCopier(self.paths[index], writer))
        copier = self._open[1]
        return copier, copier.page(number - self.starts[index])

    def close(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None


def _write_file(
    name: str,
    group: Group,
    pieces: Iterable[Piece],
    chunks: _ChunkPages,
    finishing: Finishing,
    target: Path,
    record: Callable[[Sequence[PlacedPiece]], None],
) -> PrintFile:
    placed: list[PlacedPiece] = []
    letters, sheet_in_file = 0, 1
    first_chunk = chunks.first()
    with atomic_writer(target) as handle:
        writer = StreamingPdfWriter(handle, first_chunk.pdf_header or "%PDF-1.6")
        for piece in pieces:
            first_page = writer.page_count + 1
            count = sheets.sheet_count(piece.page_count, finishing.duplex)
            payloads = marks.payloads(finishing.marks, finishing.job_id, piece.sequence, count, sheet_in_file)
            _add_letter(writer, chunks, piece, payloads, finishing, f"{name} page {first_page}")
            placed.append(PlacedPiece(piece, name, first_page, count, tuple(payloads)))
            letters, sheet_in_file = letters + 1, sheet_in_file + count
            if len(placed) == RECORD_BATCH:
                record(placed)
                placed = []
        catalog, info = _print_metadata(first_chunk, writer, finishing.output_profile)
        writer.close(catalog, info)
        pages = writer.page_count
    record(placed)
    postage_class, sheet_count, letter_format = group
    return PrintFile(
        name=name,
        letters=letters,
        pages=pages,
        sheets=sheet_in_file - 1,
        bytes=target.stat().st_size,
        sha256=sha256_of(target),
        postage_class=postage_class,
        sheet_count=sheet_count,
        format=letter_format,
    )


def _add_letter(
    writer: StreamingPdfWriter,
    chunks: _ChunkPages,
    piece: Piece,
    payloads: Sequence[str],
    finishing: Finishing,
    where: str,
) -> None:
    front_pages = sheets.fronts(piece.page_count, finishing.duplex)
    width = height = 0.0
    for index in range(piece.page_count):
        copier, page = chunks.page(piece.source_page + index, writer)
        width, height = page.width, page.height
        check_a4(width, height, where)
        operators = b""
        if payloads and index in front_pages:
            operators = marks.draw(finishing.marks, payloads[front_pages.index(index)])
        if index == 0 and piece.mailmark and finishing.mailmark_at is not None:
            operators += mailmark.draw(finishing.mailmark_at, finishing.mailmark_module, piece.mailmark)
        if operators:
            # drawn in default user space, whatever state the page's own content leaves
            copier.copy_page(page, before=[b"q\n"], extra=[b"\nQ\n" + operators])
        else:
            copier.copy_page(page)
    for _ in range(sheets.padding(piece.page_count, finishing.duplex)):
        writer.add_blank_page(width, height)  # PDF/X wants a trim box on every page: it has one


def _print_metadata(template: PdfReader, writer: StreamingPdfWriter, profile: Path | None) -> tuple[dict, dict]:
    """What a PDF/X or PDF/A reader looks for in the catalog, from the first chunk, with the output
    intent carrying the profile's own bytes; and WeasyPrint's document information as it wrote it
    (/Trapped stays a name, /Producer matches the XMP's, as PDF/A wants)."""
    root = template.trailer["/Root"]
    if not isinstance(root, DictionaryObject):
        raise InvariantError("the first rendered chunk's catalog is not a dictionary")
    if profile is not None:
        for intent in root.get("/OutputIntents", []):
            output_intent.restore(intent.get_object(), profile.read_bytes())
    copier = ObjectCopier(template, writer)
    catalog = {key: copier.copy(root.raw_get(key)) for key in _CATALOG_KEYS if key in root}
    info = template.trailer.get("/Info")
    info = {} if info is None else {key: copier.copy(info.get_object().raw_get(key)) for key in info.get_object()}
    copier.flush(writer)
    return catalog, info


def pieces_from_placements(placed, postage_class_of, format_of=lambda patient: "standard") -> Iterator[Piece]:
    """Pieces from the render stage's placements (first pages counted over the chunks, from 1), as read."""
    for p in placed:
        yield Piece(
            p.letter.sequence,
            p.letter.piece_id,
            p.page_count,
            p.letter.patient.postcode,
            postage_class_of(p.letter.patient),
            p.first_page - 1,
            format=format_of(p.letter.patient),
        )


def check_a4(width_pt: float, height_pt: float, where: str) -> None:
    want = (A4_WIDTH_MM * marks.POINTS_PER_MM, A4_HEIGHT_MM * marks.POINTS_PER_MM)
    if abs(float(width_pt) - want[0]) > _SIZE_TOLERANCE_PT or abs(float(height_pt) - want[1]) > _SIZE_TOLERANCE_PT:
        raise InvariantError(f"{where} is {float(width_pt):.1f} x {float(height_pt):.1f} pt, not A4 portrait")
