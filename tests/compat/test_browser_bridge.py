"""The test machinery itself: the browser bridge (Debian Chromium via tests/browser/driver.mjs)
against a real `ward serve` over TLS, and the local SMTP server fixture (aiosmtpd).

No portal page is needed: ward's JSON 404 at https://localhost:PORT/bridge-test is a secure context
with RP ID `localhost`, which is all the virtual authenticator needs.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import urllib.parse
from email.message import EmailMessage

import pytest

from browser import SCREENSHOT_DIR, BrowserError, screenshot
from conftest import Backend
from mail import SmtpServer


@pytest.fixture(scope="module")
def backend() -> Backend:
    return Backend("sqlite", None)


@pytest.fixture
def origin(ward_server) -> str:
    return f"https://localhost:{ward_server.port}"


# A WebAuthn registration in the page, without any server side: enough to exercise the
# authenticator. Resolves to the new credential's id (base64url), or throws the DOMException.
CREATE_PASSKEY = """async (name) => {
    const credential = await navigator.credentials.create({publicKey: {
        rp: {id: "localhost", name: "Ward bridge test"},
        user: {id: crypto.getRandomValues(new Uint8Array(16)), name, displayName: name},
        challenge: crypto.getRandomValues(new Uint8Array(32)),
        pubKeyCredParams: [{type: "public-key", alg: -7}],
        authenticatorSelection: {residentKey: "required", userVerification: "required"},
        timeout: 5000,
    }});
    return credential.id;
}"""


# ---------------------------------------------------------------------------
# Browser bridge
# ---------------------------------------------------------------------------


def test_page_opens_ward_over_tls_as_a_secure_localhost_origin(page, origin):
    authenticator = page.add_authenticator()

    response = page.goto(f"{origin}/bridge-test")

    assert response["status"] == 404, response
    assert response["url"] == f"{origin}/bridge-test", response
    assert page.evaluate("window.isSecureContext") is True
    assert page.evaluate("location.hostname") == "localhost"
    assert '"stat":"FAIL"' in page.content()
    headers = page.response_headers()
    assert headers["content-type"].startswith("application/json"), headers
    assert re.fullmatch(r"[0-9a-f]{16}", headers["x-request-id"]), headers
    assert page.credentials(authenticator) == []
    shot = screenshot(page, "bridge-smoke-ward-404")
    assert shot.parent == SCREENSHOT_DIR
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_virtual_authenticator_creates_lists_and_removes_a_passkey(page, origin):
    authenticator = page.add_authenticator()
    page.goto(f"{origin}/bridge-test")

    credential_id = page.evaluate(CREATE_PASSKEY, "alice")

    [stored] = page.credentials(authenticator)
    assert stored["rpId"] == "localhost", stored
    assert stored["isResidentCredential"] is True, stored
    # CDP reports the id in base64, the page in base64url.
    assert stored["credentialId"].rstrip("=").replace("+", "-").replace("/", "_") == credential_id
    page.remove_credential(authenticator, stored["credentialId"])
    assert page.credentials(authenticator) == []


def test_an_unverified_user_cannot_create_a_passkey(page, origin):
    authenticator = page.add_authenticator(isUserVerified=False)
    page.goto(f"{origin}/bridge-test")

    with pytest.raises(BrowserError, match="NotAllowedError"):
        page.evaluate(CREATE_PASSKEY, "mallory")
    assert page.credentials(authenticator) == []

    page.set_user_verified(authenticator, True)
    page.evaluate(CREATE_PASSKEY, "mallory")
    assert len(page.credentials(authenticator)) == 1
    page.remove_authenticator(authenticator)
    with pytest.raises(BrowserError, match="Virtual Authenticator"):
        page.credentials(authenticator)


def test_pages_are_isolated_browser_contexts(browser, page, origin):
    page.goto(f"{origin}/bridge-test")
    page.evaluate("document.cookie = 'probe=1; Secure; SameSite=Strict; Path=/'")
    [cookie] = page.cookies()
    assert cookie["name"] == "probe" and cookie["value"] == "1", cookie
    assert cookie["secure"] is True and cookie["httpOnly"] is False, cookie
    assert cookie["sameSite"] == "Strict", cookie

    with browser.new_page() as other:
        other.goto(f"{origin}/bridge-test")
        assert other.cookies() == []


def test_errors_name_the_op_the_selector_and_the_url(page, origin):
    page.goto(f"{origin}/bridge-test")

    with pytest.raises(BrowserError) as raised:
        page.click("#no-such-button", timeout=0.5)

    message = str(raised.value)
    assert "click" in message and "#no-such-button" in message, message
    assert f"{origin}/bridge-test" in message, message
    assert "Timeout 500ms exceeded" in message, message
    with pytest.raises(BrowserError, match="unknown op"):
        page.browser.call("noSuchOp")


def test_form_actions_and_reading_the_page(page, origin):
    page.goto(f"{origin}/bridge-test")
    page.evaluate(
        """() => { document.body.innerHTML =
            "<form><input id=name><select id=colour><option>red</option><option>blue</option></select>"
            + "<input type=checkbox id=agree><a href='#done' id=go>Go</a></form>"; }"""
    )

    page.fill("#name", "Alice")
    page.press("End", "#name")
    page.press("!")
    assert page.value("#name") == "Alice!"
    assert page.select_option("#colour", "blue") == ["blue"]
    page.check("#agree")
    assert page.evaluate("document.getElementById('agree').checked") is True
    page.click("text=Go")
    assert page.wait_for_url(re.compile(r"#DONE$", re.IGNORECASE)) == f"{origin}/bridge-test#done"
    assert page.wait_for_url("**/bridge-test#done") == page.url
    assert page.texts("option") == ["red", "blue"]
    assert page.count("input") == 2
    assert page.attr("#go", "href") == "#done"
    assert page.text("#go") == "Go"


def test_console_errors_include_csp_violations_and_uncaught_exceptions(page):
    html = "<meta http-equiv='Content-Security-Policy' content=\"script-src 'none'\"><p>x</p><script>1</script>"
    page.goto("data:text/html," + urllib.parse.quote(html))

    page.evaluate("setTimeout(() => { throw new Error('boom from the page') }, 0)")
    page.evaluate("new Promise(resolve => setTimeout(resolve, 100))")

    errors = page.console_errors()
    assert any(e["kind"] == "console" and "Content Security Policy" in e["text"] for e in errors), errors
    assert any(e["kind"] == "pageerror" and "boom from the page" in e["text"] for e in errors), errors
    assert page.console_errors(clear=True) == errors
    assert page.console_errors() == []


# ---------------------------------------------------------------------------
# SMTP fixture
# ---------------------------------------------------------------------------


def _send(server: SmtpServer, message: EmailMessage) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.send_message(message)


def _message(to: str, subject: str, text: str, html: str | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ward <ward@example.org>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def test_smtp_fixture_receives_and_parses_a_mail(smtp_server):
    _send(smtp_server, _message("alice@example.org", "A passkey was added", "Hello alice,\n\nIt was added.\n"))

    mail = smtp_server.wait_for(to="Alice@Example.org", subject_contains="passkey")

    assert mail.subject == "A passkey was added"
    assert mail.to == ["alice@example.org"]
    assert mail.rcpt_tos == ["alice@example.org"]
    assert mail.mail_from == "ward@example.org"
    assert mail.text == "Hello alice,\n\nIt was added.\n"
    assert mail.html is None
    assert mail.tls is False
    assert mail in smtp_server.messages


def test_smtp_fixture_returns_each_mail_once_and_times_out_clearly(smtp_server):
    _send(smtp_server, _message("bob@example.org", "Code 1", "first"))
    _send(smtp_server, _message("bob@example.org", "Code 2", "second", html="<p>second</p>"))

    first = smtp_server.wait_for(to="bob@example.org")
    second = smtp_server.wait_for(to="bob@example.org")

    assert (first.text.strip(), second.text.strip()) == ("first", "second")
    assert second.html is not None and "<p>second</p>" in second.html
    with pytest.raises(AssertionError, match="no mail to='bob@example.org'"):
        smtp_server.wait_for(to="bob@example.org", timeout=0.3)


def test_smtp_server_can_require_starttls(ward_server):
    # Reuse ward's generated certificate (CN/SAN localhost, signed by its local CA).
    tls_dir = ward_server.data_dir / "tls"
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tls_dir / "server.pem", tls_dir / "server.key")
    client_context = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))

    with SmtpServer(starttls_context=server_context) as server:
        with smtplib.SMTP("localhost", server.port, timeout=10) as client:
            with pytest.raises(smtplib.SMTPSenderRefused, match="STARTTLS"):
                client.send_message(_message("carol@example.org", "plain", "refused"))
        with smtplib.SMTP("localhost", server.port, timeout=10) as client:
            client.starttls(context=client_context)
            client.send_message(_message("carol@example.org", "over TLS", "accepted"))

        mail = server.wait_for(to="carol@example.org")
        assert mail.subject == "over TLS"
        assert mail.tls is True
        assert len(server.messages) == 1
