"""Print order: the input order, or postcode order, which groups letters for postage discounts.

Postcode order sorts by area, district (numerically: NE2 before NE10), sector and
unit, so letters for one delivery office sit together in the print file.
"""

from __future__ import annotations

import re

_OUTWARD = re.compile(r"^([A-Z]{1,2})(\d{1,2})([A-Z]?)$")


def postcode_key(postcode: str) -> tuple:
    outward, _, inward = postcode.upper().partition(" ")
    match = _OUTWARD.match(outward)
    if not match:  # BFPO and the like: after every postcode, in text order
        return ("~", 0, outward, inward)
    area, district, sub_district = match.groups()
    return (area, int(district), sub_district, inward[:1], inward[1:])


def postcode_order_key(postcode: str) -> bytes:
    """`postcode_key` as bytes that sort the same way byte by byte, so SQLite can order by it.

    Each text field is its UTF-8 (whose byte order is code point order) with bytes 0 and 1
    escaped, ended by a 0 byte: a field sorts before any longer one it begins. The district
    number is two bytes, big-endian."""
    encoded = bytearray()
    for field in postcode_key(postcode):
        if isinstance(field, int):
            encoded += field.to_bytes(2, "big")
        else:
            text = field.encode("utf-8", "surrogatepass")
            encoded += text.replace(b"\x01", b"\x01\x02").replace(b"\x00", b"\x01\x01") + b"\x00"
    return bytes(encoded)
