"""A tiny web application protected by the hosted prompt, written the way Duo's own Web SDK v4
demo is: the official `duo_universal` package, unchanged, behind Python's standard http.server.

    app = DuoApp(client_id, client_secret, f"localhost:{ward_port}", ca_certs=ca_path, name="Expenses").start()
    browser.goto(f"{app.url}/login?username=alice")   # → Ward's prompt → back to /duo-callback
    app.callbacks[-1].claims["auth_result"]["result"]  # "allow"
    app.stop()

Routes (plain HTTP on 127.0.0.1, addressed as http://localhost:PORT):

* `/login?username=U`: `health_check()`, a fresh `generate_state()` remembered in this browser's
  session (a cookie naming server-side state), then a 302 to `create_auth_url(U, state)`.
* `/duo-callback?duo_code=…&state=…`: the state must be the one this session was given (else
  "state mismatch" and no exchange); then `exchange_authorization_code_for_2fa_result` and a
  page with the claims as JSON in `<pre id="result">`. `?error=…` callbacks are shown and
  recorded too.

Every callback is recorded in `app.callbacks` (a `Callback`), and `app.exchanges` counts the
calls to the token endpoint, so a test can see what the application did, not only the page.
"""

from __future__ import annotations

import html
import json
import secrets
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import duo_universal

SESSION_COOKIE = "app_session"


@dataclass
class Callback:
    """One request to /duo-callback and what the application made of it."""

    kind: str  # "result", "state_mismatch", "duo_exception" or "error" (an OAuth error redirect)
    username: str | None
    state: str | None
    code: str | None = None
    claims: dict[str, Any] | None = None
    error: str | None = None


class DuoApp:
    """The application: one `duo_universal.Client`, one HTTP server thread."""

    def __init__(self, client_id: str, client_secret: str, api_host: str, *, ca_certs: str, name: str = "") -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_host = api_host
        self.name = name  # the application's name in Ward, for the tests' checks
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.app = self  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.url = f"http://localhost:{self.port}"
        self.redirect_uri = f"{self.url}/duo-callback"
        self.client = duo_universal.Client(
            client_id, client_secret, api_host, self.redirect_uri, duo_certs=ca_certs
        )
        self.callbacks: list[Callback] = []
        self.exchanges = 0
        # Session id → {"username", "state"}: what a login started and the callback must match.
        self.sessions: dict[str, dict[str, str]] = {}
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> DuoApp:
        self._thread = threading.Thread(target=self.server.serve_forever, name="duo-app", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def login_url(self, username: str) -> str:
        return f"{self.url}/login?" + urllib.parse.urlencode({"username": username})

    def last(self, kind: str | None = None) -> Callback:
        with self.lock:
            matching = [c for c in self.callbacks if kind is None or c.kind == kind]
        assert matching, f"the application recorded no {kind or ''} callback: {self.callbacks}"
        return matching[-1]

    # -- the two routes ---------------------------------------------------------------------

    def login(self, session: str, username: str) -> tuple[int, dict[str, str], str]:
        try:
            self.client.health_check()
        except duo_universal.DuoException as error:
            return 503, {}, _page("Ward is unavailable", f'<p id="error">{html.escape(str(error))}</p>')
        state = self.client.generate_state()
        with self.lock:
            self.sessions[session] = {"username": username, "state": state}
        return 302, {"Location": self.client.create_auth_url(username, state)}, ""

    def callback(self, session: str, query: dict[str, str]) -> tuple[int, str]:
        state = query.get("state") or ""
        with self.lock:
            started = self.sessions.get(session)
            matches = started is not None and secrets.compare_digest(state.encode(), started["state"].encode())
            if matches:
                # A state is good for one callback: a reload or a replay finds none.
                del self.sessions[session]
        username = started["username"] if started else None
        if not matches:
            self._record(Callback("state_mismatch", username, state, code=query.get("duo_code")))
            return 400, _page("Sign-in failed", '<p id="error">state mismatch</p>')
        if "error" in query:
            message = f"{query['error']}: {query.get('error_description', '')}"
            self._record(Callback("error", username, state, error=message))
            return 403, _page("Sign-in cancelled", f'<p id="error">{html.escape(message)}</p>')
        code = query.get("duo_code", "")
        with self.lock:
            self.exchanges += 1
        try:
            claims = self.client.exchange_authorization_code_for_2fa_result(code, username)
        except duo_universal.DuoException as error:
            self._record(Callback("duo_exception", username, state, code=code, error=str(error)))
            return 502, _page("Sign-in failed", f'<p id="error">{html.escape(str(error))}</p>')
        self._record(Callback("result", username, state, code=code, claims=claims))
        body = html.escape(json.dumps(claims, indent=2, sort_keys=True))
        return 200, _page(f"Signed in: {claims['auth_result']['result']}", f'<pre id="result">{body}</pre>')

    def _record(self, callback: Callback) -> None:
        with self.lock:
            self.callbacks.append(callback)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        app: DuoApp = self.server.app  # type: ignore[attr-defined]
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        session = self._session()
        headers: dict[str, str] = {}
        if url.path == "/login" and query.get("username"):
            if session is None:
                session = secrets.token_urlsafe(16)
                headers["Set-Cookie"] = f"{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax"
            status, extra, body = app.login(session, query["username"])
            headers.update(extra)
        elif url.path == "/duo-callback":
            status, body = app.callback(session or "", query)
        else:
            status, body = 404, _page("Not found", "")
        self._send(status, headers, body)

    def _session(self) -> str | None:
        for pair in self.headers.get("Cookie", "").split(";"):
            name, _, value = pair.strip().partition("=")
            if name == SESSION_COOKIE and value:
                return value
        return None

    def _send(self, status: int, headers: dict[str, str], body: str) -> None:
        data = body.encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass
