"""Deliver: a finished job folder in, the same job in the mail house's drop folder out.

The mail house's automation starts printing as soon as it sees a complete job,
so all it can ever see is whole and checked:

- every file the manifest lists (the print file(s), `manifest.json`,
  `manifest.csv`; never `exceptions.csv` or the journal) goes into a folder
  named by the job id, first as `NAME.part`. The bytes sent must hash to the
  job's own digest and the server must report the size sent; only then is it
  renamed to `NAME` (posix-rename@openssh.com where the server offers it);
- `NAME.sha256` goes beside it, in `sha256sum` format;
- `{job}.done`, listing every file's name, size and digest, is written last.

`manifest.json` goes first, so it claims the folder for this job. A rerun sends
only what is missing or different. A folder holding another job with the same
id, or a job this journal already handed over there, is refused, and so is a job whose letters
did not read back as their journal rows (`check.readback`, recorded by the run).

A reprint set (`job.reconcile`) goes the same way as a job of its own, `{job}-reprint-NN`
(`read_reprint`), each file as the journal recorded it when it was made and passed its preflight.

Both drop folders (`LocalFolder`, `SftpFolder`) implement `DropFolder`; the
rules live once, in `deliver`. `deliver_job` adds the job folder and the journal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import posixpath
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import paramiko

from pkb_letters.config import SFTP_PASSWORD_ENV
from pkb_letters.errors import ConfigError, DeliveryConflict, DeliveryError, HostKeyError, InvariantError
from pkb_letters.files import PRIVATE_DIR, PRIVATE_FILE, sha256_of
from pkb_letters.job.journal import JOURNAL_NAME, Journal
from pkb_letters.job.manifest import EXCEPTIONS_CSV, MANIFEST_CSV, MANIFEST_JSON
from pkb_letters.records import DeliveredFile, Delivery, DeliveryOutcome

PART_SUFFIX = ".part"
SIDECAR_SUFFIX = ".sha256"
DONE_SUFFIX = ".done"
NEVER_SENT = frozenset({EXCEPTIONS_CSV, JOURNAL_NAME})  # NHS numbers and codes stay with us
DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
SENT, ALREADY_THERE = "sent", "already-there"

_BLOCK = 32 * 1024  # one SFTP write request
_TIMEOUT_S = 60  # a silent server fails the delivery instead of hanging it
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
logger = logging.getLogger(__name__)


# -- the job ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobFile:
    name: str
    path: Path
    size: int
    sha256: str

    @property
    def sidecar_name(self) -> str:
        return self.name + SIDECAR_SUFFIX

    @property
    def sidecar(self) -> bytes:
        return f"{self.sha256}  {self.name}\n".encode()


@dataclass(frozen=True)
class Job:
    id: str
    files: tuple[JobFile, ...]  # in upload order, manifest.json first

    @property
    def done_name(self) -> str:
        return self.id + DONE_SUFFIX

    def done(self) -> bytes:
        files = [{"name": f.name, "bytes": f.size, "sha256": f.sha256} for f in self.files]
        listing = {"job": self.id, "files": files}
        return (json.dumps(listing, indent=2) + "\n").encode()

    def final_names(self) -> set[str]:
        return {f.name for f in self.files} | {f.sidecar_name for f in self.files} | {self.done_name}

    def own_names(self) -> set[str]:
        """Every name this job may leave in its folder, interrupted uploads included."""
        finals = self.final_names()
        return finals | {name + PART_SUFFIX for name in finals}


def read_job(out_dir: Path) -> Job:
    """The files a finished job hands over, checked against what its manifest recorded."""
    try:
        manifest = json.loads((out_dir / MANIFEST_JSON).read_text(encoding="utf-8"))
        job_id, print_files = manifest["job"]["id"], manifest["job"]["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{out_dir} holds no readable {MANIFEST_JSON}; is it a finished job folder?") from exc
    _check_plain_name(job_id, "job id")
    if not print_files:
        raise DeliveryError(f"job {job_id} has no letters: there is nothing for the mail house to print")
    files = [_local_file(out_dir, MANIFEST_JSON), _local_file(out_dir, MANIFEST_CSV)]
    for entry in print_files:
        _check_plain_name(entry["name"], "print file name")
        if entry["name"] in NEVER_SENT:
            raise InvariantError(f"{MANIFEST_JSON} lists {entry['name']}, which never goes to the mail house")
        file = _local_file(out_dir, entry["name"])
        if (file.size, file.sha256) != (entry["bytes"], entry["sha256"]):
            raise InvariantError(f"{file.path} is not the file {MANIFEST_JSON} describes: it changed after the run")
        files.append(file)
    return Job(job_id, tuple(files))


def read_reprint(out_dir: Path, number: int, recorded: Mapping[str, str]) -> Job:
    """Reprint set `number` (`job.reconcile`) as a job of its own, `{job}-reprint-NN`: its json first (it
    claims the folder), its csv, then its PDF; each file must be the one the journal recorded
    (`recorded`: name → SHA-256) when it was made and checked."""
    from pkb_letters.job.reconcile import reprint_name

    names = [reprint_name(number, suffix) for suffix in ("json", "csv", "pdf")]
    try:
        job_id = json.loads((out_dir / names[0]).read_text(encoding="utf-8"))["job"]["id"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{out_dir} holds no readable {names[0]}") from exc
    _check_plain_name(job_id, "job id")
    files = [_local_file(out_dir, name) for name in names]
    for file in files:
        if recorded.get(file.name) != file.sha256:
            raise InvariantError(f"{file.path} is not the file reconcile made and checked: it changed since")
    return Job(f"{job_id}-reprint-{number:02d}", tuple(files))


def _local_file(out_dir: Path, name: str) -> JobFile:
    path = out_dir / name
    try:
        return JobFile(name, path, path.stat().st_size, sha256_of(path))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def _check_plain_name(name: object, what: str) -> None:
    # these become remote path components: no separators, no "..", no hidden names
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name):
        raise InvariantError(f"{MANIFEST_JSON} has an unsafe {what}: {name!r}")


# -- drop folders -------------------------------------------------------------------------------


class DropFolder(Protocol):
    """One job's folder inside a drop folder; every name is relative to it."""

    where: str  # the drop folder, for messages and the journal; never holds a password

    @property
    def host_key(self) -> str | None: ...  # the verified SFTP host key, "ssh-ed25519 SHA256:…"

    def names(self) -> set[str]: ...  # empty while the job folder does not exist
    def create(self) -> None: ...  # the job folder, if it is missing
    def size(self, name: str) -> int | None: ...  # None when there is no such file
    def read(self, name: str) -> bytes: ...
    def write(self, name: str, blocks: Iterable[bytes]) -> None: ...
    def rename(self, old: str, new: str) -> None: ...  # replaces `new`
    def remove(self, name: str) -> None: ...


