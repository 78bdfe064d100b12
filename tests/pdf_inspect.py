"""Reading our PDFs back as a person would: words with positions, in millimetres from the top-left."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pdfplumber

MM_PER_POINT = 25.4 / 72


@dataclass(frozen=True)
class Word:
    text: str
    left: float
    top: float
    right: float
    bottom: float


def pages_read(facts) -> int:
    """How many pages a `page_facts` reader handed the libraries: all the file's, or its excerpt's."""
    return len(facts._document)


def page_words(pdf_path: Path) -> list[list[Word]]:
    with pdfplumber.open(pdf_path) as pdf:
        return [
            [
                Word(w["text"], w["x0"] * MM_PER_POINT, w["top"] * MM_PER_POINT,
                     w["x1"] * MM_PER_POINT, w["bottom"] * MM_PER_POINT)
                for w in page.extract_words(keep_blank_chars=False, use_text_flow=True)
            ]
            for page in pdf.pages
        ]


def page_texts(pdf_path: Path) -> list[str]:
    with pdfplumber.open(pdf_path) as pdf:
        return [page.extract_text() or "" for page in pdf.pages]
