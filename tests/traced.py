"""How much a piece of work allocates at its peak, for the tests that memory stays flat."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def traced_peak(run: Callable[[], T]) -> tuple[int, T]:
    """The peak of this process's traced allocations while `run` runs, above what was held before,
    and what `run` gave. The test process's own heap is frozen out of the cycle collector's way,
    so a collection inside `run` is quick."""
    gc.collect()
    gc.freeze()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = run()
        return tracemalloc.get_traced_memory()[1] - base, result
    finally:
        tracemalloc.stop()
        gc.unfreeze()
