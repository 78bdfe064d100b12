"""Print-ready output, checked on real rendered jobs: sheets and blank backs, K-only black,
PDF variants, separation marks read back with libdmtx, envelope windows, split files."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pdfplumber
import pypdfium2
import pytest
from conftest import PATIENTS_CSV, REPO, connection_to, demo_settings, no_weasyprint_warnings
from pdf_inspect import page_words
from PIL import ImageCms
from pypdf import PdfReader
from pypdf.generic import IndirectObject, NameObject

from pkb_letters.assemble import marks, output_intent
from pkb_letters.assemble.mailsort import postcode_key
from pkb_letters.assemble.marks import MarkKind
from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.check.print_check import Code, check_files, pylibdmtx
from pkb_letters.envelope import C5, DL
from pkb_letters.job.pipeline import run_job

GS_CMYK_PROFILE = Path("/usr/share/color/icc/ghostscript/default_cmyk.icc")  # from .ci/system-deps
QPDF = shutil.which("qpdf") or "qpdf"  # from .ci/system-deps


def varied_template(tmp: Path) -> Path:
    """The invitation template, with letters of 1, 2 or 3 pages by sequence (1, 2, 0 extra pages)."""
    folder = tmp / "varied"
    shutil.copytree(REPO / "templates" / "invitation", folder)
    html = (folder / "letter.html").read_text(encoding="utf-8")
    start, end = html.index('<section class="questions">'), html.index("</section>") + len("</section>")
    extra = ('{% for n in range(letter.sequence % 3) %}'
             '<p style="break-before: page">Further information, part {{ n + 1 }}.</p>{% endfor %}')
    (folder / "letter.html").write_text(html[:start] + extra + html[end:], encoding="utf-8")
    return folder


def run(server, out_dir: Path, patients: Path = PATIENTS_CSV, template: Path | None = None, **options):
    overrides = {"template_dir": template} if template else {}
    settings = demo_settings(out_dir, "fhir", **overrides)
    settings = type(settings)(**{**settings.__dict__, "patients": patients})
    with no_weasyprint_warnings():
        run_job(settings, connection_to(server), print_options=PrintOptions(**options))
    return json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def varied(sandbox, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("varied")
    data = run(sandbox, tmp / "job", template=varied_template(tmp))
    return tmp / "job", data


def decode_page(pdf: Path, page: int) -> list[str]:
    image = pypdfium2.PdfDocument(pdf)[page - 1].render(scale=200 / 72, grayscale=True).to_pil()
    return [d.data.decode("ascii") for d in pylibdmtx.decode(image, timeout=3000)]


# --- sheets and blank backs -------------------------------------------------------------------


def test_letters_of_one_two_and_three_pages_fill_whole_sheets(varied):
    out, data = varied
    counts = {e["page_count"] for e in data["letters"]}
    assert counts == {1, 2, 3}
    reader = PdfReader(out / "letters.pdf")
    expected_page = 1
    for entry in data["letters"]:
        assert entry["sheet_count"] == (entry["page_count"] + 1) // 2
        assert entry["first_page"] == expected_page  # every letter starts on a sheet's front
        assert entry["first_page"] % 2 == 1
        expected_page += 2 * entry["sheet_count"]
    assert len(reader.pages) == expected_page - 1 == data["job"]["pages"]
    assert data["job"]["sheets"] == sum(e["sheet_count"] for e in data["letters"]) == len(reader.pages) // 2


def test_blank_backs_are_blank_and_page_numbers_ignore_them(varied):
    out, data = varied
    with pdfplumber.open(out / "letters.pdf") as pdf:
        for entry in data["letters"]:
            pages = pdf.pages[entry["first_page"] - 1 : entry["first_page"] - 1 + 2 * entry["sheet_count"]]
            for n, page in enumerate(pages[: entry["page_count"]], 1):
                assert f"Page {n} of {entry['page_count']}" in page.extract_text()
            for blank in pages[entry["page_count"] :]:
                assert not blank.chars and not blank.rects and not blank.lines and not blank.images


def test_simplex_adds_no_blank_pages(sandbox, tmp_path):
    data = run(sandbox, tmp_path / "job", template=varied_template(tmp_path), duplex=False)
    assert data["job"]["print"]["duplex"] is False
    for entry in data["letters"]:
        assert entry["sheet_count"] == entry["page_count"] == len(entry["marks"])
    assert data["job"]["pages"] == data["job"]["sheets"] == sum(e["page_count"] for e in data["letters"])


# --- colour, fonts, PDF variant -------------------------------------------------------------


def test_all_text_and_marks_are_k_only_black(varied):
    out, _ = varied
    with pdfplumber.open(out / "letters.pdf") as pdf:
        for page in pdf.pages:
            assert {tuple(c["non_stroking_color"]) for c in page.chars} <= {(0, 0, 0, 1)}
            filled = [r for r in page.rects if r["fill"]]
            assert {tuple(r["non_stroking_color"]) for r in filled} <= {(0, 0, 0, 1)}
    reader = PdfReader(out / "letters.pdf")
    content = reader.pages[0].get_contents().get_data().decode("latin-1")
    assert "/DeviceCMYK cs" in content and "0 0 0 1 scn" in content  # WeasyPrint's K-only text colour
    assert "0 0 0 1 k" in content  # the DataMatrix
    for text_object in re.findall(r"\bBT\b.*?\bET\b", content, re.S):
        assert not re.search(r"\b(rg|g)\n", text_object)  # no RGB or grey fill inside any text object


def output_intent_of(pdf: Path):
    (intent,) = PdfReader(pdf).trailer["/Root"]["/OutputIntents"]
    return intent.get_object()


def assert_qpdf_finds_no_errors(pdf: Path) -> None:
    result = subprocess.run([QPDF, "--check", str(pdf)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr  # 2: errors, 3: warnings
    assert "No syntax or stream encoding errors found" in result.stdout


def assert_fogra39_intent(intent, subtype: str) -> None:
    assert intent["/Type"] == "/OutputIntent"
    assert intent["/S"] == subtype
    assert intent["/OutputConditionIdentifier"] == "FOGRA39"
    assert intent["/RegistryName"] == "http://www.color.org"
    assert intent["/Info"] == "Coated FOGRA39 (ISO 12647-2:2004)"
    assert "ISO 12647-2:2004" in intent["/OutputCondition"]
    profile = intent["/DestOutputProfile"].get_object()
    assert profile["/N"] == 4  # a CMYK profile
    assert profile.get_data() == output_intent.DEFAULT_PROFILE.read_bytes()


def test_pdf_x4_carries_our_fogra39_output_intent_and_embedded_fonts(varied):
    out, _ = varied
    reader = PdfReader(out / "letters.pdf")
    assert reader.pdf_header == "%PDF-1.6"
    assert_fogra39_intent(output_intent_of(out / "letters.pdf"), "/GTS_PDFX")
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode("utf-8")
    assert "PDF/X-4" in xmp
    info = reader.trailer["/Info"].get_object()
    assert isinstance(info.raw_get("/Trapped"), NameObject) and info["/Trapped"] == "/False"  # a name, not a string
    assert str(info["/Producer"]) in xmp  # the document info and the XMP agree
    for page in reader.pages:
        assert "/TrimBox" in page
    assert_qpdf_finds_no_errors(out / "letters.pdf")
    report = check_files([out / "letters.pdf"], out / "manifest.json")
    assert report.ok, report.text()


def test_pdf_a2b_variant_carries_the_same_cmyk_output_intent(sandbox, tmp_path):
    pdf = tmp_path / "job" / "letters.pdf"
    run(sandbox, tmp_path / "job", pdf_variant="pdf/a-2b")
    assert_fogra39_intent(output_intent_of(pdf), "/GTS_PDFA1")
    reader = PdfReader(pdf)
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode("utf-8")
    assert re.search(r"pdfaid:part[^0-9]*2", xmp)
    assert f'pdf:Producer="{reader.metadata["/Producer"]}"' in xmp  # PDF/A: document info matches the XMP
    assert isinstance(reader.trailer["/Root"].raw_get("/Metadata"), IndirectObject)  # a stream is never direct
    with pdfplumber.open(pdf) as plumbed:
        for page in plumbed.pages:
            assert page.chars
            assert {tuple(c["non_stroking_color"]) for c in page.chars} == {(0, 0, 0, 1)}
    assert_qpdf_finds_no_errors(pdf)
    assert check_files([pdf], tmp_path / "job" / "manifest.json").ok


def test_the_print_rooms_own_profile_replaces_ours(sandbox, tmp_path):
    pdf = tmp_path / "job" / "letters.pdf"
    run(sandbox, tmp_path / "job", output_profile=GS_CMYK_PROFILE)
    intent = output_intent_of(pdf)
    assert intent["/S"] == "/GTS_PDFX"
    assert intent["/DestOutputProfile"].get_object().get_data() == GS_CMYK_PROFILE.read_bytes()
    assert intent["/OutputConditionIdentifier"] == "Artifex CMYK SWOP Profile"  # its description: not registered
    assert "/RegistryName" not in intent
    assert_qpdf_finds_no_errors(pdf)


def test_the_shipped_profile_is_a_cmyk_printer_profile_with_its_provenance():
    profile = ImageCms.getOpenProfile(str(output_intent.DEFAULT_PROFILE)).profile
    assert (profile.device_class, profile.xcolor_space, profile.connection_space) == ("prtr", "CMYK", "Lab ")
    assert profile.profile_description == "pkb-letters FOGRA39 (ISO 12647-2:2004 coated)"
    assert "FOGRA39L.ti3" in profile.copyright and "Zlib" in profile.copyright
    notes = (output_intent.DEFAULT_PROFILE.parent / "README.md").read_text(encoding="utf-8")
    assert hashlib.sha256(output_intent.DEFAULT_PROFILE.read_bytes()).hexdigest() in notes
    assert "This notice may not be removed or altered" in notes  # the Zlib licence travels with the data
    assert (REPO / "tools" / "make-output-profile").exists()


# --- marks ------------------------------------------------------------------------------------


def test_decoded_datamatrix_marks_match_the_manifest_on_every_front(varied):
    out, data = varied
    pdf = out / "letters.pdf"
    fronts = {}
    for entry in data["letters"]:
        assert len(entry["marks"]) == entry["sheet_count"]
        for n, payload in enumerate(entry["marks"]):
            fronts[entry["first_page"] + 2 * n] = payload
            assert payload == marks.datamatrix_payload(data["job"]["id"], entry["sequence"], n + 1,
                                                       entry["sheet_count"])
            assert marks.payload_is_consistent(payload)
    for page in range(1, data["job"]["pages"] + 1):
        assert decode_page(pdf, page) == ([fronts[page]] if page in fronts else [])


def test_datamatrix_sits_in_its_clear_zone_away_from_window_and_body(varied):
    out, data = varied
    zone = marks.clear_zone(marks.DEFAULT_LAYOUTS[MarkKind.DATAMATRIX], data["letters"][0]["marks"][0])
    assert not zone.overlaps(C5.window)
    assert not zone.overlaps(C5.margins.inner())
    for page in page_words(out / "letters.pdf"):
        assert not [w.text for w in page if w.right > zone.left and w.left < zone.right
                    and w.bottom > zone.top and w.top < zone.bottom]


def test_omr_marks(sandbox, tmp_path):
    data = run(sandbox, tmp_path / "job", template=varied_template(tmp_path), marks=marks.layout_from_table("omr"))
    sheet_in_file = 0
    for entry in data["letters"]:
        for n, bits in enumerate(entry["marks"], 1):
            sheet_in_file += 1
            assert bits[0] == "1"  # start
            assert bits[1] == ("1" if n == entry["sheet_count"] else "0")  # insert on the last sheet
            assert int(bits[2:5], 2) == sheet_in_file % 8  # wrap-around sequence
            assert bits.count("1") % 2 == 0  # parity
    report = check_files([tmp_path / "job" / "letters.pdf"], tmp_path / "job" / "manifest.json")
    assert report.ok, report.text()
    # the body moved right, clear of the dashes' 3 mm zone
    words = [w for page in page_words(tmp_path / "job" / "letters.pdf") for w in page]
    assert min(w.left for w in words if w.top < 277) >= 18.0 - 0.3


def test_check_character_catches_every_single_error_and_neighbour_swap():
    body = "PKB-20261121-3F9A0C 000042 02/03"
    check = marks.check_character(body)
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    positions = [i for i, c in enumerate(body) if c in alphabet]
    for i in positions:
        for c in alphabet:
            if c != body[i]:
                assert marks.check_character(body[:i] + c + body[i + 1 :]) != check
    for a, b in zip(positions, positions[1:], strict=False):
        if body[a] != body[b]:
            swapped = list(body)
            swapped[a], swapped[b] = swapped[b], swapped[a]
            assert marks.check_character("".join(swapped)) != check


# --- envelopes --------------------------------------------------------------------------------


@pytest.mark.parametrize("envelope", [C5, DL], ids=["c5", "dl"])
def test_address_inside_the_window_for_each_envelope(sandbox, tmp_path, envelope):
    data = run(sandbox, tmp_path / "job", envelope=envelope)
    words = page_words(tmp_path / "job" / "letters.pdf")
    window = envelope.window
    for entry in data["letters"]:
        expected = " ".join([entry["name"], *entry["address_lines"]]).split()
        inside = [w for w in words[entry["first_page"] - 1]
                  if w.right > window.left and w.left < window.right
                  and w.bottom > window.top and w.top < window.bottom]
        assert [w.text for w in inside] == expected
        outside = [w for w in inside if not (window.left - 0.01 <= w.left and w.right <= window.right
                                             and window.top <= w.top and w.bottom <= window.bottom)]
        assert not outside
    assert data["job"]["print"]["envelope"] == envelope.name
    other = DL if envelope is C5 else C5
    assert check_files([tmp_path / "job" / "letters.pdf"], tmp_path / "job" / "manifest.json", envelope).ok
    wrong = check_files([tmp_path / "job" / "letters.pdf"], tmp_path / "job" / "manifest.json", other)
    assert Code.ADDRESS_NOT_IN_WINDOW in {p.code for p in wrong.problems}


# --- sorting, postage class and split files ---------------------------------------------------


def patients_with_classes(tmp: Path) -> Path:
    with PATIENTS_CSV.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    classes = ["first", "", "2nd", "economy"]
    target = tmp / "patients.csv"
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*rows[0], "Postage class"])
        for n, row in enumerate(rows[1:]):
            writer.writerow([*row, classes[n % len(classes)]])
    return target


def test_postcode_order_keeps_each_letters_input_row(sandbox, tmp_path):
    data = run(sandbox, tmp_path / "job", sort="postcode")
    keys = [postcode_key(e["postcode"]) for e in data["letters"]]
    assert keys == sorted(keys)
    assert [e["input_row"] for e in data["letters"]] != sorted(e["input_row"] for e in data["letters"])
    assert [e["sequence"] for e in data["letters"]] == list(range(1, len(keys) + 1))


def test_postcode_key_orders_districts_numerically():
    codes = ["NE10 1AA", "NE2 4AB", "LS6 1BN", "NE1 7RU", "NE2 3ZZ"]
    assert sorted(codes, key=postcode_key) == ["LS6 1BN", "NE1 7RU", "NE2 3ZZ", "NE2 4AB", "NE10 1AA"]


def test_split_by_class_and_sheets_in_parts(sandbox, tmp_path):
    out = tmp_path / "job"
    data = run(sandbox, out, patients=patients_with_classes(tmp_path), template=varied_template(tmp_path),
               split_by=("class", "sheets"), max_letters_per_file=2, postage_class="second")
    job_id = data["job"]["id"]
    files = data["job"]["files"]
    assert len(files) > 2
    for f in files:
        assert re.fullmatch(rf"{job_id}-(first|second|economy)-[12]s-\d{{3}}\.pdf", f["name"]), f["name"]
        path = out / f["name"]
        assert f["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert f["pages"] == len(PdfReader(path).pages)
        members = [e for e in data["letters"] if e["file"] == f["name"]]
        assert 1 <= len(members) == f["letters"] <= 2
        assert {e["postage_class"] for e in members} == {f["postage_class"]}
        assert {e["sheet_count"] for e in members} == {f["sheet_count"]}
        assert f["name"].startswith(f"{job_id}-{f['postage_class']}-{f['sheet_count']}s-")
    assert {e["postage_class"] for e in data["letters"]} == {"first", "second", "economy"}
    assert sorted(p.name for p in out.glob("*.pdf")) == sorted(f["name"] for f in files)
    assert check_files(sorted(out.glob("*.pdf")), out / "manifest.json").ok


def test_split_by_sheets_alone_leaves_class_out_of_the_name(sandbox, tmp_path):
    data = run(sandbox, tmp_path / "job", template=varied_template(tmp_path), split_by=("sheets",))
    names = sorted(f["name"] for f in data["job"]["files"])
    assert names == [f"{data['job']['id']}-1s.pdf", f"{data['job']['id']}-2s.pdf"]
