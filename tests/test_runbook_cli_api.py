"""Runbooks as a user drives them: `incidentflow runbook check|list|show|run|approve|status` and the HTTP API.

The CLI is our real `main(argv)`, run in a thread (it calls asyncio.run) with stdout/stderr captured; the
HTTP API is our real app on uvicorn (tests.conftest.serve_api). Both talk to the shared dev server and to
a worker of the test's own whose Kubernetes is tests/fakes/kubernetes.py, so rollbacks really happen.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from domain.config import IncidentflowConfig
from domain.models import DeclareInput, Severity
from incidentflow.cli import main
from incidentflow.client import Incidents
from tests.conftest import running_worker, serve_api
from tests.fakes.kubernetes import FakeKubernetes
from tests.helpers import eventually

ROOT = Path(__file__).parent.parent
SHIPPED = ["checkout-high-error-rate", "disable-feature-flag", "restart-pods", "rollback-deployment",
           "scale-up"]
KNOWN = "known: " + ", ".join(SHIPPED)
NS, DEPLOY = "payments", "checkout-service"
IMAGE = "registry.example/checkout"
# a run that has just ended answers from its validator, one that has closed from the client: both say so
NOTHING_PENDING = re.compile(r"nothing( in run \S+)? awaits approval")
CONFIG = IncidentflowConfig.model_validate({
    "people": [{"id": "alice", "name": "Alice"}, {"id": "bob", "name": "Bob"}],
    "services": [{"name": "checkout"}],
})


@dataclass
class Out:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped runbooks are ./runbooks: run from the repository, with no stray INCIDENTFLOW_* settings."""
    monkeypatch.chdir(ROOT)
    for name in ("RUNBOOKS_DIR", "KUBECONFIG", "KUBE_CONTEXT", "TEMPORAL_ADDRESS", "TASK_QUEUE", "USER",
                 "CONFIG", "API_TOKEN"):
        monkeypatch.delenv(f"INCIDENTFLOW_{name}", raising=False)


@pytest.fixture
def capture(capsys: pytest.CaptureFixture[str]) -> Any:
    async def run(*args: str) -> Out:
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["runbook", *args])  # main() calls asyncio.run: not on our loop
        got = capsys.readouterr()
        return Out(code, got.out, got.err)
    return run


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKubernetes, Path]]:
    with FakeKubernetes() as fake:
        fake.add_deployment(NS, DEPLOY, f"{IMAGE}:v3", replicas=3, revisions=3)
        yield fake, fake.write_kubeconfig(tmp_path / "kubeconfig")


def image(fake: FakeKubernetes, deployment: str = DEPLOY) -> str:
    return str(fake.deployment(NS, deployment)["spec"]["template"]["spec"]["containers"][0]["image"])


# ---------------------------------------------------------------------------------------------- check


async def test_check_passes_on_the_shipped_runbooks(capture: Any) -> None:
    res = await capture("check")
    assert res.code == 0, res.err
    assert res.out.startswith("5 runbooks ok: ")
    for name in SHIPPED:
        assert name in res.out
    explicit = await capture("check", str(ROOT / "runbooks"))
    assert explicit.code == 0 and all(name in explicit.out for name in SHIPPED), explicit
    nowhere = await capture("check", "/nonexistent/runbooks")
    assert nowhere.code == 1 and nowhere.err == "/nonexistent/runbooks: no such runbook file or directory\n"


TYPO = """\
name: typo
title: A typo in a step field
parameters:
  deployment: {type: string, required: true}
steps:
  - kind: kubernetes.logs
    namespace: default
    selector: "app={{ deployment }}"
    tail_line: 50
"""
UNKNOWN_PARAM = """\
name: unknown-param
title: A template naming an undeclared parameter
parameters:
  deployment: {type: string, required: true}
steps:
  - kind: notify
    text: "About {{ deployment }}"
  - kind: notify
    text: "Scaled {{ deploymen }}"
"""
BAD_DURATION = """\
name: bad-duration
title: A duration nobody can read
steps:
  - kind: notify
    text: hello
  - kind: wait
    duration: soon
"""
GOOD = """\
name: fine
title: Nothing wrong here
steps:
  - {kind: notify, text: hello}
"""


