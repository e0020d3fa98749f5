"""The hosted prompt (Duo Web SDK v4) end to end: a small web application built on the official,
unmodified `duo_universal` package (duo_app.py) sends a real browser (Debian Chromium with a
CDP virtual authenticator) to Ward's prompt and trades the code it gets back, against a real
`ward serve` over TLS, on SQLite and on PostgreSQL.

Covered: a passkey from the portal, a passkey set up inside the prompt, Verified Push answered
by `ward-authenticator` (right number, wrong number, deny), a code from an authenticator app
(wrong, then right), the method the user last chose offered first, a user the policy denies sent
straight back, cancelling, a tampered `state`, a replayed code, codes traded by the wrong client
or for the wrong redirect_uri or nonce, invalid request objects (an error page, never a
redirect), the health check, and the pages' security headers. Each prompt
page is saved as a screenshot under target/test-artifacts/screenshots/prompt-<backend>-*.png.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse

import duo_universal
import jwt
import pytest
import requests

from browser import screenshot
from conftest import WardServer, make_user_with_totp, run_ward, unique_username, ward_cli, write_config
from duo_app import DuoApp
from test_portal import enrol_url
from test_push import Authenticator, activation_url

APP_NAME = "Expense Reports"
STRICT_APP_NAME = "Payroll"
ORG = "Example Corp"

# duo_universal signs with 40-byte secrets: PyJWT warns on every call (specs/duo-protocol.md §6.2).
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

# auth_context.factor, as Ward names each method.
PASSKEY = "WebAuthn Credential"
PUSH = "Verified Duo Push"
PASSCODE = "Passcode"

# The choices on a prompt page, in the order shown (the push panel is not a choice).
METHODS_JS = """() => [...document.querySelectorAll('.methods > *')].flatMap((e) =>
    e.matches('[data-prompt-passkey]') ? ['passkey'] : e.matches('[data-prompt-push]') ? ['push']
    : e.matches('form.passcode') ? ['passcode'] : [])"""


@pytest.fixture(scope="module")
def prompt_server(ward_bin, backend, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"prompt-{backend.name}")
    config = write_config(
        root / "ward.toml",
        database_url=backend.database_url,
        extra={"branding": {"organisation": ORG}},
    )
    server = WardServer(ward_bin, root / "data", config, name=f"prompt-{backend.name}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def start_app(server: WardServer, name: str, *flags: str):
    integration = ward_cli(server, "integration", "create", "--name", name, "--kind", "web-sdk", *flags)
    assert len(integration["client_id"]) == 20 and len(integration["client_secret"]) == 40, integration
    return DuoApp(
        integration["client_id"],
        integration["client_secret"],
        f"localhost:{server.port}",
        ca_certs=server.ca_certs,
        name=name,
    ).start()


@pytest.fixture(scope="module")
def app(prompt_server):
    """The application with the default policy: passkeys, push and codes; new users enrol."""
    application = start_app(prompt_server, APP_NAME)
    yield application
    application.stop()


@pytest.fixture(scope="module")
def strict_app(prompt_server):
    """An application that accepts passkeys and security keys only."""
    application = start_app(prompt_server, STRICT_APP_NAME, "--require-phishing-resistant")
    yield application
    application.stop()


@pytest.fixture
def origin(prompt_server) -> str:
    return f"https://localhost:{prompt_server.port}"


def shot(page, backend, name: str) -> None:
    screenshot(page, f"prompt-{backend.name}-{name}")


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def open_prompt(page, app: DuoApp, origin: str, username: str) -> None:
    """The application's /login: it must land on Ward's prompt for this app and user."""
    response = page.goto(app.login_url(username))
    assert response["status"] == 200, response
    assert page.url.startswith(f"{origin}/oauth/v1/authorize?"), page.url
    page.wait_for("section[data-prompt]")
    assert page.text("section[data-prompt] h1") == app.name
    assert page.text("section[data-prompt] .lead strong") == username


def methods(page) -> list[str]:
    return page.evaluate(METHODS_JS)


def callback_regex(app: DuoApp) -> re.Pattern[str]:
    return re.compile("^" + re.escape(app.redirect_uri) + r"\?")


def back_at_app(page, app: DuoApp, seen: int, *, timeout: float = 20):
    """Wait for the browser to land on the application's callback; return what the app recorded
    (exactly one new callback since `seen` callbacks)."""
    url = page.wait_for_url(callback_regex(app), timeout=timeout)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert set(query) in ({"duo_code", "state"}, {"error", "error_description", "state"}), url
    assert len(app.callbacks) == seen + 1, app.callbacks[seen:]
    callback = app.callbacks[-1]
    assert callback.state == query["state"], (callback, url)
    return callback


def claims_on_page(page) -> dict:
    return json.loads(page.text("pre#result"))


def assert_allowed(callback, app: DuoApp, username: str, factor: str) -> dict:
    assert callback.kind == "result", callback
    claims = callback.claims
    assert claims["preferred_username"] == username, claims
    assert claims["sub"] == username, claims
    assert claims["aud"] == app.client_id, claims
    assert claims["auth_result"]["result"] == "allow", claims
    assert claims["auth_result"]["status"] == "allow", claims
    context = claims["auth_context"]
    assert context["factor"] == factor, context
    assert context["result"] == "success", context
    assert context["user"]["name"] == username, context
    assert context["user"]["key"], context
    assert context["application"] == {"key": app.client_id, "name": app.name}, context
    assert context["access_device"]["ip"] == "127.0.0.1", context
    assert isinstance(context["timestamp"], int) and abs(context["timestamp"] - time.time()) < 120, context
    assert context["txid"], context
    return claims


def assert_denied(callback, username: str) -> dict:
    assert callback.kind == "result", callback
    claims = callback.claims
    assert claims["preferred_username"] == username, claims
    assert claims["auth_result"]["result"] == "deny", claims
    assert claims["auth_result"]["status"] != "allow", claims
    assert claims["auth_context"]["result"] == "denied", claims
    return claims


def audit_events(server: WardServer) -> list[dict]:
    out = run_ward(server, "audit", "export").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def prompt_auth_event(server: WardServer, txid: str) -> dict:
    matching = [e for e in audit_events(server) if e["action"] == "prompt.auth" and e["details"].get("txid") == txid]
    assert len(matching) == 1, matching
    return matching[0]


def assert_no_console_errors(page) -> None:
    """No script error and no CSP violation; HTTP error statuses are checked where expected."""
    errors = [e for e in page.console_errors() if "Failed to load resource" not in e["text"]]
    assert not errors, errors


def request_object(app: DuoApp, username: str, *, secret: str | None = None, **overrides) -> str:
    """An authorize URL built by hand with the claims `duo_universal.Client.create_auth_url` uses,
    signed with PyJWT (`secret`: another key; `overrides`: claims to change)."""
    client_id = app.client_id
    claims = {
        "scope": "openid",
        "redirect_uri": app.redirect_uri,
        "client_id": client_id,
        "iss": client_id,
        "aud": f"https://{app.api_host}",
        "exp": time.time() + 300,
        "state": app.client.generate_state(),
        "response_type": "code",
        "duo_uname": username,
        "use_duo_code_attribute": True,
    }
    claims.update(overrides)
    token = jwt.encode(claims, secret or app.client_secret, algorithm="HS512")
    query = urllib.parse.urlencode({"response_type": "code", "client_id": client_id, "request": token})
    return f"https://{app.api_host}/oauth/v1/authorize?{query}"


def add_portal_passkey(page, server: WardServer, origin: str, username: str) -> None:
    """The portal's enrolment link, then a passkey on the page's virtual authenticator."""
    page.goto(enrol_url(server, origin, username))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/portal\?done=enrolled$"))
    page.goto(f"{origin}/portal/passkeys/new")
    page.fill("#name", "Laptop")
    page.click("form[data-passkey-register] button[type=submit]")
    page.wait_for_url(re.compile(r"/portal\?done=passkey$"))


def push_user(server: WardServer, tmp_path, *, totp: bool = False):
    """A user with a Verified Push device (`ward-authenticator`), and a TOTP app when asked."""
    if totp:
        user = make_user_with_totp(server, username=unique_username("prompt"))
        username = user.username
    else:
        user = None
        username = unique_username("prompt")
        ward_cli(server, "user", "create", username)
    device = Authenticator(tmp_path / f"{username}.json")
    device.activate(activation_url(server, username))
    return username, device, user


def push_from_prompt(page, device: Authenticator, username: str) -> tuple[dict, str]:
    """Click the push button; return the request the device got and the number the page shows."""
    page.click("[data-prompt-push]")
    page.wait_for("[data-push-panel]")
    number = page.text("[data-push-number]")
    assert re.fullmatch(r"\d{2,6}", number), number
    pending = [p for p in device.pending() if p["username"] == username]
    assert len(pending) == 1, pending
    assert pending[0]["number_required"] is True, pending
    return pending[0], number


# ---------------------------------------------------------------------------------------------
# The back channel without a browser
# ---------------------------------------------------------------------------------------------


def test_health_check_needs_the_right_client_secret(prompt_server, app):
    answer = app.client.health_check()
    assert answer["stat"] == "OK", answer
    assert isinstance(answer["response"]["timestamp"], int), answer
    assert abs(answer["response"]["timestamp"] - time.time()) < 60, answer

    for candidate in (
        client_like(app, prompt_server, client_secret="x" * 40),
        client_like(app, prompt_server, client_id="D" * 20),
    ):
        with pytest.raises(duo_universal.DuoException) as error:
            candidate.health_check()
        assert "invalid_client" in str(error.value), error.value


def client_like(app: DuoApp, server: WardServer, **changes) -> duo_universal.Client:
    """A `duo_universal.Client` configured like the application's, with some arguments changed."""
    args = {
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "host": app.api_host,
        "redirect_uri": app.redirect_uri,
        "duo_certs": server.ca_certs,
    }
    return duo_universal.Client(**{**args, **changes})


