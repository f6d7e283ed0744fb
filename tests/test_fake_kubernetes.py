"""The wire-level fakes (Kubernetes apiserver, Prometheus, feature flags) driven by the REAL clients: the
official `kubernetes` client configured from a kubeconfig the fake writes, and httpx."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ReadTimeoutError

from tests.fakes.flags import FakeFlags
from tests.fakes.kubernetes import HASH_LABEL, REVISION, FakeKubernetes
from tests.fakes.prometheus import FakePrometheus, format_value

NS, NAME = "shop", "checkout"


@pytest.fixture
def k8s() -> Iterator[FakeKubernetes]:
    with FakeKubernetes(seed=7) as fake:
        fake.add_deployment(NS, NAME, "registry/checkout:v3", replicas=3, revisions=3,
                            labels={"app": NAME, "tier": "web"})
        yield fake


@pytest.fixture
def api(k8s: FakeKubernetes) -> Iterator[client.ApiClient]:
    with k8s.api_client(namespace=NS) as api_client:
        yield api_client


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def status_of(err: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body = json.loads(err.value.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == err.value.status
    return body


def rollout_done(d: client.V1Deployment) -> bool:
    """kubectl rollout status's test."""
    s, want = d.status, d.spec.replicas
    return (s.observed_generation >= d.metadata.generation and (s.updated_replicas or 0) == want
            and (s.replicas or 0) == want and (s.available_replicas or 0) == want)


def kubectl_undo(apps: client.AppsV1Api, to_revision: int | None = None) -> client.V1Deployment:
    """`kubectl rollout undo`: copy the previous ReplicaSet's template into the Deployment."""
    dep = apps.read_namespaced_deployment(NAME, NS)
    selector = ",".join(f"{k}={v}" for k, v in dep.spec.selector.match_labels.items())
    owned = [rs for rs in apps.list_namespaced_replica_set(NS, label_selector=selector).items
             if any(o.uid == dep.metadata.uid and o.controller for o in rs.metadata.owner_references or [])]
    owned.sort(key=lambda rs: int(rs.metadata.annotations[REVISION]))
    current = int(dep.metadata.annotations[REVISION])
    target = next(rs for rs in reversed(owned) if int(rs.metadata.annotations[REVISION])
                  == (to_revision or max(int(r.metadata.annotations[REVISION]) for r in owned
                                         if int(r.metadata.annotations[REVISION]) < current)))
    template = copy.deepcopy(target.spec.template)
    template.metadata.labels.pop(HASH_LABEL)
    dep.spec.template = template
    return apps.replace_namespaced_deployment(NAME, NS, dep)  # carries metadata.resourceVersion


def wait_rollout(apps: client.AppsV1Api, timeout: float = 3.0) -> tuple[client.V1Deployment, int]:
    deadline, polls = time.monotonic() + timeout, 0
    while True:
        d = apps.read_namespaced_deployment(NAME, NS)
        polls += 1
        if rollout_done(d):
            return d, polls
        assert time.monotonic() < deadline, f"rollout did not finish: {d.status}"
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------- kubernetes


def test_kubeconfig_discovery_and_read(k8s: FakeKubernetes, tmp_path: Path) -> None:
    path = k8s.write_kubeconfig(tmp_path / "kube" / "config", context="incident", namespace=NS)
    kubeconfig = yaml.safe_load(path.read_text())
    assert kubeconfig["current-context"] == "incident"
    assert kubeconfig["clusters"][0]["cluster"]["server"] == k8s.base_url
    assert kubeconfig["users"][0]["user"]["token"] == k8s.token
    with config.new_client_from_config(config_file=str(path), context="incident") as api:
        assert client.VersionApi(api).get_code().git_version == "v1.30.2"
        assert [g.name for g in client.ApisApi(api).get_api_versions().groups] == ["apps"]
        assert "deployments/scale" in {r.name for r in client.AppsV1Api(api).get_api_resources().resources}
        apps = client.AppsV1Api(api)
        [listed] = apps.list_namespaced_deployment(NS, label_selector="app=checkout").items
        assert apps.list_namespaced_deployment(NS, label_selector="app=other").items == []
        d = apps.read_namespaced_deployment(NAME, NS)
    assert listed.metadata.name == d.metadata.name == NAME
    assert d.metadata.annotations[REVISION] == "3" and d.metadata.generation == 3
    assert d.spec.selector.match_labels == {"app": NAME, "tier": "web"}
    assert d.spec.template.spec.containers[0].image == "registry/checkout:v3"
    assert d.spec.strategy.rolling_update.max_unavailable == "25%"
    assert rollout_done(d) and d.status.ready_replicas == 3
    assert {c.type: (c.status, c.reason) for c in d.status.conditions} == {
        "Available": ("True", "MinimumReplicasAvailable"), "Progressing": ("True", "NewReplicaSetAvailable")}
    assert all(r.headers["authorization"] == f"Bearer {k8s.token}" for r in k8s.requests)