class LocalFolder:
    """A drop folder on this machine or a mounted share."""

    host_key = None

    def __init__(self, root: Path, job_id: str) -> None:
        if not root.is_dir():
            raise DeliveryError(f"drop folder {root} does not exist")
        self.where = local_where(root)
        self._dir = root / job_id

    def names(self) -> set[str]:
        try:
            return set(os.listdir(self._dir))
        except FileNotFoundError:
            return set()

    def create(self) -> None:
        self._dir.mkdir(mode=PRIVATE_DIR, exist_ok=True)  # the letters carry codes: owner only

    def size(self, name: str) -> int | None:
        try:
            return (self._dir / name).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, name: str) -> bytes:
        return (self._dir / name).read_bytes()

    def write(self, name: str, blocks: Iterable[bytes]) -> None:
        fd = os.open(self._dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as handle:
            for block in blocks:
                handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())

    def rename(self, old: str, new: str) -> None:
        os.replace(self._dir / old, self._dir / new)
        fd = os.open(self._dir, os.O_RDONLY)  # make the rename itself durable before the next step
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove(self, name: str) -> None:
        (self._dir / name).unlink(missing_ok=True)


def local_where(root: Path) -> str:
    return str(root.expanduser().resolve())


@dataclass(frozen=True)
class SftpDestination:
    """`sftp://USER@HOST[:PORT]/PATH`; `/~/PATH` is relative to the login folder."""

    user: str
    host: str
    port: int
    url_path: str

    @property
    def remote_root(self) -> str:
        if self.url_path in ("", "/~", "/~/"):
            return "."
        if self.url_path.startswith("/~/"):
            return self.url_path[3:]
        return self.url_path

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sftp://{self.user}@{host}:{self.port}{self.url_path}"


