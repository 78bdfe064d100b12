"""Job settings: the job file (TOML), the environment and the command line, merged once.

Gives frozen settings records; nothing else in the package reads the
environment or the job file. The client secret comes only from the environment
or from a file readable by its owner alone, never from the command line.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pkb_letters import variants
from pkb_letters.errors import ConfigError
from pkb_letters.packaged import DEFAULT_TEMPLATE as DEFAULT_TEMPLATE  # a setting's default: re-exported
from pkb_letters.pkb.retry import RetryPolicy
from pkb_letters.pkb.tls import pkb_ssl_context

PRODUCTION_JOIN_URL = "https://joinpkb.com/"
SANDBOX_JOIN_URL = "https://sandbox.patientsknowbest.com/join/"
APIS = ("fhir", "rest")
UNREADABLE_EXPIRY = ("stop", "exclude")

_ENV_KEYS = {
    "token_url": "PKB_TOKEN_URL",
    "rest_base": "PKB_REST_BASE",
    "fhir_base": "PKB_FHIR_BASE",
    "client_id": "PKB_CLIENT_ID",
    "org_id": "PKB_ORG_ID",
}


@dataclass(frozen=True)
class PkbConnection:
    token_url: str
    rest_base: str
    fhir_base: str
    client_id: str
    org_id: str
    client_secret: str = field(repr=False)
    ca_bundle: Path | None = None  # CAs to trust for PKB instead of the default store; verification stays on

    def __repr__(self) -> str:
        return f"PkbConnection(token_url={self.token_url!r}, client_id={self.client_id!r}, secret=<redacted>)"


@dataclass(frozen=True)
class LetterSettings:
    organisation: str = "Your NHS organisation"
    contact: str = ""
    signatory: str = ""
    signatory_role: str = ""
    join_url: str = PRODUCTION_JOIN_URL
    date: dt.date = field(default_factory=dt.date.today)
    format: str = variants.STANDARD  # for rows whose Format cell is empty
    language: str = variants.ENGLISH  # for rows whose Language cell is empty
    large_print_pt: float = variants.LARGE_PRINT_DEFAULT_PT  # body text of a large-print letter
    handoff_codes: bool = False  # put the codes in the hand-off folder's texts (they leave our control)


@dataclass(frozen=True)
class RuleSettings:
    """The patient-safety rules a job may change. The deceased check, and the surname and date
    of birth parts of the demographic cross-check, are deliberately not settings."""

    international_post: bool = False  # letters abroad: the last address line must name the country
    postcode_check: bool = True  # compare the list's postcode with PKB's (off when PKB addresses are stale)
    # print only a template and page settings a named person signed off (`pkb-letters approve`)
    require_approval: bool = False


@dataclass(frozen=True)
class JobSettings:
    patients: Path
    out_dir: Path
    api: str = "fhir"
    template_dir: Path = DEFAULT_TEMPLATE
    letter: LetterSettings = field(default_factory=LetterSettings)
    rest_code_validity_days: int = 30
    # A pair PKB issued whose expiry cannot be read: "stop" (hold it, stop the job) or "exclude" (an exception).
    unreadable_expiry: str = "stop"
    chunk_size: int = 100
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)  # render processes
    share_layout: bool = True  # off: every letter laid out in full (slower; for comparing, or a misbehaving template)
    executor: str = "local"  # where chunks are rendered: "local" or "dask://HOST:PORT" (see executor_setting)
    rules: RuleSettings = field(default_factory=RuleSettings)
    min_validity_days: int = 21  # codes expiring sooner than this after printing are re-issued
    concurrency: int = 8  # REST requests in flight at once
    requests_per_second: float | None = None  # client-side cap agreed with PKB; None is none
    failure_limit: int = 10  # PKB failures in a row before the job stops (resumably)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.api == "rest" and self.rest_code_validity_days <= self.min_validity_days:
            raise ConfigError(
                f"REST codes valid {self.rest_code_validity_days} days could never meet the minimum validity "
                f"of {self.min_validity_days} days at printing; lower --min-validity-days or raise "
                "[codes] rest_validity_days"
            )
        if self.unreadable_expiry not in UNREADABLE_EXPIRY:
            raise ConfigError(
                f"[codes] unreadable_expiry must be one of {', '.join(UNREADABLE_EXPIRY)}, "
                f"not {self.unreadable_expiry!r}"
            )
        if self.chunk_size < 1:
            raise ConfigError(f"chunk size must be at least 1, not {self.chunk_size}")
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, not {self.concurrency}")
        if self.requests_per_second is not None and self.requests_per_second <= 0:
            raise ConfigError(f"a rate limit must be positive, not {self.requests_per_second}")


def sandbox_connection(server: Any) -> PkbConnection:
    """The connection to a running `pkb_letters.sandbox.SandboxServer`."""
    return PkbConnection(
        token_url=server.token_url,
        rest_base=server.rest_base,
        fhir_base=server.fhir_base,
        client_id=server.client_id,
        org_id=server.org_id,
        client_secret=server.client_secret,
    )


def load_job_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read job file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"job file {path} is not valid TOML: {exc}") from exc


def pkb_connection(job: Mapping[str, Any], env: Mapping[str, str], job_dir: Path, api: str = "fhir") -> PkbConnection:
    """The PKB connection from the job file's [pkb] table, overridden by PKB_* variables."""
    table = job.get("pkb", {})
    values = {key: env.get(var) or table.get(key) or "" for key, var in _ENV_KEYS.items()}
    # A REST job may have no FHIR base: it then cannot confirm who has registered, and says so.
    missing = [
        f"{_ENV_KEYS[key]} (or [pkb] {key})"
        for key, value in values.items()
        if not value and not (key == "fhir_base" and api == "rest")
    ]
    if missing:
        raise ConfigError("PKB connection incomplete; set " + ", ".join(missing))
    _refuse_insecure_transport(table, values)
    return PkbConnection(
        client_secret=_client_secret(table, env, job_dir), ca_bundle=ca_bundle(table, env, job_dir), **values
    )


