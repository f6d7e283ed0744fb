"""A real SMTP server in-process (aiosmtpd on a loopback port, its own thread and loop), recording mail.

    with SmtpServer() as smtp:
        mailer = SmtpMailer.from_url(smtp.url(sender="status@example.com"))
        smtp.fail_after(100)                 # from the 101st message on: 451 at DATA (nothing delivered)
        smtp.refuse("bounce@example.com")    # 550 at RCPT TO for this address
        smtp.on_message = callback           # called (in the server's thread) after each accepted message
        assert smtp.count_by_recipient()["alice@example.com"] == 1

`SmtpServer(tls=True, users={"mailer": "s3cret"})` offers STARTTLS with a throwaway self-signed
certificate (`smtp.cafile`) and requires a login over TLS, like a submission port."""

from __future__ import annotations

import email
import email.policy
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.helpers import free_port


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.lower() in self._server.refused:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self._server._accept(envelope)


class SmtpServer:
    def __init__(self, *, tls: bool = False, users: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self.refused: set[str] = set()
        self.on_message: Callable[[Received], None] | None = None
        self.logins: list[str] = []
        self._lock = threading.Lock()
        self._fail_after: int | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="incidentflow-smtp-")
        self.cafile: str | None = None
        kwargs: dict[str, Any] = {}
        if tls:
            self.cafile, context = _self_signed(Path(self._dir.name))
            kwargs.update(tls_context=context, require_starttls=True)
        if users is not None:
            kwargs.update(authenticator=self._authenticator(users), auth_required=True, auth_require_tls=tls)
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)

    def url(self, sender: str = "status@example.com", user: str | None = None, password: str | None = None,
            **params: str) -> str:
        auth = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
        query = "&".join([f"from={sender}", *(f"{k}={v}" for k, v in params.items())])
        if self.cafile and "cafile" not in params:
            query += f"&cafile={self.cafile}"
        return f"smtp://{auth}127.0.0.1:{self.port}?{query}"

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._controller.stop()
        self._dir.cleanup()

    # ------------------------------------------------------------------ faults
    def fail_after(self, accepted: int | None) -> None:
        """Answer 451 at DATA once `accepted` messages are in (None: accept again)."""
        with self._lock:
            self._fail_after = accepted

    def refuse(self, *addresses: str) -> None:
        self.refused.update(a.lower() for a in addresses)

    # ------------------------------------------------------------------ what arrived
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def count_by_recipient(self) -> Counter[str]:
        return Counter(r.lower() for m in self.messages() for r in m.recipients)

    def _accept(self, envelope: Any) -> str:
        with self._lock:
            if self._fail_after is not None and len(self.received) >= self._fail_after:
                return "451 4.3.0 Try again later"
            message = email.message_from_bytes(envelope.original_content or envelope.content,
                                               policy=email.policy.default)
            got = Received(envelope.mail_from, tuple(envelope.rcpt_tos), message)  # type: ignore[arg-type]
            self.received.append(got)
        if self.on_message is not None:
            self.on_message(got)
        return "250 Message accepted for delivery"

    def _authenticator(self, users: dict[str, str]) -> Callable[..., AuthResult]:
        def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            if isinstance(data, LoginPassword):
                login, password = data.login.decode(), data.password.decode()
                if users.get(login) == password:
                    self.logins.append(login)
                    return AuthResult(success=True)
            return AuthResult(success=False, handled=False)
        return check


def _self_signed(directory: Path) -> tuple[str, Any]:
    import ssl

    from tests.debian import ensure

    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([ensure("openssl", ["openssl"]), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return str(cert), context
