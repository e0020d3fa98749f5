"""Integration secret keys and TOTP seeds never reach storage (or the log) in a recoverable plain form."""

from __future__ import annotations

import base64

import psycopg
from psycopg import sql

from conftest import Backend, WardServer, make_user_with_totp


def _encodings_of_seed(seed: bytes, secret_b32: str) -> dict[str, bytes]:
    return {
        "base32 seed": secret_b32.encode(),
        "base32 seed (lowercase)": secret_b32.lower().encode(),
        "raw seed bytes": seed,
        "hex seed": seed.hex().encode(),
        "hex seed (uppercase)": seed.hex().upper().encode(),
        "base64 seed": base64.b64encode(seed).rstrip(b"="),
        "base64url seed": base64.urlsafe_b64encode(seed).rstrip(b"="),
    }


def _encodings_of_skey(skey: str) -> dict[str, bytes]:
    raw = skey.encode()
    return {
        "skey": raw,
        "hex skey": raw.hex().encode(),
        "base64 skey": base64.b64encode(raw).rstrip(b"="),
    }


def _sqlite_storage(server: WardServer) -> dict[str, bytes]:
    """Every file in the data dir (ward.db, ward.db-wal, ward.db-shm, ...), as raw bytes."""
    return {str(path): path.read_bytes() for path in sorted(server.data_dir.rglob("*")) if path.is_file()}


def _postgres_storage(database_url: str) -> dict[str, bytes]:
    """A pg_dump equivalent: every row of every table as text, plus every bytea column as raw bytes."""
    dump: dict[str, bytes] = {}
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for schema, table in tables:
            name = sql.Identifier(schema, table)
            rows = conn.execute(sql.SQL("SELECT t::text FROM {} AS t").format(name)).fetchall()
            dump[f"{schema}.{table}"] = "\n".join(row[0] for row in rows).encode()
            bytea_columns = conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s AND data_type = 'bytea'",
                (schema, table),
            ).fetchall()
            for (column,) in bytea_columns:
                values = conn.execute(sql.SQL("SELECT {} FROM {}").format(sql.Identifier(column), name)).fetchall()
                dump[f"{schema}.{table}.{column} (bytea)"] = b"\n".join(bytes(v) for (v,) in values if v is not None)
    return dump


def test_server_log_contains_neither_skey_nor_totp_seed(ward_server, integration, auth_client):
    user = make_user_with_totp(ward_server)
    assert isinstance(auth_client.check()["time"], int)
    assert auth_client.auth(factor="passcode", username=user.username, passcode=user.wrong_code())["result"] == "deny"
    assert auth_client.auth(factor="passcode", username=user.username, passcode=user.code())["result"] == "allow"

    log = ward_server.log_text().encode()

    needles = {**_encodings_of_skey(integration["skey"]), **_encodings_of_seed(user.seed, user.secret)}
    leaks = [what for what, needle in needles.items() if needle in log]
    assert not leaks, leaks


def test_skey_and_totp_seed_are_not_stored_in_plaintext(ward_server, backend: Backend, integration, auth_client):
    user = make_user_with_totp(ward_server)
    # Ward can still use both secrets, so they really are stored (in some protected form).
    assert isinstance(auth_client.check()["time"], int)
    assert auth_client.auth(factor="passcode", username=user.username, passcode=user.code())["result"] == "allow"
    ward_server.stop()

    storage = _sqlite_storage(ward_server) if backend.name == "sqlite" else _postgres_storage(backend.database_url)

    # Control: the scan sees the data ward wrote (the username is stored as is).
    assert any(user.username.encode() in blob for blob in storage.values()), sorted(storage)

    needles = {**_encodings_of_skey(integration["skey"]), **_encodings_of_seed(user.seed, user.secret)}
    leaks = [
        f"{what} in {where}" for where, blob in storage.items() for what, needle in needles.items() if needle in blob
    ]
    assert not leaks, leaks
