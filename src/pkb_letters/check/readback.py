"""Read-back: every letter's credentials, read from the print file, matched to its own journal row.

Takes the words the preflight already read from a letter's pages (`page_facts.PageWords`), the
page itself (for the QR code's area) and what the journal issued to that piece (`Expected`);
gives the letter's mismatches, each naming the piece and the field, never a value:

- the invitation and access codes printed on the letter's pages, as text (a template may space them
  out: consecutive words that make up the code exactly count as the code); a large-print or
  bilingual letter may carry them, the QR code and the expiry past page 1;
- every QR code on the letter's pages, decoded by zxing-cpp from its own area only, is the join URL
  carrying those two codes (and there is one, unless the job's template prints none);
- the expiry printed is the pair's (as `long_date` writes it, in English or Welsh, or dd/mm/yyyy, or ISO);
- the words inside the address window are the journal's address, line for line, and the
  patient's surname is on page 1 outside it (the greeting);
- words on any page of the letter shaped like a code and not its own are handed back as
  candidates: the journal (`JournalCredentials.owners`) says whether another piece owns them.

`JournalCredentials` is the main process's side: what each manifest letter should read back as,
from the journal, a letter at a time in print order, and who owns a code found out of place.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, cast
from urllib.parse import urlencode

import zxingcpp

from pkb_letters.check.page_facts import PageWords, PdfPages, SquareImage
from pkb_letters.envelope import Rect
from pkb_letters.records import Stage
from pkb_letters.variants import WELSH_MONTHS

CREDENTIAL_MISMATCH = "credential-mismatch"
QR_MISMATCH = "qr-mismatch"
EXPIRY_MISMATCH = "expiry-mismatch"
ADDRESS_MISMATCH = "address-mismatch"
NAME_MISMATCH = "name-mismatch"
FOREIGN_CREDENTIAL = "foreign-credential"
PIECE_MISMATCH = "piece-mismatch"
CODES = frozenset(
    {
        CREDENTIAL_MISMATCH,
        QR_MISMATCH,
        EXPIRY_MISMATCH,
        ADDRESS_MISMATCH,
        NAME_MISMATCH,
        FOREIGN_CREDENTIAL,
        PIECE_MISMATCH,
    }
)

_QR_PIXELS_PER_MM = 4.0  # a printed QR module is about 0.7 mm on the default letter: almost 3 pixels each
_QR_MARGIN_MM = 2.0  # the quiet zone around the code, which the template leaves white
_QR_SIZES_MM = (8.0, 80.0)  # a square image of this size on page 1 may be a QR code
_LINE_TOLERANCE_MM = 1.0  # words whose tops differ by less are on one line of the address
_MAX_CODE_PARTS = 8  # a spaced code is at most this many words
_PUNCTUATION = ",.;:!?()\"'"


@dataclass(frozen=True)
class Expected:
    """What the journal issued to one piece, as its letter must read back. Holds a live code pair:
    its repr names the piece only."""

    piece: str
    sequence: int
    invitation: str
    access: str
    expires: dt.date
    join_url: str  # with both codes, as the QR code must decode
    lines: tuple[str, ...]  # the address block: the name, then the postal lines
    surname: str
    qr: bool = True  # the job's template prints a QR code

    def __repr__(self) -> str:  # keeps codes out of tracebacks and debug logs
        return f"Expected(piece={self.piece!r}, <redacted>)"

    @property
    def code_lengths(self) -> frozenset[int]:
        return frozenset({len(self.invitation), len(self.access)})


def join_url(base: str, invitation: str, access: str) -> str:
    """The URL a letter's QR code opens, as `render.chunks.letter_context` makes it."""
    return f"{base}?{urlencode({'t1': invitation, 't2': access})}"


# -- one page of a letter (in a check worker) -------------------------------------------------


# What a letter must print somewhere on its own pages (a large-print or bilingual letter may carry its
# codes box or expiry past page 1): each page says which it holds, and the letter is judged on them all.
INVITATION, ACCESS, EXPIRY, QR = "invitation code", "access code", "expiry date", "QR code"


def read_page(
    pdf: PdfPages, number: int, words: PageWords, expected: Expected, first: bool, window: Rect
) -> tuple[list[tuple[str, str]], tuple[str, ...], frozenset[str]]:
    """The mismatches on page `number` of `expected`'s letter (the address and greeting on its first
    page; a QR code opening other codes on any page), the words on it shaped like a code that are not
    its own (for `JournalCredentials.owners`), and which of its credentials the page prints (`missing`)."""
    problems, printed = _qr_problems(pdf, number, expected)
    texts = words.texts
    joined = joined_page(texts)
    run_together = "".join(texts)  # a code not in it is not on the page, spaced out or not
    printed |= {
        field
        for field, code in ((INVITATION, expected.invitation), (ACCESS, expected.access))
        if code in run_together and _printed(code, texts)
    }
    if any(_date_pattern(form).search(joined) for form in _date_forms(expected.expires) if _all_in(form, joined)):
        printed.add(EXPIRY)
    if first:
        problems.extend(_first_page_problems(words, joined, expected, window))
    return problems, _code_shaped(joined, expected), frozenset(printed)


