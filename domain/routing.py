"""Alert routing: Alertmanager-style label matchers decide what an alert does, and what its incident is
called. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from domain.models import AlertStatus, RouteDecision, Severity
from domain.models.alert import ALERT_SEVERITIES
from domain.models.common import SERVICE_NAME
from domain.models.runbook import RunbookTriggers
from domain.text import single_line

# An incident's title comes from labels, never from an annotation: a summary such as "5xx ratio above 5%
# (currently 100%)" holds a live value that is wrong a minute later, while labels name what is alerting.
DEFAULT_TITLE = "{alertname} on {service}"
FALLBACK_TITLES = ("{alertname}", "Alert on {service}")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^"\s,{}]*))\s*$')
_RANK = {Severity.SEV1: 1, Severity.SEV2: 2, Severity.SEV3: 3, Severity.SEV4: 4}


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """`label="v"`, `label!="v"`, `label=~"re"`, `label!~"re"` (quotes optional for plain values)."""
        found = _MATCHER.match(text)
        if not found:
            raise ValueError(f'invalid matcher {text!r}: use label="value", !=, =~ "regex" or !~ "regex"')
        label, op, quoted, bare = found.groups()
        value = bytes(quoted, "utf-8").decode("unicode_escape") if quoted is not None else (bare or "")
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex in matcher {text!r}: {exc}") from None
        return cls(label, op, value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")  # a missing label matches the empty string, as in Alertmanager
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = re.fullmatch(self.value, actual) is not None  # Alertmanager regexes are anchored
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


def parse_matchers(spec: str | Iterable[str]) -> list[Matcher]:
    """A list of matchers, or one `{a="x", b=~"y"}` selector string."""
    if isinstance(spec, str):
        inner = spec.strip()
        if inner.startswith("{") and inner.endswith("}"):
            inner = inner[1:-1]
        parts = [p for p in _split_commas(inner) if p.strip()]
    else:
        parts = list(spec)
    return [Matcher.parse(p) for p in parts]


def _split_commas(text: str) -> list[str]:
    parts, current, quoted, escaped = [], "", False, False
    for ch in text:
        if ch == "," and not quoted:
            parts.append(current)
            current = ""
            continue
        current += ch
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
    parts.append(current)
    return parts


def check_title(template: str) -> str:
    """A title template: text with `{label}` placeholders (`{service}` is the routed service). ValueError
    names what is wrong."""
    rest = _PLACEHOLDER.sub("", template)
    if "{" in rest or "}" in rest:
        raise ValueError(f"invalid title template {template!r}: placeholders are label names in braces, "
                         'e.g. "{alertname} on {service}"')
    if not single_line(_PLACEHOLDER.sub("x", template)):
        raise ValueError("the title template is empty")
    return template


def render_title(template: str, labels: Mapping[str, str]) -> str | None:
    """The template filled from labels, or None when a placeholder has no value."""
    missing: list[str] = []

    def fill(found: re.Match[str]) -> str:
        value = single_line(labels.get(found.group(1), ""))
        if not value:
            missing.append(found.group(1))
        return value
    title = single_line(_PLACEHOLDER.sub(fill, template))[:200].rstrip()
    return None if missing or not title else title


@dataclass(frozen=True)
class Rule:
    name: str
    matchers: tuple[Matcher, ...]
    action: str  # open | annotate | drop
    service: str | None = None
    severity: Severity | None = None
    escalation_policy: str | None = None
    title: str | None = None  # a title template for the incidents this rule opens

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True)
class Router:
    rules: tuple[Rule, ...] = ()
    default_action: str = "open"
    default_severity: Severity = Severity.SEV3
    severity_label: str = "severity"
    override_label: str = "incident_severity"
    service_label: str = "service"
    severity_map: tuple[tuple[str, Severity], ...] = tuple(ALERT_SEVERITIES.items())
    title: str = DEFAULT_TITLE  # the incident's title, unless the matching rule has its own
    services: frozenset[str] | None = None  # the config's services; None: every service is known

    def route_one(self, labels: Mapping[str, str]) -> RouteDecision:
        rule = next((r for r in self.rules if r.matches(labels)), None)
        severity = self._severity(labels, rule)
        service, unknown = self._service(rule.service if rule and rule.service else labels.get(self.service_label))
        return RouteDecision(action=rule.action if rule else self.default_action,
                             rule=rule.name if rule else "default", service=service, severity=severity,
                             escalation_policy=rule.escalation_policy if rule else None, unknown_service=unknown)

    def _service(self, name: str | None) -> tuple[str | None, str | None]:
        """(the incident's service, the name to warn about when it is not a configured service). A value that
        is no service name at all (spaces, too long) is dropped, so the alert still opens an incident."""
        if not name:
            return None, None
        if len(name) > 63 or not re.match(SERVICE_NAME, name):
            return None, single_line(name)[:100] or None
        if self.services is not None and name not in self.services:
            return name, name
        return name, None

    def title_for(self, rule: str, labels: Mapping[str, str], service: str | None) -> str | None:
        """The incident's title from the rule's template (else the router's), with the labels and the routed
        service; then `{alertname}` alone. None when no template can be filled."""
        values = {**labels, "service": service or ""}
        chosen = next((r.title for r in self.rules if r.name == rule and r.title), None)
        for template in (chosen, self.title, *FALLBACK_TITLES):
            title = render_title(template, values) if template else None
            if title:
                return title
        return None

    def route(self, alerts: Iterable[tuple[Mapping[str, str], AlertStatus]]) -> RouteDecision:
        """A notification's decision: open if any alert opens (at its most severe), else annotate, else drop."""
        decisions = [self.route_one(labels) for labels, _ in alerts]
        if not decisions:
            return RouteDecision(action="drop", rule="empty")
        for action in ("open", "annotate"):
            chosen = [d for d in decisions if d.action == action]
            if chosen:
                return min(chosen, key=lambda d: _RANK[d.severity])
        return decisions[0]

    def _severity(self, labels: Mapping[str, str], rule: Rule | None) -> Severity:
        override = labels.get(self.override_label)
        if override:
            try:
                return Severity.parse(override)
            except ValueError:
                pass  # a bad override label must not lose the alert: fall through to the mapping
        if rule and rule.severity:
            return rule.severity
        mapped = dict(self.severity_map).get(labels.get(self.severity_label, "").lower())
        return mapped or self.default_severity


def could_start_runbook(known: RunbookTriggers, labels: Mapping[str, str], service: str | None,
                        already: Iterable[str]) -> bool:
    """Could this alert (its labels; the incident's service as `service` when it has none) start an auto-run runbook
    not run yet? Its matchers checked as `AppliesTo.matches` does (deterministic: no clock, no I/O)."""
    seen = {**({"service": service} if service else {}), **labels}
    done = set(already)
    return any(t.runbook not in done and all(m.matches(seen) for text in t.alerts for m in parse_matchers(text))
               for t in known.triggers)
