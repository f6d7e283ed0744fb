"""Status mail against a real SMTP server (aiosmtpd, tests/fakes/smtp.py) and the real records store:
the SMTP URL, the messages, double opt-in, and fan-outs that are interrupted and retried."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import errors
from activities.mail import SmtpMailer, build_message, parse_smtp_url
from activities.records import RecordStore
from activities.subscribers import StatusMailActivities
from domain.statuspage.mail import (
    FanoutResult,
    Notification,
    NotificationKind,
    SubscriptionOutcome,
    SubscriptionRequest,
    TokenInput,
    token_digest,
)
from domain.statuspage.models import ComponentConfig, StatusPageConfig
from tests.fakes.smtp import Received, SmtpServer

PAGE = StatusPageConfig(title="Acme Status", url="https://status.example.com", components=[
    ComponentConfig(id="api", name="Public API"), ComponentConfig(id="web", name="Website")])
TOKEN = re.compile(r"token=([A-Za-z0-9_%-]+)")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordStore]:
    opened = RecordStore.open(f"sqlite:///{tmp_path}/records.db")
    yield opened
    opened.close()


def activities(store: RecordStore, smtp: SmtpServer | None, concurrency: int = 4) -> StatusMailActivities:
    mailer = SmtpMailer.from_url(smtp.url(sender="status@example.com")) if smtp else None
    return StatusMailActivities(store.subscribers, mailer, lambda: PAGE, batch_size=100, concurrency=concurrency)


def subscribe_confirmed(store: RecordStore, count: int, components: list[str], prefix: str) -> list[str]:
    emails = [f"{prefix}{i}@example.com" for i in range(count)]
    for email in emails:
        store.subscribers.confirm(store.subscribers.subscribe(email, components).confirm_token)
    return emails


def notice(nid: str = "incident-20260101-0900-api:public:1", components: list[str] | None = None) -> Notification:
    return Notification(notification_id=nid, kind=NotificationKind.update, subject="[Acme] API errors: identified",
                        text="We found the cause of failing API requests.\n\nNext update by 09:30 UTC.",
                        components=["api"] if components is None else components,
                        url="https://status.example.com/#incident-1")


def body(received: Received) -> str:
    part = received.message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------- the SMTP URL


def test_the_smtp_url_carries_server_login_tls_and_sender() -> None:
    s = parse_smtp_url("smtp://mailer:p%40ss%20w@smtp.example.com:2525?from=status@example.com&name=Acme%20Status")
    assert (s.host, s.port, s.username, s.password, s.sender) == (
        "smtp.example.com", 2525, "mailer", "p@ss w", "status@example.com")
    assert s.starttls is True and not s.implicit_tls  # credentials: STARTTLS required
    assert "p@ss" not in repr(s) and "p@ss" not in s.redacted() and "p@ss" not in repr(SmtpMailer(s))
    plain = parse_smtp_url("smtp://relay.internal?from=status@example.com")
    assert (plain.port, plain.starttls, plain.username) == (587, None, None)  # STARTTLS when offered
    tls = parse_smtp_url("smtps://u:p@smtp.example.com?from=status@example.com&timeout=5")
    assert (tls.port, tls.implicit_tls, tls.timeout) == (465, True, 5.0)


@pytest.mark.parametrize(("url", "problem"), [
    ("http://x?from=a@b.com", "expected smtp://"),
    ("smtp://x", "from= is required"),
    ("smtp://x?from=nobody", "from=: not an address"),
    ("smtp://x?from=a@b.com&tls=yes", "unknown parameter tls"),
    ("smtp://x?from=a@b.com&starttls=maybe", "starttls= must be true or false"),
    ("smtp://u:hunter2@mail.example.com?from=a@b.com&starttls=false", "refusing to send credentials unencrypted"),
])
def test_a_wrong_smtp_url_is_named_and_its_password_never_shown(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as err:
        parse_smtp_url(url)
    assert str(err.value).startswith("INCIDENTFLOW_SMTP_URL: ") and "hunter2" not in str(err.value)


# ------------------------------------------------------------------------------------- sending


async def test_mail_goes_out_over_starttls_with_a_login_and_the_password_stays_secret(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password = "s3cret-Pa55"
    with SmtpServer(tls=True, users={"mailer": password}) as server:
        mailer = SmtpMailer.from_url(server.url(user="mailer", password=password))
        await mailer.send(build_message(sender="status@example.com", sender_name="Acme", to="a@example.com",
                                        subject="hello", text="body", footer=None, message_id="<1@example.com>"))
        assert server.logins == ["mailer"] and server.count_by_recipient() == {"a@example.com": 1}
        wrong = SmtpMailer.from_url(server.url(user="mailer", password="not-" + password))
        with pytest.raises(ApplicationError) as err:
            await wrong.send(build_message(sender="status@example.com", sender_name="", to="a@example.com",
                                           subject="x", text="x", footer=None, message_id="<2@example.com>"))
    assert err.value.type == errors.REJECTED and err.value.non_retryable and "login" in err.value.message
    assert password not in err.value.message and password not in caplog.text


async def test_an_unreachable_server_is_a_retryable_failure() -> None:
    with SmtpServer() as server:
        url = server.url()
    with pytest.raises(ApplicationError) as err:
        await SmtpMailer.from_url(url).send(build_message(sender="status@example.com", sender_name="", to="a@b.co",
                                                          subject="x", text="x", footer=None, message_id="<3@x.co>"))
    assert err.value.type == errors.UNAVAILABLE and not err.value.non_retryable


# ------------------------------------------------------------------------------------- double opt-in


async def test_subscribe_confirm_notify_and_one_click_unsubscribe(store: RecordStore, smtp: SmtpServer) -> None:
    acts, env = activities(store, smtp), ActivityEnvironment()
    result = await env.run(acts.request_subscription, SubscriptionRequest(email="Pat@Example.com", components=["api"]))
    assert result.outcome == SubscriptionOutcome.confirmation_sent
    (mail,) = smtp.messages()
    assert mail.recipients == ("Pat@Example.com",) and "Confirm" in str(mail.message["Subject"])
    assert "Public API" in body(mail) and "https://status.example.com/status/confirm?token=" in body(mail)
    assert await env.run(acts.notify_subscribers, notice()) == FanoutResult(notification_id=notice().notification_id)

    token = TOKEN.search(body(mail)).group(1)  # type: ignore[union-attr]
    confirmed = await env.run(acts.confirm_subscription, TokenInput(digest=token_digest(token)))
    assert confirmed.outcome == SubscriptionOutcome.confirmed and confirmed.components == ["api"]
    again = await env.run(acts.confirm_subscription, TokenInput(digest=token_digest(token)))
    assert again.outcome == SubscriptionOutcome.unknown_token

    assert (await env.run(acts.notify_subscribers, notice())).sent == 1
    update = smtp.messages()[-1]
    header = str(update.message["List-Unsubscribe"])
    assert header.startswith("<https://status.example.com/status/unsubscribe?token=") and header.endswith(">")
    assert update.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert header[1:-1] in body(update) and "Public API" in body(update)
    assert str(update.message["From"]) == "Acme Status <status@example.com>"
    assert update.message["Auto-Submitted"] == "auto-generated"
    assert update.message.get_body(("html",)) is not None

    unsubscribe = TOKEN.search(header).group(1)  # type: ignore[union-attr]
    gone = await env.run(acts.unsubscribe, TokenInput(digest=token_digest(unsubscribe)))
    assert gone.outcome == SubscriptionOutcome.unsubscribed
    assert (await env.run(acts.notify_subscribers, notice("incident-x:public:2"))).sent == 0


async def test_without_smtp_nothing_is_sent_and_the_result_says_so(store: RecordStore) -> None:
    subscribe_confirmed(store, 2, [], "quiet")
    acts, env = activities(store, None), ActivityEnvironment()
    assert (await env.run(acts.notify_subscribers, notice())).not_configured
    with pytest.raises(ApplicationError) as err:
        await env.run(acts.request_subscription, SubscriptionRequest(email="a@example.com"))
    assert err.value.type == errors.NOT_CONFIGURED and "INCIDENTFLOW_SMTP_URL" in err.value.message


async def test_without_a_public_url_no_mail_goes_out_for_it_could_not_carry_an_unsubscribe_link(
        store: RecordStore, smtp: SmtpServer) -> None:
    subscribe_confirmed(store, 2, [], "nourl")
    acts = StatusMailActivities(store.subscribers, SmtpMailer.from_url(smtp.url()), lambda: StatusPageConfig())
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(acts.notify_subscribers, notice(components=[]))
    assert err.value.type == errors.NOT_CONFIGURED and "statuspage.url" in err.value.message
    assert smtp.messages() == []
    linked = StatusMailActivities(store.subscribers, SmtpMailer.from_url(smtp.url()), lambda: StatusPageConfig(),
                                  links_base="https://api.example.com/")
    assert (await ActivityEnvironment().run(linked.notify_subscribers, notice(components=[]))).sent == 2
    assert "<https://api.example.com/status/unsubscribe?token=" in str(smtp.messages()[0].message["List-Unsubscribe"])


# ------------------------------------------------------------------------------------- fan-out


async def test_a_thousand_subscribers_are_each_mailed_once_and_filters_hold(store: RecordStore,
                                                                             smtp: SmtpServer) -> None:
    api = subscribe_confirmed(store, 400, ["api"], "api")
    web = subscribe_confirmed(store, 300, ["web"], "web")
    everything = subscribe_confirmed(store, 300, [], "all")
    acts, env = activities(store, smtp), ActivityEnvironment()
    first = await env.run(acts.notify_subscribers, notice("n-api", ["api"]))
    assert (first.sent, first.already_sent, first.refused) == (700, 0, 0)
    assert smtp.count_by_recipient() == {e: 1 for e in api + everything}
    second = await env.run(acts.notify_subscribers, notice("n-web", ["web"]))
    assert second.sent == 600
    everyone = await env.run(acts.notify_subscribers, notice("n-all", []))
    assert everyone.sent == 1000
    counts = smtp.count_by_recipient()
    assert {counts[e] for e in api} == {2} and {counts[e] for e in web} == {2} and {counts[e] for e in everything} == {3}
    rerun = await env.run(acts.notify_subscribers, notice("n-api", ["api"]))  # a retry after the fact
    assert (rerun.sent, rerun.already_sent) == (0, 700)
    assert len(smtp.messages()) == 2300


async def test_an_smtp_outage_mid_fanout_then_a_retry_mails_everyone_exactly_once(store: RecordStore,
                                                                                   smtp: SmtpServer) -> None:
    emails = subscribe_confirmed(store, 300, ["api"], "out")
    acts, env = activities(store, smtp), ActivityEnvironment()
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.extend(details)
    smtp.fail_after(150)
    with pytest.raises(ApplicationError) as err:
        await env.run(acts.notify_subscribers, notice())
    assert err.value.type == errors.UNAVAILABLE and not err.value.non_retryable
    assert len(smtp.messages()) == 150
    smtp.fail_after(None)
    result = await retry(acts, beats, notice())
    assert smtp.count_by_recipient() == {e: 1 for e in emails}
    assert result.sent + result.already_sent == 300 - _cursor(beats) and result.sent == 150


async def test_a_fanout_cancelled_mid_way_and_retried_repeats_at_most_the_messages_in_flight(
        store: RecordStore, smtp: SmtpServer) -> None:
    emails = subscribe_confirmed(store, 500, [], "kill")
    concurrency = 4
    acts, env = activities(store, smtp, concurrency=concurrency), ActivityEnvironment()
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.extend(details)
    loop = asyncio.get_running_loop()

    def stop_at_230(_: Received) -> None:
        if len(smtp.received) == 230:
            loop.call_soon_threadsafe(env.cancel)  # the worker goes away mid-batch

    smtp.on_message = stop_at_230
    with pytest.raises(asyncio.CancelledError):
        await env.run(acts.notify_subscribers, notice(components=[]))
    smtp.on_message = None
    await asyncio.sleep(0.2)  # let messages already handed to the server land
    before = len(smtp.messages())
    assert 230 <= before < 500
    await retry(acts, beats, notice(components=[]))
    counts = smtp.count_by_recipient()
    assert set(counts) == set(emails)  # none lost
    repeated = [e for e, n in counts.items() if n > 1]
    assert all(n <= 2 for n in counts.values()) and len(repeated) <= concurrency, repeated


async def test_a_refused_address_is_recorded_and_not_retried(store: RecordStore, smtp: SmtpServer) -> None:
    subscribe_confirmed(store, 5, [], "ok")
    subscribe_confirmed(store, 1, [], "bounce")
    smtp.refuse("bounce0@example.com")
    acts, env = activities(store, smtp), ActivityEnvironment()
    first = await env.run(acts.notify_subscribers, notice(components=[]))
    assert (first.sent, first.refused) == (5, 1)
    again = await env.run(acts.notify_subscribers, notice(components=[]))
    assert (again.sent, again.already_sent) == (0, 6)
    assert "bounce0@example.com" not in smtp.count_by_recipient()


async def test_a_repeated_message_keeps_its_message_id(store: RecordStore, smtp: SmtpServer) -> None:
    (email,) = subscribe_confirmed(store, 1, [], "same")
    acts = activities(store, smtp)
    await ActivityEnvironment().run(acts.notify_subscribers, notice("n-1", []))
    store.subscribers.prune(deliveries_older_than=timedelta(0))  # forget: it goes again
    await ActivityEnvironment().run(acts.notify_subscribers, notice("n-1", []))
    await ActivityEnvironment().run(acts.notify_subscribers, notice("n-2", []))
    ids = [str(m.message["Message-ID"]) for m in smtp.messages()]
    assert ids[0] == ids[1] != ids[2] and ids[0].endswith("@example.com>")


async def retry(acts: StatusMailActivities, beats: list[object], notification: Notification) -> FanoutResult:
    """Run the activity again as Temporal's retry would: a new attempt with the last heartbeat's details."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=2, heartbeat_details=beats[-1:])
    return await env.run(acts.notify_subscribers, notification)


def _cursor(beats: list[object]) -> int:
    return int(beats[-1]) if beats else 0  # type: ignore[call-overload]
