"""The Typst reference of issue 22: our default letter made with Typst on one core, in letters per second.

    .venv/bin/python bench/typst_reference.py --letters 2000 --runs 3
    .venv/bin/python bench/typst_reference.py --letters 50 --keep DIR   # leaves DIR/letters.pdf to look at

Needs the `bench` extra (`pip install -e '.[test,bench]'`: typst, segno). What a mail house would
write with Typst: all letters in ONE document, laid out from a JSON file of per-letter data, each
letter's QR code a PNG made by segno. The letter is our default template's two pages (templates/
invitation): letterhead with the logo, date and reference, the address in the C5 window, greeting,
the four paragraphs with the steps, the code box with the QR code of the join URL carrying both
codes, the expiry, the signature; page 2 the questions and privacy notice. Same fonts (Liberation,
from the template's fonts folder; the system's are ignored). Not in it: our separation marks and
anything past layout (no address fit, no PKB calls, no assembling, no read-back).

Timed, per run: encoding every QR code with segno and writing it as a PNG, writing the JSON data,
Typst compiling the document to PDF and writing the PDF. Not timed: making up the patients.

One core: the measurement runs in a child process pinned to one CPU (`os.sched_setaffinity`) with
RAYON_NUM_THREADS=1, since typst's `compile` has no thread option and Typst parallelises some of
its work with rayon. `measure()` gives the figures to bench/run.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "invitation"
JOIN_URL = "https://sandbox.patientsknowbest.com/join/"
ORGANISATION = "Synthetic NHS Trust"
CONTACT = "Patient Records Team, 0191 000 0000"

_FIRST = ("Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Ivy", "Arthur", "Freya", "Leo", "Zoë", "Rhys")
_LAST = ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Davies", "Evans", "O'Neill", "Patel")
_TITLES = ("Mr", "Mrs", "Ms", "Dr", "Miss")
_STREETS = ("High Street", "Station Road", "Church Lane", "Victoria Road", "Mill Lane", "Park Avenue")
_TOWNS = (("LEEDS", "LS6 1BN"), ("NEWCASTLE UPON TYNE", "NE1 7RU"), ("CARDIFF", "CF10 1EP"),
          ("NORWICH", "NR2 4SX"), ("EXETER", "EX4 3LS"), ("YORK", "YO1 7HH"))
_CODE_LETTERS = string.ascii_letters + string.digits

# The letter, in Typst. Geometry from the C5 envelope profile (pkb_letters.envelope.C5: margins
# 10/15/20/15 mm, window 24.6 mm from the left and 39.5 mm from the top, body from 95 mm) and
# sizes from letter.css. Each letter is two explicit pages whose footers carry their page number and
# piece id: a footer that read a page counter reset per letter and the piece id from a state cost
# about a third more CPU and twice the memory (Typst's introspection), and the reference should be
# Typst at its best.
LETTER_TYP = r"""
#let data = json("letters.json")
#let black = cmyk(0%, 0%, 0%, 100%)
#set page(paper: "a4", margin: (top: 10mm, right: 15mm, bottom: 20mm, left: 15mm))
#set text(font: "Liberation Sans", size: 11pt, fill: black, lang: "en")
#set par(leading: 0.6em, spacing: 2.5mm)
#show heading.where(level: 1): set text(size: 15pt)
#show heading.where(level: 1): set block(above: 5mm, below: 4mm)
#show heading.where(level: 2): set text(size: 12.5pt)
#show heading.where(level: 2): set block(above: 5mm, below: 3mm)
#show heading.where(level: 3): set text(size: 11pt)
#show heading.where(level: 3): set block(above: 4mm, below: 2mm)
#let code(value) = text(font: "Liberation Mono", weight: "bold", size: 17pt, tracking: 1.5pt, value)
#let org = data.organisation
#let contact = data.contact

#let footer(n, piece) = {
  set text(size: 9pt)
  place(center + horizon)[Page #n of 2]
  place(right + horizon, text(size: 7pt, piece))
}