def test_replicaset_history_and_pods(k8s: FakeKubernetes, apps: client.AppsV1Api,
                                     core: client.CoreV1Api) -> None:
    sets = sorted(apps.list_namespaced_replica_set(NS, label_selector="app=checkout").items,
                  key=lambda rs: int(rs.metadata.annotations[REVISION]))
    assert [(rs.metadata.annotations[REVISION], rs.spec.replicas, rs.spec.template.spec.containers[0].image)
            for rs in sets] == [("1", 0, "registry/checkout:v1"), ("2", 0, "registry/checkout:v2"),
                                ("3", 3, "registry/checkout:v3")]
    dep = k8s.deployment(NS, NAME)
    for rs in sets:
        [owner] = rs.metadata.owner_references
        assert (owner.kind, owner.uid, owner.controller) == ("Deployment", dep["metadata"]["uid"], True)
        assert rs.metadata.name == f"{NAME}-{rs.metadata.labels[HASH_LABEL]}"
    assert apps.read_namespaced_replica_set(sets[2].metadata.name, NS).status.ready_replicas == 3
    pods = core.list_namespaced_pod(NS, label_selector="app=checkout,tier=web").items
    assert len(pods) == 3 and {p.status.phase for p in pods} == {"Running"}
    assert all(p.metadata.name.startswith(sets[2].metadata.name + "-") and len(p.metadata.name) ==
               len(sets[2].metadata.name) + 6 for p in pods)
    assert all(p.status.container_statuses[0].ready and p.status.container_statuses[0].restart_count == 0
               for p in pods)
    for selector in ("app==checkout,tier!=db", "tier in (web,api)", "app,!canary"):
        assert len(core.list_namespaced_pod(NS, label_selector=selector).items) == 3, selector
    assert core.list_namespaced_pod(NS, label_selector="tier notin (web)").items == []
    assert core.list_namespaced_pod("other").items == []
    assert len(core.list_pod_for_all_namespaces(field_selector="status.phase=Running").items) == 3
    assert [p["metadata"]["name"] for p in k8s.pods(NS, {"app": NAME})] == sorted(
        p.metadata.name for p in pods)


def test_pod_logs(k8s: FakeKubernetes, core: client.CoreV1Api) -> None:
    pod = k8s.pods(NS)[0]["metadata"]["name"]
    default = core.read_namespaced_pod_log(pod, NS)
    assert "starting checkout image=registry/checkout:v3" in default
    assert core.read_namespaced_pod_log(pod, NS, tail_lines=2) == "".join(default.splitlines(True)[-2:])
    k8s.set_logs(NS, f"{NAME}-", "line 1\nline 2\npanic: nil map\n")
    assert core.read_namespaced_pod_log(pod, NS, tail_lines=1, container=NAME) == "panic: nil map\n"
    log_request = k8s.requests[-1]
    assert log_request.path.endswith(f"/pods/{pod}/log")
    assert log_request.query == {"container": NAME, "tailLines": "1"}
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log(pod, NS, container="sidecar")
    assert err.value.status == 400 and "is not valid for pod" in status_of(err)["message"]
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log(pod, NS, previous=True)
    assert err.value.status == 400 and "previous terminated container" in status_of(err)["message"]
    k8s.set_pod_state(NS, pod, restart_count=4, last_terminated_reason="OOMKilled")
    assert "OOMKilled" in core.read_namespaced_pod_log(pod, NS, previous=True)
    cs = core.read_namespaced_pod(pod, NS).status.container_statuses[0]
    assert (cs.restart_count, cs.last_state.terminated.reason, cs.last_state.terminated.exit_code) == (
        4, "OOMKilled", 137)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("checkout-nope-xxxxx", NS)
    assert status_of(err)["message"] == 'pods "checkout-nope-xxxxx" not found'


