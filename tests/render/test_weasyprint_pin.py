"""The fast render path (shared layout, stamping) runs only on the WeasyPrint it was tested on.

One demo job is taken as far as its codes; each test renders a copy of it, so every run prints
the same job id, date and code pairs. The version check is made to see another WeasyPrint in this
process only: the render workers, spawned afresh, see the installed one, so a job whose decision
did not travel with its render settings would stamp there.
"""

from __future__ import annotations

import logging
import re
import shutil
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import (
    EXPECTED_EXCLUSIONS,
    EXPECTED_LETTERS,
    REPO,
    connection_to,
    demo_settings,
    no_weasyprint_warnings,
)
from pdf_inspect import page_texts

from pkb_letters.cli import main
from pkb_letters.config import DEFAULT_TEMPLATE, LetterSettings
from pkb_letters.envelope import C5
from pkb_letters.fit.stage import fit_spec
from pkb_letters.job.pipeline import run_job
from pkb_letters.render import weasyprint_adapter as wp
from pkb_letters.render.chunks import ChunkRenderer, LetterTemplate

CHUNK_SIZE = 3  # the demo's letters in three chunks, so two worker processes render them
UNTESTED = "71.0"
FULL_LAYOUT = "every letter laid out in full"


def see_untested_weasyprint(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = wp.installed_version
    monkeypatch.setattr(wp, "installed_version",
                        lambda package: UNTESTED if package == "weasyprint" else installed(package))


@pytest.fixture(scope="module")
def coded(sandbox, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pin") / "coded"
    with no_weasyprint_warnings():  # module fixtures run outside the per-test guard
        run_job(demo_settings(out, "fhir"), connection_to(sandbox), stop_after="codes")
    return out


def render_copy(coded: Path, out_dir: Path, sandbox):
    shutil.copytree(coded, out_dir)
    return run_job(demo_settings(out_dir, "fhir", chunk_size=CHUNK_SIZE, workers=2), connection_to(sandbox))


def test_the_pinned_weasyprint_is_the_installed_one():
    assert wp.untested() == []
    assert wp.check().fast_path


def test_pyproject_pins_the_tested_versions():
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    pins = dict(re.fullmatch(r"([\w-]+)==([\w.]+)", d).groups() for d in dependencies if "==" in d)
    for package, tested in wp.TESTED_VERSIONS.items():
        assert (pins.get(package),) == tested, package


def test_an_untested_weasyprint_lays_every_letter_out_in_full_with_the_same_text(
        coded, sandbox, tmp_path, monkeypatch, caplog):
    stamped = render_copy(coded, tmp_path / "stamped", sandbox)
    assert stamped.full_layout == ""
    assert stamped.shared_letters == len(EXPECTED_LETTERS)
    assert stamped.stamped_letters > 0

    see_untested_weasyprint(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="pkb_letters"):
        full = render_copy(coded, tmp_path / "full", sandbox)
    tested = ", ".join(wp.TESTED_VERSIONS["weasyprint"])
    assert f"weasyprint {UNTESTED} (tested: {tested})" in full.full_layout
    assert FULL_LAYOUT in full.full_layout
    assert (full.shared_letters, full.stamped_letters) == (0, 0)
    assert full.letters == stamped.letters == len(EXPECTED_LETTERS)
    assert [r.getMessage() for r in caplog.records].count(f"render: {full.full_layout}") == 1
    assert page_texts(tmp_path / "full" / "letters.pdf") == page_texts(tmp_path / "stamped" / "letters.pdf")


def test_the_run_summary_says_once_that_letters_were_laid_out_in_full(coded, tmp_path, monkeypatch):
    see_untested_weasyprint(monkeypatch)
    out_dir = tmp_path / "job"
    shutil.copytree(coded, out_dir)
    result = CliRunner().invoke(main, ["run", str(demo_settings(out_dir, "fhir").patients), "--out", str(out_dir),
                                       "--sandbox"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "(resumed)" in result.output  # the coded job's letters, rendered under the untested version
    assert result.output.count(FULL_LAYOUT) == 1
    assert f"  layout: {FULL_LAYOUT}" in result.output


def test_the_address_fit_reuses_no_shapes_on_an_untested_weasyprint(monkeypatch):
    see_untested_weasyprint(monkeypatch)
    renderer = ChunkRenderer(LetterTemplate(DEFAULT_TEMPLATE), LetterSettings(), C5)
    assert not renderer.share_layout
    assert not fit_spec(renderer).share_layout  # what the fit's worker processes are told


def test_an_untested_weasyprint_still_refuses_an_address_too_wide(sandbox, tmp_path, monkeypatch):
    see_untested_weasyprint(monkeypatch)
    summary = run_job(demo_settings(tmp_path / "job", "fhir"), connection_to(sandbox), stop_after="codes")
    assert FULL_LAYOUT in summary.full_layout
    assert summary.by_reason.get("address-too-wide") == list(EXPECTED_EXCLUSIONS.values()).count("address-too-wide")
