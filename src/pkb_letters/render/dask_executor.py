"""Rendering chunks on a Dask distributed cluster (`--executor dask://HOST:PORT`).

The same chunk function as the local pool, `render.render_chunk`, runs on the
cluster's workers. What goes out: the render spec with the template folder's files
as bytes (`TemplateBundle`, sent once and shared by every chunk), then one task per
chunk carrying that chunk's letters and their live codes. What comes back: the
chunk's PDF and page counts. Workers never see the journal, PKB or the job folder.

Dask reschedules the chunks of a worker that dies (up to the scheduler's
`allowed-failures`); a chunk's outcome depends only on its task, so a chunk laid out
twice is laid out the same. If the scheduler goes away, or a chunk keeps killing its
workers, the job stops with `RenderClusterError` and resumes from the last chunk
the journal recorded.

A chunk that raises on a worker is returned as a value rather than raised there:
Dask's worker logs the arguments of a failed task, and those are patients' details.

dask[distributed] is an optional dependency (`pip install pkb-letters[dask]`),
imported only when a job asks for a cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import uuid
from concurrent.futures import CancelledError, Future, InvalidStateError
from dataclasses import dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from pkb_letters import __version__
from pkb_letters.config import LOCAL_EXECUTOR, dask_scheduler_address
from pkb_letters.errors import PkbLettersError, RenderClusterError
from pkb_letters.render.chunks import ChunkOutcome, ChunkTask, RenderSpec, render_chunk
from pkb_letters.render.executor import ChunkExecutor, InlineExecutor, local_executor
from pkb_letters.render.template_bundle import TemplateBundle

if TYPE_CHECKING:
    import distributed

WORKER_WAIT_SECONDS = 60
# The versions a worker must share with this process for its pages to be byte-for-byte the same.
LAYOUT_PACKAGES = ("weasyprint", "pydyf", "tinycss2", "jinja2", "zxing-cpp", "pillow")
logger = logging.getLogger(__name__)


def chunk_executor(executor: str, spec: RenderSpec, workers: int, chunks: int) -> ChunkExecutor:
    """The executor a job's `executor` setting names: `local` or `dask://HOST:PORT`."""
    if executor == LOCAL_EXECUTOR:
        return local_executor(spec, workers, chunks)
    if chunks == 0:
        return InlineExecutor(spec)  # nothing to render: no reason to reach for the cluster
    return DaskExecutor(spec, dask_scheduler_address(executor))


@dataclass(frozen=True)
class ShippedSpec:
    """A render spec that brings its template along, for a worker on another machine."""

    spec: RenderSpec
    template: TemplateBundle
    versions: tuple[tuple[str, str], ...]

    def local_spec(self) -> RenderSpec:
        """The spec pointing at this process's copy of the template (the same path on every call,
        so the renderer cache in `render` keeps working)."""
        return dataclasses.replace(self.spec, template_dir=self.template.materialise())


@dataclass(frozen=True)
class Raised:
    """What a chunk raised on a worker, brought back to be raised here."""

    error: BaseException


_one_chunk_at_a_time = threading.Lock()  # a renderer (fonts, Pango) is not shared between threads


def render_shipped_chunk(shipped: ShippedSpec, task: ChunkTask) -> ChunkOutcome | Raised:
    """The task a worker runs for each chunk."""
    try:
        mismatch = _version_mismatch(shipped.versions)
        if mismatch:
            raise RenderClusterError(
                f"a worker has {mismatch}: its pages would differ from a local run; "
                "install the same versions on every worker"
            )
        with _one_chunk_at_a_time:
            return render_chunk(shipped.local_spec(), task)
    except Exception as exc:
        return Raised(exc if isinstance(exc, PkbLettersError) else RuntimeError(f"{type(exc).__name__}: {exc}"))


@functools.cache
def layout_versions() -> tuple[tuple[str, str], ...]:
    return (("pkb-letters", __version__), *((name, version(name)) for name in LAYOUT_PACKAGES))


