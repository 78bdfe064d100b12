"""The Mailmark in a run: each piece's string decided before the print files are written.

Takes the job's laid-out pieces (in print order), its ``[mailmark]`` settings and the journal; gives
each piece its Mailmark string (generate mode: built from the settings and an item ID from the
machine's shared counter; supplied mode: the mail house's string for the piece id, validated),
records them in the journal, and holds back a piece whose supplied string is missing or invalid
(`held`), which then becomes an exception (`mailmark-missing`, `mailmark-invalid`). When the job
prints in the mail house's sort sequence, the file's sort sequences must be whole numbers, each
given once, and a piece without one is held back too (`mailmark-unsorted`). Afterwards it gives the
manifest's fields for each piece and writes `mailmark-items.csv`, the eManifest's items.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator
from pathlib import Path

from pkb_letters.assemble import mailmark
from pkb_letters.assemble.mailmark import MailmarkInvalid, MailmarkSettings, Mode, PrintOrder
from pkb_letters.assemble.mailmark_ids import ItemIds, default_state_dir
from pkb_letters.assemble.print_files import Piece
from pkb_letters.errors import ConfigError
from pkb_letters.files import atomic_writer
from pkb_letters.job.journal import Journal
from pkb_letters.job.mailmarks import PrintedMailmark
from pkb_letters.records import Reason

ITEMS_CSV = "mailmark-items.csv"
ITEM_FIELDS = (
    "sequence",
    "piece_id",
    "item_id",
    "supply_chain_id",
    "class",
    "destination",
    "service_type",
    "sort_sequence",
    "mailmark",
)
_CLASS_NAMES = {digit: name for name, digit in mailmark.CLASS_DIGITS.items()}


@dataclasses.dataclass
class Decided:
    """Each piece's string (by sequence), and the pieces held back, with why."""

    barcodes: dict[int, str]
    held: dict[int, tuple[Reason, str]]

    def apply(self, piece: Piece) -> Piece:
        if piece.sequence in self.held:
            return dataclasses.replace(piece, held=True)
        return dataclasses.replace(piece, mailmark=self.barcodes[piece.sequence])


def decide(
    journal: Journal, job_id: str, pieces: Iterable[Piece], settings: MailmarkSettings, today: dt.date
) -> Decided:
    """Every piece's Mailmark, recorded in the journal; a piece it already records keeps its string."""
    known = journal.mailmarks.by_sequence()
    supplied = read_supplied(settings.supplied) if settings.mode is Mode.SUPPLIED and settings.supplied else {}
    sorted_by_file = settings.print_order is PrintOrder.SORT_SEQUENCE
    if sorted_by_file and settings.supplied is not None:
        check_sort_sequences(supplied, settings.supplied)
    decided = Decided({}, {})
    printed: list[PrintedMailmark] = []
    with ItemIds(settings.state_dir or default_state_dir()) as ids:
        for piece in pieces:
            before = known.get(piece.sequence)
            if before is not None and before.piece_id == piece.piece_id:
                decided.barcodes[piece.sequence] = before.barcode
                continue
            if settings.mode is Mode.GENERATE:
                item = ids.allocate(settings.supply_chain_id, job_id, piece.piece_id, today)
                barcode, order = mailmark.build(settings, piece.postage_class, item, piece.postcode), ""
            else:
                found = supplied.get(piece.piece_id)
                problem = _supplied_problem(found, sorted_by_file)
                if problem is not None:
                    decided.held[piece.sequence] = problem
                    continue
                assert found is not None
                barcode, order = found
            decided.barcodes[piece.sequence] = barcode
            printed.append(PrintedMailmark(piece.sequence, piece.piece_id, barcode, order))
    journal.mailmarks.record(printed)
    return decided


