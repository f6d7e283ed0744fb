"""Least privilege for runbooks (issue 17): `incidentflow runbook rbac` prints the Roles and RoleBindings
exactly the runbooks need; every shipped runbook runs with a token limited to them (the fake Kubernetes
API enforces RBAC, through the real `kubernetes` client and our adapter), and a step outside them is
refused with the API server's message naming the verb, the resource and the namespace."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException
from temporalio.exceptions import ApplicationError

from activities.errors import KUBE_REJECTED
from activities.kubernetes import KubernetesCluster
from activities.probes import HttpProbe, PrometheusProbe
from activities.steps import RunbookSteps
from domain.models.runbook import StepInput, StepOutcome
from domain.runbooks import Runbook, coerce_params, load_runbooks, render_steps
from domain.runbooks.rbac import RbacError, RoleSpec, RuleSpec, calls_of, render_rbac, rules_for
from incidentflow.cli import main
from tests.fakes.kube_rbac import RbacRule
from tests.fakes.kubernetes import FakeKubernetes

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = load_runbooks([ROOT / "runbooks"])
MANIFEST = ROOT / "deploy" / "kubernetes" / "rbac-runbooks.yaml"
SA_NS, SA = "incidentflow", "incidentflow-worker"
USER = f"system:serviceaccount:{SA_NS}:{SA}"
INCIDENT = {"id": "inc-20240501-1200-sev2", "service": "checkout", "severity": "sev2"}


def manifests(*namespaces: str) -> str:
    return render_rbac(rules_for(SHIPPED, namespaces), SHIPPED.names)


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    with FakeKubernetes(seed=17) as k8s:
        k8s.add_deployment("payments", "checkout-service", "registry/checkout:v3", replicas=3, revisions=3)
        k8s.add_deployment("default", "web", "registry/web:v2", replicas=2, revisions=2)
        k8s.add_deployment("shop", "web", "registry/web:v2", replicas=2, revisions=2)  # no runbook names it
        yield k8s


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def limited(kube: FakeKubernetes, tmp_path: Path, http: httpx.AsyncClient, text: str) -> RunbookSteps:
    """The worker's step table with a cluster whose token has only what `text` grants the worker's account."""
    token = kube.bind_service_account(text, SA_NS, SA)
    path = kube.write_kubeconfig(tmp_path / f"kubeconfig-{len(kube.requests)}", token=token)
    cluster = KubernetesCluster.from_settings(str(path), None, request_timeout=5, poll_interval=0.02)
    return RunbookSteps(cluster, HttpProbe(http, {}), PrometheusProbe(http, None))


async def run_kube_steps(runner: RunbookSteps, runbook: Runbook, params: dict[str, str]) -> list[StepOutcome]:
    """Plan and apply each Kubernetes step like the runbook workflow (approvals, notify, HTTP and Prometheus
    steps never reach the API server)."""
    outcomes = []
    for step in render_steps(runbook, coerce_params(runbook, params), INCIDENT):
        if not calls_of(runbook.steps[step.index]):
            continue
        if step.kind == "kubernetes.restart":  # the workflow stamps it with workflow.now()
            step = step.model_copy(update={"args": {**step.args, "restarted_at": "2024-05-01T12:00:00Z"}})
        plan = await runner.plan(step)
        outcomes.append(await runner.apply(StepInput(run_id="run-1", incident_id=INCIDENT["id"], step=step,
                                                     plan=plan)))
    return outcomes


def granted(text: str) -> set[tuple[str, str, str, str]]:
    """(verb, group, resource, namespace) of every Role rule in the manifests."""
    return {(verb, group, resource, doc["metadata"]["namespace"])
            for doc in yaml.safe_load_all(text) if doc and doc["kind"] == "Role"
            for rule in doc["rules"] for group in rule["apiGroups"] for resource in rule["resources"]
            for verb in rule["verbs"]}


# ------------------------------------------------------------------------------------------- the rules


def test_the_shipped_runbooks_need_exactly_these_rules() -> None:
    def rule(group: str, resource: str, **verbs: list[str]) -> RuleSpec:
        return RuleSpec(group, resource, tuple(sorted(verbs)),
                        tuple((verb, tuple(steps)) for verb, steps in sorted(verbs.items())))

    checkout = "checkout-high-error-rate"
    assert rules_for(SHIPPED) == [
        RoleSpec("default", (
            rule("", "pods", list=["restart-pods/pods"]),
            rule("apps", "deployments",
                 get=["restart-pods/restart", "restart-pods/wait-for-rollout", "rollback-deployment/rollback",
                      "rollback-deployment/wait-for-rollout", "scale-up/wait-for-rollout"],
                 patch=["restart-pods/restart"], update=["rollback-deployment/rollback"]),
            rule("apps", "deployments/scale", get=["scale-up/scale"], patch=["scale-up/scale"]),
            rule("apps", "replicasets", list=["rollback-deployment/rollback"]),
        ), ("restart-pods", "rollback-deployment", "scale-up")),
        RoleSpec("payments", (
            rule("", "pods", list=[f"{checkout}/logs", f"{checkout}/pods"]),
            rule("", "pods/log", get=[f"{checkout}/logs"]),
            rule("apps", "deployments", get=[f"{checkout}/rollback", f"{checkout}/wait-for-rollout"],
                 update=[f"{checkout}/rollback"]),
            rule("apps", "replicasets", list=[f"{checkout}/rollback"]),
        ), (checkout,)),
    ]
    assert not [s for s in SHIPPED.get("disable-feature-flag").steps if calls_of(s)]  # HTTP only: no Role


def test_templated_and_literal_namespaces(tmp_path: Path) -> None:
    (tmp_path / "ops.yaml").write_text("""\
