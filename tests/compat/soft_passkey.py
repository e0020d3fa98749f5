"""A software passkey (WebAuthn, ES256, "none" attestation, user verified) for tests that need a
passkey without a browser: the upgrade fixture registers one through the portal's JSON calls,
and the upgrade test signs in with it.

The key pair lives in a PEM file; every private-key operation is done by the `openssl` command
line tool (no cryptography is written here). The WebAuthn messages are built by hand: a minimal
CBOR encoder for the attestation object and the COSE key, and the authenticator data layout of
WebAuthn Level 2 §6.1.

    passkey = SoftPasskey.generate(path / "passkey.pem")
    credential = passkey.register(options["publicKey"], origin)   # → /portal/api/passkeys/finish
    assertion = passkey.assert_(options["publicKey"], origin, user_handle, counter=1)   # → sign-in/finish
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.client
import json
import os
import re
import shutil
import ssl
import struct
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

# Authenticator data flags (WebAuthn §6.1).
FLAG_UP = 0x01  # user present
FLAG_UV = 0x04  # user verified
FLAG_AT = 0x40  # attested credential data included

# The SubjectPublicKeyInfo of a P-256 key, DER, ends with 0x04 || X (32) || Y (32).
P256_POINT_LEN = 65


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cbor(value: Any) -> bytes:
    """CBOR (RFC 8949) for the few types WebAuthn needs: int, bytes, str, dict (in given order)."""

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for extra, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
            if n < 1 << (8 * struct.calcsize(fmt)):
                return bytes([major << 5 | extra]) + struct.pack(fmt, n)
        raise ValueError(f"integer too large for CBOR: {n}")

    if isinstance(value, bool):
        raise TypeError("booleans are not needed here")
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(f"unsupported CBOR value {value!r}")


def openssl() -> str:
    """The openssl binary, or an error naming what is missing."""
    path = shutil.which("openssl")
    if path is None:
        raise FileNotFoundError("the `openssl` command is needed for the software passkey")
    return path


class SoftPasskey:
    """One discoverable ES256 credential whose private key is the PEM file at `key_path`."""

    def __init__(self, key_path: Path, credential_id: bytes) -> None:
        self.key_path = Path(key_path)
        self.credential_id = credential_id

    @classmethod
    def generate(cls, key_path: Path) -> SoftPasskey:
        subprocess.run(
            [openssl(), "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key_path)],
            check=True,
            capture_output=True,
        )
        os.chmod(key_path, 0o600)
        return cls(key_path, os.urandom(32))

    def _public_point(self) -> tuple[bytes, bytes]:
        der = subprocess.run(
            [openssl(), "pkey", "-in", str(self.key_path), "-pubout", "-outform", "DER"],
            check=True,
            capture_output=True,
        ).stdout
        point = der[-P256_POINT_LEN:]
        if point[0] != 0x04:
            raise ValueError("expected an uncompressed P-256 public key")
        return point[1:33], point[33:]

    def _sign(self, message: bytes) -> bytes:
        """ECDSA P-256 with SHA-256, DER-encoded, as WebAuthn's ES256 wants it."""
        return subprocess.run(
            [openssl(), "dgst", "-sha256", "-sign", str(self.key_path)],
            input=message,
            check=True,
            capture_output=True,
        ).stdout

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False},
            separators=(",", ":"),
        ).encode()

    def register(self, options: dict[str, Any], origin: str) -> dict[str, Any]:
        """The `PublicKeyCredential` JSON answering `navigator.credentials.create(options)`."""
        x, y = self._public_point()
        cose_key = cbor({1: 2, 3: -7, -1: 1, -2: x, -3: y})  # EC2, ES256, P-256
        attested = bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + cose_key
        rp_hash = hashlib.sha256(options["rp"]["id"].encode()).digest()
        auth_data = rp_hash + bytes([FLAG_UP | FLAG_UV | FLAG_AT]) + struct.pack(">I", 0) + attested
        attestation = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return {
            "id": b64u(self.credential_id),
            "rawId": b64u(self.credential_id),
            "type": "public-key",
            "extensions": {},
            "response": {
                "clientDataJSON": b64u(client_data),
                "attestationObject": b64u(attestation),
                "transports": ["internal"],
            },
        }

    def assert_(self, options: dict[str, Any], origin: str, user_handle: str, counter: int) -> dict[str, Any]:
        """The `PublicKeyCredential` JSON answering `navigator.credentials.get(options)`.

        `counter` is the authenticator's signature counter; it must exceed the last one used."""
        rp_hash = hashlib.sha256(options["rpId"].encode()).digest()
        auth_data = rp_hash + bytes([FLAG_UP | FLAG_UV]) + struct.pack(">I", counter)
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self._sign(auth_data + hashlib.sha256(client_data).digest())
        return {
            "id": b64u(self.credential_id),
            "rawId": b64u(self.credential_id),
            "type": "public-key",
            "extensions": {},
            "response": {
                "clientDataJSON": b64u(client_data),
                "authenticatorData": b64u(auth_data),
                "signature": b64u(signature),
                "userHandle": user_handle,
            },
        }


