"""`make run`'s demo keeps working with the doors' checks: it walks an incident to resolved on the example config,
and everyone it has act is one of that config's people."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from domain.config import load_config
from domain.models import Phase
from incidentflow.client import Incidents
from incidentflow.demo import run_demo
from tests.conftest import running_worker

EXAMPLE = Path(__file__).parent.parent / "config/example.yaml"
SYSTEM = {"demo", "incidentflow", "escalation", "slack"}  # actors that are incidentflow itself


async def test_the_demo_runs_on_the_example_config_with_its_people(dev_env: WorkflowEnvironment) -> None:
    config = load_config(EXAMPLE)
    async with running_worker(dev_env.client, config=lambda: config) as (settings, _):
        inc = Incidents(dev_env.client, settings, config)
        iid = await asyncio.wait_for(run_demo(inc, asyncio.Event(), pause=0), 120)
        assert iid is not None, "the demo failed (its traceback is on stderr)"
        state = await inc.get(iid)
        assert state.phase == Phase.resolved and state.url == settings.workflow_url(iid)
        people = {p.id for p in config.people}
        actors = {e.actor for e in state.timeline} - SYSTEM
        assert actors and actors <= people, f"not in config/example.yaml: {actors - people}"
        assert set(state.roles.values()) <= people
