"""Account recovery end to end: a real `ward serve` over TLS (SQLite and PostgreSQL), Debian
Chromium with CDP virtual authenticators (one per browser context, so "lost" really means the
authenticator is gone), `ward-authenticator` as the push device, notices and e-mail codes mailed
to a local SMTP server, and cooling shortened to a few seconds with `[recovery]
test_cooling_seconds`.

Covered:
* lost every factor: recovery code + e-mail code → cooling → a new passkey with the one-time
  token → confirm → new codes; the old passkey, TOTP and recovery codes are gone, the audit and
  the mailbox tell the story;
* the "Scattered Spider" call: a helpdesk agent opens a case at a caller's request; the victim is
  told by e-mail, push and portal banner and cancels from the device (and, second time, from the
  banner); the console has no control to decide anything and never sees the case handle;
* M-of-N approvals with the approvers' own passkeys: approvals alone are not enough, the requester
  and the opening agent cannot approve, and a ceremony started for one case cannot approve another;
* anti-enumeration: byte-identical answers and case pages for real, privileged and unknown
  accounts, and start latencies that do not tell them apart (medians and how the samples mix
  are appended to target/test-artifacts/recovery-timing.txt).

The case page's latency and a privileged account's case page while the circuit breaker is
tripped are compared too (both once told accounts apart).

Screenshots of each page: target/test-artifacts/screenshots/recovery-<backend>-*.png.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import ssl
import statistics
import time
import urllib.parse

import pyotp
import pytest

from browser import screenshot
from conftest import DATABASE_URL_ENV, REPO_ROOT, WardServer, create_integration, run_ward, unique_username, ward_cli, write_config
from test_portal import enrol_url
from test_push import Authenticator, activation_url

ORG = "Example Corp"
COOLING_SECS = 3
RECOVERY_COOKIE = "__Host-ward_recovery"
# Medians this far apart would tell real accounts from unknown ones. Unpadded starts differed by
# 11-16 ms here (real 16-24 ms, unknown 5-7 ms), so a looser bound would miss that leak.
TIMING_TOLERANCE_MS = 10
TIMING_SAMPLES = 10
TIMING_LOG = REPO_ROOT / "target" / "test-artifacts" / "recovery-timing.txt"


@pytest.fixture(scope="module")
def recovery_server(ward_bin, backend, smtp_server, tmp_path_factory):
    """A ward server that mails notices and e-mail codes to the local SMTP server, with cooling
    periods of a few seconds."""
    root = tmp_path_factory.mktemp(f"recovery-{backend.name}")
    config = write_config(
        root / "ward.toml",
        database_url=backend.database_url,
        extra={
            "branding": {"organisation": ORG},
            "smtp": {
                "host": "127.0.0.1",
                "port": smtp_server.port,
                "security": "none",
                "from": "Ward <ward@example.test>",
            },
            # The many starts of the anti-enumeration test must not trip the circuit breaker
            # (it has its own server and test).
            "recovery": {"test_cooling_seconds": COOLING_SECS, "circuit_breaker_floor": 1000},
        },
    )
    server = WardServer(ward_bin, root / "data", config, name=f"recovery-{backend.name}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def origin(recovery_server) -> str:
    return f"https://localhost:{recovery_server.port}"


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def shot(page, backend, name: str) -> None:
    screenshot(page, f"recovery-{backend.name}-{name}")


@contextlib.contextmanager
def fresh_page(browser):
    """Another browser context (own cookies, own authenticators), closed afterwards."""
    other = browser.new_page()
    try:
        yield other
    finally:
        other.close()


def new_user(server: WardServer, prefix: str) -> tuple[str, str, str]:
    """A user with an e-mail address: (username, email, user_id)."""
    username = unique_username(prefix)
    email = f"{username}@example.test"
    user = ward_cli(server, "user", "create", username, "--email", email)
    return username, email, user["user_id"]


def audit(server: WardServer) -> list[dict]:
    out = run_ward(server, "audit", "export").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def recovery_events(server: WardServer, user_id: str) -> list[dict]:
    return [e for e in audit(server) if e["action"].startswith("recovery.") and e["target"] == user_id]


def enrol_with_passkey(page, server: WardServer, origin: str, username: str, name: str) -> None:
    """The enrolment link, a passkey on the page's virtual authenticator (added by the caller
    before navigating), then sign out and in again with that passkey."""
    page.goto(enrol_url(server, origin, username))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/portal\?done=enrolled$"))
    page.goto(f"{origin}/portal/passkeys/new")
    page.fill("#name", name)
    page.click("form[data-passkey-register] button[type=submit]")
    page.wait_for_url(re.compile(r"/portal\?done=passkey$"))
    sign_out(page)
    passkey_sign_in(page, origin)


def sign_out(page) -> None:
    page.click("header form[action='/portal/sign-out'] button")
    page.wait_for_url(re.compile(r"/portal/sign-in$"))


def passkey_sign_in(page, origin: str) -> None:
    page.goto(f"{origin}/portal/sign-in")
    page.click("[data-passkey-signin]")
    page.wait_for_url(re.compile(r"/portal$"))


def create_recovery_codes(page, origin: str) -> list[str]:
    """Recovery codes from the portal (confirming with the passkey first if it asks)."""
    page.goto(f"{origin}/portal")
    page.click("form[action='/portal/recovery-codes'] button")
    page.wait_for_load_state()
    if "/portal/confirm" in page.url:
        page.click("[data-step-up]")
        page.wait_for_url(re.compile(r"/portal$"))
        page.click("form[action='/portal/recovery-codes'] button")
    page.wait_for("[data-codes]")
    codes = page.texts("[data-codes] code")
    assert len(codes) == 10 and len(set(codes)) == 10, codes
    return codes


def factor_links(page) -> list[str]:
    """The portal's "Manage" links, e.g. /portal/factors/passkey/<id>."""
    return page.evaluate(
        "() => [...document.querySelectorAll(\"a[href^='/portal/factors/']\")].map((a) => a.getAttribute('href'))"
    )


