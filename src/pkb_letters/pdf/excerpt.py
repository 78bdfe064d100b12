"""A few pages of a big PDF, written out as a small PDF of their own.

Takes a PDF open in pikepdf, or the objects of one read otherwise (`ExcerptObjects`: a file read
an object at a time, `lazy`), and some of its pages; gives the bytes of a PDF holding just
those pages, in that order, and the objects they use. It is for readers whose memory would
otherwise grow with the file: PDFium parses every page before the one it is asked for (it fills
its page list in order, about 1.8 KB a page) and qpdf holds the whole cross-reference table.
Given the excerpt, what they hold depends on the pages they check, not on the size of the file
or on where in it the pages are.

qpdf's own page copying (``copy_foreign``) is no use here: it asks of every object it copies
whether it is a page, and to answer, qpdf lists every page of the file (about 4 KB a page).
So the objects are written here, each as it was read, numbered afresh from 1 (qpdf takes
an object number far beyond a small file's size for damage): its text (qpdf's, or the other
reader's) with the references renumbered; a stream's data is copied still encoded. The
attributes the pages inherit from the page tree are set on the pages themselves, so each page
looks as it does in the file. Another page a copied object points to (a link's target, an
annotation's page) is left out, and the reference reads as null, as the PDF standard says of a
reference to no object.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterable
from typing import Protocol

import pikepdf

from pkb_letters.pdf.pages import INHERITABLE, inherited
from pkb_letters.pdf.syntax import ObjectFile, qpdf_dictionary_text, qpdf_text, references, renumberer

__all__ = ["ExcerptObjects", "excerpt"]

Body = bytes | tuple[bytes, bytes]  # an object's text, or a stream's dictionary (less /Length) and its data
ObjGen = tuple[int, int]

CATALOG_KEYS = ("/OCProperties",)  # what a reader needs from the catalog to draw a page: which layers show


class ExcerptObjects(Protocol):
    """Where an excerpt's objects come from, as text in PDF syntax: references as "12 0 R", strings
    in brackets with every bracket inside escaped, or in hex."""

    def page(self, page) -> tuple[ObjGen, bytes]:
        """The page's object, and its dictionary less /Parent with what it inherits set on it, ending in ``>>``."""

    def catalog_entries(self) -> bytes:
        """The catalog's `CATALOG_KEYS`, each with a space before it."""

    def body(self, objgen: ObjGen) -> Body | None:
        """An object's text, or a stream's dictionary less /Length and its data; None for a page or a page tree node."""


def excerpt(pdf: pikepdf.Pdf | ExcerptObjects, pages: Iterable) -> bytes:
    """The PDF of `pages` (indirect page objects of `pdf`, as its reader gives them) alone. Raises
    on an object the reader cannot read, or could not write as it was."""
    objects = _QpdfObjects(pdf) if isinstance(pdf, pikepdf.Pdf) else pdf
    read = [objects.page(page) for page in pages]
    texts = dict(read)
    if (0, 0) in texts or len(texts) != len(read):
        raise ValueError("a page is not an indirect object, or is in the page tree twice")
    catalog_entries = objects.catalog_entries()
    used = _objects(objects, set(texts), [*texts.values(), catalog_entries])
    # numbers: the pages from 1, then the catalog and the page tree, then every object they use
    numbers = {objgen: number for number, objgen in enumerate(texts, 1)}
    catalog, tree = len(texts) + 1, len(texts) + 2
    numbers.update((objgen, number) for number, objgen in enumerate(used, tree + 1))
    renumbered = _renumbering(numbers)
    bodies = [renumbered(text)[:-2] + b"/Parent %d 0 R >>" % tree for text in texts.values()]
    bodies.append(b"<< /Type /Catalog /Pages %d 0 R%s >>" % (tree, renumbered(catalog_entries)))
    kids = b" ".join(b"%d 0 R" % number for number in range(1, len(texts) + 1))
    bodies.append(b"<< /Type /Pages /Count %d /Kids [ %s ] >>" % (len(texts), kids))
    bodies.extend(renumbered(body) for body in used.values())
    return _write(bodies, catalog)


def _objects(objects: ExcerptObjects, pages: set[ObjGen], texts: Iterable[bytes]) -> dict[ObjGen, Body]:
    """Every object the texts refer to, and those they refer to, in the order met; other pages left out."""
    bodies: dict[ObjGen, Body] = {}
    seen = set(pages)
    todo: deque[ObjGen] = deque()

    def follow(text: bytes) -> None:
        for objgen in references(text):
            if objgen not in seen:
                seen.add(objgen)
                todo.append(objgen)

    for text in texts:
        follow(text)
    while todo:
        objgen = todo.popleft()
        body = objects.body(objgen)
        if body is None:
            continue  # another page, or the page tree: not ours to take
        if isinstance(body, tuple):
            head, data = body
            follow(head)
            bodies[objgen] = (head[:-2] + b"/Length %d >>\nstream\n" % len(data), data + b"\nendstream")
        else:
            follow(body)
            bodies[objgen] = body
    return bodies


def _renumbering(numbers: dict[ObjGen, int]):
    """An object's text with its references renumbered by `numbers`; one to an object left out reads as null."""
    renumber = renumberer(lambda number, generation: numbers.get((number, generation)))

    def renumbered(body: Body) -> bytes:
        if isinstance(body, tuple):  # a stream: its data is left alone
            return renumber(body[0]) + body[1]
        return renumber(body)

    return renumbered


# -- objects as qpdf reads them ---------------------------------------------------------------


class _QpdfObjects:
    def __init__(self, pdf: pikepdf.Pdf) -> None:
        self._pdf = pdf

    def page(self, page: pikepdf.Dictionary) -> tuple[ObjGen, bytes]:
        items = {key: value for key, value in page.items() if key != "/Parent"}
        for key in INHERITABLE:
            if key not in items:
                value = inherited(page, key)
                if value is not None:
                    items[key] = value
        return page.objgen, qpdf_dictionary_text(items)

    def catalog_entries(self) -> bytes:
        root = self._pdf.Root
        return b"".join(
            b" " + qpdf_text(pikepdf.Name(key)) + b" " + qpdf_text(root[key]) for key in CATALOG_KEYS if key in root
        )

    def body(self, objgen: ObjGen) -> Body | None:
        obj = self._pdf.get_object(objgen)
        if isinstance(obj, pikepdf.Dictionary) and obj.get("/Type") in (pikepdf.Name.Page, pikepdf.Name.Pages):
            return None
        if isinstance(obj, pikepdf.Stream):
            head = {key: value for key, value in obj.stream_dict.items() if key != "/Length"}
            return qpdf_dictionary_text(head), obj.read_raw_bytes()
        return obj.unparse(resolved=True)


def _write(bodies: list[bytes], root: int) -> bytes:
    out = io.BytesIO()
    pdf = ObjectFile(out, "%PDF-1.7")
    for body in bodies:
        pdf.write(pdf.allocate(), body)
    pdf.close(root)
    return out.getvalue()
