"""Without HarfBuzz's subsetting library a run still succeeds, and says so in one line, not in
WeasyPrint's warning per chunk and font from every render worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import PATIENTS_CSV, REPO
from pypdf import PdfReader

from pkb_letters.render import font_subsetting
from pkb_letters.render.weasyprint_adapter import harfbuzz_subsetting

# Loaded first by every Python process started with it on PYTHONPATH, render workers included:
# WeasyPrint's lookup of libharfbuzz-subset then fails as on a machine without it.
_HIDE_HARFBUZZ_SUBSET = '''
import cffi.api

_dlopen = cffi.api.FFI.dlopen


def dlopen(self, name, *args, **kwargs):
    if name and "harfbuzz-subset" in str(name):
        raise OSError(f"{name}: hidden by the test")
    return _dlopen(self, name, *args, **kwargs)


cffi.api.FFI.dlopen = dlopen
'''


def _run_without_harfbuzz_subset(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    hiding = tmp_path / "hide-harfbuzz-subset"
    hiding.mkdir()
    (hiding / "sitecustomize.py").write_text(_HIDE_HARFBUZZ_SUBSET, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hiding), os.environ.get("PYTHONPATH")]))}
    command = Path(sys.executable).parent / "pkb-letters"
    return subprocess.run([str(command), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_without_harfbuzz_subset_a_run_succeeds_and_says_so_once(tmp_path):
    # chunks of 2 letters: 4 chunks, each of which made WeasyPrint warn per font
    done = _run_without_harfbuzz_subset(
        tmp_path, "run", str(PATIENTS_CSV), "--sandbox", "--config", str(REPO / "fixtures" / "demo-job.toml"),
        "--chunk-size", "2", "--out", "job")
    assert done.returncode == 0, done.stderr
    about_it = [line for line in done.stderr.splitlines() if "harfbuzz" in line.lower() or "fonttools" in line.lower()]
    assert about_it == [line for line in about_it if font_subsetting.NOTE in line]
    assert len(about_it) == 1, done.stderr
    assert len(PdfReader(tmp_path / "job" / "letters.pdf").pages) == 16


def test_with_harfbuzz_subset_nothing_is_said(caplog):
    assert harfbuzz_subsetting()  # this machine, and CI, have it (.ci/system-deps)
    font_subsetting.note_slow_subsetting.cache_clear()
    font_subsetting.note_slow_subsetting()
    assert font_subsetting.NOTE not in caplog.text
