"""The incident process rules in domain.policy: pure functions, no Temporal needed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from domain import policy
from domain.models.incident import (
    IncidentPolicy,
    IncidentState,
    Phase,
    Severity,
)
from domain.policy import NotAllowed

T0 = datetime(2026, 3, 6, 14, 5, tzinfo=UTC)  # a Friday
MIN = timedelta(minutes=1)

# Written out by hand on purpose: the expectation must not come from policy.ORDER / allowed_next.
LINE = ["triage", "investigating", "identified", "mitigating", "monitoring", "resolved", "postmortem", "closed"]


def expected_next(current: str) -> set[str]:
    if current in ("closed", "stood_down"):
        return set()
    allowed = set(LINE[LINE.index(current) + 1:])
    if current in ("monitoring", "resolved"):
        allowed.add("investigating")
    if current in ("triage", "investigating", "identified", "mitigating", "monitoring"):
        allowed.add("stood_down")
        allowed -= {"postmortem", "closed"}  # only a resolved incident goes on to postmortem or closed (issue 12)
    return allowed


def state(**kw) -> IncidentState:
    base = dict(id="incident-x", title="Checkout down", service="checkout", severity=Severity.SEV1,
                declared_at=T0, declared_by="alice")
    return IncidentState(**(base | kw))


# ---------------------------------------------------------------- phase transitions

@pytest.mark.parametrize("current", list(Phase), ids=lambda p: p.value)
def test_allowed_next(current: Phase) -> None:
    got = policy.allowed_next(current)
    assert {p.value for p in got} == expected_next(current.value)
    assert len(got) == len(set(got))


@pytest.mark.parametrize("target", list(Phase), ids=lambda p: p.value)
@pytest.mark.parametrize("current", list(Phase), ids=lambda p: p.value)
def test_check_transition(current: Phase, target: Phase) -> None:
    allowed = expected_next(current.value)
    if target.value in allowed:
        policy.check_transition(current, target)  # must not raise
        return
    with pytest.raises(NotAllowed) as exc:
        policy.check_transition(current, target)
    msg = str(exc.value)
    assert current.value in msg
    if not allowed:  # terminal: nothing can follow
        assert "no further phase changes" in msg
    elif target == current:
        assert "already in phase" in msg
    else:
        assert target.value in msg
        listed = msg.split("allowed next phases:", 1)[1]
        assert {n.strip() for n in listed.split(",")} == allowed


# ---------------------------------------------------------------- update cadence

def test_first_update_due_ten_minutes_after_declaration() -> None:
    for sev in Severity:
        if sev is Severity.SEV4:
            continue
        assert policy.next_update_due(state(severity=sev)) == T0 + 10 * MIN


@pytest.mark.parametrize("sev, minutes", [(Severity.SEV1, 15), (Severity.SEV2, 30), (Severity.SEV3, 60)])
def test_update_cadence_after_an_update(sev: Severity, minutes: int) -> None:
    t = T0 + 42 * MIN
    assert policy.next_update_due(state(severity=sev, last_update_at=t)) == t + minutes * MIN


def test_sev4_owes_no_updates() -> None:
    assert policy.next_update_due(state(severity=Severity.SEV4)) is None
    assert policy.next_update_due(state(severity=Severity.SEV4, last_update_at=T0 + MIN)) is None


@pytest.mark.parametrize("phase", [Phase.resolved, Phase.postmortem, Phase.closed, Phase.stood_down])
def test_no_updates_once_resolved_or_ended(phase: Phase) -> None:
    assert policy.next_update_due(state(phase=phase)) is None
    assert policy.next_update_due(state(phase=phase, last_update_at=T0 + MIN)) is None


def test_custom_cadence_policy_is_respected() -> None:
    custom = IncidentPolicy(first_update_after=3 * MIN,
                            update_every={Severity.SEV1: 5 * MIN, Severity.SEV4: 2 * timedelta(hours=1)})
    assert policy.next_update_due(state(policy=custom)) == T0 + 3 * MIN
    assert policy.next_update_due(state(policy=custom, last_update_at=T0 + MIN)) == T0 + 6 * MIN
    sev4 = state(policy=custom, severity=Severity.SEV4, last_update_at=T0)
    assert policy.next_update_due(sev4) == T0 + timedelta(hours=2)
    assert policy.next_update_due(state(policy=custom, severity=Severity.SEV2)) is None  # not in the map


# ---------------------------------------------------------------- business days

@pytest.mark.parametrize("start, days, expected", [
    (datetime(2026, 3, 6, 14, 5), 5, datetime(2026, 3, 13, 14, 5)),    # Fri + 5 -> next Fri
    (datetime(2026, 3, 6, 9, 0), 1, datetime(2026, 3, 9, 9, 0)),       # Fri + 1 -> Mon
    (datetime(2026, 3, 7, 8, 30), 1, datetime(2026, 3, 9, 8, 30)),     # Sat + 1 -> Mon
    (datetime(2026, 3, 8, 23, 59), 1, datetime(2026, 3, 9, 23, 59)),   # Sun + 1 -> Mon
    (datetime(2026, 3, 7, 12, 0), 5, datetime(2026, 3, 13, 12, 0)),    # Sat + 5 -> Fri
    (datetime(2026, 3, 2, 10, 0), 10, datetime(2026, 3, 16, 10, 0)),   # Mon + 10 -> Mon 2 weeks on
    (datetime(2026, 3, 30, 17, 45), 5, datetime(2026, 4, 6, 17, 45)),  # Mon 30 Mar -> Mon 6 Apr
    (datetime(2026, 12, 31, 6, 0), 2, datetime(2027, 1, 4, 6, 0)),     # Thu -> Fri, Mon (year end)
])
def test_add_business_days(start: datetime, days: int, expected: datetime) -> None:
    got = policy.add_business_days(start, days)
    assert got == expected
    assert got.weekday() < 5
    aware = policy.add_business_days(start.replace(tzinfo=UTC), days)
    assert aware == expected.replace(tzinfo=UTC)


# ---------------------------------------------------------------- postmortem reminders

def test_postmortem_reminder_schedule() -> None:
    due = datetime(2026, 3, 13, 14, 5, tzinfo=UTC)
    day = timedelta(days=1)
    expected = [due - day, due, due + day, due + 2 * day, due + 3 * day, None, None]
    for sent, want in enumerate(expected):
        s = state(phase=Phase.postmortem, postmortem_due=due, postmortem_reminders=sent)
        assert policy.next_postmortem_reminder(s) == want, sent
    assert policy.next_postmortem_reminder(state(phase=Phase.resolved, postmortem_due=due)) == due - day


def test_postmortem_reminder_custom_policy() -> None:
    due = datetime(2026, 3, 13, 9, 0, tzinfo=UTC)
    p = IncidentPolicy(postmortem_remind_before=timedelta(hours=4), postmortem_overdue_every=timedelta(hours=12),
                       postmortem_max_overdue_reminders=1)
    got = [policy.next_postmortem_reminder(state(phase=Phase.postmortem, postmortem_due=due, policy=p,
                                                 postmortem_reminders=n)) for n in range(4)]
    assert got == [due - timedelta(hours=4), due, due + timedelta(hours=12), None]


@pytest.mark.parametrize("phase", [Phase.closed, Phase.stood_down, Phase.monitoring])
def test_no_postmortem_reminder_outside_resolved_or_postmortem(phase: Phase) -> None:
    assert policy.next_postmortem_reminder(state(phase=phase, postmortem_due=T0)) is None


def test_no_postmortem_reminder_without_due_date() -> None:
    assert policy.next_postmortem_reminder(state(phase=Phase.postmortem)) is None


# ---------------------------------------------------------------- paging at declaration
# (the Markdown rendering is tested in tests/test_timeline_markdown.py)

@pytest.mark.parametrize("severity", list(Severity), ids=lambda s: s.value)
def test_pages_at_declaration_follows_the_policy(severity: Severity) -> None:
    assert policy.pages_at_declaration(IncidentPolicy(), severity) == (severity != Severity.SEV4)
    only_sev1 = IncidentPolicy(page_severities=[Severity.SEV1])
    assert policy.pages_at_declaration(only_sev1, severity) == (severity == Severity.SEV1)
    assert not policy.pages_at_declaration(IncidentPolicy(page_severities=[]), severity)


# ---------------------------------------------------------------- slugs and ids

SLACK = re.compile(r"^[a-z0-9_-]{1,80}$")


@pytest.mark.parametrize("text, slug", [
    ("Checkout", "checkout"),
    ("Payments API: 500s on /charge!!", "payments-api-500s-on-charge"),
    ("  --Login__Broken--  ", "login-broken"),
    ("Café Über-Crème", "cafe-uber-creme"),
    ("ｆｕｌｌｗｉｄｔｈ", "fullwidth"),
    ("数据库 down", "down"),
    ("数据库", "incident"),
    ("!!!", "incident"),
    ("", "incident"),
    ("api.v2", "api-v2"),
])
def test_slugify(text: str, slug: str) -> None:
    assert policy.slugify(text) == slug


def test_slugify_max_length_does_not_end_in_dash() -> None:
    assert len(policy.slugify("a" * 100)) == 40
    assert policy.slugify("abc def", max_length=4) == "abc"
    long = policy.slugify("word " * 30, max_length=12)
    assert len(long) <= 12 and not long.endswith("-") and not long.startswith("-")


def test_incident_id_format_and_attempt_suffix() -> None:
    at = datetime(2026, 11, 23, 4, 33, tzinfo=UTC)
    assert policy.incident_id(at, "checkout", "ignored") == "incident-20261123-0433-checkout"
    assert policy.incident_id(at, None, "Login is Broken!") == "incident-20261123-0433-login-is-broken"
    assert policy.incident_id(at, "checkout", "t", attempt=1) == "incident-20261123-0433-checkout-2"
    assert policy.incident_id(at, "checkout", "t", attempt=2) == "incident-20261123-0433-checkout-3"


@pytest.mark.parametrize("service, title", [
    (None, "x" * 500), ("S" * 63, "t"), (None, "Ünïcödé — ☃ outage?!"), (None, "数据库"),
    ("my.service_name-01", "t"), (None, "--"),
])
@pytest.mark.parametrize("attempt", [0, 1, 98])
def test_incident_id_is_slack_channel_safe(service: str | None, title: str, attempt: int) -> None:
    assert SLACK.match(policy.incident_id(T0, service, title, attempt))


# ---------------------------------------------------------------- severity parsing

@pytest.mark.parametrize("raw", ["sev1", "SEV1", "1", 1, " SEV1 ", "Sev1"])
def test_severity_parse_accepts(raw: str | int) -> None:
    assert Severity.parse(raw) is Severity.SEV1


def test_severity_parse_other_levels() -> None:
    assert Severity.parse(" SEV2 ") is Severity.SEV2
    assert Severity.parse("3") is Severity.SEV3
    assert Severity.parse("sev4") is Severity.SEV4


@pytest.mark.parametrize("raw", ["SEV5", "5", "0", "critical", "", "SEV 1"])
def test_severity_parse_rejects(raw: str) -> None:
    with pytest.raises(ValueError) as exc:
        Severity.parse(raw)
    msg = str(exc.value)
    assert repr(raw) in msg
    for name in ("SEV1", "SEV2", "SEV3", "SEV4"):
        assert name in msg


@pytest.mark.parametrize("phase", sorted(policy.ACTIVE, key=policy.ORDER.index))
def test_only_a_resolved_incident_goes_to_postmortem_or_closed(phase: Phase) -> None:
    for target in (Phase.postmortem, Phase.closed):
        assert target not in policy.allowed_next(phase)
        with pytest.raises(NotAllowed, match=f"cannot move from {phase.value} to {target.value}"):
            policy.check_transition(phase, target)
    assert Phase.resolved in policy.allowed_next(phase)
    assert policy.allowed_next(Phase.resolved)[-2:] == [Phase.postmortem, Phase.closed]
