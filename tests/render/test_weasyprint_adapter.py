"""WeasyPrint's internals are used in one module only, and still have the shape that module uses.

A WeasyPrint release may move or change anything outside its public API; these tests name what
moved, rather than leaving the stamping tests to fail on a letter that prints differently."""

from __future__ import annotations

import ast
import inspect
import io
from pathlib import Path

import pdfplumber
import pytest
import weasyprint
from PIL import Image
from weasyprint import HTML, Page
from weasyprint.text.fonts import FontConfiguration

from pkb_letters.render import weasyprint_adapter as wp

SRC = Path(wp.__file__).parents[1]
ADAPTER = Path(wp.__file__).relative_to(SRC).as_posix()
# WeasyPrint's documented API: what `weasyprint` exports, the font configuration and the URL fetcher.
PUBLIC = {
    "weasyprint": set(weasyprint.__all__),
    "weasyprint.document": {"Document", "DocumentMetadata", "Page"},
    "weasyprint.text.fonts": {"FontConfiguration"},
    "weasyprint.urls": {"URLFetcher", "FatalURLFetchingError"},
}
PRIVATE_ATTRIBUTES = {"_page_box", "_box"}  # WeasyPrint's own: a page's box tree, a placeholder's box


def _internals_used(path: Path) -> list[str]:
    """Each non-public WeasyPrint import, private attribute and `Page.__new__` in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names
                      if alias.name.startswith("weasyprint.") and alias.name not in PUBLIC]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "weasyprint":
            public = PUBLIC.get(node.module, set())
            found += [f"{node.module}.{alias.name}" for alias in node.names if alias.name not in public]
        elif isinstance(node, ast.Attribute) and (node.attr in PRIVATE_ATTRIBUTES or node.attr == "__new__"):
            found.append(f"{ast.unparse(node)} (line {node.lineno})")
    return found


def test_no_module_but_the_adapter_uses_weasyprint_internals():
    used = {path.relative_to(SRC).as_posix(): _internals_used(path) for path in sorted(SRC.rglob("*.py"))}
    assert _internals_used(SRC / ADAPTER), "the check finds nothing even in the adapter: it is broken"
    assert {name: found for name, found in used.items() if found and name != ADAPTER} == {}


def test_the_check_finds_an_internal_import_and_a_private_attribute(tmp_path):
    source = tmp_path / "module.py"
    source.write_text("from weasyprint import HTML\nfrom weasyprint.text.fonts import FontConfiguration\n"
                      "from weasyprint.layout import absolute\nimport weasyprint.draw\n"
                      "def tree(page):\n    return page._page_box\n", encoding="utf-8")
    assert _internals_used(source) == ["weasyprint.layout.absolute", "weasyprint.draw", "page._page_box (line 6)"]


# -- the shape of what the adapter uses -------------------------------------------------------------


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_functions_the_adapter_calls_take_the_arguments_it_passes():
    from weasyprint.draw import draw_replacedbox
    from weasyprint.draw.text import draw_text
    from weasyprint.images import RasterImage
    from weasyprint.text.line_break import split_first_line

    assert _parameters(split_first_line)[:5] == ["text", "style", "context", "max_width", "justification_spacing"]
    assert _parameters(draw_text) == ["stream", "textbox", "offset_x", "text_overflow", "block_ellipsis"]
    assert _parameters(draw_replacedbox) == ["stream", "box"]
    assert _parameters(RasterImage)[:7] == ["pillow_image", "image_id", "image_data", "filename", "cache",
                                            "orientation", "options"]
    assert _parameters(Page.paint)[:3] == ["self", "stream", "scale"]


def test_pdf_variants_say_which_are_tagged():
    assert [wp.variant_tags(v) for v in ("pdf/x-4", "pdf/a-2b", "pdf/a-2a", "pdf/ua-1")] == [False, False, True, True]
    assert wp.initial_value("clip") == () and wp.initial_value("mask_border_source") == ("none", None)


_HTML = """<style>@page { size: 100mm 60mm; margin: 5mm }
  p { font-family: Liberation Sans; font-size: 12pt; margin: 0 }
  .abs { position: absolute; top: 20mm; left: 0 }</style>
