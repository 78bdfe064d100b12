"""The front of the job streams too: intake, the address fit, resolve and codes hold a page of rows
in the main process, not the patient list.

Each stage's own function runs over a real list and journal, against the sandbox in a process of
its own (so its memory of what it issued is not this process's), and the peak of this process's
traced allocations in the stage must not grow when the list is four times longer. Holding the
list costs 1-3 KB a patient: megabytes over the extra rows, where the bound is 150 KB. A second
test checks that a list with every kind of bad row ends, row by row, as it did before streaming.
"""

from __future__ import annotations

import datetime as dt
import gc
import re
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FIXTURES, connection_to, no_weasyprint_warnings
from traced import traced_peak

from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.config import SANDBOX_JOIN_URL, JobSettings, LetterSettings, PkbConnection
from pkb_letters.errors import InputFileError
from pkb_letters.fit import address_fit
from pkb_letters.intake import patient_list
from pkb_letters.job import pipeline
from pkb_letters.job import sql as journal_sql
from pkb_letters.job.journal import Journal
from pkb_letters.job.pipeline import run_job
from pkb_letters.pkb import codes, resolve
from pkb_letters.pkb.client import PkbClient
from pkb_letters.progress import NoProgress
from pkb_letters.records import Stage
from pkb_letters.render import chunks
from pkb_letters.render.chunks import LetterTemplate
from pkb_letters.sandbox.synthetic import CLIENT_ID, CLIENT_SECRET, ORGANISATION_ID, SyntheticJob, write_synthetic_job

SMALL = 300
LARGE = 4 * SMALL
FIT_SIZES = (25, 100, 400)  # laying out address blocks is slow under tracemalloc: a shorter list
PAGE = 50  # journal pages and fit batches: even the small list spans several
PKB_BATCH = 25  # patients a FHIR request: an answer's bytes arrive in chunks of varying number and size
GROWTH_BOUND = 150_000
CONSOLE_SCRIPT = Path(sys.executable).parent / "pkb-letters"


@pytest.fixture(autouse=True)
def _small_pages(monkeypatch):
    monkeypatch.setattr(patient_list, "_BLOCK", 4096)  # bytes of the file read at a time
    monkeypatch.setattr(journal_sql, "PAGE_ROWS", PAGE)
    monkeypatch.setattr(address_fit, "FIT_BATCH", PAGE)
    monkeypatch.setattr(resolve, "STATUS_QUERY_LIMIT", PKB_BATCH)
    monkeypatch.setattr(codes, "GENERATE_TOKENS_LIMIT", PKB_BATCH)


@pytest.fixture(scope="module")
def lists(tmp_path_factory) -> dict[int, SyntheticJob]:
    """The same made-up patients, so many of them (each shorter list is the start of the longer)."""
    return {n: write_synthetic_job(tmp_path_factory.mktemp(f"list-{n}"), n) for n in (*FIT_SIZES, SMALL, LARGE)}


