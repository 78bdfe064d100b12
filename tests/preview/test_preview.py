"""`pkb-letters preview`: sample letters as they will print, watermarked, outlined, and never a PKB call.

The PDFs are read back with pypdf (text, in drawing order, so the diagonal watermark
reads as one line) and pdfplumber (the proof's rectangles and lines, in millimetres).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pdfplumber
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, REPO
from listener import Listener
from PIL import Image
from pypdf import PdfReader

from pkb_letters.assemble import marks
from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.cli import main
from pkb_letters.config import DEFAULT_TEMPLATE, LetterSettings
from pkb_letters.envelope import A4_HEIGHT_MM, C5, DL, EnvelopeProfile, Rect
from pkb_letters.errors import ConfigError, TemplateResourceError
from pkb_letters.preview import live
from pkb_letters.preview.live import PreviewServer, watch
from pkb_letters.preview.proof import FOLD_COLOUR, PRINTABLE_COLOUR, WATERMARK_TEXT, WINDOW_COLOUR, ZONE_COLOUR
from pkb_letters.preview.results import PREVIEW_PDF, PROOF_PDF, PreviewRequest, PreviewResult
from pkb_letters.preview.samples import SAMPLES
from pkb_letters.preview.samples_run import (
    CODE_ALPHABET,
    FIT_CHECK,
    LIST_CHECK,
    preview_job_id,
    render_preview,
    sample_codes,
)

# Ctrl-C stops a child even when this test run was started in the background, which ignores SIGINT
# (a disposition children inherit).
RESTORE_CTRL_C = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
MM_PER_POINT = 25.4 / 72
LETTER_DATE = dt.date(2026, 11, 21)
A4_AT_150_DPI = (1240, 1754)
ONE_PAGE_LETTER = """\
<div class="pkb-address-window">{% for line in address.lines %}<p class="address-line">{{ line }}</p>{% endfor %}</div>
<main class="pkb-body">
  <p>Dear {{ patient.display_name }},</p>
  <p class="wording">Your invitation to join Patients Know Best.</p>
  <p>Invitation code <span class="code">{{ codes.invitation }}</span></p>
  <p>Access code <span class="code">{{ codes.access }}</span></p>
  <p>These codes expire on {{ codes.expires | long_date }}.</p>
  {extra}
</main>
"""


def one_page_template(folder: Path, extra: str = "") -> Path:
    """The default template's fonts and styles with a one-page letter: every letter gets a blank back."""
    shutil.copytree(DEFAULT_TEMPLATE, folder)
    (folder / "letter.html").write_text(ONE_PAGE_LETTER.replace("{extra}", extra), encoding="utf-8")
    return folder


def request_for(out_dir: Path, **fields) -> PreviewRequest:
    return PreviewRequest(out_dir=out_dir, letter=LetterSettings(date=LETTER_DATE), **fields)


@pytest.fixture(scope="module")
def c5_preview(tmp_path_factory) -> PreviewResult:
    """Every built-in sample through the default template, for a C5 envelope."""
    return render_preview(request_for(tmp_path_factory.mktemp("preview-c5")))


@pytest.fixture(scope="module")
def dl_preview(tmp_path_factory) -> PreviewResult:
    """Three samples, one page each (so each has a blank back), for a DL envelope."""
    template = one_page_template(tmp_path_factory.mktemp("dl-template") / "one-page")
    out_dir = tmp_path_factory.mktemp("preview-dl")
    return render_preview(request_for(out_dir, template_dir=template, count=3, options=PrintOptions(envelope=DL)))


def page_texts(pdf: Path) -> list[str]:
    return [page.extract_text() for page in PdfReader(pdf).pages]


@pytest.fixture(scope="module")
def c5_texts(c5_preview) -> list[str]:
    return page_texts(c5_preview.out_dir / PREVIEW_PDF)


# -- the watermark and the made-up codes ----------------------------------------------------


@pytest.mark.parametrize("name", ["c5_preview", "dl_preview"])
def test_every_page_of_the_preview_carries_the_watermark_blank_backs_too(name, request):
    result: PreviewResult = request.getfixturevalue(name)
    texts = request.getfixturevalue("c5_texts") if name == "c5_preview" else page_texts(result.out_dir / PREVIEW_PDF)
    assert len(texts) == result.pages == sum(len(s.pages) for s in result.samples)
    assert all(WATERMARK_TEXT in text for text in texts)
    blank_backs = [page for s in result.samples for page in s.blank_pages]
    if name == "dl_preview":
        assert blank_backs == [2, 4, 6]
        for page in blank_backs:  # nothing but the watermark: the back was blank before it
            assert texts[page - 1].strip() == WATERMARK_TEXT
    assert all(WATERMARK_TEXT in text for text in page_texts(result.out_dir / PROOF_PDF))


