"""Capability ports. Adapters (log, Slack, PagerDuty, …) implement these; activities hold one each."""

from __future__ import annotations

from typing import Protocol

from incidentflow.models import NotifyInput


class Notifier(Protocol):
    async def notify(self, message: NotifyInput) -> None:
        """Deliver a reminder/notice. Must be idempotent on `message.dedup_key`."""