@dataclass(frozen=True)
class SshOptions:
    identity: Path | None = None  # None: the keys in ~/.ssh and the agent, as ssh would
    known_hosts: Path = DEFAULT_KNOWN_HOSTS
    password: str | None = field(default=None, repr=False)


def parse_destination(text: str) -> SftpDestination | Path:
    """`--to`: an sftp:// address or a folder path."""
    if not text.startswith("sftp://"):
        if "://" in text:
            raise ConfigError(f"cannot deliver to {text!r}: use sftp://USER@HOST[:PORT]/PATH or a folder")
        return Path(text)
    parts = urlsplit(text)
    if parts.password is not None:  # the message must not repeat the address: it holds the password
        raise ConfigError(f"no password in the --to address, please; set {SFTP_PASSWORD_ENV} instead")
    try:
        port = parts.port or 22
    except ValueError as exc:
        raise ConfigError(f"bad port in {text!r}") from exc
    if not parts.username or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"cannot deliver to {text!r}: use sftp://USER@HOST[:PORT]/PATH")
    return SftpDestination(unquote(parts.username), parts.hostname, port, unquote(parts.path))


class SftpFolder:
    """A drop folder on an SFTP server, over an authenticated paramiko session."""

    def __init__(self, sftp: paramiko.SFTPClient, destination: SftpDestination, job_id: str, host_key: str) -> None:
        self._sftp = sftp
        self.where = str(destination)
        self.host_key = host_key
        root = destination.remote_root
        root_stat = self._stat(root)
        if root_stat is None or not stat.S_ISDIR(root_stat.st_mode or 0):
            raise DeliveryError(f"drop folder {root} does not exist on {destination.host}")
        self._dir = posixpath.join(root, job_id)
        self._posix_rename = True

    def names(self) -> set[str]:
        try:
            return set(self._sftp.listdir(self._dir))
        except FileNotFoundError:
            return set()

    def create(self) -> None:
        if self._stat(self._dir) is None:
            self._sftp.mkdir(self._dir)

    def size(self, name: str) -> int | None:
        attributes = self._stat(self._path(name))
        return None if attributes is None else attributes.st_size

    def read(self, name: str) -> bytes:
        with self._sftp.open(self._path(name), "rb") as handle:
            return handle.read()

    def write(self, name: str, blocks: Iterable[bytes]) -> None:
        with self._sftp.open(self._path(name), "wb") as handle:
            handle.set_pipelined(True)  # don't wait for each write's answer; close() collects them
            for block in blocks:
                handle.write(block)

    def rename(self, old: str, new: str) -> None:
        if self._posix_rename:
            try:
                self._sftp.posix_rename(self._path(old), self._path(new))
                return
            except FileNotFoundError:
                raise
            except OSError as exc:  # an extension: servers may not know it, or refuse it
                self._posix_rename = False
                logger.info("%s refused posix-rename@openssh.com (%s); replacing files in two steps", self.where, exc)
        if self.size(new) is not None:  # plain SFTP rename refuses to replace a file
            self._sftp.remove(self._path(new))
        self._sftp.rename(self._path(old), self._path(new))

    def remove(self, name: str) -> None:
        self._sftp.remove(self._path(name))

    def _path(self, name: str) -> str:
        return posixpath.join(self._dir, name)

    def _stat(self, path: str) -> paramiko.SFTPAttributes | None:
        try:
            return self._sftp.stat(path)
        except FileNotFoundError:
            return None