def start_recovery(page, origin: str, username: str, backend=None, shots: tuple[str, str] | None = None) -> None:
    """/recovery → start with `username` → the page that follows → the case page."""
    page.goto(f"{origin}/recovery")
    if shots:
        shot(page, backend, shots[0])
    page.fill("#username", username)
    page.click("form[action='/recovery/start'] button[type=submit]")
    page.wait_for_url(re.compile(r"/recovery/start$"))
    assert "Recovery started" in page.text("h1")
    if shots:
        shot(page, backend, shots[1])
    cookie = page.cookie(RECOVERY_COOKIE)
    assert cookie and cookie["httpOnly"] and cookie["secure"], page.cookies()
    page.click("a[href='/recovery/case']")
    page.wait_for_url(re.compile(r"/recovery/case$"))


def stage(page) -> str:
    return page.attr("section[data-recovery-stage]", "data-recovery-stage")


def submit_code(page, selector: str, action: str, code: str) -> str:
    """Submits a code form on the case page; returns the `done` of the page it lands on."""
    page.fill(selector, code)
    page.click(f"form[action='{action}'] button[type=submit]")
    url = page.wait_for_url(re.compile(r"/recovery/case(\?done=[a-z-]+)?$"))
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("done", [""])[0]


def approvals_on_case_page(page) -> int:
    page.reload()
    return int(page.text("[data-approvals]"))


def wait_for_stage(page, wanted: str, timeout: float) -> None:
    """Reloads the case page until it shows `wanted` (cooling ends by the clock)."""
    deadline = time.monotonic() + timeout
    while True:
        page.reload()
        current = stage(page)
        if current == wanted:
            return
        assert time.monotonic() < deadline, f"case page still {current!r}, wanted {wanted!r}"
        time.sleep(0.5)


# A passkey ceremony run by hand from a portal page: start at one URL, finish at another, with
# this page's CSRF token and its virtual authenticator. Returns each step's status and body.
CEREMONY_JS = """async ([startUrl, finishUrl]) => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const post = async (url, body) => {
    const r = await fetch(url, { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(body || {}) });
    let data = {};
    try { data = await r.json(); } catch (_) { /* not JSON */ }
    return { status: r.status, data };
  };
  const start = await post(startUrl);
  if (start.status !== 200) return { step: 'start', ...start };
  const options = PublicKeyCredential.parseRequestOptionsFromJSON(start.data.options.publicKey);
  const cred = await navigator.credentials.get({ publicKey: options });
  const finish = await post(finishUrl, { ceremony: start.data.ceremony, credential: cred.toJSON() });
  return { step: 'finish', ...finish };
}"""


def approval_ceremony(page, start_case: str, finish_case: str) -> dict:
    base = "/portal/api/approvals/"
    return page.evaluate(
        CEREMONY_JS,
        [f"{base}{urllib.parse.quote(start_case)}/start", f"{base}{urllib.parse.quote(finish_case)}/finish"],
    )


def pending_for(device: Authenticator, username: str) -> list[dict]:
    return [p for p in device.pending(wait=5) if p["username"] == username]


# ---------------------------------------------------------------------------------------------
# 1. Lost every factor
# ---------------------------------------------------------------------------------------------