def _supplied_problem(found: tuple[str, str] | None, needs_order: bool) -> tuple[Reason, str] | None:
    if found is None or not found[0].strip():
        return Reason.MAILMARK_MISSING, "the mail house's Mailmark file has no barcode for this piece"
    try:
        mailmark.validate(found[0])
    except MailmarkInvalid as exc:
        return Reason.MAILMARK_INVALID, f"the mail house's Mailmark for this piece is invalid: {exc}"
    if needs_order and not found[1]:
        # printed anywhere, it would break the mail house's sortation: held back like a missing barcode
        return Reason.MAILMARK_UNSORTED, "the mail house's Mailmark file gives this piece no sort sequence"
    return None


def check_sort_sequences(supplied: dict[str, tuple[str, str]], path: Path) -> None:
    """Refuse a file whose sort sequences cannot order the print run: one that is not a whole number,
    or one given to two pieces (either would print the letters in an order the mail house did not sort)."""
    seen: dict[int, str] = {}
    for piece_id, (_, order) in supplied.items():
        if not order:
            continue  # that piece, if the job prints it, is held back as mailmark-unsorted
        if not (order.isascii() and order.isdigit()):
            raise ConfigError(f"Mailmark file {path}: piece {piece_id}'s sort_sequence {order!r} is not a whole number")
        number = int(order)
        if number in seen:
            raise ConfigError(
                f"Mailmark file {path}: sort_sequence {number} is given to both {seen[number]} and {piece_id}; "
                "ask the mail house for a file with each piece's own sort sequence"
            )
        seen[number] = piece_id


def read_supplied(path: Path) -> dict[str, tuple[str, str]]:
    """The mail house's file: piece id -> (barcode string, sort sequence). Columns `piece_id`,
    `barcode` and optionally `sort_sequence`, matched ignoring case; the barcode kept exactly as given."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = {name.strip().lower(): name for name in reader.fieldnames or ()}
            missing = {"piece_id", "barcode"} - set(columns)
            if missing:
                raise ConfigError(
                    f"Mailmark file {path} needs the columns piece_id and barcode; it has {reader.fieldnames}"
                )
            order = columns.get("sort_sequence")
            return {
                row[columns["piece_id"]].strip(): (
                    row[columns["barcode"]] or "",
                    (row[order] or "").strip() if order else "",
                )
                for row in reader
            }
    except OSError as exc:
        raise ConfigError(f"cannot read the Mailmark file {path}: {exc.strerror}") from exc


def hold_back(journal: Journal, decided: Decided) -> None:
    """The held pieces become exceptions, once the print files (without them) are written."""
    if not decided.held:
        return
    rows = {p.letter.sequence: p.letter.patient.input_row for p in journal.placements.placed()}
    for sequence, (reason, detail) in decided.held.items():
        journal.rows.exclude(rows[sequence], reason, detail)


def manifest_fields(journal: Journal) -> dict[int, dict[str, str]]:
    return {
        m.sequence: {"mailmark": m.barcode, "mailmark_item_id": mailmark.item_id(m.barcode)}
        for m in journal.mailmarks.all()
    }


def with_mailmarks(entries: Iterable[dict], fields: dict[int, dict[str, str]]) -> Iterator[dict]:
    for entry in entries:
        yield {**entry, **fields.get(entry["sequence"], {})}


def write_items_csv(out_dir: Path, journal: Journal) -> None:
    """What the mail house's eManifest needs of each printed piece, in sequence order."""
    placed = {p.letter.sequence for p in journal.placements.placed()}
    with atomic_writer(out_dir / ITEMS_CSV, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(ITEM_FIELDS)
        for m in journal.mailmarks.all():
            if m.sequence not in placed:
                continue
            code = m.barcode
            writer.writerow(
                [
                    m.sequence,
                    m.piece_id,
                    mailmark.item_id(code),
                    code[7:14],
                    _CLASS_NAMES.get(code[6], code[6]),
                    code[22:31].strip(),
                    code[31],
                    m.sort_sequence,
                    code,
                ]
            )
