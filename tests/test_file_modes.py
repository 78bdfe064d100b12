"""Every file a run writes is 0600 and every folder it creates 0700, whatever the umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PATIENTS_CSV

from pkb_letters.files import atomic_writer, make_private_dir

CLI = Path(sys.executable).parent / "pkb-letters"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_a_run_writes_0600_files_in_0700_folders_whatever_the_umask(tmp_path, umask):
    out = tmp_path / "drop" / "2026" / "job"
    result = subprocess.run(
        [CLI, "run", PATIENTS_CSV, "--sandbox", "--out", out], capture_output=True, text=True, timeout=300, umask=umask
    )
    assert result.returncode == 0, result.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"letters.pdf", "manifest.json", "manifest.csv", "exceptions.csv", "job.sqlite"}
    assert {p.name: oct(mode(p)) for p in files} == {p.name: oct(0o600) for p in files}
    for folder in (out, out.parent, out.parent.parent):  # the parents it had to create too
        assert oct(mode(folder)) == oct(0o700), folder


def test_atomic_writer_does_not_inherit_a_left_over_temporary_files_mode(tmp_path):
    target = tmp_path / "manifest.json"
    stale = tmp_path / ".manifest.json.tmp"
    stale.write_text("old")
    os.chmod(stale, 0o666)
    with atomic_writer(target, "w") as handle:
        handle.write("new")
    assert target.read_text() == "new" and oct(mode(target)) == oct(0o600)


def test_make_private_dir_tightens_the_folder_it_is_given(tmp_path):
    out = tmp_path / "job"
    out.mkdir(mode=0o755)
    make_private_dir(out)
    assert oct(mode(out)) == oct(0o700)
