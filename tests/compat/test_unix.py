"""SSH and sudo logins: Debian's login_duo and pam_duo (duo_unix 1.11.3, `/rest/v1/*.bson`,
signature v1) and Net::Duo::Auth (Auth API v2, HMAC-SHA1) against a real `ward serve`.

Every client is the unmodified Debian package (login-duo, libpam-duo + pamtester,
libnet-duo-perl); pushes are answered by the reference authenticator. All client configs use
`failmode = secure`, so any server error denies instead of letting the user in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import pwd
import secrets
import shutil
import ssl
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import (
    HTTP_TIMEOUT_SECS,
    WardServer,
    make_user_with_totp,
    run_ward,
    skip_or_fail,
    unique_username,
    ward_cli,
    write_config,
)
from test_push import Authenticator, activation_url

PUSH_TIMEOUT_SECS = 3
LOGIN_TIMEOUT_SECS = 60
NET_DUO_CLIENT = Path(__file__).with_name("net_duo_client.pl")
MARKER = "ward-unix-command-ran"


def _require_tools() -> None:
    missing = [t for t in ("login_duo", "pamtester", "perl") if shutil.which(t) is None]
    if not any(Path(p).exists() for p in ("/lib/x86_64-linux-gnu/security/pam_duo.so", "/lib/security/pam_duo.so")):
        missing.append("pam_duo.so")
    if missing:
        skip_or_fail(f"install login-duo libpam-duo pamtester libnet-duo-perl (missing: {', '.join(missing)})")
    if os.geteuid() != 0:
        skip_or_fail("duo_unix tests need root (login_duo -c/-f, /etc/pam.d, useradd)")


@pytest.fixture(scope="module")
def unix_server(ward_bin, backend, tmp_path_factory):
    _require_tools()
    root = tmp_path_factory.mktemp(f"unix-{backend.name}")
    config = write_config(
        root / "ward.toml",
        database_url=backend.database_url,
        unknown_user="deny",
        extra={"push": {"timeout_seconds": PUSH_TIMEOUT_SECS}},
    )
    server = WardServer(ward_bin, root / "data", config, name=f"unix-{backend.name}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def plain(unix_server) -> dict[str, str]:
    """The integration an admin creates for SSH/sudo hosts (see docs/ssh-sudo.md)."""
    return ward_cli(unix_server, "integration", "create", "--name", "ssh", "--kind", "auth-api", "--push-mode", "plain")


def duo_conf(server: WardServer, integration: dict[str, str], path: Path, *, skey: str | None = None) -> Path:
    """A duo_unix config: only host and cafile point at Ward; mode 0600 as duo_unix requires."""
    text = (
        "[duo]\n"
        f"ikey = {integration['ikey']}\n"
        f"skey = {skey or integration['skey']}\n"
        f"host = localhost:{server.port}\n"
        f"cafile = {server.data_dir / 'tls' / 'ca.pem'}\n"
        "failmode = secure\n"
        "pushinfo = yes\n"
    )
    if path.name.startswith("login"):
        text += "accept_env_factor = yes\n"
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def login_duo(conf: Path, user: str, passcode: str | None = None) -> subprocess.CompletedProcess[str]:
    """Headless login_duo (stdin not a tty): auth async=0 with $DUO_PASSCODE or factors.default."""
    env = {k: v for k, v in os.environ.items() if k not in ("DUO_PASSCODE", "SSH_CONNECTION")}
    env["SSH_CONNECTION"] = "203.0.113.9 50000 127.0.0.1 22"
    if passcode is not None:
        env["DUO_PASSCODE"] = passcode
    return subprocess.run(
        ["login_duo", "-c", str(conf), "-f", user, "/bin/echo", MARKER],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=LOGIN_TIMEOUT_SECS,
    )


def allowed(proc: subprocess.CompletedProcess[str]) -> bool:
    return proc.returncode == 0 and MARKER in proc.stdout


def enrol_push(server: WardServer, username: str, tmp_path: Path) -> Authenticator:
    device = Authenticator(tmp_path / f"{username}.json")
    device.activate(activation_url(server, username))
    return device


def answering(device: Authenticator, decision: str | None) -> tuple[threading.Thread, dict]:
    """Answer the next push in the background (None: look at it, never answer)."""
    seen: dict = {}

    def run() -> None:
        pending = device.pending(wait=30)
        if pending:
            seen.update(pending[0])
            if decision is not None:
                device.answer(pending[0]["txid"], decision)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, seen


def audit_events(server: WardServer) -> list[dict]:
    out = run_ward(server, "audit", "export").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# ---------------------------------------------------------------------------
# login_duo
# ---------------------------------------------------------------------------


def test_login_duo_passcode(unix_server, plain, tmp_path):
    user = make_user_with_totp(unix_server)
    conf = duo_conf(unix_server, plain, tmp_path / "login_duo.conf")
    denied = login_duo(conf, user.username, user.wrong_code())
    assert not allowed(denied), denied
    ok = login_duo(conf, user.username, user.code())
    assert allowed(ok), ok


def test_login_duo_push(unix_server, plain, tmp_path):
    username = unique_username("unix")
    ward_cli(unix_server, "user", "create", username)
    device = enrol_push(unix_server, username, tmp_path)
    conf = duo_conf(unix_server, plain, tmp_path / "login_duo.conf")

    thread, seen = answering(device, "approve")
    ok = login_duo(conf, username)
    thread.join(30)
    assert allowed(ok), ok
    # What the device showed: the client's address, host name and (double-encoded) command.
    assert seen["ip"] == "203.0.113.9", seen
    details = dict(map(tuple, seen["details"])) if isinstance(seen["details"], list) else seen["details"]
    assert "Host" in details and details["Host"], seen
    assert details.get("Command") == f"/bin/echo {MARKER}", seen
    assert seen["number_required"] is False, seen

    thread, _ = answering(device, "deny")
    denied = login_duo(conf, username)
    thread.join(30)
    assert not allowed(denied), denied

    thread, seen = answering(device, None)
    began = time.monotonic()
    unanswered = login_duo(conf, username)
    thread.join(30)
    assert not allowed(unanswered), unanswered
    assert time.monotonic() - began >= PUSH_TIMEOUT_SECS - 0.5
    sent = [e for e in audit_events(unix_server) if e.get("action") == "auth.push.sent" and e.get("target")]
    last = sent[-1]["details"]
    assert last.get("ipaddr") == "203.0.113.9" and last.get("hostname"), sent[-1]
    assert ["Command", f"/bin/echo {MARKER}"] in last.get("pushinfo", []), sent[-1]


def test_login_duo_verified_integration_refuses_push_but_takes_passcodes(unix_server, tmp_path):
    """An integration in Verified Push mode: these clients cannot show the number, so no push."""
    verified = ward_cli(unix_server, "integration", "create", "--name", "ssh-verified", "--kind", "auth-api")
    user = make_user_with_totp(unix_server)
    enrol_push(unix_server, user.username, tmp_path)
    conf = duo_conf(unix_server, verified, tmp_path / "login_duo.conf")
    # The preauth menu offers no push here, so the default is "passcode": denied, nothing sent.
    refused = login_duo(conf, user.username)
    assert not allowed(refused), refused
    # Asking for a push anyway is refused, audited.
    refused = login_duo(conf, user.username, "push1")
    assert not allowed(refused), refused
    refusals = [e.get("details", {}) for e in audit_events(unix_server) if e.get("action") == "auth.push"]
    assert any(
        d.get("reason") == "not_allowed_by_policy" and d.get("policy") == "verified_push_needs_a_screen"
        for d in refusals
    ), refusals
    assert allowed(login_duo(conf, user.username, user.code()))


def test_login_duo_sms_is_refused(unix_server, plain, tmp_path):
    user = make_user_with_totp(unix_server)
    conf = duo_conf(unix_server, plain, tmp_path / "login_duo.conf")
    refused = login_duo(conf, user.username, "sms1")
    assert not allowed(refused), refused


def test_login_duo_wrong_skey_is_denied_with_failmode_secure(unix_server, plain, tmp_path):
    user = make_user_with_totp(unix_server)
    conf = duo_conf(unix_server, plain, tmp_path / "login_duo.conf", skey="x" * 40)
    denied = login_duo(conf, user.username, user.code())
    assert not allowed(denied), denied


# ---------------------------------------------------------------------------
# pam_duo through pamtester
# ---------------------------------------------------------------------------


@pytest.fixture
def pam_service(unix_server, plain, tmp_path):
    """A throwaway /etc/pam.d service using only pam_duo, and a local user to log in as."""
    conf = duo_conf(unix_server, plain, tmp_path / "pam_duo.conf")
    service = f"ward-test-{secrets.token_hex(4)}"
    service_file = Path("/etc/pam.d") / service
    service_file.write_text(f"auth required pam_duo.so conf={conf}\naccount required pam_permit.so\n")
    created: list[str] = []

    def local_user(name: str) -> str:
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
            created.append(name)
        return name

    try:
        yield service, local_user
    finally:
        service_file.unlink(missing_ok=True)
        for name in created:
            subprocess.run(["userdel", name], check=False)


def pamtester(service: str, user: str, answer: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pamtester", "-v", service, user, "authenticate"],
        input=answer + "\n",
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "DUO_PASSCODE"},
        timeout=LOGIN_TIMEOUT_SECS,
    )


def pam_ok(proc: subprocess.CompletedProcess[str]) -> bool:
    return proc.returncode == 0 and "successfully authenticated" in (proc.stdout + proc.stderr)


def unix_name() -> str:
    return f"wu{secrets.token_hex(5)}"


def test_pam_duo_passcode(unix_server, pam_service):
    service, local_user = pam_service
    user = make_user_with_totp(unix_server, username=local_user(unix_name()))
    denied = pamtester(service, user.username, user.wrong_code())
    assert not pam_ok(denied), denied
    ok = pamtester(service, user.username, user.code())
    assert pam_ok(ok), ok


def test_pam_duo_push(unix_server, pam_service, tmp_path):
    service, local_user = pam_service
    username = local_user(unix_name())
    ward_cli(unix_server, "user", "create", username)
    device = enrol_push(unix_server, username, tmp_path)

    thread, _ = answering(device, "approve")
    ok = pamtester(service, username, "1")
    thread.join(30)
    assert pam_ok(ok), ok

    thread, _ = answering(device, "deny")
    denied = pamtester(service, username, "1")
    thread.join(30)
    assert not pam_ok(denied), denied

    # Never answered: status long-polls until the push times out, then a final deny; the client
    # never sees 20 result-less replies (its fail-open).
    thread, _ = answering(device, None)
    began = time.monotonic()
    unanswered = pamtester(service, username, "1")
    thread.join(30)
    assert not pam_ok(unanswered), unanswered
    assert time.monotonic() - began >= PUSH_TIMEOUT_SECS - 0.5


# ---------------------------------------------------------------------------
# The wire: v1 signatures and BSON
# ---------------------------------------------------------------------------


def v1_request(server: WardServer, ikey: str, skey: str, path: str, params: dict[str, str], *, send: dict[str, str] | None = None):
    """POST a form signed like duo_unix 1.x (v1, HMAC-SHA1, host without port, no date)."""
    canon = "&".join(sorted(f"{urllib.parse.quote(k, safe='~')}={urllib.parse.quote(v, safe='~')}" for k, v in params.items()))
    sig = hmac.new(skey.encode(), "\n".join(["POST", "localhost", path, canon]).encode(), hashlib.sha1).hexdigest()
    body = urllib.parse.urlencode(send if send is not None else params)
    context = ssl.create_default_context(cafile=server.ca_certs)
    conn = http.client.HTTPSConnection("localhost", server.port, context=context, timeout=HTTP_TIMEOUT_SECS)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                "Authorization": "Basic " + base64.b64encode(f"{ikey}:{sig}".encode()).decode(),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_v1_signatures_are_checked(unix_server, plain):
    user = make_user_with_totp(unix_server)
    params = {"user": user.username, "ipaddr": "127.0.0.1", "failmode": "closed"}
    status, body = v1_request(unix_server, plain["ikey"], plain["skey"], "/rest/v1/preauth.bson", params)
    assert status == 200 and b"\x02stat\x00" in body and b"OK\x00" in body, body
    assert b"\x03factors\x00" in body and b"\x02prompt\x00" in body, body
    tampered = {**params, "user": "someone-else"}
    status, body = v1_request(unix_server, plain["ikey"], plain["skey"], "/rest/v1/preauth.bson", params, send=tampered)
    assert status == 401, body
    assert b"\x10code\x00" in body, body  # code is a BSON int32 (type 0x10)
    status, _ = v1_request(unix_server, plain["ikey"], "wrong" + plain["skey"], "/rest/v1/preauth.bson", params)
    assert status == 401


def test_bad_input_is_a_clear_failure(unix_server, plain):
    status, body = v1_request(unix_server, plain["ikey"], plain["skey"], "/rest/v1/auth.bson", {"factor": "auto", "auto": "123456"})
    assert status == 200 and b"FAIL\x00" in body and b"\x10code\x00" in body and b"user" in body, body


# ---------------------------------------------------------------------------
# Net::Duo::Auth (Auth API v2, HMAC-SHA1, host with port, GMT date)
# ---------------------------------------------------------------------------


def net_duo(server: WardServer, integration: dict[str, str], *args: str) -> dict:
    proc = subprocess.run(
        ["perl", str(NET_DUO_CLIENT), f"localhost:{server.port}", str(server.data_dir / "tls" / "ca.pem"),
         integration["ikey"], integration["skey"], *args],
        capture_output=True,
        text=True,
        timeout=LOGIN_TIMEOUT_SECS,
    )
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


def test_net_duo_auth(unix_server, plain, tmp_path):
    checked = net_duo(unix_server, plain, "check")
    assert isinstance(checked.get("time"), int), checked
    user = make_user_with_totp(unix_server)
    device = enrol_push(unix_server, user.username, tmp_path)
    preauth = net_duo(unix_server, plain, "preauth", user.username)
    assert preauth.get("result") == "auth", preauth
    assert not net_duo(unix_server, plain, "passcode", user.username, user.wrong_code())["success"]
    assert net_duo(unix_server, plain, "passcode", user.username, user.code())["success"]

    txid = net_duo(unix_server, plain, "push_async", user.username)["txid"]
    request = device.pending()[0]
    assert request["txid"] == txid
    details = dict(map(tuple, request["details"])) if isinstance(request["details"], list) else request["details"]
    assert details.get("Command") == "sudo ls", request
    device.answer(txid, "approve")
    assert net_duo(unix_server, plain, "status", txid)["status"] == "allow"

    bad = net_duo(unix_server, {**plain, "skey": "x" * 40}, "check")
    assert "error" in bad, bad
