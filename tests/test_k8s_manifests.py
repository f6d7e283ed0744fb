"""Offline checks of deploy/kubernetes/ (no cluster, no network), like tests/test_compose.py for the compose file.

* every manifest validates, strictly (unknown fields are errors), against the Kubernetes schema that
  kubernetes-validate ships for K8S_VERSION;
* kustomization.yaml lists every manifest but the examples, and `kubectl kustomize` renders it (when kubectl is
  installed);
* the manifests agree with the code: env names are Settings fields, every secret setting comes from a Secret,
  ports, probe paths and Ingress paths are the app's, commands are the CLI's, the user is the Dockerfile's,
  the ConfigMaps carry config/example.yaml and runbooks/*.yaml.

The ConfigMaps are copies: after editing config/example.yaml or a runbook, run
`.venv/bin/python -m tests.test_k8s_manifests --write` to refresh them.
"""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "kubernetes"
K8S_VERSION = "1.37"  # the newest schema kubernetes-validate ships; raise it with the package
EXAMPLES = ("secret.example.yaml",)  # validated, never applied (placeholders)
KUSTOMIZATION = "kustomization.yaml"
NAMESPACE = "incidentflow"
ALLOWED_OTHER_ENV = re.compile(r"OTEL_[A-Z0-9_]+|KUBECONFIG")
# What the Ingress must expose (route prefixes), and so what it must not: everything else
PUBLIC = ("/slack/", "/v1/alerts/", "/v1/webhooks/", "/status", "/api/v2/")
CONFIGMAPS = {"configmap-config.yaml": ("incidentflow-config", "the config (config/example.yaml)"),
              "configmap-runbooks.yaml": ("incidentflow-runbooks", "the runbooks (runbooks/*.yaml)")}


# -- reading the manifests

@functools.cache
def _docs(name: str) -> list[dict[str, Any]]:  # read-only: copy a document before changing it
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _manifests() -> list[str]:
    return sorted(p.name for p in K8S.glob("*.yaml") if p.name != KUSTOMIZATION)


def _applied() -> list[dict[str, Any]]:
    return [d for name in _kustomization()["resources"] for d in _docs(name)]


def _kustomization() -> dict[str, Any]:
    return _docs(KUSTOMIZATION)[0]


def _one(kind: str, name: str, docs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    found = [d for d in (docs if docs is not None else _applied())
             if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r} in deploy/kubernetes, found {len(found)}"
    return found[0]


def _deployments() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _applied() if d["kind"] == "Deployment"}


def _container(deployment: str) -> dict[str, Any]:
    containers = _deployments()[deployment]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment}: one container expected"
    return containers[0]


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The container's environment: the data of the ConfigMaps it takes with envFrom, then its `env` (which wins)."""
    out: dict[str, dict[str, Any]] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, "envFrom only from ConfigMaps: Secrets are wired key by key"
        out |= {k: {"name": k, "value": v} for k, v in _one("ConfigMap", source["configMapRef"]["name"])["data"].items()}
    return out | {e["name"]: e for e in container.get("env", [])}


def _commented_env() -> dict[str, str]:
    """The optional settings env.yaml offers as commented-out lines (TLS, tracing)."""
    pattern = r"^\s*#\s*((?:INCIDENTFLOW|OTEL)_[A-Z0-9_]+):\s*\"?([^\s\"]+)"
    return dict(re.findall(pattern, (K8S / "env.yaml").read_text(), re.M))


def _settings_fields() -> dict[str, Any]:
    """INCIDENTFLOW_* name -> field of every settings class (Settings and the learning tokens)."""
    from domain.postmortem.config import LearningSecrets
    from domain.settings import Settings

    return {cls.model_config["env_prefix"] + name.upper(): field
            for cls in (Settings, LearningSecrets) for name, field in cls.model_fields.items()}


