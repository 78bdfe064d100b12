"""Rendering on a real Dask cluster: the same letters as a local run, through a killed worker
and a lost scheduler.

One synthetic job is taken as far as its codes once; each test renders a copy of that job
folder, so every run prints the same job id, date and code pairs, and its output can be
compared byte for byte with the local run's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import distributed
import pytest
from click.testing import CliRunner
from pypdf import PdfReader

import pkb_letters
from pkb_letters.cli import main
from pkb_letters.config import (
    DEFAULT_TEMPLATE,
    SANDBOX_JOIN_URL,
    JobSettings,
    LetterSettings,
    executor_setting,
    sandbox_connection,
)
from pkb_letters.envelope import C5
from pkb_letters.errors import ConfigError, RenderClusterError, UnsafeTemplateError
from pkb_letters.job.journal import Journal
from pkb_letters.job.pipeline import run_job
from pkb_letters.records import CodePair, PatientRow
from pkb_letters.render import dask_executor
from pkb_letters.render.chunks import ChunkTask, RenderSpec
from pkb_letters.render.dask_executor import DaskExecutor
from pkb_letters.render.template_bundle import TemplateBundle
from pkb_letters.render.template_fetcher import TemplateFolderFetcher
from pkb_letters.sandbox import SandboxServer, load_sandbox_data
from pkb_letters.sandbox.synthetic import write_synthetic_job

PATIENTS = 24
CHUNK_SIZE = 3
DASK_BIN = Path(sys.executable).parent / "dask"
LOOPBACK_ANY_PORT = "127.0.0.1:0"  # the scheduler's HTTP endpoints: never on 8787, which another cluster may hold


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=LOOPBACK_ANY_PORT) as c:
        yield c


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """A job folder whose codes are issued and nothing rendered yet, and the sandbox that issued them."""
    base = tmp_path_factory.mktemp("dask")
    synthetic = write_synthetic_job(base / "input", PATIENTS)
    with SandboxServer(load_sandbox_data(synthetic.sandbox_json)) as server:
        job = Job(synthetic.patients_csv, sandbox_connection(server), base / "coded")
        run_job(job.settings(job.folder), job.connection, stop_after="codes")
        yield job


class Job:
    def __init__(self, patients: Path, connection, folder: Path) -> None:
        self.patients, self.connection, self.folder = patients, connection, folder

    def settings(self, out_dir: Path, executor: str = "local", share_layout: bool = True) -> JobSettings:
        letter = LetterSettings(organisation="Synthetic NHS Trust", join_url=SANDBOX_JOIN_URL)
        return JobSettings(patients=self.patients, out_dir=out_dir, letter=letter, chunk_size=CHUNK_SIZE,
                           workers=2, executor=executor, share_layout=share_layout)

    def render(self, out_dir: Path, executor: str = "local", share_layout: bool = True):
        """Render a copy of the coded job folder."""
        shutil.copytree(self.folder, out_dir)
        return run_job(self.settings(out_dir, executor, share_layout), self.connection)


@pytest.fixture(scope="module")
def local_run(coded, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("local") / "job"
    coded.render(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def local_full_run(coded, tmp_path_factory):
    """Every letter laid out in full: slow enough a chunk that a test can kill what renders it mid-job
    (stamped, a warm worker renders the whole job before the first chunk is placed)."""
    out_dir = tmp_path_factory.mktemp("local-full") / "job"
    coded.render(out_dir, share_layout=False)
    return out_dir


def dask_url(address: str) -> str:
    return "dask://" + address.removeprefix("tcp://")


def assert_same_output(out_dir: Path, local_dir: Path) -> None:
    """Same pieces, pages and marks in the manifest; the same content on every page, in order."""
    ours, theirs = (json.loads((d / "manifest.json").read_text()) for d in (out_dir, local_dir))
    assert ours["letters"] == theirs["letters"]
    assert len(ours["letters"]) == PATIENTS
    # each run writes its own dates and document id into the file's metadata, compressed: a byte or two
    # either way in its size, and another digest
    assert [{k: v for k, v in f.items() if k not in ("sha256", "bytes")} for f in ours["job"]["files"]] == \
        [{k: v for k, v in f.items() if k not in ("sha256", "bytes")} for f in theirs["job"]["files"]]
    ours_pdf, theirs_pdf = PdfReader(out_dir / "letters.pdf"), PdfReader(local_dir / "letters.pdf")
    assert len(ours_pdf.pages) == len(theirs_pdf.pages) == ours["job"]["pages"]
    for number, (mine, local) in enumerate(zip(ours_pdf.pages, theirs_pdf.pages, strict=True), 1):
        assert mine.get_contents().get_data() == local.get_contents().get_data(), f"page {number} differs"


def placed_letters(out_dir: Path) -> int:
    path = out_dir / "job.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM rows WHERE stage = 'placed'").fetchone()[0]
    except sqlite3.Error:
        return 0


def after_first_chunk(out_dir: Path, action, timeout: float = 120) -> threading.Thread:
    """Run `action()` in a thread once the job in `out_dir` has placed its first chunk."""
    def wait_then_act() -> None:
        deadline = time.monotonic() + timeout
        while placed_letters(out_dir) < CHUNK_SIZE and time.monotonic() < deadline:
            time.sleep(0.02)
        action()

    thread = threading.Thread(target=wait_then_act, daemon=True)
    thread.start()
    return thread


def test_a_job_rendered_on_the_cluster_matches_a_local_run(coded, local_run, cluster, tmp_path):
    summary = coded.render(tmp_path / "job", dask_url(cluster.scheduler_address))
    assert summary.letters == PATIENTS and summary.exceptions == 0
    assert_same_output(tmp_path / "job", local_run)


def kill_a_worker_with_chunks(client: distributed.Client, killed: list, timeout: float = 30) -> None:
    """SIGKILL the first worker seen holding chunks; note the chunks it held in `killed`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker, keys in client.processing().items():
            chunks = [key for key in keys if str(key).startswith("pkb-chunk-")]
            if chunks:
                os.kill(client.run(os.getpid, workers=[worker])[worker], signal.SIGKILL)
                killed.extend(chunks)
                return
        time.sleep(0.01)


