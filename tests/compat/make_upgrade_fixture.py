"""Builds the upgrade fixture (tests/compat/fixtures/upgrade/) with the current `ward` and
`ward-authenticator`: one data set on SQLite and one on PostgreSQL, each made by a real
`ward serve` driven by the admin CLI, the official duo_client, ward-authenticator and a
software passkey. Run it through `scripts/make-upgrade-fixture`, which builds the binaries,
prepares the venv and names the PostgreSQL server; see that script and the fixture's README.

    python tests/compat/make_upgrade_fixture.py OUT_DIR --commit SHA --pg-admin-url URL
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

import psycopg
import pyotp
from psycopg import sql

from conftest import WardServer, create_integration, fresh_code, run_ward, ward_cli, write_config, wrong_code
from soft_passkey import Portal, SoftPasskey, b64u
from test_push import Authenticator, activation_url

# The data set. Fixed names, so the test's expectations read plainly.
TOTP_USER = "alice"
PUSH_USER = "bob"
PASSKEY_USER = "carol"
DISABLED_USER = "dave"
PLAIN_USER = "erin"  # no factor at all
PASSKEY_NAME = "Carol's laptop"
DEVICE_NAME = "Bob's workstation"
PASSKEY_COUNTER = 1  # the signature counter of the fixture's one passkey sign-in


def make_totp_user(server: WardServer, username: str) -> dict[str, Any]:
    user = ward_cli(server, "user", "create", username, "--email", f"{username}@example.test")
    secret = base64.b32encode(os.urandom(20)).decode()
    ward_cli(server, "totp", "add", username, "--secret", secret)
    return {"user_id": user["user_id"], "totp_secret": secret}


def make_push_user(server: WardServer, out: Path) -> dict[str, Any]:
    user = ward_cli(server, "user", "create", PUSH_USER, "--email", f"{PUSH_USER}@example.test")
    state = out / "bob-device.json"
    device = Authenticator(state)
    device.run("activate", activation_url(server, PUSH_USER), "--name", DEVICE_NAME)
    devices = ward_cli(server, "device", "list", PUSH_USER)
    assert len(devices) == 1, devices
    return {"user_id": user["user_id"], "device_id": devices[0]["device_id"], "device_state": state.name}


def make_passkey_user(server: WardServer, out: Path) -> dict[str, Any]:
    user = ward_cli(server, "user", "create", PASSKEY_USER, "--email", f"{PASSKEY_USER}@example.test")
    link = ward_cli(server, "enrol-link", PASSKEY_USER)
    origin = f"https://localhost:{server.port}"
    portal = Portal(origin, server.ca_certs)
    portal.enrol(urllib.parse.urlsplit(link["url"]).path)
    passkey = SoftPasskey.generate(out / "carol-passkey.pem")
    user_handle = portal.add_passkey(passkey, PASSKEY_NAME)
    # Sign in once with it, so the old data also holds a used credential with a counter.
    Portal(origin, server.ca_certs).sign_in(passkey, user_handle, counter=PASSKEY_COUNTER)
    return {
        "user_id": user["user_id"],
        "passkey_name": PASSKEY_NAME,
        "passkey_key": passkey.key_path.name,
        "credential_id": b64u(passkey.credential_id),
        "user_handle": user_handle,
        "sign_count": PASSKEY_COUNTER,
    }


def push_and_approve(server: WardServer, client, device: Authenticator) -> None:
    started = client.auth(factor="push", username=PUSH_USER, device="auto", async_txn=True)
    device.answer(started["txid"], "approve", number=started["verified_push_code"])
    status = client.auth_status(started["txid"])
    assert status["status"] == "allow", status


def build_data_set(server: WardServer, out: Path) -> dict[str, Any]:
    """Every kind of record the upgrade test checks, plus the activity that audits them."""
    auth_api = create_integration(server, "Upgrade fixture: Auth API")
    web_sdk = ward_cli(server, "integration", "create", "--name", "Upgrade fixture: Web SDK", "--kind", "web-sdk")
    users = {
        TOTP_USER: make_totp_user(server, TOTP_USER),
        PUSH_USER: make_push_user(server, out),
        PASSKEY_USER: make_passkey_user(server, out),
        DISABLED_USER: make_totp_user(server, DISABLED_USER),
        PLAIN_USER: {"user_id": ward_cli(server, "user", "create", PLAIN_USER)["user_id"]},
    }
    client = server.auth_client(auth_api)
    # dave logs in with a code (so a used TOTP step is stored) and is disabled afterwards. alice's
    # authenticator stays unused: the test's code for her must not depend on the test machine's
    # clock being later than this one's.
    dave = pyotp.TOTP(users[DISABLED_USER]["totp_secret"])
    assert client.auth(factor="passcode", username=DISABLED_USER, passcode=fresh_code(dave))["result"] == "allow"
    run_ward(server, "user", "disable", DISABLED_USER)
    assert client.preauth(username=DISABLED_USER)["result"] == "deny"
    assert client.preauth(username=TOTP_USER)["result"] == "auth"
    alice = pyotp.TOTP(users[TOTP_USER]["totp_secret"])
    assert client.auth(factor="passcode", username=TOTP_USER, passcode=wrong_code(alice))["result"] == "deny"
    push_and_approve(server, client, Authenticator(out / users[PUSH_USER]["device_state"]))

    return {
        "auth_api": {"ikey": auth_api["ikey"], "skey": auth_api["skey"]},
        "web_sdk": {"client_id": web_sdk["client_id"], "client_secret": web_sdk["client_secret"]},
        "users": users,
        "disabled": [DISABLED_USER],
        "totp_users": [TOTP_USER, DISABLED_USER],
    }


def record_store(server: WardServer, facts: dict[str, Any]) -> None:
    """What the store holds after the server stopped: users, devices and the whole audit log."""
    facts["user_list"] = sorted(ward_cli(server, "user", "list"), key=lambda u: u["username"])
    facts["push_devices"] = ward_cli(server, "device", "list", PUSH_USER)
    verify = run_ward(server, "audit", "verify")
    facts["audit_verify_stdout"] = verify.stdout.strip()
    exported = run_ward(server, "audit", "export").stdout
    facts["audit_events"] = [json.loads(line) for line in exported.splitlines() if line]


def settle_sqlite(data_dir: Path) -> None:
    """Fold the write-ahead log into ward.db so the fixture is one database file."""
    conn = sqlite3.connect(data_dir / "ward.db")
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()
    for leftover in ("ward.db-wal", "ward.db-shm"):
        (data_dir / leftover).unlink(missing_ok=True)


def dump_postgres(database_url: str, target: Path) -> None:
    """A plain SQL dump (INSERT statements, no owners or grants) that psycopg can replay."""
    subprocess.run(
        ["pg_dump", "--inserts", "--no-owner", "--no-privileges", "--no-comments", "--file", str(target), database_url],
        check=True,
    )


def migrations(backend: str, data_dir: Path, database_url: str | None) -> list[dict[str, Any]]:
    """The migrations the old binary applied (sqlx's bookkeeping table), oldest first."""
    query = "SELECT version, description, encode(checksum, 'hex') FROM _sqlx_migrations ORDER BY version"
    if backend == "sqlite":
        conn = sqlite3.connect(data_dir / "ward.db")
        try:
            rows = conn.execute(query.replace("encode(checksum, 'hex')", "hex(checksum)")).fetchall()
        finally:
            conn.close()
    else:
        with psycopg.connect(database_url) as pg:
            rows = pg.execute(query).fetchall()
    return [{"version": v, "description": d, "checksum": c.lower()} for v, d, c in rows]


def make_one(backend: str, ward_bin: Path, out: Path, pg_admin_url: str | None) -> dict[str, Any]:
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix=f"ward-upgrade-{backend}-") as tmp:
        root = Path(tmp)
        database_url = None
        db_name = None
        if backend == "postgres":
            db_name = f"ward_fixture_{secrets.token_hex(4)}"
            with psycopg.connect(pg_admin_url, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
            database_url = urllib.parse.urlsplit(pg_admin_url)._replace(path="/" + db_name).geturl()
        try:
            config = write_config(root / "ward.toml", database_url=database_url, unknown_user="deny")
            server = WardServer(ward_bin, root / "data", config, name=f"fixture-{backend}")
            server.start()
            try:
                facts = build_data_set(server, out)
            finally:
                server.stop()
            record_store(server, facts)
            facts["migrations"] = migrations(backend, server.data_dir, database_url)
            if backend == "sqlite":
                settle_sqlite(server.data_dir)
            else:
                dump_postgres(database_url, out / "dump.sql")
                (server.data_dir / "ward.db").unlink(missing_ok=True)
            shutil.copytree(server.data_dir, out / "data")
        finally:
            if db_name is not None:
                with psycopg.connect(pg_admin_url, autocommit=True) as conn:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name)))
    return facts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--commit", required=True)
    parser.add_argument("--pg-admin-url", required=True)
    parser.add_argument("--ward-bin", type=Path, required=True)
    args = parser.parse_args()
    if args.out.exists():
        sys.exit(f"{args.out} exists; the script replaces it as a whole")
    args.out.mkdir(parents=True)
    version = subprocess.run([str(args.ward_bin), "--version"], capture_output=True, text=True, check=True)
    fixture = {
        "made_from_commit": args.commit,
        "ward_version": version.stdout.strip(),
        "backends": {b: make_one(b, args.ward_bin, args.out / b, args.pg_admin_url) for b in ("sqlite", "postgres")},
    }
    (args.out / "fixture.json").write_text(json.dumps(fixture, indent=2, sort_keys=True) + "\n")
    (args.out / "COMMIT").write_text(args.commit + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