def _is_secret(annotation: Any) -> bool:
    from pydantic import BaseModel, SecretStr

    if annotation is SecretStr:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(_is_secret(f.annotation) for f in annotation.model_fields.values())
    return any(_is_secret(arg) for arg in get_args(annotation))


def _routes() -> set[str]:
    """Every path the API serves, including those left out of the OpenAPI schema (/metrics, /docs)."""
    from domain.settings import Settings
    from incidentflow.api import create_app

    app = create_app(Settings())
    return set(app.openapi()["paths"]) | {r.path for r in app.routes if isinstance(getattr(r, "path", None), str)}


def _prefix_matches(prefix: str, path: str) -> bool:
    """Kubernetes Ingress `Prefix`: whole path elements only (/v1/alerts matches /v1/alerts/x, not /v1/alerts2)."""
    return path == prefix.rstrip("/") or path.startswith(prefix.rstrip("/") + "/")


# -- the schema

def _validate(doc: dict[str, Any]) -> str | None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}"
    return None


def test_schema_version_is_shipped_and_current():
    from kubernetes_validate.utils import all_versions, latest_version

    assert any(v.startswith(K8S_VERSION + ".") for v in all_versions()), f"kubernetes-validate lacks {K8S_VERSION}"
    assert latest_version().startswith(K8S_VERSION + "."), (
        f"kubernetes-validate ships {latest_version()}: raise K8S_VERSION to validate against the current schema")


def test_every_manifest_validates_strictly():
    errors = [f"{name}: {e}" for name in _manifests() for doc in _docs(name) if (e := _validate(doc))]
    assert not errors, "manifests rejected by the Kubernetes schema:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].__setitem__("imagePullPolcy", "Always"),
         "imagePullPolcy"),
        (lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].__setitem__("containerPort", "8080"),
         "is not of type 'integer'"),
        (lambda d: d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"].pop("port"),
         "'port' is a required property"),
    ],
    ids=["unknown-field", "port-as-string", "probe-without-port"],
)
def test_schema_rejects_broken_copies(mutate, expected):
    doc = copy.deepcopy(_one("Deployment", "incidentflow-api"))
    mutate(doc)
    error = _validate(doc)
    assert error is not None, "the schema accepted a broken Deployment: the validation test cannot fail"
    assert expected in error, f"expected an error mentioning {expected!r}, got {error}"


# -- kustomize

def test_kustomization_lists_every_manifest_but_the_examples():
    k = _kustomization()
    listed = k["resources"]
    assert len(listed) == len(set(listed)), f"listed twice: {listed}"
    assert sorted(listed) == sorted(set(_manifests()) - set(EXAMPLES)), (
        f"kustomization.yaml resources {sorted(listed)} != the manifests {sorted(set(_manifests()) - set(EXAMPLES))}")
    assert "namespace" not in k, "a `namespace:` transformer would move rbac-runbooks.yaml's Roles into ours"
    assert not any(d["kind"] == "Secret" for d in _applied()), "never apply a Secret with placeholder values"
    for doc in _applied():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace"), f"{doc['kind']}/{doc['metadata']['name']} names no namespace"


def test_image_is_tagged_with_this_version():
    from incidentflow import __version__

    (image,) = _kustomization()["images"]
    assert image["newTag"] == __version__, f"images.newTag {image['newTag']!r} != incidentflow {__version__}"
    for name in _deployments():
        assert _container(name)["image"] == image["name"], f"{name}: image is not kustomization's {image['name']!r}"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_the_same_resources():
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
    key = lambda d: (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, rendered)) == sorted(map(key, _applied()))
    image = _kustomization()["images"][0]
    for d in rendered:
        if d["kind"] == "Deployment":
            assert d["spec"]["template"]["spec"]["containers"][0]["image"] == f"{image['newName']}:{image['newTag']}"


# -- agreement with the code