async def test_check_reports_every_problem_with_file_line_and_field(capture: Any, tmp_path: Path) -> None:
    files = {"typo.yaml": TYPO, "unknown-param.yaml": UNKNOWN_PARAM, "bad-duration.yaml": BAD_DURATION,
             "good.yaml": GOOD}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    res = await capture("check", str(tmp_path))
    assert res.code == 1
    assert res.out == "", "no 'ok' summary when something is wrong"
    lines = res.err.splitlines()
    assert len(lines) == 3, res.err
    by_file = {Path(line.split(":", 1)[0]).name: line for line in lines}
    assert set(by_file) == {"typo.yaml", "unknown-param.yaml", "bad-duration.yaml"}
    for line in lines:
        assert re.fullmatch(r"\S+\.yaml:\d+: steps\.\d+\.\w+: .+", line), line
    assert by_file["typo.yaml"].startswith(f"{tmp_path / 'typo.yaml'}:9: steps.0.tail_line: unknown field "
                                           "'tail_line'; did you mean 'tail_lines'?")
    assert by_file["unknown-param.yaml"] == (f"{tmp_path / 'unknown-param.yaml'}:9: steps.1.text: unknown "
                                             "parameter 'deploymen' (declared: deployment)")
    assert by_file["bad-duration.yaml"].startswith(f"{tmp_path / 'bad-duration.yaml'}:7: steps.1.duration: "
                                                   "invalid duration 'soon'")


ALL_IN_ONE = """\
name: all-wrong
title: Three problems in one file
parameters:
  deployment: {type: string, required: true}
steps:
  - kind: kubernetes.logs
    namespace: default
    selector: "app={{ deployment }}"
    tail_line: 50
  - kind: notify
    text: "Scaled {{ deploymen }}"
  - kind: wait
    duration: soon
"""


async def test_check_reports_all_problems_of_one_file(capture: Any, tmp_path: Path) -> None:
    (tmp_path / "all-wrong.yaml").write_text(ALL_IN_ONE)
    res = await capture("check", str(tmp_path))
    assert res.code == 1
    where = str(tmp_path / "all-wrong.yaml")
    assert f"{where}:9: steps.0.tail_line: unknown field 'tail_line'" in res.err
    assert f"{where}:13: steps.2.duration: invalid duration 'soon'" in res.err
    assert f"{where}:11: steps.1.text: unknown parameter 'deploymen' (declared: deployment)" in res.err


# ---------------------------------------------------------------------------------------------- list / show


async def test_list_and_show(capture: Any) -> None:
    listed = await capture("list")
    assert listed.code == 0, listed.err
    names = [line.split()[0] for line in listed.out.splitlines() if line.strip()]
    assert names == SHIPPED
    assert "Roll back a deployment  [3 steps; auto: diagnostics]" in listed.out

    shown = await capture("show", "rollback-deployment")
    assert shown.code == 0, shown.err
    out = shown.out
    assert out.startswith("rollback-deployment: Roll back a deployment\n")
    assert "--param namespace=<string> (default 'default')" in out
    assert "--param deployment=<string> (required)  Name of the deployment to roll back" in out
    assert "--param revision=<integer>  Revision to roll back to" in out
    assert "Approvers: ic" in out and "→ deny" in out
    steps = out.split("Steps:\n", 1)[1].splitlines()
    assert steps == ["  1. approval  approve",
                     "  2. kubernetes.rollout_undo (destructive: needs approval)  rollback",
                     "  3. kubernetes.rollout_status  wait-for-rollout"]
    assert "Likely causes:" in out and "Escalation: Rollback fails" in out

    scale = await capture("show", "scale-up")
    assert "--param replicas=<integer> (default 6)" in scale.out
    assert "  1. kubernetes.scale (destructive: needs approval)  scale" in scale.out, \
        "no approval step in the file: the scale is gated anyway"

    unknown = await capture("show", "rollbak-deployment")
    assert unknown.code == 2 and unknown.out == ""
    assert f"unknown runbook 'rollbak-deployment' ({KNOWN})" in unknown.err


