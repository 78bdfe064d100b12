"""A real SFTP server for the delivery tests: OpenSSH's sshd on a loopback port.

`SshServer` starts `sshd -D` (no daemon) with a throwaway host key, a throwaway
user key in its own authorized_keys, and OpenSSH's `sftp-server` logging every
request (open, close, rename, posix-rename, ...) to a file, so a test can read
the order in which files appeared, as the server saw it.

`CuttingProxy` relays a loopback port to the server and cuts the connection
once the client has sent a given number of bytes: a dropped line mid-upload.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
PRIVSEP_DIR = Path("/run/sshd")  # compiled into Debian's sshd; needed when it starts as root


def make_key(path: Path) -> str:
    """A new ed25519 key pair at `path` (+ .pub); gives its fingerprint as ssh-keygen computes it."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return fingerprint(path.with_suffix(".pub"))


def fingerprint(public_key: Path) -> str:
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(public_key)], check=True, capture_output=True, text=True)
    return listed.stdout.split()[1]  # "256 SHA256:… comment (ED25519)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def known_hosts_line(port: int, public_key: Path) -> str:
    key_type, key_data = public_key.read_text().split()[:2]
    return f"[127.0.0.1]:{port} {key_type} {key_data}\n"


@dataclass(frozen=True)
class SftpEvent:
    request: str  # open, close, rename, posix-rename, mkdir, remove, ...
    path: str
    new: str | None  # a rename's new name
    detail: str  # the rest: open flags, bytes written on close

    @property
    def writes(self) -> bool:
        return self.request == "open" and "WRITE" in self.detail


_EVENT = re.compile(r'^(?P<request>[a-z-]+)(?: name| old)? "(?P<path>[^"]+)"(?: new "(?P<new>[^"]+)")?(?P<detail>.*)$')


class SshServer:
    def __init__(self, workdir: Path, denied_requests: tuple[str, ...] = ()) -> None:
        self._check_can_run()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.port = free_port()
        self.host_key = workdir / "host_key"
        self.host_fingerprint = make_key(self.host_key)
        self.user_key = workdir / "user_key"
        make_key(self.user_key)
        shutil.copy(self.user_key.with_suffix(".pub"), workdir / "authorized_keys")
        self.known_hosts = workdir / "known_hosts"
        self.known_hosts.write_text(known_hosts_line(self.port, self.host_key.with_suffix(".pub")))
        self.sshd_log = workdir / "sshd.log"
        self.sftp_log = workdir / "sftp.log"
        self.sftp_log.touch()
        config = workdir / "sshd_config"
        config.write_text(self._config(denied_requests))
        self._process = subprocess.Popen([str(SSHD), "-D", "-f", str(config), "-E", str(self.sshd_log)])
        self._wait_until_listening()

    def _config(self, denied_requests: tuple[str, ...]) -> str:
        deny = f" -P {','.join(denied_requests)}" if denied_requests else ""
        # the subsystem runs through the user's shell, so its log can go to a file (sshd's
        # internal-sftp could only log to syslog, which a container does not have)
        subsystem = f"{SFTP_SERVER} -e -l INFO{deny} 2>>{self.sftp_log}"
        return "\n".join([
            f"ListenAddress 127.0.0.1:{self.port}",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}",
            "PidFile none",
            "StrictModes no",  # pytest's temporary folders are not sshd's idea of private
            "UsePAM no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",  # the container runs the tests as root
            f"AllowUsers {self.user}",
            f"Subsystem sftp {subsystem}",
            "",
        ])

    @staticmethod
    def _check_can_run() -> None:
        if not SSHD.exists() or not SFTP_SERVER.exists():
            raise RuntimeError(f"{SSHD} or {SFTP_SERVER} is missing: run `bash .ci/system-deps` (openssh-server)")
        if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
            raise RuntimeError(f"sshd started by root needs {PRIVSEP_DIR}: run `bash .ci/system-deps` as root")

    def _wait_until_listening(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"sshd exited ({self._process.returncode}): {self.sshd_log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen on port {self.port} within {timeout} s")

    def url(self, drop: Path, port: int | None = None) -> str:
        return f"sftp://{self.user}@127.0.0.1:{port or self.port}{drop}"

    def log_mark(self) -> int:
        return self.sftp_log.stat().st_size

    def events(self, since: int = 0, under: Path | None = None) -> list[SftpEvent]:
        """The requests the server logged after `since` (a `log_mark`), for paths under `under`."""
        with self.sftp_log.open("rb") as handle:
            handle.seek(since)
            lines = handle.read().decode().splitlines()
        events = [SftpEvent(**m.groupdict()) for m in map(_EVENT.match, lines) if m]
        return [e for e in events if under is None or e.path.startswith(f"{under}/")]

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)


class CuttingProxy:
    """Relays 127.0.0.1:`port` to `target_port`; drops the line after `limit` client bytes."""

    def __init__(self, target_port: int, limit: int) -> None:
        self.target_port = target_port
        self.limit = limit
        self.sent = 0  # client → server bytes relayed
        self.cut = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve_one, daemon=True)
        self._thread.start()

    def _serve_one(self) -> None:
        client, _ = self._listener.accept()
        server = socket.create_connection(("127.0.0.1", self.target_port))
        with client, server:
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()
            self._pump(client, server, self.limit)
            if self.sent >= self.limit:
                self.cut.set()
            for sock in (client, server):  # both ends see the line go dead at once
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _pump(self, source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        try:
            while limit is None or self.sent < limit:
                data = source.recv(65536)
                if not data:
                    return
                if limit is not None:
                    data = data[: limit - self.sent]
                    self.sent += len(data)
                sink.sendall(data)
        except OSError:
            return

    def close(self) -> None:
        self._listener.close()
        self._thread.join(timeout=10)
