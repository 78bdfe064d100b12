"""Postal address normalisation to Royal Mail style, and the reasons an address is refused."""

from __future__ import annotations

import pytest

from pkb_letters.intake.address import AddressRejected, normalise_address, normalise_postcode
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
        (["12 Grey Street"], "NEWCASTLE", "", "   ",  # no postcode anywhere: the last line is named
         Reason.ADDRESS_BAD_POSTCODE, ["last line 'NEWCASTLE'", "Post code column is empty"]),
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



# --- lines that cannot be posted --------------------------------------------------------------


@pytest.mark.parametrize("character", list('@()=[]"\\/,<>~'))
@pytest.mark.parametrize("where", [0, 1])
def test_a_line_starting_with_a_forbidden_character_is_refused(character, where):
    street = ["Flat 4", "12 Grey Street"]
    street[where] = f"{character}{street[where]}"  # (a comma is trimmed only at the end of a line)
    rejected = _rejection(street, "NEWCASTLE", "", "NE1 7RU")
    assert rejected.reason is Reason.ADDRESS_INVALID_CHARACTER
    assert f"address line {where + 1}" in rejected.detail and repr(character) in rejected.detail


@pytest.mark.parametrize("street", [["12 Grey Street (rear)"], ["Flat 4 = top floor"], ["  12 Grey Street"]])
def test_those_characters_are_fine_inside_a_line(street):
    assert normalise_address(street, "NEWCASTLE", "", "NE1 7RU").lines[0] == street[0].strip()


@pytest.mark.parametrize(
    ("street", "town", "postcode"),
    [
        (["NFA"], "LEEDS", "LS1 1UR"),
        (["nfa"], "LEEDS", "LS1 1UR"),
        (["No fixed abode"], "LEEDS", "LS1 1UR"),
        (["NO FIXED ABODE"], "", ""),
        (["Patient of no  fixed address", "c/o 3 Roundhay Road"], "LEEDS", "LS8 5AN"),
        (["3 Roundhay Road"], "LEEDS", "ZZ99 3VZ"),  # the ONS code NHS systems record for no fixed abode
        (["3 Roundhay Road"], "NFA", "LS8 5AN"),
    ],
)
def test_no_fixed_abode_is_refused_whatever_else_the_row_says(street, town, postcode):
    rejected = _rejection(street, town, "", postcode)
    assert rejected.reason is Reason.ADDRESS_NO_FIXED_ABODE
    assert "no fixed abode" in rejected.detail


@pytest.mark.parametrize("street", [["Nfald Farm", "Nether Lane"], ["The Old Fixed Abode Inn"]])
def test_words_that_only_look_like_no_fixed_abode_are_fine(street):
    assert normalise_address(street, "LEEDS", "", "LS1 1UR").postcode == "LS1 1UR"


# --- multi-line cells and postcodes written in the lines --------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_each_line_of_a_multi_line_cell_is_an_address_line(newline):
    address = normalise_address([f"Flat 4,{newline}12 Grey Street{newline}"], "newcastle", "", "NE1 7RU")
    assert address.lines == ("Flat 4", "12 Grey Street", "NEWCASTLE", "NE1 7RU")


@pytest.mark.parametrize(
    ("street", "postcode", "expected"),
    [
        (["12 Grey Street", "Newcastle", "ne1 7ru"], "", ("12 Grey Street", "Newcastle", "NE1 7RU")),
        (["12 Grey Street", "Newcastle", "NE1 7RU"], "NE17RU", ("12 Grey Street", "Newcastle", "NE1 7RU")),
        (["12 Grey Street", "NE1 7RU", "United Kingdom"], "", ("12 Grey Street", "NE1 7RU")),
        (["12 Grey Street", "Newcastle", "England"], "NE1 7RU", ("12 Grey Street", "Newcastle", "NE1 7RU")),
    ],
)
def test_postcode_from_the_last_line_written_once_and_no_uk_country_line(street, postcode, expected):
    address = normalise_address(street, "", "", postcode)
    assert (address.lines, address.postcode, address.postage) == (expected, expected[-1], "uk")


def test_united_kingdom_in_the_country_column_is_not_printed():
    address = normalise_address(["12 Grey Street"], "Newcastle", "", "NE1 7RU", "United Kingdom")
    assert address.lines == ("12 Grey Street", "NEWCASTLE", "NE1 7RU")


