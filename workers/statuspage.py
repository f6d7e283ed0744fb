"""The status page's activities, built from Settings: the page writer, the Atlassian Statuspage mirror (when
its page id and key are set), and status mail (the records store opens on first use, so a worker that never
mails never touches a database; SMTP only when INCIDENTFLOW_SMTP_URL is set)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import httpx

from activities.stakeholders import StakeholderActivities
from activities.statuspage import StatusPageActivities
from activities.statuspage_mirror import StatuspageMirrorActivities
from activities.subscribers import StatusMailActivities
from domain.config import IncidentflowConfig, Settings
from domain.statuspage.models import StatusPageConfig

log = logging.getLogger(__name__)


class LazyRecords:
    """The worker's records store (one engine for subscribers and the archive), opened and migrated the first time
    an activity needs it: a worker that never mails or archives never touches a database."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._store: Any = None
        self._lock = threading.Lock()

    def warm_in_background(self) -> None:
        """Open (and migrate) the store now, in a thread: every incident is archived, and the first archive
        should not pay the imports and the migration (about a second of CPU, holding the event loop back
        meanwhile). A store that cannot be opened is reported by the first activity that needs it."""
        def warm() -> None:
            try:
                self()
            except Exception as exc:
                log.warning("records store not opened in advance: %s", exc)
        threading.Thread(target=warm, name="incidentflow-records-warm-up", daemon=True).start()

    def __call__(self) -> Any:
        with self._lock:
            if self._store is None:
                from activities.records import RecordStore, database_url

                url = database_url(self._settings.data_dir, self._settings.database_url.get_secret_value()
                                   if self._settings.database_url else None)
                key = self._settings.subscriber_key
                self._store = RecordStore.open(url, subscriber_key=key.get_secret_value().encode() if key else None)
            return self._store


class LazyStore:
    """The subscriber store of the worker's records store, opened on first use."""

    def __init__(self, records: LazyRecords) -> None:
        self._records = records

    def __getattr__(self, name: str) -> Any:
        return getattr(self._records().subscribers, name)


def statuspage_activities(settings: Settings, config: Callable[[], IncidentflowConfig], chat: object = None,
                          http: httpx.AsyncClient | None = None, records: LazyRecords | None = None,
                          directory: object = None) -> list[Callable[..., Any]]:
    """The status page's activities, and the stakeholders' (their channel is posted to through `chat` when it
    is Slack)."""
    mirror = None
    if settings.statuspage_io_page_id and settings.statuspage_io_api_key:
        from activities.statuspage_io import AtlassianStatuspage

        mirror = AtlassianStatuspage(http or httpx.AsyncClient(timeout=10), page_id=settings.statuspage_io_page_id,
                                     api_key=settings.statuspage_io_api_key, base_url=settings.statuspage_io_url,
                                     component_ids=settings.statuspage_io_components)

    def page_config() -> StatusPageConfig:
        return config().statuspage.model_copy(update={"mirror": mirror is not None})

    page = StatusPageActivities(page_config, settings.data_dir)
    mailer = None
    if settings.smtp_url:
        from activities.mail import SmtpMailer

        mailer = SmtpMailer.from_url(settings.smtp_url.get_secret_value())
    mail = StatusMailActivities(LazyStore(records or LazyRecords(settings)), mailer, lambda: config().statuspage)  # type: ignore[arg-type]
    mirrors = StatuspageMirrorActivities(mirror)
    poster = chat if hasattr(chat, "post_once") and hasattr(chat, "channel_id") else None
    listing = directory if hasattr(directory, "action_items") else None  # the resolution's action items
    stakeholders = StakeholderActivities(config, poster, mailer, listing)  # type: ignore[arg-type]
    return [page.load_statuspage_config, page.publish_page, page.draft_public_update,
            stakeholders.send_stakeholder_update,
            mail.request_subscription, mail.confirm_subscription, mail.unsubscribe, mail.notify_subscribers,
            mirrors.mirror_update, mirrors.mirror_maintenance]
