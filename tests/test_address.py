"""Postal address normalisation to Royal Mail style, and the reasons an address is refused."""

from __future__ import annotations

import pytest

from pkb_letters.address import AddressRejected, normalise_address, normalise_postcode
from pkb_letters.records import Reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("NE1 7RU", "NE1 7RU"),
        ("ne17ru", "NE1 7RU"),
        (" NE1  7RU ", "NE1 7RU"),
        ("n e 1 7 r u", "NE1 7RU"),
        ("M15BY", "M1 5BY"),  # one-letter area, one-digit district
        ("b15 3tr", "B15 3TR"),  # one-letter area, two-digit district
        ("CF105BZ", "CF10 5BZ"),
        ("sw1a1aa", "SW1A 1AA"),  # district with a letter
        ("EC1A 1BB", "EC1A 1BB"),
        ("W1A 0AX", "W1A 0AX"),
    ],
)
def test_postcode_is_formatted_outward_space_inward(raw, expected):
    assert normalise_postcode(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "NE1 1XC",  # inward letters never use C
        "NE1 1IA",  # ... nor I
        "XX1 1AA",  # no such postcode area
        "",
        "NE1",
        "NE1 7RUX",
        "7RU NE1",
        "12345",
    ],
)
def test_not_a_postcode(raw):
    assert normalise_postcode(raw) is None


@pytest.mark.parametrize(
    ("street", "town", "county", "postcode", "expected"),
    [
        (["  Flat 4  ", "12   Grey Street"], "Newcastle upon Tyne", "", "ne17ru",
         ("Flat 4", "12 Grey Street", "NEWCASTLE UPON TYNE", "NE1 7RU")),
        (["Flat 4,", "", "12 Grey Street.", "   "], "newcastle upon tyne.", "", " NE1  7RU ",
         ("Flat 4", "12 Grey Street", "NEWCASTLE UPON TYNE", "NE1 7RU")),
        (["27 Headingley Lane, ", ",", "."], "Leeds", "West Yorkshire,", "LS6 1BN",
         ("27 Headingley Lane", "LEEDS", "West Yorkshire", "LS6 1BN")),
        (["Tŷ Gwyn", "Ffordd Caergybi"], "Llanfairpwllgwyngyll", "", "LL61 5UJ",
         ("Tŷ Gwyn", "Ffordd Caergybi", "LLANFAIRPWLLGWYNGYLL", "LL61 5UJ")),
        (["5 Church Road"], "", "", "B15 3TR", ("5 Church Road", "B15 3TR")),  # name + 2 lines = 3
        (["1", "2", "3", "4"], "Town", "", "NE1 7RU",  # name + 6 lines = 7, the most allowed
         ("1", "2", "3", "4", "TOWN", "NE1 7RU")),
    ],
)
def test_address_is_normalised(street, town, county, postcode, expected):
    address = normalise_address(street, town, county, postcode)
    assert address.lines == expected
    assert address.postcode == expected[-1]


def _rejection(street, town, county, postcode) -> AddressRejected:
    with pytest.raises(AddressRejected) as caught:
        normalise_address(street, town, county, postcode)
    return caught.value


@pytest.mark.parametrize(
    ("street", "town", "county", "postcode", "reason", "says"),
    [
        (["12 Grey Street"], "NEWCASTLE", "", "NE1 1XC",
         Reason.ADDRESS_BAD_POSTCODE, ["'NE1 1XC'", "Post code column"]),
        (["12 Grey Street"], "NEWCASTLE", "", "XX1 1AA",
         Reason.ADDRESS_BAD_POSTCODE, ["'XX1 1AA'", "Post code column"]),
        (["12 Grey Street"], "NEWCASTLE", "", "   ",
         Reason.ADDRESS_BAD_POSTCODE, ["(empty)", "Post code column"]),
        ([], "", "", "NE1 7RU",
         Reason.ADDRESS_TOO_FEW_LINES, ["2 lines", "at least 3", "Address1"]),
        (["", " , ", "."], "", "", "NE1 7RU",  # nothing left once cleaned
         Reason.ADDRESS_TOO_FEW_LINES, ["2 lines", "at least 3", "Address1"]),
        ([f"Line {n}" for n in range(1, 8)], "", "", "NE1 7RU",
         Reason.ADDRESS_TOO_MANY_LINES, ["9 lines", "at most 7", "merge or drop"]),
        (["1", "2", "3", "4", "5"], "Town", "", "NE1 7RU",  # one line over
         Reason.ADDRESS_TOO_MANY_LINES, ["8 lines", "at most 7", "merge or drop"]),
        (["1", "2", "3", "4"], "Town", "County", "NE1 7RU",
         Reason.ADDRESS_TOO_MANY_LINES, ["8 lines", "county"]),
    ],
)
def test_address_is_rejected_with_a_reason_and_a_fix(street, town, county, postcode, reason, says):
    rejected = _rejection(street, town, county, postcode)
    assert rejected.reason is reason
    assert str(rejected) == rejected.detail
    for words in says:
        assert words in rejected.detail, f"{words!r} not in {rejected.detail!r}"

