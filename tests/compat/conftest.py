"""Shared machinery for the Duo compatibility suite.

Every test here drives a real `ward serve` process with the official, unmodified
`duo_client` package. Helpers:

* `WardServer` starts and stops one `ward serve` process and knows its data dir,
  config file, port and CA file.
* `run_ward` / `ward_cli` run the admin CLI against the same data dir and config.
* `make_user_with_totp` creates a user with a fresh TOTP authenticator and returns
  a `TotpUser` whose `pyotp.TOTP` produces the codes.
* `signed_request` sends one hand-built request signed with duo_client's own
  `sign()` helper, for the negative signature tests.

Environment:

* `WARD_BIN`: the ward binary (default `<repo>/target/debug/ward`).
* `WARD_TEST_DATABASE_URL`: a PostgreSQL admin URL (e.g.
  postgres://postgres@127.0.0.1:5432/test); the PostgreSQL variants are skipped
  without it. Each test module gets a fresh database `ward_t_<hex>`.
* `WARD_TEST_STRICT=1`: every skip becomes a failure.
"""

from __future__ import annotations

import atexit
import base64
import email.utils
import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duo_client
import duo_client.client
import pyotp
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STRICT = os.environ.get("WARD_TEST_STRICT") == "1"
DATABASE_URL_ENV = "WARD_TEST_DATABASE_URL"

READY_TIMEOUT_SECS = 60
STOP_TIMEOUT_SECS = 10
CLI_TIMEOUT_SECS = 60
HTTP_TIMEOUT_SECS = 30

# The readiness line, e.g. "... INFO ward: listening on https://127.0.0.1:43121".
LISTENING_RE = re.compile(r"listening on (https?)://127\.0\.0\.1:(\d+)")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# ---------------------------------------------------------------------------
# Skips and strict mode
# ---------------------------------------------------------------------------


