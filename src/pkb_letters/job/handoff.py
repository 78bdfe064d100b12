"""The hand-off folder: letters a specialist provider makes (braille, easy read, audio), never printed here.

Takes the journal's handed-off rows and the job's renderer; gives `DIR/handoff/handoff.csv` (one row
a letter: piece id, name, address, format, language, customer reference) and each letter's text as
UTF-8 (`PIECE_ID.txt`), made from the template the printed letters use. The codes are a credential and
the folder leaves our control, so the texts carry them only when the job file says
`[letter] handoff_codes = true`; otherwise each code reads `[code sent separately]`. Where liblouis's
Python binding is importable (Debian's `python3-louis`), a UEB grade 2 `.brf` is written beside each
braille letter's text; it is never required.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from xml.etree import ElementTree

import tinyhtml5

from pkb_letters.files import atomic_writer, make_private_dir
from pkb_letters.records import CodePair, Letter, PatientRow
from pkb_letters.render.chunks import ChunkRenderer, variant_of
from pkb_letters.variants import HANDOFF_DIR

HANDOFF_CSV = "handoff.csv"
HANDOFF_FIELDS = ("piece_id", "input_row", "name", "address_lines", "postcode", "format", "language", "customer_ref")
WITHHELD = "[code sent separately]"
_BLOCKS = {"p", "h1", "h2", "h3", "h4", "li", "tr", "div", "section", "header", "aside", "main", "br", "table"}
_SKIPPED = {"img", "style", "script", "head"}
_BRAILLE_TABLE = "en-ueb-g2.ctb"
logger = logging.getLogger(__name__)


def piece_id(job_id: str, number: int) -> str:
    """A hand-off letter's piece id: its own series, never one of the print run's."""
    return f"{job_id}-H{number:05d}"


def write_handoff(
    out_dir: Path, rows: Iterable[tuple[PatientRow, CodePair, str]], renderer: ChunkRenderer, with_codes: bool
) -> int:
    """The hand-off folder for `rows` (patient, codes, piece id); gives how many letters it holds."""
    folder = out_dir / HANDOFF_DIR
    make_private_dir(folder)
    count = 0
    with atomic_writer(folder / HANDOFF_CSV, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, HANDOFF_FIELDS)
        writer.writeheader()
        for patient, codes, piece in rows:
            variant = variant_of(patient, renderer.settings)
            writer.writerow(_csv_row(patient, piece, variant.format, variant.language))
            text = letter_text(renderer, Letter(count + 1, piece, patient, codes if with_codes else _withheld(codes)))
            with atomic_writer(folder / f"{piece}.txt", "w", encoding="utf-8") as text_handle:
                text_handle.write(text)
            if variant.format == "braille":
                _write_brf(folder / f"{piece}.brf", text)
            count += 1
    codes_note = "included" if with_codes else "left out"
    logger.info("hand-off: %d letters for specialist providers, codes %s", count, codes_note)
    return count


def _csv_row(patient: PatientRow, piece: str, letter_format: str, language: str) -> dict[str, object]:
    return {
        "piece_id": piece,
        "input_row": patient.input_row,
        "name": patient.display_name,
        "address_lines": " | ".join(patient.address_lines),
        "postcode": patient.postcode,
        "format": letter_format,
        "language": language,
        "customer_ref": patient.customer_ref,
    }


def _withheld(codes: CodePair) -> CodePair:
    return CodePair(WITHHELD, WITHHELD, codes.expires)


def letter_text(renderer: ChunkRenderer, letter: Letter) -> str:
    """The letter's words, as the template writes them: a line a paragraph, heading, list item or address
    line (an ordered list's items numbered), with no markup and no image."""
    tree = tinyhtml5.parse(renderer.body(letter, qr=False), namespace_html_elements=False)
    out = io.StringIO()
    _walk(tree, out)
    lines = (re.sub(r"\s+", " ", line).strip() for line in out.getvalue().split("\n"))
    return "\n".join(line for line in lines if line) + "\n"


def _walk(element: ElementTree.Element, out: io.StringIO, number: int = 0) -> None:
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag in _SKIPPED:
        out.write(_flat(element.tail))
        return
    block = tag in _BLOCKS
    if block:
        out.write("\n")
    if tag == "li":
        out.write(f"{number}. " if number else "- ")
    out.write(_flat(element.text))
    items = 0
    for child in element:
        items += child.tag == "li"
        _walk(child, out, items if tag == "ol" else 0)
        if child.tag in ("th", "td"):
            out.write(" ")
    if block:
        out.write("\n")
    out.write(_flat(element.tail))


def _flat(text: str | None) -> str:
    """Text as it reads: the source's line breaks and runs of spaces are one space."""
    return re.sub(r"\s+", " ", text or "")


def _write_brf(path: Path, text: str) -> None:
    """UEB grade 2 braille, where liblouis's binding is installed; otherwise nothing."""
    try:
        import louis  # type: ignore[import-not-found]  # optional: Debian's python3-louis
    except ImportError:
        return
    lines = [louis.translateString([_BRAILLE_TABLE], line) for line in text.splitlines()]
    with atomic_writer(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