def test_the_letters_carry_made_up_codes_of_pkb_shape_and_a_plainly_fake_expiry(c5_preview, c5_texts):
    first_pages = [c5_texts[s.pages[0] - 1] for s in c5_preview.samples]
    for sample, text in zip(c5_preview.samples, first_pages, strict=True):
        codes = sample_codes(sample.input_row)
        for code in (codes.invitation_code, codes.access_code):
            assert len(code) == 10 and set(code) <= set(CODE_ALPHABET)
            assert code in text
        letter = " ".join(c5_texts[page - 1] for page in sample.pages)  # large print: the expiry is on page 2
        if sample.label != "Welsh only":
            assert "30 September 1999" in letter.replace("\n", " ")
        if sample.label in ("Welsh and English (bilingual)", "Welsh only"):
            assert "30 Medi 1999" in letter.replace("\n", " ")  # the Welsh letter's month in Welsh
    assert len({sample_codes(s.input_row).invitation_code for s in c5_preview.samples}) == len(SAMPLES)


def test_built_in_samples_cover_the_edge_cases_and_pass_every_check(c5_preview, c5_texts):
    assert [s.label for s in c5_preview.samples] == [sample.label for sample in SAMPLES]
    failures = {s.label: [(c.name, c.detail) for c in s.checks if not c.passed] for s in c5_preview.samples}
    assert not any(failures.values()), failures
    texts = "\n".join(c5_texts)
    for expected in ("Zoë O'Brien-Ng", "LLANFAIRPWLLGWYNGYLL", "Tŷ Gwyn", "Ynys Môn", "BF1 3AA", "BFPO 58",
                     "Professor Maximiliana B Featherstonehaugh-Ashworth"):
        assert expected in texts
    seven = next(s for s in c5_preview.samples if s.label == "Seven-line address")
    assert len(seven.address) + 1 == 7
    # the run's piece ids and marks: the preview's own job id, as long as a real one
    assert f"{preview_job_id(LETTER_DATE)}-000001" in texts
    assert len(preview_job_id(LETTER_DATE)) == len("PKB-20261121-3F9A0C")


# -- PNGs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["c5_preview", "dl_preview"])
def test_one_png_per_page_at_150_dpi(name, request):
    result: PreviewResult = request.getfixturevalue(name)
    pngs = sorted(result.out_dir.glob("page-*.png"))
    assert [p.name for p in pngs] == [f"page-{n:03d}.png" for n in range(1, result.pages + 1)]
    for png in pngs:
        with Image.open(png) as image:
            assert image.size == A4_AT_150_DPI


def test_a_shorter_preview_removes_the_pages_it_no_longer_has(tmp_path):
    template = one_page_template(tmp_path / "one-page")
    render_preview(request_for(tmp_path / "out", template_dir=template, count=2))
    assert len(list((tmp_path / "out").glob("page-*.png"))) == 4
    render_preview(request_for(tmp_path / "out", template_dir=template, count=1))
    assert sorted(p.name for p in (tmp_path / "out").glob("page-*.png")) == ["page-001.png", "page-002.png"]


# -- the proof ------------------------------------------------------------------------------


def _rects(page, colour: str) -> list[Rect]:
    return [Rect(r["x0"] * MM_PER_POINT, r["top"] * MM_PER_POINT, r["width"] * MM_PER_POINT,
                 r["height"] * MM_PER_POINT) for r in page.rects if _is(r.get("stroking_color"), colour)]


def _line_heights(page, colour: str) -> list[float]:
    lines = [line for line in page.lines if _is(line.get("stroking_color"), colour)]
    return sorted(round(line["top"] * MM_PER_POINT, 2) for line in lines)


def _is(stroke, colour: str) -> bool:
    wanted = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    if not isinstance(stroke, tuple | list) or len(stroke) != 3:  # pdfplumber gives a bare number for grey
        return False
    return all(abs(a - b) < 0.01 for a, b in zip(stroke, wanted, strict=True))


