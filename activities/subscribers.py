"""Status mail: subscribing (double opt-in), unsubscribing, and the fan-out of each notification.

The fan-out is one activity per notification. It walks the confirmed subscribers in batches by id and,
for each address, skips it if the deliveries ledger already has (notification, subscriber), else sends,
then records the delivery. A retried attempt (worker killed, SMTP server gone) therefore mails nobody
twice; only messages in flight when the attempt died — at most `concurrency` — may go out again, and
their Message-ID is the same, so mail clients can fold them. The heartbeat carries the last finished
batch, so a retry resumes there instead of re-reading the ledger from the start.

Tokens never leave this module except inside mails: activities take and return digests and counts.
This module is imported by workflow code: SQLAlchemy and aiosmtplib load only where they are used."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from email.message import EmailMessage
from typing import TYPE_CHECKING, ParamSpec, Protocol, TypeVar
from urllib.parse import quote

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import errors
from domain.statuspage.mail import (
    CONFIRM_PATH,
    UNSUBSCRIBE_PATH,
    FanoutResult,
    Notification,
    SubscriptionOutcome,
    SubscriptionRequest,
    SubscriptionResult,
    TokenInput,
)
from domain.statuspage.models import StatusPageConfig

if TYPE_CHECKING:
    from activities.mail import Footer
    from activities.records import Confirmed, Recipient, SubscribeTokens

log = logging.getLogger("incidentflow.statusmail")
P = ParamSpec("P")
T = TypeVar("T")


class MailSender(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Send one message; raise RecipientRefused or an ApplicationError (activities/mail.py)."""


class Mailer(Protocol):
    """SMTP (activities/mail.py `SmtpMailer`): a session keeps one connection for many messages."""

    @property
    def sender(self) -> str: ...

    @property
    def sender_name(self) -> str: ...

    def session(self) -> AbstractAsyncContextManager[MailSender]: ...

    async def send(self, message: EmailMessage) -> None: ...


class SubscriberRecords(Protocol):
    """The records store's subscriber API (activities/records `SubscriberStore`); synchronous."""

    def subscribe(self, email: str, components: Collection[str] = ()) -> SubscribeTokens: ...

    def confirm_digest(self, digest: str) -> Confirmed | None: ...

    def unsubscribe_digest(self, digest: str) -> bool: ...

    def confirmed_batch(self, components: Collection[str], after_id: int = 0,
                        limit: int = 200) -> list[Recipient]: ...

    def already_sent(self, notification_id: str, subscriber_ids: Iterable[int]) -> set[int]: ...

    def mark_sent(self, notification_id: str, subscriber_ids: Iterable[int], outcome: str = "sent") -> None: ...


class StatusMailActivities:
    def __init__(self, store: SubscriberRecords, mailer: Mailer | None, config: Callable[[], StatusPageConfig],
                 *, links_base: str | None = None, batch_size: int = 200, concurrency: int = 4) -> None:
        self._store, self._mailer, self._config = store, mailer, config
        self._links_base = links_base  # where /status/confirm and /status/unsubscribe answer; else statuspage.url
        self._batch, self._concurrency = batch_size, max(1, concurrency)

    @activity.defn
    async def request_subscription(self, request: SubscriptionRequest) -> SubscriptionResult:
        """Record the request and mail the confirm link (only confirmed addresses get notifications)."""
        mailer, cfg = self._need_mailer(), self._config()
        base = self._base(cfg)
        tokens = await _db(self._store.subscribe, request.email, request.components)
        await mailer.send(_confirmation(cfg, tokens, request.components, base, self._from()))
        return SubscriptionResult(outcome=SubscriptionOutcome.confirmation_sent)

    @activity.defn
    async def confirm_subscription(self, token: TokenInput) -> SubscriptionResult:
        done = await _db(self._store.confirm_digest, token.digest)
        if done is None:
            return SubscriptionResult(outcome=SubscriptionOutcome.unknown_token)
        return SubscriptionResult(outcome=SubscriptionOutcome.confirmed, components=list(done.components))

    @activity.defn
    async def unsubscribe(self, token: TokenInput) -> SubscriptionResult:
        # The same answer whether or not the link matched: nobody learns who is subscribed.
        await _db(self._store.unsubscribe_digest, token.digest)
        return SubscriptionResult(outcome=SubscriptionOutcome.unsubscribed)

    @activity.defn
    async def notify_subscribers(self, notification: Notification) -> FanoutResult:
        result = FanoutResult(notification_id=notification.notification_id)
        if self._mailer is None:
            log.warning("status mail %s not sent: no SMTP server configured", notification.notification_id)
            return result.model_copy(update={"not_configured": True})
        cfg = self._config()
        self._base(cfg)  # no public URL, no unsubscribe links: refuse before mailing anyone
        async with AsyncExitStack() as stack:
            sessions = [await stack.enter_async_context(self._mailer.session()) for _ in range(self._concurrency)]
            after = _resume_from()
            while batch := await _db(self._store.confirmed_batch, notification.components, after, self._batch):
                done = await _db(self._store.already_sent, notification.notification_id,
                                 [r.subscriber_id for r in batch])
                result.already_sent += len(done)
                todo = [r for r in batch if r.subscriber_id not in done]
                await self._send_batch(notification, todo, sessions, cfg, result, after)
                after = batch[-1].subscriber_id
                activity.heartbeat(after)  # a retry starts after this batch
        log.info("status mail %s: %d sent, %d already sent, %d refused", notification.notification_id,
                 result.sent, result.already_sent, result.refused)
        return result

    async def _send_batch(self, notification: Notification, todo: Sequence[Recipient],
                          sessions: Sequence[MailSender], cfg: StatusPageConfig, result: FanoutResult,
                          cursor: int) -> None:
        queue = list(reversed(todo))
        failed: list[Exception] = []

        async def drain(session: MailSender) -> None:
            while queue and not failed:  # after a failure, the others finish (and record) what they are sending
                recipient = queue.pop()
                try:
                    outcome = await self._deliver(session, notification, recipient, cfg)
                except Exception as exc:  # an SMTP outage (ApplicationError) or a bug: stop taking more
                    failed.append(exc)
                    return
                await _db(self._store.mark_sent, notification.notification_id, [recipient.subscriber_id], outcome)
                if outcome == "sent":
                    result.sent += 1
                else:
                    result.refused += 1
                activity.heartbeat(cursor)  # keeps the attempt alive (and cancellable) inside a slow batch

        async with asyncio.TaskGroup() as group:  # a cancelled attempt (the worker stops) cancels every drain
            for session in sessions[: len(todo)]:
                group.create_task(drain(session))
        if failed:
            raise failed[0]  # Temporal classifies an ApplicationError itself

    async def _deliver(self, session: MailSender, notification: Notification, recipient: Recipient,
                       cfg: StatusPageConfig) -> str:
        from activities.mail import RecipientRefused

        message = _notification_message(cfg, notification, recipient, self._base(cfg), self._from())
        try:
            await session.send(message)
        except RecipientRefused as refused:
            log.warning("status mail %s: subscriber %d refused by the mail server (SMTP %d)",
                        notification.notification_id, recipient.subscriber_id, refused.code)
            return "refused"
        return "sent"

    def _need_mailer(self) -> Mailer:
        if self._mailer is None:
            raise errors.not_configured("status mail is off: set INCIDENTFLOW_SMTP_URL")
        return self._mailer

    def _base(self, cfg: StatusPageConfig) -> str:
        base = self._links_base or cfg.url
        if not base:
            raise errors.not_configured("status mail needs the public URL for its links: set statuspage.url")
        return base.rstrip("/")

    def _from(self) -> tuple[str, str]:
        mailer = self._need_mailer()
        return mailer.sender, mailer.sender_name


