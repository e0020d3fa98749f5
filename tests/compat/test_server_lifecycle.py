"""What `ward serve` sets up on first start, the TLS identity it presents, and its graceful shutdown."""

from __future__ import annotations

import base64
import concurrent.futures
import shutil
import signal
import socket
import ssl
import stat
import threading
import time
from pathlib import Path

import pytest

from conftest import (
    Backend,
    WardServer,
    create_integration,
    skip_or_fail,
    unique_username,
    ward_cli,
    write_config,
)


@pytest.fixture(scope="module")
def backend() -> Backend:
    return Backend("sqlite", None)


def test_first_start_creates_private_master_key(ward_server):
    key_file = ward_server.data_dir / "master.key"

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text().strip(), validate=True)) == 32


def test_first_start_creates_sqlite_database_by_default(ward_server):
    database = ward_server.data_dir / "ward.db"

    assert database.is_file()
    assert database.read_bytes()[:16] == b"SQLite format 3\x00"


def test_tls_certificate_chains_to_ca_and_names_localhost_and_loopback(ward_server):
    context = ssl.create_default_context(cafile=str(ward_server.data_dir / "tls" / "ca.pem"))

    with (
        socket.create_connection(("127.0.0.1", ward_server.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        certificate = tls.getpeercert()

    sans = set(certificate.get("subjectAltName", ()))
    assert ("DNS", "localhost") in sans, sans
    assert ("IP Address", "127.0.0.1") in sans, sans


def test_restart_keeps_master_key_and_ca(ward_bin, tmp_path):
    config = write_config(tmp_path / "ward.toml", unknown_user="deny")
    server = WardServer(ward_bin, tmp_path / "data", config, name="restart")
    server.start()
    server.stop()
    key_before = (server.data_dir / "master.key").read_bytes()
    ca_before = (server.data_dir / "tls" / "ca.pem").read_bytes()

    server.start()
    try:
        assert (server.data_dir / "master.key").read_bytes() == key_before
        assert (server.data_dir / "tls" / "ca.pem").read_bytes() == ca_before
    finally:
        server.stop()


def open_file_limits(pid: int) -> tuple[int, int]:
    """The soft and hard RLIMIT_NOFILE of a process, from /proc/PID/limits."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no 'Max open files' line in /proc/{pid}/limits")


def test_start_raises_the_open_file_soft_limit_to_the_hard_limit(ward_bin, tmp_path):
    """Issue 11 (connection exhaustion): systemd starts services with a soft limit of 1024 open
    files, which ~1,000 slow connections used up; ward raises its soft limit to the hard one."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        skip_or_fail("prlimit (util-linux) is not installed")
    config = write_config(tmp_path / "ward.toml", unknown_user="deny")
    launcher = [prlimit, "--nofile=1024:4096", "--"]
    server = WardServer(ward_bin, tmp_path / "data", config, name="nofile", launcher=launcher).start()
    try:
        assert open_file_limits(server.pid) == (4096, 4096), server.log_text()
        assert "raised the open-file limit" in server.log_text()
    finally:
        server.stop()


def test_sigterm_stops_the_server_gracefully(ward_bin, tmp_path):
    config = write_config(tmp_path / "ward.toml", unknown_user="deny")
    server = WardServer(ward_bin, tmp_path / "data", config, name="sigterm").start()

    returncode = server.stop()

    assert not server.was_killed, "ward did not exit within 10 s of SIGTERM"
    assert returncode == 0, f"exit status {returncode} after SIGTERM:\n{server.log_text()}"


# ---------------------------------------------------------------------------
# Connection exhaustion: timeouts and per-address caps keep the server answering
# ---------------------------------------------------------------------------


def _limited_ward(ward_bin, tmp_path: Path, open_files: int) -> Path:
    """A wrapper that starts ward with a low open-file limit (soft and hard: it cannot raise it)."""
    wrapper = tmp_path / "ward-limited"
    wrapper.write_text(f'#!/bin/sh\nexec prlimit --nofile={open_files}:{open_files} -- "{ward_bin}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def _tls_context(server: WardServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.data_dir / "tls" / "ca.pem"))


def _ping(server: WardServer, source: str, timeout: float = 5) -> str:
    """GET /auth/v2/ping over TLS from `source`; the status line."""
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=timeout, source_address=(source, 0)) as raw,
        _tls_context(server).wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET /auth/v2/ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        return _read_all(tls).split(b"\r\n", 1)[0].decode()


def _read_all(sock) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _closed_by_server(sock, within: float) -> bool:
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except (TimeoutError, socket.timeout):
        return False
    except (OSError, ssl.SSLError):
        pass
    return True


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit")
def test_connection_exhaustion_from_one_address_leaves_others_served(ward_bin, tmp_path):
    config = write_config(
        tmp_path / "ward.toml",
        unknown_user="deny",
        extra={"limits": {"header_read_timeout_seconds": 3, "tls_handshake_timeout_seconds": 3}},
    )
    server = WardServer(_limited_ward(ward_bin, tmp_path, 256), tmp_path / "data", config, name="flood").start()
    flood: list = []
    try:
        # More slow-header connections from 127.0.0.1 than the process has file descriptors:
        # TLS done, then half a request head, never finished.
        deadline = time.monotonic() + 30
        for _ in range(300):
            if time.monotonic() > deadline:
                break
            try:
                raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                tls = _tls_context(server).wrap_socket(raw, server_hostname="localhost")
                tls.sendall(b"GET /auth/v2/ping HTTP/1.1\r\nHost: localhost\r\n")
                flood.append(tls)
            except (OSError, ssl.SSLError):
                pass
        # Others are answered at once, flood or not.
        began = time.monotonic()
        for _ in range(5):
            assert _ping(server, "127.0.0.2") == "HTTP/1.1 200 OK"
        assert time.monotonic() - began < 2.5, "legitimate requests waited for the flood to time out"
        # The slow-header connections are closed once the header-read timeout passes.
        assert flood, "no flood connection got through the handshake"
        still_open = [sock for sock in flood if not _closed_by_server(sock, within=6)]
        assert not still_open, f"{len(still_open)} slow-header connections outlived the timeout"
        assert _ping(server, "127.0.0.1") == "HTTP/1.1 200 OK"
    finally:
        for sock in flood:
            sock.close()
        server.stop()
    assert "Too many open files" not in server.log_text(), server.log_tail()


def test_connection_exhaustion_silent_and_idle_connections_are_closed(ward_bin, tmp_path):
    config = write_config(
        tmp_path / "ward.toml",
        unknown_user="deny",
        extra={"limits": {"header_read_timeout_seconds": 2, "tls_handshake_timeout_seconds": 2}},
    )
    server = WardServer(ward_bin, tmp_path / "data", config, name="idle").start()
    try:
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        kept = _tls_context(server).wrap_socket(raw, server_hostname="localhost")
        kept.sendall(b"GET /auth/v2/ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert kept.recv(65536).startswith(b"HTTP/1.1 200 OK")
        began = time.monotonic()
        # No TLS handshake, and a kept-alive connection with no next request: both closed.
        assert _closed_by_server(silent, within=6), "a silent connection was kept open"
        assert _closed_by_server(kept, within=6), "an idle kept-alive connection was kept open"
        assert time.monotonic() - began >= 1, "closed before the timeout"
        silent.close()
        kept.close()
    finally:
        server.stop()


# ---------------------------------------------------------------------------
# SIGTERM: every accepted request is answered
# ---------------------------------------------------------------------------


def _request_over(sock, wait: threading.Barrier) -> bytes:
    wait.wait(timeout=30)
    sock.sendall(b"GET /auth/v2/ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
    return _read_all(sock)


def _complete_response(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 200"):
        return False
    lengths = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    return bool(lengths) and len(body) == int(lengths[0])


@pytest.mark.parametrize("plain_http", [False, True], ids=["tls", "plain"])
def test_sigterm_drops_no_accepted_connection(ward_bin, tmp_path, plain_http):
    config = write_config(tmp_path / "ward.toml", unknown_user="deny")
    clients = 40
    for round_no in range(5):
        server = WardServer(ward_bin, tmp_path / "data", config, plain_http=plain_http, name=f"term-{round_no}").start()
        sockets = []
        for _ in range(clients):
            raw = socket.create_connection(("127.0.0.1", server.port), timeout=20)
            sockets.append(raw if plain_http else _tls_context(server).wrap_socket(raw, server_hostname="localhost"))
        go = threading.Barrier(clients + 1)
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            answers = [pool.submit(_request_over, sock, go) for sock in sockets]
            go.wait(timeout=30)
            server._proc.send_signal(signal.SIGTERM)
            results = []
            for answer in answers:
                try:
                    results.append(answer.result(timeout=30))
                except OSError as error:
                    results.append(repr(error).encode())
        returncode = server.stop()
        for sock in sockets:
            sock.close()
        incomplete = [r[:80] for r in results if not _complete_response(r)]
        assert not incomplete, f"round {round_no}: {len(incomplete)} of {clients} clients got no answer: {incomplete[:3]}"
        assert returncode == 0, server.log_tail()


def test_sigterm_answers_a_long_poll_with_waiting(ward_bin, tmp_path):
    from test_push import Authenticator, activation_url

    config = write_config(tmp_path / "ward.toml", unknown_user="deny", extra={"push": {"timeout_seconds": 60}})
    server = WardServer(ward_bin, tmp_path / "data", config, name="long-poll").start()
    try:
        client = server.auth_client(create_integration(server, "long-poll"))
        username = unique_username("poll")
        ward_cli(server, "user", "create", username)
        device = Authenticator(tmp_path / "device.json")
        device.activate(activation_url(server, username))
        started = client.auth(factor="push", username=username, device="auto", async_txn=True)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            polling = pool.submit(client.auth_status, started["txid"])
            time.sleep(1.5)
            assert not polling.done(), polling.result()
            began = time.monotonic()
            server._proc.send_signal(signal.SIGTERM)
            status = polling.result(timeout=20)
            took = time.monotonic() - began
        assert status["waiting"] is True, status
        assert took < 5, f"the long-poll held shutdown for {took:.1f} s"
        assert server.stop() == 0, server.log_tail()
    finally:
        server.stop()