def test_lost_every_factor_recovers_with_a_code_an_email_code_and_a_new_passkey(
    browser, page, recovery_server, origin, smtp_server, backend, tmp_path
):
    server = recovery_server
    username, email, user_id = new_user(server, "lost")

    # Before: a passkey (this context's authenticator), a TOTP app, a push device (the phone
    # that was lost), recovery codes, an e-mail address.
    old_authenticator = page.add_authenticator()
    enrol_with_passkey(page, server, origin, username, "Old laptop")
    secret = base64.b32encode(os.urandom(20)).decode()
    ward_cli(server, "totp", "add", username, "--secret", secret)
    totp = pyotp.TOTP(secret)
    auth_client = server.auth_client(create_integration(server, unique_username("recovery-app")))
    # The app works now: the previous step's code (the current one stays fresh for later).
    if totp.interval - time.time() % totp.interval < 2:
        time.sleep(2.2)
    answer = auth_client.auth(factor="passcode", username=username, passcode=totp.at(time.time() - totp.interval))
    assert answer["result"] == "allow", answer
    Authenticator(tmp_path / "lost-phone.json").activate(activation_url(server, username))
    old_codes = create_recovery_codes(page, origin)
    page.goto(f"{origin}/portal")
    assert "Old laptop" in page.text("main")
    assert len(factor_links(page)) == 3, factor_links(page)  # passkey, TOTP app, push device
    assert "10 of 10" in page.text("main")
    [old_credential] = page.credentials(old_authenticator)

    with fresh_page(browser) as rec:
        # Every factor lost: a new browser with a new authenticator and no session.
        new_authenticator = rec.add_authenticator()
        start_recovery(rec, origin, username, backend, ("01-start", "02-started"))
        assert stage(rec) == "collecting"
        assert rec.texts("[data-missing] li") == ["a recovery code", "an e-mail code"]
        assert rec.count("[data-accepted]") == 0
        assert rec.text("[data-approvals]") == "0"
        shot(rec, backend, "03-case-collecting")
        opened = smtp_server.wait_for(to=email, subject_contains="recovery of your account was started")
        assert "recovery page" in opened.text, opened.text
        assert "/recovery/continue/" not in opened.text, "a self-service start must not mail the handle"

        # A wrong code is refused with the fixed wording; the saved code is accepted.
        assert submit_code(rec, "#recovery-code", "/recovery/code", "AAAA-BBBB-CCCC-DDDD") == "code-refused"
        assert "not accepted" in rec.text("[data-notice]")
        shot(rec, backend, "04-code-refused")
        assert submit_code(rec, "#recovery-code", "/recovery/code", old_codes[0]) == "code-accepted"
        assert rec.texts("[data-accepted] li") == ["recovery code"]
        assert rec.texts("[data-missing] li") == ["an e-mail code"]
        shot(rec, backend, "05-code-accepted")

        # The e-mail code: asked for on the page, read from the user's own mailbox.
        rec.click("form[action='/recovery/email/send'] button[type=submit]")
        rec.wait_for_url(re.compile(r"/recovery/case\?done=email-sent$"))
        shot(rec, backend, "06-email-sent")
        mail = smtp_server.wait_for(to=email, subject_contains="account recovery code")
        email_code = re.search(r"\b(\d{8})\b", mail.text)
        assert email_code, mail.text
        assert submit_code(rec, "#email-code", "/recovery/email", email_code.group(1)) == "email-accepted"

        # Cooling, then ready.
        assert stage(rec) == "cooling"
        assert rec.text("[data-cooling-until]").strip()
        shot(rec, backend, "07-cooling")
        cooling = smtp_server.wait_for(to=email, subject_contains="recovery is waiting")
        assert "Cancel" in cooling.text, cooling.text
        wait_for_stage(rec, "ready", COOLING_SECS + 15)
        shot(rec, backend, "08-ready")
        smtp_server.wait_for(to=email, subject_contains="recovery is ready")

        # A new passkey with the one-time token, then one sign-in with it.
        rec.click("[data-recovery-enrol]")
        rec.wait_for("section[data-recovery-stage='confirming']", timeout=20)
        [new_credential] = rec.credentials(new_authenticator)
        assert new_credential["credentialId"] != old_credential["credentialId"]
        # The page reloaded on the URL of the e-mail code's answer: that notice is stale now.
        assert "done=email-accepted" in rec.url and rec.count("[data-notice]") == 0
        shot(rec, backend, "09-confirming")
        rec.click("[data-recovery-confirm]")
        rec.wait_for("[data-codes] li", timeout=20)
        new_codes = rec.texts("[data-codes] code")
        assert len(new_codes) == 10 and not set(new_codes) & set(old_codes), new_codes
        shot(rec, backend, "10-recovered-new-codes")
        rec.reload()
        assert stage(rec) == "completed"
        shot(rec, backend, "11-completed")
        smtp_server.wait_for(to=email, subject_contains="new passkey was set up by account recovery")
        completed = smtp_server.wait_for(to=email, subject_contains="account was recovered")
        assert "old sign-in methods were removed" in completed.text, completed.text

        # The old passkey (in the old browser) no longer signs in, and says so.
        page.goto(f"{origin}/portal")
        assert page.url.endswith("/portal/sign-in"), "the old session must have ended"
        page.click("[data-passkey-signin]")
        page.wait_for("[data-status].error")
        assert "not registered" in page.text("[data-status]"), page.text("[data-status]")
        assert page.url.endswith("/portal/sign-in")
        shot(page, backend, "12-old-passkey-refused")

        # The new one does; the portal lists it alone (the TOTP app and the phone are gone too).
        passkey_sign_in(rec, origin)
        links = factor_links(rec)
        assert len(links) == 1 and links[0].startswith("/portal/factors/passkey/"), links
        assert "Old laptop" not in rec.text("main")
        assert "10 of 10" in rec.text("main")
        shot(rec, backend, "13-portal-after-recovery")

        # The TOTP app no longer authenticates (a later step than the one used above).
        answer = auth_client.auth(factor="passcode", username=username, passcode=totp.now())
        assert answer["result"] == "deny", answer

        # The old recovery codes no longer work, the new ones do (a second case, then cancelled
        # from the portal banner in this signed-in browser).
        start_recovery(rec, origin, username)
        assert submit_code(rec, "#recovery-code", "/recovery/code", old_codes[1]) == "code-refused"
        assert submit_code(rec, "#recovery-code", "/recovery/code", new_codes[0]) == "code-accepted"
        rec.goto(f"{origin}/portal")
        assert "collecting proof" in rec.text("[data-recovery-banner]")
        rec.click("form[action='/portal/recovery/cancel'] button")
        rec.wait_for_url(re.compile(r"/portal\?done=recovery-cancelled$"))
        assert rec.count("[data-recovery-banner]") == 0

    events = recovery_events(server, user_id)
    actions = [e["action"] for e in events]
    for expected in [
        "recovery.start",
        "recovery.evidence_rejected",
        "recovery.evidence_accepted",
        "recovery.cooling_started",
        "recovery.cooling_elapsed",
        "recovery.token_issued",
        "recovery.authenticator_bound",
        "recovery.revoke_factors",
        "recovery.completed",
        "recovery.cancelled",
    ]:
        assert expected in actions, (expected, actions)
    cooling_started = next(e for e in events if e["action"] == "recovery.cooling_started")
    assert cooling_started["details"]["row"] == "R1: P-code + P-mail", cooling_started
    revoked = next(e for e in events if e["action"] == "recovery.revoke_factors")
    assert revoked["outcome"] == "ok", revoked
    # Nothing secret in the audit: no code, token or handle.
    text = json.dumps(events)
    assert old_codes[0] not in text and email_code.group(1) not in text
    for code in new_codes:
        assert code not in text