def test_env_names_are_settings():
    fields = _settings_fields()
    used = {name for d in _deployments() for name in _env(_container(d))} | set(_commented_env())
    unknown = sorted(n for n in used if n not in fields and not ALLOWED_OTHER_ENV.fullmatch(n))
    assert not unknown, f"not fields of domain.settings.Settings (or LearningSecrets): {unknown}"


def test_every_secret_setting_comes_from_the_secret():
    secret_env = {name for name, field in _settings_fields().items() if _is_secret(field.annotation)}
    example = _one("Secret", "incidentflow", _docs("secret.example.yaml"))
    wired: set[str] = set()
    for deployment in _deployments():
        for name, entry in _env(_container(deployment)).items():
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
            if name in secret_env:
                assert ref, f"{deployment}: {name} is a secret setting: take it from a Secret, never a literal"
            if ref:
                assert ref == {"name": "incidentflow", "key": name, "optional": True}, (
                    f"{deployment}: {name} must come from key {name} of Secret incidentflow, optional: {ref}")
                wired.add(name)
    assert secret_env <= wired, f"secret settings no Deployment takes from the Secret: {sorted(secret_env - wired)}"
    assert set(example["stringData"]) == wired, (
        f"secret.example.yaml keys != the keys the Deployments read: {sorted(set(example['stringData']) ^ wired)}")


