"""Auth API v2 through the official duo_client over HTTPS with ward's own CA, on both backends."""

from __future__ import annotations

import email.utils
import secrets
import string
import time

import pytest

from conftest import (
    create_integration,
    duo_error_body,
    make_user_with_totp,
    run_ward,
    signed_request,
    unique_username,
)


def _random_key(length: int) -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


# -- check ------------------------------------------------------------------


def test_check_returns_server_time(auth_client):
    response = auth_client.check()
    assert isinstance(response["time"], int), response
    assert abs(response["time"] - time.time()) < 60, response


# -- preauth ----------------------------------------------------------------


def test_preauth_offers_totp_as_mobile_otp_device(ward_server, auth_client):
    user = make_user_with_totp(ward_server)

    response = auth_client.preauth(username=user.username)

    assert response["result"] == "auth", response
    assert isinstance(response.get("status_msg"), str), response
    otp_devices = [d for d in response["devices"] if "mobile_otp" in d.get("capabilities", [])]
    assert otp_devices, f"no device with the mobile_otp capability: {response}"
    assert all(isinstance(d.get("device"), str) and d["device"] for d in otp_devices), response


def test_preauth_by_user_id_finds_the_same_user(ward_server, auth_client):
    user = make_user_with_totp(ward_server)

    response = auth_client.preauth(user_id=user.user_id)

    assert response["result"] == "auth", response


def test_preauth_denies_unknown_user_under_deny_policy(auth_client):
    response = auth_client.preauth(username=unique_username("nobody"))

    assert response["result"] == "deny", response


# -- passcode auth ----------------------------------------------------------


def test_current_totp_code_is_allowed(ward_server, auth_client):
    user = make_user_with_totp(ward_server)

    response = auth_client.auth(factor="passcode", username=user.username, passcode=user.code())

    assert response["result"] == "allow", response
    assert response.get("status") == "allow", response


def test_same_totp_code_is_denied_the_second_time(ward_server, auth_client):
    user = make_user_with_totp(ward_server)
    code = user.code()

    first = auth_client.auth(factor="passcode", username=user.username, passcode=code)
    second = auth_client.auth(factor="passcode", username=user.username, passcode=code)

    assert first["result"] == "allow", first
    assert second["result"] == "deny", second


def test_wrong_totp_code_is_denied(ward_server, auth_client):
    user = make_user_with_totp(ward_server)

    response = auth_client.auth(factor="passcode", username=user.username, passcode=user.wrong_code())

    assert response["result"] == "deny", response


def test_code_of_another_user_is_denied(ward_server, auth_client):
    alice = make_user_with_totp(ward_server)
    bob = make_user_with_totp(ward_server)

    response = auth_client.auth(factor="passcode", username=bob.username, passcode=alice.code())

    assert response["result"] == "deny", response


@pytest.mark.parametrize(("algorithm", "digits", "seed_len"), [("sha256", 8, 40), ("sha512", 6, 40)])
def test_totp_with_non_default_algorithm_and_digits_is_allowed(ward_server, auth_client, algorithm, digits, seed_len):
    user = make_user_with_totp(ward_server, algorithm=algorithm, digits=digits, seed_len=seed_len)
    code = user.code()
    assert len(code) == digits

    response = auth_client.auth(factor="passcode", username=user.username, passcode=code)

    assert response["result"] == "allow", response


# -- factors that ward refuses ----------------------------------------------


@pytest.mark.parametrize("factor", ["sms", "phone"])
def test_sms_and_phone_factors_fail_with_disabled_by_design(ward_server, auth_client, factor):
    user = make_user_with_totp(ward_server)

    with pytest.raises(RuntimeError) as excinfo:
        auth_client.auth(factor=factor, username=user.username, device="auto")

    duo_error_body(excinfo.value, status=400)
    assert "disabled by design" in str(excinfo.value)


# -- disabled users -----------------------------------------------------------