def skip_or_fail(reason: str) -> None:
    """Skip the test, or fail it when WARD_TEST_STRICT=1 (a skip is a failure there)."""
    if STRICT:
        pytest.fail(f"{reason} (WARD_TEST_STRICT=1: a skip is a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # Backstop for skips that do not go through skip_or_fail.
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"WARD_TEST_STRICT=1 turns every skip into a failure: {reason}"
    # Attach the log of every running ward server to a failure report.
    if report.failed:
        for server in list(_LIVE_SERVERS):
            report.sections.append((f"ward log: {server.name} ({server.data_dir})", server.log_tail()))
    return report


# ---------------------------------------------------------------------------
# The ward binary and its environment
# ---------------------------------------------------------------------------


def ward_bin_path() -> Path:
    return Path(os.environ.get("WARD_BIN") or REPO_ROOT / "target" / "debug" / "ward")


def ward_env() -> dict[str, str]:
    """The environment for ward processes: ours, minus every WARD_* variable.

    ward reads WARD_CONFIG, WARD_DATA_DIR, WARD_DATABASE_URL, WARD_MASTER_KEY, WARD_LOG, ...;
    one left over in a developer's shell would silently change what a test set up.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARD_")}
    env["NO_COLOR"] = "1"
    env.setdefault("RUST_BACKTRACE", "1")
    return env


@pytest.fixture(scope="session")
def ward_bin() -> Path:
    path = ward_bin_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"ward binary not found at {path}: build it with `cargo build -p ward` or set WARD_BIN",
            pytrace=False,
        )
    return path


# ---------------------------------------------------------------------------
# Config files and master keys
# ---------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (str, Path)):
        # A JSON string literal is a valid TOML basic string.
        return json.dumps(str(value))
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"unsupported TOML value {value!r}")


def write_config(
    path: Path,
    *,
    public_host: str | None = None,
    database_url: str | None = None,
    master_key_file: Path | None = None,
    unknown_user: str | None = None,
    lockout_threshold: int | None = None,
    lockout_seconds: int | None = None,
    extra: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write a ward TOML config; keys left as None are omitted (ward's defaults apply).

    `extra` adds whole sections, e.g. `{"push": {"timeout_seconds": 3}}`."""
    top = {"public_host": public_host}
    sections = {
        "database": {"url": database_url},
        "secrets": {"master_key_file": master_key_file},
        "auth": {
            "unknown_user": unknown_user,
            "lockout_threshold": lockout_threshold,
            "lockout_seconds": lockout_seconds,
        },
    }
    for section, values in (extra or {}).items():
        sections.setdefault(section, {}).update(values)
    lines = [f"{key} = {_toml_value(value)}" for key, value in top.items() if value is not None]
    for section, values in sections.items():
        present = {key: value for key, value in values.items() if value is not None}
        if present:
            lines.append(f"\n[{section}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in present.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def write_master_key(path: Path) -> Path:
    """32 random bytes, base64 text (like `openssl rand -base64 32`), mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    os.chmod(path, 0o600)
    return path


@dataclass(frozen=True)
class ServerSettings:
    """What a test module needs from its ward server; override the `ward_settings` fixture."""

    plain_http: bool = False
    unknown_user: str | None = "deny"
    lockout_threshold: int | None = None
    lockout_seconds: int | None = None


# ---------------------------------------------------------------------------
# The ward server process
# ---------------------------------------------------------------------------

_LIVE_SERVERS: set[WardServer] = set()


class WardError(RuntimeError):
    pass


class WardServer:
    """One `ward serve --listen 127.0.0.1:0` process with its own data dir."""

    def __init__(
        self,
        ward_bin: Path,
        data_dir: Path,
        config_path: Path,
        *,
        plain_http: bool = False,
        name: str = "ward",
        launcher: list[str] | None = None,
    ) -> None:
        """`launcher` is a command line that runs ward (e.g. `["prlimit", "--nofile=1024:4096",
        "--"]`); it must exec ward, so that `pid` is ward's."""
        self.ward_bin = Path(ward_bin)
        self.launcher = list(launcher or [])
        self.data_dir = Path(data_dir)
        self.config_path = Path(config_path)
        self.plain_http = plain_http
        self.name = name
        self.port: int | None = None
        self.scheme: str | None = None
        self.returncode: int | None = None
        self.was_killed = False
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._log: list[str] = []
        self._log_lock = threading.Lock()
        self._ready = threading.Event()

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = READY_TIMEOUT_SECS) -> WardServer:
        """Start (or restart) the process and wait for its "listening on" line."""
        if self.running:
            raise WardError(f"{self.name} is already running")
        self.port = self.scheme = self.returncode = None
        self.was_killed = False
        self._ready.clear()
        if self._log:
            with self._log_lock:
                self._log.append("----- restart -----")
        cmd = [
            *self.launcher,
            str(self.ward_bin),
            "--data-dir",
            str(self.data_dir),
            "--config",
            str(self.config_path),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ]
        if self.plain_http:
            cmd.append("--plain-http")
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=ward_env(),
            text=True,
            errors="replace",
            bufsize=1,
        )
        _LIVE_SERVERS.add(self)
        self._reader = threading.Thread(target=self._drain, args=(self._proc,), name=f"{self.name}-log", daemon=True)
        self._reader.start()

        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self._proc.poll() is not None:
                self._reader.join(5)
                self.returncode = self._proc.returncode
                self._forget()
                raise WardError(
                    f"{self.name}: `{' '.join(cmd)}` exited with {self.returncode} before it was ready:\n"
                    + self.log_text()
                )
            if time.monotonic() > deadline:
                self.stop()
                raise WardError(
                    f"{self.name}: no 'listening on http(s)://127.0.0.1:PORT' line within {timeout}s:\n"
                    + self.log_text()
                )
        expected = "http" if self.plain_http else "https"
        if self.scheme != expected:
            self.stop()
            raise WardError(f"{self.name}: expected to listen on {expected}, got {self.scheme}:\n{self.log_text()}")
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_SECS) -> int | None:
        """SIGTERM, wait up to `timeout` seconds, then SIGKILL. Idempotent."""
        proc = self._proc
        if proc is None:
            return self.returncode
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.was_killed = True
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()
        self.returncode = proc.returncode
        self._forget()
        return self.returncode

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        assert self._proc is not None, f"{self.name} is not running"
        return self._proc.pid

    def _forget(self) -> None:
        _LIVE_SERVERS.discard(self)
        self._proc = None

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = ANSI_RE.sub("", raw.rstrip("\n"))
            with self._log_lock:
                self._log.append(line)
            if not self._ready.is_set():
                match = LISTENING_RE.search(line)
                if match:
                    self.scheme, self.port = match.group(1), int(match.group(2))
                    self._ready.set()

    # -- logs ----------------------------------------------------------------

    def log_text(self) -> str:
        with self._log_lock:
            return "\n".join(self._log)

    def log_tail(self, lines: int = 200) -> str:
        with self._log_lock:
            return "\n".join(self._log[-lines:])

    # -- clients -------------------------------------------------------------

    @property
    def ca_certs(self) -> str:
        """What duo_client's `ca_certs=` needs: ward's CA file, or "HTTP" in plain mode."""
        return "HTTP" if self.plain_http else str(self.data_dir / "tls" / "ca.pem")

    def auth_client(self, integration: dict[str, str], *, ikey: str | None = None, skey: str | None = None):
        """A `duo_client.Auth` for this server. `host` must be "localhost": duo_client checks DNS SANs only."""
        assert self.port is not None, f"{self.name} is not running"
        return duo_client.Auth(
            ikey=ikey if ikey is not None else integration["ikey"],
            skey=skey if skey is not None else integration["skey"],
            host="localhost",
            port=self.port,
            ca_certs=self.ca_certs,
            timeout=HTTP_TIMEOUT_SECS,
        )

    def __repr__(self) -> str:
        return f"WardServer({self.name!r}, port={self.port}, data_dir={str(self.data_dir)!r})"