def _version_mismatch(wanted: tuple[tuple[str, str], ...]) -> str | None:
    for (name, theirs), (_, ours) in zip(wanted, layout_versions(), strict=True):
        if theirs != ours:
            return f"{name} {ours}, the job runs {theirs}"
    return None


class DaskExecutor:
    """Renders chunks on the workers of a running Dask scheduler."""

    def __init__(self, spec: RenderSpec, address: str) -> None:
        distributed = _import_distributed()
        self.address = address
        try:
            self._client = distributed.Client(address, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise RenderClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        try:
            self.workers = self._wait_for_workers()
            shipped = ShippedSpec(spec, TemplateBundle.read(spec.template_dir), layout_versions())
            # Sent once; if the worker holding it dies, Dask makes it again from the scheduler's copy.
            self._shipped = self._client.submit(_identity, shipped, key=f"pkb-spec-{spec.job_id}-{_unique()}")
        except BaseException:
            self._client.close()
            raise
        self._job_id = spec.job_id
        logger.info("render: %d workers on the Dask cluster at %s", self.workers, address)

    def _wait_for_workers(self) -> int:
        try:
            self._client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
        except (OSError, TimeoutError) as exc:
            raise RenderClusterError(
                f"the Dask scheduler at {self.address} has no workers (waited {WORKER_WAIT_SECONDS} s)"
            ) from exc
        return len(self._client.nthreads())  # one chunk at a time per worker process

    def submit(self, task: ChunkTask) -> Future[ChunkOutcome]:
        key = f"pkb-chunk-{self._job_id}-{task.index}-{_unique()}"  # no patient data in what the dashboard shows
        try:
            remote = self._client.submit(render_shipped_chunk, self._shipped, task, key=key)
        except Exception as exc:
            raise self._lost(exc) from exc
        return self._bridge(remote, task)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing after the scheduler went away is not a second error
            self._client.close(timeout=10)

    def _bridge(self, remote: distributed.Future, task: ChunkTask) -> Future[ChunkOutcome]:
        """A concurrent.futures Future for a Dask one: results are fetched and the Dask
        future released at once, so no worker keeps a chunk (and its codes) any longer."""
        local: Future[ChunkOutcome] = Future()
        local.add_done_callback(lambda f: self._cancel(remote) if f.cancelled() else None)
        remote.add_done_callback(lambda r: self._settle(local, r, task))
        return local

    def _settle(self, local: Future[ChunkOutcome], remote: distributed.Future, task: ChunkTask) -> None:
        if local.cancelled():
            return
        try:
            outcome = remote.result()
        except BaseException as exc:
            outcome = Raised(self._chunk_failed(exc, task))
        finally:
            remote.release()
        with contextlib.suppress(InvalidStateError):  # cancelled meanwhile: nobody is waiting
            if isinstance(outcome, Raised):
                local.set_exception(outcome.error)
            else:
                local.set_result(outcome)

    def _cancel(self, remote: distributed.Future) -> None:
        with contextlib.suppress(Exception):  # the cluster is gone: nothing left to cancel
            remote.cancel()

    def _chunk_failed(self, exc: BaseException, task: ChunkTask) -> BaseException:
        distributed = _import_distributed()
        if isinstance(exc, distributed.KilledWorker):
            return RenderClusterError(
                f"chunk {task.index} was running on each of the Dask workers that died "
                f"({exc}); look for memory limits or crashes in the worker logs"
            )
        if isinstance(exc, CancelledError | OSError | TimeoutError):  # cancelled by the client: the scheduler is gone
            return self._lost(exc)
        return exc

    def _lost(self, exc: BaseException) -> RenderClusterError:
        return RenderClusterError(f"lost the Dask scheduler at {self.address} ({type(exc).__name__}: {exc})")


def _identity(value: Any) -> Any:
    return value


def _unique() -> str:
    return uuid.uuid4().hex[:12]


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise RenderClusterError(
            "rendering on a Dask cluster needs dask.distributed: pip install 'pkb-letters[dask]'"
        ) from exc
    return distributed
