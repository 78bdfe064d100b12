"""A few pages of a big PDF, written out as a small PDF of their own.

Takes a PDF open in pikepdf and some of its pages; gives the bytes of a PDF holding just
those pages, in that order, and the objects they use. It is for a reader that cannot be
kept from parsing every page before the one it wants (PDFium fills its page list in order,
about 1.8 KB a page): given the excerpt, what it holds depends on the pages it checks, not
on where in the file they are.

qpdf's own page copying (``copy_foreign``) is no use here: it asks of every object it copies
whether it is a page, and to answer, qpdf lists every page of the file (about 4 KB a page).
So the objects are written here, each as qpdf reads it: an object keeps its number (a
cross-reference table in subsections holds sparse numbers), its text is qpdf's, a stream's
data is copied still encoded. The pages' attributes inherited from the page tree are set on
the pages themselves, so each page looks as it does in the file; another page a copied object
points to (a link's target, an annotation's page) is left out, and the reference reads as
null, as the PDF standard says of a reference to no object.
"""

from __future__ import annotations

import io
import re
from collections import deque
from collections.abc import Iterable, Sequence

import pikepdf

__all__ = ["excerpt"]

INHERITABLE = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")  # ISO 32000-1, 7.7.3.4
_CATALOG_KEYS = ("/OCProperties",)  # what a reader needs from the catalog to draw a page: which layers show
_REFERENCE = re.compile(rb"(\d+) (\d+) R(?![^\s()<>\[\]{}/%])")


def excerpt(pdf: pikepdf.Pdf, pages: Sequence[pikepdf.Dictionary]) -> bytes:
    """The PDF of `pages` (indirect page objects of `pdf`) alone. Raises on an object qpdf cannot read."""
    own = {page.objgen for page in pages}
    if (0, 0) in own:
        raise ValueError("a page is not an indirect object")
    texts = {page.objgen: _page_text(page) for page in pages}
    catalog_entries = _catalog_entries(pdf)
    bodies = _objects(pdf, own, [*texts.values(), catalog_entries])
    # the new catalog and page tree take numbers after every object of the file's
    catalog = max([int(pdf.trailer.get("/Size", 0)), *(number + 1 for number, _ in [*bodies, *own])])
    tree = catalog + 1
    for objgen, text in texts.items():
        bodies[objgen] = text[:-2] + b"/Parent %d 0 R >>" % tree
    kids = b" ".join(b"%d %d R" % objgen for objgen in texts)
    bodies[(tree, 0)] = b"<< /Type /Pages /Count %d /Kids [ %s ] >>" % (len(pages), kids)
    bodies[(catalog, 0)] = b"<< /Type /Catalog /Pages %d 0 R%s >>" % (tree, catalog_entries)
    return _write(bodies, catalog)


def _page_text(page: pikepdf.Dictionary) -> bytes:
    """The page's dictionary, less its /Parent, with what it inherits set on it; ends in ``>>``."""
    items = {key: value for key, value in page.items() if key != "/Parent"}
    for key in INHERITABLE:
        if key not in items:
            value = _inherited(page.get("/Parent"), key)
            if value is not None:
                items[key] = value
    return _dictionary_text(items)


def _catalog_entries(pdf: pikepdf.Pdf) -> bytes:
    root = pdf.Root
    return b"".join(b" " + _unparse(pikepdf.Name(key)) + b" " + _unparse(root[key])
                    for key in _CATALOG_KEYS if key in root)


def _objects(pdf: pikepdf.Pdf, own: set[tuple[int, int]], texts: Iterable[bytes]) -> dict[tuple[int, int], bytes]:
    """Every object the texts refer to, and those they refer to, written out; other pages left out."""
    bodies: dict[tuple[int, int], bytes] = {}
    seen = set(own)
    todo: deque[tuple[int, int]] = deque()

    def follow(text: bytes) -> None:
        for match in _REFERENCE.finditer(text):
            objgen = (int(match[1]), int(match[2]))
            if objgen not in seen:
                seen.add(objgen)
                todo.append(objgen)

    for text in texts:
        follow(text)
    while todo:
        objgen = todo.popleft()
        obj = pdf.get_object(objgen)
        if isinstance(obj, pikepdf.Dictionary) and obj.get("/Type") in (pikepdf.Name.Page, pikepdf.Name.Pages):
            continue  # another page, or the page tree: not ours to take
        if isinstance(obj, pikepdf.Stream):
            data = obj.read_raw_bytes()
            items = {key: value for key, value in obj.stream_dict.items() if key != "/Length"}
            head = _dictionary_text(items)
            follow(head)
            bodies[objgen] = head[:-2] + b"/Length %d >>\nstream\n" % len(data) + data + b"\nendstream"
        else:
            text = obj.unparse(resolved=True)
            follow(text)
            bodies[objgen] = text
    return bodies


def _dictionary_text(items: dict) -> bytes:
    return b"<< " + b"".join(_unparse(pikepdf.Name(key)) + b" " + _unparse(value) + b" "
                             for key, value in items.items()) + b">>"


def _unparse(value) -> bytes:
    """PDF syntax for a value as pikepdf gives it (numbers and booleans come as Python's own)."""
    if isinstance(value, pikepdf.Object):
        return value.unparse()  # an indirect object as a reference, a direct one in full
    return pikepdf.Array([value]).unparse()[2:-2]


def _inherited(node, key: str):
    depth = 0
    while isinstance(node, pikepdf.Dictionary) and depth < 64:
        if key in node:
            return node[key]
        node, depth = node.get("/Parent"), depth + 1
    return None


def _write(bodies: dict[tuple[int, int], bytes], root: int) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for (number, generation), body in sorted(bodies.items()):
        offsets[number] = (out.tell(), generation)
        out.write(b"%d %d obj\n%s\nendobj\n" % (number, generation, body))
    xref = out.tell()
    out.write(b"xref\n0 1\n0000000000 65535 f \n")
    numbers = sorted(offsets)
    start = 0
    for end in range(1, len(numbers) + 1):
        if end == len(numbers) or numbers[end] != numbers[end - 1] + 1:  # a run of consecutive numbers ends
            out.write(b"%d %d\n" % (numbers[start], end - start))
            out.write(b"".join(b"%010d %05d n \n" % offsets[n] for n in numbers[start:end]))
            start = end
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (numbers[-1] + 1, root, xref))
    return out.getvalue()