def test_scale_through_the_scale_subresource(k8s: FakeKubernetes, apps: client.AppsV1Api) -> None:
    before = apps.read_namespaced_deployment(NAME, NS)
    scale = apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 5}})
    assert (scale.kind, scale.spec.replicas, scale.status.replicas) == ("Scale", 5, 5)
    assert scale.status.selector == "app=checkout,tier=web"
    d = apps.read_namespaced_deployment(NAME, NS)
    assert d.metadata.generation == before.metadata.generation + 1
    assert d.metadata.resource_version != before.metadata.resource_version
    assert rollout_done(d) and d.status.ready_replicas == 5 and len(k8s.pods(NS)) == 5
    assert d.metadata.annotations[REVISION] == "3"  # scaling is not a new revision
    [write] = k8s.writes()
    assert (write.method, write.path, write.body) == (
        "PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}/scale", {"spec": {"replicas": 5}})
    assert write.headers["content-type"] == "application/strategic-merge-patch+json"
    current = apps.read_namespaced_deployment_scale(NAME, NS)
    current.spec.replicas = 0
    assert apps.replace_namespaced_deployment_scale(NAME, NS, current).spec.replicas == 0
    d = apps.read_namespaced_deployment(NAME, NS)
    assert d.status.replicas is None and d.status.ready_replicas is None  # omitempty, like the API
    assert k8s.pods(NS) == []


def test_rollout_undo_the_kubectl_way(k8s: FakeKubernetes, apps: client.AppsV1Api) -> None:
    before = apps.read_namespaced_deployment(NAME, NS)
    undone = kubectl_undo(apps)
    assert undone.metadata.annotations[REVISION] == "4"
    assert undone.spec.template.spec.containers[0].image == "registry/checkout:v2"
    assert undone.metadata.generation == before.metadata.generation + 1 and rollout_done(undone)
    sets = {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs for rs in k8s.replicasets(NS, NAME)}
    assert len(sets) == 3  # the v2 ReplicaSet was reused, not recreated
    v2 = sets["registry/checkout:v2"]["metadata"]["annotations"]
    assert (v2[REVISION], v2["deployment.kubernetes.io/revision-history"]) == ("4", "2")
    assert sets["registry/checkout:v2"]["spec"]["replicas"] == 3
    assert sets["registry/checkout:v3"]["spec"]["replicas"] == 0
    assert {p["spec"]["containers"][0]["image"] for p in k8s.pods(NS)} == {"registry/checkout:v2"}
    [put] = k8s.writes()
    assert put.method == "PUT" and put.body["metadata"]["resourceVersion"] == before.metadata.resource_version
    again = kubectl_undo(apps)  # undo the undo: back to v3, now revision 5
    assert (again.metadata.annotations[REVISION], again.spec.template.spec.containers[0].image) == (
        "5", "registry/checkout:v3")


def test_restart_creates_a_new_revision(k8s: FakeKubernetes, apps: client.AppsV1Api) -> None:
    old_pods = {p["metadata"]["name"] for p in k8s.pods(NS)}
    patch = {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2024-05-01T12:00:00Z"}}}}}
    d = apps.patch_namespaced_deployment(NAME, NS, patch)
    assert d.metadata.annotations[REVISION] == "4" and rollout_done(d)
    assert d.spec.template.spec.containers[0].image == "registry/checkout:v3"
    assert len(k8s.replicasets(NS, NAME)) == 4
    pods = k8s.pods(NS)
    assert len(pods) == 3 and not old_pods & {p["metadata"]["name"] for p in pods}
    assert all(p["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] for p in pods)


def test_json_patch_and_merge_patch(k8s: FakeKubernetes, apps: client.AppsV1Api) -> None:
    d = apps.patch_namespaced_deployment(NAME, NS, [
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "registry/checkout:v4"},
        {"op": "add", "path": "/metadata/labels/owner", "value": "sre"}])
    assert d.spec.template.spec.containers[0].image == "registry/checkout:v4"
    assert d.metadata.labels["owner"] == "sre" and d.metadata.annotations[REVISION] == "4"
    d = apps.patch_namespaced_deployment(NAME, NS, {"metadata": {"labels": {"owner": None}}},
                                         _content_type="application/merge-patch+json")
    assert "owner" not in d.metadata.labels
    assert [r.headers["content-type"] for r in k8s.writes()] == [
        "application/json-patch+json", "application/merge-patch+json"]
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(NAME, NS, [{"op": "replace", "path": "/spec/nope/x", "value": 1}])
    assert err.value.status == 422


def test_stale_resource_version_conflicts(k8s: FakeKubernetes, apps: client.AppsV1Api) -> None:
    stale = apps.read_namespaced_deployment(NAME, NS)
    apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 4}})  # someone else writes
    stale.spec.replicas = 1
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment(NAME, NS, stale)
    body = status_of(err)
    assert (err.value.status, body["reason"]) == (409, "Conflict")
    assert body["message"] == ('Operation cannot be fulfilled on deployments.apps "checkout": the object has '
                               "been modified; please apply your changes to the latest version and try again")
    assert k8s.deployment(NS, NAME)["spec"]["replicas"] == 4


