"""Output intents: the printing condition a PDF/X-4 or PDF/A-2b print file declares.

Takes the print room's CMYK ICC profile, or none; gives the profile every letter is
rendered with (our FOGRA39 profile when the job names none, see profiles/README.md)
and, for a profile whose printing condition is registered with the ICC, the
OutputIntent entries a print room's preflight looks for.

WeasyPrint embeds the profile as Little CMS writes it back (with its text tags
rewritten, so not the file's bytes), names the condition after the profile's
description and writes no /RegistryName; `restore` puts the profile back byte for
byte and labels it when the print files are assembled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pypdf.generic import DictionaryObject, NameObject, StreamObject, TextStringObject

DEFAULT_PROFILE = Path(__file__).parent / "profiles" / "pkb-letters-fogra39.icc"
ICC_REGISTRY = "http://www.color.org"


@dataclass(frozen=True)
class OutputCondition:
    identifier: str  # a characterization name in the ICC registry, e.g. FOGRA39
    condition: str  # the printing condition, in words
    info: str  # a short human-readable name


FOGRA39 = OutputCondition(
    "FOGRA39",
    "Offset printing, according to ISO 12647-2:2004/Amd 1, OFCOM, paper type 1 or 2 = coated art, "
    "115 g/m2, tone value increase curves A (CMY) and B (K)",
    "Coated FOGRA39 (ISO 12647-2:2004)",
)


def profile_path(custom: Path | None) -> Path:
    return custom if custom is not None else DEFAULT_PROFILE


@cache
def _registered() -> dict[str, OutputCondition]:
    """Registered conditions by the SHA-256 of the profile we ship for each."""
    return {hashlib.sha256(DEFAULT_PROFILE.read_bytes()).hexdigest(): FOGRA39}


def registered_condition(profile: bytes) -> OutputCondition | None:
    return _registered().get(hashlib.sha256(profile).hexdigest())


def restore(intent: DictionaryObject, profile: bytes) -> None:
    """Make an OutputIntent (a pypdf dictionary) carry `profile` exactly as its file holds it
    and, for a registered condition, that condition's name; a print room's own profile keeps
    the name WeasyPrint gave it, its description."""
    stream = intent["/DestOutputProfile"].get_object()
    if not isinstance(stream, StreamObject):
        raise ValueError("the output intent's /DestOutputProfile is not a stream")
    if stream.get("/Filter") is not None and stream["/Filter"] != "/FlateDecode":
        raise ValueError(f"the output intent's profile is encoded with {stream['/Filter']}")
    stream.set_data(profile)  # pypdf compresses again for a FlateDecode stream
    condition = registered_condition(profile)
    if condition is None:
        return
    intent[NameObject("/OutputConditionIdentifier")] = TextStringObject(condition.identifier)
    intent[NameObject("/OutputCondition")] = TextStringObject(condition.condition)
    intent[NameObject("/RegistryName")] = TextStringObject(ICC_REGISTRY)
    intent[NameObject("/Info")] = TextStringObject(condition.info)
