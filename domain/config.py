"""Settings from the environment (INCIDENTFLOW_*) and the YAML config file, both validated."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from domain.models import IncidentPolicy, Severity
from domain.models.base import Duration, SeverityKey, _Strict, parse_duration
from domain.models.oncall import EscalationPolicy, Schedule
from domain.postmortem.config import ActionItemsConfig, PostmortemConfig
from domain.reports.config import ReportsConfig
from domain.routing_config import Routing as Routing
from domain.routing_config import RoutingRule as RoutingRule
from domain.settings import RunbookSecret as RunbookSecret  # re-exported: Settings moved to domain.settings
from domain.settings import Settings as Settings
from domain.statuspage.models import StatusPageConfig
from domain.statuspage.policy import public_policy


class Person(_Strict):
    id: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: str
    email: str | None = None
    slack: str | None = None
    timezone: str = "UTC"
    notify: list[str] = Field(default_factory=list, description="paging channels: log, pagerduty, webhook, slack (a direct message)")
    github: str | None = None  # login: assignee of the action item tickets they own
    jira: str | None = None  # Jira Cloud accountId, likewise
    team: str | None = None  # reports group action item follow-through by the owner's team


class Service(_Strict):
    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=63)
    description: str = ""
    owner: str | None = None
    runbook: str | None = None
    dashboard: str | None = None
    escalation_policy: str | None = None
    stakeholder_channel: str | None = None  # internal updates for this service (else slack.stakeholder_channel)


class PostmortemPolicy(_Strict):
    required_for: list[Severity] = Field(default_factory=lambda: [Severity.SEV1, Severity.SEV2])
    business_days: int = Field(5, ge=1, le=60)
    remind_before: timedelta = timedelta(days=1)
    overdue_every: timedelta = timedelta(days=1)
    max_overdue_reminders: int = Field(3, ge=0, le=30)

    _durations = field_validator("remind_before", "overdue_every", mode="before")(parse_duration)


class ProcessPolicy(_Strict):
    first_update_after: timedelta = timedelta(minutes=10)
    update_every: dict[SeverityKey, Duration | None] = Field(default_factory=lambda: IncidentPolicy().update_every)
    monitoring_window: timedelta = timedelta(minutes=15)
    auto_close_after: timedelta | None = timedelta(hours=24)
    postmortem: PostmortemPolicy = Field(default_factory=PostmortemPolicy)

    _durations = field_validator("first_update_after", "monitoring_window", mode="before")(parse_duration)

    @field_validator("auto_close_after", mode="before")
    @classmethod
    def _optional_duration(cls, v: Any) -> timedelta | None:
        return None if v is None else parse_duration(v)

    @field_validator("update_every", mode="after")
    @classmethod
    def _cadence(cls, v: dict[Severity, timedelta | None]) -> dict[Severity, timedelta | None]:
        return {**IncidentPolicy().update_every, **v}  # severities not named keep their default


def hash_token(token: str) -> str:
    """What `api_tokens[].hash` holds: the SHA-256 of the token (the config never holds the token)."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