#let first-page(l) = {
  place(top + right, block(width: 62mm, align(right)[
    #image("logo.svg", width: 48mm, height: 12mm)
    #v(2mm, weak: true)
    #text(weight: "bold", org) \
    #text(size: 9pt, contact)
  ]))
  place(top + right, dy: 31mm, block(width: 62mm, align(right, text(size: 10pt)[
    #l.date \ Our reference: #l.ref
  ])))
  place(top + left, dx: 9.6mm, dy: 29.5mm, block(width: 95.4mm, height: 26.8mm,
    text(size: 10pt, par(leading: 0.3em, l.address.join(linebreak())))))
  v(85mm)
  [Dear #l.greeting,]
  heading(level: 1)[Your invitation to view your health record online]
  [#org uses Patients Know Best (PKB), a secure online service that lets you see your health record,
  test results, appointments and letters, and message your care team. It is free to use.]
  heading(level: 2)[How to join]
  enum(spacing: 1mm + 0.6em,
    [Go to *#data.website* on a computer, tablet or phone, or scan the QR code below.],
    [Enter your *invitation code* and *access code* exactly as printed (capital and small letters matter).],
    [Enter your date of birth to confirm it is you.],
    [Choose your email address and password.])
  block(stroke: 0.5mm + black, inset: (x: 5mm, y: 3mm), width: 100%, breakable: false, above: 3mm,
    below: 2mm, grid(columns: (1fr, 28mm), align: horizon,
      table(columns: 2, stroke: none, inset: (left: 0mm, right: 6mm, y: 1.5mm), align: horizon,
        [Invitation code], code(l.invitation), [Access code], code(l.access)),
      image(l.qr, width: 28mm, height: 28mm, scaling: "pixelated")))
  par(text(size: 11.5pt)[These codes expire on *#l.expires*. Please join before then. After that date,
  contact us for new codes.])
  parbreak()
  [Keep this letter private: the codes give access to your health record.]
  v(5mm)
  par(spacing: 0mm)[Yours sincerely, \ *Dr Alex Example* \ Chief Clinical Information Officer \ #org]
}

#let questions = {
  heading(level: 2)[Common questions]
  heading(level: 3)[Do I have to join?]
  [No. Joining is your choice, and your care will not change if you do not join.]
  heading(level: 3)[Who can see my record?]
  [You, and the health and care professionals looking after you. You can see who has looked at your
  record, and you can choose to share it with family members or carers.]
  heading(level: 3)[Is my information safe?]
  [PKB is used by NHS organisations across the UK. Your record is encrypted, and PKB must meet the
  NHS's data security standards. Nobody from the NHS or PKB will ever ask you for your password.]
  heading(level: 3)[What if my codes have expired or do not work?]
  [Contact us (#contact) and we will send you new codes. Do not share your codes with anyone.]
  heading(level: 3)[Can I have this letter in another format?]
  [Yes. Contact us (#contact) for large print, braille, easy read, audio, or a letter in Welsh.]
  heading(level: 3)[What if this letter is not for me?]
  [Please do not use the codes. Return the letter to us, or destroy it securely.]
  heading(level: 2)[Your privacy]
  [#org is the data controller for the information it adds to your PKB record. We used your name
  and address only to send you this letter. Your date of birth is not printed in this letter: you
  will be asked for it when you join, to prove the record is yours. To find out more about how we
  use your information, see our privacy notice or contact our Data Protection Officer.]
}

#for l in data.letters {
  page(footer: footer(1, l.piece), first-page(l))
  page(footer: footer(2, l.piece), questions)
}
"""


def installed() -> bool:
    """Whether the bench extra's typst and segno are there to import."""
    return all(importlib.util.find_spec(name) for name in ("typst", "segno"))


def made_up_letters(count: int, seed: int = 22) -> list[dict]:
    """`count` letters' data (names, addresses, codes, dates), the same for the same count and seed."""
    rng = random.Random(seed)
    today = dt.date(2026, 12, 8)
    letters = []
    for n in range(1, count + 1):
        title, first, last = rng.choice(_TITLES), rng.choice(_FIRST), rng.choice(_LAST)
        town, postcode = rng.choice(_TOWNS)
        address = [f"{title} {first} {last}", f"{rng.randint(1, 200)} {rng.choice(_STREETS)}", town, postcode]
        if rng.random() < 0.3:
            address.insert(1, f"Flat {rng.randint(1, 40)}")
        letters.append({
            "greeting": f"{title} {last}", "address": address, "ref": f"SYN-{n:06d}",
            "invitation": "".join(rng.choices(_CODE_LETTERS, k=10)),
            "access": "".join(rng.choices(_CODE_LETTERS, k=10)),
            "date": _long_date(today), "expires": _long_date(today + dt.timedelta(days=30)),
            "piece": f"PKB-{today:%Y%m%d}-TYPST0-{n:06d}",
        })
    return letters


def _long_date(day: dt.date) -> str:
    return f"{day.day} {day:%B %Y}"


def make_letters(letters: list[dict], folder: Path) -> bytes:
    """The print file of `letters`, laid out by Typst in `folder` (QR PNGs and JSON written there): the timed work."""
    import segno
    import typst

    (folder / "qr").mkdir(parents=True, exist_ok=True)
    for n, letter in enumerate(letters):
        url = f"{JOIN_URL}?{urlencode({'t1': letter['invitation'], 't2': letter['access']})}"
        letter["qr"] = f"qr/{n}.png"
        segno.make_qr(url, error="m", boost_error=False).save(folder / letter["qr"], kind="png", scale=1, border=0)
    data = {"organisation": ORGANISATION, "contact": CONTACT, "website": "sandbox.patientsknowbest.com/join",
            "letters": letters}
    (folder / "letters.json").write_text(json.dumps(data))
    pdf = typst.compile(folder / "letters.typ", root=folder, font_paths=[TEMPLATE / "fonts"], ignore_system_fonts=True)
    (folder / "letters.pdf").write_bytes(pdf)
    return pdf


def _prepare(folder: Path) -> None:
    (folder / "letters.typ").write_text(LETTER_TYP)
    # Typst's SVG reader (usvg) does not know CSS's device-cmyk(), and would leave the logo's frame out
    logo = (TEMPLATE / "logo.svg").read_text().replace("device-cmyk(0 0 0 1)", "black")
    (folder / "logo.svg").write_text(logo)


def time_runs(count: int, runs: int, keep: Path | None = None) -> dict:
    """Make `count` letters `runs` times in this process; seconds of each run, CPU and the PDF's size."""
    seconds, cpu = [], []
    with tempfile.TemporaryDirectory(prefix="pkb-typst-") as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        _prepare(folder)
        for _ in range(runs):
            letters = made_up_letters(count)
            started, cpu_started = time.perf_counter(), time.process_time()
            pdf = make_letters(letters, folder)
            seconds.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
    threads = len(os.listdir("/proc/self/task"))  # Typst's rayon pool, if it started one, is still there
    return {"letters": count, "runs": runs, "seconds": seconds, "cpu_seconds": cpu, "pdf_bytes": len(pdf),
            "threads": threads, "peak_rss_mib": _peak_rss_mib()}


def _peak_rss_mib() -> int:
    """This process's peak resident size since it started (VmHWM; ru_maxrss would carry the parent's over exec)."""
    status = Path("/proc/self/status").read_text()
    return round(int(status.split("VmHWM:")[1].split()[0]) / 1024)


def measure(count: int, runs: int = 1, keep: Path | None = None) -> dict:
    """The Typst reference's figures for `count` letters, median of `runs`, measured in a child
    process on one CPU (the last this process may use)."""
    cpu = max(os.sched_getaffinity(0))
    command = [sys.executable, __file__, "--letters", str(count), "--runs", str(runs), "--child", str(cpu)]
    if keep:
        command += ["--keep", str(keep)]
    env = {**os.environ, "RAYON_NUM_THREADS": "1"}
    raw = json.loads(subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout)
    median = statistics.median(raw["seconds"])
    return {"letters": count, "runs": runs, "cpu": cpu, "seconds": round(median, 3),
            "cpu_seconds": round(statistics.median(raw["cpu_seconds"]), 3),
            "per_second": round(count / median, 1), "bytes_per_letter": round(raw["pdf_bytes"] / count),
            "threads": raw["threads"], "peak_rss_mib": raw["peak_rss_mib"],
            "timed": "segno QR PNGs + JSON written + typst.compile to PDF + PDF written; one CPU, RAYON_NUM_THREADS=1"}


def describe(result: dict) -> str:
    return (f"Typst reference, one core (cpu {result['cpu']}): {result['letters']} letters in "
            f"{result['seconds']:.2f} s = {result['per_second']} letters/s (CPU {result['cpu_seconds']:.2f} s, "
            f"{result['threads']} threads in its process, "
            f"peak {result['peak_rss_mib']} MiB, {result['bytes_per_letter']} bytes per letter; median of "
            f"{result['runs']}; timed: QR PNGs by segno, JSON, typst.compile, PDF written)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--letters", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="Work in this folder and leave the last PDF there.")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)  # the pinned measuring process
    args = parser.parse_args()
    if args.child is not None:
        os.sched_setaffinity(0, {args.child})
        print(json.dumps(time_runs(args.letters, args.runs, args.keep)))
        return
    print(describe(measure(args.letters, args.runs, args.keep)))


if __name__ == "__main__":
    main()
