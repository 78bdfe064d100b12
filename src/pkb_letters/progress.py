"""Progress reporting for long stages: a bar with rate and ETA on a terminal, silence elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import click

Advance = Callable[[int], None]


class Progress(Protocol):
    def stage(self, label: str, total: int) -> AbstractContextManager[Advance]: ...


class NoProgress:
    @contextmanager
    def stage(self, label: str, total: int) -> Iterator[Advance]:
        yield lambda n: None


class TerminalProgress:
    """click's progress bar on stderr; click hides it when stderr is not a terminal."""

    @contextmanager
    def stage(self, label: str, total: int) -> Iterator[Advance]:
        started = time.monotonic()
        done = 0

        def rate(_: object) -> str:
            elapsed = time.monotonic() - started
            return f"{done / elapsed:.0f}/s" if done and elapsed else ""

        with click.progressbar(
            length=total,
            label=f"{label:<8}",
            show_pos=True,
            show_eta=True,
            item_show_func=rate,
            file=sys.stderr,
        ) as bar:

            def advance(n: int) -> None:
                nonlocal done
                done += n
                bar.update(n, done)

            yield advance