name: ops
title: Ops
parameters:
  ns: {type: string, required: true}
  team: {type: string, default: shop}
steps:
  - {kind: kubernetes.pods, name: pods, namespace: "{{ ns }}", selector: app=x}
  - {kind: kubernetes.logs, name: log, namespace: ops, pod: ops-0}
  - {kind: kubernetes.rollout_status, name: wait, namespace: "{{ team }}-prod", deployment: web}
  - {kind: notify, text: done}
""")
    runbooks = load_runbooks([tmp_path])
    with pytest.raises(RbacError) as err:
        rules_for(runbooks)
    assert err.value.problems == ["runbook 'ops' step 'pods': namespace '{{ ns }}' comes from 'ns' (no default): "
                                  "name the namespaces it may act in with --namespace"]
    roles = {r.namespace: [(rule.resource, rule.verbs) for rule in r.rules]
             for r in rules_for(runbooks, ["blue", "green", "blue"])}
    assert roles == {
        "blue": [("pods", ("list",)), ("deployments", ("get",))],
        "green": [("pods", ("list",)), ("deployments", ("get",))],
        "ops": [("pods/log", ("get",))],  # a literal namespace is never widened; a named pod needs no list
        "shop-prod": [("deployments", ("get",))],  # the parameter's default, plus every --namespace
    }
    with pytest.raises(RbacError, match="'Blue' is not a valid Kubernetes namespace"):
        rules_for(runbooks, ["Blue"])


# --------------------------------------------------------------------------- runs with exactly those rules


async def test_every_shipped_runbook_runs_with_a_token_limited_to_the_rules(
        kube: FakeKubernetes, tmp_path: Path, http: httpx.AsyncClient) -> None:
    text = manifests()  # == deploy/kubernetes/rbac-runbooks.yaml (test_the_shipped_manifest_…)
    runner = limited(kube, tmp_path, http, text)
    params: dict[str, dict[str, str]] = {  # in this order: roll back web, then restart and scale it
        "checkout-high-error-rate": {}, "rollback-deployment": {"deployment": "web"},
        "restart-pods": {"deployment": "web"}, "scale-up": {"deployment": "web", "replicas": "4"},
        "disable-feature-flag": {"flag": "new-checkout"}}
    assert sorted(params) == sorted(SHIPPED.names)  # a new shipped runbook must be run here too
    summaries = []
    for name, given in params.items():
        outcomes = await run_kube_steps(runner, SHIPPED.get(name), given)
        assert all(o.ok for o in outcomes)
        summaries += [o.summary for o in outcomes]
    assert "Rolled back payments/checkout-service from revision 3 to the template of revision 2 (now revision 4)" \
        in summaries
    assert "Rolled back default/web from revision 2 to the template of revision 1 (now revision 3)" in summaries
    assert "Restarted default/web: new pods roll out (now revision 4)" in summaries
    assert "Scaled default/web from 2 to 4 replicas" in summaries
    assert any(s.startswith("Last 200 log lines of 3 pods for app=checkout-service in payments") for s in summaries)
    assert kube.deployment("default", "web")["spec"]["replicas"] == 4

    limited_requests = [r for r in kube.requests if r.headers.get("authorization") != f"Bearer {kube.token}"]
    assert limited_requests and all(200 <= r.status < 300 for r in limited_requests)
    used = {access[:4] for r in limited_requests if (access := kube.access(r)) is not None}
    assert used == granted(text)  # every rule is used: nothing granted that a runbook does not need


async def test_a_namespace_without_a_role_is_refused_naming_verb_resource_and_namespace(
        kube: FakeKubernetes, tmp_path: Path, http: httpx.AsyncClient) -> None:
    runner = limited(kube, tmp_path, http, manifests())
    with pytest.raises(ApplicationError) as err:
        await run_kube_steps(runner, SHIPPED.get("rollback-deployment"), {"deployment": "web", "namespace": "shop"})
    assert err.value.type == KUBE_REJECTED and err.value.non_retryable
    assert err.value.message == (
        f'Kubernetes refused to get deployments/web in shop: 403 Forbidden: deployments.apps "web" is forbidden: '
        f'User "{USER}" cannot get resource "deployments" in API group "apps" in the namespace "shop"')

    # payments has a Role, but only for the checkout runbook: scaling there needs the scale subresource
    with pytest.raises(ApplicationError) as err:
        await run_kube_steps(runner, SHIPPED.get("scale-up"), {"deployment": "checkout-service",
                                                               "namespace": "payments"})
    assert err.value.type == KUBE_REJECTED and err.value.message == (
        "Kubernetes refused to get deployments/checkout-service/scale in payments: 403 Forbidden: "
        f'deployments.apps "checkout-service" is forbidden: User "{USER}" cannot get resource '
        '"deployments/scale" in API group "apps" in the namespace "payments"')
    assert kube.writes() == []

    # named with --namespace, the same run succeeds
    runner = limited(kube, tmp_path, http, manifests("shop"))
    outcomes = await run_kube_steps(runner, SHIPPED.get("rollback-deployment"), {"deployment": "web",
                                                                                 "namespace": "shop"})
    assert outcomes[0].summary.startswith("Rolled back shop/web from revision 2")


def refusal(err: pytest.ExceptionInfo[ApiException]) -> str:
    """The message of the API server's Status body."""
    assert err.value.status == 403
    return str(json.loads(str(err.value.body))["message"])


