"""Country names on an address's last line, and Royal Mail's postage zone for each."""

from __future__ import annotations

import pytest

from pkb_letters.intake.countries import EUROPE, REST_OF_WORLD, UK, find_country


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


@pytest.mark.parametrize("written", ["", "Newcastle", "Atlantis", "DE", "FRA", "PER", "NE1 7RU", "!!!", "Leeds"])
def test_not_a_country(written):
    assert find_country(written) is None


@pytest.mark.parametrize(
    ("written", "code", "postage"),
    [
        # what UK lists write for Ireland (GOV.UK Notify's synonyms)
        ("ROI", "IE", EUROPE),
        ("Rep of Ireland", "IE", EUROPE),
        ("Rep. of Ireland", "IE", EUROPE),
        ("Irish Republic", "IE", EUROPE),
        ("Southern Ireland", "IE", EUROPE),
        ("Éire", "IE", EUROPE),
        # a country's own name for itself, from CLDR through Babel
        ("Deutschland", "DE", EUROPE),
        ("DEUTSCHLAND", "DE", EUROPE),
        ("España", "ES", EUROPE),
        ("Espana", "ES", EUROPE),
        ("Österreich", "AT", EUROPE),
        ("Nederland", "NL", EUROPE),
        ("Sverige", "SE", EUROPE),
        ("Polska", "PL", EUROPE),
        ("Schweiz", "CH", EUROPE),
        ("Suisse", "CH", EUROPE),
        ("Россия", "RU", EUROPE),
        # Welsh names, as a list from NHS Wales may carry them
        ("Yr Almaen", "DE", EUROPE),
        ("Sbaen", "ES", EUROPE),
        # the Canary Islands are posted as Spain, in Europe
        ("Tenerife", "ES", EUROPE),
        ("Gran Canaria", "ES", EUROPE),
        ("Lanzarote", "ES", EUROPE),
        ("Fuerteventura", "ES", EUROPE),
        ("La Palma", "ES", EUROPE),
        ("La Gomera", "ES", EUROPE),
        ("El Hierro", "ES", EUROPE),
        ("Canaries", "ES", EUROPE),
        ("Majorca", "ES", EUROPE),  # and the Balearics likewise
        ("Ibiza", "ES", EUROPE),
        # the Falklands, in English as people write it
        ("Falklands", "FK", REST_OF_WORLD),
        ("The Falklands", "FK", REST_OF_WORLD),
        ("Falkland Islands", "FK", REST_OF_WORLD),
        # UK names after a postcode
        ("GBR", "GB", UK),
        ("N. Ireland", "GB", UK),
        ("N Ireland", "GB", UK),
        ("Great Britain", "GB", UK),
        ("Scotland", "GB", UK),
        ("England", "GB", UK),
        ("Guernsey", "GG", UK),
        ("Alderney", "GG", UK),
    ],
)
def test_names_a_uk_list_carries(written, code, postage):
    country = find_country(written)
    found = (country.code, country.postage) if country else (None, None)
    assert found == (code, postage)


@pytest.mark.parametrize(
    ("written", "code"),
    [("Åland Islands", "AX"), ("Aland", "AX"), ("Svalbard and Jan Mayen", "SJ"), ("Svalbard", "SJ")],
)
def test_aland_and_svalbard_are_rest_of_world_as_royal_mail_prices_them(written, code):
    """Royal Mail's Europe list (as GOV.UK Notify keeps it) names Finland and Norway, not these."""
    country = find_country(written)
    assert (country.code, country.postage) == (code, REST_OF_WORLD)