def _stop_leftover_servers() -> None:
    for server in list(_LIVE_SERVERS):
        server.stop()


atexit.register(_stop_leftover_servers)


# ---------------------------------------------------------------------------
# The admin CLI
# ---------------------------------------------------------------------------


def run_ward(node: WardServer, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ward --data-dir D --config C ARGS...` against the node's data dir and config."""
    cmd = [str(node.ward_bin), "--data-dir", str(node.data_dir), "--config", str(node.config_path), *args]
    result = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        env=ward_env(),
        timeout=CLI_TIMEOUT_SECS,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"`ward {' '.join(args)}` exited with {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result


def ward_cli(node: WardServer, *args: str) -> Any:
    """Run `ward ARGS... --json` and return its stdout parsed as JSON."""
    result = run_ward(node, *args, "--json")
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(
            f"`ward {' '.join(args)} --json` printed no JSON ({error}):\n"
            f"{result.stdout}\n--- stderr ---\n{result.stderr}"
        ) from None


def create_integration(node: WardServer, name: str = "compat-tests") -> dict[str, str]:
    return ward_cli(node, "integration", "create", "--name", name, "--kind", "auth-api")


def unique_username(prefix: str = "user") -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


# ---------------------------------------------------------------------------
# Users with TOTP authenticators
# ---------------------------------------------------------------------------

_DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


@dataclass
class TotpUser:
    username: str
    user_id: str
    seed: bytes
    secret: str  # base32 of seed, as given to `ward totp add --secret`
    totp: pyotp.TOTP
    otpauth_uri: str

    def code(self) -> str:
        return fresh_code(self.totp)

    def wrong_code(self) -> str:
        return wrong_code(self.totp)


def make_user_with_totp(
    node: WardServer,
    *,
    username: str | None = None,
    algorithm: str = "sha1",
    digits: int = 6,
    seed_len: int = 20,
) -> TotpUser:
    """Create a user and give it a fresh TOTP authenticator with a random seed.

    Every TOTP time step is accepted once, so each test that needs a successful
    login uses its own user instead of waiting 30 s for the next step.
    `--algorithm`/`--digits` are passed only when they differ from the defaults
    (sha1, 6), so the defaults are exercised too. Use seed lengths that are a
    multiple of 5 bytes so the base32 text needs no padding.
    """
    username = username or unique_username()
    user = ward_cli(node, "user", "create", username)
    assert user.get("username") == username, user
    assert isinstance(user.get("user_id"), str), user
    assert user["user_id"], user

    seed = os.urandom(seed_len)
    secret = base64.b32encode(seed).decode()
    args = ["totp", "add", username, "--secret", secret]
    if algorithm != "sha1":
        args += ["--algorithm", algorithm]
    if digits != 6:
        args += ["--digits", str(digits)]
    added = ward_cli(node, *args)
    uri = added.get("otpauth_uri")
    assert isinstance(uri, str), added
    assert uri.startswith("otpauth://totp/"), added

    return TotpUser(
        username=username,
        user_id=user["user_id"],
        seed=seed,
        secret=secret,
        totp=pyotp.TOTP(secret, digits=digits, digest=_DIGESTS[algorithm]),
        otpauth_uri=uri,
    )


def fresh_code(totp: pyotp.TOTP, margin: float = 3.0) -> str:
    """The current code, waiting for the next step if the current one ends within `margin` seconds."""
    remaining = totp.interval - (time.time() % totp.interval)
    if remaining < margin:
        time.sleep(remaining + 0.2)
    return totp.now()


def wrong_code(totp: pyotp.TOTP) -> str:
    """A code of the right length that matches no step within ±3 steps of now."""
    now = time.time()
    valid = {totp.at(now + step * totp.interval) for step in range(-3, 4)}
    candidate = int(totp.now())
    while True:
        candidate = (candidate + 7919) % 10**totp.digits
        code = str(candidate).zfill(totp.digits)
        if code not in valid:
            return code


# ---------------------------------------------------------------------------
# Duo envelopes and hand-built requests
# ---------------------------------------------------------------------------


def duo_error_body(error: BaseException, *, status: int, code: int | None = None) -> dict[str, Any]:
    """Check a duo_client RuntimeError against a Duo FAIL envelope and return the parsed body."""
    assert isinstance(error, RuntimeError), repr(error)
    assert getattr(error, "status", None) == status, (
        f"expected HTTP {status}, got {getattr(error, 'status', None)}: {error}"
    )
    # duo_client sets `.data` to the parsed body for a FAIL envelope, else to the raw text.
    body = getattr(error, "data", None)
    if not isinstance(body, dict):
        try:
            body = json.loads(body)
        except (TypeError, ValueError):
            raise AssertionError(f"error body is not a Duo JSON envelope: {body!r}") from None
    assert body.get("stat") == "FAIL", body
    assert isinstance(body.get("code"), int), body
    assert body["code"] // 100 == status, body
    if code is not None:
        assert body["code"] == code, body
    assert isinstance(body.get("message"), str), body
    assert body["message"], body
    return body


def _tamper(authorization: str) -> str:
    """Flip the last hex digit of the signature in a `Basic base64(ikey:hexsig)` header."""
    scheme, encoded = authorization.split(" ", 1)
    ikey, signature = base64.b64decode(encoded).decode().split(":", 1)
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    return f"{scheme} {base64.b64encode(f'{ikey}:{flipped}'.encode()).decode()}"


def signed_request(
    server: WardServer,
    ikey: str,
    skey: str,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    date: str | None = None,
    tamper_signature: bool = False,
) -> tuple[int, dict[str, Any] | None]:
    """Send one v5-signed request built with duo_client's own `sign()`; return (status, JSON body)."""
    params = params or {}
    date = date or email.utils.formatdate()
    if method in ("POST", "PUT", "PATCH"):
        body = duo_client.client.Client.canon_json(params)
        sign_params: dict[Any, Any] = {}
        uri = path
    else:
        body = ""
        sign_params = duo_client.client.normalize_params(params)
        uri = path + "?" + urllib.parse.urlencode(sign_params, doseq=True)
    authorization = duo_client.client.sign(ikey, skey, method, "localhost", path, date, 5, sign_params, body=body)
    if tamper_signature:
        authorization = _tamper(authorization)

    headers = {"Authorization": authorization, "Date": date}
    if method in ("POST", "PUT", "PATCH"):
        headers["Content-type"] = "application/json"
    assert server.port is not None
    if server.plain_http:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(
            "localhost", server.port, timeout=HTTP_TIMEOUT_SECS
        )
    else:
        context = ssl.create_default_context(cafile=server.ca_certs)
        conn = http.client.HTTPSConnection("localhost", server.port, context=context, timeout=HTTP_TIMEOUT_SECS)
    try:
        conn.request(method, uri, body=body if method in ("POST", "PUT", "PATCH") else None, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    return response.status, parsed


# ---------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    name: str  # "sqlite" or "postgres"
    database_url: str | None  # None: ward's default SQLite file in the data dir


def _database_url_with_name(admin_url: str, name: str) -> str:
    return urllib.parse.urlsplit(admin_url)._replace(path="/" + name).geturl()


@pytest.fixture(scope="module")
def postgres_database() -> str:
    """A fresh PostgreSQL database for this test module; dropped (WITH FORCE) afterwards."""
    admin_url = os.environ.get(DATABASE_URL_ENV)
    if not admin_url:
        skip_or_fail(f"PostgreSQL tests skipped; set {DATABASE_URL_ENV}=postgres://... to run them")
    import psycopg
    from psycopg import sql

    name = f"ward_t_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as error:
        pytest.fail(f"cannot create a test database through {DATABASE_URL_ENV}={admin_url}: {error}", pytrace=False)
    try:
        yield _database_url_with_name(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend(request) -> Backend:
    """Parametrises a module over both storage backends. Override it to pin one."""
    if request.param == "sqlite":
        return Backend("sqlite", None)
    return Backend("postgres", request.getfixturevalue("postgres_database"))


@pytest.fixture(scope="module")
def ward_settings() -> ServerSettings:
    """Per-module server settings; override in a test module to change them."""
    return ServerSettings()


@pytest.fixture(scope="module")
def ward_server(ward_bin, backend, ward_settings, tmp_path_factory):
    """One running ward server per test module and backend."""
    root = tmp_path_factory.mktemp(f"ward-{backend.name}")
    config = write_config(
        root / "ward.toml",
        database_url=backend.database_url,
        unknown_user=ward_settings.unknown_user,
        lockout_threshold=ward_settings.lockout_threshold,
        lockout_seconds=ward_settings.lockout_seconds,
    )
    server = WardServer(
        ward_bin, root / "data", config, plain_http=ward_settings.plain_http, name=f"ward-{backend.name}"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def integration(ward_server) -> dict[str, str]:
    return create_integration(ward_server)


@pytest.fixture(scope="module")
def auth_client(ward_server, integration):
    return ward_server.auth_client(integration)


# ---------------------------------------------------------------------------
# Browser (tests/browser/driver.mjs) and mail (aiosmtpd) fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for the session, driven through tests/browser/driver.mjs.

    Skipped (a failure under WARD_TEST_STRICT=1) when node, /usr/bin/chromium or
    tests/browser/node_modules is missing."""
    from browser import Browser, unavailable_reason

    reason = unavailable_reason()
    if reason:
        skip_or_fail(reason)
    instance = Browser().start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def page(browser, request):
    """A fresh page (own browser context) for one test; a failing test leaves a screenshot in
    target/test-artifacts/screenshots/<test name>.png."""
    from browser import BrowserError, screenshot

    failed_before = request.session.testsfailed
    opened = browser.new_page()
    try:
        yield opened
    finally:
        try:
            if request.session.testsfailed > failed_before:
                screenshot(opened, f"FAILED-{request.node.name}")
            opened.close()
        except BrowserError:
            pass


@pytest.fixture(scope="module")
def smtp_server():
    """A local SMTP server (aiosmtpd, plain, no auth) on 127.0.0.1:<free port> for one module;
    `smtp_server.wait_for(to=..., subject_contains=...)` returns each received mail once."""
    from mail import SmtpServer

    with SmtpServer() as server:
        yield server
