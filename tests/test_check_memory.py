"""The preflight's own process holds what a job of pages needs, whatever the size of the file and manifest.

The file is one letter page, drawn once and copied page after page by the streaming writer, with
a manifest of as many one-page letters that all pass: so what the check keeps can only be what it
plans and reads, not problems. Python's allocations are traced (tracemalloc), as in test_streaming.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfReader
from traced import traced_peak
from weasyprint import HTML

from pkb_letters import check, pdfstream
from pkb_letters.check import check_files
from pkb_letters.manifest import stream_manifest

PAGES = 1_000
JOB = 125  # pages a job, so that the smaller file is already several jobs
# bytes. Holding the manifest and every page's checks whole (as the check did before it streamed) grows
# by about 9 MB from PAGES to 4 * PAGES; streamed, by about 70 KB of warming up, then not at all.
GROWTH_BOUND = 150_000
NAME, ADDRESS = "Ann Example", ["1 High Street", "NEWCASTLE", "NE1 1XC"]
PAGE = ("<style>@page { size: A4; margin: 0 } body { margin: 0; color: device-cmyk(0 0 0 1); font: 10pt sans-serif }"
        " div { position: absolute }</style>"
        f"<div style='left: 30mm; top: 45mm'>{NAME}<br>{'<br>'.join(ADDRESS)}</div>"
        "<div style='left: 20mm; top: 100mm'>Dear Ann, your codes are below.</div>")


@pytest.fixture(scope="module")
def letter_page() -> PdfReader:
    return PdfReader(io.BytesIO(HTML(string=PAGE).write_pdf()))


def print_job(folder: Path, letter_page: PdfReader, pages: int) -> tuple[Path, Path]:
    """A print file of `pages` one-page letters, unmarked, and its manifest."""
    folder.mkdir()
    with (folder / "letters.pdf").open("wb") as handle:
        writer = pdfstream.StreamingPdfWriter(handle)
        copier = pdfstream.ObjectCopier(letter_page, writer)  # the page's font and content are written once
        for _ in range(pages):
            writer.add_page(letter_page.pages[0], copier)
        writer.close({}, {})
    job = {"id": "PKB-20300101-ABCDEF", "pages": pages, "print": {"duplex": False, "marks": "none"},
           "files": [{"name": "letters.pdf", "pages": pages}]}
    letters = ({"sequence": n, "piece_id": f"PKB-20300101-ABCDEF-{n:06d}", "file": "letters.pdf", "first_page": n,
                "page_count": 1, "input_row": n + 1, "name": NAME, "address_lines": ADDRESS, "postcode": ADDRESS[-1],
                "codes_expire": "2030-03-12", "codes_reissued": "", "postage": "uk", "sheet_count": 1,
                "postage_class": "second", "marks": []} for n in range(1, pages + 1))
    stream_manifest(folder, job, letters)
    return folder / "letters.pdf", folder / "manifest.json"



def test_the_check_s_peak_memory_does_not_grow_with_the_file_and_its_manifest(tmp_path, letter_page, monkeypatch):
    monkeypatch.setattr(check, "_MAX_PAGES_PER_JOB", JOB)
    peaks = []
    for pages in (PAGES, 4 * PAGES):
        pdf, manifest = print_job(tmp_path / str(pages), letter_page, pages)
        peak, report = traced_peak(lambda pdf=pdf, manifest=manifest: check_files([pdf], manifest))
        assert report.ok and report.pages == pages, report.text(limit=5)
        peaks.append(peak)
    assert peaks[1] - peaks[0] < GROWTH_BOUND, peaks
