"""Logging policy: one package logger, `pkb_letters`, and nothing sensitive in any log line.

- INFO: a stage started or finished, with counts. WARNING: a row or file needed attention.
  ERROR: the job stopped.
- Never logged: codes, the client secret, access tokens, full NHS numbers (use
  `nhs_number.mask`), names or addresses.
- httpx logs every request URL at INFO, and PKB's REST URLs carry NHS numbers, so
  the HTTP libraries are held at WARNING whatever the verbosity; so is WeasyPrint,
  whose INFO lines are per-page layout steps (its warnings still show).
"""

from __future__ import annotations

import logging

_QUIET_LOGGERS = ("httpx", "httpcore", "authlib", "weasyprint")


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
