"""Config-driven policies: `unknown_user = "enroll"` and lockout after N failed passcodes."""

from __future__ import annotations

import pytest

from conftest import ServerSettings, make_user_with_totp, unique_username

LOCKOUT_THRESHOLD = 3


@pytest.fixture(scope="module")
def ward_settings() -> ServerSettings:
    return ServerSettings(unknown_user="enroll", lockout_threshold=LOCKOUT_THRESHOLD, lockout_seconds=900)


def test_preauth_offers_enrollment_to_unknown_user_under_enroll_policy(auth_client):
    response = auth_client.preauth(username=unique_username("newcomer"))

    assert response["result"] == "enroll", response


def test_preauth_still_asks_enrolled_user_for_auth_under_enroll_policy(ward_server, auth_client):
    user = make_user_with_totp(ward_server)

    response = auth_client.preauth(username=user.username)

    assert response["result"] == "auth", response


def test_user_below_the_failure_threshold_is_not_locked(ward_server, auth_client):
    user = make_user_with_totp(ward_server)
    for attempt in range(LOCKOUT_THRESHOLD - 1):
        response = auth_client.auth(factor="passcode", username=user.username, passcode=user.wrong_code())
        assert response["result"] == "deny", (attempt, response)

    preauth = auth_client.preauth(username=user.username)
    auth = auth_client.auth(factor="passcode", username=user.username, passcode=user.code())

    assert preauth["result"] == "auth", preauth
    assert auth["result"] == "allow", auth


def test_user_is_locked_out_after_threshold_failures(ward_server, auth_client):
    user = make_user_with_totp(ward_server)
    assert auth_client.preauth(username=user.username)["result"] == "auth"

    for attempt in range(LOCKOUT_THRESHOLD):
        response = auth_client.auth(factor="passcode", username=user.username, passcode=user.wrong_code())
        assert response["result"] == "deny", (attempt, response)

    preauth = auth_client.preauth(username=user.username)
    assert preauth["result"] == "deny", preauth
    assert "lock" in preauth.get("status_msg", "").lower(), preauth

    # Locked means locked: a correct code is refused too.
    auth = auth_client.auth(factor="passcode", username=user.username, passcode=user.code())
    assert auth["result"] == "deny", auth


def test_lockout_of_one_user_does_not_affect_another(ward_server, auth_client):
    locked = make_user_with_totp(ward_server)
    bystander = make_user_with_totp(ward_server)
    for _ in range(LOCKOUT_THRESHOLD):
        auth_client.auth(factor="passcode", username=locked.username, passcode=locked.wrong_code())
    assert auth_client.preauth(username=locked.username)["result"] == "deny"

    response = auth_client.auth(factor="passcode", username=bystander.username, passcode=bystander.code())

    assert response["result"] == "allow", response