async def _db(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a store call in a thread; a database failure retries, typed, without the SQL or its values."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except Exception as exc:
        from sqlalchemy.exc import SQLAlchemyError  # loaded already: the store uses it

        if not isinstance(exc, SQLAlchemyError):
            raise
        raise ApplicationError(f"records store failed: {type(exc).__name__}", type=errors.UNAVAILABLE) from None


def _resume_from() -> int:
    details = activity.info().heartbeat_details
    return details[0] if details and isinstance(details[0], int) else 0


def _link(base: str, path: str, token: str) -> str:
    return f"{base}{path}?token={quote(token, safe='')}"


def _domain(sender: str) -> str:
    return sender.rpartition("@")[2] or "localhost"


def _footer(cfg: StatusPageConfig, recipient_components: Collection[str], unsubscribe_url: str) -> Footer:
    from activities.mail import Footer

    names = [c.name if (c := cfg.component(cid)) else cid for cid in recipient_components]
    about = ", ".join(names) if names else "all components"
    return Footer(unsubscribe_url=unsubscribe_url,
                  reason=f"You get this mail because you subscribed to {cfg.title} updates about {about}.")


def _notification_message(cfg: StatusPageConfig, n: Notification, recipient: Recipient, base: str,
                          sender: tuple[str, str]) -> EmailMessage:
    from activities.mail import build_message

    address, name = sender
    key = hashlib.sha256(n.notification_id.encode()).hexdigest()[:24]
    return build_message(
        sender=address, sender_name=name or cfg.title, to=recipient.email, subject=n.subject, text=n.text,
        footer=_footer(cfg, recipient.components, _link(base, UNSUBSCRIBE_PATH, recipient.unsubscribe_token)),
        message_id=f"<{key}.{recipient.subscriber_id}@{_domain(address)}>",  # a repeat keeps its Message-ID
        list_id=f"<status.{_domain(address)}>", link=n.url)


def _confirmation(cfg: StatusPageConfig, tokens: SubscribeTokens, components: Collection[str], base: str,
                  sender: tuple[str, str]) -> EmailMessage:
    from email.utils import make_msgid

    from activities.mail import build_message

    address, name = sender
    about = ", ".join(c.name if (c := cfg.component(cid)) else cid for cid in components) or "all components"
    change = " (this replaces the components you get mail about now)" if tokens.already_confirmed else ""
    text = (f"Someone, probably you, asked for {cfg.title} status updates about {about} at this address{change}.\n\n"
            f"Confirm within 7 days to start receiving them:\n{_link(base, CONFIRM_PATH, tokens.confirm_token)}\n\n"
            "If it was not you, ignore this mail: nothing will be sent unless the link is used.")
    return build_message(
        sender=address, sender_name=name or cfg.title, to=tokens.email,
        subject=f"Confirm your subscription to {cfg.title} status updates", text=text,
        footer=_footer(cfg, [], _link(base, UNSUBSCRIBE_PATH, tokens.unsubscribe_token)),
        message_id=make_msgid(domain=_domain(address)))