def missing(expected: Expected, printed: Iterable[frozenset[str]]) -> list[tuple[str, str]]:
    """The mismatches of a letter none of whose pages prints one of its credentials."""
    seen = frozenset().union(*printed)
    wanted = (INVITATION, ACCESS, EXPIRY, *([QR] if expected.qr else []))
    code = {INVITATION: CREDENTIAL_MISMATCH, ACCESS: CREDENTIAL_MISMATCH, EXPIRY: EXPIRY_MISMATCH, QR: QR_MISMATCH}
    return [
        (code[field], f"piece {expected.piece}: its letter does not print the {field} issued to it")
        for field in wanted
        if field not in seen
    ]


def _first_page_problems(words: PageWords, joined: str, expected: Expected, window: Rect) -> list[tuple[str, str]]:
    piece, texts = expected.piece, words.texts
    found = []
    inside = set(words.overlapping(window))
    if _lines(words, sorted(inside)) != [" ".join(line.split()) for line in expected.lines]:
        found.append((ADDRESS_MISMATCH, f"piece {piece}: the address in the window is not its journal address"))
    if not all(_outside(part, texts, joined, inside) for part in expected.surname.split()):
        found.append((NAME_MISMATCH, f"piece {piece}: its patient's name is not in the letter's greeting"))
    return found


def _outside(part: str, texts: Sequence[str], joined: str, inside: set[int]) -> bool:
    """`part` of the name is a word of the page (punctuation aside, any case) outside the window. Only the
    words where the folded page holds `part` are looked at (the page's words are `joined` by single spaces)."""
    folded, page = part.casefold(), joined.casefold()
    if len(page) != len(joined):  # folding changed a word's length: the positions are not the words'
        return any(_is(text, folded) for n, text in enumerate(texts) if n not in inside)
    lengths = list(accumulate(map(len, texts), initial=0))  # word n starts at lengths[n] + n

    def start(n: int) -> int:
        return lengths[n] + n

    found = page.find(folded)
    while found != -1:
        n = bisect.bisect_right(range(len(texts)), found, key=start) - 1
        if n not in inside and _is(texts[n], folded):
            return True
        found = page.find(folded, start(n + 1))
    return False


def _is(text: str, folded: str) -> bool:
    return text.strip(_PUNCTUATION).casefold() == folded


def _printed(code: str, texts: Sequence[str]) -> bool:
    """`code` is a word of the page, or consecutive words that make it up exactly (a spaced code)."""
    if code in texts:
        return True
    for start, text in enumerate(texts):
        if text and code.startswith(text):
            joined = text
            for part in texts[start + 1 : start + _MAX_CODE_PARTS]:
                joined += part
                if joined == code:
                    return True
                if not code.startswith(joined):
                    break
    return False


@functools.cache
def _date_forms(day: dt.date) -> tuple[tuple[str, ...], ...]:
    welsh = (str(day.day), WELSH_MONTHS[day.month - 1], str(day.year))  # a Welsh letter's (`long_date(day, "cy")`)
    return ((str(day.day), f"{day:%B}", str(day.year)), welsh, (f"{day:%d/%m/%Y}",), (day.isoformat(),))


def joined_page(texts: Sequence[str]) -> str:
    return " ".join(texts)


def _all_in(words: Sequence[str], text: str) -> bool:
    return all(word in text for word in words)


@functools.cache
def _date_pattern(form: tuple[str, ...]) -> re.Pattern[str]:
    """Consecutive words of a page `joined` by spaces that are `form`'s words, each perhaps followed by punctuation."""
    trailing = f"[{re.escape(_PUNCTUATION)}]*"
    return re.compile(r"(?<!\S)" + " ".join(re.escape(word) + trailing for word in form) + r"(?!\S)")


def _lines(words: PageWords, indices: Sequence[int]) -> list[str]:
    """The words at `indices` as lines of text, top to bottom, each left to right."""
    boxes = sorted((box[1], box[0], words.texts[n]) for n, box in zip(indices, map(words.box, indices), strict=True))
    lines: list[list[tuple[float, str]]] = []
    last_top = None
    for top, left, text in boxes:
        if last_top is None or top - last_top > _LINE_TOLERANCE_MM:
            lines.append([])
            last_top = top
        lines[-1].append((left, text))
    return [" ".join(text for _, text in sorted(line)) for line in lines]


