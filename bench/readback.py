"""What the read-back adds to a job's preflight: CPU ms per letter with and without it, median of N runs.

Each run checks the files once without and once with the read-back, one after the other, and the
added cost is the median of the runs' differences: on a shared machine the two halves of a run see
much the same load, while runs far apart do not.

    PYTHONPATH=src python bench/readback.py JOB_DIR [--runs 5]

JOB_DIR is a finished job (its print files, manifest.json and job.sqlite, codes not yet purged), e.g.
``bench/run.py --letters 2000 --keep DIR`` then ``DIR/job``. One process (no workers), so the CPU
counted is all the check's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial
from pathlib import Path

from pkb_letters.check.print_check import check_files
from pkb_letters.check.readback import JournalCredentials
from pkb_letters.job.journal import JOURNAL_NAME, Journal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    manifest = args.job / "manifest.json"
    record = json.loads(manifest.read_text())["job"]
    files = [args.job / f["name"] for f in record["files"]]
    letters = record["letters"]
    without, with_readback = [], []
    for _ in range(args.runs):
        without.append(_cpu(partial(check_files, files, manifest)))
        with Journal(args.job / JOURNAL_NAME, read_only=True) as journal:
            credentials = JournalCredentials.of_journal(journal)
            with_readback.append(_cpu(partial(check_files, files, manifest, credentials=credentials)))
        if credentials.verified != letters:
            raise SystemExit(f"read back {credentials.verified} of {letters} letters")
    before = statistics.median(without) / letters * 1000
    after = statistics.median(with_readback) / letters * 1000
    added = statistics.median(map(float.__sub__, with_readback, without)) / letters * 1000
    print(f"{letters} letters, {args.runs} runs, one process, CPU ms per letter (median):")
    print(f"  preflight without read-back  {before:.3f}")
    print(f"  preflight with read-back     {after:.3f}")
    print(f"  added by the read-back       {added:.3f}  (median of the runs' differences)")


def _cpu(check) -> float:
    started = time.process_time()
    report = check()
    if not report.ok:
        raise SystemExit(report.text(limit=10))
    return time.process_time() - started


if __name__ == "__main__":
    main()
