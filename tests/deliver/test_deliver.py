"""Delivery to a real OpenSSH SFTP server on loopback, and to a local drop folder.

What the mail house sees is read back from the server's own disk and from the
server's own request log (`sftp-server -l INFO`), never from our client's view.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import DemoJob
from sftp_server import CuttingProxy, SftpEvent, SshServer, known_hosts_line, make_key

from pkb_letters.cli import main
from pkb_letters.deliver import SftpDestination, SshOptions, deliver_job, parse_destination
from pkb_letters.errors import ConfigError, DeliveryConflict, DeliveryError, HostKeyError, InvariantError
from pkb_letters.job.journal import Journal
from pkb_letters.records import DeliveryOutcome

SENT = ("manifest.json", "manifest.csv", "letters.pdf")
NEVER_SENT = ("exceptions.csv", "job.sqlite")
PASSWORD_ENV = "PKB_LETTERS_SFTP_PASSWORD"


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sshd(tmp_path_factory) -> Iterator[SshServer]:
    server = SshServer(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def finished_job(sandbox, tmp_path_factory) -> Path:
    return DemoJob(sandbox, tmp_path_factory.mktemp("deliver") / "job", "fhir").out_dir


def copy_job(finished_job: Path, target: Path) -> Path:
    """A job folder with its own journal, so each test starts with no deliveries recorded."""
    return Path(shutil.copytree(finished_job, target))


@pytest.fixture
def job_dir(finished_job, tmp_path) -> Path:
    return copy_job(finished_job, tmp_path / "job")


@pytest.fixture
def drop(tmp_path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def job_id(job_dir: Path) -> str:
    return json.loads((job_dir / "manifest.json").read_text(encoding="utf-8"))["job"]["id"]


def ssh(server: SshServer, known_hosts: Path | None = None) -> SshOptions:
    return SshOptions(identity=server.user_key, known_hosts=known_hosts or server.known_hosts)


def to(server: SshServer, drop: Path, port: int | None = None) -> SftpDestination:
    destination = parse_destination(server.url(drop, port))
    assert isinstance(destination, SftpDestination)
    return destination


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def invoke(*args: str | Path, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False, prog_name="pkb-letters")


# --- what a finished delivery looks like -----------------------------------------------------


def assert_delivered(job_dir: Path, drop: Path) -> Path:
    """The job folder holds exactly the job's files, each with its sidecar, and the trigger file."""
    job = job_id(job_dir)
    folder = drop / job
    assert sorted(os.listdir(drop)) == [job]  # one job folder, no copies beside it
    assert set(os.listdir(folder)) == {*SENT, *(f"{name}.sha256" for name in SENT), f"{job}.done"}
    for name in SENT:
        assert (folder / name).read_bytes() == (job_dir / name).read_bytes(), name
    # the sidecars are in the format the mail house's own tools check
    checked = subprocess.run(["sha256sum", "--check", "--strict", *(f"{n}.sha256" for n in SENT)],
                             cwd=folder, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert sorted(checked.stdout.splitlines()) == sorted(f"{name}: OK" for name in SENT)
    done = json.loads((folder / f"{job}.done").read_text(encoding="utf-8"))
    assert done["job"] == job
    assert sorted(done["files"], key=lambda f: f["name"]) == sorted(
        ({"name": n, "bytes": (job_dir / n).stat().st_size,
          "sha256": hashlib.sha256((job_dir / n).read_bytes()).hexdigest()} for n in SENT),
        key=lambda f: f["name"],
    )
    return folder


def assert_done_renamed_into_place_last(events: list[SftpEvent], folder: Path, job: str) -> None:
    """Server-side order: nothing written under a final name, every final name renamed from
    NAME.part, and the trigger file's rename is the last change in the folder."""
    changes = [e for e in events if e.writes or e.request in ("rename", "posix-rename", "remove")]
    assert changes, "the server logged no change"
    assert all(e.path.endswith(".part") for e in changes if e.writes)
    renames = [e for e in changes if e.new]
    assert all(e.path == f"{e.new}.part" for e in renames)
    assert changes[-1].new == f"{folder}/{job}.done"
    assert [e.new for e in renames].count(f"{folder}/{job}.done") == 1


# --- SFTP: the happy path --------------------------------------------------------------------


def test_sftp_delivery_puts_every_file_beside_its_sidecar_and_the_trigger_last(sshd, job_dir, drop):
    mark = sshd.log_mark()
    delivery = deliver_job(job_dir, to(sshd, drop), ssh(sshd))

    assert delivery.outcome == DeliveryOutcome.DELIVERED
    folder = assert_delivered(job_dir, drop)
    for name in NEVER_SENT:
        assert not any(path.name.startswith(name) for path in folder.iterdir()), name
    events = sshd.events(mark, under=folder)
    assert_done_renamed_into_place_last(events, folder, job_id(job_dir))
    assert {e.request for e in events if e.new} == {"posix-rename"}  # OpenSSH offers it, so it is used
    written = {e.path: int(e.detail.split()[-1]) for e in events if e.request == "close" and "written" in e.detail}
    assert written[f"{folder}/letters.pdf.part"] == (job_dir / "letters.pdf").stat().st_size
    # the host key we accepted is the one ssh-keygen reads from the server's key file
    assert delivery.host_key == f"ssh-ed25519 {sshd.host_fingerprint}"


def test_delivery_is_recorded_in_the_journal(sshd, job_dir, drop):
    deliver_job(job_dir, to(sshd, drop), ssh(sshd))
    with Journal.in_dir(job_dir) as journal:
        [record] = journal.deliveries.attempts()
    assert record.destination == f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{drop}"
    assert record.outcome == DeliveryOutcome.DELIVERED
    assert record.started <= record.finished
    assert record.host_key == f"ssh-ed25519 {sshd.host_fingerprint}"
    assert [(f.name, f.bytes, f.sha256, f.action) for f in record.files] == [
        (n, (job_dir / n).stat().st_size, hashlib.sha256((job_dir / n).read_bytes()).hexdigest(), "sent")
        for n in SENT
    ]


def test_a_second_delivery_of_a_complete_job_writes_nothing(sshd, job_dir, drop):
    deliver_job(job_dir, to(sshd, drop), ssh(sshd))
    before = snapshot(drop / job_id(job_dir))
    mark = sshd.log_mark()

    again = deliver_job(job_dir, to(sshd, drop), ssh(sshd))

    assert again.outcome == DeliveryOutcome.ALREADY_DELIVERED
    assert {f.action for f in again.files} == {"already-there"}
    assert not [e for e in sshd.events(mark) if e.writes or e.new]
    assert snapshot(drop / job_id(job_dir)) == before


def test_hashed_known_hosts_entries_are_understood(sshd, job_dir, drop, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    shutil.copy(sshd.known_hosts, known_hosts)
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known_hosts)], check=True, capture_output=True)
    assert "127.0.0.1" not in known_hosts.read_text()
    assert deliver_job(job_dir, to(sshd, drop), ssh(sshd, known_hosts)).outcome == DeliveryOutcome.DELIVERED


