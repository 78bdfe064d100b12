"""Peak resident memory of `check_files` on a synthetic print file and its manifest.

    PYTHONPATH=src python bench/check_memory.py --pages 80000 [--workers 2] [--dir DIR]

The file is one letter page (address in the C5 window, K-only black, no marks) copied `--pages`
times by the streaming writer, with a manifest of as many one-page letters, so every page passes
and what the check keeps is what it plans and reads. Prints the main process's peak RSS, the
largest worker's, and the peak of all the check's processes together (sampled every 20 ms).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

from process_memory import process_tree, resident_bytes  # bench/, the script's own folder

from pkb_letters.check.print_check import check_files
from pkb_letters.sandbox.synthetic import write_synthetic_print_job


def print_job(folder: Path, pages: int) -> None:
    """Run in a process of its own: WeasyPrint and pypdf are not what is measured."""
    write_synthetic_print_job(folder, pages)


class Sampler:
    """Peak RSS of this process's children, one by one and all together with this one."""

    def __init__(self) -> None:
        self.worker = self.total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.02):
            sizes = {pid: resident_bytes(pid) for pid in process_tree(me)}
            self.total = max(self.total, sum(sizes.values()))
            self.worker = max([self.worker, *(size for pid, size in sizes.items() if pid != me)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dir", type=Path, help="keep the file here (made if it holds none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "manifest.json").exists():
            maker = multiprocessing.get_context("spawn").Process(target=print_job, args=(folder, args.pages))
            maker.start()
            maker.join()
        started = time.perf_counter()
        with Sampler() as sampler:
            report = check_files([folder / "letters.pdf"], folder / "manifest.json", workers=args.workers)
        if not report.ok:
            raise SystemExit(report.text(limit=10))
        mib = 2**20
        print(f"{report.pages} pages, {args.workers} worker(s), {time.perf_counter() - started:.1f} s: main process "
              f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB, largest worker "
              f"{sampler.worker / mib:.0f} MiB, all processes {sampler.total / mib:.0f} MiB")


if __name__ == "__main__":
    main()
