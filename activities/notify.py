"""Notification adapters and the activity class that uses them."""

from __future__ import annotations

import logging
from collections import OrderedDict

from temporalio import activity

from activities.ports import Notifier
from domain.models import NotifyInput

log = logging.getLogger("incidentflow.notify")


class LogNotifier:
    """Default adapter: the workflow already wrote the reminder to the timeline; this logs it once.

    Retries of the same activity carry the same dedup key; a bounded memory drops the repeats within
    this process (a log line is harmless to repeat across a restart; chat adapters store message ids).
    """

    def __init__(self, remember: int = 10_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self.delivered: list[NotifyInput] = []

    async def notify(self, message: NotifyInput) -> None:
        if message.dedup_key in self._seen:
            return
        self._seen[message.dedup_key] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        self.delivered.append(message)
        del self.delivered[: -self._remember]
        who = message.recipient or "incident channel"
        log.warning("[%s] %s → %s: %s", message.incident_id, message.kind, who, message.text)


class IncidentActivities:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    @activity.defn
    async def send_notification(self, message: NotifyInput) -> None:
        await self.notifier.notify(message)
