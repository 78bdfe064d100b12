"""A normal install works: a wheel built from the checkout, installed into a fresh virtual
environment, runs the demo job, a preview and a list check from a folder far from the checkout,
with the template, fonts, sandbox data and demo job it ships with."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import REPO
from pypdf import PdfReader

SHIPPED = [
    "pkb_letters/templates/invitation/letter.html",
    "pkb_letters/templates/invitation/letter.css",
    "pkb_letters/templates/invitation/logo.svg",
    "pkb_letters/templates/invitation/fonts/LiberationSans-Regular.ttf",
    "pkb_letters/templates/invitation/fonts/LiberationSans-Bold.ttf",
    "pkb_letters/templates/invitation/fonts/LiberationMono-Bold.ttf",
    "pkb_letters/templates/invitation/fonts/LICENSE-Liberation.txt",
    "pkb_letters/fixtures/sandbox.json",
    "pkb_letters/fixtures/patients.csv",
    "pkb_letters/fixtures/demo-job.toml",
    "pkb_letters/fixtures/mailmark.toml",
    "pkb_letters/assemble/profiles/pkb-letters-fogra39.icc",
]
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "out", "*.egg-info", "__pycache__",
                                     ".pytest_cache")


class Installed:
    """The wheel, and a fresh virtual environment it is installed in, outside the checkout."""

    def __init__(self, wheel: Path, env_dir: Path) -> None:
        self.wheel = wheel
        self.env_dir = env_dir
        self.command = env_dir / "bin" / "pkb-letters"

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess:
        # Nothing of the checkout on the path: only what the wheel installed can be imported.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return subprocess.run([str(self.command), *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=600)

    def python(self, code: str, cwd: Path) -> str:
        done = subprocess.run([str(self.env_dir / "bin" / "python"), "-c", code], cwd=cwd, capture_output=True,
                              text=True, check=True, timeout=120)
        return done.stdout.strip()


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    # Build from a copy, so the build leaves nothing in the checkout.
    source = tmp_path_factory.mktemp("source") / "pkb-letters"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCE)
    wheels = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
                   check=True, capture_output=True, timeout=600)
    [wheel] = wheels.glob("pkb_letters-*.whl")
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.create(env_dir, with_pip=True)
    subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=900)
    return Installed(wheel, env_dir)


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def _pages(pdf: Path) -> int:
    return len(PdfReader(pdf).pages)


def test_the_wheel_ships_the_template_fonts_sandbox_data_and_demo_job(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert [name for name in SHIPPED if name not in names] == []
    # test lists and the template authors' README stay in the checkout
    assert not [name for name in names if "/rules/" in name or name.endswith("templates/README.md")]


def test_the_installed_command_reads_its_files_from_the_installed_package(installed, elsewhere):
    where = installed.python("from pkb_letters import packaged; print(packaged.DEFAULT_TEMPLATE); "
                             "print(packaged.SANDBOX_DATA)", elsewhere)
    for path in where.splitlines():
        assert Path(path).is_relative_to(installed.env_dir), path
        assert not Path(path).is_relative_to(REPO), path


def test_the_demo_command_runs_the_shipped_demo_job(installed, elsewhere):
    done = installed.run("demo", "--out", "demo-out", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert "check: 15 rows = 8 letters + 7 exceptions" in done.stdout
    assert "WARNING" not in done.stderr, done.stderr
    assert _pages(elsewhere / "demo-out" / "letters.pdf") == 16
    assert (elsewhere / "demo-out" / "exceptions.csv").is_file()


def test_preview_renders_samples_with_the_shipped_template(installed, elsewhere):
    done = installed.run("preview", "--samples", "2", "--out", "preview-out", cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _pages(elsewhere / "preview-out" / "preview.pdf") >= 2


def test_validate_checks_the_shipped_demo_list_with_the_shipped_template(installed, elsewhere):
    shipped = installed.python("from pkb_letters import packaged; print(packaged.DEMO_PATIENTS)", elsewhere)
    patients = shutil.copy(shipped, elsewhere / "patients.csv")
    done = installed.run("validate", str(patients), "--out", "checked", cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Checked 15 rows" in done.stdout
    exceptions = (elsewhere / "checked" / "exceptions.csv").read_text(encoding="utf-8")
    assert "address-too-wide" in exceptions


def test_run_with_the_default_sandbox_data_works_from_any_folder(installed, elsewhere):
    done = installed.run("run", str(REPO / "fixtures" / "patients.csv"), "--sandbox", "--out", "run-out",
                         "--stop-after", "resolve", cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
