"""What the config knows (people, services, escalation levels), and the words a door uses to refuse a
name it does not. Pure: the CLI, the HTTP API and Slack ask the same questions before a command reaches an
incident, so all three refuse the same input with the same message.

Each check is on only while the config has something to check against: a config listing no people (or no
services, or no escalation policies) cannot tell a known name from an unknown one, and refuses none.
"""

from __future__ import annotations

from domain import oncall
from domain.config import IncidentflowConfig
from domain.models import Severity

SHOWN = 20  # names listed in a refusal; the rest are counted


def listing(names: list[str], limit: int = SHOWN) -> str:
    """`a, b, c` (at most `limit`, then `… and N more`); `none` for no names."""
    if not names:
        return "none"
    more = f" … and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def people(config: IncidentflowConfig) -> list[str]:
    return [p.id for p in config.people]


def person_id(config: IncidentflowConfig, name: str) -> str | None:
    """The id of the config person `name` names (an id, or a name as in `people[].name`), else None."""
    found = config.person(name.strip())
    return found.id if found is not None else None


def person_problem(config: IncidentflowConfig, field: str, name: str) -> str | None:
    """Why `name` may not be paged or hold a role, or None when it may."""
    if not config.people or person_id(config, name) is not None:
        return None
    return f"{field}: {name!r} is not one of incidentflow's people (known: {listing(people(config))})"


def actor_problem(config: IncidentflowConfig, field: str, name: str) -> str | None:
    """Why `name` may not act (write), or None: a config person may, and anyone while `slack.allow_everyone`."""
    return None if config.slack.allow_everyone else person_problem(config, field, name)


def service_problem(config: IncidentflowConfig, field: str, name: str | None) -> str | None:
    """Why a person may not declare for service `name`, or None."""
    if not name or not config.services or config.service(name) is not None:
        return None
    return f"{field}: unknown service {name!r} (known: {listing([s.name for s in config.services])})"


def policy_name(config: IncidentflowConfig, service: str | None, named: str | None = None) -> tuple[str, str | None]:
    """(the escalation policy an incident runs, why the one it names is not) as the worker plans it
    (`activities/paging.py`): the policy its routing rule named (`named`) while the config defines it, else its
    service's, else `default`. The second item is a warning when `named` is set and not defined (the config
    changed since the incident opened), else None."""
    svc = config.service(service)
    fallback = (svc.escalation_policy if svc and svc.escalation_policy else None) or "default"
    if not named:
        return fallback, None
    if any(p.name == named for p in config.escalation_policies):
        return named, None
    return fallback, (f"Escalation policy {named!r} (named by the alert's routing rule) is not defined any more: "
                      f"following {fallback!r} instead")


def policy_levels(config: IncidentflowConfig, service: str | None,
                  severity: Severity | str | None, named: str | None = None) -> tuple[str, int] | None:
    """(policy name, number of levels) of the escalation policy an incident of `service` at `severity` runs
    (`named`: the one its routing rule named, see `policy_name`); (name, 0) when that policy is not defined;
    None when the config has no escalation policies at all."""
    if not config.escalation_policies:
        return None
    name, _ = policy_name(config, service, named)
    policy = next((p for p in config.escalation_policies if p.name == name), None)
    return (name, 0) if policy is None else (name, len(oncall.levels_for(policy, severity)))


def level_problem(config: IncidentflowConfig, service: str | None, severity: Severity | str | None,
                  level: int, field: str = "level", named: str | None = None) -> str | None:
    """Why escalating to `level` (1-based) goes nowhere, or None (`named`: the incident's own policy, as
    `policy_levels`)."""
    found = policy_levels(config, service, severity, named)
    if found is None:
        return None
    name, count = found
    sev = f" at {Severity.parse(severity).value}" if severity else ""
    if count == 0:
        return (f"{field}: escalation policy {name!r} (for service {service or '(none)'}) is not defined, so there "
                f"is no level to escalate to (policies: {listing([p.name for p in config.escalation_policies])})")
    if 1 <= level <= count:
        return None
    return f"{field}: L{level} is not a level of escalation policy {name!r}{sev}: it has L1–L{count}"
