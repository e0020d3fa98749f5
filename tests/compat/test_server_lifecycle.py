"""What `ward serve` sets up on first start, the TLS identity it presents, and its graceful shutdown."""

from __future__ import annotations

import base64
import socket
import ssl
import stat

import pytest

from conftest import Backend, WardServer, write_config


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


def test_sigterm_stops_the_server_gracefully(ward_bin, tmp_path):
    config = write_config(tmp_path / "ward.toml", unknown_user="deny")
    server = WardServer(ward_bin, tmp_path / "data", config, name="sigterm").start()

    returncode = server.stop()

    assert not server.was_killed, "ward did not exit within 10 s of SIGTERM"
    assert returncode == 0, f"exit status {returncode} after SIGTERM:\n{server.log_text()}"