@contextmanager
def open_drop_folder(destination: SftpDestination | Path, job_id: str, ssh: SshOptions) -> Iterator[DropFolder]:
    if isinstance(destination, Path):
        yield LocalFolder(destination, job_id)
        return
    client = _connect(destination, ssh)
    try:
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(_TIMEOUT_S)
        yield SftpFolder(sftp, destination, job_id, describe_key(client.get_transport().get_remote_server_key()))
    finally:
        client.close()


def describe_key(key: paramiko.PKey) -> str:
    """A host key as OpenSSH shows it to people: type and SHA256 fingerprint."""
    return f"{key.get_name()} {key.fingerprint}"


class _RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise HostKeyError(
            f"{hostname} is not in {self.known_hosts}; it offers the host key {describe_key(key)}. "
            f"Nothing was sent. Check that fingerprint with the mail house (not with the server itself), "
            f"then add the host's key line to {self.known_hosts}."
        )


def _connect(destination: SftpDestination, ssh: SshOptions) -> paramiko.SSHClient:
    known_hosts = ssh.known_hosts.expanduser()
    client = paramiko.SSHClient()
    try:
        if known_hosts.is_file():
            client.load_system_host_keys(str(known_hosts))  # "system": paramiko never writes to it
        client.set_missing_host_key_policy(_RefuseUnknownHost(known_hosts))
        client.connect(
            destination.host,
            destination.port,
            username=destination.user,
            key_filename=str(ssh.identity) if ssh.identity else None,
            password=ssh.password,
            look_for_keys=ssh.identity is None,
            allow_agent=ssh.identity is None,
            timeout=_TIMEOUT_S,
            banner_timeout=_TIMEOUT_S,
            auth_timeout=_TIMEOUT_S,
        )
    except (paramiko.SSHException, OSError, EOFError) as exc:
        transport = client.get_transport()
        line_alive = transport is not None and transport.is_active()
        client.close()
        raise _connect_error(exc, destination, known_hosts, line_alive) from exc
    except BaseException:
        client.close()
        raise
    return client


def _connect_error(exc: Exception, destination: SftpDestination, known_hosts: Path, line_alive: bool) -> DeliveryError:
    if isinstance(exc, paramiko.BadHostKeyException):
        return HostKeyError(
            f"the host key of {destination.host}:{destination.port} has CHANGED: it offers "
            f"{describe_key(exc.key)}, {known_hosts} expects {describe_key(exc.expected_key)}. Nothing was sent. "
            f"Ask the mail house whether they changed it before replacing the line in {known_hosts}."
        )
    if isinstance(exc, paramiko.AuthenticationException) and line_alive:  # paramiko also says so on EOF
        return DeliveryError(f"{destination.user}@{destination.host} refused our credentials: {exc}")
    return DeliveryError(f"cannot connect to {destination.host}:{destination.port}: {_reason(exc)}")


# -- the rules ----------------------------------------------------------------------------------


def deliver(
    job: Job, folder: DropFolder, delivered_before: bool = False
) -> tuple[DeliveryOutcome, tuple[DeliveredFile, ...]]:
    """Put `job` in `folder` by the rules above; gives the outcome and what happened to each file.

    `delivered_before`: this journal already completed a delivery to this drop folder, so a
    job folder without its trigger file means the mail house took it, not that it is unfinished.
    """
    present = folder.names()
    if _check_folder_holds_this_job(job, folder, present):
        logger.info("%s already holds job %s, complete", folder.where, job.id)
        return DeliveryOutcome.ALREADY_DELIVERED, tuple(_delivered(f, ALREADY_THERE) for f in job.files)
    if delivered_before:
        raise DeliveryConflict(
            f"job {job.id} was delivered to {folder.where} before and its {job.done_name} is gone there: the mail "
            f"house may have picked it up. Sending it again could print every letter twice; if they ask for it, "
            f"rerun with --redeliver."
        )
    folder.create()
    delivered = tuple(_send(folder, file, present) for file in job.files)
    for name in folder.names():  # interrupted uploads of files that are now in place
        if name.endswith(PART_SUFFIX):
            folder.remove(name)
    _put_bytes(folder, job.done_name, job.done())
    _check_complete(job, folder)
    logger.info("%s: job %s delivered, %s written last", folder.where, job.id, job.done_name)
    return DeliveryOutcome.DELIVERED, delivered


