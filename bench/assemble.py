"""Benchmark the assemble stage alone: rendered chunks in, print file(s) out, in this process.

    .venv/bin/python bench/assemble.py --letters 1000 --keep /tmp/assemble   # renders once, then times
    .venv/bin/python bench/assemble.py --keep /tmp/assemble --repeat 5       # reuses the saved chunks
    .venv/bin/python bench/assemble.py --keep /tmp/assemble --profile        # cProfile, top 30 by own time

The first run with a new `--keep` folder runs the real job (as bench/run.py does) and saves its
render chunks and its journal as the assemble stage starts; later runs time only that stage
(the job's `_finish_print_files`: the print files written and where every letter landed
recorded in a fresh copy of the journal), with the job's default print options (duplex,
DataMatrix marks, not split). Prints letters per second and CPU time a letter (this
process's, less disturbed by a busy machine; medians of `--repeat` runs) and the print file's
bytes per letter.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from pkb_letters.assemble.print_options import PrintOptions  # noqa: E402
from pkb_letters.job import pipeline  # noqa: E402
from pkb_letters.job.journal import JOURNAL_NAME, Journal  # noqa: E402
from pkb_letters.records import Stage  # noqa: E402


def save_chunks(letters: int, keep: Path) -> None:
    """Run the whole job once, copying the chunks and the journal aside as assemble starts."""
    import run  # bench/run.py, the script's own folder

    real = pipeline._finish_print_files

    def capture(journal, chunk_paths, job_id, out_dir, options, advance=lambda done: None):
        chunks = keep / "chunks"
        chunks.mkdir(parents=True, exist_ok=True)
        for path in chunk_paths:
            shutil.copy(path, chunks / path.name)
        with sqlite3.connect(keep / JOURNAL_NAME) as copy:
            journal.db.connection.backup(copy)
        (keep / "job.json").write_text(json.dumps({"job_id": job_id}))
        return real(journal, chunk_paths, job_id, out_dir, options, advance)

    pipeline._finish_print_files = capture
    sys.argv = ["run.py", "--letters", str(letters), "--keep", str(keep / "job")]
    run.main()
    pipeline._finish_print_files = real


def assemble_once(keep: Path, out_dir: Path) -> tuple[float, int, int]:
    chunk_paths = sorted((keep / "chunks").glob("chunk-*.pdf"))
    job_id = json.loads((keep / "job.json").read_text())["job_id"]
    shutil.copy(keep / JOURNAL_NAME, out_dir / JOURNAL_NAME)
    with Journal.in_dir(out_dir) as journal:
        letters = journal.rows.count_at(Stage.PLACED)
        started, cpu = time.perf_counter(), time.process_time()
        files = pipeline._finish_print_files(journal, chunk_paths, job_id, out_dir, PrintOptions())
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return seconds, cpu, letters, sum(f.bytes for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--letters", type=int, default=1000, help="Letters to render when --keep has no chunks.")
    parser.add_argument("--keep", type=Path, required=True, help="Folder holding (or to hold) the saved chunks.")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if not (args.keep / JOURNAL_NAME).exists():
        save_chunks(args.letters, args.keep)
    with tempfile.TemporaryDirectory(prefix="pkb-assemble-") as tmp:
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(assemble_once, args.keep, Path(tmp))
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
            print(out.getvalue())
            return
        runs = []
        for number in range(args.repeat):
            out_dir = Path(tmp) / str(number)
            out_dir.mkdir()
            runs.append(assemble_once(args.keep, out_dir))
    seconds, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    letters, size = runs[0][2], runs[0][3]
    print(f"assemble: {letters} letters in {seconds:.3f} s (median of {len(runs)}): "
          f"{letters / seconds:.0f} letters/s, {seconds / letters * 1000:.2f} ms a letter, "
          f"{cpu / letters * 1000:.2f} ms of CPU a letter; {size / letters:.0f} bytes per letter")


if __name__ == "__main__":
    main()
