"""Drafts of public updates, written from the incident (Jinja2 templates; the config may override each).

The defaults follow what our users ask of a public update: say what is affected, what is known and what is
being done, and when the next update comes; never "improving stability". A person edits and publishes; only
the severities in `statuspage.auto_publish` publish a draft as it is.

The cause is the incident's as the responders last gave it (an update's theory, the note moving to identified,
the root cause at resolve), word for word: a person reads it before it goes out. Drafts that auto-publish leave it
out (`context_of(cause=False)`): it was written for colleagues and may name hosts, releases or people."""

from __future__ import annotations

from datetime import UTC, datetime

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, Field

from domain.models.common import Phase, Severity
from domain.models.incident import IncidentState
from domain.statuspage.models import (
    ComponentChange,
    ComponentStatus,
    Impact,
    PublicStatus,
    StatusPageConfig,
)

DEFAULTS: dict[PublicStatus, str] = {
    PublicStatus.investigating: (
        "We are investigating a problem with {{ components }}: {{ title }}. Some requests may fail or be slower than "
        "usual until this is fixed. We will post an update by {{ next_update }}."),
    PublicStatus.identified: (
        "We have found the cause of the problem with {{ components }}{% if cause %}: {{ cause }}{% endif %}. "
        "We are working on a fix. We will post an update by {{ next_update }}."),
    PublicStatus.monitoring: (
        "A fix for the problem with {{ components }} is in place and we are watching error rates and latency "
        "to confirm it holds. We will post an update by {{ next_update }}."),
    PublicStatus.resolved: (
        "The problem with {{ components }} is resolved{% if summary %}: {{ summary }}{% endif %}. "
        "{{ components }} {{ 'has' if single else 'have' }} worked normally since {{ resolved_at }}. "
        "We are sorry for the disruption."),
}
_OUTAGE = {Severity.SEV1: ComponentStatus.major_outage, Severity.SEV2: ComponentStatus.partial_outage,
           Severity.SEV3: ComponentStatus.degraded_performance, Severity.SEV4: ComponentStatus.operational}
_IMPACT = {Severity.SEV1: Impact.critical, Severity.SEV2: Impact.major, Severity.SEV3: Impact.minor,
           Severity.SEV4: Impact.none}
_ENV = SandboxedEnvironment(autoescape=False, keep_trailing_newline=False)


class DraftContext(BaseModel):
    incident_id: str
    title: str
    severity: Severity
    phase: Phase
    service: str | None = None
    components: list[str] = Field(default_factory=list)  # ids, from the service
    cause: str = ""
    summary: str = ""
    next_update: datetime | None = None
    resolved_at: datetime | None = None


def context_of(s: IncidentState, phase: Phase, components: list[str], next_update: datetime | None, *,
               cause: bool = True) -> DraftContext:
    """What the draft for the incident at `phase` is written from (the workflow's drafts and the doors' alike)."""
    return DraftContext(incident_id=s.id, title=s.title, severity=s.severity, phase=phase, service=s.service,
                        components=components, cause=s.cause if cause else "", summary=s.resolution_summary,
                        next_update=next_update, resolved_at=s.resolved_at)


class Draft(BaseModel):
    incident_id: str
    name: str
    status: PublicStatus
    impact: Impact
    body: str
    components: list[ComponentChange]


def public_status(phase: Phase) -> PublicStatus:
    if phase in (Phase.resolved, Phase.postmortem, Phase.closed, Phase.stood_down):
        return PublicStatus.resolved
    if phase == Phase.monitoring:
        return PublicStatus.monitoring
    if phase in (Phase.identified, Phase.mitigating):
        return PublicStatus.identified
    return PublicStatus.investigating


def when(t: datetime | None) -> str:
    return f"{t.astimezone(UTC):%H:%M} UTC" if t else ""


def draft(config: StatusPageConfig, ctx: DraftContext) -> Draft:
    """The public update a person is asked to publish for the incident as it is now."""
    status = public_status(ctx.phase)
    names = [c.name for c in config.components if c.id in ctx.components]
    listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else (names[0] if names else "our service")
    values = {"components": listed, "single": len(names) <= 1, "title": ctx.title, "cause": ctx.cause,
              "summary": ctx.summary, "next_update": when(ctx.next_update) or "the next hour",
              "resolved_at": when(ctx.resolved_at) or "now", "severity": ctx.severity.value,
              "incident_id": ctx.incident_id, "service": ctx.service or ""}
    template = config.templates.get(status) or DEFAULTS[status]
    try:
        body = " ".join(_ENV.from_string(template).render(**values).split())
    except TemplateError as exc:  # a config template that compiles but fails: fall back, say so in the draft
        body = " ".join(_ENV.from_string(DEFAULTS[status]).render(**values).split()) + \
            f" [template for {status.value} failed: {exc}]"
    target = ComponentStatus.operational if status == PublicStatus.resolved else _OUTAGE[ctx.severity]
    if status == PublicStatus.monitoring:
        target = ComponentStatus.degraded_performance if ctx.severity != Severity.SEV4 else target
    return Draft(incident_id=ctx.incident_id, name=ctx.title, status=status, impact=_IMPACT[ctx.severity],
                 body=body, components=[ComponentChange(component=c, status=target) for c in ctx.components])
