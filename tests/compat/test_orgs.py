"""Organisations through the admin CLI (`ward org ...`, `--org NAME`) and the official Duo
client, on both backends: two organisations with the same username stay apart."""

from __future__ import annotations

import json

from conftest import fresh_code, make_user_with_totp, run_ward, ward_cli


def test_organisations_are_managed_and_kept_apart(ward_server):
    # A fresh deployment has one organisation, and commands need no --org.
    listed = ward_cli(ward_server, "org", "list")
    assert [o["name"] for o in listed] == ["Default"], listed
    home = make_user_with_totp(ward_server, username="carol")
    home_keys = ward_cli(ward_server, "integration", "create", "--name", "home", "--kind", "auth-api")

    acme = ward_cli(ward_server, "org", "create", "Acme")
    assert acme["name"] == "Acme" and acme["disabled_ms"] is None, acme
    assert acme["org_id"].startswith("DO"), acme

    # With two organisations, a command that acts on one must name it: one line, no trace.
    refused = run_ward(ward_server, "user", "list", "--json", check=False)
    assert refused.returncode != 0
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--org" in lines[0], refused.stderr

    # The same username in Acme, with its own seed, reached by Acme's application only.
    acme_keys = ward_cli(
        ward_server, "--org", "Acme", "integration", "create", "--name", "acme", "--kind", "auth-api"
    )
    created = ward_cli(ward_server, "--org", "Acme", "user", "create", "carol")
    assert created["user_id"] != home.user_id
    users = ward_cli(ward_server, "--org", "Acme", "user", "list")
    assert [u["username"] for u in users] == ["carol"], users
    # Carol of the default organisation has a factor; Acme's Carol has none yet.
    assert ward_server.auth_client(home_keys).preauth(username="carol")["result"] == "auth"
    assert ward_server.auth_client(acme_keys).preauth(username="carol")["result"] != "auth"
    code = fresh_code(home.totp)
    acme_auth = ward_server.auth_client(acme_keys).auth(factor="passcode", username="carol", passcode=code)
    assert acme_auth["result"] == "deny", acme_auth
    home_auth = ward_server.auth_client(home_keys).auth(factor="passcode", username="carol", passcode=code)
    assert home_auth["result"] == "allow", home_auth

    # Rename, disable and enable, each shown in the list.
    renamed = ward_cli(ward_server, "org", "rename", "Acme", "Acme Ltd")
    assert renamed["org_id"] == acme["org_id"] and renamed["name"] == "Acme Ltd"
    taken = run_ward(ward_server, "org", "rename", "Acme Ltd", "Default", check=False)
    assert taken.returncode != 0 and "already exists" in taken.stderr, taken.stderr
    disabled = ward_cli(ward_server, "org", "disable", "Acme Ltd")
    assert isinstance(disabled["disabled_ms"], int), disabled
    listed = {o["name"]: o for o in ward_cli(ward_server, "org", "list")}
    assert listed["Acme Ltd"]["disabled_ms"] == disabled["disabled_ms"], listed
    assert listed["Default"]["disabled_ms"] is None, listed
    enabled = ward_cli(ward_server, "org", "enable", "Acme Ltd")
    assert enabled["disabled_ms"] is None, enabled

    # Each organisation's audit chains verify on their own, and the whole log too.
    for org in ("Acme Ltd", "default"):
        verified = run_ward(ward_server, "--org", org, "audit", "verify")
        assert f"audit log of organisation {org} intact" in verified.stdout, verified.stdout
    assert "audit log intact" in run_ward(ward_server, "audit", "verify").stdout

    # Export with --org writes that organisation's events only; without, every event.
    acme_events = [
        json.loads(line)
        for line in run_ward(ward_server, "--org", "Acme Ltd", "audit", "export").stdout.splitlines()
    ]
    assert acme_events and {e["org_id"] for e in acme_events} == {acme["org_id"]}, acme_events
    every = run_ward(ward_server, "audit", "export").stdout.splitlines()
    assert len(every) > len(acme_events)
