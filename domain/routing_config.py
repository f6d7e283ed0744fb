"""The `routing:` section of the YAML config (validated), and the `Router` it builds (domain/routing.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator

from domain.models import Severity
from domain.models.base import Duration, SeverityKey, _Strict
from domain.routing import DEFAULT_TITLE, Router, Rule, check_title, parse_matchers

TITLE_HELP = ('the incident title, from labels: "{alertname} on {service}" ({service} is the routed service); '
              "a summary annotation goes to the description instead, as its values change")


class RoutingRule(_Strict):
    name: str | None = None
    match: list[str] | str = Field(default_factory=list, description='matchers: label="v", !=, =~, !~')
    action: Literal["open", "annotate", "drop"] = "open"
    service: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=63)
    severity: SeverityKey | None = None
    escalation_policy: str | None = None
    title: str | None = Field(None, max_length=200, description=TITLE_HELP)

    @field_validator("match")
    @classmethod
    def _matchers(cls, v: list[str] | str) -> list[str] | str:
        parse_matchers(v)  # raises with the bad matcher named
        return v

    @field_validator("title")
    @classmethod
    def _title(cls, v: str | None) -> str | None:
        return None if v is None else check_title(v)


class Routing(_Strict):
    reopen_window: Duration = timedelta(minutes=30)
    default_action: Literal["open", "annotate", "drop"] = "open"
    default_severity: SeverityKey = Severity.SEV3
    severity_label: str = "severity"
    override_label: str = "incident_severity"
    service_label: str = "service"
    severity_map: dict[str, SeverityKey] = Field(default_factory=lambda: dict(Router().severity_map))
    title: str = Field(DEFAULT_TITLE, max_length=200, description=TITLE_HELP)
    rules: list[RoutingRule] = Field(default_factory=list)
    # The config's service names (set by IncidentflowConfig): alerts naming another service get a warning.
    _services: frozenset[str] | None = PrivateAttr(None)

    _titles = field_validator("title")(check_title)

    def know_services(self, names: list[str]) -> None:
        """Alerts for a service outside `names` are warned about (none listed: nothing is)."""
        self._services = frozenset(names) if names else None

    def policy_problems(self, policies: set[str]) -> list[str]:
        """Rules naming an escalation policy the config does not define (`IncidentflowConfig.problems`)."""
        return [f"routing.rules {r.name or f'rule-{i + 1}'!r}: escalation_policy {r.escalation_policy!r} is not "
                f"defined (escalation_policies: {', '.join(sorted(policies)) or 'none'})"
                for i, r in enumerate(self.rules) if r.escalation_policy and r.escalation_policy not in policies]

    def router(self) -> Router:
        rules = tuple(
            Rule(name=r.name or f"rule-{i + 1}", matchers=tuple(parse_matchers(r.match)), action=r.action,
                 service=r.service, severity=r.severity, escalation_policy=r.escalation_policy, title=r.title)
            for i, r in enumerate(self.rules))
        return Router(rules=rules, default_action=self.default_action, default_severity=self.default_severity,
                      severity_label=self.severity_label, override_label=self.override_label,
                      service_label=self.service_label,
                      severity_map=tuple((k.lower(), v) for k, v in self.severity_map.items()),
                      title=self.title, services=self._services)