def _close(drawn: Rect, expected: Rect) -> bool:
    return all(abs(getattr(drawn, f) - getattr(expected, f)) < 0.05 for f in ("left", "top", "width", "height"))


@pytest.mark.parametrize(("name", "envelope", "folds"),
                         [("c5_preview", C5, [148.5]), ("dl_preview", DL, [99.0, 198.0])])
def test_the_proof_outlines_the_window_clear_zone_printable_area_and_folds(
    name, envelope: EnvelopeProfile, folds, request
):
    result: PreviewResult = request.getfixturevalue(name)
    layout = marks.DEFAULT_LAYOUTS[marks.MarkKind.DATAMATRIX]
    zone = marks.clear_zone(layout, marks.sample_payload(preview_job_id(LETTER_DATE)))
    first_pages = {s.pages[0] for s in result.samples}
    with pdfplumber.open(result.out_dir / PROOF_PDF) as pdf:
        assert len(pdf.pages) == result.pages
        for number, page in enumerate(pdf.pages, 1):
            windows = _rects(page, WINDOW_COLOUR)
            if number in first_pages:  # the page that shows through the window
                assert len(windows) == 1 and _close(windows[0], envelope.window), (number, windows)
            else:
                assert windows == []
            (printable,) = _rects(page, PRINTABLE_COLOUR)
            assert _close(printable, envelope.printable_area)
            assert _line_heights(page, FOLD_COLOUR) == folds
            zones = _rects(page, ZONE_COLOUR)
            front = number % 2 == 1  # duplex: each letter starts on a front, so fronts are the odd pages
            assert (len(zones) == 1 and _close(zones[0], zone)) if front else zones == []
    assert folds == ([A4_HEIGHT_MM / 2] if envelope.fold == "half" else [A4_HEIGHT_MM / 3, 2 * A4_HEIGHT_MM / 3])