def test_wrong_token_is_401(k8s: FakeKubernetes, apps: client.AppsV1Api) -> None:
    k8s.token = "rotated"
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment(NAME, NS)
    assert err.value.status == 401
    assert json.loads(err.value.body) == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                          "status": "Failure", "message": "Unauthorized",
                                          "reason": "Unauthorized", "code": 401}


def test_forbidden_is_403(k8s: FakeKubernetes, apps: client.AppsV1Api) -> None:
    k8s.forbid("patch", "deployments/scale")
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 9}})
    body = status_of(err)
    assert (err.value.status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == ('deployments.apps "checkout" is forbidden: User "incidentflow" cannot patch '
                               'resource "deployments/scale" in API group "apps" in the namespace "shop"')
    assert apps.read_namespaced_deployment_scale(NAME, NS).spec.replicas == 3  # get is still allowed
    k8s.forbid("list", "*")
    with pytest.raises(ApiException) as err:
        apps.list_namespaced_deployment(NS)
    assert status_of(err)["message"].startswith("deployments.apps is forbidden: ")
    assert k8s.writes() == []


def test_not_found_is_404(apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("nope", NS)
    body = status_of(err)
    assert (err.value.status, body["reason"], body["message"]) == (404, "NotFound",
                                                                   'deployments.apps "nope" not found')
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale("nope", NS, {"spec": {"replicas": 1}})
    assert err.value.status == 404


def test_negative_replicas_is_422(k8s: FakeKubernetes, apps: client.AppsV1Api) -> None:
    for call in (lambda: apps.patch_namespaced_deployment(NAME, NS, {"spec": {"replicas": -1}}),
                 lambda: apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": -1}})):
        with pytest.raises(ApiException) as err:
            call()
        body = status_of(err)
        assert (err.value.status, body["reason"]) == (422, "Invalid")
        [cause] = body["details"]["causes"]
        assert cause["field"] == "spec.replicas" and "must be greater than or equal to 0" in cause["message"]
    assert body["message"].startswith('Scale.autoscaling "checkout" is invalid: spec.replicas')
    assert k8s.deployment(NS, NAME)["spec"]["replicas"] == 3 and k8s.writes() == []


def test_injected_failure_then_success(k8s: FakeKubernetes, apps: client.AppsV1Api) -> None:
    k8s.fail_next(1, 500, method="PATCH")
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 6}})
    assert (err.value.status, status_of(err)["reason"]) == (500, "InternalError")
    assert k8s.deployment(NS, NAME)["spec"]["replicas"] == 3  # not applied
    apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 6}})
    assert k8s.deployment(NS, NAME)["spec"]["replicas"] == 6
    assert [r.status for r in k8s.requests if r.method == "PATCH"] == [500, 200] and len(k8s.writes()) == 1
    k8s.fail_next(1, 409, path_contains="/deployments/checkout", method="PUT")
    d = apps.read_namespaced_deployment(NAME, NS)
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment(NAME, NS, d)
    assert status_of(err)["message"].startswith(
        'Operation cannot be fulfilled on deployments.apps "checkout"')


def test_slow_apiserver_times_out_the_client(k8s: FakeKubernetes, apps: client.AppsV1Api) -> None:
    k8s.delay_next(0.5, method="PATCH")
    with pytest.raises(ReadTimeoutError):
        apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 2}}, _request_timeout=0.1)