<p class="name">Amelia Smith</p><p class="abs">Flat 3</p>"""


@pytest.fixture(scope="module")
def document():
    return HTML(string=_HTML).render(font_config=FontConfiguration())


def _text_box(tree, text: str):
    (box,) = [box for box in tree.descendants(placeholders=True)
              if type(box).__name__ == "TextBox" and box.text == text]
    return box


def _placeholder(tree):
    """What an absolutely positioned box leaves in the flow."""
    (found,) = [child for box in tree.descendants() for child in getattr(box, "children", ())
                if type(child).__name__ == "AbsolutePlaceholder"]
    return found


def test_a_page_gives_its_box_tree_and_a_copy_with_another(document):
    page = document.pages[0]
    tree = wp.page_box(page)
    assert type(tree).__name__ == "PageBox" and tree.children
    other = tree.copy_with_children([])
    copy = wp.page_with_tree(page, other)
    assert isinstance(copy, Page) and wp.page_box(copy) is other and wp.page_box(page) is tree
    assert (copy.width, copy.height, copy.anchors) == (page.width, page.height, page.anchors)


def test_a_tree_with_a_box_swapped_copies_only_its_ancestors_and_looks_through_placeholders(document):
    tree = wp.page_box(document.pages[0])
    absolute = _text_box(tree, "Flat 3")
    assert wp.box_kind(_placeholder(tree)) == "BlockBox" and wp.box_kind(tree) == "PageBox"
    replacement = absolute.copy_with_text("Flat 4")
    swapped = wp.swap_tree(tree, lambda box: replacement if box is absolute else None)
    assert swapped is not tree and _text_box(swapped, "Flat 4") is replacement
    assert _text_box(swapped, "Amelia Smith") is _text_box(tree, "Amelia Smith")  # not copied
    assert _text_box(tree, "Flat 3") is absolute  # the original is untouched
    assert _placeholder(swapped) is not _placeholder(tree) and wp.box_kind(_placeholder(swapped)) == "BlockBox"


def test_a_text_is_split_into_lines_and_its_fonts_named_as_weasyprint_lays_it_out(document):
    box = _text_box(wp.page_box(document.pages[0]), "Amelia Smith")
    line = wp.split_first_line("Amelia Smith", box.style, 10_000)
    assert line.resume is None and line.length == len(b"Amelia Smith") and line.layout.text == "Amelia Smith"
    assert abs(line.width - box.width) < 1e-6 and abs(line.height - box.height) < 1e-6
    assert wp.split_first_line("Amelia Smith", box.style, 0).resume == len(b"Amelia ")
    fonts = wp.text_box_fonts(box)
    assert fonts and wp.line_fonts(line.layout, box.style) == fonts
    assert wp.line_fonts(wp.split_first_line("\U000f0000", box.style, 10_000).layout, box.style) is None
    moved = wp.text_box_holding(box, "Ann Smith", wp.split_first_line("Ann Smith", box.style, 10_000), 7.0)
    assert (moved.text, moved.position_x, moved.pango_layout.text) == ("Ann Smith", 7.0, "Ann Smith")
    assert moved.width < box.width and box.text == "Amelia Smith"


def test_a_stamped_page_draws_only_its_own_boxes(document):
    page = document.pages[0]
    tree = wp.page_box(page)
    own = [_text_box(tree, "Flat 3")]
    stamped = wp.StampedPage(page, tree, dict(page.anchors), own)
    pdf = document.copy([stamped]).write_pdf()
    assert pdf.startswith(b"%PDF") and len(pdf) < len(document.write_pdf())
    assert _drawn_text(pdf) == "Flat 3"


def _drawn_text(pdf: bytes) -> str:
    with pdfplumber.open(io.BytesIO(pdf)) as opened:
        return opened.pages[0].extract_text()


def test_a_png_becomes_weasyprints_raster_image():
    png = io.BytesIO()
    Image.new("L", (3, 2), 255).save(png, format="PNG")
    image = wp.raster_image(png.getvalue(), "id", "none", dict(weasyprint.DEFAULT_OPTIONS))
    assert wp.is_raster(image) and (image.width, image.height) == (3, 2)
    with pytest.raises((ValueError, OSError)):
        wp.raster_image(b"not a png", "id", "none", dict(weasyprint.DEFAULT_OPTIONS))


def test_the_fast_paths_know_which_weasyprint_releases_they_were_checked_on():
    assert wp.check().fast_path == (weasyprint.__version__ in wp.TESTED_VERSIONS["weasyprint"])


def test_a_weasyprint_lacking_an_internal_lays_out_in_full(monkeypatch):
    monkeypatch.setattr(wp, "_MISSING_INTERNALS", "cannot import name 'split_first_line'")
    decision = wp.check()
    assert not decision.fast_path
    assert "lacks an internal used (cannot import name 'split_first_line')" in decision.note
