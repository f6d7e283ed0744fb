"""The learning half's activities, built from config and the environment: the postmortem sink (a directory by
default, a GitHub pull request or a signed webhook), the ticket tracker (none, GitHub Issues or Jira Cloud) and
the weekly digest (Slack channel and stakeholder mail through the ports the stakeholders use)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from activities.action_items import ActionActivities
from activities.archive import ArchiveActivities
from activities.ports import ActionDirectory, PostmortemSink, Tracker
from activities.postmortem import PostmortemActivities
from domain.config import IncidentflowConfig, Settings
from domain.postmortem.config import LearningSecrets
from workers.statuspage import LazyRecords


def learning_activities(settings: Settings, config: Callable[[], IncidentflowConfig], chat: object = None,
                        directory: object = None, sink: PostmortemSink | None = None,
                        tracker: Tracker | None = None, secrets: LearningSecrets | None = None,
                        http: httpx.AsyncClient | None = None, mailer: object = None,
                        records: LazyRecords | None = None) -> list[Callable[..., Any]]:
    from activities.postmortem_sinks import build_sink, build_tracker

    secrets = secrets or LearningSecrets()
    cfg = config()
    remote = cfg.postmortem.sink.kind != "directory" or cfg.action_items.tracker.kind != "none"
    client = http or (httpx.AsyncClient(timeout=20) if remote else None)  # none for the default directory sink
    sink = sink or build_sink(cfg.postmortem.sink, settings.data_dir, secrets, client)
    if tracker is None:
        tracker = build_tracker(cfg.action_items.tracker, secrets, client)
    base = Path(settings.config).resolve().parent if settings.config else Path.cwd()
    postmortems = PostmortemActivities(config, sink, base)
    poster = chat if hasattr(chat, "post_once") and hasattr(chat, "channel_id") else None
    if mailer is None and settings.smtp_url:
        from activities.mail import SmtpMailer

        mailer = SmtpMailer.from_url(settings.smtp_url.get_secret_value())
    listing: ActionDirectory | None = directory if hasattr(directory, "action_items") else None  # type: ignore[assignment]
    actions = ActionActivities(config, tracker, listing, poster, mailer)  # type: ignore[arg-type]
    archive = ArchiveActivities(LazyArchive(settings, records), config)
    return [postmortems.draft_postmortem, postmortems.update_postmortem, postmortems.collect_postmortem,
            actions.open_ticket, actions.change_ticket, actions.send_digest,
            archive.archive_incident, archive.archive_postmortem, archive.archive_action]


class LazyArchive:
    """The archive of the worker's records store (`workers.statuspage.LazyRecords`), opened on first use."""

    def __init__(self, settings: Settings, records: LazyRecords | None = None) -> None:
        self._records = records or LazyRecords(settings)

    def __call__(self) -> Any:
        return self._records().archive
