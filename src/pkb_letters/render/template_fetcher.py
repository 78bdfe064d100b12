"""What WeasyPrint may read while laying out letters: the template's own folder and `data:` URLs.

A template is customer input, and a letter carries live codes: a stylesheet or image
fetched from the network would tell a third party when letters were printed (and,
with a crafted URL, for whom), and a `file://` path could pull another file into the
print file. `TemplateFolderFetcher` refuses everything else (`http(s)://`, `file://`
outside the folder, `..` escapes and symbolic links out of it) before any byte is read.

A refusal stops the rendering (`ResourceRefused` is fatal for WeasyPrint); because
WeasyPrint swallows errors while drawing SVG images, every refusal is also recorded,
and `guarded()` turns either into a `TemplateResourceError` that names the resource.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from weasyprint.urls import FatalURLFetchingError, URLFetcher

from pkb_letters.errors import TemplateResourceError


class ResourceRefused(FatalURLFetchingError):
    """A template asked for something outside its folder."""


class TemplateFolderFetcher(URLFetcher):
    """A WeasyPrint URL fetcher confined to one folder (and `data:` URLs)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(allowed_protocols=("file", "data"), allow_redirects=False)
        self.directory = directory.resolve()
        self.refused: list[str] = []

    def fetch(self, url: str, headers: dict[str, str] | None = None):
        problem = self.problem(url)
        if problem:
            message = (
                f"the template asked for {url}: {problem}; a letter may use only files inside its "
                f"template folder ({self.directory}) and data: URLs"
            )
            self.refused.append(message)
            raise ResourceRefused(message)
        return super().fetch(url, headers)

    def problem(self, url: str) -> str | None:
        """Why `url` may not be read, or None when it may."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "data":
            return None
        if scheme != "file":
            return f"{scheme or 'this'} URLs are not fetched"
        if parts.netloc not in ("", "localhost"):
            return "files on other hosts are not read"
        path = Path(url2pathname(parts.path)).resolve()  # follows "..", %2e%2e and symbolic links
        if not path.is_relative_to(self.directory):
            return "it is outside the template folder"
        return None

    @contextmanager
    def guarded(self) -> Iterator[None]:
        """Run WeasyPrint; turn a refused resource into a `TemplateResourceError` naming it."""
        self.refused.clear()
        try:
            yield
        except ResourceRefused as exc:
            raise TemplateResourceError(str(exc)) from exc
        if self.refused:
            raise TemplateResourceError(self.refused[0])