def test_what_no_runbook_does_is_refused(kube: FakeKubernetes) -> None:
    token = kube.bind_service_account(manifests(), SA_NS, SA)
    pod = kube.pods("payments")[0]["metadata"]["name"]
    with kube.api_client(token=token) as api:
        with pytest.raises(ApiException) as err:
            CoreV1Api(api).delete_namespaced_pod(pod, "payments")
        assert err.value.status == 403
        assert refusal(err) == (
            f'pods "{pod}" is forbidden: User "{USER}" cannot delete resource "pods" in API group "" in the '
            'namespace "payments"')
        with pytest.raises(ApiException) as err:
            CoreV1Api(api).list_pod_for_all_namespaces()
        assert refusal(err) == (
            f'pods is forbidden: User "{USER}" cannot list resource "pods" in API group "" at the cluster scope')
        assert len(CoreV1Api(api).list_namespaced_pod("payments").items) == 3  # what the Role gives
    assert pod in {p["metadata"]["name"] for p in kube.pods("payments")}
    with kube.api_client() as admin:  # the fake's own token is unrestricted, as before
        assert len(CoreV1Api(admin).list_pod_for_all_namespaces().items) == 7


def test_fake_rbac_rules_resource_names_and_wildcards(kube: FakeKubernetes) -> None:
    token = kube.bind_token([RbacRule.of([""], ["pods"], ["get"], "payments", ["nope"]),
                             RbacRule.of(["*"], ["*"], ["list"], None)], user="jane")
    pod = kube.pods("payments")[0]["metadata"]["name"]
    with kube.api_client(token=token) as api:
        assert len(CoreV1Api(api).list_pod_for_all_namespaces().items) == 7  # a cluster-wide rule
        with pytest.raises(ApiException) as err:
            CoreV1Api(api).read_namespaced_pod(pod, "payments")
        assert 'User "jane" cannot get resource "pods"' in refusal(err)


