"""Public status page subscribers and the ledger of who got which notification.

Tokens: the confirm token is random and mailed once; only its digest is kept, and it expires. The
unsubscribe token must be in every later mail, so it is derived — HMAC(key, the subscriber's random
salt) — and only its digest is kept too. The key comes from the configuration, or the store makes one
on first use and keeps it in `store_keys` (then whoever reads the database can forge unsubscribe links:
set INCIDENTFLOW_SUBSCRIBER_KEY to keep it out). A changed key re-derives the digests at the next mail,
so links in older mails stop working and new ones do."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from activities.records.schema import deliveries, store_keys, subscriber_components, subscribers
from domain.statuspage.mail import email_key, normalize_email, token_digest

CONFIRM_TTL = timedelta(days=7)
_KEY_NAME = "unsubscribe"


@dataclass(frozen=True)
class SubscribeTokens:
    """What `subscribe` hands to the mailer: the links' tokens exist only here and in the mail."""

    subscriber_id: int
    email: str
    confirm_token: str
    unsubscribe_token: str
    already_confirmed: bool  # the address gets mail already; confirming applies the new components


@dataclass(frozen=True)
class Confirmed:
    subscriber_id: int
    email: str
    components: tuple[str, ...]  # empty: all


@dataclass(frozen=True)
class Recipient:
    subscriber_id: int
    email: str
    unsubscribe_token: str
    components: tuple[str, ...]  # what they asked for (empty: all), for the mail's footer


def utcnow() -> datetime:
    return datetime.now(UTC)