# --- BFPO ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("street", "postcode", "expected"),
    [
        (["1st Battalion The Rifles", "BFPO 38"], "BF1 4FB", ("1st Battalion The Rifles", "BF1 4FB", "BFPO 38")),
        (["1st Battalion The Rifles", "bfpo38"], "bf14fb", ("1st Battalion The Rifles", "BF1 4FB", "BFPO 38")),
        (["BFPO 38", "1st Battalion The Rifles", "Op Tosca"], "BF1 4FB",
         ("1st Battalion The Rifles", "Op Tosca", "BF1 4FB", "BFPO 38")),
        (["1st Battalion The Rifles", "Op Tosca", "BFPO No. 38"], "",
         ("1st Battalion The Rifles", "Op Tosca", "BFPO 38")),
        (["1st Battalion The Rifles", "BF1 4FB", "BFPO 38"], "",
         ("1st Battalion The Rifles", "BF1 4FB", "BFPO 38")),
    ],
)
def test_bfpo_address_ends_with_the_postcode_then_the_bfpo_number(street, postcode, expected):
    address = normalise_address(street, "", "", postcode)
    assert address.lines == expected
    assert address.postcode == ("BF1 4FB" if "BF1 4FB" in expected else "")
    assert address.postage == "uk"


@pytest.mark.parametrize(
    ("street", "postcode", "country", "says"),
    [
        (["1st Battalion The Rifles", "BFPO 38"], "BF1 4XC", "", "'BF1 4XC'"),
        (["1st Battalion The Rifles", "BFPO 38"], "", "Cyprus", "must not name a country"),
        (["1st Battalion The Rifles", "BFPO 38", "Germany"], "", "", "must not name a country"),
    ],
)
def test_bfpo_address_with_a_bad_postcode_or_a_country_is_refused(street, postcode, country, says):
    rejected = _rejection_abroad(street, "", postcode, country, international=True)
    assert rejected.reason is Reason.ADDRESS_BAD_POSTCODE
    assert says in rejected.detail


# --- addresses abroad ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("street", "town", "postcode", "country"),
    [
        (["12 Rue de Rivoli"], "Paris", "75001", "France"),
        (["12 Rue de Rivoli", "75001 Paris", "FRANCE"], "", "", ""),
        (["1 Main Street", "Springfield IL 62701"], "", "", "USA"),
    ],
)
def test_address_abroad_is_refused_unless_the_job_posts_abroad(street, town, postcode, country):
    rejected = _rejection_abroad(street, town, postcode, country, international=False)
    assert rejected.reason is Reason.ADDRESS_INTERNATIONAL
    assert "abroad" in rejected.detail and "--international-post" in rejected.detail


@pytest.mark.parametrize("international", [False, True])
@pytest.mark.parametrize("postcode", ["10115", "NE1 7RU"])
def test_an_unknown_name_in_the_country_column_is_named_not_the_postcode(international, postcode):
    rejected = _rejection_abroad(["5 Hauptstraße"], "Berlin", postcode, "Atlantis", international)
    assert rejected.reason is Reason.ADDRESS_BAD_POSTCODE
    assert "Country column ('Atlantis') is not a country we recognise" in rejected.detail
    assert "post code" not in rejected.detail


def _rejection_abroad(street, town, postcode, country, international) -> AddressRejected:
    with pytest.raises(AddressRejected) as caught:
        normalise_address(street, town, "", postcode, country, international=international)
    return caught.value


@pytest.mark.parametrize(
    ("street", "town", "postcode", "country", "lines", "postage"),
    [
        (["12 Rue de Rivoli"], "Paris", "75001", "France", ("12 Rue de Rivoli", "PARIS", "75001", "FRANCE"), "europe"),
        (["12 Rue de Rivoli", "75001 Paris", "France"], "", "", "",
         ("12 Rue de Rivoli", "75001 Paris", "FRANCE"), "europe"),
        (["Calle Mayor 5"], "Madrid", "28013", "Spain", ("Calle Mayor 5", "MADRID", "28013", "SPAIN"), "europe"),
        (["Istiklal Caddesi 10"], "Istanbul", "", "Turkey", ("Istiklal Caddesi 10", "ISTANBUL", "TURKEY"), "europe"),
        (["1 Main Street", "Springfield IL 62701"], "", "", "United States",
         ("1 Main Street", "Springfield IL 62701", "UNITED STATES"), "rest-of-world"),
        (["10 Queen Street"], "Auckland", "1010", "New Zealand",
         ("10 Queen Street", "AUCKLAND", "1010", "NEW ZEALAND"), "rest-of-world"),
        (["Rue du Commerce 3"], "Abidjan", "", "Côte d'Ivoire",
         ("Rue du Commerce 3", "ABIDJAN", "CÔTE D'IVOIRE"), "rest-of-world"),
    ],
)
def test_address_abroad_ends_with_the_country_and_has_a_postage_zone(street, town, postcode, country, lines, postage):
    address = normalise_address(street, town, "", postcode, country, international=True)
    assert (address.lines, address.postcode, address.postage) == (lines, "", postage)


