"""Country names on an address's last line, and Royal Mail's postage zone for each."""

from __future__ import annotations

import pytest

from pkb_letters.countries import EUROPE, REST_OF_WORLD, UK, find_country


@pytest.mark.parametrize(
    ("written", "code", "postage"),
    [
        ("France", "FR", EUROPE),
        ("FRANCE", "FR", EUROPE),
        ("france.", "FR", EUROPE),
        ("Republic of Ireland", "IE", EUROPE),
        ("Ireland", "IE", EUROPE),
        ("Russia", "RU", EUROPE),
        ("Turkey", "TR", EUROPE),
        ("Türkiye", "TR", EUROPE),
        ("Kosovo", "XK", EUROPE),
        ("Greenland", "GL", EUROPE),
        ("Canary Islands", "ES", EUROPE),
        ("Georgia", "GE", EUROPE),
        ("United States", "US", REST_OF_WORLD),
        ("USA", "US", REST_OF_WORLD),
        ("Cote d'Ivoire", "CI", REST_OF_WORLD),
        ("Korea, Republic of", "KR", REST_OF_WORLD),
        ("South Korea", "KR", REST_OF_WORLD),
        ("Australia", "AU", REST_OF_WORLD),
        ("United Kingdom", "GB", UK),
        ("UK", "GB", UK),
        ("Wales", "GB", UK),
        ("Northern Ireland", "GB", UK),
        ("Isle of Man", "IM", UK),
        ("Jersey", "JE", UK),
    ],
)
def test_country_names_and_zones(written, code, postage):
    country = find_country(written)
    assert country is not None, written
    assert (country.code, country.postage) == (code, postage)


@pytest.mark.parametrize("written", ["", "Newcastle", "Atlantis", "DE", "FRA", "PER", "NE1 7RU", "Deutschland"])
def test_not_a_country(written):
    assert find_country(written) is None