# Names people reach for to switch certificate checks off; none of them exists here.
_VERIFY_OFF_KEYS = ("verify", "verify_tls", "tls_verify", "ssl_verify", "verify_ssl", "insecure")
_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def _refuse_insecure_transport(table: Mapping[str, Any], urls: Mapping[str, str | None]) -> None:
    """TLS verification cannot be turned off, and PKB is reached over https (plain http on loopback only)."""
    for key in _VERIFY_OFF_KEYS:
        if key in table:
            raise ConfigError(
                f"[pkb] {key} is not a setting: TLS certificate verification is always on and cannot be "
                "turned off; to trust a private CA, name its PEM bundle in [pkb] ca_bundle or PKB_CA_BUNDLE"
            )
    for key in ("token_url", "rest_base", "fhir_base"):
        if not urls[key]:
            continue
        parts = urlsplit(str(urls[key]))
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS):
            raise ConfigError(f"{_ENV_KEYS[key]} ([pkb] {key}) must be an https:// URL, not {urls[key]!r}")


def ca_bundle(table: Mapping[str, Any], env: Mapping[str, str], job_dir: Path) -> Path | None:
    """PKB_CA_BUNDLE, else [pkb] ca_bundle (relative to the job file); checked now, not at the first call."""
    value = env.get("PKB_CA_BUNDLE") or table.get("ca_bundle")
    if not value:
        return None
    path = job_dir / value
    if not path.is_file():
        raise ConfigError(f"CA bundle {path} (PKB_CA_BUNDLE or [pkb] ca_bundle) is not a file")
    pkb_ssl_context(path)  # refuse an unreadable or empty bundle with a clear message
    return path


def _client_secret(table: Mapping[str, Any], env: Mapping[str, str], job_dir: Path) -> str:
    if env.get("PKB_CLIENT_SECRET"):
        return env["PKB_CLIENT_SECRET"]
    secret_file = table.get("client_secret_file")
    if not secret_file:
        raise ConfigError("no PKB client secret: set PKB_CLIENT_SECRET or name a file in [pkb] client_secret_file")
    return read_secret_file(job_dir / secret_file)


def read_secret_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"secret file {path} can be read by other users (mode {stat.filemode(mode)}); run: chmod 600 {path}"
            )
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {path}: {exc.strerror}") from exc
    if not secret:
        raise ConfigError(f"secret file {path} is empty")
    return secret


