"""A worker prepares its runbook adapters before the first run needs them.

Loading the `kubernetes` package takes 1.0-1.4 s here (more on a busy worker). When the first Kubernetes
step loaded it, an alert's automatic diagnostics made their first cluster call 2-3 s after the run
started, and the import held the worker's event loop (every other activity) meanwhile. Now the worker
builds the adapters in a background thread when it starts, and only when a cluster is configured.

Each case runs in a fresh interpreter: `kubernetes` must not be loaded already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fakes.kubernetes import FakeKubernetes

ROOT = Path(__file__).parent.parent
SCRIPT = """
import asyncio, json, sys, time
from activities.runbook import RunbookActivities, RunbookSource
from domain.config import IncidentflowConfig, Settings
from domain.models.runbook import RenderedStep, StepInput
from workers.main import lazy_runbook_steps

settings = Settings(kubeconfig=sys.argv[1] or None, runbooks_dir=None)
acts = RunbookActivities(lazy_runbook_steps(settings), RunbookSource(settings.runbook_paths()), IncidentflowConfig)

def client_built():
    cluster = getattr(getattr(acts._steps, "value", None), "_cluster", None)
    return getattr(cluster, "_api", None) is not None

deadline = time.monotonic() + float(sys.argv[2])
while not client_built() and time.monotonic() < deadline:  # no activity has run: only a warm-up can build it
    time.sleep(0.05)
before = {"client": client_built(), "kubernetes": "kubernetes" in sys.modules}
query = RenderedStep(index=0, name="q", kind="prometheus.query", title="q", destructive=False, diagnostic=True,
                     args={"query": "up", "until": None, "timeout_s": 5, "interval_s": 1})
asyncio.run(acts.plan_step(StepInput(run_id="r", incident_id="i", step=query)))
print(json.dumps({**before, "kubernetes_after_a_query_step": "kubernetes" in sys.modules}))
"""


def run(kubeconfig: str, home: Path, wait: float) -> dict[str, bool]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")
           and not k.startswith("INCIDENTFLOW_")}
    env["HOME"] = str(home)  # no ~/.kube/config
    out = subprocess.run([sys.executable, "-c", SCRIPT, kubeconfig, str(wait)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_worker_with_a_cluster_prepares_its_client_at_start(tmp_path: Path) -> None:
    with FakeKubernetes() as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        assert run(str(kubeconfig), tmp_path, 30) == {"client": True, "kubernetes": True,
                                                      "kubernetes_after_a_query_step": True}


def test_a_worker_without_a_cluster_never_loads_kubernetes(tmp_path: Path) -> None:
    assert run("", tmp_path, 3) == {"client": False, "kubernetes": False, "kubernetes_after_a_query_step": False}


def test_a_reader_during_the_warm_up_waits_for_the_runbooks(monkeypatch: object, tmp_path: Path) -> None:
    """The warm-up thread reads the runbooks while the first alert asks which could run: the asker waits for that
    read, and never gets the empty set it replaces (then cached by the incident for minutes)."""
    import threading
    import time

    import activities.runbook as module
    from activities.runbook import RunbookSource

    slow, real = threading.Event(), module.load_runbooks

    def load(paths: list[Path]) -> object:
        slow.set()
        time.sleep(0.3)
        return real(paths)
    monkeypatch.setattr(module, "load_runbooks", load)  # type: ignore[attr-defined]
    source = RunbookSource([ROOT / "runbooks"])
    warm = threading.Thread(target=source)
    warm.start()
    assert slow.wait(5)
    assert "checkout-high-error-rate" in source().names  # while the warm-up still reads
    warm.join()
