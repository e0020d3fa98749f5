"""The self-service portal in a real browser: Debian Chromium (tests/browser/driver.mjs) with a
CDP virtual authenticator (ctap2, internal, resident keys, user verification) against a real
`ward serve` over TLS, on SQLite and on PostgreSQL, with notices mailed to a local SMTP server.

The journey: enrol through a link → add a passkey → sign out → sign in with the passkey → add an
authenticator app (code from pyotp) → create recovery codes → remove a factor after a step-up →
"this wasn't me" freezes the account. And the refusals: expired and reused links, the last
passkey, forms without their CSRF token or from another origin. Each page is saved as a
screenshot under target/test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

import pyotp
import pytest

from browser import screenshot
from conftest import WardServer, run_ward, unique_username, ward_cli, write_config

ORG = "Example Corp"


@pytest.fixture(scope="module")
def portal_server(ward_bin, backend, smtp_server, tmp_path_factory):
    """A ward server whose notices go to the local SMTP server."""
    root = tmp_path_factory.mktemp(f"portal-{backend.name}")
    config = write_config(
        root / "ward.toml",
        database_url=backend.database_url,
        extra={
            "branding": {"organisation": ORG, "accent_colour": "#0b6e4f"},
            "smtp": {
                "host": "127.0.0.1",
                "port": smtp_server.port,
                "security": "none",
                "from": "Ward <ward@example.test>",
            },
        },
    )
    server = WardServer(ward_bin, root / "data", config, name=f"portal-{backend.name}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def origin(portal_server) -> str:
    return f"https://localhost:{portal_server.port}"


def shot(page, backend, name: str) -> None:
    screenshot(page, f"portal-{backend.name}-{name}")


def enrol_url(server: WardServer, origin: str, username: str, *extra: str) -> str:
    """`ward enrol-link` prints a URL on the configured public host; the test server listens on
    a port chosen at start, so the link's path is opened on the server's actual origin."""
    link = ward_cli(server, "enrol-link", username, *extra)
    url = urllib.parse.urlsplit(link["url"])
    assert url.scheme == "https", link
    assert re.fullmatch(r"/portal/enrol/[A-Za-z0-9_-]{43}", url.path), link
    return origin + url.path


def new_user(server: WardServer) -> tuple[str, str]:
    username = unique_username("portal")
    email = f"{username}@example.test"
    ward_cli(server, "user", "create", username, "--email", email)
    return username, email


def report_link(mail) -> str:
    match = re.search(r"https://\S+/portal/report/[A-Za-z0-9_-]{43}", mail.text)
    assert match, mail.text
    return match.group(0)


def audit_actions(server: WardServer) -> list[dict]:
    out = run_ward(server, "audit", "export").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_enrol_passkey_sign_in_totp_recovery_remove_and_report(
    page, portal_server, origin, smtp_server, backend
):
    username, email = new_user(portal_server)
    authenticator = page.add_authenticator()

    # 1. The enrolment link: a landing page first (mail scanners may fetch links), then Continue.
    response = page.goto(enrol_url(portal_server, origin, username))
    assert response["status"] == 200, response
    headers = page.response_headers()
    assert "script-src 'self'" in headers["content-security-policy"], headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"], headers
    assert headers["strict-transport-security"].startswith("max-age="), headers
    assert headers["cache-control"] == "no-store", headers
    assert headers["referrer-policy"] == "same-origin", headers
    assert username in page.text("main")
    assert ORG in page.text("header")
    shot(page, backend, "01-enrol-link")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/portal\?done=enrolled$"))
    cookie = page.cookie("__Host-ward_session")
    assert cookie is not None, page.cookies()
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict", cookie
    assert cookie["path"] == "/", cookie
    assert "Add a passkey" in page.text("main")
    shot(page, backend, "02-home-new-account")

    # 2. Add a passkey.
    page.click("a[href='/portal/passkeys/new'].primary")
    page.wait_for_url(re.compile(r"/portal/passkeys/new$"))
    shot(page, backend, "03-add-passkey")
    page.fill("#name", "Work laptop")
    page.click("form[data-passkey-register] button[type=submit]")
    page.wait_for_url(re.compile(r"/portal\?done=passkey$"))
    assert "Work laptop" in page.text("main")
    [credential] = page.credentials(authenticator)
    assert credential["isResidentCredential"] is True, credential
    assert credential["rpId"] == "localhost", credential
    added = smtp_server.wait_for(to=email, subject_contains="passkey was added")
    assert "Work laptop" in added.text
    report_passkey_added = report_link(added)
    shot(page, backend, "04-home-with-passkey")

    # 3. Sign out; the portal asks to sign in again; sign in with the passkey (no username).
    page.click("header form[action='/portal/sign-out'] button")
    page.wait_for_url(re.compile(r"/portal/sign-in$"))
    assert page.cookie("__Host-ward_session") is None
    page.goto(f"{origin}/portal")
    assert page.url.endswith("/portal/sign-in")
    shot(page, backend, "05-sign-in")
    page.click("[data-passkey-signin]")
    page.wait_for_url(re.compile(r"/portal$"))
    assert "Work laptop" in page.text("main")
    assert "last used never" not in page.text("main")

    # 4. Add an authenticator app: a fresh passkey check first (a stolen session cannot add the
    # thief's factor); a wrong code is refused and the set-up continues; then a code from pyotp.
    page.goto(f"{origin}/portal/totp/new")
    assert "/portal/confirm?next=" in page.url, page.url
    shot(page, backend, "06-confirm-first")
    page.click("[data-step-up]")
    page.wait_for_url(re.compile(r"/portal/totp/new$"))
    assert page.attr("img.qr", "src").startswith("data:image/svg+xml;base64,")
    page.click("details summary")  # "Can't scan? Enter the key by hand"
    secret = page.text("[data-secret]").replace(" ", "")
    totp = pyotp.TOTP(secret)
    shot(page, backend, "06b-add-totp")
    wrong = f"{(int(totp.now()) + 500_000) % 1_000_000:06d}"
    page.fill("#code", wrong)
    page.click("form[action='/portal/totp/new'] button[type=submit]")
    page.wait_for("p.error")
    assert "did not match" in page.text("p.error")
    shot(page, backend, "07-add-totp-wrong-code")
    remaining = totp.interval - time.time() % totp.interval
    if remaining < 3:
        time.sleep(remaining + 0.2)
    page.fill("#code", totp.now())
    page.fill("#name", "Phone app")
    page.click("form[action='/portal/totp/new'] button[type=submit]")
    page.wait_for_url(re.compile(r"/portal\?done=totp$"))
    assert "Phone app" in page.text("main")
    smtp_server.wait_for(to=email, subject_contains="authenticator app was added")

    # 5. Recovery codes: ten, shown once, at least 64 bits each.
    page.click("form[action='/portal/recovery-codes'] button")
    page.wait_for("[data-codes]")
    codes = page.texts("[data-codes] code")
    assert len(codes) == 10 and len(set(codes)) == 10, codes
    for code in codes:
        assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", code), code  # 16 base32 chars: 80 bits
    shot(page, backend, "08-recovery-codes")
    page.click("a.button.primary[href='/portal']")
    assert "10 of 10" in page.text("main")
    smtp_server.wait_for(to=email, subject_contains="recovery codes")

    # 6. Sign out everywhere, sign in again, and remove the authenticator app: the new session
    # must confirm with the passkey first.
    page.click("form[action='/portal/sign-out-everywhere'] button")
    page.wait_for_url(re.compile(r"/portal/sign-in$"))
    page.click("[data-passkey-signin]")
    page.wait_for_url(re.compile(r"/portal$"))
    totp_link = page.attr("a[aria-label='Manage Phone app']", "href")
    page.goto(origin + totp_link)
    assert page.count("button.danger") == 0
    shot(page, backend, "09-manage-factor")
    page.click("[data-step-up]")
    page.wait_for("button.danger")
    shot(page, backend, "10-manage-factor-confirmed")
    page.click("button.danger")
    page.wait_for_url(re.compile(r"/portal\?done=removed$"))
    assert "Phone app" not in page.text("main")
    smtp_server.wait_for(to=email, subject_contains="was removed")

    # 7. The only passkey cannot be removed while policy requires a phishing-resistant factor.
    passkey_link = page.attr("a[aria-label='Manage Work laptop']", "href")
    page.goto(origin + passkey_link)
    assert page.count("[data-step-up]") == 0  # the confirmation above is still fresh
    page.click("button.danger")
    page.wait_for("p.error")
    assert "only passkey" in page.text("p.error")
    assert len(page.credentials(authenticator)) == 1

    # 8. "This wasn't me" from the first notice: factor changes freeze, every session ends.
    page.goto(report_passkey_added)
    shot(page, backend, "11-report")
    page.click("form button.danger")
    page.wait_for("h1")
    assert "protected" in page.text("h1")
    shot(page, backend, "12-report-done")
    page.goto(f"{origin}/portal")
    assert page.url.endswith("/portal/sign-in")
    page.click("[data-passkey-signin]")
    page.wait_for_url(re.compile(r"/portal$"))
    assert "Changes are frozen" in page.text("main")
    shot(page, backend, "13-home-frozen")
    page.goto(f"{origin}/portal/totp/new")
    assert "frozen" in page.text("main")

    actions = [(e["action"], e["outcome"]) for e in audit_actions(portal_server) if e["target"] != "-"]
    for expected in [
        ("enrol_link.create", "ok"),
        ("session.open", "ok"),
        ("passkey.add", "ok"),
        ("passkey.auth", "allow"),
        ("factor.totp.add", "ok"),
        ("recovery_codes.generate", "ok"),
        ("factor.remove", "ok"),
        ("factor.remove", "deny"),
        ("account.freeze", "ok"),
    ]:
        assert expected in actions, (expected, actions[-30:])
    # No script error and no CSP violation on any page (HTTP error statuses are checked above).
    errors = [e for e in page.console_errors() if "Failed to load resource" not in e["text"]]
    assert not errors, errors
    assert not [e for e in page.console_errors() if "status of 404" in e["text"]], page.console_errors()


def test_expired_and_reused_enrolment_links_are_refused_with_a_clear_page(
    page, portal_server, origin, backend
):
    username, _ = new_user(portal_server)
    expired = enrol_url(portal_server, origin, username, "--ttl", "1s")
    time.sleep(1.2)
    response = page.goto(expired)
    assert response["status"] == 410, response
    assert "Link expired" in page.text("h1")
    assert re.search(r"Request id: [0-9a-f]{16}", page.text("main")), page.text("main")
    shot(page, backend, "20-link-expired")

    link = enrol_url(portal_server, origin, username)
    page.goto(link)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/portal\?done=enrolled$"))
    other = page.browser.new_page()
    try:
        response = other.goto(link)
        assert response["status"] == 410, response
        assert "already been used" in other.text("main")
        shot(other, backend, "21-link-reused")
    finally:
        other.close()

    response = page.goto(f"{origin}/portal/enrol/not-a-real-token")
    assert response["status"] == 404, response
    assert "not valid" in page.text("main")

    # Readable on a phone: the same pages at a phone's viewport.
    phone = page.browser.new_page(viewport=(390, 844))
    try:
        phone.goto(expired)
        shot(phone, backend, "22-phone-link-expired")
        phone.goto(f"{origin}/portal/sign-in")
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        shot(phone, backend, "23-phone-sign-in")
    finally:
        phone.close()


def _post(url: str, data: dict, *, headers: dict | None = None, ca: str) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    context = ssl.create_default_context(cafile=ca)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_forms_need_the_session_csrf_token_and_this_origin(page, portal_server, origin):
    username, _ = new_user(portal_server)
    page.add_authenticator()
    page.goto(enrol_url(portal_server, origin, username))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/portal\?done=enrolled$"))
    token = page.attr("meta[name=csrf-token]", "content")
    assert token

    # From the page itself, without the token: refused, nothing created.
    status = page.evaluate(
        """async () => (await fetch('/portal/recovery-codes', {method: 'POST',
              headers: {'Content-Type': 'application/x-www-form-urlencoded'},
              body: 'csrf=wrong'})).status"""
    )
    assert status == 403
    status = page.evaluate(
        """async () => (await fetch('/portal/api/passkeys/start', {method: 'POST',
              headers: {'Content-Type': 'application/json'}, body: '{}'})).status"""
    )
    assert status == 403
    page.goto(f"{origin}/portal")
    assert "Create recovery codes" in page.text("main")

    # Another site posting the enrolment form: refused by origin, the link still unused.
    second, _ = new_user(portal_server)
    link = enrol_url(portal_server, origin, second)
    status, body = _post(
        link, {}, headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        ca=portal_server.ca_certs,
    )
    assert status == 403, body
    assert "another site" in body
    response = page.goto(link)
    assert response["status"] == 200, response
