"""Benchmark the assemble stage alone: rendered chunks in, print file(s) out, in this process.

    .venv/bin/python bench/assemble.py --letters 1000 --keep /tmp/assemble   # renders once, then times
    .venv/bin/python bench/assemble.py --keep /tmp/assemble --repeat 5       # reuses the saved chunks
    .venv/bin/python bench/assemble.py --keep /tmp/assemble --profile        # cProfile, top 30 by own time

The first run with a new `--keep` folder runs the real job (as bench/run.py does) and saves its
render chunks and pieces there; later runs time only `stream_print_files` over them, with the
job's default finishing (duplex, DataMatrix marks, not split). Prints letters per second
(median of `--repeat` runs) and the print file's bytes per letter.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from pkb_letters import pipeline, printfile, printing  # noqa: E402
from pkb_letters.printfile import Finishing, Piece  # noqa: E402
from pkb_letters.printing import PrintOptions  # noqa: E402

JOB_ID = "PKB-20300101-BENCH0"


def save_chunks(letters: int, keep: Path) -> None:
    """Run the whole job once, copying the chunks and pieces aside as assemble starts."""
    import run  # bench/run.py, the script's own folder

    real = pipeline.stream_print_files

    def capture(chunk_paths, pieces, finishing, out_dir, record):
        chunks = keep / "chunks"
        chunks.mkdir(parents=True, exist_ok=True)
        for path in chunk_paths:
            shutil.copy(path, chunks / path.name)
        (keep / "pieces.json").write_text(json.dumps([dataclasses.asdict(p) for p in pieces()]))
        return real(chunk_paths, pieces, finishing, out_dir, record)

    pipeline.stream_print_files = capture
    sys.argv = ["run.py", "--letters", str(letters), "--keep", str(keep / "job")]
    run.main()
    pipeline.stream_print_files = real


def assemble_once(keep: Path, out_dir: Path) -> tuple[float, int, int]:
    chunk_paths = sorted((keep / "chunks").glob("chunk-*.pdf"))
    pieces = [Piece(**p) for p in json.loads((keep / "pieces.json").read_text())]
    options = PrintOptions()
    finishing = Finishing(JOB_ID, options.duplex, options.marks, output_profile=printing.intent_profile(options))
    started = time.perf_counter()
    files = printfile.stream_print_files(chunk_paths, lambda: iter(pieces), finishing, out_dir, lambda placed: None)
    seconds = time.perf_counter() - started
    return seconds, len(pieces), sum(f.bytes for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--letters", type=int, default=1000, help="Letters to render when --keep has no chunks.")
    parser.add_argument("--keep", type=Path, required=True, help="Folder holding (or to hold) the saved chunks.")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if not (args.keep / "pieces.json").exists():
        save_chunks(args.letters, args.keep)
    with tempfile.TemporaryDirectory(prefix="pkb-assemble-") as tmp:
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(assemble_once, args.keep, Path(tmp))
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
            print(out.getvalue())
            return
        runs = [assemble_once(args.keep, Path(tmp)) for _ in range(args.repeat)]
    seconds = statistics.median(r[0] for r in runs)
    letters, size = runs[0][1], runs[0][2]
    print(f"assemble: {letters} letters in {seconds:.3f} s (median of {len(runs)}): "
          f"{letters / seconds:.0f} letters/s, {seconds / letters * 1000:.2f} ms a letter; "
          f"{size / letters:.0f} bytes per letter")


if __name__ == "__main__":
    main()
