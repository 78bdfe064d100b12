"""Plain data records that flow between the stages, and the words the job uses for them.

intake gives `PatientRow`s and `Exclusion`s; resolve decides who is eligible;
tokens attaches a `CodePair`; render and assemble place each `Letter` in a PDF, and
assemble says where its envelope landed (`PieceRecord`) in which `PrintFile`.
Every record is frozen: a stage returns new records, it never edits old ones.

`Step` names the job's stages as the progress bars show them (the journal marks the
finished ones with the same words); `Stage` is where one input row has got to.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum


class Step(StrEnum):
    """A stage of the job, by the name the progress bars show (intake has none, it is quick)."""

    INTAKE = "intake"
    FIT = "fit"
    RESOLVE = "resolve"
    CODES = "codes"
    RENDER = "render"
    ASSEMBLE = "assemble"
    CHECK = "check"
    MANIFEST = "manifest"
    DELIVER = "deliver"


class Stage(StrEnum):
    """Where one input row has got to: ``read → eligible → coded → placed``, or ``excluded``. A pair PKB
    issued whose expiry could not be read waits at ``held`` (never asked for again) until it can be."""

    READ = "read"
    ELIGIBLE = "eligible"
    CODED = "coded"
    PLACED = "placed"
    EXCLUDED = "excluded"
    HELD = "held"  # PKB issued a pair whose expiry could not be read: kept, never asked for again
    HANDED_OFF = "handed-off"  # coded, and written to the hand-off folder for a specialist provider (braille...)


class Reissue(StrEnum):
    """Why a patient was asked for a second code pair: the only two reasons there are."""

    LOST_RESPONSE = "lost-response"  # a request's answer never arrived; PKB may have issued a pair
    EXPIRING = "expiring"  # the pair would expire within --min-validity-days of printing


class Reason(StrEnum):
    """Why an input row produced no letter. Stable codes: customers script on them."""

    MALFORMED_ROW = "malformed-row"
    INVALID_NHS_NUMBER = "invalid-nhs-number"
    DUPLICATE_NHS_NUMBER = "duplicate-nhs-number"
    MISSING_NAME = "missing-name"
    INVALID_DATE_OF_BIRTH = "invalid-date-of-birth"
    ADDRESS_TOO_FEW_LINES = "address-too-few-lines"
    ADDRESS_TOO_MANY_LINES = "address-too-many-lines"
    ADDRESS_BAD_POSTCODE = "address-bad-postcode"
    ADDRESS_TOO_WIDE = "address-too-wide"
    ADDRESS_TOO_TALL = "address-too-tall"
    ADDRESS_INVALID_CHARACTER = "address-invalid-character"
    ADDRESS_NO_FIXED_ABODE = "address-no-fixed-abode"
    ADDRESS_INTERNATIONAL = "address-international"
    NOT_FOUND = "not-found"
    NO_ACCESS = "no-access"
    DECEASED = "deceased"
    ALREADY_REGISTERED = "already-registered"
    NO_DATE_OF_BIRTH = "no-date-of-birth"
    UNDER_16 = "under-16"
    DEMOGRAPHICS_MISMATCH = "demographics-mismatch"
    PKB_REFUSED = "pkb-refused"
    EXPIRY_UNREADABLE = "expiry-unreadable"
    TEMPLATE_ERROR = "template-error"
    INVALID_POSTAGE_CLASS = "invalid-postage-class"
    MAILMARK_MISSING = "mailmark-missing"
    MAILMARK_INVALID = "mailmark-invalid"
    MAILMARK_UNSORTED = "mailmark-unsorted"
    INVALID_FORMAT = "invalid-format"
    INVALID_LANGUAGE = "invalid-language"
    NO_WELSH_TEMPLATE = "no-welsh-template"


@dataclass(frozen=True)
class PatientRow:
    """One row of the customer's list that passed intake checks."""

    input_row: int  # line number in the file, header = 1
    customer_ref: str
    nhs_number: str  # 10 digits, normalised
    title: str
    first_name: str
    last_name: str
    date_of_birth: dt.date | None
    address_lines: tuple[str, ...]  # postal lines without the addressee; postcode last
    postcode: str  # "" for an address abroad, or a BFPO address without a postcode
    postage: str = "uk"  # Royal Mail zone: "uk", "europe" or "rest-of-world"
    postage_class: str = ""  # first, second or economy from the list's column; empty: the job's class
    format: str = ""  # the list's Format column (variants.FORMATS); empty: the job's format
    language: str = ""  # the list's Language column (variants.LANGUAGES); empty: the job's language

    @property
    def display_name(self) -> str:
        return " ".join(part for part in (self.title, self.first_name, self.last_name) if part)


