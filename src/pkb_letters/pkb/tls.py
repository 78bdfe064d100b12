"""TLS for PKB: certificate verification always on; a custom CA bundle may replace the default.

Takes the optional CA bundle path from the settings and gives the `ssl.SSLContext` the PKB
client uses. There is deliberately no way to turn verification off: a job's traffic
carries the client secret and every patient's codes. A private CA (a TLS-inspecting
proxy, a test PKB) is trusted by naming its bundle, never by disabling checks.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from pkb_letters.errors import ConfigError


def pkb_ssl_context(ca_bundle: Path | None = None) -> ssl.SSLContext:
    """Verifying context: `ca_bundle`'s CAs when given, else httpx's default (certifi) trust store."""
    if ca_bundle is None:
        context = httpx.create_ssl_context(verify=True)
    else:
        try:
            context = ssl.create_default_context(cafile=str(ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"CA bundle {ca_bundle} cannot be used: {exc}") from exc
        if not context.get_ca_certs():
            raise ConfigError(f"CA bundle {ca_bundle} holds no CA certificate (expected PEM)")
    # Belt and braces: whatever the defaults of the day, never hand out a non-verifying context.
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        raise ConfigError("refusing a TLS context that does not verify certificates and host names")
    return context
