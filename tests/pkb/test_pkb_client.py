"""The PKB client against the sandbox over sockets: tokens, renewal, errors at the boundary."""

from __future__ import annotations

import dataclasses
import time

import pytest
from conftest import SANDBOX_JSON, connection_to

from pkb_letters.errors import InvariantError, PkbAuthError
from pkb_letters.job.journal import Journal
from pkb_letters.job.pipeline import _check_every_row_accounted
from pkb_letters.pkb.client import PkbClient
from pkb_letters.records import Exclusion, PatientRow, Reason, Stage
from pkb_letters.sandbox import SandboxServer, load_sandbox_data

READ_RICHARDS = "5760678914"


def test_access_token_is_renewed_when_it_expires():
    with SandboxServer(load_sandbox_data(SANDBOX_JSON), token_ttl=1) as server:
        with PkbClient(connection_to(server)) as client:
            assert client.user_by_nhs_number(READ_RICHARDS)["id"] == "3594342"
            token = client._http.token["access_token"]
            time.sleep(1.2)  # the sandbox now refuses `token`
            assert client.user_by_nhs_number(READ_RICHARDS)["id"] == "3594342"
            assert client._http.token["access_token"] != token


def test_wrong_secret_stops_with_a_message_about_credentials(sandbox):
    connection = dataclasses.replace(connection_to(sandbox), client_secret="wrong")
    with PkbClient(connection) as client, pytest.raises(PkbAuthError) as caught:
        client.status_query([READ_RICHARDS])
    message = str(caught.value)
    assert "client_id" in message and sandbox.token_url in message
    assert "wrong" not in message  # the secret never appears in an error


def test_unknown_patient_is_none_and_batches_are_bounded(sandbox):
    with PkbClient(connection_to(sandbox)) as client:
        assert client.user_by_nhs_number("9842011097") is None
        with pytest.raises(ValueError):
            client.status_query(["9999999999"] * 5001)
        with pytest.raises(ValueError):
            client.generate_invitation_tokens([])


def test_codes_are_redacted_in_reprs(sandbox):
    with PkbClient(connection_to(sandbox)) as client:
        (answer,) = client.generate_invitation_tokens([READ_RICHARDS])
    assert answer.codes is not None
    assert answer.codes.invitation_code not in repr(answer) and answer.codes.access_code not in repr(answer)
    assert sandbox.client_secret not in repr(connection_to(sandbox))


def _patient(row: int) -> PatientRow:
    return PatientRow(row, "", "9999999999", "", "A", "B", None, ("1 Road", "TOWN", "NE1 7RU"), "NE1 7RU")


def test_a_row_that_is_neither_letter_nor_exception_fails_the_job(tmp_path):
    with Journal.in_dir(tmp_path) as journal:
        journal.rows.record_intake_rows([_patient(2), Exclusion(3, "", "9999999999", Reason.DECEASED, "x")])
        with pytest.raises(InvariantError, match=r"input rows \(2\) != letters \(0\) \+ exceptions \(1\)"):
            _check_every_row_accounted(journal, journal.rows.row_count(), 0, journal.rows.count_at(Stage.EXCLUDED))