def test_disabled_user_is_denied_even_with_a_correct_code(ward_server, auth_client):
    user = make_user_with_totp(ward_server)
    run_ward(ward_server, "user", "disable", user.username)

    preauth = auth_client.preauth(username=user.username)
    auth = auth_client.auth(factor="passcode", username=user.username, passcode=user.code())

    assert preauth["result"] == "deny", preauth
    assert auth["result"] == "deny", auth


def test_re_enabled_user_is_allowed_again(ward_server, auth_client):
    user = make_user_with_totp(ward_server)
    run_ward(ward_server, "user", "disable", user.username)
    assert auth_client.preauth(username=user.username)["result"] == "deny"

    run_ward(ward_server, "user", "enable", user.username)
    preauth = auth_client.preauth(username=user.username)
    auth = auth_client.auth(factor="passcode", username=user.username, passcode=user.code())

    assert preauth["result"] == "auth", preauth
    assert auth["result"] == "allow", auth


# -- request authentication -------------------------------------------------


def test_wrong_skey_is_rejected_with_401_bad_signature(ward_server, integration):
    client = ward_server.auth_client(integration, skey=_random_key(40))

    with pytest.raises(RuntimeError) as excinfo:
        client.check()

    duo_error_body(excinfo.value, status=401, code=40103)


def test_unknown_ikey_is_rejected_with_401(ward_server, integration):
    client = ward_server.auth_client(integration, ikey="DI" + _random_key(18))

    with pytest.raises(RuntimeError) as excinfo:
        client.check()

    duo_error_body(excinfo.value, status=401, code=40102)


def test_second_integration_has_its_own_working_keys(ward_server, integration):
    other = create_integration(ward_server, name="second-app")
    assert other["ikey"] != integration["ikey"]

    assert isinstance(ward_server.auth_client(other).check()["time"], int)
    with pytest.raises(RuntimeError) as excinfo:
        ward_server.auth_client(integration, skey=other["skey"]).check()
    duo_error_body(excinfo.value, status=401, code=40103)


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [("GET", "/auth/v2/check", {}), ("POST", "/auth/v2/preauth", {"username": "someone"})],
    ids=["GET-check", "POST-preauth"],
)
def test_tampered_signature_is_rejected_with_401(ward_server, integration, method, path, params):
    ikey, skey = integration["ikey"], integration["skey"]
    # The same hand-built request, untampered, is accepted: the 401 below is due to the tampering.
    ok_status, ok_body = signed_request(ward_server, ikey, skey, method, path, params)
    assert ok_status == 200, (ok_status, ok_body)
    assert ok_body is not None
    assert ok_body["stat"] == "OK", ok_body

    status, body = signed_request(ward_server, ikey, skey, method, path, params, tamper_signature=True)

    assert status == 401, (status, body)
    assert body is not None
    assert body["stat"] == "FAIL", body
    assert body["code"] == 40103, body


@pytest.mark.parametrize("skew_secs", [-600, 600], ids=["10-minutes-old", "10-minutes-ahead"])
def test_request_with_stale_date_is_rejected_with_401(auth_client, monkeypatch, skew_secs):
    real_formatdate = email.utils.formatdate

    def skewed_formatdate(timeval=None, localtime=False, usegmt=False):
        return real_formatdate(time.time() + skew_secs, localtime, usegmt)

    # duo_client calls email.utils.formatdate() for its Date header; patched in this process only.
    monkeypatch.setattr(email.utils, "formatdate", skewed_formatdate)

    with pytest.raises(RuntimeError) as excinfo:
        auth_client.check()

    duo_error_body(excinfo.value, status=401, code=40105)


def test_request_with_date_within_the_window_is_accepted(ward_server, integration):
    date = email.utils.formatdate(time.time() - 120)

    status, body = signed_request(
        ward_server, integration["ikey"], integration["skey"], "GET", "/auth/v2/check", date=date
    )

    assert status == 200, (status, body)
    assert body is not None
    assert body["stat"] == "OK", body