def test_the_proof_window_follows_a_custom_envelope_profile(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text('[envelope]\nname = "dl-acme"\nwindow = { left = 22, top = 48, width = 88, height = 38 }\n'
                   'body_top = 100\nfold = "z"\n', encoding="utf-8")
    template = one_page_template(tmp_path / "one-page")
    out = tmp_path / "out"
    run = CliRunner().invoke(main, ["preview", "--template", str(template), "--samples", "1", "--config", str(job),
                                    "--out", str(out)])
    assert run.exit_code == 0, run.output
    with pdfplumber.open(out / PROOF_PDF) as pdf:
        (window,) = _rects(pdf.pages[0], WINDOW_COLOUR)
    assert _close(window, Rect(22, 48, 88, 38))


# -- checks and rows that would fail --------------------------------------------------------


def test_a_template_that_prints_into_the_marks_zone_fails_that_check_on_the_page(tmp_path):
    stray = '<p style="position: absolute; left: -9mm; top: 269mm; margin: 0">Stray note written here</p>'
    template = one_page_template(tmp_path / "stray", extra=stray)
    result = render_preview(request_for(tmp_path / "out", template_dir=template, count=2))
    for sample in result.samples:
        failed = {c.name for c in sample.checks if not c.passed}
        # text over the mark also spoils the inserter camera's reading of it
        assert failed == {"text inside the printable area", "marks' clear zone kept clear",
                          "separation marks read back right"}, sample.checks
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert html.count('class="sample failed"') == 2


def test_a_real_list_previews_its_first_rows_and_reports_those_that_would_fail(tmp_path):
    rows = (FIXTURES / "patients.csv").read_text(encoding="utf-8").splitlines()
    header, good, too_wide = rows[0], rows[1:3], rows[15]
    bad_number = "Mr,Bad,Number,5760678915,1980-01-01,1 High Street,,,LEEDS,,LS1 1AA,BAD-1"
    no_abode = "Ms,No,Abode,9434765919,1980-01-01,No fixed abode,,,LEEDS,,LS1 1AA,NFA-1"
    later_bad = "Mr,Later,Bad,123,1980-01-01,1 High Street,,,LEEDS,,LS1 1AA,LATER-1"
    patients = tmp_path / "patients.csv"
    patients.write_text("\n".join([header, *good, bad_number, no_abode, too_wide, good[0].replace(
        "5760678914", "9990000107"), later_bad]) + "\n", encoding="utf-8")
    result = render_preview(request_for(tmp_path / "out", patients=patients, count=6))
    assert [s.label for s in result.samples] == [f"Row {n}" for n in range(2, 8)]
    assert [s.reason for s in result.samples] == ["", "", "invalid-nhs-number", "address-no-fixed-abode",
                                                  "address-too-wide", ""]
    by_row = {s.input_row: s for s in result.samples}
    assert [c.name for c in by_row[4].checks if not c.passed] == [LIST_CHECK]
    assert [c.name for c in by_row[6].checks if not c.passed] == [FIT_CHECK]
    assert by_row[6].pages == () and by_row[4].pages == ()
    assert [len(by_row[n].pages) for n in (2, 3, 7)] == [2, 2, 2]
    assert result.pages == 6  # three letters; row 8 is past the rows previewed
    assert result.list_rows == 7 and result.list_exclusions == {"address-no-fixed-abode": 1, "invalid-nhs-number": 2}
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "5760678915" not in html  # a reason's detail never shows a full NHS number
    assert "no letter: invalid-nhs-number" in html and "no letter: address-too-wide" in html


def test_cli_refuses_more_built_in_samples_than_there_are(tmp_path):
    run = CliRunner().invoke(main, ["preview", "--samples", str(len(SAMPLES) + 1), "--out", str(tmp_path / "o")])
    assert run.exit_code == 2
    assert f"there are {len(SAMPLES)} built-in samples" in run.output


# -- never a network request ----------------------------------------------------------------

_AUDITED = textwrap.dedent("""\
    import json, socket, sys
    seen = []
    def audit(event, args):
        if event.startswith("socket.") and event not in ("socket.__new__", "socket.bind"):
            seen.append([event, repr(args)[:120]])
    sys.addaudithook(audit)
    import pkb_letters.pkb.client
    constructed = pkb_letters.pkb.client.PkbClient.__init__
    def spy(self, *args, **kwargs):
        seen.append(["PkbClient", ""])
        constructed(self, *args, **kwargs)
    pkb_letters.pkb.client.PkbClient.__init__ = spy
    from pkb_letters.cli import main
    try:
        main(sys.argv[2:], standalone_mode=False)
    finally:
        during = list(seen)
        socket.create_connection(("127.0.0.1", int(sys.argv[1]))).close()  # proves the hook sees a connection
        with open("audit.json", "w") as handle:
            json.dump({"during": during, "after": seen[len(during):]}, handle)
""")


def test_a_preview_makes_no_network_request_and_builds_no_pkb_client(tmp_path):
    listener = Listener()
    try:
        patients = FIXTURES / "patients.csv"
        command = [sys.executable, "-c", _AUDITED, str(listener.port), "preview", "--patients", str(patients),
                   "--samples", "3", "--envelope", "dl", "--out", str(tmp_path / "out")]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    finally:
        listener.close()
    assert done.returncode == 0, done.stderr
    audit = json.loads((tmp_path / "audit.json").read_text())
    assert audit["during"] == []
    assert "socket.connect" in [event for event, _ in audit["after"]]
    assert (tmp_path / "out" / PREVIEW_PDF).exists()


def test_a_template_reaching_for_the_network_stops_the_preview_unfetched(tmp_path):
    listener = Listener()
    try:
        beacon = f'<img src="http://127.0.0.1:{listener.port}/pixel.png" alt="">'
        template = one_page_template(tmp_path / "beacon", extra=beacon)
        with pytest.raises(TemplateResourceError, match="are not fetched"):
            render_preview(request_for(tmp_path / "out", template_dir=template, count=1))
    finally:
        listener.close()
    assert listener.connections == 0


# -- watch and serve ------------------------------------------------------------------------


def test_watch_renders_again_when_a_template_file_changes(tmp_path):
    template = one_page_template(tmp_path / "editing")
    request = request_for(tmp_path / "out", template_dir=template, count=1)
    first = render_preview(request)
    rendered, outcomes, stop = threading.Event(), [], threading.Event()

    def record(outcome):
        outcomes.append(outcome)
        rendered.set()

    watcher = threading.Thread(target=watch, args=(request, record, stop))
    watcher.start()
    try:
        with PreviewServer(request.out_dir) as server:
            assert _get(server, "version.txt") == first.version
            letter = template / "letter.html"
            _edit_until_rendered(letter, letter.read_text().replace("Your invitation", "Your NEW invitation"), rendered)
            (second,) = outcomes
            assert isinstance(second, PreviewResult) and second.version != first.version
            assert "Your NEW invitation" in page_texts(request.out_dir / PREVIEW_PDF)[0]
            assert _get(server, "version.txt") == second.version  # what the page polls, over the socket
            rendered.clear()
            _edit_until_rendered(letter, "{% if %}", rendered)  # saved mid-edit: the page shows the error
            assert "could not be rendered" in _get(server, "index.html")
    finally:
        stop.set()
        watcher.join(10)
    assert not watcher.is_alive()


def _edit_until_rendered(path: Path, text: str, rendered: threading.Event) -> None:
    """Save `path`; the watcher thread may not have its watch in place yet, so save again until it renders."""
    for _ in range(10):
        path.write_text(text, encoding="utf-8")
        if rendered.wait(2):
            return
    raise AssertionError(f"no render after {path.name} changed")


def _get(server: PreviewServer, name: str) -> str:
    import urllib.request

    url = server.url.rsplit("/", 1)[0] + "/" + name
    with urllib.request.urlopen(url, timeout=10) as answer:  # loopback, to our own server
        assert answer.headers["Cache-Control"] == "no-store"
        return answer.read().decode("utf-8")


def test_the_server_listens_on_loopback_only_and_serves_the_page(c5_preview):
    with PreviewServer(c5_preview.out_dir) as server:
        assert server.url.startswith("http://127.0.0.1:")
        page = _get(server, "index.html")
    for sample in SAMPLES:
        assert f'data-label="{sample.label}"' in page
    assert "Zoë O&#39;Brien-Ng" in page  # escaped, never raw markup


def test_the_cli_watches_and_serves_until_interrupted(tmp_path):
    template = one_page_template(tmp_path / "editing")
    command = [sys.executable, "-c", RESTORE_CTRL_C + "from pkb_letters.cli import main; main()", "preview",
               "--template", str(template), "--samples", "1", "--out", str(tmp_path / "out"), "--watch", "--serve",
               "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = iter(process.stdout.readline, "")
        url = next(re.search(r"http://127\.0\.0\.1:\d+/index\.html", line) for line in lines if "Serving" in line)
        base = url.group().rsplit("/", 1)[0]
        first = _fetch(base + "/version.txt")
        letter = template / "letter.html"
        edited = letter.read_text().replace("Your invitation", "Your edited invitation")
        for tick in range(60):  # save again every 3 s: the watch may not have been in place at the first save
            if tick % 15 == 0:
                letter.write_text(edited, encoding="utf-8")
            threading.Event().wait(0.2)
            if _fetch(base + "/version.txt") != first:
                break
        assert _fetch(base + "/version.txt") != first, "the served page never saw a new render"
        assert "Your edited invitation" in page_texts(tmp_path / "out" / PREVIEW_PDF)[0]
    finally:
        process.send_signal(signal.SIGINT)
        exit_code = process.wait(20)
        process.stdout.close()
    assert exit_code == 0


def _fetch(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as answer:  # loopback, to the preview's own server
        return answer.read().decode("utf-8")


def test_a_busy_port_is_a_clear_error(tmp_path):
    with PreviewServer(tmp_path) as taken:
        port = int(taken.url.split(":")[2].split("/")[0])
        with pytest.raises(ConfigError, match="choose another --port"):
            PreviewServer(tmp_path, port)


def test_a_preview_never_writes_into_a_job_folder_or_its_own_template(tmp_path):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "job.sqlite").write_bytes(b"")
    template = one_page_template(tmp_path / "one-page")
    for out in (tmp_path / "job", template / "preview"):
        run = CliRunner().invoke(main, ["preview", "--template", str(template), "--out", str(out)])
        assert run.exit_code == 2, run.output
    assert not (template / "preview").exists()
    assert list((tmp_path / "job").iterdir()) == [tmp_path / "job" / "job.sqlite"]


# -- in a real browser ----------------------------------------------------------------------


def chromium(*arguments: str, timeout: float = 60) -> str:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium package is missing: run .ci/system-deps (as root) to install it"
    profile = Path(arguments[0]).parent / f"chromium-profile-{threading.get_ident()}"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}"]
    done = subprocess.run([binary, *flags, *arguments[1:]], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_headless_chromium_shows_every_sample_with_its_pages(c5_preview, tmp_path):
    with PreviewServer(c5_preview.out_dir) as server:
        dom = chromium(str(tmp_path / "x"), "--virtual-time-budget=3000", "--dump-dom", server.url)
        screenshot = tmp_path / "index.png"
        chromium(str(tmp_path / "x"), "--window-size=1280,2200", "--hide-scrollbars", "--virtual-time-budget=3000",
                 f"--screenshot={screenshot}", server.url)
    labels = re.findall(r'data-label="([^"]+)"', dom)
    assert labels == [sample.label.replace("'", "&#39;") for sample in SAMPLES]
    assert f'data-images-loaded="{c5_preview.pages}"' in dom  # every thumbnail loaded, none broken
    assert dom.count('<tr class="pass">') == sum(len(s.checks) for s in c5_preview.samples)
    with Image.open(screenshot) as image:
        assert image.size == (1280, 2200)
        shades = image.convert("L").resize((64, 110)).getcolors(64 * 110)
        assert len(shades) > 20  # a page, not a blank window
    shutil.copy(screenshot, c5_preview.out_dir / "screenshot.png")  # kept with the preview, for looking at


def test_the_page_reloads_itself_once_after_a_re_render(tmp_path, caplog, monkeypatch):
    """A re-render writes index.html, then version.txt; the page's poll sees the new version and reloads."""
    template = one_page_template(tmp_path / "one-page")
    first = render_preview(request_for(tmp_path / "out", template_dir=template, count=1))
    caplog.set_level("DEBUG", logger="pkb_letters.preview.live")
    with PreviewServer(first.out_dir) as server:
        dom = chromium(str(tmp_path / "a"), "--virtual-time-budget=3500", "--dump-dom", server.url)
        steady = _requests(caplog)
        caplog.clear()
        served = live._QuietHandler.do_GET

        def re_render_after_first_page(handler):  # in the server's thread, once the page has been sent
            served(handler)
            if handler.path == "/index.html" and (first.out_dir / "version.txt").read_text() != "v2":
                index = first.out_dir / "index.html"
                index.write_text(index.read_text().replace(first.version, "v2"), encoding="utf-8")
                (first.out_dir / "version.txt").write_text("v2", encoding="utf-8")

        monkeypatch.setattr(live._QuietHandler, "do_GET", re_render_after_first_page)
        reloaded = chromium(str(tmp_path / "b"), "--virtual-time-budget=3500", "--dump-dom", server.url)
        changed = _requests(caplog)
    assert f'data-version="{first.version}"' in dom
    assert steady.count("/index.html") == 1 and steady.count("/version.txt") >= 1  # polled, no reload
    assert changed.count("/index.html") == 2  # one reload, onto the new render, and no more
    assert 'data-version="v2"' in reloaded


def _requests(caplog) -> list[str]:
    return [m.split('"GET ', 1)[1].split(" ", 1)[0] for m in caplog.messages if '"GET ' in m]


def test_the_page_shows_whether_it_is_approved_by_whom_and_the_command_that_approves_it(tmp_path):
    """Before `approve`: the command that approves it; after: who approved it. `approve` writes a new
    version.txt with the page, so a page left open reloads onto it (the reload is tested above)."""
    template = one_page_template(tmp_path / "one-page")
    out = tmp_path / "out"
    render_preview(request_for(out, template_dir=template, count=1))
    with PreviewServer(out) as server:
        assert server.url.startswith("http://127.0.0.1:")
        before = chromium(str(tmp_path / "a"), "--virtual-time-budget=3000", "--dump-dom", server.url)
        done = CliRunner().invoke(main, ["approve", str(out), "--by", "Ann Reviewer", "--note", "IG lead agreed"])
        assert done.exit_code == 0, done.output
        after = chromium(str(tmp_path / "b"), "--virtual-time-budget=3000", "--dump-dom", server.url)
    assert 'data-state="not-approved"' in before and "Ann Reviewer" not in before
    command = re.search(r'<code id="approve-command">([^<]+)</code>', before)
    assert command and command.group(1).startswith(f"pkb-letters approve {out} --by")
    assert 'data-state="approved"' in after
    assert re.search(r'<span class="approver">Ann Reviewer</span> on [0-9T:+-]+ \(IG lead agreed\)', after)
    version = (out / "version.txt").read_text()
    assert f'data-version="{version}"' in after  # the new version: the open page would reload onto it, once
