"""The demo: one incident walked through its life, step by step, on whatever stack is running."""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from domain import policy
from domain.models import (
    AckInput,
    CommandResult,
    DeclareInput,
    NoteInput,
    Phase,
    PhaseInput,
    ResolveInput,
    Role,
    RoleInput,
    Severity,
    StatusUpdateInput,
)
from domain.statuspage.messages import PublishResult
from incidentflow.client import IncidentflowError, Incidents


async def run_demo(incidents: Incidents, stop: asyncio.Event, pause: float = 1.5) -> str | None:
    try:
        return await _demo(incidents, stop, pause)
    except asyncio.CancelledError:
        raise
    except Exception:  # the demo failing must not take the stack down; show why
        print("demo failed:\n" + traceback.format_exc(), file=sys.stderr, flush=True)
        return None


async def _demo(incidents: Incidents, stop: asyncio.Event, pause: float) -> str:
    settings = incidents.settings
    earlier = await incidents.list()
    if earlier:
        still_open = sum(1 for r in earlier if r.running)
        print(f"[demo] {len(earlier)} incidents from earlier runs are in the sqlite file "
              f"({still_open} still running)", flush=True)

    def say(text: str) -> None:
        print(f"[demo] {text}", flush=True)

    async def step() -> None:
        await asyncio.sleep(pause)

    iid = await incidents.declare(DeclareInput(
        title="Checkout error rate above 5%", severity=Severity.SEV2, service="checkout",
        description="Demo incident: payment capture failing for a share of checkouts.", declared_by="demo"))
    say(f"declared SEV2 {iid}")
    say(f"  open it in the Temporal UI: {settings.workflow_url(iid)}")
    query = quote('IncidentSeverity="SEV2"')
    say(f"  all SEV2 incidents: {settings.ui_url()}/namespaces/{settings.temporal_namespace}/workflows?query={query}")
    for label, command in _steps(incidents, iid):
        await step()
        if stop.is_set():
            command.close()
            continue
        result = await command
        if isinstance(result, PublishResult):
            say(f"{label}: {result.update.status.value}: {result.update.body}")
            continue
        say(f"{label}: {result.text}")
        for warning in result.warnings:
            say(f"  warning: {warning}")
    await incidents.add_note(iid, NoteInput(by="dan", text="Postmortem owner: bob"))
    await asyncio.sleep(0.5)
    state = await incidents.get(iid)
    say("timeline (incidentflow timeline ID --markdown):")
    for line in policy.render_markdown(state).splitlines():
        print(f"    {line}", flush=True)
    await _learning(incidents, iid, say)
    say(f"done: {iid} is {state.phase.value}; postmortem due "
        f"{state.postmortem_due:%Y-%m-%d} UTC. The stack keeps running: try the CLI "
        f"(`.venv/bin/incidentflow list`) or the UI. Ctrl-C to stop.")
    return iid


async def _learning(incidents: Incidents, iid: str, say: Callable[[str], None]) -> None:
    """The resolved SEV2's postmortem draft (written by the worker) and one action item from it."""
    from datetime import UTC, datetime, timedelta

    from domain.actions.models import ActionItemInput
    from domain.postmortem.models import ItemKind, Priority

    for _ in range(50):
        try:
            pm = await incidents.postmortem(iid)
        except IncidentflowError:
            pm = None
        if pm is not None and pm.sink is not None:
            say(f"postmortem drafted ({pm.template} template): {pm.sink.link}")
            say(f"  fill it in: incidentflow postmortem set {iid} --root-cause \"…\"; then "
                f"incidentflow postmortem publish {iid}")
            break
        await asyncio.sleep(0.2)
    item = await incidents.add_action(iid, ActionItemInput(
        text="Size the DB pool from the query plan", owner="bob", due=datetime.now(UTC).date() + timedelta(days=7),
        priority=Priority.P1, kind=ItemKind.prevent, by="alice"), key=f"demo-{iid}")
    say(f"action item {item.aid} for bob, due {item.due:%Y-%m-%d}: `incidentflow action list`")


def _steps(incidents: Incidents, iid: str) -> list[tuple[str, Coroutine[Any, Any, CommandResult | PublishResult]]]:
    """The incident's life, one command at a time (created now, awaited one by one)."""
    return [
        ("alice acknowledges", incidents.acknowledge(iid, AckInput(by="alice"))),
        ("alice takes incident commander", incidents.assign_role(iid, RoleInput(role=Role.ic, person="alice", by="alice"))),
        ("bob is tech lead", incidents.assign_role(iid, RoleInput(role=Role.lead, person="bob", by="alice"))),
        ("carol is comms lead", incidents.assign_role(iid, RoleInput(role=Role.comms, person="carol", by="alice"))),
        ("dan is scribe", incidents.assign_role(iid, RoleInput(role=Role.scribe, person="dan", by="alice"))),
        ("phase → investigating", incidents.set_phase(iid, PhaseInput(phase=Phase.investigating, by="alice"))),
        ("first status update", incidents.post_status_update(iid, StatusUpdateInput(
            by="carol", text="Investigating elevated checkout errors (~6% of payments). Next update in 30 min.",
            impact="about 6% of card payments fail", theory="deploy 4812", next_action="check the DB pool"))),
        ("carol publishes the public update (/status)", incidents.publish_public_update(iid, "carol")),
        ("phase → identified", incidents.set_phase(iid, PhaseInput(
            phase=Phase.identified, by="bob", note="DB connection pool exhausted after deploy 4812"))),
        ("phase → mitigating", incidents.set_phase(iid, PhaseInput(
            phase=Phase.mitigating, by="bob", note="rolling back deploy 4812"))),
        ("phase → monitoring", incidents.set_phase(iid, PhaseInput(
            phase=Phase.monitoring, by="alice", note="error rate back to 0.2%"))),
        ("status update", incidents.post_status_update(iid, StatusUpdateInput(
            by="carol", text="Rollback done; error rate back to baseline. Monitoring for 15 min."))),
        ("resolve", incidents.resolve(iid, ResolveInput(
            by="alice", summary="Rolled back deploy 4812; pool sizing fix tracked as action item",
            root_cause="the connection pool was sized for the old query plan"))),
        ("carol publishes the resolution", incidents.publish_public_update(iid, "carol")),
    ]
