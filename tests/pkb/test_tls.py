"""TLS to PKB is always verified: a real HTTPS sandbox on loopback, with a throwaway CA made here.

A client given that CA's bundle connects; without it (or with another CA's) it is refused.
Nothing can switch verification off.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PATIENTS_CSV, SANDBOX_JSON
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pkb_letters.cli import main
from pkb_letters.config import pkb_connection, sandbox_connection
from pkb_letters.errors import ConfigError, PkbApiError
from pkb_letters.pkb.client import PkbClient
from pkb_letters.pkb.tls import pkb_ssl_context
from pkb_letters.sandbox import SandboxServer, load_sandbox_data

ELIGIBLE = "5760678914"


@dataclass(frozen=True)
class Authority:
    bundle: Path
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_authority(folder: Path, name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(name)).issuer_name(_name(name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    bundle = folder / f"{name}.pem"
    bundle.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return Authority(bundle, key, certificate)


def server_context(folder: Path, authority: Authority) -> ssl.SSLContext:
    """A loopback server certificate (127.0.0.1 and localhost) signed by `authority`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("pkb-sandbox")).issuer_name(authority.certificate.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    (folder / "server.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Authority]:
    folder = tmp_path_factory.mktemp("pki")
    return {"ours": make_authority(folder, "test-ca"), "other": make_authority(folder, "other-ca"),
            "folder": folder}


@pytest.fixture(scope="module")
def https_sandbox(pki) -> Iterator[SandboxServer]:
    context = server_context(pki["folder"], pki["ours"])
    with SandboxServer(load_sandbox_data(SANDBOX_JSON), ssl_context=context) as server:
        yield server


def test_the_sandbox_really_serves_https(https_sandbox):
    assert https_sandbox.token_url.startswith("https://127.0.0.1:")


def test_a_client_with_the_ca_bundle_connects(https_sandbox, pki):
    connection = replace(sandbox_connection(https_sandbox), ca_bundle=pki["ours"].bundle)
    with PkbClient(connection) as client:
        (status,) = client.status_query([ELIGIBLE])
    assert status.nhs_number == ELIGIBLE and status.registered is False


@pytest.mark.parametrize("bundle", [None, "other"], ids=["default trust store", "another CA's bundle"])
def test_a_client_without_the_ca_is_refused(https_sandbox, pki, bundle):
    ca_bundle = pki[bundle].bundle if bundle else None
    connection = replace(sandbox_connection(https_sandbox), ca_bundle=ca_bundle)
    with PkbClient(connection) as client, pytest.raises(PkbApiError) as raised:
        client.status_query([ELIGIBLE])
    message = str(raised.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message and "PKB_CA_BUNDLE" in message
    assert https_sandbox.client_secret not in message


def pkb_env(server: SandboxServer, **extra: str) -> dict[str, str]:
    return {
        "PKB_TOKEN_URL": server.token_url, "PKB_REST_BASE": server.rest_base, "PKB_FHIR_BASE": server.fhir_base,
        "PKB_CLIENT_ID": server.client_id, "PKB_ORG_ID": server.org_id, "PKB_CLIENT_SECRET": server.client_secret,
        **extra,
    }


def test_a_job_runs_over_https_with_pkb_ca_bundle(https_sandbox, pki, tmp_path):
    env = pkb_env(https_sandbox, PKB_CA_BUNDLE=str(pki["ours"].bundle))
    result = CliRunner().invoke(main, ["run", str(PATIENTS_CSV), "--out", str(tmp_path / "job")], env=env)
    assert result.exit_code == 0, result.output
    assert "letters            8" in result.output


def test_a_job_against_an_untrusted_certificate_stops_with_a_clear_error(https_sandbox, tmp_path):
    before = len(https_sandbox.issued())
    result = CliRunner().invoke(main, ["run", str(PATIENTS_CSV), "--out", str(tmp_path / "job")],
                                env=pkb_env(https_sandbox, PKB_CA_BUNDLE=""))
    assert result.exit_code == 1
    assert "Error: PKB token endpoint https://127.0.0.1:" in result.output
    assert "CERTIFICATE_VERIFY_FAILED" in result.output and "Traceback" not in result.output
    assert len(https_sandbox.issued()) == before


# -- settings ---------------------------------------------------------------------------------

PKB_TABLE = {
    "token_url": "https://pkb.example/oauth/token", "rest_base": "https://pkb.example/json",
    "fhir_base": "https://pkb.example/fhir", "client_id": "c", "org_id": "o",
}
SECRET = {"PKB_CLIENT_SECRET": "s3cret"}


def test_ca_bundle_from_the_job_file_is_relative_to_it(pki):
    job = {"pkb": {**PKB_TABLE, "ca_bundle": pki["ours"].bundle.name}}
    assert pkb_connection(job, SECRET, pki["folder"]).ca_bundle == pki["ours"].bundle


def test_pkb_ca_bundle_overrides_the_job_file(pki, tmp_path):
    job = {"pkb": {**PKB_TABLE, "ca_bundle": "nowhere.pem"}}
    env = {**SECRET, "PKB_CA_BUNDLE": str(pki["other"].bundle)}
    assert pkb_connection(job, env, tmp_path).ca_bundle == pki["other"].bundle


@pytest.mark.parametrize("content, problem", [
    (None, "is not a file"),
    (b"not a certificate\n", "cannot be used"),
    (b"", "cannot be used|holds no CA certificate"),
])
def test_an_unusable_ca_bundle_is_refused_before_the_job(tmp_path, content, problem):
    if content is not None:
        (tmp_path / "ca.pem").write_bytes(content)
    with pytest.raises(ConfigError, match=rf"CA bundle .*ca\.pem.* ({problem})"):
        pkb_connection({"pkb": {**PKB_TABLE, "ca_bundle": "ca.pem"}}, SECRET, tmp_path)


@pytest.mark.parametrize("key, value", [("verify", False), ("verify", True), ("insecure", True), ("tls_verify", 0)])
def test_verification_cannot_be_turned_off(tmp_path, key, value):
    with pytest.raises(ConfigError, match=rf"\[pkb\] {key} is not a setting: TLS certificate verification is always"):
        pkb_connection({"pkb": {**PKB_TABLE, key: value}}, SECRET, tmp_path)


def test_a_job_file_turning_verification_off_is_refused_by_the_cli(tmp_path):
    job_file = tmp_path / "job.toml"
    job_file.write_text("[pkb]\n" + "".join(f'{k} = "{v}"\n' for k, v in PKB_TABLE.items()) + "verify = false\n")
    result = CliRunner().invoke(main, ["run", str(PATIENTS_CSV), "--config", str(job_file), "--out",
                                       str(tmp_path / "job")], env=SECRET)
    assert result.exit_code == 2
    assert "[pkb] verify is not a setting" in result.output


@pytest.mark.parametrize("url", ["http://pkb.example/json", "ftp://pkb.example/json", "pkb.example/json"])
def test_pkb_urls_must_be_https_except_on_loopback(tmp_path, url):
    with pytest.raises(ConfigError, match=r"PKB_REST_BASE \(\[pkb\] rest_base\) must be an https:// URL"):
        pkb_connection({"pkb": {**PKB_TABLE, "rest_base": url}}, SECRET, tmp_path)
    loopback = {**PKB_TABLE, "rest_base": "http://127.0.0.1:8700/json"}
    assert pkb_connection({"pkb": loopback}, SECRET, tmp_path).rest_base.startswith("http://127.0.0.1")


def test_the_default_context_verifies():
    context = pkb_ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs()  # a real trust store, not an empty one