class SubscriberStore:
    """The subscribers API over one engine (thread-safe; every call is one short transaction)."""

    def __init__(self, engine: Engine, key: bytes | None = None, clock: Callable[[], datetime] = utcnow,
                 confirm_ttl: timedelta = CONFIRM_TTL) -> None:
        self._engine, self._clock, self._ttl = engine, clock, confirm_ttl
        self._key: bytes | None = key  # None: the store's own, loaded (or made) on first use

    # ------------------------------------------------------------------ subscribing
    def subscribe(self, email: str, components: Collection[str] = ()) -> SubscribeTokens:
        """Record a request (new address, or new components for a known one) and return the tokens to
        mail. Nothing changes for an already confirmed address until the new link is used."""
        address = normalize_email(email)
        for attempt in (1, 2):
            try:
                with self._engine.begin() as conn:
                    return self._subscribe(conn, address, ",".join(sorted(set(components))))
            except IntegrityError:
                if attempt == 2:  # the same address subscribed concurrently: the second pass updates it
                    raise
        raise AssertionError("unreachable")

    def _subscribe(self, conn: Connection, address: str, pending: str) -> SubscribeTokens:
        now, token = self._clock(), secrets.token_urlsafe(32)
        fields = {"pending_components": pending, "confirm_hash": token_digest(token),
                  "confirm_expires_at": now + self._ttl}
        row = conn.execute(select(subscribers.c.id, subscribers.c.token_salt, subscribers.c.confirmed_at,
                                  subscribers.c.unsubscribe_hash).where(subscribers.c.email_key == email_key(address))).first()
        if row is None:
            salt = secrets.token_hex(16)
            unsubscribe = self._unsubscribe_token(conn, salt)
            key = conn.execute(insert(subscribers).values(
                email=address, email_key=email_key(address), token_salt=salt, created_at=now,
                unsubscribe_hash=token_digest(unsubscribe), **fields)).inserted_primary_key
            assert key is not None
            return SubscribeTokens(int(key[0]), address, token, unsubscribe, already_confirmed=False)
        conn.execute(update(subscribers).where(subscribers.c.id == row.id).values(**fields))
        unsubscribe = self._refreshed(conn, row.id, row.token_salt, row.unsubscribe_hash)
        return SubscribeTokens(row.id, address, token, unsubscribe, already_confirmed=row.confirmed_at is not None)

    def confirm(self, token: str) -> Confirmed | None:
        return self.confirm_digest(token_digest(token))

    def confirm_digest(self, digest: str) -> Confirmed | None:
        """Use a confirm link: the address gets mail (about the components it asked for). None when the
        link is unknown, used, superseded by a newer one, or expired."""
        with self._engine.begin() as conn:
            row = conn.execute(select(subscribers).where(subscribers.c.confirm_hash == digest)).first()
            if row is None or _aware(row.confirm_expires_at) < self._clock():
                return None
            wanted = tuple(c for c in (row.pending_components or "").split(",") if c)
            conn.execute(delete(subscriber_components).where(subscriber_components.c.subscriber_id == row.id))
            if wanted:
                conn.execute(insert(subscriber_components),
                             [{"subscriber_id": row.id, "component": c} for c in wanted])
            conn.execute(update(subscribers).where(subscribers.c.id == row.id).values(
                confirmed_at=row.confirmed_at or self._clock(), confirm_hash=None, confirm_expires_at=None,
                pending_components=None))
            return Confirmed(row.id, row.email, wanted)

    def unsubscribe(self, token: str) -> bool:
        return self.unsubscribe_digest(token_digest(token))

    def unsubscribe_digest(self, digest: str) -> bool:
        """Forget the address (and its deliveries). False when the link matches nobody (any more)."""
        with self._engine.begin() as conn:
            gone = conn.execute(delete(subscribers).where(subscribers.c.unsubscribe_hash == digest))
            return gone.rowcount > 0

    # ------------------------------------------------------------------ fan-out
    def confirmed_batch(self, components: Collection[str], after_id: int = 0, limit: int = 200) -> list[Recipient]:
        """The next `limit` confirmed subscribers after `after_id` (by id) who want mail about any of
        `components` (a subscriber with no filter wants everything; no components: everyone)."""
        sub, sc = subscribers, subscriber_components
        conditions = [sub.c.confirmed_at.is_not(None), sub.c.id > after_id]
        if components:
            any_filter = exists().where(sc.c.subscriber_id == sub.c.id)
            matching = exists().where(and_(sc.c.subscriber_id == sub.c.id, sc.c.component.in_(list(components))))
            conditions.append(or_(~any_filter, matching))
        with self._engine.begin() as conn:
            rows = conn.execute(select(sub.c.id, sub.c.email, sub.c.token_salt, sub.c.unsubscribe_hash)
                                .where(*conditions).order_by(sub.c.id).limit(limit)).all()
            wants: dict[int, list[str]] = {}
            if rows:
                for sid, component in conn.execute(select(sc.c.subscriber_id, sc.c.component)
                                                   .where(sc.c.subscriber_id.in_([r.id for r in rows]))
                                                   .order_by(sc.c.component)):
                    wants.setdefault(sid, []).append(component)
            return [Recipient(r.id, r.email, self._refreshed(conn, r.id, r.token_salt, r.unsubscribe_hash),
                              tuple(wants.get(r.id, ()))) for r in rows]

    def confirmed_for(self, components: Collection[str], batch_size: int = 200,
                      after_id: int = 0) -> Iterator[list[Recipient]]:
        """Every matching confirmed subscriber, in batches by id (each batch its own transaction)."""
        while batch := self.confirmed_batch(components, after_id, batch_size):
            yield batch
            after_id = batch[-1].subscriber_id

    def already_sent(self, notification_id: str, subscriber_ids: Iterable[int]) -> set[int]:
        ids = list(subscriber_ids)
        if not ids:
            return set()
        with self._engine.begin() as conn:
            return set(conn.execute(select(deliveries.c.subscriber_id).where(
                deliveries.c.notification_id == notification_id, deliveries.c.subscriber_id.in_(ids))).scalars())

    def mark_sent(self, notification_id: str, subscriber_ids: Iterable[int], outcome: str = "sent") -> None:
        """Record deliveries (a repeat is ignored; an address unsubscribed meanwhile is skipped)."""
        ids = list(subscriber_ids)
        if not ids:
            return
        rows = select(literal(notification_id), subscribers.c.id, literal(self._clock(), DateTime(timezone=True)),
                      literal(outcome)).where(subscribers.c.id.in_(ids))
        with self._engine.begin() as conn:
            conn.execute(_dialect(conn).insert(deliveries).from_select(
                ["notification_id", "subscriber_id", "sent_at", "outcome"], rows).on_conflict_do_nothing())

    # ------------------------------------------------------------------ housekeeping
    def count_confirmed(self) -> int:
        with self._engine.begin() as conn:
            return int(conn.execute(select(func.count()).select_from(subscribers)
                                    .where(subscribers.c.confirmed_at.is_not(None))).scalar_one())

    def prune(self, deliveries_older_than: timedelta = timedelta(days=90)) -> tuple[int, int]:
        """Forget addresses never confirmed whose link expired, and old ledger rows (a notification is
        never retried that late). Returns (subscribers, deliveries) removed."""
        now = self._clock()
        with self._engine.begin() as conn:
            stale = conn.execute(delete(subscribers).where(
                subscribers.c.confirmed_at.is_(None), subscribers.c.confirm_expires_at < now)).rowcount
            old = conn.execute(delete(deliveries).where(deliveries.c.sent_at < now - deliveries_older_than)).rowcount
        return stale, old

    # ------------------------------------------------------------------ tokens
    def _unsubscribe_token(self, conn: Connection, salt: str) -> str:
        mac = hmac.new(self._load_key(conn), f"unsubscribe\0{salt}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def _refreshed(self, conn: Connection, subscriber_id: int, salt: str, stored: str | None = None) -> str:
        """The subscriber's unsubscribe token; its digest is rewritten when the key changed."""
        token = self._unsubscribe_token(conn, salt)
        if stored != token_digest(token):
            conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id)
                         .values(unsubscribe_hash=token_digest(token)))
        return token

    def _load_key(self, conn: Connection) -> bytes:
        if self._key is None:
            conn.execute(_dialect(conn).insert(store_keys).values(
                name=_KEY_NAME, value=secrets.token_hex(32), created_at=self._clock()).on_conflict_do_nothing())
            value = conn.execute(select(store_keys.c.value).where(store_keys.c.name == _KEY_NAME)).scalar_one()
            self._key = bytes.fromhex(value)
        return self._key


def _dialect(conn: Connection) -> ModuleType:
    """The dialect module whose `insert` has ON CONFLICT DO NOTHING (both spell it alike)."""
    return postgresql if conn.dialect.name == "postgresql" else sqlite


def _aware(moment: datetime | None) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if moment is None:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
