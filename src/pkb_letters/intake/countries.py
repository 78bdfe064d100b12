"""Country names as people write them on the last line of an address, and Royal Mail's postage zones.

Takes a line of text and gives the `Country` it names, or None. The list of countries is
ISO 3166-1 from pycountry (Debian's iso-codes data, kept up to date there). The names people
actually write come from the Unicode CLDR through Babel: each country's English and Welsh
names ("Russia", "Yr Almaen") and its name in its own official languages ("Deutschland",
"España", "Éire"). This module adds only what neither has: the abbreviations and islands a UK
list carries ("ROI", "GBR", "Tenerife"), the UK's own parts, and Royal Mail's zones.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import pycountry
from babel import Locale, localedata
from babel.languages import get_official_languages

UK = "uk"
EUROPE = "europe"
REST_OF_WORLD = "rest-of-world"

# Posted at UK rates: the UK itself and the Crown Dependencies, whose postcodes (GY, JE, IM) are UK postcodes.
_UK_CODES = frozenset({"GB", "GG", "JE", "IM"})

# Royal Mail's "Europe" zone for international letters (royalmail.com/international-zones), as
# GOV.UK Notify keeps it, in ISO 3166-1 codes; XK is Kosovo, which ISO has not assigned. The Åland
# Islands and Svalbard are not on it: Royal Mail prices them as rest of world, apart from Finland
# and Norway. The Azores, Madeira, the Canaries, the Balearics and Corsica are on it, and are
# found as Portugal, Spain and France. Every other country is rest of world.
_EUROPE_CODES = frozenset(
    "AD AL AM AT AZ BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GE GI GL GR HR HU IE IS IT KG KZ LI LT "
    "LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SK SM TJ TM TR UA UZ VA XK".split()
)

# What a UK list writes that neither ISO nor CLDR names: abbreviations, parts of the UK, and islands
# posted as part of their country (GOV.UK Notify's list of synonyms is the model).
_SYNONYMS = {
    "United Kingdom": "GB",
    "UK": "GB",
    "U.K.": "GB",
    "GB": "GB",
    "GBR": "GB",
    "Great Britain": "GB",
    "Britain": "GB",
    "England": "GB",
    "Scotland": "GB",
    "Wales": "GB",
    "Cymru": "GB",
    "Yr Alban": "GB",
    "Northern Ireland": "GB",
    "N Ireland": "GB",
    "North Ireland": "GB",
    "NI": "GB",
    "Channel Islands": "GB",
    "Alderney": "GG",
    "Sark": "GG",
    "Herm": "GG",
    "Brecqhou": "GG",
    "Jethou": "GG",
    "Republic of Ireland": "IE",
    "Rep of Ireland": "IE",
    "ROI": "IE",
    "Irish Republic": "IE",
    "Southern Ireland": "IE",
    "South Ireland": "IE",
    "Eire": "IE",
    "Russia": "RU",
    "Turkey": "TR",
    "Vatican City": "VA",
    "Vatican": "VA",
    "Kosovo": "XK",
    "Holland": "NL",
    "The Netherlands": "NL",
    "Macedonia": "MK",
    "Bosnia": "BA",
    "Ivory Coast": "CI",
    "Brunei": "BN",
    "Cape Verde": "CV",
    "Micronesia": "FM",
    "Palestine": "PS",
    "Democratic Republic of the Congo": "CD",
    "DR Congo": "CD",
    "Republic of the Congo": "CG",
    "East Timor": "TL",
    "Swaziland": "SZ",
    "Burma": "MM",
    "UAE": "AE",
    "USA": "US",
    "U.S.A.": "US",
    "United States of America": "US",
    "America": "US",
    "Macau": "MO",
    "South Korea": "KR",
    "Korea": "KR",
    "North Korea": "KP",
    "Syria": "SY",
    "Laos": "LA",
    "Canary Islands": "ES",
    "Canaries": "ES",
    "Islas Canarias": "ES",
    "Tenerife": "ES",
    "Gran Canaria": "ES",
    "Lanzarote": "ES",
    "Fuerteventura": "ES",
    "La Palma": "ES",
    "La Gomera": "ES",
    "El Hierro": "ES",
    "La Graciosa": "ES",
    "Balearic Islands": "ES",
    "Islas Baleares": "ES",
    "Illes Balears": "ES",
    "Majorca": "ES",
    "Mallorca": "ES",
    "Menorca": "ES",
    "Minorca": "ES",
    "Ibiza": "ES",
    "Formentera": "ES",
    "Azores": "PT",
    "Madeira": "PT",
    "Corsica": "FR",
    "Corse": "FR",
    "Falklands": "FK",
    "The Falklands": "FK",
    "Falkland": "FK",
    "Svalbard": "SJ",
    "Jan Mayen": "SJ",
    "Åland": "AX",
}
_KOSOVO = "XK"
_DIGIT = re.compile(r"\d")
_WELSH = "cy"  # NHS Wales writes to patients in Welsh (Welsh Language Standards): its lists may too.


@dataclass(frozen=True)
class Country:
    code: str  # ISO 3166-1 alpha-2 (XK for Kosovo)

    @property
    def postage(self) -> str:
        if self.code in _UK_CODES:
            return UK
        return EUROPE if self.code in _EUROPE_CODES else REST_OF_WORLD

    @property
    def is_uk(self) -> bool:
        return self.postage == UK


def find_country(text: str) -> Country | None:
    """The country a whole address line names, or None. ISO codes are not names: "DE" or "PER"
    on an address line is more likely an abbreviation (only "UK", "GB", "GBR", "NI", "ROI", "USA",
    "UAE" are taken)."""
    if _DIGIT.search(text):
        return None  # no country's name has a digit: most often the line is a postcode (as Notify skips it)
    key = _key(text)
    code = _index().get(key) if key else None
    return Country(code) if code else None


def _key(text: str) -> str:
    """Letters and digits only, without accents or case: "Côte d'Ivoire" and "COTE D IVOIRE" match."""
    decomposed = unicodedata.normalize("NFKD", text.replace("&", " and ").casefold())
    return "".join(ch for ch in decomposed if ch.isalnum() and not unicodedata.combining(ch))


@cache
def _index() -> dict[str, str]:
    """Name key to country code. The first source to name a key keeps it, so an English or
    Welsh name is never taken over by another country's name for itself."""
    codes = {country.alpha_2 for country in pycountry.countries} | {_KOSOVO}
    index: dict[str, str] = {}
    for name, code in _names(codes):
        key = _key(name)
        if key:
            index.setdefault(key, code)
    return index


def _names(codes: set[str]) -> Iterator[tuple[str, str]]:
    yield from _SYNONYMS.items()
    for country in pycountry.countries:
        for attribute in ("name", "official_name", "common_name"):
            name = getattr(country, attribute, None)
            if name:
                yield name, country.alpha_2
    for language in ("en", _WELSH):
        territories = Locale.parse(language).territories
        yield from ((territories[code], code) for code in sorted(codes) if code in territories)
    for code in sorted(codes):
        yield from ((name, code) for name in _own_names(code))


def _own_names(code: str) -> Iterator[str]:
    """What the country calls itself, in each of its official languages that CLDR has."""
    for language in get_official_languages(code, de_facto=True):
        if localedata.exists(language):
            name = Locale.parse(language).territories.get(code)
            if name:
                yield name
