"""Assembling the print files: the same pages and marks as a straightforward copy, for less work.

The marks are drawn from a cached grid of module edges; the pages are copied out of the
chunks as raw bytes; objects the chunks share (fonts, shared-layout forms, the ICC profile)
are stored once per print file.
"""

from __future__ import annotations

import pytest

from pkb_letters import marks
from pkb_letters.envelope import A4_HEIGHT_MM, Rect
from pkb_letters.marks import MarkKind, MarkLayout


def drawn_rect_by_rect(layout: MarkLayout, payload: str) -> bytes:
    """The DataMatrix mark as it was drawn before the grid was cached: a Rect per run, formatted each time."""
    def pt(mm: float) -> str:
        return f"{mm * marks.POINTS_PER_MM:.3f}"

    rects = []
    size = layout.module
    for y, row in enumerate(marks._matrix(payload)):
        x = 0
        while x < len(row):
            if not row[x]:
                x += 1
                continue
            start = x
            while x < len(row) and row[x]:
                x += 1
            rects.append(Rect(layout.left + start * size, layout.top + y * size, (x - start) * size, size))
    ops = ["q", "0 0 0 1 k"]
    ops += [f"{pt(r.left)} {pt(A4_HEIGHT_MM - r.bottom)} {pt(r.width)} {pt(r.height)} re" for r in rects]
    ops += ["f", "Q", ""]
    return "\n".join(ops).encode("ascii")


@pytest.mark.parametrize("layout", [
    marks.DEFAULT_LAYOUTS[MarkKind.DATAMATRIX],
    MarkLayout(left=12.3, top=250.7, module=0.5),
    MarkLayout(left=180.0, top=10.0, module=0.33),
])
@pytest.mark.parametrize("job_id", ["PKB-20300101-ABCDEF", "J", "PKB-20991231-ZZ99ZZ-LONGER-ID"])
def test_a_datamatrix_mark_is_drawn_byte_for_byte_as_rect_by_rect(layout, job_id):
    for sequence, sheet, sheets in [(1, 1, 1), (42, 2, 3), (999999, 99, 99), (123456, 1, 2)]:
        payload = marks.datamatrix_payload(job_id, sequence, sheet, sheets)
        assert marks.draw(layout, payload) == drawn_rect_by_rect(layout, payload)