@dataclass(frozen=True)
class Exclusion:
    """An input row that produced no letter, and why."""

    input_row: int
    customer_ref: str
    nhs_number: str
    reason: Reason
    detail: str


@dataclass(frozen=True)
class CodePair:
    """A live PKB credential: treat like a password, never log it."""

    invitation_code: str
    access_code: str
    expires: dt.date

    def __repr__(self) -> str:  # keeps codes out of tracebacks and debug logs
        return f"CodePair(<redacted>, expires={self.expires.isoformat()})"


@dataclass(frozen=True)
class HeldPair:
    """A pair PKB issued whose expiry could not be read: live, but not printable until it is.

    `expiry_part` is the answer's `expiry` part as JSON (it holds no code), kept so that a
    version of pkb-letters that reads it can print the pair; `problem` says what was wrong."""

    invitation_code: str
    access_code: str
    expiry_part: str
    problem: str

    def __repr__(self) -> str:  # keeps codes out of tracebacks and debug logs
        return f"HeldPair(<redacted>, problem={self.problem!r})"


@dataclass(frozen=True)
class Eligible:
    """A patient PKB knows, who may be invited."""

    patient: PatientRow
    pkb_id: str | None  # REST needs it for recordAccessToken; FHIR works by NHS number


@dataclass(frozen=True)
class Letter:
    """A patient with codes, ready to render; `sequence` is the order in the print file."""

    sequence: int
    piece_id: str
    patient: PatientRow
    codes: CodePair


@dataclass(frozen=True)
class PlacedLetter:
    """A rendered letter and where it sits in the output."""

    letter: Letter
    file: str
    first_page: int  # 1-based within `file`
    page_count: int


@dataclass(frozen=True)
class PieceRecord:
    """Where one envelope's sheets landed in the print files, and the marks printed on them."""

    sequence: int
    file: str
    first_page: int
    sheet_count: int
    postage_class: str
    marks: tuple[str, ...]


@dataclass(frozen=True)
class PrintFile:
    """One finished print file, as the manifest lists it."""

    name: str
    letters: int
    pages: int
    sheets: int
    bytes: int
    sha256: str
    postage_class: str | None = None  # set when the job is split by class
    sheet_count: int | None = None  # set when split by sheets: every letter in the file has this many
    format: str | None = None  # set when split by format: every letter in the file is in it


class DeliveryOutcome(StrEnum):
    """How one `pkb-letters deliver` attempt ended."""

    DELIVERED = "delivered"
    ALREADY_DELIVERED = "already-delivered"  # the drop folder already held this job, complete
    FAILED = "failed"


@dataclass(frozen=True)
class DeliveredFile:
    name: str
    bytes: int
    sha256: str
    action: str  # "sent", or "already-there" when a resumed delivery found it in place


@dataclass(frozen=True)
class Delivery:
    """One delivery attempt as the journal keeps it; `destination` never holds a password."""

    started: dt.datetime
    finished: dt.datetime
    destination: str
    outcome: DeliveryOutcome
    host_key: str | None  # the SFTP server's verified key, "ssh-ed25519 SHA256:…"
    files: tuple[DeliveredFile, ...]
    detail: str = ""


@dataclass(frozen=True)
class DeletedFile:
    name: str  # relative to the job folder
    bytes: int
    sha256: str
    matches_manifest: bool | None  # None: the manifest does not list this file (e.g. a left-over chunk)


@dataclass(frozen=True)
class PurgeRecord:
    """What `purge` removed from a dispatched job, and when; kept in purge.json and the journal."""

    job_id: str
    purged_at: str
    dispatched_on: str
    purged_by: str
    codes_erased: int  # rows whose code pair was erased
    deleted_files: tuple[DeletedFile, ...]
    kept: tuple[str, ...]
