"""Time `pkb-letters check` on a job's print files: median of N runs, in ms per page.

    PYTHONPATH=src python bench/time_check.py OUT_DIR [--runs 3] [--workers 1]

CPU "in all processes" adds the worker processes' (counted once the pool has shut them down):
with `--workers 2` that, not the main process's, is what a page costs the machine.

OUT_DIR is a finished job (its *.pdf files and manifest.json), e.g. one made by
``pkb-letters run`` on a list from ``pkb_letters.sandbox.synthetic.write_synthetic_job``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

from pkb_letters.check.print_check import check_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    files = sorted(args.job.glob("*.pdf"))
    wall, cpu, all_cpu = [], [], []
    for _ in range(args.runs):
        started, started_cpu, started_all = time.perf_counter(), time.process_time(), _all_cpu()
        options = {"workers": args.workers} if args.workers > 1 else {}  # check_files before workers existed
        report = check_files(files, args.job / "manifest.json", **options)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        all_cpu.append(_all_cpu() - started_all)
        if not report.ok:
            raise SystemExit(report.text(limit=10))
    per_page = lambda seconds: statistics.median(seconds) / report.pages * 1000  # noqa: E731
    print(f"{report.pages} pages, {args.workers} worker(s), runs {', '.join(f'{t:.2f} s' for t in wall)}: "
          f"median {per_page(wall):.2f} ms/page wall ({report.pages / statistics.median(wall):.0f} pages/s), "
          f"{per_page(cpu):.2f} ms/page CPU in the main process, {per_page(all_cpu):.2f} ms/page CPU in all "
          f"processes")


def _all_cpu() -> float:
    """CPU seconds of this process and of its children that have ended (the workers, once the pool is shut)."""
    return sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for field in ("ru_utime", "ru_stime"))


if __name__ == "__main__":
    main()
