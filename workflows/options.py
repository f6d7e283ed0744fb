"""Activity options, named once per integration."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy

# Notifications: quick, retried with backoff for a while; a reminder that cannot be delivered in an
# hour is stale, and the next one is already scheduled.
NOTIFY: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(hours=1),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)),
}

# Reading the worker's config (policies, schedules): local and fast.
CONFIG: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)),
}

# Pages: keep trying through vendor outages and rate limits (the adapter classifies what is worth
# retrying); a page still undelivered after 30 minutes has been overtaken by the escalation anyway.
PAGE: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(minutes=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                maximum_interval=timedelta(minutes=2)),
}

# Chat (Slack): rate limits say when to come back (Retry-After becomes the next retry delay); permanent
# errors are non-retryable at the source. Chat runs beside the incident's timers, never in their way.
CHAT: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "schedule_to_close_timeout": timedelta(minutes=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                maximum_interval=timedelta(minutes=1)),
}

# Which runbooks an alert matches (the worker's runbook files): quick, and bounded — the incident's run
# loop waits for it, and its timers matter more than an automatic diagnostic run.
MATCH: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5),
                                maximum_attempts=3),
}
