"""The admin CLI (`ward integration|user|totp ...`) run next to a live server, on both backends."""

from __future__ import annotations

import base64
import time

import pyotp
import pytest

from conftest import create_integration, make_user_with_totp, run_ward, unique_username, ward_cli


def test_integration_create_prints_duo_shaped_keys(ward_server):
    first = create_integration(ward_server, name="app-one")
    second = create_integration(ward_server, name="app-two")

    for created in (first, second):
        assert len(created["ikey"]) == 20, created
        assert len(created["skey"]) == 40, created
        assert isinstance(created["api_host"], str), created
        assert created["api_host"], created
    assert first["ikey"] != second["ikey"]
    assert first["skey"] != second["skey"]


def test_created_user_appears_in_user_list(ward_server):
    username = unique_username()
    created = ward_cli(ward_server, "user", "create", username, "--email", f"{username}@example.test")

    users = ward_cli(ward_server, "user", "list")

    assert isinstance(users, list), users
    listed = [u for u in users if u.get("username") == username]
    assert len(listed) == 1, users
    assert listed[0].get("user_id") == created["user_id"], (created, listed)


@pytest.mark.parametrize(("algorithm", "digits", "seed_len"), [("sha1", 6, 20), ("sha256", 8, 40)])
def test_totp_add_returns_otpauth_uri_that_authenticators_understand(ward_server, algorithm, digits, seed_len):
    user = make_user_with_totp(ward_server, algorithm=algorithm, digits=digits, seed_len=seed_len)

    parsed = pyotp.parse_uri(user.otpauth_uri)

    assert isinstance(parsed, pyotp.TOTP), user.otpauth_uri
    padded = parsed.secret.upper() + "=" * (-len(parsed.secret) % 8)
    assert base64.b32decode(padded) == user.seed, user.otpauth_uri
    assert parsed.digits == digits, user.otpauth_uri
    assert parsed.digest().name == algorithm, user.otpauth_uri
    assert parsed.interval == 30, user.otpauth_uri
    now = time.time()
    assert parsed.at(now) == user.totp.at(now)


def _assert_one_line_error(result, *, args):
    assert result.returncode != 0, f"`ward {' '.join(args)}` succeeded:\n{result.stdout}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line on stderr, got:\n{result.stderr}"


def test_creating_a_duplicate_user_is_a_one_line_error(ward_server):
    username = unique_username()
    ward_cli(ward_server, "user", "create", username)

    args = ("user", "create", username, "--json")
    _assert_one_line_error(run_ward(ward_server, *args, check=False), args=args)


@pytest.mark.parametrize(
    "command",
    [
        ("user", "disable", "{user}"),
        ("user", "enable", "{user}"),
        ("totp", "add", "{user}", "--secret", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "--json"),
    ],
    ids=["user-disable", "user-enable", "totp-add"],
)
def test_commands_on_an_unknown_user_are_one_line_errors(ward_server, command):
    username = unique_username("ghost")
    args = tuple(part.format(user=username) for part in command)

    _assert_one_line_error(run_ward(ward_server, *args, check=False), args=args)
