"""Config of the learning half: `postmortem:` (templates by severity, the sink) and `action_items:`
(reminders, the ticket tracker, the weekly review digest). Secrets are not here: they come from the
environment (`LearningSecrets`), bound to the hosts configured here."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.models.base import SeverityKey, _Strict

BUILTIN_TEMPLATES = ("default", "google-sre", "contributors")
TEMPLATE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class GitHubRepo(_Strict):
    api_url: str = "https://api.github.com"  # GitHub Enterprise: https://HOST/api/v3
    repo: str = Field(..., description="owner/name")

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        if not REPO.match(v):
            raise ValueError("must be owner/name, e.g. acme/postmortems")
        return v


class GitHubSinkConfig(GitHubRepo):
    base_branch: str = "main"
    directory: str = "postmortems"  # where in the repository the documents go
    branch_prefix: str = "postmortem/"


class WebhookSinkConfig(_Strict):
    url: str = Field(..., description="receives the draft (POST, signed) and serves the final text (GET)")


class SinkConfig(_Strict):
    kind: Literal["directory", "github", "webhook"] = "directory"
    directory: str | None = None  # default: <data_dir>/postmortems
    link_base: str | None = None  # directory sink: the URL the files are served under (e.g. a wiki)
    github: GitHubSinkConfig | None = None
    webhook: WebhookSinkConfig | None = None

    @model_validator(mode="after")
    def _complete(self) -> SinkConfig:
        if self.kind == "github" and self.github is None:
            raise ValueError("kind github needs github: {repo: owner/name}")
        if self.kind == "webhook" and self.webhook is None:
            raise ValueError("kind webhook needs webhook: {url: https://…}")
        return self


class PostmortemConfig(_Strict):
    templates: dict[SeverityKey, str] = Field(default_factory=dict, description="severity -> template name")
    default_template: str = Field("default", pattern=TEMPLATE_NAME)
    template_dir: str | None = None  # the users' own templates (<name>.md.j2), found before the built-in ones
    sink: SinkConfig = Field(default_factory=SinkConfig)

    @field_validator("templates")
    @classmethod
    def _names(cls, v: dict[object, str]) -> dict[object, str]:
        for name in v.values():
            if not re.match(TEMPLATE_NAME, name):
                raise ValueError(f"template name {name!r}: letters, digits, '.', '_' and '-' only")
        return v

    def template_for(self, severity: str) -> str:
        return next((name for sev, name in self.templates.items() if str(getattr(sev, "value", sev)) == severity),
                    self.default_template)


class GitHubIssuesConfig(GitHubRepo):
    labels: list[str] = Field(default_factory=lambda: ["incident-follow-up"])


class JiraConfig(_Strict):
    url: str = Field(..., description="https://YOURSITE.atlassian.net")
    project: str = Field(..., pattern=r"^[A-Z][A-Z0-9_]{1,19}$")
    issue_type: str = "Task"
    done_transition: str = "Done"  # the transition's name that closes an issue
    reopen_transition: str = "To Do"


class TrackerConfig(_Strict):
    kind: Literal["none", "github", "jira"] = "none"
    github: GitHubIssuesConfig | None = None
    jira: JiraConfig | None = None

    @model_validator(mode="after")
    def _complete(self) -> TrackerConfig:
        if self.kind == "github" and self.github is None:
            raise ValueError("kind github needs github: {repo: owner/name}")
        if self.kind == "jira" and self.jira is None:
            raise ValueError("kind jira needs jira: {url: …, project: OPS}")
        return self


class DigestConfig(_Strict):
    """The weekly review of open and overdue items (a Temporal Schedule)."""

    enabled: bool = True
    day: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] = "monday"
    time: dt.time = Field(default=dt.time(9, 0))
    timezone: str = "UTC"
    channel: str | None = None  # Slack channel (default: slack.stakeholder_channel)
    email: bool = True  # also to stakeholder_emails

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name like Europe/Berlin)") from None
        return v


class ActionItemsConfig(_Strict):
    remind_at: dt.time = Field(default=dt.time(9, 0), description="reminders go out at this UTC time of day")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    digest: DigestConfig = Field(default_factory=DigestConfig)


class LearningSecrets(BaseSettings):
    """Tokens of the learning half, from the environment only; each goes only to its configured host."""

    model_config = SettingsConfigDict(env_prefix="INCIDENTFLOW_", extra="ignore", hide_input_in_errors=True)

    github_token: SecretStr | None = None  # postmortem PRs and GitHub Issues (api_url's host only)
    github_webhook_secret: SecretStr | None = None  # X-Hub-Signature-256 of GitHub's issue webhooks
    jira_email: str | None = None
    jira_api_token: SecretStr | None = None  # Jira Cloud basic auth (email:token), the jira.url host only
    jira_webhook_secret: SecretStr | None = None  # X-Hub-Signature of Jira's webhooks
    postmortem_webhook_secret: SecretStr | None = None  # signs the webhook sink's requests

