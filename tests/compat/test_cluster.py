"""Two ward nodes on one PostgreSQL database share state: a TOTP step used on one is spent on both."""

from __future__ import annotations

import pytest

from conftest import WardServer, create_integration, make_user_with_totp, write_config, write_master_key


@pytest.fixture(scope="module")
def nodes(ward_bin, postgres_database, tmp_path_factory):
    """Node A and node B: separate data dirs, the same database URL and master key file."""
    root = tmp_path_factory.mktemp("cluster")
    master_key = write_master_key(root / "master.key")
    started: list[WardServer] = []
    try:
        # Sequential starts: node A migrates the fresh database before node B connects.
        for name in ("a", "b"):
            config = write_config(
                root / f"node-{name}.toml",
                database_url=postgres_database,
                master_key_file=master_key,
                unknown_user="deny",
            )
            started.append(WardServer(ward_bin, root / f"data-{name}", config, name=f"node-{name}").start())
        yield tuple(started)
    finally:
        for node in started:
            node.stop()


@pytest.fixture(scope="module")
def clients(nodes):
    node_a, node_b = nodes
    integration = create_integration(node_a)  # created through node A's CLI, used on both nodes
    return node_a.auth_client(integration), node_b.auth_client(integration)


def test_user_created_through_one_node_is_known_to_the_other(nodes, clients):
    node_a, _ = nodes
    _, client_b = clients
    user = make_user_with_totp(node_a)

    response = client_b.preauth(username=user.username)

    assert response["result"] == "auth", response


@pytest.mark.parametrize("first", ["a", "b"], ids=["accepted-on-a", "accepted-on-b"])
def test_totp_code_accepted_through_one_node_is_refused_through_the_other(nodes, clients, first):
    node_a, _ = nodes
    client_a, client_b = clients
    accepting, replaying = (client_a, client_b) if first == "a" else (client_b, client_a)
    user = make_user_with_totp(node_a)
    code = user.code()

    accepted = accepting.auth(factor="passcode", username=user.username, passcode=code)
    replayed = replaying.auth(factor="passcode", username=user.username, passcode=code)

    assert accepted["result"] == "allow", accepted
    assert replayed["result"] == "deny", replayed


def test_push_requested_on_a_and_answered_through_b_completes_on_a(nodes, clients, tmp_path):
    """The device is connected to node B; node A, waiting on the transaction, learns of the
    answer at once (PostgreSQL LISTEN/NOTIFY), not at its next poll."""
    import threading
    import time

    from conftest import unique_username, ward_cli
    from test_push import Authenticator, only_request

    node_a, node_b = nodes
    client_a, _ = clients
    username = unique_username("cluster-push")
    ward_cli(node_a, "user", "create", username)
    url = ward_cli(node_a, "device", "activate-link", username)["activation_url"]
    path = url.split("://", 1)[1]
    path = path[path.index("/"):].split("&pin=")[0]
    device = Authenticator(tmp_path / "device.json")
    device.activate(f"https://localhost:{node_b.port}{path}", "--ca", str(node_b.data_dir / "tls" / "ca.pem"))

    started = client_a.auth(factor="push", username=username, device="auto", async_txn=True)
    only_request(device, started["txid"])
    result: dict = {}

    def wait_on_a() -> None:
        result["status"] = client_a.auth_status(started["txid"])
        result["returned"] = time.monotonic()

    waiter = threading.Thread(target=wait_on_a)
    waiter.start()
    time.sleep(1.0)  # let node A's long-poll begin
    answered = time.monotonic()
    device.answer(started["txid"], "approve", number=started["verified_push_code"])
    waiter.join(timeout=30)

    assert result["status"]["success"] is True, result
    assert result["returned"] - answered < 3.0, "node A did not learn of the answer promptly"
