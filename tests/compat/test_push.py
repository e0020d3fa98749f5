"""Verified Push end to end: the official duo_client asks for a push, the reference
authenticator (`ward-authenticator`) receives it over Ward's own channel and answers it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    REPO_ROOT,
    WardServer,
    create_integration,
    run_ward,
    unique_username,
    ward_cli,
    ward_env,
    write_config,
)

PUSH_TIMEOUT_SECS = 4


def authenticator_bin() -> Path:
    path = Path(os.environ.get("WARD_AUTHENTICATOR_BIN", REPO_ROOT / "target" / "debug" / "ward-authenticator"))
    if not path.exists():
        pytest.fail(f"{path} does not exist: build it with `cargo build -p ward-authenticator`", pytrace=False)
    return path


class Authenticator:
    """One device: a state file holding its key, driven through the CLI."""

    def __init__(self, state: Path) -> None:
        self.state = state

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(authenticator_bin()), "--state", str(self.state), *args],
            capture_output=True,
            text=True,
            env=ward_env(),
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"ward-authenticator {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def activate(self, url: str, *extra: str) -> None:
        self.run("activate", url, "--name", "test device", *extra)

    def pending(self, wait: float = 15) -> list[dict]:
        proc = self.run("pending", "--json", "--wait", str(int(wait)))
        return json.loads(proc.stdout)

    def answer(self, txid: str, decision: str, number: str | None = None, check: bool = True):
        args = ["answer", txid, decision]
        if number is not None:
            args += ["--number", number]
        return self.run(*args, check=check)


@pytest.fixture(scope="module")
def push_server(ward_bin, backend, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"push-{backend.name}")
    config = write_config(
        root / "ward.toml",
        database_url=backend.database_url,
        unknown_user="deny",
        extra={
            "push": {"timeout_seconds": PUSH_TIMEOUT_SECS},
            "alerts": {"command": ["/bin/sh", "-c", f"cat >> {root / 'alerts.jsonl'}"]},
        },
    )
    server = WardServer(ward_bin, root / "data", config, name=f"push-{backend.name}")
    server.alerts_file = root / "alerts.jsonl"
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def push_client(push_server):
    return push_server.auth_client(create_integration(push_server, "push-tests"))


def activation_url(node: WardServer, username: str) -> str:
    """The server's activation link, pointed at the node's real port."""
    url = ward_cli(node, "device", "activate-link", username)["activation_url"]
    assert url.startswith("https://"), url
    rest = url.split("://", 1)[1]
    path = rest[rest.index("/"):]
    return f"https://localhost:{node.port}{path}"


def enrolled_user(node: WardServer, tmp_path: Path, *extra: str) -> tuple[str, Authenticator]:
    username = unique_username("push")
    ward_cli(node, "user", "create", username)
    device = Authenticator(tmp_path / f"{username}.json")
    device.activate(activation_url(node, username), *extra)
    return username, device


def only_request(device: Authenticator, txid: str) -> dict:
    pending = device.pending()
    matching = [p for p in pending if p["txid"] == txid]
    assert matching, f"request {txid} not delivered: {pending}"
    return matching[0]


def test_activation_link_works_once_and_state_is_private(push_server, tmp_path):
    username = unique_username("push")
    ward_cli(push_server, "user", "create", username)
    url = activation_url(push_server, username)
    assert "pin=sha256:" in url
    first = Authenticator(tmp_path / "first.json")
    first.activate(url)
    assert (first.state.stat().st_mode & 0o777) == 0o600
    second = Authenticator(tmp_path / "second.json")
    reused = second.run("activate", url, check=False)
    assert reused.returncode != 0
    devices = ward_cli(push_server, "device", "list", username)
    assert len(devices) == 1, devices


def test_preauth_lists_the_push_device(push_server, push_client, tmp_path):
    username, _ = enrolled_user(push_server, tmp_path)
    response = push_client.preauth(username=username)
    assert response["result"] == "auth", response
    push_devices = [d for d in response["devices"] if "push" in d.get("capabilities", [])]
    assert len(push_devices) == 1, response


def test_approved_with_the_right_number(push_server, push_client, tmp_path):
    username, device = enrolled_user(push_server, tmp_path)
    started = push_client.auth(factor="push", username=username, device="auto", async_txn=True, ipaddr="198.51.100.7")
    txid, code = started["txid"], started["verified_push_code"]
    request = only_request(device, txid)
    assert request["number_required"] is True
    assert request["username"] == username
    assert request["ip"] == "198.51.100.7"

    device.answer(txid, "approve", number=code)

    status = push_client.auth_status(txid)
    assert status["success"] is True, status
    assert status["status"] == "allow", status


def test_a_wrong_number_denies(push_server, push_client, tmp_path):
    username, device = enrolled_user(push_server, tmp_path)
    started = push_client.auth(factor="push", username=username, device="auto", async_txn=True)
    txid, code = started["txid"], started["verified_push_code"]
    wrong = "000" if code != "000" else "111"
    only_request(device, txid)

    device.answer(txid, "approve", number=wrong)

    status = push_client.auth_status(txid)
    assert status["success"] is False and status["waiting"] is False, status
    assert status["status"] == "deny", status


def test_fraud_report_denies_and_mutes_the_next_push(push_server, push_client, tmp_path):
    username, device = enrolled_user(push_server, tmp_path)
    started = push_client.auth(factor="push", username=username, device="auto", async_txn=True)
    only_request(device, started["txid"])

    device.answer(started["txid"], "fraud")

    status = push_client.auth_status(started["txid"])
    assert status["status"] == "fraud" and status["success"] is False, status
    again = push_client.auth(factor="push", username=username, device="auto", async_txn=True)
    muted = push_client.auth_status(again["txid"])
    assert muted["success"] is False and muted["waiting"] is False, muted
    assert "paused" in muted["status_msg"], muted
    preauth = push_client.preauth(username=username)
    assert "paused" in preauth["status_msg"], preauth
    audit = run_ward(push_server, "audit", "export").stdout
    assert "user_reported_fraud" in audit
    # The operator's alert hook heard of it, with the transaction and the user's address.
    deadline = time.monotonic() + 10
    alerts: list[dict] = []
    while time.monotonic() < deadline:
        if push_server.alerts_file.exists():
            alerts = [json.loads(line) for line in push_server.alerts_file.read_text().splitlines() if line]
            if any(a.get("txid") == started["txid"] for a in alerts):
                break
        time.sleep(0.2)
    matching = [a for a in alerts if a.get("txid") == started["txid"]]
    assert matching and matching[0]["alert"] == "fraud_reported", alerts


def test_an_unanswered_push_times_out(push_server, push_client, tmp_path):
    username, device = enrolled_user(push_server, tmp_path)
    started = push_client.auth(factor="push", username=username, device="auto", async_txn=True)
    began = time.monotonic()
    status = push_client.auth_status(started["txid"])
    while status["waiting"]:
        assert time.monotonic() - began < PUSH_TIMEOUT_SECS + 30, status
        status = push_client.auth_status(started["txid"])
    assert status["status"] == "timeout", status
    assert status["success"] is False
    assert time.monotonic() - began >= PUSH_TIMEOUT_SECS - 1
    late = device.answer(started["txid"], "approve", number=started["verified_push_code"], check=False)
    assert late.returncode != 0


def test_sync_push_needs_verified_push_async(push_server, push_client, tmp_path):
    username, _ = enrolled_user(push_server, tmp_path)
    with pytest.raises(RuntimeError) as error:
        push_client.auth(factor="push", username=username, device="auto")
    assert "async=1" in str(error.value)


def test_two_simultaneous_answers_make_exactly_one_decision(push_server, push_client, tmp_path):
    username, device = enrolled_user(push_server, tmp_path)
    started = push_client.auth(factor="push", username=username, device="auto", async_txn=True)
    txid, code = started["txid"], started["verified_push_code"]
    only_request(device, txid)
    command = [str(authenticator_bin()), "--state", str(device.state), "answer", txid]
    racers = [
        subprocess.Popen([*command, "approve", "--number", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ward_env()),
        subprocess.Popen([*command, "deny"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ward_env()),
    ]
    codes = [racer.wait(timeout=60) for racer in racers]
    assert sorted(codes)[0] == 0 and sorted(codes)[1] != 0, codes
    status = push_client.auth_status(txid)
    winner = "allow" if codes[0] == 0 else "deny"
    assert status["status"] == winner, (codes, status)


def test_an_integration_in_plain_mode_gets_synchronous_push(push_server, tmp_path):
    """`--push-mode plain` for one integration: a synchronous push waits for the answer."""
    import threading

    integration = ward_cli(push_server, "integration", "create", "--name", "legacy-vpn", "--kind", "auth-api", "--push-mode", "plain")
    assert integration["push_mode"] == "plain"
    client = push_server.auth_client(integration)
    username, device = enrolled_user(push_server, tmp_path)
    result: dict = {}
    waiter = threading.Thread(
        target=lambda: result.update(client.auth(factor="push", username=username, device="auto", pushinfo="host=vpn1&cmd=login"))
    )
    waiter.start()
    request = device.pending()[0]
    assert request["number_required"] is False
    device.answer(request["txid"], "approve")
    waiter.join(timeout=30)
    assert result.get("result") == "allow", result