# ---------------------------------------------------------------------------------------------- dry run


async def test_dry_run_prints_the_plan_and_touches_nothing(capture: Any, kube: tuple[FakeKubernetes, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    fake, kubeconfig = kube
    monkeypatch.setenv("INCIDENTFLOW_KUBECONFIG", str(kubeconfig))
    target = ["--param", f"namespace={NS}", "--param", f"deployment={DEPLOY}"]

    rollback = await capture("run", "rollback-deployment", "--dry-run", *target)
    assert rollback.code == 0, rollback.err
    assert "Dry run of rollback-deployment (Roll back a deployment): nothing is changed." in rollback.out
    assert (f"2. kubernetes.rollout_undo  [needs approval]: Roll back {NS}/{DEPLOY} from revision 3 "
            "to revision 2") in rollback.out
    assert f"container {DEPLOY}: image {IMAGE}:v3 → {IMAGE}:v2" in rollback.out
    assert "1. approval: Wait for approval: Roll back payments/checkout-service?" in rollback.out
    assert "3. kubernetes.rollout_status: Wait up to 10m" in rollback.out

    scale = await capture("run", "scale-up", "--dry-run", *target, "--param", "replicas=5")
    assert scale.code == 0, scale.err
    assert f"1. kubernetes.scale  [needs approval]: Scale {NS}/{DEPLOY} from 3 to 5 replicas" in scale.out
    assert "spec.replicas: 3 → 5" in scale.out
    default = await capture("run", "scale-up", "--dry-run", *target)
    assert default.code == 0 and "from 3 to 6 replicas" in default.out, "replicas defaults to 6"

    restart = await capture("run", "restart-pods", "--dry-run", *target)
    assert restart.code == 0, restart.err
    assert (f"3. kubernetes.restart  [needs approval]: Restart {NS}/{DEPLOY} "
            "(rolling restart of 3 pods)") in restart.out
    assert 'annotations["kubectl.kubernetes.io/restartedAt"]: (unset) → ' in restart.out
    assert f"1. kubernetes.pods: List the pods for app={DEPLOY} in {NS}" in restart.out

    assert fake.writes() == [], "dry-run touches nothing"
    assert {r.method for r in fake.requests} == {"GET"} and fake.requests, "it read the cluster to plan"
    assert image(fake) == f"{IMAGE}:v3" and fake.revision(NS, DEPLOY) == 3
    assert fake.deployment(NS, DEPLOY)["spec"]["replicas"] == 3


async def test_usage_errors_name_the_parameter(capture: Any, kube: tuple[FakeKubernetes, Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake, kubeconfig = kube
    monkeypatch.setenv("INCIDENTFLOW_KUBECONFIG", str(kubeconfig))

    missing = await capture("run", "scale-up", "--dry-run", "--param", f"namespace={NS}")
    assert missing.code == 2 and missing.out == ""
    assert missing.err == ("error: missing required parameter 'deployment' (Name of the deployment to "
                           "scale): pass --param deployment=<string>\n")

    lots = await capture("run", "scale-up", "--dry-run", "--param", f"deployment={DEPLOY}",
                         "--param", "replicas=lots")
    assert lots.code == 2
    assert "parameter 'replicas': expected an integer, got 'lots' (--param replicas=<integer>)" in lots.err

    too_many = await capture("run", "scale-up", "--dry-run", "--param", f"deployment={DEPLOY}",
                             "--param", "replicas=500")
    assert too_many.code == 2 and "parameter 'replicas'" in too_many.err and "200" in too_many.err

    nokey = await capture("run", "scale-up", "--dry-run", "--param", "nokey")
    assert nokey.code == 2 and "--param 'nokey': use KEY=VALUE" in nokey.err

    extra = await capture("run", "scale-up", "--dry-run", "--param", f"deployment={DEPLOY}",
                          "--param", "replica=3")
    assert extra.code == 2 and "unknown parameter 'replica'" in extra.err and "replicas" in extra.err

    unknown = await capture("run", "nope", "--dry-run")
    assert unknown.code == 2 and f"unknown runbook 'nope' ({KNOWN})" in unknown.err

    no_incident = await capture("run", "scale-up", "--param", f"deployment={DEPLOY}")
    assert no_incident.code == 2 and "--incident" in no_incident.err and "--dry-run" in no_incident.err

    assert all(line.startswith("error: ") for res in (missing, lots, nokey, unknown, no_incident)
               for line in res.err.splitlines()[:1])
    assert fake.writes() == []


# ---------------------------------------------------------------------------------------------- CLI, real run


async def test_cli_runs_a_rollback_with_approval(dev_env: WorkflowEnvironment, capture: Any,
                                                 kube: tuple[FakeKubernetes, Path], monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    fake, kubeconfig = kube
    worker = running_worker(dev_env.client, config=lambda: CONFIG, kubeconfig=str(kubeconfig))
    async with worker as (settings, _):
        monkeypatch.setenv("INCIDENTFLOW_TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
        monkeypatch.setenv("INCIDENTFLOW_TASK_QUEUE", settings.task_queue)
        inc = Incidents(dev_env.client, settings, CONFIG)
        iid = await inc.declare(DeclareInput(title="Checkout errors after deploy", severity=Severity.SEV2,
                                             service="checkout", declared_by="alice", commander="alice",
                                             page=False))
        target = ["--param", f"namespace={NS}", "--param", f"deployment={DEPLOY}"]

        # the incident's service fills nothing here, but parameter checks still apply with --incident
        bad = await capture("run", "rollback-deployment", "--incident", iid, "--param", f"namespace={NS}")
        assert bad.code == 2 and "missing required parameter 'deployment'" in bad.err
        unknown = await capture("run", "rollbak", "--incident", iid)
        assert unknown.code == 2, "an unknown runbook is a usage error, as with --dry-run"
        assert f"unknown runbook 'rollbak' ({KNOWN})" in unknown.err
        nowhere = await capture("run", "rollback-deployment", "--incident", "incident-19990101-0000-none",
                                *target)
        assert nowhere.code == 1 and "no incident with id 'incident-19990101-0000-none'" in nowhere.err

        started = await capture("run", "rollback-deployment", "--incident", iid, *target, "--by", "alice")
        assert started.code == 0, started.err
        run_id = started.out.strip()
        assert run_id == f"{iid}-runbook-1", started.out
        assert f"incidentflow runbook approve {run_id}" in started.err

        async def status() -> Out:
            res = await capture("status", run_id)
            assert res.code == 0, res.err
            return res

        waiting = await eventually(status, lambda r: "awaiting_approval" in r.out, timeout=20)
        assert waiting.out.splitlines()[0].startswith(f"{run_id}  rollback-deployment  awaiting_approval  "
                                                      f"(incident {iid}, started by alice")
        assert "waiting for approval until" in waiting.out and f"Roll back {NS}/{DEPLOY}?" in waiting.out
        assert fake.writes() == [], "nothing changes before approval"

        bob = await capture("approve", run_id, "--by", "bob")
        assert bob.code == 1 and "bob may not approve" in bob.err and "incident commander (alice)" in bob.err
        assert fake.writes() == []

        alice = await capture("approve", run_id, "--by", "alice", "--comment", "bad deploy")
        assert alice.code == 0, alice.err
        assert alice.out.startswith(f"{run_id}: approved")

        done = await eventually(status, lambda r: "succeeded" in r.out.splitlines()[0], timeout=30)
        assert "[✓] 2." in done.out and "Rolled back" in done.out
        assert "approved by alice" in done.out and "bad deploy" in done.out
        state = json.loads((await capture("status", run_id, "--json")).out)
        assert state["status"] == "succeeded" and [r["status"] for r in state["results"]] == ["ok"] * 3
        undo = next(r for r in state["results"] if r["kind"] == "kubernetes.rollout_undo")
        assert undo["data"]["target_revision"] == 2 and undo["data"]["from_revision"] == 3
        assert image(fake) == f"{IMAGE}:v2" and fake.revision(NS, DEPLOY) == 4
        assert len([w for w in fake.writes() if w.path.endswith(f"/deployments/{DEPLOY}")]) == 1

        capsys.readouterr()
        assert await asyncio.to_thread(main, ["show", iid]) == 0  # the incident lists its runs
        assert f"  runbook {run_id}  rollback-deployment  succeeded" in capsys.readouterr().out

        again = await capture("approve", run_id, "--by", "alice")
        assert again.code == 1 and NOTHING_PENDING.search(again.err), again.err
        missing = await capture("status", f"{iid}-runbook-9")
        assert missing.code == 1 and f"no runbook run with id '{iid}-runbook-9'" in missing.err
        missing_approve = await capture("approve", f"{iid}-runbook-9", "--by", "alice")
        assert missing_approve.code == 1 and "no runbook run with id" in missing_approve.err


# ---------------------------------------------------------------------------------------------- HTTP API


@pytest.fixture
async def api(dev_env: WorkflowEnvironment,
              kube: tuple[FakeKubernetes, Path]) -> AsyncIterator[httpx.AsyncClient]:
    fake, kubeconfig = kube
    fake.add_deployment(NS, "search-api", "registry.example/search:v7", replicas=2, revisions=2)
    async with serve_api(dev_env, config=CONFIG, kubeconfig=str(kubeconfig)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client


async def declare(api: httpx.AsyncClient) -> str:
    resp = await api.post("/v1/incidents", json={
        "title": "Checkout errors", "severity": "SEV2", "service": "checkout", "declared_by": "alice",
        "commander": "alice", "page": False})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def run_state(api: httpx.AsyncClient, run_id: str, check: Any, timeout: float = 30,
                    interval: float = 0.1) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        resp = await api.get(f"/v1/runbook-runs/{run_id}")
        assert resp.status_code == 200, resp.text
        return dict(resp.json())
    return await eventually(probe, check, timeout=timeout, interval=interval)


async def run_ended(api: httpx.AsyncClient, iid: str, run_id: str) -> dict[str, Any]:
    """The run's final state, seen as early as the run route shows `ended_at`, and the incident's view of the
    run read once right then, with no retry: the run sets `ended_at` only once the incident has recorded its
    last report, and a query answers after the events recorded before it, so the two agree from that moment."""
    done = await run_state(api, run_id, lambda s: s["ended_at"] is not None, interval=0.01)
    incident = (await api.get(f"/v1/incidents/{iid}")).json()
    seen = {r["run_id"]: r["status"] for r in incident["runbooks"]}
    assert seen[run_id] == done["status"], (seen, done["status"])
    return done


async def test_api_lists_the_runbooks(api: httpx.AsyncClient) -> None:
    resp = await api.get("/v1/runbooks")
    assert resp.status_code == 200, resp.text
    by_name = {rb["name"]: rb for rb in resp.json()}
    assert sorted(by_name) == SHIPPED
    rollback = by_name["rollback-deployment"]
    assert rollback["title"] == "Roll back a deployment" and rollback["approvers"] == ["ic"]
    params = rollback["parameters"]
    assert params["deployment"]["type"] == "string" and params["deployment"]["required"] is True
    assert params["namespace"]["default"] == "default"
    assert params["revision"]["type"] == "integer" and params["revision"]["min"] == 1
    assert [(s["name"], s["kind"], s["destructive"]) for s in rollback["steps"]] == [
        ("approve", "approval", False), ("rollback", "kubernetes.rollout_undo", True),
        ("wait-for-rollout", "kubernetes.rollout_status", False)]
    assert [s["destructive"] for s in by_name["scale-up"]["steps"]] == [True, False]
    flag = by_name["disable-feature-flag"]
    assert {s["name"]: s["destructive"] for s in flag["steps"]} == {
        "flag-state": False, "approve": False, "disable": True, "announce": False}, \
        "a POST is destructive, a GET is not"
    checkout = by_name["checkout-high-error-rate"]
    assert checkout["applies_to"]["services"] == [], "the service comes from the alert's labels"
    assert checkout["parameters"]["status_label"]["default"] == "code"


async def test_api_rejects_bad_runs(api: httpx.AsyncClient, kube: tuple[FakeKubernetes, Path]) -> None:
    fake, _ = kube
    iid = await declare(api)

    async def run(body: dict[str, Any], incident: str = iid) -> httpx.Response:
        return await api.post(f"/v1/incidents/{incident}/runbooks", json=body)

    unknown = await run({"name": "rollbak", "params": {"deployment": DEPLOY}, "by": "alice"})
    assert unknown.status_code == 422, unknown.text
    error = unknown.json()["error"]
    assert error.startswith("name: unknown runbook 'rollbak'") and KNOWN in error

    missing = await run({"name": "scale-up", "params": {"namespace": NS}, "by": "alice"})
    assert missing.status_code == 422
    assert missing.json()["error"].startswith("params: missing required parameter 'deployment'")

    invalid = await run({"name": "scale-up", "params": {"deployment": DEPLOY, "replicas": "lots"},
                         "by": "alice"})
    assert invalid.status_code == 422
    assert "params: parameter 'replicas': expected an integer, got 'lots'" in invalid.json()["error"]
    too_big = await run({"name": "scale-up", "params": {"deployment": DEPLOY, "replicas": 500},
                         "by": "alice"})
    assert too_big.status_code == 422 and "parameter 'replicas'" in too_big.json()["error"]
    extra = await run({"name": "scale-up", "params": {"deployment": DEPLOY, "replica": 3}, "by": "alice"})
    assert extra.status_code == 422 and "unknown parameter 'replica'" in extra.json()["error"]

    no_by = await run({"name": "scale-up", "params": {"deployment": DEPLOY}})
    assert no_by.status_code == 422 and "by" in no_by.json()["error"]

    nowhere = await run({"name": "scale-up", "params": {"deployment": DEPLOY}, "by": "alice"},
                        incident="incident-19990101-0000-none")
    assert nowhere.status_code == 404, nowhere.text
    assert "incident-19990101-0000-none" in nowhere.json()["error"]

    for path in ("/v1/runbook-runs/no-such-run", "/v1/runbook-runs/no-such-run/approve",
                 "/v1/runbook-runs/no-such-run/deny"):
        resp = await (api.get(path) if path.endswith("run") else api.post(path, json={"by": "alice"}))
        assert resp.status_code == 404, (path, resp.text)
        assert "no runbook run with id 'no-such-run'" in resp.json()["error"]

    state = (await api.get(f"/v1/incidents/{iid}")).json()
    assert state["runbooks"] == [], "no rejected request started a run"
    assert fake.writes() == []


async def test_api_approve_and_deny(api: httpx.AsyncClient, kube: tuple[FakeKubernetes, Path]) -> None:
    fake, _ = kube
    iid = await declare(api)
    resp = await api.post(f"/v1/incidents/{iid}/runbooks", json={
        "name": "rollback-deployment", "params": {"namespace": NS, "deployment": DEPLOY}, "by": "alice"})
    assert resp.status_code == 202, resp.text
    result = resp.json()
    run_id = result["ref"]
    assert run_id == f"{iid}-runbook-1" and result["incident_id"] == iid
    assert result["phase"] == "triage", "asking for a fix changes nothing yet: mitigating comes with the change"

    waiting = await run_state(api, run_id, lambda s: s["status"] == "awaiting_approval")
    assert waiting["pending"]["prompt"].startswith(f"Roll back {NS}/{DEPLOY}?")
    assert waiting["commander"] == "alice" and waiting["runbook"] == "rollback-deployment"

    bob = await api.post(f"/v1/runbook-runs/{run_id}/approve", json={"by": "bob"})
    assert bob.status_code == 409, bob.text
    assert "bob may not approve this run" in bob.json()["error"] and "(alice)" in bob.json()["error"]
    assert fake.writes() == []

    ok = await api.post(f"/v1/runbook-runs/{run_id}/approve", json={"by": "alice", "comment": "go"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["run_id"] == run_id and ok.json()["text"].startswith("approved")

    done = await run_ended(api, iid, run_id)
    assert done["status"] == "succeeded", done["results"]
    assert [(r["name"], r["status"]) for r in done["results"]] == [
        ("approve", "ok"), ("rollback", "ok"), ("wait-for-rollout", "ok")]
    assert done["results"][1]["data"]["target_revision"] == 2
    assert "Rollout of" in done["results"][2]["summary"]
    assert done["pending"] is None
    assert "approved by alice" in done["decisions"][0] and ": go" in done["decisions"][0]
    assert image(fake) == f"{IMAGE}:v2" and fake.revision(NS, DEPLOY) == 4
    assert (await api.get(f"/v1/incidents/{iid}")).json()["phase"] == "mitigating", "the rollback mitigates"
    again = await api.post(f"/v1/runbook-runs/{run_id}/approve", json={"by": "alice"})
    assert again.status_code == 409 and NOTHING_PENDING.search(again.json()["error"]), again.text

    writes_before = len(fake.writes())
    resp = await api.post(f"/v1/incidents/{iid}/runbooks", json={
        "name": "scale-up", "params": {"namespace": NS, "deployment": "search-api", "replicas": 4},
        "by": "bob"})
    assert resp.status_code == 202, resp.text
    second = resp.json()["ref"]
    assert second == f"{iid}-runbook-2"
    await run_state(api, second, lambda s: s["status"] == "awaiting_approval")
    denied = await api.post(f"/v1/runbook-runs/{second}/deny", json={"by": "alice", "comment": "not load"})
    assert denied.status_code == 200, denied.text
    assert denied.json()["text"].startswith("denied")
    end = await run_ended(api, iid, second)
    assert end["status"] == "denied"
    assert "denied by alice" in end["decisions"][0] and "not load" in end["decisions"][0]
    assert all(r["status"] != "ok" for r in end["results"] if r["kind"] == "kubernetes.scale")
    assert len(fake.writes()) == writes_before, "a denied run changes nothing"
    assert not [w for w in fake.writes() if "search-api" in w.path]
    assert fake.deployment(NS, "search-api")["spec"]["replicas"] == 2
    late = await api.post(f"/v1/runbook-runs/{second}/approve", json={"by": "alice"})
    assert late.status_code == 409 and NOTHING_PENDING.search(late.json()["error"]), late.text

    incident = (await api.get(f"/v1/incidents/{iid}")).json()
    assert {r["run_id"]: r["status"] for r in incident["runbooks"]} == {run_id: "succeeded", second: "denied"}


async def test_an_incident_id_is_not_a_run_id(api: httpx.AsyncClient, capture: Any,
                                             dev_env: WorkflowEnvironment,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    iid = await declare(api)
    monkeypatch.setenv("INCIDENTFLOW_TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    status = await capture("status", iid)
    assert status.code == 1 and f"no runbook run with id {iid!r}" in status.err, status
    got = await api.get(f"/v1/runbook-runs/{iid}")
    assert got.status_code == 404, got.text
    approve = await api.post(f"/v1/runbook-runs/{iid}/approve", json={"by": "alice"})
    assert approve.status_code == 404 and "no runbook run" in approve.json()["error"], approve.text
