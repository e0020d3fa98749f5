"""The basic passcode flow once over plain HTTP (`serve --plain-http`, duo_client `ca_certs="HTTP"`)."""

from __future__ import annotations

import pytest

from conftest import Backend, ServerSettings, make_user_with_totp


@pytest.fixture(scope="module")
def backend() -> Backend:
    return Backend("sqlite", None)


@pytest.fixture(scope="module")
def ward_settings() -> ServerSettings:
    return ServerSettings(plain_http=True)


def test_passcode_flow_over_plain_http(ward_server, auth_client):
    user = make_user_with_totp(ward_server)
    code = user.code()

    check = auth_client.check()
    preauth = auth_client.preauth(username=user.username)
    allowed = auth_client.auth(factor="passcode", username=user.username, passcode=code)
    replayed = auth_client.auth(factor="passcode", username=user.username, passcode=code)
    wrong = auth_client.auth(factor="passcode", username=user.username, passcode=user.wrong_code())

    assert isinstance(check["time"], int), check
    assert preauth["result"] == "auth", preauth
    assert allowed["result"] == "allow", allowed
    assert replayed["result"] == "deny", replayed
    assert wrong["result"] == "deny", wrong