# ---------------------------------------------------------------------------------------------
# 2. The helpdesk call ("Scattered Spider")
# ---------------------------------------------------------------------------------------------


def console_forms(page) -> list[str]:
    return page.evaluate(
        "() => [...document.querySelectorAll('main form')].map((f) => f.getAttribute('action'))"
    )


def console_buttons(page) -> list[str]:
    return page.evaluate(
        "() => [...document.querySelectorAll('main button, main [role=button], main a.button')]"
        ".map((b) => b.innerText.trim())"
    )


def open_console_user(agent, origin: str, username: str) -> str:
    """The console's lookup form → the user's page; returns its path."""
    agent.goto(f"{origin}/helpdesk")
    agent.fill("#username", username)
    agent.click("form[action='/helpdesk/lookup'] button[type=submit]")
    agent.wait_for("[data-user-summary]")
    return urllib.parse.urlsplit(agent.url).path


def agent_with_passkey(browser_page, server: WardServer, origin: str, backend) -> tuple[str, str]:
    """A helpdesk agent signed in to the portal with a passkey: (username, user_id)."""
    username, _, user_id = new_user(server, "agent")
    run_ward(server, "role", "grant", username, "helpdesk")
    browser_page.add_authenticator()
    browser_page.goto(enrol_url(server, origin, username))
    browser_page.click("button[type=submit]")
    browser_page.wait_for_url(re.compile(r"/portal\?done=enrolled$"))
    browser_page.goto(f"{origin}/portal/passkeys/new")
    browser_page.fill("#name", "Agent key")
    browser_page.click("form[data-passkey-register] button[type=submit]")
    browser_page.wait_for_url(re.compile(r"/portal\?done=passkey$"))
    # Signed in by the set-up link, not a passkey: the console refuses and says why.
    response = browser_page.goto(f"{origin}/helpdesk")
    assert response["status"] == 403, response
    browser_page.wait_for("[data-not-agent]")
    shot(browser_page, backend, "20-console-needs-passkey")
    browser_page.click("[data-not-agent] form[action='/portal/sign-out'] button")
    browser_page.wait_for_url(re.compile(r"/portal/sign-in$"))
    passkey_sign_in(browser_page, origin)
    return username, user_id


