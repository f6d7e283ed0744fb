"""Email over SMTP (aiosmtplib): the sender configured by one URL, and the messages it sends.

    INCIDENTFLOW_SMTP_URL=smtp://user:pass@smtp.example.com:587?starttls=true&from=status@example.com

Schemes: `smtp` (STARTTLS: `starttls=true` requires it, `false` never, default: required when there are
credentials, else used when offered) and `smtps` (TLS from the first byte, port 465). Query parameters:
`from` (required), `name` (display name), `timeout` (seconds, default 30), `cafile` (trust this CA).
The password never appears in a repr, a log line or an error.

Failures are classified here, once, with the types of activities/errors.py: a recipient refused for good
(5xx at RCPT) is `RecipientRefused` — the fan-out records it and goes on; any 4xx, a timeout or a lost
connection is retryable (`VendorUnavailable`); a 5xx for the sender, the message or the login is
`VendorRejected` (sending again would be refused again)."""

from __future__ import annotations

import html
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from temporalio.exceptions import ApplicationError

from activities import errors
from domain.statuspage.mail import normalize_email

if TYPE_CHECKING:
    import aiosmtplib

ENV = "INCIDENTFLOW_SMTP_URL"
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_PARAMS = {"from", "name", "starttls", "timeout", "cafile"}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    sender_name: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    implicit_tls: bool = False
    starttls: bool | None = None  # None: use it when the server offers it
    timeout: float = 30.0
    cafile: str | None = None

    def redacted(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{user}{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpSettings:
    """Parse INCIDENTFLOW_SMTP_URL; a ValueError names the part that is wrong (never the password)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"{ENV}: not a URL (expected smtp://user:password@host:587?from=status@example.com)") from None
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"{ENV}: expected smtp://host[:port]?from=… or smtps://…")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - _PARAMS)
    if unknown:
        raise ValueError(f"{ENV}: unknown parameter {', '.join(unknown)} (known: {', '.join(sorted(_PARAMS))})")
    if "from" not in query:
        raise ValueError(f"{ENV}: from= is required (the sender address, e.g. from=status@example.com)")
    implicit = parts.scheme == "smtps"
    username = unquote(parts.username) if parts.username else None
    starttls = None if implicit else _flag(query.get("starttls"), default=True if username else None)
    if username and not implicit and starttls is False and parts.hostname not in _LOOPBACK:
        raise ValueError(f"{ENV}: refusing to send credentials unencrypted: drop starttls=false or use smtps://")
    try:
        timeout = float(query.get("timeout", "30"))
    except ValueError:
        raise ValueError(f"{ENV}: timeout= must be a number of seconds") from None
    return SmtpSettings(host=parts.hostname, port=port or (465 if implicit else 587),
                        sender=_address(query["from"], "from"), sender_name=query.get("name", ""),
                        username=username, password=unquote(parts.password) if parts.password else None,
                        implicit_tls=implicit, starttls=starttls, timeout=timeout, cafile=query.get("cafile"))


def _flag(value: str | None, default: bool | None) -> bool | None:
    if value is None or value == "":
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"{ENV}: starttls= must be true or false")


def _address(value: str, name: str) -> str:
    try:
        return normalize_email(value)
    except ValueError as exc:
        raise ValueError(f"{ENV}: {name}=: {str(exc).removeprefix('email: ')}") from None


# ------------------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class Footer:
    """Why the reader gets this mail, and how to stop it (also in List-Unsubscribe)."""

    unsubscribe_url: str
    reason: str  # "You subscribed to Acme Status updates about all components."


def build_message(*, sender: str, sender_name: str, to: str, subject: str, text: str, footer: Footer | None,
                  message_id: str, list_id: str | None = None, link: str | None = None) -> EmailMessage:
    """A plain-text mail with a simple HTML alternative. With a footer: RFC 2369 List-Unsubscribe and
    RFC 8058 one-click (List-Unsubscribe-Post) headers, so mail clients show their own unsubscribe button."""
    msg = EmailMessage()
    msg["From"] = Address(display_name=sender_name, addr_spec=sender)
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies back to us
    if list_id:
        msg["List-Id"] = list_id
    body = text + (f"\n\n{link}" if link else "")
    if footer is not None:
        msg["List-Unsubscribe"] = f"<{footer.unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        body += f"\n\n-- \n{footer.reason}\nUnsubscribe: {footer.unsubscribe_url}\n"
    msg.set_content(body)
    msg.add_alternative(_html(text, link, footer), subtype="html")
    return msg


def _html(text: str, link: str | None, footer: Footer | None) -> str:
    paragraphs = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in text.split("\n\n") if p)
    if link:
        paragraphs += f'<p><a href="{html.escape(link)}">{html.escape(link)}</a></p>'
    if footer is not None:
        paragraphs += (f'<hr><p style="color:#555;font-size:90%">{html.escape(footer.reason)} '
                       f'<a href="{html.escape(footer.unsubscribe_url)}">Unsubscribe</a></p>')
    return f'<!doctype html><html lang="en"><body style="font-family:sans-serif;max-width:40em">{paragraphs}</body></html>'


# ------------------------------------------------------------------------------------- sending


class RecipientRefused(Exception):
    """The server refused this address for good (5xx at RCPT TO): record it and go on with the others."""

    def __init__(self, code: int) -> None:
        super().__init__(f"recipient refused (SMTP {code})")
        self.code = code


class MailSession:
    """One SMTP connection reused for many messages; reconnects (once per message) when the server
    hangs up, as servers that cap messages per connection do."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        self._client: aiosmtplib.SMTP | None = None

    async def send(self, message: EmailMessage) -> None:
        import aiosmtplib

        for attempt in (1, 2):
            try:
                client = await self._connected()
                await client.send_message(message, sender=self._settings.sender)
                return
            except aiosmtplib.SMTPServerDisconnected as exc:
                self._client = None
                if attempt == 2:
                    raise smtp_error(exc, self._settings) from None
            except aiosmtplib.SMTPException as exc:
                if _unusable(exc):
                    await self.close()  # the connection's state is unknown: start afresh next time
                raise smtp_error(exc, self._settings) from None
            except OSError as exc:
                self._client = None
                raise ApplicationError(f"SMTP {self._settings.redacted()} could not be reached: "
                                       f"{type(exc).__name__}", type=errors.UNAVAILABLE) from None

    async def _connected(self) -> aiosmtplib.SMTP:
        import aiosmtplib

        if self._client is None or not self._client.is_connected:
            s = self._settings
            context = ssl.create_default_context(cafile=s.cafile) if s.cafile else None
            client = aiosmtplib.SMTP(hostname=s.host, port=s.port, username=s.username, password=s.password,
                                     use_tls=s.implicit_tls, start_tls=s.starttls, timeout=s.timeout,
                                     tls_context=context)
            await client.connect()
            self._client = client
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except Exception:  # noqa: BLE001 - a failed goodbye loses nothing
                client.close()


class SmtpMailer:
    """The SMTP sender. `session()` keeps a connection for a batch; `send` is one message."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    @classmethod
    def from_url(cls, url: str) -> SmtpMailer:
        return cls(parse_smtp_url(url))

    def __repr__(self) -> str:
        return f"SmtpMailer({self.settings.redacted()})"

    @property
    def sender(self) -> str:
        return self.settings.sender

    @property
    def sender_name(self) -> str:
        return self.settings.sender_name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[MailSession]:
        session = MailSession(self.settings)
        try:
            yield session
        finally:
            await session.close()

    async def send(self, message: EmailMessage) -> None:
        async with self.session() as session:
            await session.send(message)


def _unusable(exc: Exception) -> bool:
    """After a refusal aiosmtplib resets the envelope and the connection goes on; after a timeout (or
    421, the server closing) nobody knows where the conversation stands."""
    import aiosmtplib

    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return False
    return not isinstance(exc, aiosmtplib.SMTPResponseException) or exc.code == 421


def smtp_error(exc: Exception, settings: SmtpSettings) -> Exception:
    """aiosmtplib's exception → `RecipientRefused` or an `ApplicationError` (never with the password)."""
    import aiosmtplib

    where = settings.redacted()
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes: Sequence[int] = [r.code for r in exc.recipients]
        if codes and all(500 <= c < 600 for c in codes):
            return RecipientRefused(codes[0])
        return ApplicationError(f"SMTP {where} deferred the recipient (SMTP {codes[0] if codes else '?'})",
                                type=errors.UNAVAILABLE)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        said = errors.redact(exc.message, [settings.password])[:200]
        if 500 <= exc.code < 600:
            return ApplicationError(f"SMTP {where} refused {_stage(exc)} (SMTP {exc.code}): {said}",
                                    type=errors.REJECTED, non_retryable=True)
        return ApplicationError(f"SMTP {where} deferred {_stage(exc)} (SMTP {exc.code}): {said}",
                                type=errors.UNAVAILABLE)
    return ApplicationError(f"SMTP {where} failed: {type(exc).__name__}", type=errors.UNAVAILABLE)


def _stage(exc: Exception) -> str:
    import aiosmtplib

    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return "the login"
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return "the sender"
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return "the message"
    return "the session"