def redirect_of(url: str, server: WardServer) -> dict[str, str]:
    """Open an authorize URL without a browser; Ward must redirect at once (a denied user).
    Returns the query it sends back to the application."""
    response = requests.get(url, allow_redirects=False, verify=server.ca_certs, timeout=30)
    assert response.status_code == 302, (response.status_code, response.text[:500])
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(response.headers["location"]).query))


def test_codes_are_bound_to_client_redirect_and_nonce(prompt_server, app, strict_app):
    """Codes from denied users (Ward redirects those at once), traded the wrong ways."""
    stranger = unique_username("nobody")

    def code_for(client: duo_universal.Client, **kw) -> str:
        url = client.create_auth_url(stranger, client.generate_state(), **kw)
        return redirect_of(url, prompt_server)["duo_code"]

    # Another application's client cannot trade it, even with the same redirect_uri.
    other = client_like(app, prompt_server, client_id=strict_app.client_id, client_secret=strict_app.client_secret)
    with pytest.raises(duo_universal.DuoException) as error:
        other.exchange_authorization_code_for_2fa_result(code_for(app.client), stranger)
    assert "invalid_grant" in str(error.value), error.value

    # The same client with another redirect_uri cannot either.
    elsewhere = client_like(app, prompt_server, redirect_uri=app.redirect_uri + "/other")
    with pytest.raises(duo_universal.DuoException) as error:
        elsewhere.exchange_authorization_code_for_2fa_result(code_for(app.client), stranger)
    assert "invalid_grant" in str(error.value), error.value

    # A nonce comes back in the id_token, and the client checks it.
    nonce = "n" + app.client.generate_state()
    code = code_for(app.client, nonce=nonce)
    claims = app.client.exchange_authorization_code_for_2fa_result(code, stranger, nonce=nonce)
    assert claims["nonce"] == nonce and claims["auth_result"]["result"] == "deny", claims
    with pytest.raises(duo_universal.DuoException, match="nonce is invalid"):
        app.client.exchange_authorization_code_for_2fa_result(
            code_for(app.client, nonce=nonce), stranger, nonce="m" + app.client.generate_state()
        )

    # use_duo_code_attribute=False (Go's option): the code comes back as `code=`.
    plain = client_like(app, prompt_server, use_duo_code_attribute=False)
    query = redirect_of(plain.create_auth_url(stranger, plain.generate_state()), prompt_server)
    assert set(query) == {"code", "state"}, query
    claims = plain.exchange_authorization_code_for_2fa_result(query["code"], stranger)
    assert claims["preferred_username"] == stranger, claims