def test_helpdesk_opened_case_is_told_everywhere_and_cancelled_from_the_device(
    browser, page, recovery_server, origin, smtp_server, backend, tmp_path
):
    server = recovery_server
    agent = page
    agent_name, agent_id = agent_with_passkey(agent, server, origin, backend)

    victim, email, victim_id = new_user(server, "victim")
    device = Authenticator(tmp_path / f"{victim}.json")
    device.activate(activation_url(server, victim))

    with fresh_page(browser) as vp:
        vp.add_authenticator()
        enrol_with_passkey(vp, server, origin, victim, "Victim laptop")
        assert vp.count("[data-recovery-banner]") == 0

        # The agent looks the victim up: counts and state only.
        path = open_console_user(agent, origin, victim)
        summary = agent.text("[data-user-summary]")
        assert re.search(r"Passkeys\s+1", summary) and re.search(r"Push devices\s+1", summary), summary
        assert agent.count("[data-case-summary]") == 0
        assert "No recovery case is open" in agent.text("main")
        assert agent.count("[data-console-limits]") == 1
        # Only verify / open a case / flag fraud / add a note: nothing approves, issues a token,
        # shortens cooling or finishes a recovery.
        assert sorted(console_forms(agent)) == sorted(
            [f"{path}/verify", f"{path}/open-case", f"{path}/fraud", f"{path}/note"]
        ), console_forms(agent)
        for label in console_buttons(agent):
            assert not re.search(r"approv|token|shorten|skip|finish|complete|issue", label, re.I), label
        shot(agent, backend, "21-console-user")

        # First the console's check: a request on the victim's enrolled device, with a number
        # for the caller to type there. The real user did not call, and denies it.
        agent.click(f"form[action='{path}/verify'] button")
        agent.wait_for("[data-verify-number]")
        number = agent.text("[data-verify-number]")
        [check] = pending_for(device, victim)
        assert check["number_required"] is True, check
        assert ["Agent", agent_name] in [list(d) for d in check["details"]], check
        shot(agent, backend, "21b-console-verify")
        device.answer(check["txid"], "deny")
        agent.wait_for("[data-verify-status][data-state='denied']", timeout=15)
        assert "Do not act" in agent.text("[data-verify-status]")
        assert number not in [value for _, value in check["details"]], "the number is typed, not shown"
        agent.goto(f"{origin}{path}")

        # "I lost my phone, please reset my MFA" anyway: the agent opens a case.
        agent.click(f"form[action='{path}/open-case'] button")
        agent.wait_for_url(re.compile(r"\?done=case-opened$"))
        case_summary = agent.text("[data-case-summary]")
        assert "collecting proof" in case_summary and f"helpdesk agent ({agent_id})" in case_summary, case_summary
        case_id = re.search(r"RC[0-9A-Z]{18}", case_summary).group(0)
        # A case is open: no second "open" control, and still nothing that decides.
        assert f"{path}/open-case" not in console_forms(agent)
        shot(agent, backend, "22-console-case-opened")
        agent_pages = [agent.content()]

        # E-mail: says the helpdesk opened it, how to cancel, and carries the continue link.
        mail = smtp_server.wait_for(to=email, subject_contains="recovery of your account was started")
        assert "helpdesk agent" in mail.text and "caller" in mail.text, mail.text
        assert "cancel" in mail.text.lower(), mail.text
        link = re.search(r"https://\S+/recovery/continue/([A-Za-z0-9_-]{16,128})", mail.text)
        assert link, mail.text
        handle = link.group(1)

        # Push: a request waiting on the victim's device, naming the case.
        [push] = pending_for(device, victim)
        assert "recovery" in push["title"].lower(), push
        assert ["Case", case_id] in [list(d) for d in push["details"]], push

        # Portal banner, when the victim signs in.
        sign_out(vp)
        passkey_sign_in(vp, origin)
        assert "collecting proof" in vp.text("[data-recovery-banner]")
        assert vp.count("[data-recovery-banner] form[action='/portal/recovery/cancel']") == 1
        shot(vp, backend, "23-victim-banner")

        # The continue link works only from the mail, once: a fresh browser adopts the case
        # with the button on the link's page (following the link alone changes nothing).
        with fresh_page(browser) as caller:
            caller.goto(f"{origin}/recovery/continue/{handle}")
            assert "Continue your account recovery" in caller.text("h1")
            shot(caller, backend, "24-continue-link")
            caller.click("form button[type=submit]")
            caller.wait_for_url(re.compile(r"/recovery/case$"))
            assert stage(caller) == "collecting"
            assert "by the helpdesk" in caller.text("[data-started]")
            with fresh_page(browser) as late:
                late.goto(f"{origin}/recovery/continue/{handle}")
                late.click("form button[type=submit]")
                late.wait_for("[data-link-unusable]")
                assert "This link cannot be used" in late.text("h1")
                assert late.cookie(RECOVERY_COOKIE) is None, late.cookies()

            # The agent can neither approve (they opened it) nor see the handle.
            attempt = approval_ceremony(agent, case_id, case_id)
            assert attempt["step"] == "finish" and attempt["status"] in (400, 403), attempt
            assert "opened the case" in attempt["data"]["error"], attempt
            for probe in ("approve", "token", "finish", "shorten"):
                status = agent.evaluate(
                    "async (u) => (await fetch(u, { method: 'POST' })).status", f"{path}/{probe}"
                )
                assert status in (404, 405), (probe, status)

            # The victim cancels from the enrolled device: deny on the recovery request.
            device.answer(push["txid"], "deny")
            caller.reload()
            assert stage(caller) == "closed"
            shot(caller, backend, "25-case-closed")

        agent.goto(f"{origin}{path}")
        assert agent.count("[data-case-summary]") == 0
        assert "No recovery case is open" in agent.text("main")
        agent_pages.append(agent.content())
        shot(agent, backend, "26-console-after-cancel")
        cancelled = smtp_server.wait_for(to=email, subject_contains="was cancelled")
        assert "denied on a push device" in cancelled.text, cancelled.text
        vp.goto(f"{origin}/portal")
        assert vp.count("[data-recovery-banner]") == 0

        # Second call: the agent opens another case; the victim cancels from the portal banner.
        agent.click(f"form[action='{path}/open-case'] button")
        agent.wait_for_url(re.compile(r"\?done=case-opened$"))
        second_case = re.search(r"RC[0-9A-Z]{18}", agent.text("[data-case-summary]")).group(0)
        assert second_case != case_id
        agent_pages.append(agent.content())
        second_mail = smtp_server.wait_for(to=email, subject_contains="recovery of your account was started")
        second_handle = re.search(r"/recovery/continue/([A-Za-z0-9_-]+)", second_mail.text).group(1)
        # A coached victim approving the recovery request gives the caller nothing.
        [second_push] = pending_for(device, victim)
        assert ["Case", second_case] in [list(d) for d in second_push["details"]], second_push
        device.answer(second_push["txid"], "approve")
        agent.goto(f"{origin}{path}")
        assert "collecting proof" in agent.text("[data-case-summary]")
        assert re.search(r"Proof accepted\s+none yet", agent.text("[data-case-summary]")), agent.text("main")
        agent_pages.append(agent.content())
        vp.goto(f"{origin}/portal")
        vp.click("form[action='/portal/recovery/cancel'] button")
        vp.wait_for_url(re.compile(r"/portal\?done=recovery-cancelled$"))
        assert vp.count("[data-recovery-banner]") == 0
        shot(vp, backend, "27-victim-cancelled-from-banner")
        agent.goto(f"{origin}{path}")
        assert agent.count("[data-case-summary]") == 0
        agent_pages.append(agent.content())
        smtp_server.wait_for(to=email, subject_contains="was cancelled")

    # The agent never received a case handle: not in a page, a cookie or the audit log.
    for content in agent_pages:
        assert handle not in content and second_handle not in content
        assert "/recovery/continue/" not in content
    assert agent.cookie(RECOVERY_COOKIE) is None, agent.cookies()
    exported = run_ward(server, "audit", "export").stdout
    assert handle not in exported and second_handle not in exported
    assert handle not in server.log_text() and second_handle not in server.log_text()

    events = recovery_events(server, victim_id)
    starts = [e for e in events if e["action"] == "recovery.start"]
    assert len(starts) == 2 and all(e["actor"] == f"user:{agent_id}" for e in starts), starts
    cancels = [e for e in events if e["action"] == "recovery.cancelled"]
    assert [c["details"]["via"] for c in cancels] == ["denied on a push device", "portal session"], cancels
    assert all(c["actor"] == f"user:{victim_id}" for c in cancels), cancels
    refused = [e for e in audit(server) if e["action"] == "recovery.approval_refused" and e["target"] == case_id]
    assert refused and refused[0]["actor"] == f"user:{agent_id}", refused


# ---------------------------------------------------------------------------------------------
# 3. M-of-N approvals
# ---------------------------------------------------------------------------------------------


