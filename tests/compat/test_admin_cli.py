"""The admin CLI (`ward integration|user|totp ...`) run next to a live server, on both backends."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pyotp
import pytest

from conftest import (
    create_integration,
    make_user_with_totp,
    run_ward,
    unique_username,
    ward_cli,
    ward_env,
    write_config,
)


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


# ---------------------------------------------------------------------------
# Start-up failures: one clear line each, at once
# ---------------------------------------------------------------------------


def _ward(ward_bin, *args: str, timeout: float = 20.0):
    """Run the ward binary directly (no server), returning the finished process and its duration."""
    started = time.monotonic()
    result = subprocess.run(
        [str(ward_bin), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=ward_env(),
        timeout=timeout,
        check=False,
    )
    return result, time.monotonic() - started


def _only_error_line(result) -> str:
    assert result.returncode != 0, f"ward succeeded:\n{result.stdout}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line on stderr, got:\n{result.stderr}"
    return lines[0]


def test_cli_errors_missing_config_file_named_once(ward_bin, tmp_path):
    missing = tmp_path / "nowhere.toml"
    result, _ = _ward(ward_bin, "--config", str(missing), "user", "list")

    line = _only_error_line(result)
    assert line == f"error: cannot read config file {missing}: No such file or directory", line


def test_cli_errors_wrong_master_key_said_once(ward_bin, tmp_path):
    data = tmp_path / "data"
    first, _ = _ward(ward_bin, "--data-dir", str(data), "user", "list")
    assert first.returncode == 0, first.stderr
    key = data / "master.key"
    key.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")

    result, _ = _ward(ward_bin, "--data-dir", str(data), "user", "list")

    line = _only_error_line(result)
    assert "sealed under master key" in line, line
    assert line.count("sealed under master key") == 1, line
    assert "forbidden" not in line, line


def test_cli_errors_unreachable_postgres_reported_at_once(ward_bin, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on `port` once the socket is closed.
    config = write_config(tmp_path / "ward.toml", database_url=f"postgres://postgres@127.0.0.1:{port}/test")
    result, took = _ward(ward_bin, "--config", str(config), "--data-dir", str(tmp_path / "data"), "user", "list")

    line = _only_error_line(result)
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused" in line, line
    assert "pool timed out" not in line, line
    assert took < 5, f"took {took:.1f} s to report an unreachable database"


def test_cli_errors_data_dir_that_is_a_file_blames_the_data_dir(ward_bin, tmp_path):
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("")
    result, _ = _ward(ward_bin, "--data-dir", str(not_a_dir), "user", "list")

    line = _only_error_line(result)
    assert line == f"error: data directory {not_a_dir} is not a directory", line


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv to drop root")
def test_cli_errors_data_dir_without_permission_blames_the_data_dir(ward_bin):
    # As root every directory can be entered: run as nobody, as a service user would, on a data
    # directory nobody may enter but whose parent is open to all.
    base = Path(tempfile.mkdtemp(prefix="ward-locked-"))
    try:
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o000)
        result, _ = _ward(
            shutil.which("setpriv"),
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            str(ward_bin),
            "--data-dir",
            str(locked),
            "user",
            "list",
        )
    finally:
        shutil.rmtree(base)

    line = _only_error_line(result)
    assert line == f"error: cannot open data directory {locked}: Permission denied", line