# ---------------------------------------------------------------------------------------- the command


def rbac_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["runbook", "rbac", *args])
    got = capsys.readouterr()
    return code, got.out, got.err


def test_the_shipped_manifest_is_the_command_output(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the worker's loading: ./runbooks (and INCIDENTFLOW_RUNBOOKS_DIR, unset here)
    monkeypatch.delenv("INCIDENTFLOW_RUNBOOKS_DIR", raising=False)
    code, out, err = rbac_cli(capsys)
    assert (code, err) == (0, "")
    assert out == MANIFEST.read_text(), "regenerate: incidentflow runbook rbac > deploy/kubernetes/rbac-runbooks.yaml"
    assert "#   update deployments (apps): checkout-high-error-rate/rollback\n" in out
    assert out.startswith("# Kubernetes RBAC for incidentflow's runbook steps")


@pytest.mark.parametrize("extra", [(), ("--namespace", "search", "--namespace", "identity")])
def test_the_yaml_is_namespaced_without_wildcards_or_secrets(capsys: pytest.CaptureFixture[str],
                                                            extra: tuple[str, ...]) -> None:
    code, out, _ = rbac_cli(capsys, str(ROOT / "runbooks"), *extra)
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert code == 0 and {d["kind"] for d in docs} == {"Role", "RoleBinding"}
    namespaces = sorted({d["metadata"]["namespace"] for d in docs})
    assert namespaces == sorted({"default", "payments", *extra[1::2]})
    for doc in docs:
        assert doc["apiVersion"] == "rbac.authorization.k8s.io/v1"
        assert doc["metadata"]["name"] == "incidentflow-runbooks"
    for rule in (r for d in docs if d["kind"] == "Role" for r in d["rules"]):
        assert set(rule) == {"apiGroups", "resources", "verbs"}
        words = [*rule["apiGroups"], *rule["resources"], *rule["verbs"]]
        assert not [w for w in words if "*" in w or "secret" in w]
    for binding in (d for d in docs if d["kind"] == "RoleBinding"):
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": "incidentflow-runbooks"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SA, "namespace": SA_NS}]


def test_flags_and_determinism(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = str(ROOT / "runbooks")
    one = rbac_cli(capsys, path, "--namespace", "b", "--namespace", "a", "--service-account", "runner",
                   "--sa-namespace", "ops")
    two = rbac_cli(capsys, "--namespace", "a", path, "--namespace", "b", "--namespace", "a",
                   "--sa-namespace", "ops", "--service-account", "runner")
    assert one == two and one[0] == 0
    assert ("\n#   incidentflow runbook rbac --namespace a --namespace b --service-account runner "
            "--sa-namespace ops\n") in one[1]
    assert {"kind": "ServiceAccount", "name": "runner", "namespace": "ops"} in [
        s for d in yaml.safe_load_all(one[1]) if d and d["kind"] == "RoleBinding" for s in d["subjects"]]

    for args, problem in [
            (["--namespace", "Payments"], "error: --namespace 'Payments' is not a valid Kubernetes namespace"),
            (["--service-account", "Worker!"], "error: --service-account 'Worker!' is not a valid service account"),
            (["--sa-namespace", "ops_1"], "error: --sa-namespace 'ops_1' is not a valid Kubernetes namespace")]:
        code, out, err = rbac_cli(capsys, path, *args)
        assert (code, out) == (2, "") and err.startswith(problem) and err.count("\n") == 1

    (tmp_path / "any.yaml").write_text("name: any\ntitle: Any\nparameters: {ns: {type: string, required: true}}\n"
                                       "steps: [{kind: kubernetes.pods, namespace: '{{ ns }}', selector: a=b}]\n")
    code, out, err = rbac_cli(capsys, str(tmp_path))
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert "runbook 'any' step '0-kubernetes.pods': namespace '{{ ns }}' comes from 'ns'" in err
    assert rbac_cli(capsys, str(tmp_path), "--namespace", "team-a")[0] == 0


def test_runbooks_without_kubernetes_steps_grant_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = rbac_cli(capsys, str(ROOT / "runbooks" / "disable-feature-flag.yaml"))
    assert code == 0 and "No runbook has a Kubernetes step: nothing to grant." in out
    assert [d for d in yaml.safe_load_all(out) if d] == []