def test_approvers_approve_with_their_own_passkeys_and_approvals_stay_with_their_case(
    browser, page, recovery_server, origin, smtp_server, backend
):
    server = recovery_server
    target, _, target_id = new_user(server, "target")
    other, _, other_id = new_user(server, "other")
    approvers = []
    for n in (1, 2, 3):
        name, _, approver_id = new_user(server, f"approver{n}")
        run_ward(server, "role", "grant", name, "approver")
        run_ward(server, "recovery", "add-approver", target, name)
        approvers.append((name, approver_id))
    run_ward(server, "recovery", "add-approver", other, approvers[0][0])

    # The target, while they still had a passkey: recovery codes, and a session kept open.
    target_portal = page
    target_portal.add_authenticator()
    enrol_with_passkey(target_portal, server, origin, target, "Target laptop")
    codes = create_recovery_codes(target_portal, origin)

    with contextlib.ExitStack() as stack:
        a1, a2, a3, rt, ro = (stack.enter_context(fresh_page(browser)) for _ in range(5))
        for approver_page, (name, _) in zip((a1, a2, a3), approvers):
            approver_page.add_authenticator()
            enrol_with_passkey(approver_page, server, origin, name, f"{name} key")

        # Case A (the target) and case B (another user who also named approver 1).
        start_recovery(rt, origin, target)
        start_recovery(ro, origin, other)

        a1.goto(f"{origin}/portal")
        assert "2 colleagues' recoveries are" in a1.text("[data-approvals-banner]")
        a1.goto(f"{origin}/portal/approvals")
        cases = {
            a1.text(f"[data-approval='{cid}'] .name"): cid
            for cid in a1.evaluate(
                "() => [...document.querySelectorAll('[data-approval]')].map((e) => e.dataset.approval)"
            )
        }
        assert set(cases) == {target, other}, cases
        case_a, case_b = cases[target], cases[other]
        assert "the user, on the recovery page" in a1.text(f"[data-approval='{case_a}']")
        shot(a1, backend, "30-approvals")

        # A ceremony started for case A and finished for case B is refused; B is unchanged.
        crossed = approval_ceremony(a1, case_a, case_b)
        assert crossed["step"] == "finish" and crossed["status"] == 410, crossed
        assert "already used, or took too long" in crossed["data"]["error"], crossed
        assert approvals_on_case_page(ro) == 0
        assert approvals_on_case_page(rt) == 0

        # The requester cannot approve their own case, even with their own passkey.
        target_portal.goto(f"{origin}/portal/approvals")
        assert target_portal.count("[data-no-approvals]") == 1
        own = approval_ceremony(target_portal, case_a, case_a)
        assert own["step"] == "finish" and own["status"] in (400, 403), own
        assert "user being recovered" in own["data"]["error"], own
        assert approvals_on_case_page(rt) == 0

        # Each approver approves with their own passkey, from the approvals page.
        for n, approver_page in enumerate((a1, a2), start=1):
            approver_page.goto(f"{origin}/portal/approvals")
            approver_page.click(f"[data-approve][data-case='{case_a}']")
            approver_page.wait_for(f"[data-approval='{case_a}'] .tag.ok", timeout=20)
            assert approver_page.count(f"[data-approve][data-case='{case_a}']") == 0
            shot(approver_page, backend, f"31-approved-by-{n}")
            # Approvals are one category: however many, they never complete a case alone.
            assert approvals_on_case_page(rt) == n
            assert stage(rt) == "collecting"
        shot(rt, backend, "32-case-two-approvals")
        assert approvals_on_case_page(ro) == 0

        # With a recovery code, the case cools (P-code + S).
        assert submit_code(rt, "#recovery-code", "/recovery/code", codes[0]) == "code-accepted"
        assert stage(rt) == "cooling"
        shot(rt, backend, "33-cooling-after-approvals")

        # A cooling case takes no more approvals: the third approver is not asked, and an
        # approval sent anyway is refused in plain words and changes nothing.
        a3.goto(f"{origin}/portal")
        assert a3.count("[data-approvals-banner]") == 0
        a3.goto(f"{origin}/portal/approvals")
        assert a3.count("[data-no-approvals]") == 1
        late = approval_ceremony(a3, case_a, case_a)
        assert late["step"] == "finish" and late["status"] == 400, late
        assert late["data"]["error"] == "This recovery is no longer waiting for approvals.", late
        a1.goto(f"{origin}/portal/approvals")
        assert "You approved" in a1.text(f"[data-approval='{case_a}']")

    events = audit(server)
    recorded = [e for e in events if e["action"] == "recovery.approval_recorded"]
    assert sorted(e["details"]["approver_id"] for e in recorded if e["target"] == target_id) == sorted(
        a for _, a in approvers[:2]
    ), recorded
    assert not [e for e in recorded if e["target"] == other_id], recorded
    [cooling] = [e for e in events if e["action"] == "recovery.cooling_started" and e["target"] == target_id]
    assert cooling["details"]["row"] == "R1: P-code + S(1)", cooling
    refused = [e for e in events if e["action"] == "recovery.approval_refused" and e["target"] == case_a]
    assert [e["actor"] for e in refused] == [f"user:{target_id}", f"user:{approvers[2][1]}"], refused


# ---------------------------------------------------------------------------------------------
# 4. Anti-enumeration
# ---------------------------------------------------------------------------------------------

VARYING_HEADERS = {"date", "x-request-id", "set-cookie"}