# ---------------------------------------------------------------------------------------------
# Passkeys
# ---------------------------------------------------------------------------------------------


def test_passkey_from_the_portal_signs_in_to_the_app(page, prompt_server, app, origin, backend):
    username = unique_username("prompt")
    ward_cli(prompt_server, "user", "create", username)
    authenticator = page.add_authenticator()
    add_portal_passkey(page, prompt_server, origin, username)
    assert len(page.credentials(authenticator)) == 1

    seen = len(app.callbacks)
    open_prompt(page, app, origin, username)
    assert methods(page) == ["passkey"]
    assert "primary" in page.attr("[data-prompt-passkey]", "class")
    # The prompt's security headers: strict CSP that still lets forms go back to the app.
    headers = page.response_headers()
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp, csp
    assert "frame-ancestors 'none'" in csp, csp
    form_action = re.search(r"form-action ([^;]*)", csp)
    assert form_action and form_action.group(1).split() == ["'self'", app.url], csp
    assert "unsafe-inline" not in csp, csp
    assert headers["strict-transport-security"].startswith("max-age="), headers
    assert headers["cache-control"] == "no-store", headers
    assert headers["x-frame-options"] == "DENY", headers
    shot(page, backend, "01-choose-passkey")

    page.click("[data-prompt-passkey]")
    callback = back_at_app(page, app, seen)
    claims = assert_allowed(callback, app, username, PASSKEY)
    assert claims["auth_context"]["auth_device"]["name"] == "Laptop", claims
    assert claims_on_page(page) == claims
    assert isinstance(claims["iat"], int) and isinstance(claims["exp"], int), claims
    assert isinstance(claims["auth_time"], int), claims
    shot(page, backend, "02-back-at-app")

    # Audited once, as an allow by this integration for this user.
    event = prompt_auth_event(prompt_server, claims["auth_context"]["txid"])
    assert event["outcome"] == "allow", event
    assert event["actor"].endswith(app.client_id), event
    assert event["target"] == claims["auth_context"]["user"]["key"], event
    assert event["details"]["factor"] == "passkey", event
    starts = [e for e in audit_events(prompt_server) if e["action"] == "prompt.start" and e["target"] == username]
    assert len(starts) == 1, starts

    # The code was traded once; a second trade is refused.
    with pytest.raises(duo_universal.DuoException) as error:
        app.client.exchange_authorization_code_for_2fa_result(callback.code, username)
    assert "invalid_grant" in str(error.value), error.value
    assert_no_console_errors(page)


