"""Country names as people write them on the last line of an address, and Royal Mail's postage zones.

Takes a line of text and gives the `Country` it names, or None. The list of countries is
ISO 3166-1 from pycountry (Debian's iso-codes data, kept up to date there); this module adds
only what ISO does not have: the English names people actually write ("Russia", "Holland",
"Republic of Ireland"), the names of the UK's own parts and islands, and Royal Mail's zones.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache

import pycountry

UK = "uk"
EUROPE = "europe"
REST_OF_WORLD = "rest-of-world"

# Posted at UK rates: the UK itself and the Crown Dependencies, whose postcodes (GY, JE, IM) are UK postcodes.
_UK_CODES = frozenset({"GB", "GG", "JE", "IM"})

# Royal Mail's "Europe" zone for international letters (royalmail.com/international-zones), as
# ISO 3166-1 codes; XK is Kosovo, which ISO has not assigned. Every other country is rest of world.
_EUROPE_CODES = frozenset(
    "AD AL AM AT AX AZ BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GE GI GL GR HR HU IE IS IT KG KZ LI LT "
    "LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM TJ TM TR UA UZ VA XK".split()
)

# Names in common English use that ISO 3166 spells differently, and places that are part of a country.
_SYNONYMS = {
    "United Kingdom": "GB", "UK": "GB", "U.K.": "GB", "Great Britain": "GB", "Britain": "GB", "GB": "GB",
    "England": "GB", "Scotland": "GB", "Wales": "GB", "Cymru": "GB", "Northern Ireland": "GB",
    "Channel Islands": "GB", "Alderney": "GG", "Sark": "GG", "Herm": "GG",
    "Russia": "RU", "Turkey": "TR", "Vatican City": "VA", "Vatican": "VA", "Kosovo": "XK",
    "Republic of Ireland": "IE", "Eire": "IE", "Holland": "NL", "The Netherlands": "NL",
    "Macedonia": "MK", "Bosnia": "BA", "Ivory Coast": "CI", "Brunei": "BN", "Cape Verde": "CV",
    "Micronesia": "FM", "Palestine": "PS", "Democratic Republic of the Congo": "CD", "DR Congo": "CD",
    "Republic of the Congo": "CG", "East Timor": "TL", "Swaziland": "SZ", "Burma": "MM",
    "UAE": "AE", "USA": "US", "U.S.A.": "US", "United States of America": "US", "America": "US",
    "Macau": "MO", "South Korea": "KR", "North Korea": "KP", "Syria": "SY", "Laos": "LA",
    "Canary Islands": "ES", "Balearic Islands": "ES", "Azores": "PT", "Madeira": "PT", "Corsica": "FR",
}
_KOSOVO = "XK"


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
    on an address line is more likely an abbreviation (only "UK", "GB", "USA", "UAE" are taken)."""
    code = _index().get(_key(text))
    return Country(code) if code else None


def _key(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[^0-9a-z]", "", bare.casefold())


@cache
def _index() -> dict[str, str]:
    index: dict[str, str] = {}
    for country in pycountry.countries:
        for attribute in ("name", "official_name", "common_name"):
            name = getattr(country, attribute, None)
            if name:
                index[_key(name)] = country.alpha_2
    index.update({_key(name): code for name, code in _SYNONYMS.items()})
    index[_key("Republic of Kosovo")] = _KOSOVO
    return index
