"""`activities.kubernetes.KubernetesCluster` (the `Cluster` port) against the fake apiserver, through the real `kubernetes` client
loaded from a kubeconfig: plans decide once, applies are idempotent under retries, errors are classified."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from kubernetes import config
from temporalio.exceptions import ApplicationError

from activities.errors import KUBE_REJECTED, KUBE_UNAVAILABLE, NOT_CONFIGURED, ROLLOUT_TIMEOUT
from activities.kube_templates import RESTARTED_AT, template_changes
from activities.kube_text import join_logs
from activities.kubernetes import KubernetesCluster
from domain.models.runbook import LogsArgs, PodsArgs, RolloutStatusArgs, ScaleArgs
from tests.fakes.kubernetes import REVISION, FakeKubernetes

NS, NAME = "shop", "checkout"
REF = f"{NS}/{NAME}"
CONTEXT = "incident"


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    with FakeKubernetes(seed=11) as k8s:
        k8s.add_deployment(NS, NAME, "registry/checkout:v3", replicas=3, revisions=3, labels={"app": NAME})
        yield k8s


@pytest.fixture
def kubeconfig(fake: FakeKubernetes, tmp_path: Path) -> Path:
    return fake.write_kubeconfig(tmp_path / "kube" / "config", context=CONTEXT, namespace=NS)


def make_steps(path: Path, request_timeout: float = 2.0, poll_interval: float = 0.05) -> KubernetesCluster:
    return KubernetesCluster(lambda: config.new_client_from_config(config_file=str(path), context=CONTEXT,
                                                           persist_config=False),
                     request_timeout=request_timeout, poll_interval=poll_interval)


@pytest.fixture
def steps(kubeconfig: Path) -> Iterator[KubernetesCluster]:
    s = make_steps(kubeconfig)
    yield s
    s.close()


def image(fake: FakeKubernetes) -> str:
    return str(fake.deployment(NS, NAME)["spec"]["template"]["spec"]["containers"][0]["image"])


def wait_until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


# ------------------------------------------------------------------------------------------- rollback


async def test_rollback_to_previous_then_a_retry_cannot_undo_the_undo(fake: FakeKubernetes,
                                                                      steps: KubernetesCluster) -> None:
    plan = await steps.plan_rollout_undo(NS, NAME, None)
    assert plan.summary == f"Roll back {REF} from revision 3 to revision 2"
    assert not plan.noop
    v2 = next(rs for rs in fake.replicasets(NS, NAME) if rs["metadata"]["annotations"][REVISION] == "2")
    assert plan.data == {"target_revision": 2, "from_revision": 3, "target_replicaset": v2["metadata"]["name"]}
    assert plan.changes == ["container checkout: image registry/checkout:v3 → registry/checkout:v2"]
    assert fake.writes() == []  # planning only reads

    done = await steps.rollout_undo(NS, NAME, plan.data["target_revision"], plan.data["from_revision"])
    assert done.ok and done.data["changed"] is True
    assert done.data["revision"] == 4 and done.data["target_revision"] == 2
    assert done.summary == f"Rolled back {REF} from revision 3 to the template of revision 2 (now revision 4)"
    assert image(fake) == "registry/checkout:v2" and fake.revision(NS, NAME) == 4
    [put] = fake.writes()
    assert put.method == "PUT" and "pod-template-hash" not in put.body["spec"]["template"]["metadata"]["labels"]

    # The v2 ReplicaSet is now revision 4 (history "2"): a retried or replayed undo still finds it and
    # sees the deployment already there -- it must not roll "back" to revision 3.
    again = await steps.rollout_undo(NS, NAME, 2, 3)
    assert again.ok and again.data["changed"] is False
    assert again.summary == f"{REF} already at the template of revision 2 (nothing to do)"
    assert len(fake.writes()) == 1 and fake.revision(NS, NAME) == 4 and image(fake) == "registry/checkout:v2"
    # the same plan replayed is a no-op too
    replanned = await steps.plan_rollout_undo(NS, NAME, 2)
    assert replanned.noop and replanned.data["target_revision"] == 2


async def test_rollback_to_a_named_revision(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    plan = await steps.plan_rollout_undo(NS, NAME, 1)
    assert plan.summary == f"Roll back {REF} from revision 3 to revision 1"
    assert (plan.data["target_revision"], plan.data["from_revision"]) == (1, 3)
    assert any("registry/checkout:v3 → registry/checkout:v1" in c for c in plan.changes)
    done = await steps.rollout_undo(NS, NAME, 1, 3)
    assert done.data["changed"] and done.data["revision"] == 4 and image(fake) == "registry/checkout:v1"
    assert (await steps.rollout_undo(NS, NAME, 1, 3)).data["changed"] is False
    assert len(fake.writes()) == 1

    with pytest.raises(ApplicationError) as err:
        await steps.plan_rollout_undo(NS, NAME, 7)
    assert err.value.type == KUBE_REJECTED and err.value.non_retryable
    assert "revision 7 not found; available: 2, 3, 4" in err.value.message


async def test_rollback_plans_noop_and_no_previous(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    current = await steps.plan_rollout_undo(NS, NAME, 3)
    assert current.noop and current.changes == []
    fake.add_deployment(NS, "fresh", "registry/fresh:v1", replicas=1)
    with pytest.raises(ApplicationError) as err:
        await steps.plan_rollout_undo(NS, "fresh", None)
    assert err.value.non_retryable and "no previous revision to roll back to" in err.value.message


async def test_rollback_conflict_rereads_and_succeeds(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    fake.fail_next(1, 409, method="PUT")
    done = await steps.rollout_undo(NS, NAME, 2, 3)
    assert done.data["changed"] and image(fake) == "registry/checkout:v2"
    assert [r.status for r in fake.requests if r.method == "PUT"] == [409, 200]
    assert len(fake.writes()) == 1


async def test_rollback_conflicting_forever_is_retryable(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    fake.fail_next(5, 409, method="PUT")
    with pytest.raises(ApplicationError) as err:
        await steps.rollout_undo(NS, NAME, 2, 3)
    assert err.value.type == KUBE_UNAVAILABLE and not err.value.non_retryable
    assert fake.writes() == [] and image(fake) == "registry/checkout:v3"


def test_template_changes_lists_fields_but_not_env_values() -> None:
    cur = {"metadata": {"labels": {"app": "a", "pod-template-hash": "x"}},
           "spec": {"containers": [{"name": "web", "image": "web:2", "env": [{"name": "TOKEN", "value": "s3"}],
                                    "args": ["--fast"]}]}}
    new = {"metadata": {"labels": {"app": "a"}},
           "spec": {"containers": [{"name": "web", "image": "web:1", "env": [{"name": "TOKEN", "value": "s1"}]},
                                   {"name": "proxy", "image": "envoy:1"}]}}
    changes = template_changes(cur, new)
    assert changes[:2] == ["container web: image web:2 → web:1", "container proxy: added (image envoy:1)"]
    assert 'spec.template.spec.containers[web].args: ["--fast"] → (unset)' in changes
    assert "spec.template.spec.containers[web].env[TOKEN].value: changed (value not shown)" in changes
    assert not any("s3" in c or "s1" in c for c in changes) and len(changes) == 4


# ------------------------------------------------------------------------------------------- scale


async def test_scale_by_replicas_and_retry_sets_the_same_count(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    plan = await steps.plan_scale(NS, NAME, 6, None, 10)
    assert plan.summary == f"Scale {REF} from 3 to 6 replicas" and not plan.noop
    assert plan.data == {"previous_replicas": 3, "replicas": 6, "capped": False}
    assert plan.changes == ["spec.replicas: 3 → 6"]
    first = await steps.scale(NS, NAME, plan.data["replicas"])
    assert first.data == {"previous_replicas": 3, "replicas": 6, "changed": True}
    retried = await steps.scale(NS, NAME, plan.data["replicas"])
    assert retried.data == {"previous_replicas": 6, "replicas": 6, "changed": False}
    assert fake.deployment(NS, NAME)["spec"]["replicas"] == 6
    [write] = fake.writes()
    assert write.path.endswith("/deployments/checkout/scale") and write.body == {"spec": {"replicas": 6}}
    assert (await steps.plan_scale(NS, NAME, 6, None, 10)).noop


async def test_scale_by_factor_with_cap(steps: KubernetesCluster) -> None:
    small = await steps.plan_scale(NS, NAME, None, 1.1, 100)
    assert small.data["replicas"] == 4  # ceil(3.3); and always at least one more
    assert (await steps.plan_scale(NS, NAME, None, 1.01, 100)).data["replicas"] == 4
    double = await steps.plan_scale(NS, NAME, None, 2.0, 100)
    assert double.data == {"previous_replicas": 3, "replicas": 6, "capped": False}
    capped = await steps.plan_scale(NS, NAME, None, 2.0, 5)
    assert capped.data == {"previous_replicas": 3, "replicas": 5, "capped": True}
    assert capped.summary == f"Scale {REF} from 3 to 5 replicas (capped at max_replicas 5)"
    at_cap = await steps.plan_scale(NS, NAME, None, 2.0, 2)  # above the cap already: never scales down
    assert at_cap.noop and at_cap.data["replicas"] == 3
    assert (await steps.plan_scale(NS, NAME, None, 0.5, 100)).data["replicas"] == 2


async def test_scale_timed_out_then_retried_is_one_change(fake: FakeKubernetes, kubeconfig: Path) -> None:
    slow = make_steps(kubeconfig, request_timeout=0.2)
    fake.delay_next(0.6, method="PATCH")
    with pytest.raises(ApplicationError) as err:
        await slow.scale(NS, NAME, 5)
    assert err.value.type == KUBE_UNAVAILABLE and not err.value.non_retryable
    assert "did not answer within 0.2s to patch deployments/checkout/scale in shop" in err.value.message
    wait_until(lambda: fake.deployment(NS, NAME)["spec"]["replicas"] == 5)  # the slow request did apply
    retried = await slow.scale(NS, NAME, 5)
    assert retried.data["changed"] is False and len(fake.writes()) == 1
    slow.close()


# ------------------------------------------------------------------------------------------- restart


async def test_restart_and_retried_restart_is_one_new_revision(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    at = "2024-05-01T12:00:00Z"
    plan = await steps.plan_restart(NS, NAME, at)
    assert plan.summary == f"Restart {REF} (rolling restart of 3 pods)" and not plan.noop
    assert plan.data == {"restarted_at": at, "previous_restarted_at": None, "replicas": 3}
    assert plan.changes == [f'spec.template.metadata.annotations["{RESTARTED_AT}"]: (unset) → {at}']
    done = await steps.restart(NS, NAME, at)
    assert done.data == {"changed": True, "restarted_at": at, "revision": 4}
    again = await steps.restart(NS, NAME, at)
    assert again.data == {"changed": False, "restarted_at": at, "revision": 4}
    assert fake.revision(NS, NAME) == 4 and len(fake.writes()) == 1
    assert (await steps.plan_restart(NS, NAME, at)).noop
    decided = await steps.plan_restart(NS, NAME, "")  # the plan decides the value when not given
    assert decided.data["restarted_at"].endswith("Z") and decided.data["previous_restarted_at"] == at


# ------------------------------------------------------------------------------------------- rollout status


async def test_rollout_status_waits_and_heartbeats(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    fake.rollout_delay = 0.3
    await steps.restart(NS, NAME, "2024-05-01T12:00:00Z")
    beats: list[str] = []
    done = await steps.rollout_status(NS, NAME, 5, beats.append)
    assert done.ok and len(beats) >= 2
    assert beats[0].startswith(f"rollout of {REF}: ") and "of 3 updated" in beats[0]
    assert done.summary == f"Rollout of {REF} complete (revision 4): 3 of 3 updated and available"
    assert done.data["revision"] == 4 and done.data["updated_replicas"] == 3 and done.data["waited_s"] >= 0.25


async def test_rollout_status_survives_a_failed_poll(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    fake.fail_next(1, 503, method="GET", path_contains="/deployments/checkout")
    beats: list[str] = []
    done = await steps.rollout_status(NS, NAME, 5, beats.append)
    assert done.ok and "last poll failed" in beats[0] and len(beats) == 2


async def test_rollout_status_times_out(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    fake.stall_rollouts = True
    await steps.restart(NS, NAME, "2024-05-01T12:00:00Z")
    beats: list[str] = []
    with pytest.raises(ApplicationError) as err:
        await steps.rollout_status(NS, NAME, 0.3, beats.append)
    assert err.value.type == ROLLOUT_TIMEOUT and err.value.non_retryable
    assert err.value.message.startswith(f"rollout of {REF} not complete after 0.3s: 3 of 3 updated, 3 available")
    assert len(beats) >= 2


async def test_rollout_status_fails_fast_on_progress_deadline(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    fake.stall_rollouts = True
    fake.progress_deadline = 0.1
    await steps.restart(NS, NAME, "2024-05-01T12:00:00Z")
    started = time.monotonic()
    with pytest.raises(ApplicationError) as err:
        await steps.rollout_status(NS, NAME, 30)
    assert time.monotonic() - started < 5
    assert err.value.type == ROLLOUT_TIMEOUT and err.value.non_retryable
    assert "exceeded its progress deadline" in err.value.message and "has timed out progressing" in err.value.message


# ------------------------------------------------------------------------------------------- diagnostics


async def test_pods_table(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    victim = fake.pods(NS)[0]["metadata"]["name"]
    fake.set_pod_state(NS, victim, waiting_reason="CrashLoopBackOff", restart_count=4,
                       last_terminated_reason="OOMKilled")
    out = await steps.pods(NS, "app=checkout")
    assert out.summary == f"3 pods (2 ready) for app=checkout in {NS}: 1 CrashLoopBackOff"
    assert out.data["pods"] == 3 and out.data["ready"] == 2 and out.data["not_ready"] == [victim]
    assert out.data["statuses"] == {"Running": 2, "CrashLoopBackOff": 1} and out.data["restarts"] == 4
    lines = out.output.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] and len(lines) == 4
    row = next(line for line in lines if line.startswith(victim))
    assert re.fullmatch(rf"{victim}   0/1     CrashLoopBackOff   4 \(\d+m ago\)   \d+m", row), row
    short = await steps.pods(NS, "app=checkout", max_bytes=150)
    assert len(short.output.encode()) <= 150 and "… truncated" in short.output and short.data["truncated"]
    assert short.output.startswith("NAME")
    none = await steps.pods(NS, "app=nope")
    assert none.summary == f"no pods for app=nope in {NS}" and none.data["pods"] == 0


async def test_logs_keep_the_end_of_each_pod(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    fake.set_logs(NS, f"{NAME}-", "".join(f"line {i:03d} {'x' * 40}\n" for i in range(1, 201)))
    out = await steps.logs(NS, None, "app=checkout", None, 100, 1500)
    assert len(out.output.encode()) <= 1500 and out.data["truncated"]
    sections = out.output.split("==> ")[1:]
    assert [s.split(" <==")[0] for s in sections] == out.data["pods"] and len(sections) == 3
    for section in sections:
        body = section.split("<==\n", 1)[1]
        assert body.startswith("… truncated") and body.rstrip().endswith("line 200 " + "x" * 40)
    assert out.summary == f"Last 100 log lines of 3 pods for app=checkout in {NS}, truncated to 1500 bytes"
    pod = fake.pods(NS)[0]["metadata"]["name"]
    one = await steps.logs(NS, pod, None, NAME, 2, 8000)
    assert one.output == f"==> {pod} <==\nline 199 {'x' * 40}\nline 200 {'x' * 40}\n"
    assert not one.data["truncated"] and fake.requests[-1].query == {"container": NAME, "tailLines": "2"}
    fake.set_pod_state(NS, pod, waiting_reason="ContainerCreating")
    waiting = await steps.logs(NS, pod, None, None, 10, 8000)
    assert "(no logs: container \"checkout\" in pod" in waiting.output and "1 without logs" in waiting.summary


def test_join_logs_shares_the_budget() -> None:
    text, cut = join_logs([("a", "short\n"), ("b", "".join(f"{i}\n" for i in range(1000)))], 200)
    assert cut and len(text.encode()) <= 200
    assert text.startswith("==> a <==\nshort\n\n==> b <==\n… truncated") and text.endswith("999\n")


async def test_plan_readonly_touches_nothing(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    before = len(fake.requests)
    status = await steps.plan_read(RolloutStatusArgs.model_validate(
        {"namespace": NS, "deployment": NAME, "timeout_s": 600}))
    assert status.summary.startswith(f"Wait up to 10m for the rollout of {REF} to complete") and not status.noop
    pods = await steps.plan_read(PodsArgs.model_validate({"namespace": NS, "selector": "app=checkout"}))
    assert "app=checkout" in pods.summary
    logs = await steps.plan_read(LogsArgs.model_validate({"namespace": NS, "pod": None, "selector": "app=x",
                                                          "container": None, "tail_lines": 50, "max_bytes": 4000}))
    assert logs.summary == f"Read the last 50 log lines of up to 3 pods for app=x in {NS}, at most 4000 bytes"
    assert len(fake.requests) == before
    with pytest.raises(ApplicationError) as err:  # a change is not a read, whatever the caller's types say
        await steps.plan_read(ScaleArgs(namespace=NS, deployment=NAME, replicas=1))  # type: ignore[arg-type]
    assert err.value.non_retryable


# ------------------------------------------------------------------------------------------- errors


async def test_rejections_are_not_retryable_and_clear(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    fake.forbid("patch", "deployments/scale")
    with pytest.raises(ApplicationError) as err:
        await steps.scale(NS, NAME, 9)
    assert err.value.type == KUBE_REJECTED and err.value.non_retryable
    assert err.value.message == (
        'Kubernetes refused to patch deployments/checkout/scale in shop: 403 Forbidden: deployments.apps '
        '"checkout" is forbidden: User "incidentflow" cannot patch resource "deployments/scale" in API group '
        '"apps" in the namespace "shop"')
    with pytest.raises(ApplicationError) as err:
        await steps.plan_rollout_undo(NS, "nope", None)
    assert err.value.type == KUBE_REJECTED and err.value.non_retryable
    assert err.value.message == ('Kubernetes refused to get deployments/nope in shop: 404 NotFound: '
                                 'deployments.apps "nope" not found')
    fake.clear_forbidden()
    with pytest.raises(ApplicationError) as err:
        await steps.scale(NS, NAME, -1)
    assert err.value.type == KUBE_REJECTED and err.value.non_retryable
    assert "422 Invalid: Scale.autoscaling \"checkout\" is invalid: spec.replicas" in err.value.message
    assert fake.writes() == []


async def test_wrong_token_is_401_without_the_token(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    token = fake.token
    fake.token = "rotated"
    with pytest.raises(ApplicationError) as err:
        await steps.plan_scale(NS, NAME, 5, None, 10)
    assert err.value.type == KUBE_REJECTED and err.value.non_retryable
    assert err.value.message.startswith(
        "Kubernetes refused to get deployments/checkout/scale in shop: 401 Unauthorized")
    assert token not in err.value.message


async def test_server_errors_retry(fake: FakeKubernetes, steps: KubernetesCluster) -> None:
    fake.fail_next(1, 500, method="PATCH")
    with pytest.raises(ApplicationError) as err:
        await steps.restart(NS, NAME, "2024-05-01T12:00:00Z")
    assert err.value.type == KUBE_UNAVAILABLE and not err.value.non_retryable
    assert "500 InternalError" in err.value.message
    fake.fail_next(1, 429, method="PATCH", retry_after=7)
    with pytest.raises(ApplicationError) as err:
        await steps.restart(NS, NAME, "2024-05-01T12:00:00Z")
    assert err.value.type == KUBE_UNAVAILABLE and err.value.next_retry_delay == timedelta(seconds=7)
    assert fake.writes() == []
    assert (await steps.restart(NS, NAME, "2024-05-01T12:00:00Z")).data["changed"]


async def test_unreachable_apiserver_is_retryable(tmp_path: Path) -> None:
    with FakeKubernetes() as gone:
        path = gone.write_kubeconfig(tmp_path / "config", context=CONTEXT)
    steps = make_steps(path, request_timeout=0.5)
    with pytest.raises(ApplicationError) as err:
        await steps.pods(NS, "app=checkout")
    assert err.value.type == KUBE_UNAVAILABLE and not err.value.non_retryable
    assert err.value.message.startswith(f"Kubernetes API could not be reached to list pods in {NS}")


async def test_from_settings(fake: FakeKubernetes, kubeconfig: Path, tmp_path: Path) -> None:
    steps = KubernetesCluster.from_settings(str(kubeconfig), CONTEXT)
    assert (await steps.pods(NS, "app=checkout")).data["pods"] == 3
    assert (await steps.plan_scale(NS, NAME, 4, None, 10)).data["replicas"] == 4
    steps.close()
    missing = KubernetesCluster.from_settings(str(tmp_path / "nope"), None)
    with pytest.raises(ApplicationError) as err:
        await missing.pods(NS, "app=checkout")
    assert err.value.type == NOT_CONFIGURED and err.value.non_retryable
    bad_context = KubernetesCluster.from_settings(str(kubeconfig), "other")
    with pytest.raises(ApplicationError) as err:
        await bad_context.pods(NS, "app=checkout")
    assert err.value.type == NOT_CONFIGURED and "other" in err.value.message
