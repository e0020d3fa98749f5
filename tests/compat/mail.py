"""A real local SMTP server for tests: aiosmtpd on 127.0.0.1, collecting what it receives.

    with SmtpServer() as smtp:            # or the `smtp_server` fixture (conftest.py)
        ...                               # point ward at smtp.host:smtp.port, security "none"
        mail = smtp.wait_for(to="alice@example.org", subject_contains="passkey")
        assert "This wasn't me" in mail.text

Plain SMTP without authentication by default; pass `starttls_context` (a server-side
`ssl.SSLContext`) to offer STARTTLS and require it before MAIL FROM.
"""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

WAIT_TIMEOUT_SECS = 10.0


@dataclass
class ReceivedMail:
    """One message as the server received it."""

    mail_from: str  # the envelope sender (MAIL FROM)
    rcpt_tos: list[str]  # the envelope recipients (RCPT TO)
    subject: str
    to: list[str]  # the addresses in the To: header
    from_: str  # the From: header, as written
    text: str  # the text/plain body ("" when there is none)
    html: str | None  # the text/html alternative, when there is one
    message: EmailMessage = field(repr=False)
    raw: bytes = field(repr=False)
    tls: bool = False  # whether the session ran over STARTTLS

    @property
    def recipients(self) -> set[str]:
        """Every address the message went to, lower-cased: envelope and To: header."""
        return {address.lower() for address in [*self.rcpt_tos, *self.to]}


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_type() != f"text/{subtype}":
        return None
    # Lines arrive CRLF-terminated; tests compare text with "\n".
    return part.get_content().replace("\r\n", "\n")


def parse_mail(raw: bytes, mail_from: str, rcpt_tos: list[str], *, tls: bool = False) -> ReceivedMail:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return ReceivedMail(
        mail_from=mail_from,
        rcpt_tos=list(rcpt_tos),
        subject=str(message.get("Subject", "")),
        to=[address for _, address in getaddresses(message.get_all("To", []))],
        from_=str(message.get("From", "")),
        text=_body(message, "plain") or "",
        html=_body(message, "html"),
        message=message,
        raw=raw,
        tls=tls,
    )


class _Collector:
    """The aiosmtpd handler: parses each message and hands it to the server object."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        mail = parse_mail(
            raw,
            envelope.mail_from or "",
            envelope.rcpt_tos,
            tls=session.ssl is not None,
        )
        self._server._received(mail)
        return "250 OK"


class _PortZeroController(Controller):
    """A Controller that binds port 0 and learns the port the kernel chose (no free-port race)."""

    def _trigger_server(self) -> None:
        assert self.server is not None and self.server.sockets
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpServer:
    """aiosmtpd in a background thread on 127.0.0.1:<free port>."""

    def __init__(self, *, starttls_context: ssl.SSLContext | None = None) -> None:
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.starttls = starttls_context is not None
        self._messages: list[ReceivedMail] = []
        self._claimed: set[int] = set()
        self._cond = threading.Condition()
        options: dict = {}
        if starttls_context is not None:
            options = {"tls_context": starttls_context, "require_starttls": True}
        self._controller = _PortZeroController(
            _Collector(self), hostname=self.host, port=0, ready_timeout=10, **options
        )

    def start(self) -> SmtpServer:
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        if self.port is not None:
            self._controller.stop()
            self.port = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _received(self, mail: ReceivedMail) -> None:
        with self._cond:
            self._messages.append(mail)
            self._cond.notify_all()

    @property
    def messages(self) -> list[ReceivedMail]:
        """Everything received so far, oldest first."""
        with self._cond:
            return list(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()
            self._claimed.clear()

    def wait_for(
        self,
        to: str | None = None,
        subject_contains: str | None = None,
        timeout: float = WAIT_TIMEOUT_SECS,
    ) -> ReceivedMail:
        """The oldest matching message that no earlier `wait_for` returned, waiting up to `timeout` s.

        `to` matches an envelope recipient or a To: address (case-insensitive);
        `subject_contains` matches a substring of the subject (case-insensitive).
        Each message is returned once, so two waits for the same user find two mails.
        """

        def matches(mail: ReceivedMail) -> bool:
            if to is not None and to.lower() not in mail.recipients:
                return False
            if subject_contains is not None and subject_contains.lower() not in mail.subject.lower():
                return False
            return True

        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, mail in enumerate(self._messages):
                    if index not in self._claimed and matches(mail):
                        self._claimed.add(index)
                        return mail
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(m.rcpt_tos, m.subject) for m in self._messages]
                    raise AssertionError(
                        f"no mail to={to!r} subject_contains={subject_contains!r} within {timeout}s; "
                        f"received (recipients, subject): {seen}"
                    )
                self._cond.wait(remaining)

    def __repr__(self) -> str:
        return f"SmtpServer({self.host}:{self.port}, starttls={self.starttls})"
