"""How fonts get subset into the PDFs, and one line, not a flood, when it is the slow way.

WeasyPrint subsets fonts with HarfBuzz's subsetting library (libharfbuzz-subset0) when it finds
it, and otherwise with fontTools, warning once per font of every document it writes: in a job,
once per chunk and font, from every render worker. `quiet_fallback_warnings()` drops those
repeats in the process that calls it (every module that writes PDFs with WeasyPrint does, on
import); `note_slow_subsetting()` says it once instead, from the process that runs the job.
"""

from __future__ import annotations

import functools
import logging

from pkb_letters.render.weasyprint_adapter import harfbuzz_subsetting

_FALLBACK_MESSAGE_START = "Using fontTools instead of HarfBuzz-Subset"
NOTE = (
    "fonts are subset with fontTools because HarfBuzz's subsetting library was not found, which is "
    "slower; install it for faster rendering (Debian/Ubuntu: apt-get install libharfbuzz-subset0)"
)

logger = logging.getLogger(__name__)


class _FallbackFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_FALLBACK_MESSAGE_START)


def quiet_fallback_warnings() -> None:
    """Drop WeasyPrint's per-font fontTools warning in this process (idempotent)."""
    weasyprint_logger = logging.getLogger("weasyprint")
    if not any(isinstance(f, _FallbackFilter) for f in weasyprint_logger.filters):
        weasyprint_logger.addFilter(_FallbackFilter())


@functools.cache
def note_slow_subsetting() -> None:
    """Log, once per process, that fonts are subset the slow way, if they are."""
    if not harfbuzz_subsetting():
        logger.warning(NOTE)
