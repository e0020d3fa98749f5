"""Python side of the browser bridge (tests/browser/driver.mjs): Debian's Chromium via playwright-core.

    page = browser.new_page()                      # `browser`: the session fixture in conftest.py
    authenticator = page.add_authenticator()       # before navigating, for WebAuthn
    page.goto(f"https://localhost:{server.port}/portal")
    page.click("button#register")
    assert len(page.credentials(authenticator)) == 1
    screenshot(page, "portal-registered")

Each `Page` is a fresh browser context (own cookies and storage), opened with
ignoreHTTPSErrors so ward's local CA needs no trust setup. Selectors are Playwright selectors
(CSS, `text=...`, `role=button[name="Save"]`, `... >> nth=0`); actions on a selector that
matches several elements fail (strict mode). Timeouts are in seconds (default 10).
A driver error raises `BrowserError` with the driver's message (op, selector, url, call log).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DRIVER_DIR = REPO_ROOT / "tests" / "browser"
DRIVER = DRIVER_DIR / "driver.mjs"
CHROMIUM = Path(os.environ.get("WARD_CHROMIUM") or "/usr/bin/chromium")
SCREENSHOT_DIR = REPO_ROOT / "target" / "test-artifacts" / "screenshots"

START_TIMEOUT_SECS = 60
# Added to each op's own timeout before the Python side gives up on the driver.
RESPONSE_GRACE_SECS = 30
DEFAULT_OP_TIMEOUT_SECS = 10
STDERR_KEEP_LINES = 400

_JS_REGEX_FLAGS = {re.IGNORECASE: "i", re.MULTILINE: "m", re.DOTALL: "s"}


class BrowserError(RuntimeError):
    """An op failed in the driver, or the driver itself died or hung."""


def unavailable_reason() -> str | None:
    """Why browser tests cannot run here, or None when node, Chromium and playwright-core are present."""
    if shutil.which("node") is None:
        return "browser tests need node (Node.js 20+) on PATH"
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium chromium-driver)"
    if not (DRIVER_DIR / "node_modules" / "playwright-core" / "package.json").is_file():
        return "browser tests need tests/browser/node_modules: run `npm ci` in tests/browser (scripts/test does)"
    return None


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "screenshot"


class Browser:
    """One `node driver.mjs` process (one Chromium); open pages with `new_page()`."""

    def __init__(self, *, node: str = "node", driver: Path = DRIVER) -> None:
        self._cmd = [node, str(driver)]
        self._proc: subprocess.Popen[str] | None = None
        self._responses: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: list[str] = []
        self._stderr_lock = threading.Lock()
        self._call_lock = threading.Lock()
        self._next_id = 1
        self.version: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Browser:
        env = dict(os.environ, WARD_CHROMIUM=str(CHROMIUM))
        self._proc = subprocess.Popen(
            self._cmd,
            cwd=DRIVER_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=env,
        )
        threading.Thread(target=self._read_stdout, args=(self._proc,), name="browser-out", daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(self._proc,), name="browser-err", daemon=True).start()
        try:
            self.version = self.call("ping", timeout=START_TIMEOUT_SECS)["version"]
        except BrowserError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Ask the driver to close the browser, then make sure the process is gone. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self.call("close", timeout=10)
            except BrowserError:
                pass
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._proc = None

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _read_stdout(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                self._responses.put(json.loads(line))
            except ValueError:
                self._log(f"(non-JSON on stdout) {line}")
        self._responses.put(None)  # EOF: the driver exited

    def _read_stderr(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self._log(line.rstrip("\n"))

    def _log(self, line: str) -> None:
        with self._stderr_lock:
            self._stderr.append(line)
            del self._stderr[:-STDERR_KEEP_LINES]

    def log_text(self) -> str:
        """The driver's recent stderr (its logs and Chromium's)."""
        with self._stderr_lock:
            return "\n".join(self._stderr)

    # -- requests ----------------------------------------------------------------------------

    def call(self, op: str, *, timeout: float | None = None, **args: Any) -> Any:
        """Send one request and return its result; `timeout` (s) also bounds the op in the driver."""
        __tracebackhide__ = True  # pytest: show the test's line, not this plumbing
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise BrowserError(f"{op}: the browser driver is not running")
        payload = {key: value for key, value in args.items() if value is not None}
        wait = (timeout or DEFAULT_OP_TIMEOUT_SECS) + RESPONSE_GRACE_SECS
        if timeout is not None and op != "ping" and op != "close":
            payload["timeout"] = _ms(timeout)
        with self._call_lock:
            request_id = self._next_id
            self._next_id += 1
            try:
                proc.stdin.write(json.dumps({"id": request_id, "op": op, **payload}) + "\n")
                proc.stdin.flush()
            except (BrokenPipeError, OSError) as error:
                raise BrowserError(f"{op}: the browser driver is gone ({error}):\n{self.log_text()}") from None
            while True:
                try:
                    response = self._responses.get(timeout=wait)
                except queue.Empty:
                    raise BrowserError(f"{op}: no answer from the browser driver within {wait}s:\n{self.log_text()}") from None
                if response is None:
                    if op == "close":
                        return None
                    raise BrowserError(
                        f"{op}: the browser driver exited ({proc.poll()}):\n{self.log_text()}"
                    )
                if response.get("id") == request_id:
                    break
                self._log(f"(stray response) {response}")
        if not response.get("ok"):
            raise BrowserError(response.get("error") or f"{op} failed without a message")
        return response.get("result")

    def new_page(
        self,
        *,
        viewport: tuple[int, int] | None = None,
        locale: str | None = None,
        javascript: bool = True,
    ) -> Page:
        """A fresh browser context with one page in it (ignoreHTTPSErrors)."""
        page_id = self.call(
            "newPage",
            viewport={"width": viewport[0], "height": viewport[1]} if viewport else None,
            locale=locale,
            javaScriptEnabled=None if javascript else False,
        )
        return Page(self, page_id)


class Page:
    """One page in its own browser context; every method is one driver op."""

    def __init__(self, browser: Browser, page_id: str) -> None:
        self.browser = browser
        self.id = page_id
        self.closed = False

    def _call(self, op: str, **args: Any) -> Any:
        __tracebackhide__ = True
        return self.browser.call(op, page=self.id, **args)

    # -- WebAuthn virtual authenticators (add before navigating) -------------------------------

    def add_authenticator(self, **options: Any) -> str:
        """A CDP virtual authenticator; defaults: ctap2, internal, resident keys, UV, verified,
        automatic presence. Override any option, e.g. `isUserVerified=False`. Returns its id."""
        return self._call("addAuthenticator", options=options)

    def remove_authenticator(self, authenticator_id: str) -> None:
        self._call("removeAuthenticator", authenticatorId=authenticator_id)

    def credentials(self, authenticator_id: str) -> list[dict[str, Any]]:
        """WebAuthn.getCredentials: credentialId, isResidentCredential, rpId, userHandle, signCount, ..."""
        return self._call("credentials", authenticatorId=authenticator_id)

    def remove_credential(self, authenticator_id: str, credential_id: str) -> None:
        self._call("removeCredential", authenticatorId=authenticator_id, credentialId=credential_id)

    def set_user_verified(self, authenticator_id: str, verified: bool) -> None:
        self._call("setUserVerified", authenticatorId=authenticator_id, isUserVerified=verified)

    def set_presence_simulation(self, authenticator_id: str, enabled: bool) -> None:
        self._call("setPresenceSimulation", authenticatorId=authenticator_id, enabled=enabled)

    def cdp(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Any Chrome DevTools Protocol call on this page's session."""
        return self._call("cdp", method=method, params=params or {})

    # -- navigation --------------------------------------------------------------------------

    def goto(self, url: str, *, timeout: float | None = None, wait_until: str | None = None) -> dict[str, Any]:
        """Navigate; returns {"url": final url, "status": HTTP status or None}."""
        return self._call("goto", url=url, timeout=timeout, waitUntil=wait_until)

    def reload(self, *, timeout: float | None = None) -> dict[str, Any]:
        return self._call("reload", timeout=timeout)

    @property
    def url(self) -> str:
        return self._call("url")

    def wait_for_url(self, pattern: str | re.Pattern[str], *, timeout: float | None = None) -> str:
        """Wait until the URL matches a glob (`"**/portal/**"`) or a compiled regex (searched);
        returns the URL."""
        if isinstance(pattern, re.Pattern):
            flags = "".join(flag for bit, flag in _JS_REGEX_FLAGS.items() if pattern.flags & bit)
            return self._call("waitForUrl", regex=pattern.pattern, flags=flags, timeout=timeout)
        return self._call("waitForUrl", url=pattern, timeout=timeout)

    def wait_for_load_state(self, state: str = "load", *, timeout: float | None = None) -> None:
        self._call("waitForLoadState", state=state, timeout=timeout)

    def last_response(self) -> dict[str, Any]:
        """The last main-frame navigation response: {"url", "status", "headers"} (names lower-case)."""
        return self._call("responseHeaders")

    def response_headers(self) -> dict[str, str]:
        return self.last_response()["headers"]

    # -- actions -----------------------------------------------------------------------------

    def click(self, selector: str, *, timeout: float | None = None, force: bool = False) -> None:
        self._call("click", selector=selector, timeout=timeout, force=force or None)

    def fill(self, selector: str, value: str, *, timeout: float | None = None) -> None:
        self._call("fill", selector=selector, value=value, timeout=timeout)

    def press(self, key: str, selector: str | None = None, *, timeout: float | None = None) -> None:
        """Press a key (`"Enter"`, `"Control+A"`) in `selector`, or on the page when None."""
        self._call("press", key=key, selector=selector, timeout=timeout)

    def check(self, selector: str, checked: bool = True, *, timeout: float | None = None) -> None:
        self._call("check", selector=selector, checked=checked, timeout=timeout)

    def select_option(self, selector: str, values: str | list[str], *, timeout: float | None = None) -> list[str]:
        return self._call("selectOption", selector=selector, values=values, timeout=timeout)

    # -- reading -----------------------------------------------------------------------------

    def text(self, selector: str, *, timeout: float | None = None) -> str:
        """innerText of the one element matching `selector` (waits for it)."""
        return self._call("text", selector=selector, timeout=timeout)

    def texts(self, selector: str) -> list[str]:
        """innerText of every match, now (no waiting)."""
        return self._call("texts", selector=selector)

    def attr(self, selector: str, name: str, *, timeout: float | None = None) -> str | None:
        return self._call("attr", selector=selector, name=name, timeout=timeout)

    def count(self, selector: str) -> int:
        return self._call("count", selector=selector)

    def value(self, selector: str, *, timeout: float | None = None) -> str:
        return self._call("value", selector=selector, timeout=timeout)

    def content(self) -> str:
        return self._call("content")

    def wait_for(self, selector: str, state: str = "visible", *, timeout: float | None = None) -> None:
        """Wait for the first match to be "visible", "hidden", "attached" or "detached"."""
        self._call("waitFor", selector=selector, state=state, timeout=timeout)

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        """A JS expression (`"document.title"`), or a function source called with `arg`
        (`"(n) => n + 1"`); promises are awaited; the result comes back as JSON."""
        return self._call("evaluate", expression=expression, arg=arg)

    def screenshot(self, path: str | Path, *, full_page: bool = True) -> Path:
        self._call("screenshot", path=str(path), fullPage=full_page)
        return Path(path)

    def cookies(self, url: str | None = None) -> list[dict[str, Any]]:
        """The context's cookies: name, value, domain, path, expires, httpOnly, secure, sameSite."""
        return self._call("cookies", url=url)

    def cookie(self, name: str) -> dict[str, Any] | None:
        return next((cookie for cookie in self.cookies() if cookie["name"] == name), None)

    def console_errors(self, *, clear: bool = False) -> list[dict[str, Any]]:
        """Console errors and uncaught page errors since the page opened (CSP violations included):
        [{"kind": "console" | "pageerror", "text", "url", "line"}]."""
        return self._call("consoleErrors", clear=clear or None)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._call("closePage")

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Page({self.id})"


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG under target/test-artifacts/screenshots/<name>.png and return its path."""
    path = SCREENSHOT_DIR / f"{_safe_name(name)}.png"
    return page.screenshot(path, full_page=full_page)
