"""Mailmark 2D strings: built from the job's settings, validated by Royal Mail's rules as libzint
applies them (zint's own test cases), placed in the window and read back by zxing-cpp."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from pkb_letters.assemble import mailmark
from pkb_letters.assemble.mailmark import MailmarkInvalid, MailmarkSettings, Mode, Position, PrintOrder
from pkb_letters.assemble.mailmark_ids import ItemIds
from pkb_letters.envelope import C5, DL
from pkb_letters.errors import ConfigError

GOOD = "JGB 012100123412345678AB19XY1A 0             "


def _full(short: str) -> str:
    """A zint test input as a complete string: the prefix, then spaces to 45, as libzint pads it."""
    text = short if short[:4].upper() == "JGB " else "JGB " + short
    return text.ljust(45)


# zint's backend/tests/test_mailmark.c, test_2d_input, as of libzint 2.15 (the one zint-bindings
# bundles): (case, input, accepted). Cases about the symbol size option (7, 9, 11) and the raw
# length limits (3-6, 13) are libzint's business, not the string's.
ZINT_CASES = [
    (0, "012100123412345678AB19XY1A 0", True),
    (8, "JGB 012100123412345678AB19XY1A 0             123456", True),
    (14, "JGB 012100123412345678AB19XY1A 0             .23456", True),  # customer content: any character
    (15, "JGB 012100123412345678AB19XY1A 0            . 23456", False),  # position 45 is in the header
    (16, "JGB  12100123412345678AB19XY1A 0", False),  # information type cannot be a space
    (18, "JGB 022100123412345678AB19XY1A 0", False),  # version "1" only
    (19, "JGB 01 100123412345678AB19XY1A 0", False),  # class cannot be a space
    (20, "JGB 012100123A12345678AB19XY1A 0", False),  # supply chain ID: 7 digits
    (21, "JGB 01210012341234567AAB19XY1A 0", False),  # item ID: 8 digits
    (22, "JGB 012100123412345678AB19VY1A 0", False),  # V is not in a postcode's inward letters (2.15)
    (23, "JGB 012100123412345678AB19XY11 0", False),  # the DPS is a digit then a letter
    (24, "JGB 012100123412345678AB19XY1A 7", False),  # service type 0-6
    (25, "JGB 012100123412345678AB19XY1A 0AB18XY", True),  # return-to-sender postcode
    (26, "JGB 012100123412345678AB190XY1A0AB18XY", True),
    (27, "JGB 012100123412345678AB19XY1A 0AB18XI", False),
    (28, "JGB 012100123412345678AB19XY1A 0A18XY", True),
    (29, "JGB 012100123412345678AB19XY1A 0A18XC", False),
    (30, "JGB 012100123412345678AB19XY1A 0AB181XY", True),
    (31, "JGB 012100123412345678AB19XY1A 0AB181VY", False),
    (32, "JGB 012100123412345678AB19XY1A 0AB181XY     ", True),
    (33, "JGB 012100123412345678AB19XY1A 0AB181XYA    ", False),  # reserved: spaces only
]


@pytest.mark.parametrize(("case", "text", "accepted"), ZINT_CASES, ids=[f"zint-{c[0]}" for c in ZINT_CASES])
def test_validation_agrees_with_zints_own_cases(case, text, accepted):
    if accepted:
        mailmark.validate(_full(text))
    else:
        with pytest.raises(MailmarkInvalid):
            mailmark.validate(_full(text))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("012100123412345678AB19XY1A 0             ", "starts with 'JGB '"),  # libzint would add it
        ("jgb 012100123412345678ab19xy1a 0             ", "starts with 'JGB '"),  # libzint would capitalise it
        ("JGB 012100123412345678ab19xy1a 0             ", "A-Z, 0-9 and space"),
        ("JGB 012100123412345678AB19XY1A 0", "45 to 51"),  # libzint would pad it
        (GOOD + "1234567", "45 to 51"),  # would need a bigger symbol than type 7
        ("JGB 012100123412345678         0             ", "Destination"),  # libzint 2.15 refuses blank
    ],
)
def test_strings_we_would_print_differently_from_what_is_given_are_refused(text, why):
    with pytest.raises(MailmarkInvalid, match=why):
        mailmark.validate(text)


def test_a_generated_string_has_the_45_character_layout():
    settings = MailmarkSettings(Mode.GENERATE, "0000123", return_postcode="NE17RU")
    text = mailmark.build(settings, "first", 42, "SW1A 1AA")
    assert text == "JGB 0110000123" + "00000042" + "SW1A1AA9Z" + "0" + "NE17RU " + " " * 6
    mailmark.validate(text)
    assert mailmark.item_id(text) == "00000042"
    assert mailmark.build(settings, "economy", 1, "M1 1AA")[6] == "3"
    assert mailmark.build(settings, "second", 1, "")[22:31] == "XY11     "  # abroad: international designation


@pytest.mark.parametrize("postcode", ["NE1 7RU", "SW1A 1AA", "M1 1AA", "B33 8TH", "EC1A 1BB", "W1A 1AA", "LL61 5UJ"])
def test_every_uk_postcode_shape_makes_a_string_libzint_accepts(postcode):
    mailmark.validate(mailmark.build(MailmarkSettings(Mode.GENERATE, "0000123"), "second", 7, postcode))


def test_job_file_settings_are_checked(tmp_path: Path):
    assert mailmark.settings_from_table(None, tmp_path) is None
    assert mailmark.settings_from_table({"mode": "off"}, tmp_path) is None
    good = mailmark.settings_from_table({"mode": "generate", "supply_chain_id": "0000123", "state_dir": "s"}, tmp_path)
    assert good is not None and good.state_dir == tmp_path / "s"
    assert good.print_order is PrintOrder.JOB
    ordered = mailmark.settings_from_table(
        {"mode": "supplied", "supplied": "f.csv", "print_order": "sort_sequence"}, tmp_path
    )
    assert ordered is not None and ordered.print_order is PrintOrder.SORT_SEQUENCE
    for bad, message in [
        ({"mode": "generate", "supply_chain_id": "123"}, "7 digits"),
        ({"mode": "generate", "supply_chain_id": "0000123", "service_type": "9"}, "Service Type"),
        ({"mode": "generate", "supply_chain_id": "0000123", "module": 0.8}, "0.7"),
        ({"mode": "supplied"}, "supplied = "),
        ({"mode": "print"}, "mailmark"),
        ({"mode": "generate", "supply_chain_id": "0000123", "colour": "red"}, "unknown"),
        ({"mode": "generate", "supply_chain_id": "0000123", "print_order": "sort_sequence"}, 'needs mode = "supplied"'),
        (
            {"mode": "supplied", "supplied": "f.csv", "print_order": "postcode"},
            'print_order must be "job" or "sort_sequence"',
        ),
    ]:
        with pytest.raises(ConfigError, match=message):
            mailmark.settings_from_table(bad, tmp_path)


def test_the_symbol_sits_in_the_window_and_the_address_keeps_clear_of_it():
    for envelope, position in ((C5, Position.RIGHT), (DL, Position.RIGHT), (DL, Position.BELOW)):
        settings = MailmarkSettings(Mode.GENERATE, "0000123", position=position)
        zone = mailmark.clear_zone(envelope, settings)
        assert envelope.window.contains(zone)
        block = mailmark.reserve_window(envelope, settings).window
        assert envelope.window.contains(block) and not block.overlaps(zone)
    c5 = MailmarkSettings(Mode.GENERATE, "0000123")
    assert mailmark.reserve_window(C5, c5).window.width == pytest.approx(95.4 - 12 - 4)
    with pytest.raises(ConfigError, match="position = right"):  # C5's 26.8 mm window has no room below
        mailmark.reserve_window(C5, MailmarkSettings(Mode.GENERATE, "0000123", position=Position.BELOW))


def test_the_drawn_symbol_decodes_to_the_string(tmp_path: Path):
    """The operators, rendered as a page, read back by zxing-cpp (not the encoder)."""
    import pikepdf
    import pypdfium2

    rect = mailmark.symbol_rect(C5, MailmarkSettings(Mode.GENERATE, "0000123"))
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595.276, 841.89))
    pdf.pages[0].Contents = pdf.make_stream(mailmark.draw(rect, 0.5, GOOD))
    pdf.save(tmp_path / "m.pdf")
    page = pypdfium2.PdfDocument(tmp_path / "m.pdf")[0]
    image: Image.Image = page.render(scale=300 / 72, grayscale=True).to_pil()
    found = zxingcpp.read_barcode(image, formats=zxingcpp.BarcodeFormat.DataMatrix)
    assert found is not None and found.text == GOOD
    assert b"0 0 0 1 k" in mailmark.draw(rect, 0.5, GOOD)  # K-only black
    matrix = mailmark.matrix(GOOD)
    assert (len(matrix), len(matrix[0])) == (24, 24)  # type 7


# -- item IDs ----------------------------------------------------------------------------------


def test_item_ids_count_per_supply_chain_and_a_piece_keeps_its_id(tmp_path: Path):
    today = dt.date(2026, 1, 10)
    with ItemIds(tmp_path) as ids:
        assert [ids.allocate("0000123", "JOB-A", f"JOB-A-{n}", today) for n in range(3)] == [0, 1, 2]
        assert ids.allocate("0000999", "JOB-A", "JOB-A-0", today) == 0  # another supply chain counts alone
        assert ids.allocate("0000123", "JOB-A", "JOB-A-1", today) == 1  # asked again: the same ID
    with ItemIds(tmp_path) as ids:  # a second job on the same machine continues the count
        assert ids.allocate("0000123", "JOB-B", "JOB-B-0", today) == 3


def test_an_item_id_is_never_reused_within_90_days(tmp_path: Path):
    with ItemIds(tmp_path) as ids:
        ids.allocate("0000123", "JOB-A", "JOB-A-0", dt.date(2026, 1, 1))
        ids._db.execute("UPDATE counters SET next_item = 0")  # as if the counter had wrapped after 99,999,999
        with pytest.raises(ConfigError, match="less than 90 days"):
            ids.allocate("0000123", "JOB-B", "JOB-B-0", dt.date(2026, 3, 31))  # day 89
        assert ids.allocate("0000123", "JOB-B", "JOB-B-0", dt.date(2026, 4, 1)) == 0  # day 90: free again


def _allocate_many(state_dir: str, job: str, out) -> None:
    with ItemIds(Path(state_dir)) as ids:
        out.extend([ids.allocate("0000123", job, f"{job}-{n}", dt.date(2026, 1, 1)) for n in range(40)])


def test_two_jobs_at_once_never_get_the_same_id(tmp_path: Path):
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        got = [manager.list(), manager.list()]
        workers = [context.Process(target=_allocate_many, args=(str(tmp_path), f"JOB-{n}", got[n])) for n in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        ids = list(got[0]) + list(got[1])
    assert len(ids) == 80 and len(set(ids)) == 80