def test_rollout_delay_makes_status_lag(k8s: FakeKubernetes, apps: client.AppsV1Api) -> None:
    k8s.rollout_delay = 0.3
    started = time.monotonic()
    d = apps.patch_namespaced_deployment(NAME, NS, {"spec": {"template": {"spec": {"containers": [
        {"name": NAME, "image": "registry/checkout:v4"}]}}}})
    assert d.status.observed_generation == d.metadata.generation and not rollout_done(d)
    assert d.status.updated_replicas is None and d.status.available_replicas == 3  # old pods still serve
    assert d.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"  # containers merged by name
    done, polls = wait_rollout(apps)
    assert polls >= 3 and time.monotonic() - started >= 0.3
    assert done.status.updated_replicas == 3 and done.metadata.annotations[REVISION] == "4"
    assert {p["spec"]["containers"][0]["image"] for p in k8s.pods(NS)} == {"registry/checkout:v4"}
    apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 5}})
    assert apps.read_namespaced_deployment_scale(NAME, NS).status.replicas == 3  # scaling lags too
    assert wait_rollout(apps)[0].status.ready_replicas == 5


def test_stalled_rollout_never_completes(k8s: FakeKubernetes, apps: client.AppsV1Api,
                                         core: client.CoreV1Api) -> None:
    k8s.stall_rollouts = True
    k8s.progress_deadline = 0.2
    apps.patch_namespaced_deployment(NAME, NS, {"spec": {"template": {"spec": {"containers": [
        {"name": NAME, "image": "registry/checkout:v4"}]}}}})
    time.sleep(0.3)
    d = apps.read_namespaced_deployment(NAME, NS)
    assert not rollout_done(d) and d.status.available_replicas == 3 and d.status.replicas == 6
    progressing = next(c for c in d.status.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason) == ("False", "ProgressDeadlineExceeded")
    pending = core.list_namespaced_pod(NS, field_selector="status.phase=Pending").items
    assert len(pending) == 3
    assert pending[0].status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    k8s.stall_rollouts = False
    assert rollout_done(apps.read_namespaced_deployment(NAME, NS))


def test_broken_image_then_rollback(k8s: FakeKubernetes, apps: client.AppsV1Api,
                                    core: client.CoreV1Api) -> None:
    k8s.break_image("registry/checkout:v4", message="config key PAYMENTS_URL missing")
    k8s.set_image(NS, NAME, "registry/checkout:v4")  # the bad deploy, not through the API
    d = apps.read_namespaced_deployment(NAME, NS)
    assert not rollout_done(d) and d.metadata.annotations[REVISION] == "4"
    crashing = [p for p in core.list_namespaced_pod(NS, label_selector="app=checkout").items
                if p.spec.containers[0].image.endswith(":v4")]
    assert len(crashing) == 3
    cs = crashing[0].status.container_statuses[0]
    assert (cs.ready, cs.state.waiting.reason, cs.restart_count) == (False, "CrashLoopBackOff", 5)
    log = core.read_namespaced_pod_log(crashing[0].metadata.name, NS, previous=True)
    assert "PAYMENTS_URL" not in log and "exiting with code 1" in log
    assert "PAYMENTS_URL" in core.read_namespaced_pod_log(crashing[0].metadata.name, NS)
    undone = kubectl_undo(apps)
    assert undone.spec.template.spec.containers[0].image == "registry/checkout:v3" and rollout_done(undone)
    assert undone.metadata.annotations[REVISION] == "5"
    assert {p["spec"]["containers"][0]["image"] for p in k8s.pods(NS)} == {"registry/checkout:v3"}


def test_deleting_a_pod_gets_a_replacement(k8s: FakeKubernetes, core: client.CoreV1Api) -> None:
    victim = k8s.pods(NS)[0]["metadata"]["name"]
    core.delete_namespaced_pod(victim, NS)
    names = {p["metadata"]["name"] for p in k8s.pods(NS)}
    assert len(names) == 3 and victim not in names


# ------------------------------------------------------------------------------------------- prometheus