def _qr_problems(pdf: PdfPages, number: int, expected: Expected) -> tuple[list[tuple[str, str]], set[str]]:
    """A QR code on the page that opens other codes, and whether one opens the letter's own."""
    read = [text for image in pdf.square_images(number, *_QR_SIZES_MM) for text in _decode_qr(pdf, number, image)]
    if any(text != expected.join_url for text in read):
        return [(QR_MISMATCH, f"piece {expected.piece}: a QR code on page {number} does not open its own codes")], set()
    return [], ({QR} if read else set())


def _decode_qr(pdf: PdfPages, number: int, image: SquareImage) -> list[str]:
    """What the QR code `image` decodes to. When the page shows the image's own pixels (`SquareImage.pixels`)
    they are read; if they are not read as one (too few pixels a module, say), or the
    page may show something else, its area and quiet zone are rendered, square to the page. Either way the
    code is alone in the picture, so zxing-cpp is told so (`is_pure`) and need not search for it."""
    if image.pixels is not None:
        found = _read_qr(image.pixels)
        if found:
            return found
    return _read_qr(pdf.render_mm(number, image.area.grown(_QR_MARGIN_MM), _QR_PIXELS_PER_MM * 25.4))


def _read_qr(picture: Any) -> list[str]:
    formats = cast(zxingcpp.BarcodeFormats, zxingcpp.BarcodeFormat.QRCode)
    return [
        found.text
        for found in zxingcpp.read_barcodes(
            picture, formats=formats, is_pure=True, try_rotate=False, try_invert=False, try_downscale=False
        )
    ]


def _code_shaped(joined: str, expected: Expected) -> tuple[str, ...]:
    """Words that could be a code pair's half and are not this letter's: letters and digits, of a code's
    length, mixing cases or letters and digits (no English word, name or capitalised town does)."""
    own = (expected.invitation, expected.access)
    found = _code_pattern(expected.code_lengths).findall(joined)
    return tuple(dict.fromkeys(word for word in found if word not in own and _mixed(word)))


@functools.cache
def _code_pattern(lengths: frozenset[int]) -> re.Pattern[str]:
    """A word of letters and digits of one of `lengths`, punctuation either side aside (one pass in C)."""
    word = "|".join(f"[A-Za-z0-9]{{{n}}}" for n in sorted(lengths, reverse=True))
    edge = f"[^\\s{re.escape(_PUNCTUATION)}]"
    return re.compile(f"(?<!{edge})(?:{word})(?!{edge})")


def _mixed(word: str) -> bool:
    if word.isdigit():
        return False
    if word.isalpha():
        return not (word.islower() or word.isupper() or word.istitle())
    return True


# -- the journal's side (the main process) ----------------------------------------------------


_ROW_QUERY = "SELECT sequence, piece_id, patient, invitation_code, access_code, codes_expire FROM rows WHERE stage = ?"
_ROWS_A_PAGE = 500
_NEAR = 8  # a letter at most this far after the one before is read on to (letters left out of a run leave gaps)


