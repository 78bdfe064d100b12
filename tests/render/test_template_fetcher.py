"""WeasyPrint reads nothing from the network and nothing outside the template folder.

A real listener on loopback stands where a template points: it must never see a
connection. Files outside the folder are real files that would render if read.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PATIENTS_CSV, connection_to, demo_settings
from listener import Listener
from pdf_inspect import page_texts

from pkb_letters.cli import main
from pkb_letters.config import DEFAULT_TEMPLATE, LetterSettings
from pkb_letters.envelope import C5
from pkb_letters.errors import TemplateError
from pkb_letters.job.pipeline import run_job
from pkb_letters.records import CodePair, Letter, PatientRow
from pkb_letters.render.chunks import ChunkRenderer, LetterTemplate

ADDRESS = (
    '<div class="pkb-address-window">'
    '{% for line in address.lines %}<p style="margin: 0">{{ line }}</p>{% endfor %}</div>\n'
)
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def make_template(folder: Path, body: str = "", css: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "letter.html").write_text(ADDRESS + f'<main class="pkb-body"><p>Letter text</p>{body}</main>\n')
    (folder / "letter.css").write_text(css, encoding="utf-8")
    return folder


def one_letter() -> Letter:
    patient = PatientRow(2, "REF-1", "5760678914", "Mr", "Read", "Richards", dt.date(2000, 9, 15),
                         ("12 Grey Street", "NEWCASTLE UPON TYNE", "NE1 7RU"), "NE1 7RU")
    return Letter(1, "T-000001", patient, CodePair("AAAAAAAAAA", "BBBBBBBBBB", dt.date(2030, 1, 1)))


def render(folder: Path) -> bytes:
    renderer = ChunkRenderer(LetterTemplate(folder), LetterSettings(), C5)
    letter = one_letter()
    chunk = renderer.render([letter], [renderer.body(letter)])
    assert chunk.pdf is not None
    return chunk.pdf


NETWORK = {
    "img http": ('<img src="http://127.0.0.1:{port}/pixel.png">', ""),
    "img https": ('<img src="https://127.0.0.1:{port}/pixel.png">', ""),
    "embed": ('<embed src="http://127.0.0.1:{port}/pixel.svg" type="image/svg+xml">', ""),
    "link stylesheet": ('<link rel="stylesheet" href="http://127.0.0.1:{port}/more.css">', ""),
    "css @import": ("", '@import url("http://127.0.0.1:{port}/more.css");'),
    "css background url()": ("", 'body {{ background: url("http://127.0.0.1:{port}/bg.png"); }}'),
    "css @font-face": ("", '@font-face {{ font-family: X; src: url("http://127.0.0.1:{port}/x.ttf"); }}'
                           " p {{ font-family: X; }}"),
    "attachment": ('<a rel="attachment" href="http://127.0.0.1:{port}/file.txt">file</a>', ""),
    "protocol-relative": ('<img src="//127.0.0.1:{port}/pixel.png">', ""),
}


@pytest.mark.parametrize("body, css", NETWORK.values(), ids=NETWORK.keys())
def test_no_network_fetch(tmp_path, listener, body, css):
    folder = make_template(tmp_path / "tpl", body.format(port=listener.port), css.format(port=listener.port))
    with pytest.raises(TemplateError, match=rf"asked for \w+://127\.0\.0\.1:{listener.port}/"):
        render(folder)
    assert listener.connections == 0


@contextmanager
def expected_weasyprint_error(start: str) -> Iterator[list[str]]:
    """Keep one expected WeasyPrint error away from the no-warnings guard, and give it to the test."""
    seen: list[str] = []

    def drop(record: logging.LogRecord) -> bool:
        if record.getMessage().startswith(start):
            seen.append(record.getMessage())
            return False
        return True

    logger = logging.getLogger("weasyprint")
    logger.addFilter(drop)
    try:
        yield seen
    finally:
        logger.removeFilter(drop)


def test_no_network_fetch_from_inside_an_svg_image(tmp_path, listener):
    # WeasyPrint draws SVG images late and logs (rather than raises) what fails there:
    # the fetcher's own record of the refusal still stops the letter.
    folder = make_template(tmp_path / "tpl", '<img src="logo.svg">')
    (folder / "logo.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10">'
        f'<image width="10" height="10" xlink:href="http://127.0.0.1:{listener.port}/pixel.png"/></svg>'
    )
    with expected_weasyprint_error("Failed to render SVG image") as logged:
        with pytest.raises(TemplateError, match=rf"asked for http://127\.0\.0\.1:{listener.port}/pixel\.png"):
            render(folder)
    assert logged and listener.connections == 0


def outside_files(tmp_path: Path) -> dict[str, tuple[str, str]]:
    (tmp_path / "secret.svg").write_text(SVG)
    return {
        "file:// elsewhere": (f'<img src="{(tmp_path / "secret.svg").as_uri()}">', ""),
        "../ in img": ('<img src="../secret.svg">', ""),
        "../ in css url()": ("", 'body { background: url("../secret.svg"); }'),
        "../ in css @import": ("", '@import "../secret.css";'),
        "encoded ../": ('<img src="sub/%2e%2e/%2E%2E/secret.svg">', ""),
        "file on another host": ('<img src="file://fileserver/share/secret.svg">', ""),
        "absolute path": ('<img src="/etc/hostname">', ""),
    }


@pytest.mark.parametrize("case", ["file:// elsewhere", "../ in img", "../ in css url()", "../ in css @import",
                                  "encoded ../", "file on another host", "absolute path"])
def test_nothing_outside_the_template_folder(tmp_path, case):
    (tmp_path / "secret.css").write_text("p { color: red; }")
    body, css = outside_files(tmp_path)[case]
    folder = make_template(tmp_path / "tpl", body, css)
    with pytest.raises(TemplateError, match=r"asked for file://.*: (it is outside the template folder|files on)"):
        render(folder)


def test_a_symbolic_link_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "secret.svg").write_text(SVG)
    folder = make_template(tmp_path / "tpl", '<img src="logo.svg">')
    (folder / "logo.svg").symlink_to(tmp_path / "secret.svg")
    with pytest.raises(TemplateError, match=r"asked for file://.*/tpl/logo\.svg: it is outside the template folder"):
        render(folder)


def test_files_in_the_folder_and_data_urls_are_used(tmp_path):
    folder = make_template(
        tmp_path / "tpl",
        '<img src="images/logo.svg"><img src="data:image/svg+xml;utf8,' + SVG.replace('"', "'") + '">',
        '@import "more.css";',
    )
    (folder / "images").mkdir()
    (folder / "images" / "logo.svg").write_text(SVG)
    (folder / "more.css").write_text('p::after { content: " from more.css"; }')
    pdf = tmp_path / "out.pdf"
    pdf.write_bytes(render(folder))
    assert "Letter text from more.css" in page_texts(pdf)[0]


def test_a_template_fetching_from_the_network_stops_the_job_before_codes(tmp_path, sandbox, listener):
    folder = make_template(tmp_path / "tpl", f'<img src="http://127.0.0.1:{listener.port}/track.png">')
    before = len(sandbox.issued())
    with pytest.raises(TemplateError, match=rf"asked for http://127\.0\.0\.1:{listener.port}/track\.png"):
        run_job(demo_settings(tmp_path / "job", "fhir", template_dir=folder), connection_to(sandbox))
    assert len(sandbox.issued()) == before
    assert listener.connections == 0

    result = CliRunner().invoke(
        main, ["run", str(PATIENTS_CSV), "--sandbox", "--template", str(folder), "--out", str(tmp_path / "job2")]
    )
    assert result.exit_code == 1
    assert f"Error: the template asked for http://127.0.0.1:{listener.port}/track.png" in result.output
    assert "Traceback" not in result.output


def test_a_refusal_for_one_patients_data_excludes_that_row_and_the_job_goes_on(tmp_path, sandbox, listener):
    folder = tmp_path / "tpl"
    shutil.copytree(DEFAULT_TEMPLATE, folder)
    html = (folder / "letter.html").read_text(encoding="utf-8")
    tracker = f'<img src="http://127.0.0.1:{listener.port}/track.png">'
    html = html.replace('<main class="pkb-body">',
                        '<main class="pkb-body">{% if patient.customer_ref == "DEMO-0003" %}' + tracker + "{% endif %}")
    (folder / "letter.html").write_text(html, encoding="utf-8")

    summary = run_job(demo_settings(tmp_path / "job", "fhir", template_dir=folder), connection_to(sandbox))

    with (tmp_path / "job" / "exceptions.csv").open(encoding="utf-8", newline="") as handle:
        exceptions = {row["customer_ref"]: row for row in csv.DictReader(handle)}
    assert exceptions["DEMO-0003"]["reason"] == "template-error"
    assert exceptions["DEMO-0003"]["detail"].startswith(
        f"the template asked for http://127.0.0.1:{listener.port}/track.png: http URLs are not fetched")
    assert summary.letters == 7 and summary.input_rows == summary.letters + summary.exceptions
    assert listener.connections == 0
