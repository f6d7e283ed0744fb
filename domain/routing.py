"""Alert routing: Alertmanager-style label matchers decide what an alert does. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from domain.models import AlertStatus, RouteDecision, Severity

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


@dataclass(frozen=True)
class Rule:
    name: str
    matchers: tuple[Matcher, ...]
    action: str  # open | annotate | drop
    service: str | None = None
    severity: Severity | None = None
    escalation_policy: str | None = None

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
    severity_map: tuple[tuple[str, Severity], ...] = (
        ("page", Severity.SEV1), ("critical", Severity.SEV2), ("error", Severity.SEV2),
        ("warning", Severity.SEV3), ("info", Severity.SEV4), ("none", Severity.SEV4),
    )

    def route_one(self, labels: Mapping[str, str]) -> RouteDecision:
        rule = next((r for r in self.rules if r.matches(labels)), None)
        severity = self._severity(labels, rule)
        service = (rule.service if rule and rule.service else None) or labels.get(self.service_label) or None
        return RouteDecision(action=rule.action if rule else self.default_action,
                             rule=rule.name if rule else "default", service=service, severity=severity,
                             escalation_policy=rule.escalation_policy if rule else None)

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
