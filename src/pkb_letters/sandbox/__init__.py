"""Sandbox PKB server: a loopback stand-in for the Patients Know Best OAuth, REST and FHIR APIs.

Takes a sandbox JSON file (see `fixtures/sandbox.json`) and gives a real HTTP server that issues
fake invitation/access code pairs and remembers every pair it issued, for tests and demo runs.

    from pkb_letters.sandbox import SandboxServer, load_sandbox_data

    with SandboxServer(load_sandbox_data("fixtures/sandbox.json")) as pkb:
        ...  # pkb.token_url, pkb.rest_base, pkb.fhir_base, pkb.client_id, pkb.issued()
"""

from pkb_letters.sandbox._data import IssuedPair, SandboxData, load_sandbox_data
from pkb_letters.sandbox._faults import Faults
from pkb_letters.sandbox._server import SandboxServer, serve

__all__ = ["Faults", "IssuedPair", "SandboxData", "SandboxServer", "load_sandbox_data", "serve"]
