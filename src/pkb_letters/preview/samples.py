"""Built-in sample patients for `pkb-letters preview`: the edge cases a template must survive.

Each sample is a row of a patient list, written out as a CSV and read back by `intake`, so
the preview applies exactly the rules a real list meets (names, address lines, postcodes,
BFPO). None of them is a real person: the NHS numbers are in the 999 range the NHS keeps
for testing, and no sample is ever sent to PKB.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

COLUMNS = (
    "Title",
    "First name",
    "Last name",
    "NHS number",
    "DoB",
    "Address1",
    "Address2",
    "Address3",
    "Address4",
    "City",
    "County",
    "Post code",
    "Customer ref",
    "Format",
    "Language",
)


@dataclass(frozen=True)
class Sample:
    label: str  # what the case is for, shown to the reviewer
    title: str
    first_name: str
    last_name: str
    nhs_number: str
    street: tuple[str, ...]  # up to four lines
    town: str
    county: str
    postcode: str
    format: str = ""  # the Format cell: empty is the job's format
    language: str = ""  # the Language cell: empty is the job's language

    def cells(self, reference: str) -> list[str]:
        street = [*self.street, "", "", "", ""][:4]
        return [
            self.title,
            self.first_name,
            self.last_name,
            self.nhs_number,
            "1970-01-01",
            *street,
            self.town,
            self.county,
            self.postcode,
            reference,
            self.format,
            self.language,
        ]


SAMPLES: tuple[Sample, ...] = (
    Sample(
        "Ordinary address",
        "Mrs",
        "Alice",
        "Example",
        "9990000018",
        ("Flat 4", "12 Grey Street"),
        "Newcastle upon Tyne",
        "",
        "NE1 7RU",
    ),
    # The longest name line that fits the narrowest built-in window (DL, 90 mm) in the default template.
    Sample(
        "Longest name",
        "Professor",
        "Maximiliana B",
        "Featherstonehaugh-Ashworth",
        "9990000026",
        ("The Old Rectory",),
        "Great Snoring",
        "",
        "NR21 0HP",
    ),
    Sample(
        "Seven-line address",
        "Mr",
        "Tom",
        "Lines",
        "9990000034",
        ("Flat 12 Rosebank House", "Upper Mill Court", "14 Long Causeway", "Little Snoring"),
        "Fakenham",
        "",
        "NR21 0AJ",
    ),
    Sample(
        "BFPO address",
        "Sgt",
        "Sam",
        "Atkins",
        "9990000042",
        ("Unit 2 Royal Signals", "Operation Example", "BFPO 58"),
        "",
        "",
        "BF1 3AA",
    ),
    Sample(
        "Accents and apostrophes",
        "Ms",
        "Zoë",
        "O'Brien-Ng",
        "9990000050",
        ("Flat 3 St John's Court", "27 Headingley Lane"),
        "Leeds",
        "West Yorkshire",
        "LS6 1BN",
    ),
    Sample(
        "Welsh place name",
        "Mr",
        "Dafydd",
        "ap Gwilym",
        "9990000069",
        ("Tŷ Gwyn", "Ffordd yr Orsaf"),
        "Llanfairpwllgwyngyll",
        "Ynys Môn",
        "LL61 5UJ",
    ),
    Sample("Short name, no title", "", "Jo", "Li", "9990000077", ("1 Ash Road",), "Bath", "", "BA1 1AA"),
    # The Accessible Information Standard's large print, and the Welsh Language Standards' bilingual and
    # Welsh-only letters.
    Sample(
        "Large print",
        "Mr",
        "Harold",
        "Bigwood",
        "9990000085",
        ("22 Station Road",),
        "York",
        "",
        "YO1 7HH",
        format="large-print",
    ),
    Sample(
        "Welsh and English (bilingual)",
        "Mrs",
        "Angharad",
        "Llewellyn",
        "9990000093",
        ("5 Heol y Castell",),
        "Caerdydd",
        "",
        "CF10 1BJ",
        language="welsh_then_english",
    ),
    Sample(
        "Welsh only",
        "Mr",
        "Dafydd",
        "Pritchard",
        "9990000107",
        ("3 Stryd Fawr",),
        "Aberystwyth",
        "",
        "SY23 1DE",
        language="welsh",
    ),
)


def samples_csv(count: int) -> str:
    """The first `count` samples as a patient list (UTF-8 CSV text); each row's reference is `SAMPLE-n`."""
    if not 1 <= count <= len(SAMPLES):
        raise ValueError(f"there are {len(SAMPLES)} built-in samples; asked for {count}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for number, sample in enumerate(SAMPLES[:count], 1):
        writer.writerow(sample.cells(f"SAMPLE-{number}"))
    return buffer.getvalue()
