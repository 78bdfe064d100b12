"""Peak resident memory of `check_files` on a synthetic print file and its manifest.

    PYTHONPATH=src python bench/check_memory.py --pages 80000 [--workers 2] [--dir DIR]

The file is one letter page (address in the C5 window, K-only black, no marks) copied `--pages`
times by the streaming writer, with a manifest of as many one-page letters, so every page passes
and what the check keeps is what it plans and reads. Prints the main process's peak RSS, the
largest worker's, and the peak of all the check's processes together (sampled every 20 ms).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

from process_memory import process_tree, resident_bytes  # bench/, the script's own folder

from pkb_letters.check import check_files

PAGE = ("<style>@page { size: A4; margin: 0 } body { margin: 0; color: device-cmyk(0 0 0 1); font: 10pt sans-serif }"
        " div { position: absolute }</style><div style='left: 30mm; top: 45mm'>Ann Example<br>1 High Street<br>"
        "NEWCASTLE<br>NE1 1XC</div><div style='left: 20mm; top: 100mm'>Dear Ann, your codes are below.</div>")


def print_job(folder: Path, pages: int) -> None:
    """Run in a process of its own: WeasyPrint and pypdf are not what is measured."""
    from pypdf import PdfReader
    from weasyprint import HTML

    from pkb_letters import pdfstream
    from pkb_letters.manifest import stream_manifest

    page = PdfReader(io.BytesIO(HTML(string=PAGE).write_pdf()))
    with (folder / "letters.pdf").open("wb") as handle:
        writer = pdfstream.StreamingPdfWriter(handle)
        copier = pdfstream.ObjectCopier(page, writer)
        for _ in range(pages):
            writer.add_page(page.pages[0], copier)
        writer.close({}, {})
    job = {"id": "PKB-20300101-ABCDEF", "pages": pages, "print": {"duplex": False, "marks": "none"},
           "files": [{"name": "letters.pdf", "pages": pages}]}
    letters = ({"sequence": n, "piece_id": f"PKB-20300101-ABCDEF-{n:06d}", "file": "letters.pdf", "first_page": n,
                "page_count": 1, "input_row": n + 1, "name": "Ann Example",
                "address_lines": ["1 High Street", "NEWCASTLE", "NE1 1XC"], "postcode": "NE1 1XC",
                "codes_expire": "2030-03-12", "codes_reissued": "", "postage": "uk", "sheet_count": 1,
                "postage_class": "second", "marks": []} for n in range(1, pages + 1))
    stream_manifest(folder, job, letters)


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