def test_a_user_without_a_factor_sets_up_a_passkey_inside_the_prompt(page, prompt_server, app, origin, backend):
    username = unique_username("prompt")
    ward_cli(prompt_server, "user", "create", username)
    authenticator = page.add_authenticator()

    seen = len(app.callbacks)
    open_prompt(page, app, origin, username)
    page.wait_for("[data-prompt-enrol]")
    assert methods(page) == []
    shot(page, backend, "10-enrol")
    page.click("[data-prompt-enrol]")
    callback = back_at_app(page, app, seen)
    assert_allowed(callback, app, username, PASSKEY)
    assert callback.claims["auth_context"]["reason"] == "new_enrollment", callback.claims
    [credential] = page.credentials(authenticator)
    assert credential["rpId"] == "localhost", credential

    # Next time the new passkey is offered, and set-up inside the prompt is closed.
    seen = len(app.callbacks)
    open_prompt(page, app, origin, username)
    assert methods(page) == ["passkey"]
    assert page.count("[data-prompt-enrol]") == 0
    context = page.attr("section[data-prompt]", "data-context")
    status = page.evaluate(
        """async (context) => (await fetch('/prompt/api/enrol/start', {method: 'POST',
              headers: {'Content-Type': 'application/json'}, body: JSON.stringify({context})})).status""",
        context,
    )
    assert status == 403, status
    page.click("[data-prompt-passkey]")
    callback = back_at_app(page, app, seen)
    assert_allowed(callback, app, username, PASSKEY)
    assert len(page.credentials(authenticator)) == 1
    assert_no_console_errors(page)


def test_a_refused_set_up_records_no_decision(page, prompt_server, app, origin):
    """Set-up inside the prompt is only for users the prompt would enrol: one disabled while the
    page is open is refused, and no decision is recorded for a sign-in that did not end."""
    username = unique_username("prompt")
    user_id = ward_cli(prompt_server, "user", "create", username)["user_id"]
    authenticator = page.add_authenticator()
    seen = len(app.callbacks)
    open_prompt(page, app, origin, username)
    page.wait_for("[data-prompt-enrol]")
    run_ward(prompt_server, "user", "disable", username)

    page.click("[data-prompt-enrol]")
    page.wait_for("section[data-prompt] [data-status].error")
    assert "may not enrol" in page.text("section[data-prompt] [data-status]")
    assert page.credentials(authenticator) == []
    assert len(app.callbacks) == seen
    decisions = [e for e in audit_events(prompt_server) if e["action"] == "prompt.auth" and e["target"] == user_id]
    assert decisions == [], decisions


