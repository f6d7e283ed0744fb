"""`incidentflow statuspage show|draft|publish|component` and `incidentflow maintenance
schedule|list|extend|cancel` as a user runs them: a real process against a worker on the dev server."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from domain.config import load_config
from tests.conftest import running_worker
from tests.test_cli import PEOPLE, cli, cli_env, succeeding


def write_config(tmp_path: Path, service: str) -> Path:
    """People, a service of the test's own (visibility is shared) that affects the `shop` component, and
    `db` for maintenance."""
    path = tmp_path / "config.yaml"
    path.write_text("people:\n" + "".join(f"  - {{id: {p}, name: {p.title()}}}\n" for p in PEOPLE)
                    + f"services:\n  - {{name: {service}}}\n  - {{name: db}}\n"
                    "escalation_policies:\n  - name: default\n    levels:\n"
                    "      - {wait: 1h, targets: [{person: alice}]}\n"
                    "statuspage:\n  title: Acme status\n  components:\n"
                    f"    - {{id: shop, name: Shop, services: [{service}]}}\n"
                    "    - {id: db, name: Database, services: [db]}\n")
    return path


async def test_statuspage_and_maintenance_commands_end_to_end(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    svc = f"sp-{uuid.uuid4().hex[:6]}"
    config = write_config(tmp_path, svc)
    async with running_worker(dev_env.client, config=lambda: load_config(config), data_dir=tmp_path) as (settings, _):
        env = cli_env(dev_env, settings, config)
        ok = succeeding(env)

        shown = (await ok("statuspage", "show")).out.splitlines()
        assert shown[0] == "All Systems Operational"
        assert re.fullmatch(r"  shop\s+Shop\s+operational", shown[1]), shown
        iid = (await ok("declare", "--severity", "SEV2", "--service", svc, "--no-page", "Checkout failing")).out.strip()
        draft = (await ok("statuspage", "draft", iid)).out
        assert draft.startswith("investigating (impact major); components: shop=partial_outage\n"), draft
        assert "Shop" in draft

        refused = await cli("statuspage", "publish", iid, "--by", "bob", env=env)
        assert refused.code == 1 and "only the comms lead or the incident commander" in refused.err, refused.err
        await ok("role", iid, "comms", "carol")
        published = (await ok("statuspage", "publish", iid, "--by", "carol")).out
        assert re.fullmatch(rf"{iid}: published investigating \(page version \d+\)\n", published), published
        await ok("statuspage", "publish", iid, "--by", "carol", "--status", "identified",
                 "--component", "shop=major_outage", "A bad release; rolling it back.")
        shown = (await ok("statuspage", "show")).out
        assert shown.startswith("Major System Outage\n") and re.search(r"^  shop\s+Shop\s+major_outage$", shown, re.M)
        assert f"Checkout failing [identified, impact major] ({iid})" in shown, shown
        assert re.search(r"^  \d\d:\d\d UTC identified: A bad release; rolling it back\.$", shown, re.M), shown
        summary = json.loads((await ok("statuspage", "show", "--json")).out)
        assert [i["status"] for i in summary["incidents"]] == ["identified"]
        assert (await ok("statuspage", "component", "db=degraded_performance", "--by", "alice")).out.startswith(
            "components set (page version ")
        bad = await cli("statuspage", "component", "nope=operational", "--by", "alice", env=env)
        assert bad.code == 1 and "components: unknown nope (known: shop, db)" in bad.err, bad.err

        assert (await ok("maintenance", "list")).out == "no maintenances\n"
        made = (await ok("maintenance", "schedule", "Database upgrade", "--component", "db", "--by", "alice",
                         "--start", "2030-01-01T03:00+01:00", "--end", "2030-01-01T04:30+01:00")).out
        match = re.fullmatch(r"(mnt-\S+): Database upgrade, 2030-01-01 02:00–03:30 UTC, announced\n", made)
        assert match, made
        mid = match[1]
        await ok("maintenance", "schedule", "Cache flush", "--component", "shop", "--by", "alice",
                 "--start", "2030-02-01T23:00", "--end", "2030-02-02T00:30")  # no zone: UTC
        rows = (await ok("maintenance", "list")).out.splitlines()
        assert any(re.fullmatch(rf"{mid}\s+scheduled\s+2030-01-01 02:00–03:30 UTC  Database upgrade \(db\)", r)
                   for r in rows), rows
        assert any(r.endswith("scheduled    2030-02-01 23:00–2030-02-02 00:30 UTC  Cache flush (shop)") for r in rows)
        assert (await ok("maintenance", "extend", mid, "--until", "2030-01-01T05:00+01:00", "--by", "alice")).out == \
            f"{mid}: now ends 2030-01-01 04:00 UTC\n"
        unknown = await cli("maintenance", "schedule", "x", "--component", "mars", "--by", "alice",
                            "--start", "2030-01-01T03:00Z", "--end", "2030-01-01T04:00Z", env=env)
        assert unknown.code == 1 and "components: unknown mars" in unknown.err, unknown.err
        backwards = await cli("maintenance", "schedule", "x", "--component", "db", "--by", "alice",
                              "--start", "2030-01-01T04:00Z", "--end", "2030-01-01T03:00Z", env=env)
        assert backwards.code == 2 and "end: must be after start" in backwards.err, backwards.err
        assert (await ok("maintenance", "cancel", mid, "--reason", "Postponed", "--by", "alice")).out == \
            f"{mid}: cancelled\n"
        rows = (await ok("maintenance", "list")).out.splitlines()
        assert any(re.fullmatch(rf"{mid}\s+cancelled\s+2030-01-01 02:00–04:00 UTC  Database upgrade \(db\)", r)
                   for r in rows), rows
        again = await cli("maintenance", "cancel", mid, "--by", "alice", env=env)
        assert again.code == 1 and "already ended (cancelled)" in again.err, again.err