def test_prometheus_sequences_vectors_and_errors() -> None:
    q = 'sum(rate(http_requests_total{job="checkout",code=~"5.."}[5m]))'
    with FakePrometheus() as prom, httpx.Client(base_url=prom.url, timeout=5) as http:
        prom.set(q, [0.4, 0.25, 1])
        values = [http.get("/api/v1/query", params={"query": q}).json() for _ in range(4)]
        assert [v["data"]["result"][0]["value"][1] for v in values] == ["0.4", "0.25", "1", "1"]
        first = values[0]
        assert first["status"] == "success" and first["data"]["resultType"] == "vector"
        [only] = first["data"]["result"]
        assert only["metric"] == {} and isinstance(only["value"][0], float)
        prom.set_vector("up", [({"job": "checkout", "instance": "a"}, 1),
                               ({"job": "checkout", "instance": "b"}, 0)])
        r = http.post("/api/v1/query", data={"query": "up", "time": "1700000000"})
        assert r.json()["data"]["result"] == [
            {"metric": {"job": "checkout", "instance": "a"}, "value": [1700000000.0, "1"]},
            {"metric": {"job": "checkout", "instance": "b"}, "value": [1700000000.0, "0"]}]
        assert http.get("/api/v1/query", params={"query": "unknown_metric"}).json()["data"]["result"] == []
        prom.fail_next(1, status=503)
        r = http.get("/api/v1/query", params={"query": q})
        assert (r.status_code, r.json()["status"], r.json()["errorType"]) == (503, "error", "unavailable")
        r = http.get("/api/v1/query", params={"query": "bad("})
        assert (r.status_code, r.json()["errorType"]) == (400, "bad_data")
        assert "parse error" in r.json()["error"]
        prom.invalid("rate(x[5m]) by")
        assert http.get("/api/v1/query", params={"query": "rate(x[5m]) by"}).status_code == 400
        r = http.get("/api/v1/query_range", params={"query": "up", "start": 0, "end": 60, "step": "30s"})
        assert [s["values"] for s in r.json()["data"]["result"]][0] == [[0.0, "1"], [30.0, "1"], [60.0, "1"]]
        assert prom.queries[:4] == [q] * 4 and prom.calls(q) == 4  # the 503 was not evaluated
    assert [format_value(v) for v in (2.0, 0.1, float("nan"), float("inf"), 1e-05)] == [
        "2", "0.1", "NaN", "+Inf", "0.00001"]


def test_prometheus_bearer_auth() -> None:
    with FakePrometheus(token="s3cret") as prom:
        assert httpx.get(prom.url + "/api/v1/query", params={"query": "up"}).status_code == 401
        ok = httpx.get(prom.url + "/api/v1/query", params={"query": "up"},
                       headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and prom.queries == ["up"]


# ------------------------------------------------------------------------------------------------ flags


def test_flags_auth_and_toggling() -> None:
    with FakeFlags() as flags, httpx.Client(base_url=flags.url, timeout=5) as http:
        flags.add_flag("checkout.new-pricing", enabled=True)
        auth = {"Authorization": f"Bearer {flags.token}"}
        assert http.get("/flags/checkout.new-pricing").status_code == 401
        assert http.get("/flags/checkout.new-pricing", headers={"Authorization": "Bearer nope"}).json() == {
            "error": "unauthorized"}
        got = http.get("/flags/checkout.new-pricing", headers=auth).json()
        assert (got["key"], got["enabled"]) == ("checkout.new-pricing", True) and got["updated_at"]
        r = http.post("/flags/checkout.new-pricing/disable", headers=auth)
        assert r.status_code == 200 and r.json()["enabled"] is False
        assert not flags.enabled("checkout.new-pricing")
        assert http.put("/flags/checkout.new-pricing", json={"enabled": True}, headers=auth).json()["enabled"]
        bad = http.patch("/flags/checkout.new-pricing", json={"enabled": "no"}, headers=auth)
        assert bad.status_code == 400
        r = http.post("/flags/nope/enable", headers=auth)
        assert (r.status_code, r.json()) == (404, {"error": "flag not found"})
        flags.fail_next(1, status=503)
        assert http.post("/flags/checkout.new-pricing/disable", headers=auth).status_code == 503
        assert flags.flags["checkout.new-pricing"].enabled is True  # the failure was not applied
        assert flags.changes == [("checkout.new-pricing", False), ("checkout.new-pricing", True)]
        put = next(r for r in flags.requests if r.method == "PUT")
        assert put.json == {"enabled": True} and put.headers["authorization"] == f"Bearer {flags.token}"
        assert [r.status for r in flags.requests] == [401, 401, 200, 200, 200, 400, 404, 503]
