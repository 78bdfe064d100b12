"""A template folder as bytes, for a render worker on a machine that cannot see the folder.

`TemplateBundle.read(folder)` takes every file of the folder (letter.html, letter.css,
fonts, images) and every symbolic link as a link, so that a worker lays out letters
from the same bytes and refuses the same links out of the folder as this machine
would. `materialise()` writes the bundle once per process into a private temporary
folder with the template's own name and returns that folder on every later call.

A bundle holds no patient data and no codes: only what the customer's template is.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

_materialised: dict[str, Path] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class TemplateBundle:
    name: str  # the folder's name: kept, as a template's name appears in its error messages
    files: tuple[tuple[str, bytes], ...]  # (path inside the folder, contents), sorted
    links: tuple[tuple[str, str], ...] = ()  # (path inside the folder, link target as written)

    @classmethod
    def read(cls, folder: Path) -> TemplateBundle:
        folder = folder.resolve()
        files, links = [], []
        for root, dirs, names in os.walk(folder):  # does not follow links: they travel as links
            for name in (*dirs, *names):
                path = Path(root, name)
                inside = path.relative_to(folder).as_posix()
                if path.is_symlink():
                    links.append((inside, os.readlink(path)))
                elif path.is_file():
                    files.append((inside, path.read_bytes()))
        return cls(folder.name, tuple(sorted(files)), tuple(sorted(links)))

    @cached_property
    def digest(self) -> str:
        sha = hashlib.sha256(self.name.encode() + b"\0")
        for inside, data in self.files:
            sha.update(b"f\0" + inside.encode() + b"\0" + hashlib.sha256(data).digest())
        for inside, target in self.links:
            sha.update(b"l\0" + inside.encode() + b"\0" + target.encode() + b"\0")
        return sha.hexdigest()

    def materialise(self) -> Path:
        """This process's copy of the folder, written on first use."""
        with _lock:
            folder = _materialised.get(self.digest)
            if folder is None:
                folder = _materialised[self.digest] = self._write(Path(tempfile.mkdtemp(prefix="pkb-template-")))
            return folder

    def _write(self, parent: Path) -> Path:
        atexit.register(shutil.rmtree, parent, ignore_errors=True)
        folder = parent / self.name
        folder.mkdir(mode=0o700)
        for inside, data in self.files:
            path = folder / inside
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        for inside, target in self.links:
            path = folder / inside
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target)
        return folder
