"""A PDF's page tree read: pages found by number, and the attributes a page inherits from the nodes above it.

Takes the page tree's root, or a page, as pikepdf or pypdf (`lazy`) parsed it; gives a page by its
number (`PageTree`), walking down by the nodes' /Count and parsing only the nodes on the way, and a
page's inheritable attributes as the page tree sets them (`inherited`, `INHERITABLE`). pypdf is not
imported here: a reader of a small file reads it with qpdf alone.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

import pikepdf

__all__ = ["INHERITABLE", "PageTree", "inherited", "inherited_attributes"]

INHERITABLE = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")  # ISO 32000-1, 7.7.3.4
_MAX_TREE_DEPTH = 64  # a page tree is shallow; a /Parent loop is a broken file, not a reason to hang


def _itself(value):
    return value


def inherited(page, key: str, resolve: Callable = _itself, null: type | tuple[type, ...] = ()):
    """A page attribute set on the page or on a /Pages node above it, as written there (a reference stays
    one); None where there is none. A null is no attribute, as qpdf takes it (pikepdf gives one as None;
    pypdf's is of type `null`). `resolve` gives the node a /Parent reference points to (pypdf's; pikepdf's
    come resolved)."""
    node = page
    for _ in range(_MAX_TREE_DEPTH):
        if not isinstance(node, (dict, pikepdf.Dictionary)):  # pypdf's dictionaries are dicts
            return None
        # asked with `in` first: pikepdf's get of a key that is not there costs seven times more
        if key in node:
            value = node.get(key)  # not node[key]: pypdf's would resolve a reference
            if value is not None and not isinstance(value, null):
                return value
        node = resolve(node.get("/Parent")) if "/Parent" in node else None
    return None


def inherited_attributes(node, resolve: Callable = _itself, null: type | tuple[type, ...] = ()) -> dict:
    """Every `INHERITABLE` attribute `node` has or inherits (`inherited`), by key: what a page under it inherits."""
    return {key: value for key in INHERITABLE if (value := inherited(node, key, resolve, null)) is not None}


class PageTree:
    """Pages by number (from 1), found by the nodes' /Count; the nodes on the last page's path are kept,
    so reading pages in order parses each node once. Each node met is checked against its kids: a /Count
    that is not the pages under a node would have pages found at the wrong place, or not at all.

    The objects are pikepdf's or pypdf's (`lazy`). pypdf's are Python objects, a node's 64 kids
    some 14 KB: so of a node's kids only the pages are kept parsed, and a node is parsed again when
    the walk goes down into it (`LazyPdf` keeps the last few)."""

    def __init__(self, root, resolve: Callable = _itself) -> None:
        self._root = root
        self._resolve = resolve  # pypdf's object for a reference (pikepdf's come resolved)
        self._path: list[_Kids] = []  # the kids of each node from the root down to the last page's parent
        self.disagreements: dict[tuple[int, int], str] = {}
        self.count = self._kids(root, 0).count

    def page(self, number: int):
        if not 1 <= number <= self.count:
            raise IndexError(f"page {number} is not in the file's {self.count} pages")
        index, node, first = number - 1, self._root, 0
        for depth in range(_MAX_TREE_DEPTH):
            if depth == len(self._path) or self._path[depth].node is not node:  # the same kid is the same object
                del self._path[depth:]
                self._path.append(self._kids(node, first))
            kids = self._path[depth]
            position = bisect.bisect_right(kids.starts, index) - 1
            kid = kids.kids[position]
            if not kids.nodes[position]:
                return kid
            node, first = kid, kids.starts[position]
        raise ValueError(f"the page tree is more than {_MAX_TREE_DEPTH} levels deep")

    def _kids(self, node, first: int) -> _Kids:
        """`node`'s kids: each page as its dictionary, each node as its parent has it (a pypdf reference)."""
        kids, starts, nodes = [], [], []
        at = first
        resolved = self._resolve
        parsed = resolved(node)
        for kid in resolved(parsed.get("/Kids", ())):
            page = resolved(kid)
            is_node = "/Kids" in page
            kids.append(kid if is_node else page)
            starts.append(at)
            nodes.append(is_node)
            count = max(int(page.get("/Count", 0)), 0) if is_node else 1
            grandchildren = len(resolved(page.get("/Kids"))) if is_node else 0
            if is_node and count == 0 and grandchildren:  # no page number leads into it: checked here
                self._disagree(page, f"says it has no pages, but has {grandchildren} kid(s)")
            at += count
        claimed = parsed.get("/Count")
        if claimed is not None and int(claimed) != at - first:
            self._disagree(parsed, f"says it has {int(claimed)} page(s); its kids add up to {at - first}")
        return _Kids(node, first, kids, starts, nodes, at - first)

    def _disagree(self, node, detail: str) -> None:
        number, generation = key = _objgen(node)
        self.disagreements[key] = f"page tree node {number} {generation} R {detail}"


def _objgen(obj) -> tuple[int, int]:
    if isinstance(obj, pikepdf.Object):
        return obj.objgen
    reference = obj.indirect_reference
    return (0, 0) if reference is None else (reference.idnum, reference.generation)


@dataclass
class _Kids:
    node: object  # as its parent's /Kids has it: a pikepdf.Dictionary, or a pypdf reference
    first: int  # the number, from 0, of the first page under `node`
    kids: list  # pages as dictionaries, nodes as `node` is
    starts: list[int]  # the number of the first page under each kid
    nodes: list[bool]  # whether each kid is a node (else a page)
    count: int