class Portal:
    """A cookie-keeping HTTPS client for the portal's pages and JSON calls (no redirects followed).

    `origin` is what a browser would send as the page's origin, e.g. https://localhost:PORT."""

    SESSION_COOKIE = "__Host-ward_session"

    def __init__(self, origin: str, ca_file: str, timeout: float = 30) -> None:
        self.origin = origin
        self.context = ssl.create_default_context(cafile=ca_file)
        self.timeout = timeout
        self.session: str | None = None

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        url = urllib.parse.urlsplit(self.origin)
        conn = http.client.HTTPSConnection(url.hostname, url.port, context=self.context, timeout=self.timeout)
        sent = dict(headers or {})
        if self.session is not None:
            sent["Cookie"] = f"{self.SESSION_COOKIE}={self.session}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=payload, headers=sent)
            response = conn.getresponse()
            raw = response.read()
            received = {k.lower(): v for k, v in response.getheaders() if k.lower() != "set-cookie"}
            for name, value in response.getheaders():
                if name.lower() == "set-cookie" and value.startswith(self.SESSION_COOKIE + "="):
                    self.session = value.split(";", 1)[0].split("=", 1)[1] or None
            return response.status, received, raw
        finally:
            conn.close()

    def call(self, path: str, body: Any = None, csrf: str | None = None) -> dict[str, Any]:
        """POST a JSON call; its answer must be 200 with a JSON body."""
        headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
        status, _, raw = self.request("POST", path, body if body is not None else {}, headers)
        if status != 200:
            raise AssertionError(f"POST {path} answered {status}: {raw[:500]!r}")
        return json.loads(raw)

    def page(self, path: str) -> str:
        status, headers, raw = self.request("GET", path)
        if status != 200:
            raise AssertionError(f"GET {path} answered {status} ({headers.get('location')}): {raw[:500]!r}")
        return raw.decode()

    def csrf(self, path: str = "/portal") -> str:
        match = re.search(r'<meta name="csrf-token" content="([^"]+)">', self.page(path))
        if match is None:
            raise AssertionError(f"no CSRF token on {path}")
        return html.unescape(match.group(1))

    def enrol(self, link_path: str) -> None:
        """Redeem a single-use enrolment link (`ward enrol-link`): the landing page, then Continue."""
        self.page(link_path)
        status, headers, raw = self.request("POST", link_path)
        if status not in (302, 303) or self.session is None:
            raise AssertionError(f"enrolment link refused ({status}, {headers.get('location')}): {raw[:500]!r}")

    def add_passkey(self, passkey: SoftPasskey, name: str) -> str:
        """Register `passkey` for the signed-in user; returns the WebAuthn user handle (base64url)."""
        csrf = self.csrf()
        start = self.call("/portal/api/passkeys/start", csrf=csrf)
        options = start["options"]["publicKey"]
        credential = passkey.register(options, self.origin)
        self.call(
            "/portal/api/passkeys/finish",
            {"ceremony": start["ceremony"], "credential": credential, "name": name},
            csrf=csrf,
        )
        return options["user"]["id"]

    def sign_in(self, passkey: SoftPasskey, user_handle: str, *, counter: int) -> None:
        """Sign in with a discoverable passkey (usernameless), as /static/ward.js does."""
        self.session = None
        start = self.call("/portal/api/sign-in/start")
        assertion = passkey.assert_(start["options"]["publicKey"], self.origin, user_handle, counter)
        self.call("/portal/api/sign-in/finish", {"ceremony": start["ceremony"], "credential": assertion})
        if self.session is None:
            raise AssertionError("passkey sign-in set no session cookie")
