"""Where letters sit: coded rows handed to render in print order, laid out a chunk at a time
(stage ``placed``), then where each letter and envelope landed in the finished print files
(the `pieces` table), read back for the manifest.

Takes render's `PlacedLetter`s and assemble's positions and `PieceRecord`s; gives placed letters
a page at a time, as the print files are made from them and as the manifest lists them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from pkb_letters.job import rowcodec
from pkb_letters.job.sql import Db, now
from pkb_letters.records import CodePair, PatientRow, PieceRecord, PlacedLetter, Stage

SEQUENCE_ORDER = "sequence"  # the order letters were laid out in, which their piece ids number
SORT_SEQUENCE_ORDER = "sort_sequence"  # the mail house's sort sequence, from the `mailmarks` table


def _placed_in_order(columns: str, joins: str, order: str) -> tuple[str, tuple[str, ...]]:
    """Placed letters (`stage = ?`) as a query `Db.pages` reads (`columns` of `rows` and its `joins`),
    and its keys. In sort-sequence order a letter with no sort sequence (held back: never printed)
    comes first, keyed -1, so that every placed letter is still given once."""
    if order == SEQUENCE_ORDER:
        return f"SELECT {columns} FROM rows{joins} WHERE rows.stage = ?", ("rows.sequence",)
    if order != SORT_SEQUENCE_ORDER:
        raise ValueError(f"unknown print order {order!r}")
    key = "COALESCE(CAST(NULLIF(mailmarks.sort_sequence, '') AS INTEGER), -1)"
    inner = (
        f"SELECT {columns}, {key} AS sort_key FROM rows{joins}"
        " LEFT JOIN mailmarks ON mailmarks.sequence = rows.sequence WHERE rows.stage = ?"
    )
    return f"SELECT * FROM ({inner}) WHERE 1", ("sort_key", "sequence")


class Placements:
    def __init__(self, db: Db) -> None:
        self._db = db
        db.connection.create_function("print_order_key", 1, rowcodec.print_order_key, deterministic=True)

    # -- render ------------------------------------------------------------------------
    def coded_in_print_order(self, order: str) -> Iterator[tuple[PatientRow, CodePair]]:
        """Coded rows in print order (input order, or `mailsort.postcode_key`'s with ties in input order),
        a page at a time; a row placed or excluded while this is being read is not given again, nor is
        one given twice."""
        keys: tuple[str, ...] = ("input_row",)
        if order == "postcode":
            with self._db.transaction():  # the key never changes once made: a row's postcode is fixed at intake
                self._db.execute(
                    "UPDATE rows SET print_key = print_order_key(patient) WHERE stage = ? AND print_key IS NULL",
                    (Stage.CODED,),
                )
            keys = ("print_key", "input_row")  # ties keep input order, as a stable sort does
        for r in self._db.pages("SELECT * FROM rows WHERE stage = ?", (Stage.CODED,), keys):
            yield rowcodec.patient_from_json(r["patient"]), rowcodec.codes(r)

    def record_placements(self, placed: Iterable[PlacedLetter], chunk: int) -> None:
        """Where letters sit as laid out: pages counted over the chunks, kept as `layout_page` so the
        print files can be made again."""
        stamp = now()
        with self._db.transaction():
            self._db.executemany(
                "UPDATE rows SET stage = ?, sequence = ?, piece_id = ?, file = ?, first_page = ?, layout_page = ?,"
                " page_count = ?, chunk = ?, updated = ? WHERE input_row = ?",
                (
                    (
                        Stage.PLACED,
                        p.letter.sequence,
                        p.letter.piece_id,
                        p.file,
                        p.first_page,
                        p.first_page,
                        p.page_count,
                        chunk,
                        stamp,
                        p.letter.patient.input_row,
                    )
                    for p in placed
                ),
            )

    def unplace_from_chunk(self, chunk: int) -> int:
        """Send letters in this chunk and later ones back to `coded`, to be laid out again."""
        with self._db.transaction():
            cursor = self._db.execute(
                "UPDATE rows SET stage = ?, sequence = NULL, piece_id = NULL, file = NULL, first_page = NULL,"
                " layout_page = NULL, page_count = NULL, chunk = NULL, updated = ? WHERE stage = ? AND chunk >= ?",
                (Stage.CODED, now(), Stage.PLACED, chunk),
            )
            return cursor.rowcount

    def render_position(self) -> tuple[int, int, int]:
        """(last chunk, last sequence, last page) placed so far; zeros before the first chunk."""
        row = self._db.execute(
            "SELECT MAX(chunk) AS chunk, MAX(sequence) AS sequence, MAX(layout_page + page_count - 1) AS page"
            " FROM rows WHERE stage = ?",
            (Stage.PLACED,),
        ).fetchone()
        return row["chunk"] or 0, row["sequence"] or 0, row["page"] or 0

    def placed_chunks(self) -> list[int]:
        rows = self._db.execute("SELECT DISTINCT chunk FROM rows WHERE stage = ? ORDER BY chunk", (Stage.PLACED,))
        return [r["chunk"] for r in rows]

    def placed(self, page_column: str = "first_page") -> Iterator[PlacedLetter]:
        """Placed letters in sequence order, a page at a time (the journal may be written in between)."""
        for r in self._db.pages("SELECT * FROM rows WHERE stage = ?", (Stage.PLACED,), ("sequence",)):
            yield rowcodec.placed_letter(r, page_column)

    def placed_as_laid_out(self, order: str = SEQUENCE_ORDER) -> Iterator[PlacedLetter]:
        """Placed letters with pages counted over the render chunks, as the print files are made from,
        in print order: sequence order, or (`SORT_SEQUENCE_ORDER`) the mail house's sort sequence."""
        query, keys = _placed_in_order("rows.*", "", order)
        for r in self._db.pages(query, (Stage.PLACED,), keys):
            yield rowcodec.placed_letter(r, "layout_page")

    # -- assemble ------------------------------------------------------------------------
    def record_print_positions(self, positions: Iterable[tuple[int, str, int]]) -> None:
        """Where placed letters landed in the finished print files: (sequence, file, first page)."""
        stamp = now()
        with self._db.transaction():
            self._db.executemany(
                "UPDATE rows SET file = ?, first_page = ?, updated = ? WHERE stage = ? AND sequence = ?",
                ((file, first_page, stamp, Stage.PLACED, sequence) for sequence, file, first_page in positions),
            )

    def record_pieces(self, pieces: Iterable[PieceRecord]) -> None:
        """Where each envelope landed in the print files, and the marks printed on its sheets."""
        with self._db.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO pieces (sequence, file, first_page, sheet_count, postage_class, marks)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (p.sequence, p.file, p.first_page, p.sheet_count, p.postage_class, json.dumps(list(p.marks)))
                    for p in pieces
                ),
            )

    def has_pieces(self) -> bool:
        return self._db.execute("SELECT 1 FROM pieces LIMIT 1").fetchone() is not None

    # -- manifest ------------------------------------------------------------------------
    def placed_for_manifest(
        self, order: str = SEQUENCE_ORDER
    ) -> Iterator[tuple[PlacedLetter, PieceRecord | None, str | None]]:
        """The manifest's rows: each placed letter, in print order (as `placed_as_laid_out`), with where
        its envelope landed (if the print files recorded it) and why its pair is a second one (if it is)."""
        query, keys = _placed_in_order(
            "rows.*, pieces.sequence AS piece_sequence, pieces.file AS piece_file,"
            " pieces.first_page AS piece_first_page, pieces.sheet_count, pieces.postage_class, pieces.marks",
            " LEFT JOIN pieces ON pieces.sequence = rows.sequence",
            order,
        )
        for r in self._db.pages(query, (Stage.PLACED,), keys):
            piece = None
            if r["piece_sequence"] is not None:
                piece = PieceRecord(
                    r["piece_sequence"],
                    r["piece_file"],
                    r["piece_first_page"],
                    r["sheet_count"],
                    r["postage_class"],
                    tuple(json.loads(r["marks"])),
                )
            yield rowcodec.placed_letter(r), piece, r["reissue"]
