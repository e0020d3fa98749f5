"""Poisoned write batch: unauthenticated device answers holding a NUL character, sent while
Debian's login_duo (duo_unix 1.11.3, `failmode = safe`) logs in, must never fail the logins'
requests. Before the fix such an answer made PostgreSQL refuse the audit insert of its whole
group-commit batch; the other requests got HTTP 500 and login_duo, failing safe, let a wrong
passcode in.

The server's rate limits are raised so that the flood is answered (400) rather than throttled;
throttling is a separate defence.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
from collections import Counter
from pathlib import Path

import pytest

from conftest import WardServer, make_user_with_totp, write_config
from test_unix import _require_tools, allowed, duo_conf, login_duo, ward_cli

FLOOD_THREADS = 4


@pytest.fixture(scope="module")
def flooded_server(ward_bin, backend, tmp_path_factory):
    _require_tools()
    root = tmp_path_factory.mktemp(f"poison-{backend.name}")
    config = write_config(
        root / "ward.toml",
        database_url=backend.database_url,
        unknown_user="deny",
        lockout_threshold=100,
        extra={"limits": {"ip_requests_per_second": 100_000, "ip_failures_per_minute": 100_000}},
    )
    server = WardServer(ward_bin, root / "data", config, name=f"poison-{backend.name}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _flood(server: WardServer, stop: threading.Event, statuses: Counter, lock: threading.Lock) -> None:
    context = ssl.create_default_context(cafile=str(server.data_dir / "tls" / "ca.pem"))
    conn = http.client.HTTPSConnection("localhost", server.port, context=context, timeout=10)
    n = 0
    while not stop.is_set():
        n += 1
        poisoned = {"txid": "TX\u0000poison", "device_id": "DPx"} if n % 2 else {"txid": "TXx", "device_id": "DP\u0000x"}
        body = json.dumps(
            {**poisoned, "decision": "approve", "number": None, "context_hash": "00", "time": 0, "signature": "AAAA"}
        )
        try:
            conn.request("POST", "/device/v1/answer", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPSConnection("localhost", server.port, context=context, timeout=10)
            status = 0
        with lock:
            statuses[status] += 1
    conn.close()


def test_poisoned_write_batch_login_duo_failmode_safe_stays_shut(flooded_server, tmp_path):
    server = flooded_server
    plain = ward_cli(server, "integration", "create", "--name", "ssh", "--kind", "auth-api", "--push-mode", "plain")
    user = make_user_with_totp(server)
    conf = duo_conf(server, plain, tmp_path / "login_duo.conf")
    conf.write_text(conf.read_text().replace("failmode = secure", "failmode = safe"))
    os.chmod(conf, 0o600)

    stop, lock, statuses = threading.Event(), threading.Lock(), Counter()
    threads = [threading.Thread(target=_flood, args=(server, stop, statuses, lock), daemon=True) for _ in range(FLOOD_THREADS)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(8):
            denied = login_duo(conf, user.username, user.wrong_code())
            assert not allowed(denied), denied
        ok = login_duo(conf, user.username, user.code())
        assert allowed(ok), ok
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    assert statuses[400] >= 100, statuses
    assert set(statuses) == {400}, statuses
