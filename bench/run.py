"""Benchmark: a made-up list of any size through the real pipeline, per-stage figures out.

    .venv/bin/python bench/run.py --letters 5000                # the whole job, FHIR route
    .venv/bin/python bench/run.py --letters 100000 --stop-after codes --latency-ms 25
    .venv/bin/python bench/run.py --letters 20000 --api rest --stop-after codes --latency-ms 25 --concurrency 32
    .venv/bin/python bench/run.py --letters 300 --executor dask-local   # render on a LocalCluster of --workers
    .venv/bin/python bench/run.py --letters 10000 --no-typst            # without the Typst reference

The PKB sandbox runs in its own process (as PKB would), so its work is not counted
against the job. The job runs in this process and its render workers; memory is the
peak of their resident sizes added together, sampled every 50 ms ("main MiB": this process's alone). Each figure is the
median over `--repeat` runs; the machine is shared, so read ratios, not single numbers.
Prints a table, and the same figures as JSON with `--json FILE`.

After the job's runs, the Typst reference of issue 22 (bench/typst_reference.py: our letter laid out by
Typst on one core) makes min(--letters, --typst-letters) letters, --repeat times, and the table ends
with our whole-job rate, Typst's one-core rate and their ratio. It needs the `bench` extra:
`pip install -e '.[test,bench]'` (typst, segno; py-spy for profiling); `--no-typst` leaves it out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pkb_letters.config import PkbConnection

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

import typst_reference  # noqa: E402  (bench/, the script's own folder)
from process_memory import process_tree, resident_bytes  # noqa: E402

# pkb_letters is imported inside the functions that use it, not here: each render and check worker
# runs this script again when it starts (spawn), and should import only what it uses, as it does
# under the `pkb-letters` command (see pkb_letters.console)


@dataclass
class StageTimes:
    """A `Progress` that records how long each stage took and how many items it had."""

    seconds: dict[str, float] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    peak_bytes: dict[str, int] = field(default_factory=dict)  # all the job's processes, during the stage
    main_peak_bytes: dict[str, int] = field(default_factory=dict)  # this process alone, during the stage
    memory: TreeMemory | None = None

    @contextlib.contextmanager
    def stage(self, label: str, total: int) -> Iterator:
        started = time.perf_counter()
        if self.memory:
            self.memory.stage_peak = self.memory.main_stage_peak = 0
        yield lambda n: None
        self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started
        self.items[label] = self.items.get(label, 0) + total
        if self.memory:
            self.peak_bytes[label] = max(self.peak_bytes.get(label, 0), self.memory.stage_peak)
            self.main_peak_bytes[label] = max(self.main_peak_bytes.get(label, 0), self.memory.main_stage_peak)


class TreeMemory:
    """Peak of the summed resident memory of this process and its descendants (not the sandbox)."""

    def __init__(self, exclude: int) -> None:
        self.exclude = exclude
        self.peak = 0
        self.stage_peak = 0
        self.main_stage_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            me = os.getpid()
            main = resident_bytes(me)
            now = main + sum(resident_bytes(pid) for pid in process_tree(me) if pid not in (me, self.exclude))
            self.peak, self.stage_peak = max(self.peak, now), max(self.stage_peak, now)
            self.main_stage_peak = max(self.main_stage_peak, main)



@contextlib.contextmanager
def sandbox_process(data: Path, latency_ms: int) -> Iterator[tuple[PkbConnection, int]]:
    from pkb_letters.config import PkbConnection
    from pkb_letters.sandbox.synthetic import CLIENT_ID, CLIENT_SECRET, ORGANISATION_ID

    port = _free_port()
    command = [str(Path(sys.executable).parent / "pkb-letters"), "sandbox", "--port", str(port), "--data", str(data),
               "--latency-ms", str(latency_ms)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
    try:
        process.stdout.readline()  # "PKB sandbox listening on ..."
        url = f"http://127.0.0.1:{port}"
        yield PkbConnection(token_url=url + "/oauth/token", rest_base=url + "/json", fhir_base=url + "/fhir",
                            client_id=CLIENT_ID, org_id=ORGANISATION_ID, client_secret=CLIENT_SECRET), process.pid
    finally:
        process.terminate()
        process.wait(10)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def render_executor(args) -> Iterator[str]:
    """The job's executor setting; for `dask-local`, a Dask LocalCluster of `--workers` processes
    (one thread each), started before the timing and counted in the memory figure."""
    if args.executor != "dask-local":
        yield args.executor
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=args.workers, processes=True, threads_per_worker=1,
                      dashboard_address="127.0.0.1:0") as cluster:
        yield "dask://" + cluster.scheduler_address.removeprefix("tcp://")


def one_run(args, synthetic, work: Path, executor: str) -> dict:
    from pkb_letters.assemble.print_options import PrintOptions
    from pkb_letters.config import SANDBOX_JOIN_URL, JobSettings, LetterSettings
    from pkb_letters.job.pipeline import run_job

    out_dir = work / "job"
    shutil.rmtree(out_dir, ignore_errors=True)
    letter = LetterSettings(organisation="Synthetic NHS Trust", join_url=SANDBOX_JOIN_URL)
    settings = JobSettings(patients=synthetic.patients_csv, out_dir=out_dir, api=args.api, letter=letter,
                           concurrency=args.concurrency, chunk_size=args.chunk_size, workers=args.workers,
                           share_layout=not args.full_layout,
                           executor=executor)
    times = StageTimes()
    with sandbox_process(synthetic.sandbox_json, args.latency_ms) as (connection, sandbox_pid):
        with TreeMemory(exclude=sandbox_pid) as memory:
            times.memory = memory
            started = time.perf_counter()
            summary = run_job(settings, connection, times, print_options=PrintOptions(), stop_after=args.stop_after)
            total = time.perf_counter() - started
    letters = summary.letters if args.stop_after is None else 0
    pdf_bytes = sum(p.stat().st_size for p in out_dir.glob("*.pdf"))
    return {"seconds": times.seconds, "items": times.items, "total_seconds": total, "letters": letters,
            "peak_rss_bytes": memory.peak, "stage_peak_bytes": times.peak_bytes,
            "main_peak_bytes": times.main_peak_bytes, "pdf_bytes": pdf_bytes,
            "stamped_letters": summary.stamped_letters, "shared_letters": summary.shared_letters}


def summarise(runs: list[dict], args) -> dict:
    stages = list(runs[0]["seconds"])
    result = {"letters_requested": args.letters, "api": args.api, "latency_ms": args.latency_ms,
              "workers": args.workers, "chunk_size": args.chunk_size, "executor": args.executor,
              "repeat": len(runs), "stages": {}}
    for stage in stages:
        seconds = statistics.median(r["seconds"][stage] for r in runs)
        items = runs[0]["items"][stage]
        peak = statistics.median(r["stage_peak_bytes"].get(stage, 0) for r in runs)
        main = statistics.median(r["main_peak_bytes"].get(stage, 0) for r in runs)
        result["stages"][stage] = {"items": items, "seconds": round(seconds, 3),
                                   "per_second": round(items / seconds, 1) if seconds else None,
                                   "peak_rss_mib": round(peak / 2**20, 1),
                                   "main_process_rss_mib": round(main / 2**20, 1)}
    result["total_seconds"] = round(statistics.median(r["total_seconds"] for r in runs), 3)
    result["peak_rss_mib"] = round(statistics.median(r["peak_rss_bytes"] for r in runs) / 2**20, 1)
    letters = runs[0]["letters"]
    result["letters"] = letters
    if letters:
        render_to_checked = sum(result["stages"][s]["seconds"] for s in ("render", "assemble", "check")
                                if s in result["stages"])
        result["render_to_checked_per_second"] = round(letters / render_to_checked, 1)
        result["bytes_per_letter"] = round(statistics.median(r["pdf_bytes"] for r in runs) / letters)
        result["stamped_letters"] = runs[0]["stamped_letters"]
        result["shared_letters"] = runs[0]["shared_letters"]
    return result


def table(result: dict) -> str:
    lines = [f"{'stage':<10} {'items':>8} {'seconds':>9} {'per second':>11} {'peak MiB':>9} {'main MiB':>9}"]
    for stage, figures in result["stages"].items():
        rate = figures["per_second"] or 0
        lines.append(f"{stage:<10} {figures['items']:>8} {figures['seconds']:>9.2f} {rate:>11.1f} "
                     f"{figures['peak_rss_mib']:>9.0f} {figures['main_process_rss_mib']:>9.0f}")
    lines.append(f"whole job ({result['executor']} executor, {result['workers']} workers): "
                 f"{result['total_seconds']:.2f} s, "
                 f"peak memory (all processes) {result['peak_rss_mib']} MiB")
    if result["letters"]:
        lines.append(f"render + assemble + check: {result['render_to_checked_per_second']} letters/s; "
                     f"{result['bytes_per_letter']} bytes per letter ({result['letters']} letters)")
        laid_out = result["letters"] - result["stamped_letters"]
        lines.append(f"letters stamped into a prototype {result['stamped_letters']}, laid out {laid_out} "
                     f"(of them on the shared layer {result['shared_letters']})")
    if "typst" in result:
        lines.append(typst_reference.describe(result["typst"]))
        lines.append(f"whole job {result['per_second']} letters/s, Typst on one core {result['typst']['per_second']} "
                     f"letters/s: ours / Typst = {result['ours_over_typst']}")
    return "\n".join(lines)


def compare_with_typst(result: dict, args) -> None:
    """Add the Typst reference, measured now, and our whole-job rate beside it."""
    typst = typst_reference.measure(min(args.letters, args.typst_letters), runs=args.repeat)
    result["per_second"] = round(result["letters"] / result["total_seconds"], 1)
    result["typst"] = typst
    result["ours_over_typst"] = round(result["per_second"] / typst["per_second"], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--letters", type=int, default=2000)
    parser.add_argument("--api", choices=("fhir", "rest"), default="fhir")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--chunk-size", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--executor", default="local", metavar="local|dask-local|dask://HOST:PORT",
                        help="Where chunks are rendered; dask-local starts a LocalCluster of --workers processes.")
    parser.add_argument("--stop-after", choices=("resolve", "codes"), default=None)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    parser.add_argument("--full-layout", action="store_true", help="Lay every letter out in full (no shared layout).")
    parser.add_argument("--keep", type=Path, default=None, help="Work in this folder and leave the last job there.")
    parser.add_argument("--no-typst", dest="typst", action="store_false", help="Leave out the Typst reference.")
    parser.add_argument("--typst-letters", type=int, default=2000,
                        help="At most this many letters for Typst: it holds the whole document in memory, about "
                             "0.85 MiB a letter, at the same rate from 1,000 letters up (default 2000).")
    args = parser.parse_args()
    if args.typst and args.stop_after is None and not typst_reference.installed():
        parser.error("the Typst reference needs the bench extra (pip install -e '.[test,bench]'), or pass --no-typst")
    from pkb_letters.sandbox.synthetic import write_synthetic_job

    with tempfile.TemporaryDirectory(prefix="pkb-bench-") as tmp:
        work = args.keep or Path(tmp)
        synthetic = write_synthetic_job(work / "input", args.letters)
        with render_executor(args) as executor:
            runs = [one_run(args, synthetic, work, executor) for _ in range(args.repeat)]
    result = summarise(runs, args)
    if args.typst and result["letters"]:
        compare_with_typst(result, args)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
