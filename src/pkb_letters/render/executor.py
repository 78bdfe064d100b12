"""Where chunks are rendered: in this process, or in a pool of worker processes.

Either way the same function, `render.render_chunk`, lays out each chunk; it sees
only the letters it is given and returns the chunk's PDF and page counts. Chunks
go out a few at a time and come back in order, so the journal records them in
print order and memory holds a bounded number of chunks whatever the job's size.

Sequence numbers run without gaps across the whole job. A chunk that leaves a
letter out (its address does not fit, the template fails on it) shifts the
numbers of the chunks after it, which are then laid out again with the right
numbers: rare, since the address fit is checked before any code is issued.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Protocol

from pkb_letters.records import CodePair, PatientRow
from pkb_letters.render.chunks import (
    ChunkOutcome,
    ChunkTask,
    RenderSpec,
    render_chunk,
)

Item = tuple[PatientRow, CodePair]


class ChunkExecutor(Protocol):
    """Runs `render_chunk(spec, task)` somewhere and hands back a future of its outcome."""

    workers: int

    def submit(self, task: ChunkTask) -> Future[ChunkOutcome]: ...

    def close(self) -> None: ...


class InlineExecutor:
    """Renders in this process: for small jobs, where starting workers costs more than it saves."""

    workers = 1

    def __init__(self, spec: RenderSpec) -> None:
        self._spec = spec

    def submit(self, task: ChunkTask) -> Future[ChunkOutcome]:
        future: Future[ChunkOutcome] = Future()
        try:
            future.set_result(render_chunk(self._spec, task))
        except BaseException as exc:  # handed to whoever asks for the result, as a pool would
            future.set_exception(exc)
        return future

    def close(self) -> None:
        pass


class ProcessExecutor:
    """Renders in `workers` processes started afresh ("spawn": no inherited threads, sockets or journal)."""

    def __init__(self, spec: RenderSpec, workers: int) -> None:
        self.workers = workers
        self._spec = spec
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, task: ChunkTask) -> Future[ChunkOutcome]:
        return self._pool.submit(render_chunk, self._spec, task)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def local_executor(spec: RenderSpec, workers: int, chunks: int) -> ChunkExecutor:
    if workers <= 1 or chunks <= 1:
        return InlineExecutor(spec)
    return ProcessExecutor(spec, min(workers, chunks))


def render_in_order(
    executor: ChunkExecutor, chunks: Iterable[Sequence[Item]], first_index: int, first_sequence: int
) -> Iterator[ChunkOutcome]:
    """Each chunk's outcome in order, numbered without gaps from `first_sequence`."""
    window = 2 * executor.workers  # enough to keep every worker busy while the next result is read
    todo = iter(chunks)
    pending: deque[tuple[ChunkTask, Future[ChunkOutcome]]] = deque()
    index, sequence = first_index, first_sequence  # where the next chunk to send out starts
    while True:
        while len(pending) < window and (items := next(todo, None)) is not None:
            task = ChunkTask(index, sequence, tuple(items))
            pending.append((task, executor.submit(task)))
            index, sequence = index + 1, sequence + len(items)
        if not pending:
            return
        task, future = pending.popleft()
        outcome = future.result()
        yield outcome
        if outcome.refused:
            after = task.first_sequence + len(outcome.letters)
            pending = _renumbered(executor, pending, after)
            sequence = after + sum(len(t.items) for t, _ in pending)


def _renumbered(executor: ChunkExecutor, pending, first_sequence: int) -> deque:
    """Lay out the chunks already sent again, numbered after a chunk that left letters out."""
    for _, future in pending:
        future.cancel()
    again: deque = deque()
    for task, _ in pending:
        task = ChunkTask(task.index, first_sequence, task.items)
        again.append((task, executor.submit(task)))
        first_sequence += len(task.items)
    return again