def test_a_chunk_whose_worker_is_killed_mid_job_is_rendered_again(coded, local_full_run, cluster, tmp_path):
    out_dir = tmp_path / "job"
    killed: list = []
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as watcher:
        thread = after_first_chunk(out_dir, lambda: kill_a_worker_with_chunks(watcher, killed))
        summary = coded.render(out_dir, dask_url(cluster.scheduler_address), share_layout=False)
        thread.join(30)
        watcher.wait_for_workers(2, timeout=60)  # the nanny has started a new worker: for the next test
    assert killed, "no worker was killed: the job finished first"
    assert placed_letters(out_dir) == summary.letters == PATIENTS
    assert_same_output(out_dir, local_full_run)
    for key in killed:  # each chunk the killed worker held was sent to a worker again
        sent = [entry for entry in cluster.scheduler.story(key) if entry[2] == "processing"]
        assert len(sent) >= 2, cluster.scheduler.story(key)


@pytest.fixture
def own_scheduler(tmp_path):
    """A scheduler and one worker in processes of their own, so the test can kill the scheduler."""
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(Path(pkb_letters.__file__).parents[1])}
    common = ["--no-dashboard"]
    scheduler = subprocess.Popen([str(DASK_BIN), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--dashboard-address", LOOPBACK_ANY_PORT, "--scheduler-file", str(scheduler_file),
                                  *common],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([str(DASK_BIN), "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                               "--nworkers", "1", *common], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, "the Dask scheduler did not start"
            time.sleep(0.1)
        yield scheduler, json.loads(scheduler_file.read_text())["address"]
    finally:
        for process in (worker, scheduler):
            process.kill()
            process.wait(30)


def test_losing_the_scheduler_stops_the_job_clearly_and_a_rerun_finishes_it(coded, local_full_run, own_scheduler,
                                                                            tmp_path):
    scheduler, address = own_scheduler
    out_dir = tmp_path / "job"
    thread = after_first_chunk(out_dir, scheduler.kill)
    started = time.monotonic()
    with pytest.raises(RenderClusterError, match="lost the Dask scheduler"):
        coded.render(out_dir, dask_url(address), share_layout=False)
    assert time.monotonic() - started < 60  # an error, not a hang
    thread.join(10)
    assert 0 < placed_letters(out_dir) < PATIENTS
    with Journal.in_dir(out_dir) as journal:  # `status` tells the operator why the job stopped
        assert "lost the Dask scheduler" in journal.events.of_kind("stopped")[-1]["detail"]
    summary = run_job(coded.settings(out_dir, share_layout=False), coded.connection)  # resumes from the last chunk
    assert summary.resumed and summary.letters == PATIENTS
    assert_same_output(out_dir, local_full_run)


def test_an_unreachable_scheduler_is_a_clear_error(coded, tmp_path, unused_port):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        with pytest.raises(RenderClusterError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{unused_port}"):
            coded.render(tmp_path / "job", f"dask://127.0.0.1:{unused_port}")


def test_a_scheduler_without_workers_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(dask_executor, "WORKER_WAIT_SECONDS", 1)
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=LOOPBACK_ANY_PORT) as empty:
        with pytest.raises(RenderClusterError, match="has no workers"):
            DaskExecutor(spec_for(DEFAULT_TEMPLATE), empty.scheduler_address)


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the template travels as bytes ---------------------------------------------------------------


def test_a_template_bundle_is_written_out_as_the_same_folder_once_per_process(tmp_path):
    template = tmp_path / "branded"
    shutil.copytree(DEFAULT_TEMPLATE, template)
    (template / "images").mkdir()
    (template / "images" / "sig.svg").write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    (template / "passwords.txt").symlink_to("/etc/passwd")

    bundle = TemplateBundle.read(template)
    copy = bundle.materialise()
    assert copy.name == "branded" and copy != template
    assert bundle.materialise() == copy
    originals = sorted(p.relative_to(template) for p in template.rglob("*"))
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == originals
    for inside in originals:
        if (template / inside).is_symlink():
            assert os.readlink(copy / inside) == os.readlink(template / inside)
        elif (template / inside).is_file():
            assert (copy / inside).read_bytes() == (template / inside).read_bytes()
    # a link out of the folder is refused on a worker as it is here
    assert TemplateFolderFetcher(copy).problem((copy / "passwords.txt").as_uri()) == "it is outside the template folder"


def one_chunk(name: str = "Amelia") -> ChunkTask:
    patient = PatientRow(2, "REF-1", "4000000004", "Ms", name, "Smith", dt.date(1980, 1, 1),
                         ("1 High Street", "LEEDS", "LS6 1BN"), "LS6 1BN")
    return ChunkTask(1, 1, ((patient, CodePair("INVITE1234", "ACCESS1234", dt.date(2030, 1, 1))),))


def spec_for(template: Path) -> RenderSpec:
    return RenderSpec("PKB-20300101-TEST", template, LetterSettings(join_url=SANDBOX_JOIN_URL), C5)


def test_workers_lay_out_letters_from_the_bundle_not_the_folder(cluster, tmp_path):
    template = tmp_path / "invitation"
    shutil.copytree(DEFAULT_TEMPLATE, template)
    executor = DaskExecutor(spec_for(template), cluster.scheduler_address)
    try:
        shutil.rmtree(template)  # gone from this machine once the job started: the workers have their copy
        outcome = executor.submit(one_chunk()).result(60)
    finally:
        executor.close()
    assert outcome.pdf is not None and len(outcome.letters) == 1 and not outcome.refused


def test_what_a_chunk_raises_on_a_worker_is_raised_here_and_not_logged_there(cluster, tmp_path):
    template = tmp_path / "sly"
    shutil.copytree(DEFAULT_TEMPLATE, template)
    html = (template / "letter.html").read_text(encoding="utf-8")
    assert "</main>" in html
    (template / "letter.html").write_text(
        html.replace("</main>", "<p>{{ (patient.first_name | attr('_' ~ '_class__')).x }}</p></main>"),
        encoding="utf-8")
    executor = DaskExecutor(spec_for(template), cluster.scheduler_address)
    try:
        with pytest.raises(UnsafeTemplateError, match="access to attribute '__class__'"):
            executor.submit(one_chunk("Zebedee")).result(60)
    finally:
        executor.close()
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        logs = "\n".join(line for lines in client.get_worker_logs().values() for _, line in lines)
    assert "Zebedee" not in logs and "4000000004" not in logs and "Compute Failed" not in logs


# --- settings and the command line ---------------------------------------------------------------


@pytest.mark.parametrize(("cli", "job", "expected"), [
    (None, {}, "local"),
    ("local", {"render": {"executor": "dask://cluster:8786"}}, "local"),
    (None, {"render": {"executor": "dask://cluster:8786"}}, "dask://cluster:8786"),
    ("dask+tls://10.0.0.5:8786", {}, "dask+tls://10.0.0.5:8786"),
])
def test_the_executor_comes_from_the_command_line_then_the_job_file(cli, job, expected):
    assert executor_setting(job, cli) == expected


@pytest.mark.parametrize("bad", ["dask", "dask://cluster", "tcp://cluster:8786", "dask://cluster:port",
                                 "dask://cluster:8786/path", "processes"])
def test_an_executor_that_is_neither_local_nor_a_scheduler_is_refused(bad):
    with pytest.raises(ConfigError, match="neither 'local' nor dask://HOST:PORT"):
        executor_setting({}, bad)


def test_the_command_line_refuses_a_bad_executor_before_any_work(tmp_path):
    result = CliRunner().invoke(main, ["run", str(Path(__file__).parents[2] / "fixtures" / "patients.csv"),
                                       "--out", str(tmp_path / "job"), "--sandbox", "--executor", "dask://nowhere"])
    assert result.exit_code == 2, result.output
    assert "neither 'local' nor dask://HOST:PORT" in result.output
    assert not (tmp_path / "job").exists()


def test_the_command_line_renders_where_executor_says_and_a_cluster_it_cannot_reach_exits_4(tmp_path, unused_port):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        result = CliRunner().invoke(main, ["run", str(Path(__file__).parents[2] / "fixtures" / "patients.csv"),
                                           "--out", str(tmp_path / "job"), "--sandbox",
                                           "--executor", f"dask://127.0.0.1:{unused_port}"])
    assert result.exit_code == 4, result.output
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{unused_port}" in result.output
    assert "run the same command again to resume it" in result.output  # its codes are kept in the journal


def test_the_default_install_does_not_import_dask():
    code = ("import sys, pkb_letters.cli, pkb_letters.job.pipeline; "
            "found = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]; "
            "sys.exit(f'imported {found}' if found else 0)")
    env = {**os.environ, "PYTHONPATH": str(Path(pkb_letters.__file__).parents[1])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