class ApiToken(_Strict):
    """A named HTTP API token: whom it acts for and what it may do (`admin` implies every scope)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # a pasted token never echoes

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=63)
    person: str | None = Field(None, description="people[].id: the actor of this token's writes and approvals")
    scopes: list[Literal["read", "write", "approve", "admin", "act-as"]] = Field(..., min_length=1)
    hash: str = Field(..., description="sha256:<64 hex digits> of the token")

    @field_validator("hash")
    @classmethod
    def _hashed(cls, v: str) -> str:
        kind, _, digest = v.strip().partition(":")
        if kind != "sha256" or len(digest) != 64 or digest.strip("0123456789abcdefABCDEF"):
            raise ValueError("must be sha256:<64 hex digits>, the SHA-256 of the token, never the token itself "
                             "(python -c 'from domain.config import hash_token; print(hash_token(input()))')")
        return f"sha256:{digest.lower()}"


class HandoffConfig(_Strict):
    """What the outgoing on-call wants the incoming one to know (the handoff note's last sections)."""

    watch_items: list[str] = Field(default_factory=list)  # scheduled deploys, maintenance windows
    notes: list[str] = Field(default_factory=list)  # who is away, runbooks changed


class SlackConfig(_Strict):
    """Who may act from Slack: people map by `slack` user id or `email`; others are read-only."""

    allow_everyone: bool = False  # let Slack users who are not in `people` run every command
    invite: list[str] = Field(default_factory=list, description="people invited to every incident channel")
    stakeholder_channel: str | None = None  # internal status updates and resolutions for stakeholders


class IncidentflowConfig(_Strict):
    people: list[Person] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    policy: ProcessPolicy = Field(default_factory=ProcessPolicy)
    routing: Routing = Field(default_factory=Routing)
    schedules: list[Schedule] = Field(default_factory=list)
    escalation_policies: list[EscalationPolicy] = Field(default_factory=list)
    handoff: HandoffConfig = Field(default_factory=HandoffConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    groups: dict[str, list[str]] = Field(default_factory=dict, description="named groups of people, e.g. "
                                         "runbook approvers (`approvers: [group:sre-leads]`)")
    api_tokens: list[ApiToken] = Field(default_factory=list, description="named HTTP API tokens (hashed)")
    stakeholder_emails: list[str] = Field(default_factory=list, description="internal updates by mail")
    statuspage: StatusPageConfig = Field(default_factory=StatusPageConfig,
                                         description="the public status page: components, templates")
    postmortem: PostmortemConfig = Field(default_factory=PostmortemConfig)  # templates by severity, the sink
    action_items: ActionItemsConfig = Field(default_factory=ActionItemsConfig)  # reminders, tracker, digest
    reports: ReportsConfig = Field(default_factory=ReportsConfig)  # targets shown as met or missed

    @model_validator(mode="after")
    def _routing_knows_services(self) -> IncidentflowConfig:
        self.routing.know_services([s.name for s in self.services])
        return self

    def problems(self) -> list[str]:
        """Cross-references that field validation cannot see (unknown people, schedules, policies)."""
        from domain.oncall import check_references

        found = check_references(self.schedules, self.escalation_policies, {p.id for p in self.people})
        policies = {p.name for p in self.escalation_policies}
        for svc in self.services:
            if svc.escalation_policy and svc.escalation_policy not in policies:
                found.append(f"service {svc.name!r}: escalation_policy {svc.escalation_policy!r} is not defined "
                             f"(escalation_policies: {', '.join(sorted(policies)) or 'none'})")
        found += self.routing.policy_problems(policies)
        people = {p.id for p in self.people}
        for who in self.slack.invite:
            if who not in people:
                found.append(f"slack.invite: {who!r} is not in people")
        for group, members in self.groups.items():
            for who in members:
                if who not in people:
                    found.append(f"groups.{group}: {who!r} is not in people")
        names = {s.name for s in self.services}
        for comp in self.statuspage.components:
            for name in comp.services:
                if names and name not in names:
                    found.append(f"statuspage.components.{comp.id}: service {name!r} is not in services")
        return found + self._token_problems(people)

    def _token_problems(self, people: set[str]) -> list[str]:
        found, names, hashes = [], set(), set()
        for token in self.api_tokens:
            where = f"api_tokens {token.name!r}"
            if token.person is not None and token.person not in people:
                found.append(f"{where}: person {token.person!r} is not in people")
            acting = {"admin", "act-as"} & set(token.scopes)
            if token.person is None and not acting and {"write", "approve"} & set(token.scopes):
                found.append(f"{where}: write and approve act as a person: give `person` (or the act-as scope)")
            if token.name in names or token.hash in hashes:
                found.append(f"{where}: a second token with this name or hash")
            names.add(token.name)
            hashes.add(token.hash)
        return found

    def service(self, name: str | None) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def person(self, id_or_name: str | None) -> Person | None:
        if not id_or_name:
            return None
        return next((p for p in self.people if id_or_name in (p.id, p.name)), None)

    def incident_policy(self) -> IncidentPolicy:
        p = self.policy
        return IncidentPolicy(
            first_update_after=p.first_update_after, update_every=p.update_every,
            reopen_window=self.routing.reopen_window,
            monitoring_window=p.monitoring_window, auto_close_after=p.auto_close_after,
            postmortem_required=p.postmortem.required_for,
            postmortem_business_days=p.postmortem.business_days,
            postmortem_remind_before=p.postmortem.remind_before,
            postmortem_overdue_every=p.postmortem.overdue_every,
            postmortem_max_overdue_reminders=p.postmortem.max_overdue_reminders,
            public=public_policy(self.statuspage),
            stakeholders=bool(self.slack.stakeholder_channel or self.stakeholder_emails
                              or any(s.stakeholder_channel for s in self.services)),
        )



class ConfigError(ValueError):
    """A config file that does not validate; the message names file, line and field."""


def load_config(path: Path | str | None) -> IncidentflowConfig:
    if path is None:
        return IncidentflowConfig()
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the config must be a mapping (people, services, policy)")
    try:
        config = IncidentflowConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
            field = ".".join(str(p) for p in loc) or "(top level)"
            lines.append(f"{path}:{line_of(node, loc)}: {field}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
    problems = config.problems()
    if problems:
        raise ConfigError("\n".join(f"{path}: {p}" for p in problems))
    return config


def line_of(node: yaml.Node | None, loc: list[Any]) -> int:
    """Line of the deepest YAML key or item that a pydantic error location reaches (config and runbooks).

    Reports the key's line (where the field is named), not its value's, which may start below it.
    """
    line = 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if str(k.value) == str(part)), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


class ConfigSource:
    """The worker's view of the YAML config, re-read when the file changes (schedules, overrides and
    policies edited mid-incident apply to the next escalation level). A broken edit keeps the last good
    config and logs why."""

    def __init__(self, path: Path | str | None) -> None:
        self.path = Path(path) if path else None
        self._mtime: float | None = None
        self._config = load_config(self.path)
        self._mtime = self._stat()

    def _stat(self) -> float | None:
        try:
            return self.path.stat().st_mtime if self.path else None
        except OSError:
            return None

    def __call__(self) -> IncidentflowConfig:
        mtime = self._stat()
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                self._config = load_config(self.path)
            except ConfigError as exc:
                import logging

                logging.getLogger("incidentflow.config").error("config reload failed, keeping the last good one: %s", exc)
        return self._config