@pytest.mark.parametrize("last_line", ["Atlantis", "Newcastle", "DE", "NE1 1XC"])
@pytest.mark.parametrize("international", [False, True])
def test_a_last_line_neither_postcode_nor_country_is_named_as_the_problem(last_line, international):
    rejected = _rejection_abroad(["1 Some Street", last_line], "", "", "", international=international)
    assert rejected.reason is Reason.ADDRESS_BAD_POSTCODE
    assert f"last line {last_line!r} is not a UK postcode or a country we recognise" in rejected.detail
    assert "post code" not in rejected.detail  # the empty Post code column is not blamed
    assert ("name the country on the last line" in rejected.detail) is international


def test_a_uk_address_is_posted_in_the_uk_when_international_post_is_on():
    address = normalise_address(["12 Grey Street"], "Newcastle", "", "NE1 7RU", international=True)
    assert (address.lines[-1], address.postage) == ("NE1 7RU", "uk")


def test_too_many_lines_abroad_counts_the_country_line():
    street = ["1", "2", "3", "4"]  # name + 4 + town + country = 7: fits; one more does not
    assert len(normalise_address(street, "Paris", "", "", "France", international=True).lines) == 6
    rejected = _rejection_abroad([*street, "5"], "Paris", "", "France", international=True)
    assert rejected.reason is Reason.ADDRESS_TOO_MANY_LINES


# --- real-world addresses a UK list carries (issue 19) ------------------------------------------


@pytest.mark.parametrize(
    ("street", "town", "postcode", "country", "expected"),
    [
        # postcode on an address line, the island on the last line
        (["Les Vardes", "St Peter Port", "GY1 1AA", "Guernsey"], "", "", "",
         ("Les Vardes", "St Peter Port", "GUERNSEY", "GY1 1AA")),
        (["12 La Rue", "St Helier", "je2 3ab", "Jersey"], "", "", "",
         ("12 La Rue", "St Helier", "JERSEY", "JE2 3AB")),
        (["3 Prospect Hill", "Douglas", "IM1 1AA", "Isle of Man"], "", "", "",
         ("3 Prospect Hill", "Douglas", "ISLE OF MAN", "IM1 1AA")),
        (["La Vallette", "GY9 3AA", "Alderney", "Channel Islands"], "", "", "",
         ("La Vallette", "ALDERNEY", "GY9 3AA")),
        # the island written both as the town and after the postcode is printed once
        (["Les Vardes"], "Guernsey", "GY1 1AA", "",
         ("Les Vardes", "GUERNSEY", "GY1 1AA")),
        (["Les Vardes", "GY1 1AA", "Guernsey"], "Guernsey", "", "",
         ("Les Vardes", "GUERNSEY", "GY1 1AA")),
        # the island in the Country column, the postcode in its column
        (["12 La Rue"], "St Helier", "JE2 3AB", "Jersey",
         ("12 La Rue", "ST HELIER", "JERSEY", "JE2 3AB")),
        # a full block: the island is left off (the postcode routes the letter), not the letter refused
        (["1", "2", "3", "4", "5", "IM1 1AA", "Isle of Man"], "", "", "",
         ("1", "2", "3", "4", "5", "IM1 1AA")),
        (["1", "2", "3", "4", "IM1 1AA", "Isle of Man"], "", "", "",  # one line fewer: it fits
         ("1", "2", "3", "4", "ISLE OF MAN", "IM1 1AA")),
    ],
)
def test_a_crown_dependency_is_uk_post_with_the_island_above_the_postcode(street, town, postcode, country, expected):
    address = normalise_address(street, town, "", postcode, country)
    assert (address.lines, address.postcode, address.postage) == (expected, expected[-1], "uk")


@pytest.mark.parametrize(
    ("street", "island"),
    [(["12 La Rue", "St Helier", "GY1 1AA", "Jersey"], "'Jersey'"), (["1 Grey St", "NE1 7RU", "Isle of Man"], "'Isle")],
)
def test_an_island_with_another_places_postcode_is_refused(street, island):
    rejected = _rejection(street, "", "", "")
    assert rejected.reason is Reason.ADDRESS_BAD_POSTCODE
    assert f"the address names {island}" in rejected.detail and "correct the postcode or the island" in rejected.detail


@pytest.mark.parametrize("uk", [
    "GBR", "N. Ireland", "N Ireland", "Northern Ireland", "United Kingdom", "UK", "U.K.", "Great Britain",
    "England", "Wales", "Scotland", "Cymru",
])
@pytest.mark.parametrize("where", ["line", "country column"])
def test_a_uk_name_after_the_postcode_is_not_printed(uk, where):
    street = ["12 Grey Street", "Belfast", "BT1 1AA"]
    if where == "line":
        address = normalise_address([*street, uk], "", "", "")
    else:
        address = normalise_address(street, "", "", "", uk)
    assert (address.lines, address.postcode, address.postage) == (tuple(street), "BT1 1AA", "uk")