# ---------------------------------------------------------------------------------------------
# Verified Push and codes
# ---------------------------------------------------------------------------------------------


def test_push_and_codes_and_the_last_method_first(page, prompt_server, app, origin, backend, tmp_path):
    username, device, totp_user = push_user(prompt_server, tmp_path, totp=True)

    # Never used: push before codes. A code from the app signs in.
    seen = len(app.callbacks)
    open_prompt(page, app, origin, username)
    assert methods(page) == ["push", "passcode"]
    assert "primary" in page.attr("[data-prompt-push]", "class")
    page.fill("#passcode", totp_user.code())
    page.click("form.passcode button[type=submit]")
    assert_allowed(back_at_app(page, app, seen), app, username, PASSCODE)

    # The code was the last method: it comes first now. Push this time, with the right number.
    seen = len(app.callbacks)
    open_prompt(page, app, origin, username)
    assert methods(page) == ["passcode", "push"]
    assert "primary" not in page.attr("[data-prompt-push]", "class")
    request, number = push_from_prompt(page, device, username)
    assert request["ip"] == "127.0.0.1", request
    shot(page, backend, "20-push-number")
    device.answer(request["txid"], "approve", number=number)
    callback = back_at_app(page, app, seen)
    claims = assert_allowed(callback, app, username, PUSH)
    assert claims["auth_context"]["txid"] == request["txid"], claims
    assert claims["auth_context"]["auth_device"]["name"], claims
    assert prompt_auth_event(prompt_server, request["txid"])["details"]["factor"] == "push"

    # And now push is first again.
    open_prompt(page, app, origin, username)
    assert methods(page) == ["push", "passcode"]
    assert "primary" in page.attr("[data-prompt-push]", "class")
    assert_no_console_errors(page)


def test_a_push_with_the_wrong_number_or_denied_is_a_deny(page, prompt_server, app, origin, tmp_path):
    username, device, _ = push_user(prompt_server, tmp_path)

    seen = len(app.callbacks)
    open_prompt(page, app, origin, username)
    assert methods(page) == ["push"]
    request, number = push_from_prompt(page, device, username)
    wrong = str((int(number) + 1) % 10 ** len(number)).zfill(len(number))
    device.answer(request["txid"], "approve", number=wrong)
    claims = assert_denied(back_at_app(page, app, seen), username)
    assert claims["auth_context"]["factor"] == PUSH, claims

    seen = len(app.callbacks)
    open_prompt(page, app, origin, username)
    request, _ = push_from_prompt(page, device, username)
    device.answer(request["txid"], "deny")
    claims = assert_denied(back_at_app(page, app, seen), username)
    assert claims["auth_context"]["txid"] == request["txid"], claims
    assert prompt_auth_event(prompt_server, request["txid"])["outcome"] == "deny"
    assert_no_console_errors(page)


def test_a_wrong_code_keeps_the_prompt_and_a_right_one_signs_in(page, prompt_server, app, origin, backend):
    user = make_user_with_totp(prompt_server, username=unique_username("prompt"))

    seen = len(app.callbacks)
    open_prompt(page, app, origin, user.username)
    assert methods(page) == ["passcode"]
    page.fill("#passcode", user.wrong_code())
    page.click("form.passcode button[type=submit]")
    page.wait_for("section[data-prompt] p.error")
    assert page.last_response()["status"] == 401
    assert page.url == f"{origin}/prompt/passcode", page.url
    assert "did not work" in page.text("section[data-prompt] p.error")
    assert page.text("section[data-prompt] .lead strong") == user.username
    assert len(app.callbacks) == seen
    shot(page, backend, "30-passcode-wrong")

    page.fill("#passcode", user.code())
    page.click("form.passcode button[type=submit]")
    assert_allowed(back_at_app(page, app, seen), app, user.username, PASSCODE)
    assert_no_console_errors(page)


def test_cancel_goes_back_with_access_denied(page, prompt_server, app, origin):
    user = make_user_with_totp(prompt_server, username=unique_username("prompt"))
    seen = len(app.callbacks)
    open_prompt(page, app, origin, user.username)
    page.click("form.cancel button")
    callback = back_at_app(page, app, seen)
    assert callback.kind == "error", callback
    assert callback.error.startswith("access_denied:"), callback
    assert app.exchanges == sum(1 for c in app.callbacks if c.kind in ("result", "duo_exception"))