def letter_settings(job: Mapping[str, Any], join_url: str) -> LetterSettings:
    table = dict(job.get("letter", {}))
    known = {"organisation", "contact", "signatory", "signatory_role", "join_url", "date", *_VARIANT_KEYS}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"unknown [letter] settings: {', '.join(sorted(unknown))}")
    table.setdefault("join_url", join_url)
    if isinstance(table.get("date"), str):
        try:
            table["date"] = dt.date.fromisoformat(table["date"])
        except ValueError as exc:
            raise ConfigError(f"[letter] date {table['date']!r} is not YYYY-MM-DD") from exc
    _check_variant_settings(table)
    return LetterSettings(**table)


_VARIANT_KEYS = ("format", "language", "large_print_pt", "handoff_codes")


def _check_variant_settings(table: dict[str, Any]) -> None:
    """[letter] format, language, large_print_pt and handoff_codes, made canonical or refused."""
    try:
        for key, parse in (("format", variants.parse_format), ("language", variants.parse_language)):
            if key in table:
                table[key] = parse(str(table[key])) or getattr(LetterSettings, key)
    except variants.UnknownValue as exc:
        raise ConfigError(f"[letter] {exc}") from None
    size = table.get("large_print_pt", variants.LARGE_PRINT_DEFAULT_PT)
    if not isinstance(size, int | float) or isinstance(size, bool) or size < variants.LARGE_PRINT_MIN_PT:
        raise ConfigError(f"[letter] large_print_pt must be a number of at least {variants.LARGE_PRINT_MIN_PT:g}")
    if not isinstance(table.get("handoff_codes", False), bool):
        raise ConfigError("[letter] handoff_codes must be true or false")


def environment() -> Mapping[str, str]:
    return os.environ


SFTP_PASSWORD_ENV = "PKB_LETTERS_SFTP_PASSWORD"


def sftp_password(env: Mapping[str, str]) -> str | None:
    """The SFTP password, for mail houses that do not take keys: from the environment only."""
    return env.get(SFTP_PASSWORD_ENV) or None


def rule_settings(
    job: Mapping[str, Any],
    international_post: bool | None = None,
    postcode_check: bool | None = None,
    require_approval: bool | None = None,
) -> RuleSettings:
    """The job file's [rules] table, with command-line flags (when given) taking precedence."""
    table = dict(job.get("rules", {}))
    known = {"international_post", "postcode_check", "require_approval"}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"unknown [rules] settings: {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    for key, value in table.items():
        if not isinstance(value, bool):
            raise ConfigError(f"[rules] {key} must be true or false, not {value!r}")
    if international_post is not None:
        table["international_post"] = international_post
    if postcode_check is not None:
        table["postcode_check"] = postcode_check
    if require_approval is not None:
        table["require_approval"] = require_approval
    return RuleSettings(**table)


LOCAL_EXECUTOR = "local"
_DASK_SCHEMES = {"dask": "tcp", "dask+tls": "tls"}  # ours -> Dask's; TLS certificates come from Dask's own config


def executor_setting(job: Mapping[str, Any], executor: str | None = None) -> str:
    """Where chunks are rendered: --executor, else the job file's [render] executor, else "local"."""
    table = dict(job.get("render", {}))
    unknown = set(table) - {"executor"}
    if unknown:
        raise ConfigError(f"unknown [render] settings: {', '.join(sorted(unknown))}; known: executor")
    value = executor or table.get("executor", LOCAL_EXECUTOR)
    if value != LOCAL_EXECUTOR:
        dask_scheduler_address(value)
    return value


def dask_scheduler_address(executor: str) -> str:
    """`dask://HOST:PORT` as Dask writes it: `tcp://HOST:PORT` (`dask+tls://` becomes `tls://`)."""
    parts = urlsplit(str(executor))
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in _DASK_SCHEMES or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ConfigError(
            f"executor {executor!r} is neither {LOCAL_EXECUTOR!r} nor dask://HOST:PORT (or dask+tls://HOST:PORT)"
        )
    return f"{_DASK_SCHEMES[parts.scheme]}://{parts.netloc}"