class JournalCredentials:
    """What each letter must read back as, from a job's journal, and who owns a code seen out of place.

    Letters are asked for in manifest (print) order, so the journal is read alongside a page of
    rows at a time. After `purge` the codes are gone: `unverifiable` then says so, and no letter
    is expected to read back as anything."""

    def __init__(self, connection: sqlite3.Connection, join_base: str, qr: bool = True) -> None:
        self._db = connection
        self._join_base = join_base
        self._qr = qr
        self._rows: Iterator[sqlite3.Row] = iter(())
        self._next: sqlite3.Row | None = None
        self.verified = 0
        erased = connection.execute(
            "SELECT COUNT(*) FROM rows WHERE stage = ? AND invitation_code IS NULL", (Stage.PLACED,)
        ).fetchone()[0]
        purged = connection.execute("SELECT value FROM settings WHERE key = 'purged_at'").fetchone()
        self.unverifiable: str | None = None
        if purged is not None or erased:
            when = f" by purge on {purged[0]}" if purged is not None else ""
            self.unverifiable = (
                f"the journal's code pairs were erased{when}: the letters' credentials can no longer be verified "
                "(everything else was checked)"
            )
        self._owners_ready = False

    @classmethod
    def of_journal(cls, journal: Any, qr: bool = True) -> JournalCredentials:
        """For a `job.journal.Journal`: the join URL is the one its letters were made with."""
        base = json.loads(journal.job.fingerprint().letter_settings or "{}").get("join_url", "")
        return cls(journal.db.connection, base, qr)

    def expected(self, entry: Mapping[str, Any]) -> Expected | None:
        """What the manifest's letter `entry` must read back as; None when its codes are erased."""
        if self.unverifiable is not None:
            return None
        row = self._row(int(entry["sequence"]))
        if row is None or row["invitation_code"] is None:
            return None
        patient = json.loads(row["patient"])
        name = " ".join(part for part in (patient["title"], patient["first_name"], patient["last_name"]) if part)
        self.verified += 1
        return Expected(
            row["piece_id"],
            row["sequence"],
            row["invitation_code"],
            row["access_code"],
            dt.date.fromisoformat(row["codes_expire"]),
            join_url(self._join_base, row["invitation_code"], row["access_code"]),
            (name, *patient["address_lines"]),
            patient["last_name"],
            self._qr,
        )

    def _row(self, sequence: int) -> sqlite3.Row | None:
        """The journal's row of the letter numbered `sequence`. Letters in print order are read a page of
        rows at a time; a letter far from the one before (a job printed in a mail house's sort order) is
        read alone, and those after it a page at a time again, as they are asked for."""
        ahead = self._next is not None and self._next["sequence"] <= sequence <= self._next["sequence"] + _NEAR
        while ahead and self._next is not None and self._next["sequence"] < sequence:
            self._next = next(self._rows, None)
        if self._next is not None and self._next["sequence"] == sequence:
            return self._next
        self._next = self._db.execute(f"{_ROW_QUERY} AND sequence = ?", (Stage.PLACED, sequence)).fetchone()
        self._rows = self._paged_from(sequence)
        return self._next

    def _paged_from(self, sequence: int) -> Iterator[sqlite3.Row]:
        """The rows after letter `sequence`, read a page at a time when first asked for."""
        last = sequence
        while True:
            rows = self._db.execute(
                f"{_ROW_QUERY} AND sequence > ? ORDER BY sequence LIMIT {_ROWS_A_PAGE}", (Stage.PLACED, last)
            ).fetchall()
            yield from rows
            if len(rows) < _ROWS_A_PAGE:
                return
            last = rows[-1]["sequence"]

    def owners(self, words: Iterable[str]) -> dict[str, tuple[str, str]]:
        """Of `words`, those that are a placed letter's code: word → (its piece, which code it is)."""
        asked = sorted(set(words))
        if not asked:
            return {}
        self._index_codes()
        found: dict[str, tuple[str, str]] = {}
        for start in range(0, len(asked), 500):
            batch = asked[start : start + 500]
            rows = self._db.execute(
                f"SELECT code, piece, field FROM temp.readback_codes WHERE code IN ({', '.join('?' * len(batch))})",
                batch,
            )
            found.update((code, (piece, field)) for code, piece, field in rows)
        return found

    def _index_codes(self) -> None:
        """The job's codes in a temporary table of this connection (never the journal file), indexed."""
        if self._owners_ready:
            return
        self._db.execute("DROP TABLE IF EXISTS temp.readback_codes")
        self._db.execute("CREATE TEMP TABLE readback_codes (code TEXT NOT NULL, piece TEXT NOT NULL, field TEXT)")
        for column, field in (("invitation_code", "invitation code"), ("access_code", "access code")):
            self._db.execute(
                f"INSERT INTO temp.readback_codes SELECT {column}, piece_id, ? FROM rows"
                f" WHERE stage = ? AND {column} IS NOT NULL",
                (field, Stage.PLACED),
            )
        self._db.execute("CREATE INDEX temp.readback_codes_code ON readback_codes (code)")
        self._owners_ready = True


def piece_problems(entry: Mapping[str, Any], expected: Expected) -> list[tuple[str, str]]:
    """The manifest's letter and its marks against the journal's piece: the same piece, and every
    DataMatrix mark of it numbered with its own sequence."""
    piece = entry["piece_id"]
    if piece != expected.piece:
        return [(PIECE_MISMATCH, f"piece {piece}: the journal's letter {entry['sequence']} is piece {expected.piece}")]
    numbered = f"{expected.sequence:06d}"
    for payload in entry.get("marks", ()):
        parts = str(payload).split()
        if len(parts) == 4 and parts[1] != numbered:
            return [(PIECE_MISMATCH, f"piece {piece}: a mark of it carries another piece's number")]
    return []


def failed_pieces(problems: Iterable[Any]) -> list[str]:
    """The pieces whose read-back failed: every read-back problem's detail starts "piece ID:"."""
    return sorted({p.detail.split()[1].rstrip(":") for p in problems if str(p.code) in CODES})


def outcome(problems: Iterable[Any]) -> dict[str, Any]:
    """What the journal keeps of a read-back: whether it passed and the pieces that failed it."""
    pieces = failed_pieces(problems)
    return {"ok": not pieces, "failed": pieces}
