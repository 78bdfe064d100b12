"""A live preview: re-render when the template changes, and serve the page on loopback.

`watch` waits for changes to the template folder (and the patient list, if one is
previewed) with watchfiles and renders again after each; a render that fails (say, a
template saved mid-edit) puts the error on the page instead of stopping. `PreviewServer`
serves the output folder on 127.0.0.1 only, with nothing cached, so the page's poll of
``version.txt`` sees each new render and reloads itself.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast

from watchfiles import watch as watch_changes

from pkb_letters.errors import ConfigError, PkbLettersError
from pkb_letters.preview.results import INDEX_HTML, PreviewRequest, PreviewResult
from pkb_letters.preview.samples_run import check_out_dir, render_preview, write_error_page

LOOPBACK = "127.0.0.1"
logger = logging.getLogger(__name__)


def render_or_report(request: PreviewRequest) -> PreviewResult | PkbLettersError:
    """Render; on a failure the package reports (template, list, settings), show it on the page instead."""
    check_out_dir(request)  # raised, never written on a page: the folder is not ours to write in
    try:
        return render_preview(request)
    except PkbLettersError as exc:
        write_error_page(request, exc)
        return exc


def watch(
    request: PreviewRequest,
    rendered: Callable[[PreviewResult | PkbLettersError], None],
    stop: threading.Event | None = None,
) -> None:
    """Render again after each change to a watched file, until `stop` is set (or Ctrl-C)."""
    paths = [path.resolve() for path in request.watched_paths()]
    for changes in watch_changes(*paths, stop_event=stop, debounce=200, step=50):
        logger.info("preview: %d change(s) in %s; rendering again", len(changes), ", ".join(map(str, paths)))
        rendered(render_or_report(request))


class _QuietHandler(SimpleHTTPRequestHandler):
    """The output folder's files, never cached: every poll of version.txt must reach the server."""

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        logger.debug("preview server: " + format, *args)


class PreviewServer:
    """Serves the preview folder on loopback in a background thread; `close()` stops it."""

    def __init__(self, folder: Path, port: int = 0) -> None:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        try:
            self._server = ThreadingHTTPServer((LOOPBACK, port), handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve the preview on {LOOPBACK}:{port}: {exc.strerror}; choose another --port"
            ) from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="preview-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = cast(tuple[str, int], self._server.server_address[:2])  # AF_INET: never bytes
        return f"http://{host}:{port}/{INDEX_HTML}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> PreviewServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def run_live(
    request: PreviewRequest,
    watching: bool,
    port: int | None,
    report: Callable[[PreviewResult | PkbLettersError], None],
    announce: Callable[[str], None],
    stop: threading.Event | None = None,
) -> None:
    """`--watch` and/or `--serve` after the first render, until Ctrl-C (or `stop`)."""
    stop = stop or threading.Event()
    server = PreviewServer(request.out_dir, port) if port is not None else None
    try:
        if server:
            announce(f"Serving {server.url} on this computer only; the page reloads after each render")
        if watching:
            announce(f"Watching {', '.join(map(str, request.watched_paths()))} for changes; Ctrl-C stops")
            watch(request, report, stop)
        else:
            announce("Ctrl-C stops the server")
            stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server:
            server.close()
