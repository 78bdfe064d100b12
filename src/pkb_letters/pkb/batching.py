"""Calling PKB for many patients: failing batches split to isolate a bad identifier, and a
bounded pool of concurrent single-patient requests for the REST route.

`isolate_failures` retries a failing batch whole, then in halves, down to single patients,
so one identifier PKB chokes on fails alone instead of taking 499 others with it. When
nothing in a batch succeeds, it is PKB that is failing, not an identifier: the job stops
(`PkbUnavailable`) and can be resumed, rather than excluding patients for PKB's outage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import islice
from typing import Generic, TypeVar

from pkb_letters.errors import PkbApiError, PkbAuthError, PkbOutcomeUnknown, PkbUnavailable

T = TypeVar("T")
R = TypeVar("R")

WHOLE_BATCH_ATTEMPTS = 3
SINGLE_ATTEMPTS = 8  # a lone patient failing this often while others succeed is the bad identifier


@dataclass(frozen=True)
class Failed:
    """A part of a batch that kept failing, with PKB's last answer."""

    error: PkbApiError
    attempts: int


def is_batch_failure(error: PkbApiError) -> bool:
    """Failures that another try or a smaller batch may get past; others stop the job."""
    if isinstance(error, (PkbAuthError, PkbUnavailable)):
        return False
    if isinstance(error, PkbOutcomeUnknown):
        return True
    return error.status is not None and (error.status == 400 or error.status >= 500)


class _Tree(Generic[T, R]):
    def __init__(self, call: Callable[[Sequence[T]], R], size: int) -> None:
        self.call = call
        self.successes = 0
        self.consecutive_failures = 0
        # Enough to walk from the whole batch down to one bad identifier, and no more.
        self.failure_limit = WHOLE_BATCH_ATTEMPTS + math.ceil(math.log2(max(size, 1))) + SINGLE_ATTEMPTS + 4
        self.last_error: PkbApiError | None = None

    def attempt(self, part: Sequence[T], attempts: int) -> R | Failed:
        for _ in range(attempts):
            try:
                result = self.call(part)
            except PkbApiError as error:
                if not is_batch_failure(error):
                    raise
                self._failed(error)
                continue
            self.successes += 1
            self.consecutive_failures = 0
            return result
        assert self.last_error is not None
        return Failed(self.last_error, attempts)

    def _failed(self, error: PkbApiError) -> None:
        self.last_error = error
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.failure_limit:
            raise PkbUnavailable(
                f"PKB failed {self.consecutive_failures} requests in a row (last: {error})",
                error.status,
                processed=None,
            ) from error

    def walk(self, part: Sequence[T], attempts: int) -> Iterator[tuple[Sequence[T], R | Failed]]:
        outcome = self.attempt(part, attempts)
        if not isinstance(outcome, Failed) or len(part) == 1:
            yield part, outcome
            return
        middle = len(part) // 2
        for half in (part[:middle], part[middle:]):
            yield from self.walk(half, SINGLE_ATTEMPTS if len(half) == 1 else 1)


def isolate_failures(batch: Sequence[T], call: Callable[[Sequence[T]], R]) -> Iterator[tuple[Sequence[T], R | Failed]]:
    """Yield (part, result) for the parts that succeeded, then (patient, Failed) for the rest."""
    tree: _Tree[T, R] = _Tree(call, len(batch))
    failures = []
    for part, outcome in tree.walk(batch, SINGLE_ATTEMPTS if len(batch) == 1 else WHOLE_BATCH_ATTEMPTS):
        if isinstance(outcome, Failed):
            failures.append((part, outcome))
        else:
            yield part, outcome
    if failures and not tree.successes and len(batch) > 1:
        raise PkbUnavailable(
            f"PKB failed every request for a batch of {len(batch)} (last: {tree.last_error})", processed=None
        )
    yield from failures


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last may be shorter), taken from the iterable as each is asked for."""
    todo = iter(items)
    while batch := list(islice(todo, size)):
        yield batch


class ConsecutiveFailures:
    """Stops a run of single-patient requests once too many fail in a row."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def succeeded(self) -> None:
        self.count = 0

    def failed(self, error: PkbApiError) -> None:
        self.count += 1
        if self.count >= self.limit:
            raise PkbUnavailable(
                f"PKB failed {self.count} patients in a row (last: {error})", error.status, processed=None
            ) from error


def run_bounded(
    function: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    record: Callable[[T, R | PkbApiError], None],
    settle: Callable[[], None] = lambda: None,
) -> None:
    """Run `function` over `items` on `workers` threads, at most 2×workers in flight.

    `record` runs on the calling thread (which owns the journal) for each result, in
    completion order; PKB errors are passed to it as values. `settle` runs after each set
    of results that arrived together has been recorded, so a caller can commit them in one
    transaction. If `record` raises (say, too many failures in a row), nothing more is sent,
    and what is already in flight is still recorded, and settled, before the error goes up:
    an answer carrying codes must never be dropped.
    """

    def guarded(item: T) -> R | PkbApiError:
        try:
            return function(item)
        except PkbApiError as error:
            return error

    pending: dict[Future, T] = {}
    iterator = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pkb") as pool:
        try:
            while True:
                while len(pending) < 2 * workers:
                    try:
                        item = next(iterator)
                    except StopIteration:
                        break
                    pending[pool.submit(guarded, item)] = item
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                try:
                    for future in done:
                        record(pending.pop(future), future.result())
                finally:
                    settle()
        except BaseException:
            try:
                _record_in_flight(pending, record)
            finally:
                settle()
            raise


def _record_in_flight(pending: dict[Future, T], record: Callable[[T, R | PkbApiError], None]) -> None:
    for future, item in pending.items():
        if future.cancel():
            continue
        result = future.result()
        if isinstance(result, PkbApiError):
            continue  # nothing was issued that we could keep
        try:
            record(item, result)
        except PkbApiError:
            pass  # the first error is the one to report
