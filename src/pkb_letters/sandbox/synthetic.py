"""Made-up patients of any number: a patient list and matching sandbox data.

For fault-injection tests and the benchmark. Every patient is eligible (adult, alive, not
registered, our organisation), has a valid NHS number in PKB's range and a Royal Mail-style
address that fits the window, so every row should end as a letter. Names and places come
from small fixed lists, so the same `count` and `seed` always give the same files.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path

from pkb_letters.intake.nhs_number import check_digit

ORGANISATION_ID = "a14acc9a-a14b-4fb8-8558-539d93a038d3"
CLIENT_ID = "pkb-letters-synthetic"
CLIENT_SECRET = "synthetic-secret-not-for-production"

_FIRST = ("Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Ivy", "Arthur", "Freya", "Leo", "Zoë", "Rhys")
_LAST = ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Davies", "Evans", "O'Neill", "Patel")
_STREETS = ("High Street", "Station Road", "Church Lane", "Victoria Road", "Mill Lane", "Park Avenue")
_TOWNS = (
    ("LEEDS", "LS6 1BN"),
    ("NEWCASTLE UPON TYNE", "NE1 7RU"),
    ("CARDIFF", "CF10 1EP"),
    ("NORWICH", "NR2 4SX"),
    ("EXETER", "EX4 3LS"),
    ("YORK", "YO1 7HH"),
)
HEADER = (
    "Title",
    "First name",
    "Last name",
    "NHS number",
    "DoB",
    "Address1",
    "Address2",
    "City",
    "Post code",
    "Customer ref",
)


@dataclass(frozen=True)
class SyntheticJob:
    patients_csv: Path
    sandbox_json: Path
    nhs_numbers: tuple[str, ...]


def nhs_numbers(count: int, first: int = 400_000_000) -> list[str]:
    """`count` valid NHS numbers starting 4, in order (numbers whose check digit would be 10 are skipped)."""
    numbers: list[str] = []
    stem = first
    while len(numbers) < count:
        digits = f"{stem:09d}"
        check = check_digit(digits)
        if check is not None:
            numbers.append(digits + check)
        stem += 1
    return numbers


def write_synthetic_job(directory: Path, count: int, seed: int = 1) -> SyntheticJob:
    rng = random.Random(seed)
    numbers = nhs_numbers(count)
    rows, patients = [], []
    for index, number in enumerate(numbers, 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        town, postcode = rng.choice(_TOWNS)
        dob = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 60))
        rows.append(
            (
                "",
                first,
                last,
                number,
                dob.isoformat(),
                f"{rng.randrange(1, 300)} {rng.choice(_STREETS)}",
                "",
                town,
                postcode,
                f"SYN-{index:06d}",
            )
        )
        patients.append(
            {
                "id": str(5_000_000 + index),
                "firstName": first,
                "lastName": last,
                "dob": dob.isoformat(),
                "dateDeceased": None,
                "postalCode": postcode,
                "registered": False,
                "organisations": [ORGANISATION_ID],
                "nationalIds": [{"type": "NHS_NUMBER", "value": number}],
            }
        )
    directory.mkdir(parents=True, exist_ok=True)
    patients_csv = directory / "patients.csv"
    with patients_csv.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    sandbox_json = directory / "sandbox.json"
    sandbox_json.write_text(
        json.dumps(
            {
                "organisation": {"id": ORGANISATION_ID, "name": "Synthetic NHS Trust"},
                "clients": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}],
                "patients": patients,
            }
        ),
        encoding="utf-8",
    )
    return SyntheticJob(patients_csv, sandbox_json, tuple(numbers))


# -- a print file and its manifest, for measuring the preflight ---------------------------------------

PRINT_NAME, PRINT_ADDRESS = "Ann Example", ("1 High Street", "NEWCASTLE", "NE1 1XC")
_LETTER_PAGE = (
    "<style>@page { size: A4; margin: 0 } body { margin: 0; color: device-cmyk(0 0 0 1); font: 10pt sans-serif }"
    " div { position: absolute }</style>"
    f"<div style='left: 30mm; top: 45mm'>{PRINT_NAME}<br>{'<br>'.join(PRINT_ADDRESS)}</div>"
    "<div style='left: 20mm; top: 100mm'>Dear Ann, your codes are below.</div>"
)


def synthetic_letter_page():
    """One letter page (address in the C5 window, K-only black, no marks), as a pypdf reader."""
    import io

    from pypdf import PdfReader
    from weasyprint import HTML  # here, not at the top: the sandbox server never lays anything out

    return PdfReader(io.BytesIO(HTML(string=_LETTER_PAGE).write_pdf()))


def write_synthetic_print_job(folder: Path, pages: int, letter_page=None) -> tuple[Path, Path]:
    """`letters.pdf`, the letter page copied `pages` times by the streaming writer (its font and
    content written once), and a `manifest.json` of as many one-page letters, all of which pass."""
    from pkb_letters.job.manifest import stream_manifest
    from pkb_letters.pdf.writer import ObjectCopier, StreamingPdfWriter

    page = letter_page or synthetic_letter_page()
    with (folder / "letters.pdf").open("wb") as handle:
        writer = StreamingPdfWriter(handle)
        copier = ObjectCopier(page, writer)
        for _ in range(pages):
            writer.add_page(page.pages[0], copier)
        writer.close({}, {})
    job = {
        "id": "PKB-20300101-ABCDEF",
        "pages": pages,
        "print": {"duplex": False, "marks": "none"},
        "files": [{"name": "letters.pdf", "pages": pages}],
    }
    letters = (
        {
            "sequence": n,
            "piece_id": f"PKB-20300101-ABCDEF-{n:06d}",
            "file": "letters.pdf",
            "first_page": n,
            "page_count": 1,
            "input_row": n + 1,
            "name": PRINT_NAME,
            "address_lines": list(PRINT_ADDRESS),
            "postcode": PRINT_ADDRESS[-1],
            "codes_expire": "2030-03-12",
            "codes_reissued": "",
            "postage": "uk",
            "sheet_count": 1,
            "postage_class": "second",
            "marks": [],
        }
        for n in range(1, pages + 1)
    )
    stream_manifest(folder, job, letters)
    return folder / "letters.pdf", folder / "manifest.json"