# --- SFTP: a line dropped mid-file -----------------------------------------------------------


def cut_delivery(sshd: SshServer, job_dir: Path, drop: Path, tmp_path: Path) -> Path:
    """Deliver through a relay that drops the line halfway through letters.pdf."""
    pdf_bytes = (job_dir / "letters.pdf").stat().st_size
    # the handshake, the two manifests and their sidecars take about 10 kB on the wire
    proxy = CuttingProxy(sshd.port, limit=20_000 + pdf_bytes // 2)
    known_hosts = tmp_path / "known_hosts_via_proxy"
    known_hosts.write_text(known_hosts_line(proxy.port, sshd.host_key.with_suffix(".pub")))
    try:
        with pytest.raises(DeliveryError, match="stopped") as stopped:
            deliver_job(job_dir, to(sshd, drop, proxy.port), ssh(sshd, known_hosts))
    finally:
        proxy.close()
    assert proxy.cut.is_set()
    assert "Rerun to resume" in str(stopped.value)
    folder = drop / job_id(job_dir)
    left = set(os.listdir(folder))
    assert {"manifest.json", "manifest.csv", "letters.pdf.part"} <= left, left  # the line died inside the PDF
    assert "letters.pdf" not in left and f"{job_id(job_dir)}.done" not in left
    assert 0 < (folder / "letters.pdf.part").stat().st_size < pdf_bytes
    return folder


def test_an_upload_cut_mid_file_resumes_without_duplicates_or_part_files(sshd, job_dir, drop, tmp_path):
    folder = cut_delivery(sshd, job_dir, drop, tmp_path)
    mark = sshd.log_mark()

    resumed = deliver_job(job_dir, to(sshd, drop), ssh(sshd))

    assert resumed.outcome == DeliveryOutcome.DELIVERED
    assert {f.name: f.action for f in resumed.files} == {
        "manifest.json": "already-there", "manifest.csv": "already-there", "letters.pdf": "sent"}
    assert_delivered(job_dir, drop)  # exactly the job's files: the .part is gone, nothing doubled
    events = sshd.events(mark, under=folder)
    assert sorted(Path(e.path).name for e in events if e.writes) == sorted(
        ["letters.pdf.part", "letters.pdf.sha256.part", f"{job_id(job_dir)}.done.part"])
    assert_done_renamed_into_place_last(events, folder, job_id(job_dir))
    with Journal.in_dir(job_dir) as journal:
        outcomes = [d.outcome for d in journal.deliveries.attempts()]
    assert outcomes == [DeliveryOutcome.FAILED, DeliveryOutcome.DELIVERED]


def test_a_local_delivery_finishes_a_cut_sftp_one_by_the_same_rules(sshd, job_dir, drop, tmp_path):
    cut_delivery(sshd, job_dir, drop, tmp_path)  # the server's drop folder is on this disk

    resumed = deliver_job(job_dir, drop)

    assert {f.name: f.action for f in resumed.files}["letters.pdf"] == "sent"
    assert {f.name: f.action for f in resumed.files}["manifest.json"] == "already-there"
    assert_delivered(job_dir, drop)


def test_a_line_cut_during_the_handshake_is_not_mistaken_for_a_refused_key(sshd, job_dir, drop, tmp_path):
    proxy = CuttingProxy(sshd.port, limit=1_500)  # the key exchange alone takes more
    known_hosts = tmp_path / "known_hosts_via_proxy"
    known_hosts.write_text(known_hosts_line(proxy.port, sshd.host_key.with_suffix(".pub")))
    try:
        with pytest.raises(DeliveryError, match=f"cannot connect to 127.0.0.1:{proxy.port}") as stopped:
            deliver_job(job_dir, to(sshd, drop, proxy.port), ssh(sshd, known_hosts))
    finally:
        proxy.close()
    assert "refused our credentials" not in str(stopped.value)
    assert os.listdir(drop) == []


# --- SFTP: host keys -------------------------------------------------------------------------


def test_an_unknown_host_key_is_refused_showing_its_fingerprint(sshd, job_dir, drop, tmp_path):
    no_known_hosts = tmp_path / "known_hosts"
    with pytest.raises(HostKeyError) as refused:
        deliver_job(job_dir, to(sshd, drop), ssh(sshd, no_known_hosts))
    message = str(refused.value)
    assert f"[127.0.0.1]:{sshd.port} is not in {no_known_hosts}" in message
    assert f"ssh-ed25519 {sshd.host_fingerprint}" in message
    assert "Nothing was sent" in message
    assert os.listdir(drop) == []
    assert not no_known_hosts.exists()  # the key was not written down for next time either
    with Journal.in_dir(job_dir) as journal:
        [record] = journal.deliveries.attempts()
    assert record.outcome == DeliveryOutcome.FAILED and sshd.host_fingerprint in record.detail
    assert record.host_key is None


def test_a_changed_host_key_is_refused_showing_both_fingerprints(sshd, job_dir, drop, tmp_path):
    old_fingerprint = make_key(tmp_path / "old_host_key")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(known_hosts_line(sshd.port, tmp_path / "old_host_key.pub"))
    with pytest.raises(HostKeyError) as refused:
        deliver_job(job_dir, to(sshd, drop), ssh(sshd, known_hosts))
    message = str(refused.value)
    assert "CHANGED" in message
    assert f"offers ssh-ed25519 {sshd.host_fingerprint}" in message
    assert f"expects ssh-ed25519 {old_fingerprint}" in message
    assert os.listdir(drop) == []


def test_a_key_the_server_does_not_authorise_is_refused(sshd, job_dir, drop, tmp_path):
    make_key(tmp_path / "stranger")
    with pytest.raises(DeliveryError, match="refused our credentials"):
        deliver_job(job_dir, to(sshd, drop), SshOptions(tmp_path / "stranger", sshd.known_hosts))
    assert os.listdir(drop) == []


# --- never overwrite another job, never hand one over twice ----------------------------------


def other_job_with_the_same_id(finished_job: Path, target: Path) -> Path:
    """The same job id with a different manifest, as a second run given the same id would make."""
    other = copy_job(finished_job, target)
    manifest = json.loads((other / "manifest.json").read_text(encoding="utf-8"))
    manifest["job"]["created"] = "2026-01-01T00:00:00+00:00"
    (other / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return other


def test_a_complete_job_with_the_same_id_is_not_overwritten(sshd, job_dir, drop, finished_job, tmp_path):
    deliver_job(job_dir, to(sshd, drop), ssh(sshd))
    before = snapshot(drop / job_id(job_dir))
    other = other_job_with_the_same_id(finished_job, tmp_path / "other")

    with pytest.raises(DeliveryConflict, match="holds a different job with the same id"):
        deliver_job(other, to(sshd, drop), ssh(sshd))
    assert snapshot(drop / job_id(job_dir)) == before


@pytest.mark.parametrize(
    ("left_behind", "message"),
    [
        ({"manifest.json": b'{"job": {"id": "someone else"}}\n', "letters.pdf.part": b"%PDF"},
         "holds a different job with the same id"),
        ({"letters.pdf": b"%PDF-1.7 another job"}, "holds files but no manifest.json"),
        ({"notes.txt": b"hello"}, "not part of this job"),
    ],
    ids=["another-jobs-partial-upload", "files-without-manifest", "a-stranger-file"],
)
def test_a_job_folder_holding_anything_else_is_refused(sshd, job_dir, drop, left_behind, message):
    folder = drop / job_id(job_dir)
    folder.mkdir()
    for name, data in left_behind.items():
        (folder / name).write_bytes(data)

    with pytest.raises(DeliveryConflict, match=message):
        deliver_job(job_dir, to(sshd, drop), ssh(sshd))
    assert snapshot(folder) == left_behind


def test_a_job_the_mail_house_took_is_sent_again_only_when_asked(sshd, job_dir, drop):
    deliver_job(job_dir, to(sshd, drop), ssh(sshd))
    shutil.rmtree(drop / job_id(job_dir))  # their automation picked it up

    with pytest.raises(DeliveryConflict, match="--redeliver"):
        deliver_job(job_dir, to(sshd, drop), ssh(sshd))
    assert os.listdir(drop) == []

    again = deliver_job(job_dir, to(sshd, drop), ssh(sshd), redeliver=True)
    assert again.outcome == DeliveryOutcome.DELIVERED
    assert_delivered(job_dir, drop)


def test_a_damaged_file_is_replaced_on_a_server_refusing_posix_rename(job_dir, drop, finished_job, tmp_path):
    server = SshServer(tmp_path / "sshd", denied_requests=("posix-rename",))
    try:
        deliver_job(job_dir, to(server, drop), ssh(server))
        folder = assert_delivered(job_dir, drop)
        # an earlier, unfinished attempt from another copy of this job left a damaged PDF
        (folder / f"{job_id(job_dir)}.done").unlink()
        (folder / "letters.pdf").write_bytes(b"%PDF-1.7 damaged")
        mark = server.log_mark()

        resumed = deliver_job(copy_job(finished_job, tmp_path / "copy"), to(server, drop), ssh(server))

        assert {f.name: f.action for f in resumed.files}["letters.pdf"] == "sent"
        assert_delivered(job_dir, drop)
        events = server.events(mark, under=folder)
        assert {e.request for e in events if e.new} == {"rename"}  # plain SFTP renames, after a remove
        assert f"{folder}/letters.pdf" in [e.path for e in events if e.request == "remove"]
        assert_done_renamed_into_place_last(events, folder, job_id(job_dir))
    finally:
        server.stop()


# --- what is never sent ----------------------------------------------------------------------


def test_a_print_file_changed_after_the_run_is_not_sent(job_dir, drop):
    with (job_dir / "letters.pdf").open("ab") as handle:
        handle.write(b"\n")
    with pytest.raises(InvariantError, match="letters.pdf is not the file manifest.json describes"):
        deliver_job(job_dir, drop)
    assert os.listdir(drop) == []


def test_a_manifest_listing_the_exceptions_file_is_refused(job_dir, drop):
    manifest = json.loads((job_dir / "manifest.json").read_text(encoding="utf-8"))
    manifest["job"]["files"].append({"name": "exceptions.csv", "pages": 0, "bytes": 0, "sha256": ""})
    (job_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(InvariantError, match="exceptions.csv, which never goes to the mail house"):
        deliver_job(job_dir, drop)
    assert os.listdir(drop) == []


# --- local drop folders ----------------------------------------------------------------------


def test_local_delivery_from_the_command_line_follows_the_same_rules(job_dir, drop, finished_job, tmp_path):
    result = invoke("deliver", job_dir, "--to", drop)

    assert result.exit_code == 0, result.output
    folder = assert_delivered(job_dir, drop)
    assert os.stat(folder).st_mode & 0o777 == 0o700
    assert {path.stat().st_mode & 0o777 for path in folder.iterdir()} == {0o600}  # the letters hold codes
    done = folder / f"{job_id(job_dir)}.done"
    assert done.stat().st_mtime_ns >= max(p.stat().st_mtime_ns for p in folder.iterdir())
    assert f"trigger        {job_id(job_dir)}.done, written last" in result.output
    before = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}

    again = invoke("deliver", job_dir, "--to", drop)
    assert again.exit_code == 0 and "already holds this job" in again.output
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == before

    status = invoke("status", job_dir)
    assert "deliveries to the mail house" in status.output
    assert status.output.count(str(drop)) == 2  # the delivery and the rerun that sent nothing
    assert (job_dir / "letters.pdf").read_bytes() and sha256_prefix(job_dir / "letters.pdf") in status.output

    other = invoke("deliver", other_job_with_the_same_id(finished_job, tmp_path / "other"), "--to", drop)
    assert other.exit_code == 4 and "different job with the same id" in other.stderr
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == before


def test_a_missing_local_drop_folder_is_not_created(job_dir, tmp_path):
    with pytest.raises(DeliveryError, match="does not exist"):
        deliver_job(job_dir, tmp_path / "no-such-drop")
    assert not (tmp_path / "no-such-drop").exists()


# --- reprint sets (`pkb-letters reconcile`) ----------------------------------------------------


def reconciled(job_dir: Path, tmp_path: Path) -> Path:
    """The job with reprint set 01 made: piece 2 spoiled, the rest fine."""
    letters = json.loads((job_dir / "manifest.json").read_text(encoding="utf-8"))["letters"]
    results = tmp_path / "results.csv"
    results.write_text(
        "piece_id,status\n"
        + "".join(f"{e['piece_id']},{'REPRINT' if e['sequence'] == 2 else 'OK'}\n" for e in letters),
        encoding="utf-8",
    )
    made = invoke("reconcile", job_dir, results, "--force")
    assert made.exit_code == 0, made.output
    return job_dir


def test_a_reprint_set_is_delivered_as_a_job_of_its_own_and_the_job_still_can_be(job_dir, drop, tmp_path):
    reconciled(job_dir, tmp_path)
    reprint_id = f"{job_id(job_dir)}-reprint-01"

    result = invoke("deliver", job_dir, "--to", drop, "--reprint", "1")

    assert result.exit_code == 0, result.output
    folder = drop / reprint_id
    names = ("reprint-01.json", "reprint-01.csv", "reprint-01.pdf")
    assert sorted(os.listdir(folder)) == sorted([*names, *(n + ".sha256" for n in names), f"{reprint_id}.done"])
    for name in names:
        assert (folder / name).read_bytes() == (job_dir / name).read_bytes()
    done = json.loads((folder / f"{reprint_id}.done").read_text(encoding="utf-8"))
    assert [f["name"] for f in done["files"]] == list(names) and done["job"] == reprint_id
    assert f"trigger        {reprint_id}.done, written last" in result.output

    again = invoke("deliver", job_dir, "--to", drop, "--reprint", "1")
    job = invoke("deliver", job_dir, "--to", drop)  # a reprint sent there is not the job sent there
    assert again.exit_code == 0 and "already holds this job" in again.output
    assert job.exit_code == 0 and "Delivered to" in job.output, job.output
    assert sorted(os.listdir(drop)) == sorted([job_id(job_dir), reprint_id])
    assert (drop / job_id(job_dir) / f"{job_id(job_dir)}.done").is_file()


def test_a_reprint_set_changed_since_reconcile_is_not_sent(job_dir, drop, tmp_path):
    reconciled(job_dir, tmp_path)
    with (job_dir / "reprint-01.pdf").open("ab") as handle:
        handle.write(b"\n")

    with pytest.raises(InvariantError, match="not the file reconcile made and checked"):
        deliver_job(job_dir, drop, reprint=1)
    assert os.listdir(drop) == []


def test_a_reprint_set_that_failed_its_preflight_or_was_never_made_is_not_sent(job_dir, drop, tmp_path):
    reconciled(job_dir, tmp_path)
    with pytest.raises(ConfigError, match="records no reprint set 02"):
        deliver_job(job_dir, drop, reprint=2)
    with Journal.in_dir(job_dir) as journal:
        journal.db.execute("UPDATE reconciliations SET preflight_ok = 0")
        journal.db.connection.commit()

    with pytest.raises(InvariantError, match="failed its preflight"):
        deliver_job(job_dir, drop, reprint=1)
    assert os.listdir(drop) == []


# --- the command line over SFTP --------------------------------------------------------------


def test_cli_sftp_delivery_shows_what_it_did_and_keeps_the_password_out(sshd, job_dir, drop):
    password = "correct-horse-battery-9271"
    result = invoke("deliver", job_dir, "--to", sshd.url(drop), "--identity", sshd.user_key,
                    "--known-hosts", sshd.known_hosts, env={PASSWORD_ENV: password})

    assert result.exit_code == 0, result.output
    assert_delivered(job_dir, drop)
    assert f"host key       ssh-ed25519 {sshd.host_fingerprint}" in result.output
    for name in SENT:
        assert f"sent           {name}" in result.output
    assert "Deliveries of this job (journal; also in `pkb-letters status`):" in result.output
    assert f"delivered         {sshd.url(drop)}" in result.output
    assert password not in result.output
    assert password.encode() not in (job_dir / "job.sqlite").read_bytes()


def test_cli_refuses_a_password_in_the_address_without_repeating_it(job_dir):
    result = invoke("deliver", job_dir, "--to", "sftp://mailhouse:hunter2-secret@127.0.0.1/drop")
    assert result.exit_code == 2
    assert PASSWORD_ENV in result.stderr
    assert "hunter2-secret" not in result.output


def test_cli_unknown_host_shows_the_fingerprint_and_fails(sshd, job_dir, drop, tmp_path):
    result = invoke("deliver", job_dir, "--to", sshd.url(drop), "--identity", sshd.user_key,
                    "--known-hosts", tmp_path / "empty_known_hosts")
    assert result.exit_code == 4
    assert sshd.host_fingerprint in result.stderr
    assert os.listdir(drop) == []


def test_deliver_offers_no_option_that_trusts_a_host_or_takes_a_password():
    command = main.commands["deliver"]
    options = " ".join(opt for param in command.params for opt in param.opts).lower()
    for word in ("password", "insecure", "trust", "accept", "no-check", "strict"):
        assert word not in options, word


# --- destinations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "root"),
    [
        ("sftp://mh@print.example:2222/drop/in", SftpDestination("mh", "print.example", 2222, "/drop/in"), "/drop/in"),
        ("sftp://mh@print.example/~/in", SftpDestination("mh", "print.example", 22, "/~/in"), "in"),
        ("sftp://mh@print.example", SftpDestination("mh", "print.example", 22, ""), "."),
        ("sftp://mail%40house@10.0.0.5/a%20b", SftpDestination("mail@house", "10.0.0.5", 22, "/a b"), "/a b"),
    ],
)
def test_sftp_addresses(text, expected, root):
    destination = parse_destination(text)
    assert destination == expected
    assert destination.remote_root == root


def test_a_plain_path_is_a_local_drop_folder():
    assert parse_destination("/mnt/mailhouse/drop") == Path("/mnt/mailhouse/drop")


@pytest.mark.parametrize(
    "text",
    ["sftp://print.example/drop", "sftp://mh@print.example:99999/drop", "ftp://mh@print.example/drop",
     "sftp://mh:pw@print.example/drop", "sftp://mh@print.example/drop?x=1"],
    ids=["no-user", "bad-port", "not-sftp", "password", "query"],
)
def test_unusable_addresses_are_refused(text):
    with pytest.raises(ConfigError):
        parse_destination(text)


def sha256_prefix(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