@pytest.fixture(scope="module")
def pkb(lists) -> Iterator[PkbConnection]:
    """The sandbox, knowing every patient of the large list, in its own process."""
    command = [str(CONSOLE_SCRIPT), "sandbox", "--port", "0", "--data", str(lists[LARGE].sandbox_json)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            line = process.stdout.readline()
            url = re.match(r"PKB sandbox listening on (http://\S+) ", line)
            assert url, f"the sandbox said {line!r}"
            base = url.group(1)
            yield PkbConnection(token_url=base + "/oauth/token", rest_base=base + "/json", fhir_base=base + "/fhir",
                                client_id=CLIENT_ID, org_id=ORGANISATION_ID, client_secret=CLIENT_SECRET)
        finally:
            process.terminate()


def _settings(synthetic: SyntheticJob, out_dir: Path, api: str = "fhir") -> JobSettings:
    """One REST request at a time: each answer being received holds a 64 KiB buffer (httpcore's read
    size), and with more, the peak would measure how many happened to arrive at once, not the list."""
    letter = LetterSettings(organisation="Synthetic NHS Trust", join_url=SANDBOX_JOIN_URL)
    return JobSettings(patients=synthetic.patients_csv, out_dir=out_dir, api=api, letter=letter, workers=1,
                       concurrency=1)



def _client(connection: PkbConnection, settings: JobSettings) -> PkbClient:
    """A client that, while a stage is measured, collects reference cycles before each request. Every
    request leaves some (httpx's request, tenacity's retry state) for Python's cycle collector, which
    runs when it likes: what waits for it grows with how long a stage runs, not with what it holds."""
    client = PkbClient(connection, retry=settings.retry, max_connections=max(settings.concurrency, 2))
    for name in ("status_query", "generate_invitation_tokens", "user_by_nhs_number", "record_access_token"):
        setattr(client, name, _collecting_first(getattr(client, name)))
    return client


def _collecting_first(request):
    def collect_then_request(*args):
        if tracemalloc.is_tracing():
            gc.collect()
        return request(*args)

    return collect_then_request


def _assert_flat(peak_of, lists, tmp_path, sizes=(SMALL, SMALL, LARGE)) -> None:
    """The peak for the large list is within the bound of the small one's, after a first run to warm up
    the caches that fill on first use (fonts, codecs, connections), which are not the list's."""
    warm_up, small, large = sizes
    peak_of(lists[warm_up], tmp_path / "warm-up")
    small_peak = peak_of(lists[small], tmp_path / "small")
    large_peak = peak_of(lists[large], tmp_path / "large")
    assert large_peak - small_peak < GROWTH_BOUND, (small_peak, large_peak)


# -- one stage at a time ----------------------------------------------------------------------------


def _read(journal: Journal, settings: JobSettings) -> None:
    pipeline._record_intake(journal, pipeline._read_list(settings))


def test_intake_holds_no_more_for_four_times_the_rows(lists, tmp_path):
    def peak(synthetic: SyntheticJob, out_dir: Path) -> int:
        out_dir.mkdir()
        settings = _settings(synthetic, out_dir)
        with Journal.in_dir(out_dir) as journal:
            traced, _ = traced_peak(lambda: _read(journal, settings))
            assert journal.rows.count_at(Stage.READ) == len(synthetic.nhs_numbers)
        return traced

    _assert_flat(peak, lists, tmp_path)


def test_the_address_fit_holds_no_more_for_four_times_the_rows(lists, tmp_path, monkeypatch):
    template = LetterTemplate(_settings(lists[SMALL], tmp_path).template_dir)
    renderer = chunks.ChunkRenderer(template, _settings(lists[SMALL], tmp_path).letter, PrintOptions().envelope)
    # A laid-out WeasyPrint document is a reference cycle: one done with waits for Python's cycle collector,
    # which runs when it likes. Collecting before each batch is laid out measures what fitting holds.
    fit = renderer.check_addresses
    monkeypatch.setattr(renderer, "check_addresses", lambda batch: (gc.collect(), fit(batch))[1])

    def peak(synthetic: SyntheticJob, out_dir: Path) -> int:
        out_dir.mkdir()
        settings = _settings(synthetic, out_dir)
        with Journal.in_dir(out_dir) as journal:
            _read(journal, settings)
            fitted = []
            traced, _ = traced_peak(lambda: pipeline._check_addresses(journal, renderer, 1, fitted.append))
            assert sum(fitted) == len(synthetic.nhs_numbers) == journal.rows.count_at(Stage.READ)  # every address fits
        return traced

    with no_weasyprint_warnings():
        _assert_flat(peak, lists, tmp_path, FIT_SIZES)


@pytest.mark.parametrize("api", ["fhir", "rest"])
def test_resolve_holds_no_more_for_four_times_the_patients(lists, pkb, tmp_path, api):
    def peak(synthetic: SyntheticJob, out_dir: Path) -> int:
        out_dir.mkdir()
        settings = _settings(synthetic, out_dir, api)
        with Journal.in_dir(out_dir) as journal, _client(pkb, settings) as client:
            _read(journal, settings)
            traced, _ = traced_peak(lambda: pipeline._resolve(journal, client, settings, NoProgress()))
            assert journal.rows.count_at(Stage.ELIGIBLE) == len(synthetic.nhs_numbers)
        return traced

    _assert_flat(peak, lists, tmp_path)


@pytest.mark.parametrize("api", ["fhir", "rest"])
def test_codes_hold_no_more_for_four_times_the_patients(lists, pkb, tmp_path, api):
    def peak(synthetic: SyntheticJob, out_dir: Path) -> int:
        out_dir.mkdir()
        settings = _settings(synthetic, out_dir, api)
        with Journal.in_dir(out_dir) as journal, _client(pkb, settings) as client:
            journal.begin_run()
            _read(journal, settings)
            pipeline._resolve(journal, client, settings, NoProgress())
            traced, _ = traced_peak(lambda: pipeline._issue(journal, client, settings, NoProgress(), dt.date.today))
            assert journal.rows.count_at(Stage.CODED) == len(synthetic.nhs_numbers)
        return traced

    _assert_flat(peak, lists, tmp_path)


# -- the same outcome for every row ------------------------------------------------------------------------

DEMO_ROWS = (FIXTURES / "patients.csv").read_text(encoding="utf-8").splitlines()
# The demo list (rows 2-16: DEMO-0001 to DEMO-0015) with a Deceased column, and after it rows that
# name the demo patients again: a later row marking an earlier patient deceased, duplicates, rows
# malformed in every way, a blank line, and a record across two lines.
MESSY_LIST = "\n".join([
    DEMO_ROWS[0] + ",Deceased",
    *(row + "," for row in DEMO_ROWS[1:]),
    "Mr,Read,Richards,576 067 8914,2000-09-15,Flat 4,12 Grey Street,,NEWCASTLE UPON TYNE,,NE1 7RU,X-17,",
    "Ms,Zoë,O'Brien-Ng,7569602005,1987-03-22,27 Headingley Lane,,,LEEDS,,LS6 1BN,X-18,Y",
    "Mr,Oluwaseun,Adeyemi,9434765919,1993-12-08,88 Gloucester Road,Bishopston,,BRISTOL,,BS7 8BN,X-19,,extra",
    "Mr,Ian,Nobody,5760678915,1990-01-01,1 High Street,,,LEEDS,,LS1 1AA,X-20,",
    "Ms,Ann,Elsewhere,9999999999,1990-01-01,1 High Street,,,LEEDS,,XX1 1AA,X-21,",
    "Ms,Ann,Elsewhere,9999999999,1990-01-01,1 High Street,,,LEEDS,,LS1 1AA,X-22,",
    "Mx,Alex,Morgan,8371266197,1958-10-17,5 Church Road,,,BIRMINGHAM,,B15 3TR,X-23,Y,extra",
    "",
    'Mrs,Margaret,Thompson,7822798839,1949-01-26,"The Old Rectory\nMain Street",,,YORK,,YO23 2RB,X-25,',
    ",Nameless,,9434765919,1993-12-08,88 Gloucester Road,,,BRISTOL,,BS7 8BN,X-27,",
]) + "\n"

# input row → (stage, reason, a phrase of the detail), as the job gave before it streamed
EXPECTED = {
    2: ("coded", None, None),
    3: ("excluded", "deceased", "row 18 of the list marks this patient (same NHS number) as deceased"),
    4: ("coded", None, None),
    5: ("coded", None, None),
    6: ("coded", None, None),
    7: ("coded", None, None),
    8: ("excluded", "deceased", "row 23 of the list marks this patient (same NHS number) as deceased"),
    9: ("coded", None, None),
    10: ("excluded", "deceased", "PKB records this patient as deceased"),
    11: ("excluded", "already-registered", None),
    12: ("excluded", "no-date-of-birth", None),
    13: ("excluded", "under-16", None),
    14: ("excluded", "no-access", None),
    15: ("excluded", "not-found", None),
    16: ("excluded", "address-too-wide", None),
    17: ("excluded", "duplicate-nhs-number", "same NHS number as row 2:"),
    18: ("excluded", "deceased", "the list marks this patient as deceased"),
    19: ("excluded", "malformed-row", "row has 14 cells but the header has 13 columns"),
    20: ("excluded", "invalid-nhs-number", None),
    21: ("excluded", "address-bad-postcode", None),
    22: ("excluded", "duplicate-nhs-number", "same NHS number as row 21:"),
    23: ("excluded", "malformed-row", None),
    25: ("excluded", "duplicate-nhs-number", "same NHS number as row 9:"),
    27: ("excluded", "duplicate-nhs-number", "same NHS number as row 6:"),
}


@pytest.fixture
def _tiny_pages(monkeypatch):
    for module, name in ((journal_sql, "PAGE_ROWS"), (address_fit, "FIT_BATCH"),
                         (resolve, "STATUS_QUERY_LIMIT"), (codes, "GENERATE_TOKENS_LIMIT")):
        monkeypatch.setattr(module, name, 3)


@pytest.mark.usefixtures("_tiny_pages")
@pytest.mark.parametrize("api", ["fhir", "rest"])
def test_a_messy_list_ends_row_by_row_as_before(sandbox, tmp_path, api):
    patients = tmp_path / "patients.csv"
    patients.write_text(MESSY_LIST, encoding="utf-8")
    letter = LetterSettings(organisation="Demo NHS Foundation Trust", join_url=SANDBOX_JOIN_URL)
    settings = JobSettings(patients=patients, out_dir=tmp_path / "job", api=api, letter=letter, workers=1,
                           concurrency=2)
    summary = run_job(settings, connection_to(sandbox), stop_after="codes")
    with Journal.in_dir(tmp_path / "job") as journal:
        rows = journal.db.execute("SELECT input_row, stage, reason, detail FROM rows ORDER BY input_row").fetchall()
    got = {r["input_row"]: (r["stage"], r["reason"], r["detail"]) for r in rows}
    assert sorted(got) == sorted(EXPECTED)
    for row, (stage, reason, phrase) in EXPECTED.items():
        assert got[row][:2] == (stage, reason), (row, got[row])
        assert phrase is None or phrase in got[row][2], (row, got[row][2])
    assert summary.input_rows == len(EXPECTED) and summary.by_stage == {"coded": 6, "excluded": len(EXPECTED) - 6}


# -- the encoding, found a block at a time, as the whole file at once gave it ------------------------------


def _whole_file_verdict(data: bytes) -> str:
    """What intake said of a file when it decoded the whole file at once (its code before streaming):
    the encoding, or the offsets its refusal named."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"PK\x03\x04")):
        return "refused at the start"
    control = re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", data)
    if control:
        return f"control byte 0x{data[control.start()]:02X} at {control.start()}"
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            data[3:].decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"byte order mark, then 0x{data[3 + exc.start]:02X} at {3 + exc.start}"
        return "utf-8-sig"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    else:
        return "utf-8"
    utf8_text = re.search(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}", data)
    if utf8_text:
        return f"mixed: UTF-8 at {utf8_text.start()}, 0x{data[first_bad]:02X} at {first_bad}"
    try:
        data.decode("cp1252")
    except UnicodeDecodeError as exc:
        return f"neither: 0x{data[first_bad]:02X} at {first_bad}, then {exc.start}"
    return "cp1252"


def _streamed_verdict(path: Path) -> str:
    try:
        return patient_list._detect_encoding(path).encoding
    except InputFileError as exc:
        message = str(exc)
    if "UTF-16" in message or "workbook" in message:
        return "refused at the start"
    numbers = [int(n) for n in re.findall(r"offset (\d+)", message)]
    bytes_named = re.findall(r"0x([0-9A-F]{2})", message)
    if "control character" in message:
        return f"control byte 0x{bytes_named[0]} at {numbers[0]}"
    if "byte order mark" in message:
        return f"byte order mark, then 0x{bytes_named[0]} at {numbers[0]}"
    if "mixes encodings" in message:
        return f"mixed: UTF-8 at {numbers[0]}, 0x{bytes_named[0]} at {numbers[1]}"
    return f"neither: 0x{bytes_named[0]} at {numbers[0]}, then {numbers[-1]}"


FILES = [
    b"", b"plain,ascii\n", "Zoë,Tōmas,emoji 😀,€\n".encode(), b"\xef\xbb\xbf" + "Zoë 😀\n".encode(),
    b"\xef\xbb\xbfZo\xeb\n", b"Zo\xeb,Ren\xe9e\n", b"Zo\xeb \x81\n", b"abc\x81 d\xe9\n", b"ab\x8d",
    "Zoë,".encode() + b"Ren\xe9e\n", b"Ren\xe9e," + "Zoë\n".encode(), b"ab\xc3", b"a\xe2\x82b\n", b"ab\xf0\x9f\x98",
    b"x" * 5 + "😀".encode() + b"\xe9", b"Zo\xeb\x00", b"\xff\xfeZ\x00", b"PK\x03\x04\x14\x00", b"\xc3\x28 \x81",
    b"\xed\xa0\x80 surrogate \xe9", b"\xe0\x80\x80 overlong", "ō".encode() + b"\x81",
]


@pytest.mark.parametrize("block", [1, 2, 3, 5, 7, 1 << 16])
def test_the_encoding_read_a_block_at_a_time_is_what_the_whole_file_gave(tmp_path, monkeypatch, block):
    monkeypatch.setattr(patient_list, "_BLOCK", block)
    for number, data in enumerate(FILES):
        path = tmp_path / f"{number}.csv"
        path.write_bytes(data)
        assert _streamed_verdict(path) == _whole_file_verdict(data), data