def _check_folder_holds_this_job(job: Job, folder: DropFolder, present: set[str]) -> bool:
    """True when the job is already complete there; raises if the folder holds anything else."""
    strangers = present - job.own_names()
    if strangers:
        raise DeliveryConflict(
            f"{folder.where}/{job.id} holds files that are not part of this job ({', '.join(sorted(strangers)[:5])}); "
            f"refusing to mix two jobs"
        )
    if job.done_name in present:
        if _parsed_json(folder.read(job.done_name)) != _parsed_json(job.done()):
            raise DeliveryConflict(
                f"{folder.where}/{job.id} holds a different job with the same id (its "
                f"{job.done_name} lists other files); refusing to overwrite it"
            )
        return True
    manifest = job.files[0]
    if manifest.name in present:
        if hashlib.sha256(folder.read(manifest.name)).hexdigest() != manifest.sha256:
            raise DeliveryConflict(
                f"{folder.where}/{job.id} holds a different job with the same id (another "
                f"{manifest.name}); refusing to overwrite it"
            )
    elif any(not name.endswith(PART_SUFFIX) for name in present):
        raise DeliveryConflict(
            f"{folder.where}/{job.id} holds files but no {manifest.name}: not a delivery of "
            f"this job; refusing to overwrite it"
        )
    return False