def https(server: WardServer, origin: str, method: str, path: str, *, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, list[tuple[str, str]], bytes, float]:
    """One request on a fresh TLS connection: (status, headers, body, seconds from sending the
    request to the end of the body; the handshake is not counted)."""
    context = ssl.create_default_context(cafile=server.ca_certs)
    conn = http.client.HTTPSConnection("localhost", server.port, context=context, timeout=30)
    try:
        conn.connect()
        began = time.perf_counter()
        conn.request(method, path, body=body, headers={"Origin": origin, **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - began
        return response.status, response.getheaders(), data, elapsed
    finally:
        conn.close()


def post_start(server: WardServer, origin: str, username: str):
    body = urllib.parse.urlencode({"username": username}).encode()
    return https(
        server, origin, "POST", "/recovery/start", body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def handle_cookie(headers: list[tuple[str, str]]) -> str:
    [cookie] = [v for k, v in headers if k.lower() == "set-cookie"]
    assert cookie.startswith(f"{RECOVERY_COOKIE}="), cookie
    assert "HttpOnly" in cookie and "Secure" in cookie, cookie
    return cookie.split(";", 1)[0]


def header_shape(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted((k.lower(), "" if k.lower() in VARYING_HEADERS else v) for k, v in headers)


def separation(real_ms: list[float], unknown_ms: list[float]) -> float:
    """The chance that a real account's sample is slower than an unknown name's (ties count
    half): 0.5 when the kinds mix, 1.0 (or 0.0) when every sample of one kind is slower."""
    wins = sum((r > u) + 0.5 * (r == u) for r in real_ms for u in unknown_ms)
    return wins / (len(real_ms) * len(unknown_ms))


def telling_latency(real_ms: list[float], unknown_ms: list[float]) -> str | None:
    """Why these latencies would tell real accounts from unknown ones, or None: medians 10 ms
    apart (the unpadded start: 11-16 ms), or one kind reliably slower (separation outside
    0.1-0.9, about 3 standard deviations for 10 + 10 samples that mix) by at least 1 ms."""
    gap = abs(statistics.median(real_ms) - statistics.median(unknown_ms))
    apart = separation(real_ms, unknown_ms)
    if gap >= TIMING_TOLERANCE_MS:
        return f"medians {gap:.1f} ms apart"
    if gap >= 1.0 and not 0.1 < apart < 0.9:
        return f"one kind is reliably slower (separation {apart:.2f}, medians {gap:.1f} ms apart)"
    return None


def compare_latency(backend, what: str, real_ms: list[float], unknown_ms: list[float]) -> None:
    """Reports both kinds' medians (printed and appended to TIMING_LOG); fails when they tell."""
    real_median, unknown_median = statistics.median(real_ms), statistics.median(unknown_ms)
    report = (
        f"[{backend.name}] {what}, {len(real_ms)} each, interleaved: "
        f"real median {real_median:.1f} ms (min {min(real_ms):.1f}, max {max(real_ms):.1f}); "
        f"unknown median {unknown_median:.1f} ms (min {min(unknown_ms):.1f}, max {max(unknown_ms):.1f}); "
        f"difference {abs(real_median - unknown_median):.1f} ms; "
        f"P(real slower) {separation(real_ms, unknown_ms):.2f}"
    )
    print(report)
    TIMING_LOG.parent.mkdir(parents=True, exist_ok=True)
    with TIMING_LOG.open("a") as log:
        log.write(report + "\n")
    reason = telling_latency(real_ms, unknown_ms)
    assert reason is None, f"{reason}: {report}"


def interleaved(pairs):
    """(kind, item) for each pair, the order alternating so that neither kind always follows the
    other (work a start leaves running would otherwise slow the next request)."""
    for i, (real, unknown) in enumerate(pairs):
        order = (("real", real), ("unknown", unknown))
        yield from order if i % 2 == 0 else reversed(order)


@pytest.fixture(scope="module")
def enumeration(recovery_server, origin_of_module, tmp_path_factory):
    """Starts for real accounts (each with everything a start touches: an e-mail address for the
    notice, a push device for the request, approvers for half of them; then an admin and a
    helpdesk agent) and as many unknown names, interleaved."""
    server, origin = recovery_server, origin_of_module
    devices = tmp_path_factory.mktemp("enumeration-devices")
    real, real_ids = [], set()
    approver, _, _ = new_user(server, "enum-approver")
    run_ward(server, "role", "grant", approver, "approver")
    for i in range(TIMING_SAMPLES):
        username, _, user_id = new_user(server, "enum")
        Authenticator(devices / f"{username}.json").activate(activation_url(server, username))
        if i % 2 == 0:
            run_ward(server, "recovery", "add-approver", username, approver)
        real.append(username)
        real_ids.add(user_id)
    for role in ("admin", "helpdesk"):
        username, _, user_id = new_user(server, f"enum-{role}")
        run_ward(server, "role", "grant", username, role)
        real.append(username)
        real_ids.add(user_id)
    unknown = [unique_username("nobody") for _ in real]

    post_start(server, origin, unique_username("warmup"))  # first-request costs
    phantoms_before = count_phantom_starts(server)
    answers: dict[str, list] = {"real": [], "unknown": []}
    for kind, name in interleaved(zip(real, unknown)):
        answers[kind].append(post_start(server, origin, name))
    return {
        "names": {"real": real, "unknown": unknown},
        "real_ids": real_ids,
        "answers": answers,
        "cookies": {kind: [handle_cookie(r[1]) for r in results] for kind, results in answers.items()},
        "phantoms_before": phantoms_before,
    }


@pytest.fixture(scope="module")
def origin_of_module(recovery_server) -> str:
    return f"https://localhost:{recovery_server.port}"


def count_phantom_starts(server: WardServer) -> int:
    return sum(1 for e in audit(server) if e["action"] == "recovery.start" and e["details"]["phantom"])


def test_starts_answer_the_same_bytes_in_the_same_time_for_real_and_unknown_accounts(
    recovery_server, enumeration, backend
):
    answers, names = enumeration["answers"], enumeration["names"]
    reference_status, reference_headers, reference_body, _ = answers["unknown"][0]
    assert reference_status == 200, reference_body[:500]
    for kind, results in answers.items():
        for name, (status, headers, body, _) in zip(names[kind], results):
            assert status == reference_status, (kind, name, status)
            assert body == reference_body, (kind, name, "body differs")
            assert header_shape(headers) == header_shape(reference_headers), (kind, name, headers)
            assert name.encode() not in body
    # Ordinary accounts only, so both samples are the same size.
    compare_latency(
        backend, "POST /recovery/start",
        [r[3] * 1000 for r in answers["real"][:TIMING_SAMPLES]],
        [r[3] * 1000 for r in answers["unknown"][:TIMING_SAMPLES]],
    )

    # Only the audit tells them apart (for the security team): a real case for every account,
    # a phantom for every unknown name.
    starts = [e for e in audit(recovery_server) if e["action"] == "recovery.start"]
    assert {e["target"] for e in starts if not e["details"]["phantom"]} >= enumeration["real_ids"]
    phantoms = count_phantom_starts(recovery_server) - enumeration["phantoms_before"]
    assert phantoms == len(names["unknown"]), phantoms


def fetch_case_pages(server: WardServer, origin: str, enumeration) -> dict[str, list]:
    cookies = enumeration["cookies"]
    pages: dict[str, list] = {"real": [], "unknown": []}
    for kind, cookie in interleaved(zip(cookies["real"], cookies["unknown"])):
        pages[kind].append(https(server, origin, "GET", "/recovery/case", headers={"Cookie": cookie}))
    return pages


STARTED = re.compile(rb'(<p class="meta" data-started>This recovery was started on )[^<]*? from ')


def mask_started(body: bytes) -> bytes:
    """A case page with its start time masked: each page says when its case was started (to
    the minute), and starts compared with each other may fall in different minutes whatever
    the account, so that sentence is compared for its shape only."""
    assert STARTED.search(body), body[:2000]
    return STARTED.sub(rb"\1(when) from ", body)


def test_case_pages_are_the_same_bytes_for_real_privileged_and_unknown_accounts(
    recovery_server, origin, enumeration
):
    pages = fetch_case_pages(recovery_server, origin, enumeration)
    for results in pages.values():
        for i, (status, headers, body, elapsed) in enumerate(results):
            results[i] = (status, headers, mask_started(body), elapsed)
    _, reference_headers, reference_body, _ = pages["unknown"][0]
    assert b'data-recovery-stage="collecting"' in reference_body, reference_body[:2000]
    for kind, results in pages.items():
        for name, (status, headers, body, _) in zip(enumeration["names"][kind], results):
            assert status == 200, (kind, name, body[:300])
            assert body == reference_body, f"the case page for {name} ({kind}) differs from an unknown name's"
            assert header_shape(headers) == header_shape(reference_headers), (kind, name, headers)


def test_case_page_latency_does_not_tell_real_from_unknown_accounts(recovery_server, origin, enumeration, backend):
    fetch_case_pages(recovery_server, origin, enumeration)  # warm both kinds' paths
    pages = fetch_case_pages(recovery_server, origin, enumeration)
    compare_latency(
        backend, "GET /recovery/case",
        [r[3] * 1000 for r in pages["real"][:TIMING_SAMPLES]],
        [r[3] * 1000 for r in pages["unknown"][:TIMING_SAMPLES]],
    )


# ---------------------------------------------------------------------------------------------
# 5. The circuit breaker
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def breaker_database(backend):
    """A database of its own for the breaker's server (None: SQLite in its data dir)."""
    if backend.database_url is None:
        yield None
        return
    import psycopg
    from psycopg import sql

    admin_url = os.environ[DATABASE_URL_ENV]
    name = f"ward_t_{os.urandom(6).hex()}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urllib.parse.urlsplit(admin_url)._replace(path="/" + name).geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def breaker_server(ward_bin, backend, breaker_database, tmp_path_factory):
    """A server whose circuit breaker trips after three starts in an hour."""
    root = tmp_path_factory.mktemp(f"recovery-breaker-{backend.name}")
    database_url = breaker_database
    config = write_config(
        root / "ward.toml",
        database_url=database_url,
        extra={
            "recovery": {
                "test_cooling_seconds": COOLING_SECS,
                "circuit_breaker_floor": 3,
                "circuit_breaker_multiple": 2,
            }
        },
    )
    server = WardServer(ward_bin, root / "data", config, name=f"breaker-{backend.name}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_tripped_circuit_breaker_does_not_single_out_privileged_accounts(breaker_server, backend):
    server = breaker_server
    origin = f"https://localhost:{server.port}"
    for _ in range(3):
        post_start(server, origin, unique_username("storm"))
    ordinary, _, _ = new_user(server, "ordinary")
    admin, _, _ = new_user(server, "admin")
    run_ward(server, "role", "grant", admin, "admin")
    pages = {}
    for label, name in (("unknown", unique_username("nobody")), ("ordinary", ordinary), ("admin", admin)):
        _, headers, _, _ = post_start(server, origin, name)
        _, _, body, _ = https(server, origin, "GET", "/recovery/case", headers={"Cookie": handle_cookie(headers)})
        pages[label] = mask_started(body)
    breaker = [e for e in audit(server) if e["action"] == "recovery.start" and e["details"]["breaker"]]
    assert len(breaker) >= 3, "the breaker did not trip: the test proves nothing"
    assert b"2 approvals" in pages["unknown"], pages["unknown"][:3000]
    assert pages["ordinary"] == pages["unknown"]
    assert pages["admin"] == pages["unknown"], "a privileged account's case page differs under the breaker"
