"""Activity options, named once per integration.

Every retry policy names the non-retryable error types of activities/errors.py (the one place that
classifies vendor failures): a refusal fails at once even if an adapter forgot `non_retryable=True`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.common import Priority, RetryPolicy

from activities.errors import NON_RETRYABLE_TYPES

FINAL = list(NON_RETRYABLE_TYPES)

# Task priorities (1 highest, 5 lowest; 3 when unset): when a worker falls behind (an alert storm, a restart),
# the server hands out what wakes people first. Escalations (their workflow tasks and pages) go first; the
# archive, which nobody waits for, last. Priority is not part of a command's identity: replays are unaffected.
URGENT = Priority(priority_key=1)
BACKGROUND = Priority(priority_key=5)

# Notifications: quick, retried with backoff for a while; a reminder that cannot be delivered in an
# hour is stale, and the next one is already scheduled.
NOTIFY: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(hours=1),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1),
                                non_retryable_error_types=FINAL),
}

# Reading the worker's config (policies, schedules): local and fast.
CONFIG: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                                non_retryable_error_types=FINAL),
}

# Pages: keep trying through vendor outages and rate limits (the adapter classifies what is worth
# retrying); a page still undelivered after 30 minutes has been overtaken by the escalation anyway.
PAGE: dict[str, Any] = {
    "priority": URGENT,
    "start_to_close_timeout": timedelta(seconds=30),
    # The paging activities heartbeat (activities/paging.py): a worker killed mid-page is noticed within this, and
    # the retry runs on another worker, instead of after the start-to-close timeout.
    "heartbeat_timeout": timedelta(seconds=10),
    "schedule_to_close_timeout": timedelta(minutes=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                maximum_interval=timedelta(minutes=2), non_retryable_error_types=FINAL),
}

# One escalation step inside the incident (code level 3): the policy read, who is on call, and a level's pages at
# once (each page's vendor call has its own timeout; a whole level gets longer than one page).
ESCALATE: dict[str, Any] = {**PAGE, "start_to_close_timeout": timedelta(seconds=60)}

# Chat (Slack): rate limits say when to come back (Retry-After becomes the next retry delay); permanent
# errors are non-retryable at the source. Chat runs beside the incident's timers, never in their way.
CHAT: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "schedule_to_close_timeout": timedelta(minutes=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                maximum_interval=timedelta(minutes=1), non_retryable_error_types=FINAL),
}

# Which runbooks an alert matches (the worker's runbook files): quick, and bounded — the incident's run
# loop waits for it, and its timers matter more than an automatic diagnostic run.
MATCH: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5),
                                maximum_attempts=3, non_retryable_error_types=FINAL),
}

# Config reads as local activities (escalations of incidents at code level 1): they run inside the workflow task that asks,
# so they cost no activity task and no workflow task of their own. Quick by nature (the worker's files).
LOCAL_CONFIG: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "schedule_to_close_timeout": timedelta(minutes=2),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10),
                                non_retryable_error_types=FINAL),
}

# Runbook steps (plan_step, apply_step): a step that keeps failing is reported, not retried for ever;
# the timeouts depend on the step (workflows/runbook.py), the retry policy does not.
STEP_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                         maximum_interval=timedelta(seconds=30), maximum_attempts=8, non_retryable_error_types=FINAL)

# Writing the public status page's static files: local and quick, retried until it lands — the page must
# not stay behind the incident.
PUBLISH: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                                non_retryable_error_types=FINAL),
}

# Mail to status page subscribers: one activity walks every subscriber and heartbeats its progress, so a
# killed worker is noticed within the heartbeat timeout and the retry resumes where it stopped.
STATUS_MAIL: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=10),
    "heartbeat_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(hours=6),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1),
                                non_retryable_error_types=FINAL),
}

# The Atlassian Statuspage mirror: its rate limit says when to come back (Retry-After); a mirror that stays
# down for hours is given up on (the page of our own is the one that counts).
STATUSPAGE_MIRROR: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "schedule_to_close_timeout": timedelta(hours=2),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                maximum_interval=timedelta(minutes=2), non_retryable_error_types=FINAL),
}

# Postmortem documents and tickets (GitHub, Jira, a webhook, a directory): worth retrying through a vendor's
# bad hour, since the work waits for nobody; the adapters make a retry find what an earlier attempt made.
TRACKER: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "heartbeat_timeout": timedelta(seconds=10),  # the activities heartbeat: a dead worker's attempt retries soon
    "schedule_to_close_timeout": timedelta(hours=6),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                maximum_interval=timedelta(minutes=5), non_retryable_error_types=FINAL),
}

# A person waits for it (`postmortem set`, `postmortem publish`): a few tries, then the error is theirs to see.
DOCUMENT: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(minutes=2),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                maximum_interval=timedelta(seconds=10), non_retryable_error_types=FINAL),
}

# The archive (the records store: a local SQLite file or PostgreSQL): quick, retried through a database restart;
# the incident's run loop waits for it, so a broken database is a timeline warning after a few minutes, not a stall.
ARCHIVE: dict[str, Any] = {
    "priority": BACKGROUND,
    "start_to_close_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(minutes=5),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                maximum_interval=timedelta(seconds=30), non_retryable_error_types=FINAL),
}