def test_ports_match_settings_the_dockerfile_and_the_services():
    from domain.settings import Settings

    api, worker = _container("incidentflow-api"), _container("incidentflow-worker")
    port = Settings.model_fields["api_port"].default
    expose = re.search(r"^EXPOSE\s+(\d+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert expose and int(expose.group(1)) == port, "Dockerfile EXPOSE != Settings.api_port"
    assert {p["name"]: p["containerPort"] for p in api["ports"]} == {"http": port}
    assert _env(api)["INCIDENTFLOW_API_PORT"]["value"] == str(port)
    assert _env(api)["INCIDENTFLOW_API_HOST"]["value"] == "0.0.0.0", "the default 127.0.0.1 is unreachable in a pod"
    metrics = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert metrics == {"metrics": int(_env(worker)["INCIDENTFLOW_WORKER_METRICS_PORT"]["value"])}
    for name, ports in (("incidentflow-api", {"http": port}), ("incidentflow-worker", metrics)):
        annotations = _deployments()[name]["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) in ports.values(), f"{name}: prometheus.io/port"
    service = _one("Service", "incidentflow-api")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert service["spec"]["selector"] == _deployments()["incidentflow-api"]["spec"]["selector"]["matchLabels"]
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    for rule in _one("Ingress", "incidentflow")["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "incidentflow-api" and backend["port"]["name"] in service_ports


def test_probes_and_ingress_use_real_routes():
    routes = _routes()
    api = _container("incidentflow-api")
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("livenessProbe", "readinessProbe"):
        get = api[probe]["httpGet"]
        assert get["path"] in routes and get["port"] == "http", f"api {probe} {get} is not a route on the API port"
    assert _container("incidentflow-worker")["readinessProbe"]["httpGet"]["port"] == "metrics"
    prefixes = [p["path"] for rule in _one("Ingress", "incidentflow")["spec"]["rules"] for p in rule["http"]["paths"]]
    for prefix in prefixes:
        assert any(_prefix_matches(prefix, r) for r in routes), f"Ingress path {prefix} matches no route of the API"
    exposed = {r for r in routes if any(_prefix_matches(p, r) for p in prefixes)}
    public = {r for r in routes if r.startswith(PUBLIC)}
    assert exposed == public, (f"the Ingress exposes {sorted(exposed - public)} (operator routes: keep them "
                               f"inside) and misses {sorted(public - exposed)}")


def test_commands_user_and_mounts_match_the_image():
    from incidentflow.cli.parser import build_parser

    dockerfile = (ROOT / "Dockerfile").read_text()
    script = re.search(r"^\[project\.scripts\]\n(\w[\w-]*)\s*=", (ROOT / "pyproject.toml").read_text(), re.M)
    workdir = re.search(r"^WORKDIR\s+(\S+)", dockerfile, re.M).group(1)  # type: ignore[union-attr]
    uid = int(re.search(r"useradd .*--uid (\d+)", dockerfile).group(1))  # type: ignore[union-attr]
    for name, sub in (("incidentflow-worker", "worker"), ("incidentflow-api", "api")):
        c, pod = _container(name), _deployments()[name]["spec"]["template"]["spec"]
        assert c["command"][0] == script.group(1), f"{name}: {c['command'][0]} is not the console script"
        assert build_parser().parse_args(c["command"][1:]).command == sub, f"{name}: command {c['command']}"
        assert pod["securityContext"]["runAsUser"] == uid, f"{name}: runAsUser is not the Dockerfile's uid {uid}"
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        config = Path(_env(c)["INCIDENTFLOW_CONFIG"]["value"])
        assert mounts["config"] == str(config.parent), f"{name}: INCIDENTFLOW_CONFIG is not in the config mount"
        assert config.name in _one("ConfigMap", volumes["config"]["configMap"]["name"])["data"]
        # replaces the image's runbooks: Settings.runbook_paths() reads ./runbooks under WORKDIR
        assert mounts["runbooks"] == f"{workdir}/runbooks", f"{name}: runbooks must replace {workdir}/runbooks"
        assert mounts["data"] == _env(c)["INCIDENTFLOW_DATA_DIR"]["value"], f"{name}: data dir is not writable"
        assert "tmp" in volumes and mounts["tmp"] == "/tmp"


def test_temporal_tls_files_come_from_the_mounted_secret():
    tls = _one("Secret", "incidentflow-temporal-tls", _docs("secret.example.yaml"))
    offered = {k: v for k, v in _commented_env().items() if k.startswith("INCIDENTFLOW_TEMPORAL_TLS_")}
    files = {k: Path(v) for k, v in offered.items() if k.removeprefix("INCIDENTFLOW_TEMPORAL_TLS_") in
             ("CA", "CERT", "KEY")}
    assert len(files) == 3, f"env.yaml should offer the CA, CERT and KEY files, offers {sorted(offered)}"
    assert {p.name for p in files.values()} == set(tls["stringData"]), "TLS file names != the TLS Secret's keys"
    for name in _deployments():
        c, pod = _container(name), _deployments()[name]["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == tls["metadata"]["name"])
        assert volume["secret"]["optional"] is True, f"{name}: clusters without TLS have no such Secret"
        mount = next(m for m in c["volumeMounts"] if m["name"] == volume["name"])
        assert all(str(p.parent) == mount["mountPath"] for p in files.values()), f"{name}: TLS files not in the mount"


# -- production posture

def test_pods_are_locked_down():
    from domain.runbooks.rbac import SA_NAMESPACE, SERVICE_ACCOUNT

    services = [s["metadata"]["name"] for s in _applied() if s["kind"] == "Service"]
    fields = _settings_fields()
    for name, deployment in _deployments().items():
        pod = deployment["spec"]["template"]["spec"]
        # Docker-link variables of a Service named incidentflow-api: INCIDENTFLOW_API_PORT=tcp://… breaks Settings
        links = {f"{s.upper().replace('-', '_')}_{suffix}" for s in services for suffix in ("PORT", "SERVICE_PORT")}
        assert pod.get("enableServiceLinks") is False or not links & set(fields), f"{name}: enableServiceLinks"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        c = _container(name)
        assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "privileged": False, "capabilities": {"drop": ["ALL"]}}
        requests, limits = c["resources"]["requests"], c["resources"]["limits"]
        mib = {k: int(v.removesuffix("Mi")) for k, v in (("request", requests["memory"]), ("limit", limits["memory"]))}
        assert mib["limit"] >= mib["request"] and "cpu" in requests, f"{name}: resources {c['resources']}"
        assert deployment["spec"]["replicas"] >= 2
        assert pod["topologySpreadConstraints"], f"{name}: replicas should spread over nodes"
        pdb = _one("PodDisruptionBudget", name)
        assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
        assert 1 <= pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]
        account = _one("ServiceAccount", pod["serviceAccountName"])
        token = name == "incidentflow-worker"  # only runbook steps call the Kubernetes API
        assert account["automountServiceAccountToken"] is token and pod["automountServiceAccountToken"] is token
    assert _deployments()["incidentflow-worker"]["spec"]["template"]["spec"]["serviceAccountName"] == SERVICE_ACCOUNT
    assert _one("ServiceAccount", SERVICE_ACCOUNT)["metadata"]["namespace"] == SA_NAMESPACE
    for binding in (d for d in _applied() if d["kind"] == "RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": SA_NAMESPACE}]


def test_network_policies_allow_only_what_each_process_needs():
    policies = {p["metadata"]["name"]: p["spec"] for p in _applied() if p["kind"] == "NetworkPolicy"}
    deny = policies.pop("incidentflow-default-deny")
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    egress_ports: dict[str, set[int]] = {}
    for name, deployment in _deployments().items():
        spec = policies[name]
        assert spec["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        named = {p["name"] for p in _container(name)["ports"]}
        ingress = [port["port"] for rule in spec["ingress"] for port in rule["ports"]]
        assert ingress and set(ingress) <= named and all("from" not in r or r["from"] for r in spec["ingress"]), (
            f"{name}: ingress only on the container's own ports, got {ingress}")
        egress_ports[name] = {port["port"] for rule in spec["egress"] for port in rule["ports"]}
        assert {53, 7233, 5432, 443} <= egress_ports[name], f"{name}: DNS, Temporal, PostgreSQL and HTTPS out"
    assert 6443 in egress_ports["incidentflow-worker"], "the worker's runbook steps call the Kubernetes API"
    assert 6443 not in egress_ports["incidentflow-api"], "the API never calls the Kubernetes API"


def test_configmaps_carry_the_shipped_config_and_runbooks():
    expected = _configmap_data()
    for file, (name, _) in CONFIGMAPS.items():
        assert _one("ConfigMap", name, _docs(file))["data"] == expected[file], (
            f"deploy/kubernetes/{file} differs from {CONFIGMAPS[file][1]}: "
            "run .venv/bin/python -m tests.test_k8s_manifests --write")


# -- the ConfigMap copies

def _configmap_data() -> dict[str, dict[str, str]]:
    return {"configmap-config.yaml": {"config.yaml": (ROOT / "config" / "example.yaml").read_text()},
            "configmap-runbooks.yaml": {p.name: p.read_text() for p in sorted((ROOT / "runbooks").glob("*.yaml"))}}


def _block(text: str) -> str:
    """`text` as a YAML literal block scalar under a two-space key (keeps every byte)."""
    chomp = "+" if text.endswith("\n\n") else ("" if text.endswith("\n") else "-")
    indent = "2" if text[:1] in (" ", "\n") else ""
    return f"|{indent}{chomp}\n" + "".join(f"    {line}" if line.strip() else "\n"
                                           for line in text.splitlines(keepends=True))


def write_configmaps() -> None:
    for file, data in _configmap_data().items():
        name, what = CONFIGMAPS[file]
        body = "".join(f"  {key}: {_block(text)}" + ("" if text.endswith("\n") else "\n") for key, text in data.items())
        (K8S / file).write_text(
            f"# {what.capitalize()}, as shipped; edit it for your team (deploy/kubernetes/README.md).\n"
            f"# Written by `.venv/bin/python -m tests.test_k8s_manifests --write`.\n"
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\n"
            f"  labels:\n    app.kubernetes.io/name: incidentflow\ndata:\n{body}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_k8s_manifests --write")
    write_configmaps()
