"""The tamper-evident audit log: `ward audit export` and `ward audit verify`, on both backends."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import psycopg

from conftest import Backend, WardServer, make_user_with_totp, run_ward


def _sql(backend: Backend, server: WardServer, query: str, params: tuple[Any, ...] = ()) -> tuple[list[tuple], int]:
    """Run one statement directly against ward's database (behind ward's back); return (rows, rowcount).

    Placeholders are written `%s` and translated for SQLite.
    """
    if backend.name == "sqlite":
        conn = sqlite3.connect(server.data_dir / "ward.db", timeout=30)
        try:
            cursor = conn.execute(query.replace("%s", "?"), params)
            rows = cursor.fetchall()
            conn.commit()
            return rows, cursor.rowcount
        finally:
            conn.close()
    with psycopg.connect(backend.database_url, autocommit=True, connect_timeout=10) as conn:
        cursor = conn.execute(query, params)
        rows = cursor.fetchall() if cursor.description else []
        return rows, cursor.rowcount


def _generate_activity(server: WardServer, auth_client) -> None:
    user = make_user_with_totp(server)
    auth_client.auth(factor="passcode", username=user.username, passcode=user.code())
    auth_client.auth(factor="passcode", username=user.username, passcode=user.wrong_code())


def _event_count(backend: Backend, server: WardServer) -> int:
    rows, _ = _sql(backend, server, "SELECT count(*) FROM audit_events")
    return int(rows[0][0])


def test_audit_export_prints_every_event_as_a_json_line(ward_server, backend, auth_client):
    _generate_activity(ward_server, auth_client)
    count_before = _event_count(backend, ward_server)

    result = run_ward(ward_server, "audit", "export")

    count_after = _event_count(backend, ward_server)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert count_before >= 2, f"expected audit events after creating a user and logging in, found {count_before}"
    assert count_before <= len(lines) <= count_after, (count_before, len(lines), count_after)
    for line in lines:
        assert isinstance(json.loads(line), dict), line


def test_audit_verify_detects_a_directly_edited_row(ward_server, backend, auth_client):
    _generate_activity(ward_server, auth_client)
    intact = run_ward(ward_server, "audit", "verify", check=False)
    assert intact.returncode == 0, f"verify failed on an untouched log:\n{intact.stdout}\n{intact.stderr}"

    originals, _ = _sql(backend, ward_server, "SELECT chain_id, action FROM audit_events WHERE seq = 2")
    assert originals, "expected an audit event with seq = 2"
    _, updated = _sql(backend, ward_server, "UPDATE audit_events SET action = 'tampered' WHERE seq = 2")
    assert updated == len(originals)

    tampered = run_ward(ward_server, "audit", "verify", check=False)
    assert tampered.returncode != 0, f"verify passed after an edit:\n{tampered.stdout}\n{tampered.stderr}"
    assert (tampered.stdout + tampered.stderr).strip(), "verify failed without saying which record is bad"

    # Putting the original value back makes the chain verify again: the failure was about that edit.
    for chain_id, action in originals:
        _sql(
            backend,
            ward_server,
            "UPDATE audit_events SET action = %s WHERE seq = 2 AND chain_id = %s",
            (action, chain_id),
        )
    restored = run_ward(ward_server, "audit", "verify", check=False)
    assert restored.returncode == 0, f"verify failed after restoring the row:\n{restored.stdout}\n{restored.stderr}"