# ---------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------


def test_users_the_policy_denies_are_sent_straight_back(page, prompt_server, app, strict_app, origin):
    # Only codes, for an application that accepts passkeys only.
    user = make_user_with_totp(prompt_server, username=unique_username("prompt"))
    seen = len(strict_app.callbacks)
    page.goto(strict_app.login_url(user.username))
    claims = assert_denied(back_at_app(page, strict_app, seen), user.username)
    assert claims["auth_context"]["application"]["key"] == strict_app.client_id, claims
    assert claims_on_page(page) == claims
    assert prompt_auth_event(prompt_server, claims["auth_context"]["txid"])["outcome"] == "deny"

    # An unknown user, for the ordinary application.
    stranger = unique_username("nobody")
    seen = len(app.callbacks)
    page.goto(app.login_url(stranger))
    assert_denied(back_at_app(page, app, seen), stranger)

    # The same TOTP user is offered codes by the ordinary application.
    open_prompt(page, app, origin, user.username)
    assert methods(page) == ["passcode"]
    assert_no_console_errors(page)


def test_a_tampered_state_is_refused_and_state_is_echoed_verbatim(page, prompt_server, app, origin, backend):
    user = make_user_with_totp(prompt_server, username=unique_username("prompt"))
    seen = len(app.callbacks)
    open_prompt(page, app, origin, user.username)
    request = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)["request"][0]
    sent_state = jwt.decode(request, options={"verify_signature": False})["state"]

    # Answer the prompt outside the browser to read where Ward sends it back.
    context = page.attr("section[data-prompt]", "data-context")
    answer = requests.post(
        f"{origin}/prompt/passcode",
        data={"context": context, "passcode": user.code()},
        allow_redirects=False,
        verify=prompt_server.ca_certs,
        timeout=30,
    )
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(app.redirect_uri + "?"), location
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert query["state"] == sent_state, (query, sent_state)

    # The state changed on the way: the application refuses and never trades the code.
    exchanges = app.exchanges
    tampered = query["state"][:-1] + ("A" if query["state"][-1] != "A" else "B")
    page.goto(f"{app.redirect_uri}?" + urllib.parse.urlencode({"duo_code": query["duo_code"], "state": tampered}))
    assert "state mismatch" in page.text("#error")
    assert app.callbacks[-1].kind == "state_mismatch", app.callbacks[-1]
    assert app.exchanges == exchanges
    shot(page, backend, "40-state-mismatch")

    # The untampered callback still works, so the code was not used.
    page.goto(location)
    assert_allowed(app.callbacks[-1], app, user.username, PASSCODE)
    assert len(app.callbacks) == seen + 2

    # A state with characters that need escaping comes back exactly as sent (here on a deny,
    # which Ward redirects at once).
    odd_state = "state with spaces & symbols: +/=?#%20 é~" + "x" * 8
    query = redirect_of(app.client.create_auth_url(unique_username("nobody"), odd_state), prompt_server)
    assert query["state"] == odd_state, query


def test_invalid_request_objects_get_an_error_page_and_no_redirect(page, prompt_server, app, origin, backend):
    user = make_user_with_totp(prompt_server, username=unique_username("prompt"))

    # The hand-built request object is good as built: the prompt opens.
    response = page.goto(request_object(app, user.username))
    assert response["status"] == 200, response
    assert methods(page) == ["passcode"]

    seen = len(app.callbacks)
    for name, url in [
        ("expired", request_object(app, user.username, exp=time.time() - 600)),
        ("wrong-secret", request_object(app, user.username, secret="y" * 40)),
        ("wrong-audience", request_object(app, user.username, aud="https://elsewhere.example")),
        ("short-state", request_object(app, user.username, state="too-short")),
    ]:
        response = page.goto(url)
        assert response["status"] == 400, (name, response)
        assert response["url"] == url and page.url == url, (name, response)
        assert "not valid" in page.text("h1"), name
        assert page.count("section[data-prompt]") == 0, name
        assert "form-action 'self';" in page.response_headers()["content-security-policy"], name
        shot(page, backend, f"50-error-{name}")
    assert len(app.callbacks) == seen
    assert_no_console_errors(page)
