"""Logging policy: one package logger, `pkb_letters`, and nothing sensitive in any log line.

- INFO: a stage started or finished, with counts. WARNING: a row or file needed attention.
  ERROR: the job stopped.
- Never logged: codes, the client secret, access tokens, full NHS numbers (use
  `nhs_number.mask`), names or addresses.
- httpx logs every request URL at INFO, and PKB's REST URLs carry NHS numbers, so
  the HTTP libraries are held at WARNING whatever the verbosity; so is WeasyPrint,
  whose INFO lines are per-page layout steps (its warnings still show).
- As a last line of defence, every line written (ours or a library's, message,
  extra fields and traceback alike) has anything shaped like an NHS number masked
  to its last four digits: `******8914`.
- `text` is for people; `json` is one object per line (time, level, logger, message,
  and any `extra=` fields) for a mail house's log collector.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any

LOG_FORMATS = ("text", "json")
_QUIET_LOGGERS = ("httpx", "httpcore", "authlib", "weasyprint")
# Ten digits, alone or as 3-3-4 with spaces or dashes, not inside a longer run of digits.
_NHS_NUMBER_LIKE = re.compile(r"(?<!\d)\d{3}([ -]?)\d{3}\1(\d{4})(?!\d)")
# The attributes every LogRecord has: anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def mask_nhs_numbers(text: str) -> str:
    """'5760678914' and '576 067 8914' become '******8914'."""
    return _NHS_NUMBER_LIKE.sub(lambda match: "******" + match[2], text)


class MaskingFormatter(logging.Formatter):
    """Text lines with NHS numbers masked."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_nhs_numbers(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, NHS numbers masked."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((key, value) for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return mask_nhs_numbers(json.dumps(entry, ensure_ascii=False, default=str))


def configure_logging(verbose: bool, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