@pytest.mark.parametrize("uk", ["GBR", "England", "Guernsey"])
def test_a_uk_name_with_no_postcode_says_the_postcode_is_missing(uk):
    rejected = _rejection(["12 Grey Street", "Newcastle", uk], "", "", "")
    assert rejected.reason is Reason.ADDRESS_BAD_POSTCODE
    assert f"ends {uk!r}, in the UK, but has no postcode" in rejected.detail


@pytest.mark.parametrize(
    ("street", "postcode", "expected"),
    [
        # Notify's cases: a line saying only "BFPO" beside the numbered line is not printed twice
        (["BFPO", "BF1 1AA", "BFPO 123"], "", ("BF1 1AA", "BFPO 123")),
        (["BFPO", "BFPO 123", "BF1 1AA"], "", ("BF1 1AA", "BFPO 123")),
        (["Unit 1", "BFPO", "BFPO 123"], "", ("Unit 1", "BFPO 123")),
        (["Unit 1", "bfpo", "bf11aa", "bfpo123"], "", ("Unit 1", "BF1 1AA", "BFPO 123")),
        # "care of" on the BFPO line
        (["Unit 1", "BFPO C/O 123"], "", ("Unit 1", "BFPO 123")),
        (["Unit 1", "BFPO c/o 123"], "BF1 1AA", ("Unit 1", "BF1 1AA", "BFPO 123")),
        (["Unit 1", "BFPOC/O123"], "", ("Unit 1", "BFPO 123")),
    ],
)
def test_bfpo_lines_as_lists_write_them(street, postcode, expected):
    address = normalise_address(street, "", "", postcode)
    assert (address.lines, address.postage) == (expected, "uk")


def test_a_bare_bfpo_line_without_a_number_is_an_ordinary_line():
    """As Notify: without a number there is no BFPO routing, so the line is the customer's to keep."""
    address = normalise_address(["Unit 1", "BFPO"], "", "", "BF1 1AA")
    assert address.lines == ("Unit 1", "BFPO", "BF1 1AA")


@pytest.mark.parametrize(
    ("street", "town", "county", "line"),
    [
        (["!!!", "12 Grey Street"], "NEWCASTLE", "", 1),
        (["12 Grey Street", "???"], "NEWCASTLE", "", 2),
        (["12 Grey Street", "-"], "NEWCASTLE", "", 2),
        (["12 Grey Street"], "***", "", 2),
        (["12 Grey Street"], "NEWCASTLE", "?", 3),
        (["12 Grey Street\n!!!"], "NEWCASTLE", "", 2),
    ],
)
def test_a_line_with_no_letter_or_digit_is_refused(street, town, county, line):
    rejected = _rejection(street, town, county, "NE1 7RU")
    assert rejected.reason is Reason.ADDRESS_INVALID_CHARACTER
    assert f"address line {line} (" in rejected.detail and "has no letter or digit" in rejected.detail


@pytest.mark.parametrize("street", [["1"], ["Tŷ Gwyn"], ["Дом 5"], ["#5 - 7"]])
def test_one_letter_or_digit_in_any_script_is_enough(street):
    assert normalise_address(street, "NEWCASTLE", "", "NE1 7RU").lines[0] == street[0]


@pytest.mark.parametrize(
    ("street", "country", "lines", "postage"),
    [
        (["Main Street 1", "22100 Mariehamn", "Åland Islands"], "",
         ("Main Street 1", "22100 Mariehamn", "ÅLAND ISLANDS"), "rest-of-world"),
        (["Vei 1", "9170 Longyearbyen"], "Svalbard", ("Vei 1", "9170 Longyearbyen", "SVALBARD"), "rest-of-world"),
        (["5 Hauptstraße", "10115 Berlin", "Deutschland"], "", ("5 Hauptstraße", "10115 Berlin", "DEUTSCHLAND"),
         "europe"),
        (["Calle Mayor 5", "38001 Santa Cruz", "Tenerife"], "", ("Calle Mayor 5", "38001 Santa Cruz", "TENERIFE"),
         "europe"),
        (["1 Main Street", "Dublin 2"], "ROI", ("1 Main Street", "Dublin 2", "ROI"), "europe"),
        (["1 Main Street", "Dublin 2", "Rep of Ireland"], "", ("1 Main Street", "Dublin 2", "REP OF IRELAND"),
         "europe"),
        (["1 Ross Road", "Stanley", "FIQQ 1ZZ", "Falklands"], "", ("1 Ross Road", "Stanley", "FIQQ 1ZZ", "FALKLANDS"),
         "rest-of-world"),
    ],
)
def test_countries_a_uk_list_writes_are_posted_abroad_in_their_zone(street, country, lines, postage):
    address = normalise_address(street, "", "", "", country, international=True)
    assert (address.lines, address.postcode, address.postage) == (lines, "", postage)
