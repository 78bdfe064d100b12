"""The preflight's own process holds what a job of pages needs, whatever the size of the file and manifest.

The file is one letter page, drawn once and copied page after page by the streaming writer, with
a manifest of as many one-page letters that all pass: so what the check keeps can only be what it
plans and reads, not problems. Python's allocations are traced (tracemalloc), as in test_streaming.
"""

from __future__ import annotations

import pytest
from pypdf import PdfReader
from traced import traced_peak

from pkb_letters.check import page_facts, print_check
from pkb_letters.check.print_check import check_files
from pkb_letters.sandbox.synthetic import synthetic_letter_page, write_synthetic_print_job

PAGES = 1_000
JOB = 125  # pages a job, so that the smaller file is already several jobs
# bytes. Holding the manifest and every page's checks whole (as the check did before it streamed) grows
# by about 9 MB from PAGES to 4 * PAGES; streamed, by about 70 KB of warming up, then not at all.
GROWTH_BOUND = 150_000


@pytest.fixture(scope="module")
def letter_page() -> PdfReader:
    return synthetic_letter_page()


# read by qpdf, as files of this size are; and an object at a time by pypdf, whose objects are Python's (traced)
@pytest.mark.parametrize("lazy_from", [page_facts.LAZY_FROM_OBJECTS, 0], ids=["qpdf", "object-by-object"])
def test_the_check_s_peak_memory_does_not_grow_with_the_file_and_its_manifest(tmp_path, letter_page, monkeypatch,
                                                                               lazy_from):
    monkeypatch.setattr(print_check, "_MAX_PAGES_PER_JOB", JOB)
    monkeypatch.setattr(page_facts, "LAZY_FROM_OBJECTS", lazy_from)
    peaks = []
    for pages in (PAGES, 4 * PAGES):
        (tmp_path / str(pages)).mkdir()
        pdf, manifest = write_synthetic_print_job(tmp_path / str(pages), pages, letter_page)
        peak, report = traced_peak(lambda pdf=pdf, manifest=manifest: check_files([pdf], manifest))
        assert report.ok and report.pages == pages, report.text(limit=5)
        peaks.append(peak)
    assert peaks[1] - peaks[0] < GROWTH_BOUND, peaks