def _parsed_json(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _send(folder: DropFolder, file: JobFile, present: set[str]) -> DeliveredFile:
    if (
        file.name in present
        and file.sidecar_name in present
        and folder.size(file.name) == file.size
        and folder.read(file.sidecar_name) == file.sidecar
    ):
        logger.info("%s: %s already in place", folder.where, file.name)
        return _delivered(file, ALREADY_THERE)
    _put(folder, file.name, _blocks(file.path), file.size, file.sha256)
    _put_bytes(folder, file.sidecar_name, file.sidecar)
    logger.info("%s: sent %s (%d bytes)", folder.where, file.name, file.size)
    return _delivered(file, SENT)


def _put(folder: DropFolder, name: str, blocks: Iterable[bytes], size: int, sha256: str) -> None:
    """Upload as NAME.part, check what was sent and what arrived, then rename to NAME."""
    part = name + PART_SUFFIX
    digest = hashlib.sha256()
    sent = 0

    def counted() -> Iterator[bytes]:
        nonlocal sent
        for block in blocks:
            digest.update(block)
            sent += len(block)
            yield block

    folder.write(part, counted())
    if (sent, digest.hexdigest()) != (size, sha256):
        folder.remove(part)
        raise InvariantError(f"{name} changed while it was being sent; nothing was renamed into place")
    arrived = folder.size(part)
    if arrived != sent:
        raise DeliveryError(f"{folder.where}: {part} holds {arrived} bytes after {sent} were sent")
    folder.rename(part, name)


def _put_bytes(folder: DropFolder, name: str, data: bytes) -> None:
    _put(folder, name, [data], len(data), hashlib.sha256(data).hexdigest())


def _check_complete(job: Job, folder: DropFolder) -> None:
    left = folder.names()
    if left != job.final_names():
        raise DeliveryError(f"{folder.where}/{job.id} should hold {sorted(job.final_names())} but holds {sorted(left)}")


def _blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            yield block


def _delivered(file: JobFile, action: str) -> DeliveredFile:
    return DeliveredFile(file.name, file.size, file.sha256, action)


# -- a job folder and its journal ---------------------------------------------------------------


def deliver_job(
    out_dir: Path,
    destination: SftpDestination | Path,
    ssh: SshOptions | None = None,
    redeliver: bool = False,
    reprint: int | None = None,
) -> Delivery:
    """Deliver the job in `out_dir`, or its reprint set `reprint` (`job.reconcile`), and record the attempt,
    failed or not, in its journal."""
    job = read_job(out_dir)
    if not (out_dir / JOURNAL_NAME).is_file():
        raise ConfigError(f"{out_dir} has no job journal ({JOURNAL_NAME}); is it a finished job folder?")
    where = str(destination) if isinstance(destination, SftpDestination) else local_where(destination)
    with Journal.in_dir(out_dir) as journal:
        if journal.job.id != job.id:
            raise InvariantError(f"{MANIFEST_JSON} is for job {job.id} but the journal in {out_dir} is not")
        _check_read_back(journal, job.id)
        if reprint is not None:
            job = _reprint_job(out_dir, journal, reprint)
        # the set's first file (manifest.json, or reprint-NN.json) says which set an earlier delivery sent
        delivered_before = any(
            d.destination == where and d.outcome != DeliveryOutcome.FAILED and job.files[0].name in _names(d)
            for d in journal.deliveries.attempts()
        )
        started, host_key = _now(), None
        try:
            with _errors_as_delivery_errors(where), open_drop_folder(destination, job.id, ssh or SshOptions()) as f:
                folder = f
                host_key = folder.host_key
                outcome, files = deliver(job, folder, delivered_before and not redeliver)
        except DeliveryError as exc:
            journal.deliveries.record(Delivery(started, _now(), where, DeliveryOutcome.FAILED, host_key, (), str(exc)))
            raise
        delivery = Delivery(started, _now(), where, outcome, host_key, files)
        journal.deliveries.record(delivery)
        return delivery


def _names(delivery: Delivery) -> set[str]:
    return {f.name for f in delivery.files}


def _reprint_job(out_dir: Path, journal: Journal, number: int) -> Job:
    """Reprint set `number` as a job of its own, once the journal shows it was made and passed its preflight."""
    if journal.job.purged_at is not None:
        raise InvariantError(f"job {journal.job.id} was purged at {journal.job.purged_at}: its reprints went with it")
    made = journal.reconciliations.get(number)
    if made is None or not made.reprint_files:
        raise ConfigError(
            f"the journal in {out_dir} records no reprint set {number:02d}; `pkb-letters status` lists them"
        )
    if not made.preflight_ok:
        raise InvariantError(f"reprint set {number:02d} failed its preflight: it must not be printed; nothing was sent")
    return read_reprint(out_dir, number, made.reprint_files)


def _check_read_back(journal: Journal, job_id: str) -> None:
    """A job whose letters did not read back as their journal rows never goes to the mail house."""
    read_back = journal.job.readback()
    if read_back is not None and not read_back["ok"]:
        pieces = read_back["failed"]
        shown = ", ".join(pieces[:20]) + (f" and {len(pieces) - 20} more" if len(pieces) > 20 else "")
        raise InvariantError(
            f"job {job_id} failed its read-back: the letters of piece(s) {shown} do not carry their own "
            "credentials as the journal issued them. It must not be printed; nothing was sent"
        )


@contextmanager
def _errors_as_delivery_errors(where: str) -> Iterator[None]:
    try:
        yield
    except (paramiko.SSHException, OSError, EOFError) as exc:
        message = f"delivery to {where} stopped: {_reason(exc)}. Rerun to resume; nothing is sent twice"
        raise DeliveryError(message) from exc


def _reason(exc: BaseException) -> str:
    return str(exc).rstrip(" :.") or type(exc).__name__  # paramiko's messages may end in an empty detail


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
