"""A routing rule's escalation policy: an alert it routes pages that policy (not the service's), and
`escalate --level` is checked against that policy's levels. A person declaring for the service keeps the
service's policy; a rule naming a policy the config does not define fails the config check.

On the time-skipping server, with the alert group opening the incident as in production.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from domain import ingest, known
from domain.config import ConfigError, IncidentflowConfig, load_config
from domain.models import AlertmanagerPayload, DeclareInput, EscalateInput, EventKind, Severity
from incidentflow.client import Incidents
from incidentflow.client_base import InvalidInput
from tests.conftest import running_worker
from tests.helpers import events, eventually

FIXTURES = Path(__file__).parent / "fixtures"
MIN = timedelta(minutes=1)
CONFIG: dict[str, Any] = yaml.safe_load("""
people:
  - {id: alice, name: Alice}
  - {id: bob, name: Bob}
  - {id: carol, name: Carol}
  - {id: dan, name: Dan}
  - {id: erin, name: Erin}
services:
  - {name: checkout, escalation_policy: checkout-policy}
escalation_policies:
  - name: checkout-policy
    levels:
      - {wait: 15m, targets: [{person: alice}]}
      - {wait: 15m, targets: [{person: bob}]}
      - {wait: 15m, targets: [{person: carol}]}
  - name: database-policy
    levels:
      - {wait: 10m, targets: [{person: dan}]}
      - {wait: 10m, targets: [{person: erin}]}
routing:
  rules:
    - {name: database-down, match: ['alertname="DatabaseDown"'], service: checkout,
       escalation_policy: database-policy}
""")


def config(**changes: object) -> IncidentflowConfig:
    return IncidentflowConfig.model_validate({**CONFIG, **changes})


def firing(alertname: str) -> AlertmanagerPayload:
    """The captured Alertmanager notification (service checkout, severity critical: SEV2), in a fresh group."""
    data: dict[str, Any] = json.loads((FIXTURES / "alertmanager-firing.json").read_text())
    test = uuid.uuid4().hex
    data["groupKey"] = f'{{}}:{{alertname="{alertname}", test="{test}"}}'
    for alert in data["alerts"]:
        alert["labels"]["alertname"] = alertname
        alert["fingerprint"] = test[:16]
    data["commonLabels"]["alertname"] = data["groupLabels"]["alertname"] = alertname
    return AlertmanagerPayload.model_validate(data)


async def alert_incident(inc: Incidents, alertname: str) -> str:
    batch = ingest.from_alertmanager(firing(alertname), inc.config.routing.router(), datetime.now(UTC))
    assert (await inc.ingest(batch)).outcome == "accepted"
    group_id = ingest.group_workflow_id(batch.group_key)
    group = await eventually(lambda: inc.alert_group(group_id), lambda g: g is not None and bool(g.incident_id))
    assert group is not None and group.incident_id
    return group.incident_id


def paged(state: Any) -> list[str]:
    return [e.text for e in events(state, EventKind.page)]


async def test_an_alert_routed_by_a_rule_naming_a_policy_pages_that_policy(ts_env: WorkflowEnvironment) -> None:
    cfg = config()
    async with running_worker(ts_env.client, config=lambda: cfg) as (settings, _):
        inc = Incidents(ts_env.client, settings, cfg)
        iid = await alert_incident(inc, "DatabaseDown")
        state = await eventually(lambda: inc.get(iid), lambda s: bool(paged(s)))
        assert state.service == "checkout" and state.severity == Severity.SEV2
        assert state.policy.escalation_policy == "database-policy"
        assert paged(state)[0].startswith("Paged dan (L1"), "the rule's policy's L1, not the service's (alice)"

        # database-policy has L1–L2 (checkout-policy has three): L3 is refused before it reaches the incident
        with pytest.raises(InvalidInput, match="L3 is not a level of escalation policy 'database-policy'.*L1–L2"):
            await inc.escalate(iid, EscalateInput(level=3, by="alice"))
        await inc.escalate(iid, EscalateInput(level=2, by="alice"))
        state = await eventually(lambda: inc.get(iid), lambda s: len(paged(s)) >= 2)
        assert paged(state)[1].startswith("Paged erin (L2"), paged(state)
        await ts_env.sleep(2 * MIN)
        assert not any(t.startswith(("Paged alice", "Paged bob", "Paged carol")) for t in paged(await inc.get(iid)))


async def test_the_service_policy_pages_without_a_rule_policy(ts_env: WorkflowEnvironment) -> None:
    """An alert no rule names a policy for, and a person declaring for the service: the service's policy."""
    cfg = config()
    async with running_worker(ts_env.client, config=lambda: cfg) as (settings, _):
        inc = Incidents(ts_env.client, settings, cfg)
        from_alert = await alert_incident(inc, "CheckoutErrorRate")
        declared = await inc.declare(DeclareInput(title="Checkout slow", severity=Severity.SEV2, service="checkout",
                                                  declared_by="alice"))
        for iid in (from_alert, declared):
            state = await eventually(lambda i=iid: inc.get(i), lambda s: bool(paged(s)))
            assert state.policy.escalation_policy is None
            assert paged(state)[0].startswith("Paged alice (L1"), paged(state)
        await inc.escalate(declared, EscalateInput(level=3, by="alice"))  # checkout-policy has L3
        state = await eventually(lambda: inc.get(declared), lambda s: len(paged(s)) >= 2)
        assert paged(state)[1].startswith("Paged carol (L3"), paged(state)


async def test_a_policy_gone_from_the_config_falls_back_to_the_service_policy(ts_env: WorkflowEnvironment) -> None:
    """The rule's policy was removed from the worker's config after the alert was routed: the incident is still
    paged, by its service's policy, and its timeline says why."""
    door = config()
    worker = config(escalation_policies=[p for p in CONFIG["escalation_policies"] if p["name"] != "database-policy"])
    async with running_worker(ts_env.client, config=lambda: worker) as (settings, _):
        inc = Incidents(ts_env.client, settings, door)
        iid = await alert_incident(inc, "DatabaseDown")
        state = await eventually(lambda: inc.get(iid), lambda s: bool(paged(s)))
        assert paged(state)[0].startswith("Paged alice (L1"), paged(state)
        warnings = [e.text for e in events(state, EventKind.warning)]
        assert any("'database-policy'" in w and "following 'checkout-policy'" in w for w in warnings), warnings


def test_the_level_check_takes_the_incident_policy() -> None:
    cfg = config()
    assert known.level_problem(cfg, "checkout", Severity.SEV2, 3) is None
    assert "L3 is not a level of escalation policy 'database-policy'" in (
        known.level_problem(cfg, "checkout", Severity.SEV2, 3, named="database-policy") or "")
    assert known.level_problem(cfg, "checkout", Severity.SEV2, 3, named="gone") is None, "as the worker plans it"
    assert known.policy_name(cfg, "checkout", "gone")[0] == "checkout-policy"


def test_config_check_rejects_a_rule_naming_an_unknown_policy(tmp_path: Path) -> None:
    rules = [{"name": "database-down", "match": ['alertname="DatabaseDown"'], "escalation_policy": "databse-policy"}]
    path = tmp_path / "incidentflow.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "routing": {"rules": rules}}))
    with pytest.raises(ConfigError, match="routing.rules 'database-down': escalation_policy 'databse-policy' is "
                                          "not defined"):
        load_config(path)
    path.write_text(yaml.safe_dump(CONFIG))
    assert load_config(path).routing.rules[0].escalation_policy == "database-policy"
