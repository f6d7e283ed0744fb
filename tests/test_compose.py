"""Offline checks of docker-compose.temporal.yml (no Docker engine needed).

* the file validates against the Compose Specification schema vendored by check-jsonschema;
* depends_on targets exist, use valid conditions, and service_healthy targets have a healthcheck;
* only ${VAR:-default} interpolation is used, so the file works without an .env;
* it agrees with the code: search attributes, API port, INCIDENTFLOW_* settings.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.temporal.yml"
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
SA_TYPES = {"KEYWORD": "Keyword", "BOOL": "Bool", "DATETIME": "Datetime", "INT": "Int",
            "DOUBLE": "Double", "TEXT": "Text", "KEYWORD_LIST": "KeywordList"}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _schema_errors(doc: dict) -> list[str]:
    import jsonschema

    res = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(res.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)  # the schema's own $schema (2020-12 today)
    cls.check_schema(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in cls(schema).iter_errors(doc)]


def _strings(node) -> list[str]:
    """Every key and scalar value in the parsed file (comments are not interpolated by Compose)."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _strings(k) + _strings(v)]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}


def _depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def test_compose_file_matches_compose_spec_schema():
    errors = _schema_errors(_compose())
    assert not errors, "docker-compose.temporal.yml violates the Compose spec:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["services"]["postgresql"].__setitem__("ports", 5432), "is not of type 'array'"),
        (lambda d: d["services"]["temporal"].__setitem__("portz", ["7233:7233"]), "'portz' was unexpected"),
        (lambda d: d["services"]["temporal"]["depends_on"]["temporal-admin-tools"].__setitem__(
            "condition", "service_done"), "service_done"),
    ],
    ids=["ports-as-int", "unknown-service-key", "bad-depends-on-condition"],
)
def test_schema_rejects_broken_copies(mutate, expected):
    doc = copy.deepcopy(_compose())
    mutate(doc)
    errors = _schema_errors(doc)
    assert errors, "the schema accepted a broken compose file: the validation test cannot fail"
    assert any(expected in e for e in errors), f"expected an error mentioning {expected!r}, got {errors}"


def test_depends_on_targets_exist_with_valid_conditions():
    services = _compose()["services"]
    problems = []
    for name, svc in services.items():
        for dep, cond in _depends_on(svc).items():
            if dep not in services:
                problems.append(f"{name} depends on undefined service {dep!r}")
            elif cond not in CONDITIONS:
                problems.append(f"{name} -> {dep}: invalid condition {cond!r}")
            elif cond == "service_healthy" and "healthcheck" not in services[dep]:
                problems.append(f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck")
    assert not problems, "\n".join(problems)


def test_only_defaulted_interpolation():
    text = "\n".join(_strings(_compose())).replace("$$", "")  # $$ is a literal "$" for the shell
    bad = [m.group(0) for m in re.finditer(r"\$(\{[^}]*\}|\w+|.?)", text)
           if not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-[^}]*\}", m.group(0))]
    assert not bad, f"use ${{VAR:-default}} (or $$ for a shell $) so no .env is needed; found {bad}"


def test_search_attributes_match_code():
    from workflows.search_attributes import ALL

    text = COMPOSE_FILE.read_text()
    registered = []
    for line in re.findall(r"search-attribute create\b([^\n]*)", text):
        name, typ = re.search(r"--name\s+(\S+)", line), re.search(r"--type\s+(\S+)", line)
        assert name and typ, f"cannot parse --name/--type from: search-attribute create{line}"
        registered.append((name.group(1), typ.group(1)))
    assert len(registered) == len(set(registered)), f"duplicate registrations: {registered}"
    in_code = {(k.name, SA_TYPES[k.indexed_value_type.name]) for k in ALL}
    assert set(registered) == in_code, (
        f"compose registers {sorted(set(registered) - in_code)} not in workflows.search_attributes.ALL; "
        f"ALL has {sorted(in_code - set(registered))} not registered in the compose file"
    )


def test_incidentflow_services_agree_with_settings():
    from domain.config import Settings

    services = _compose()["services"]
    prefix = (Settings.model_config.get("env_prefix") or "").upper()
    known = {prefix + field.upper() for field in Settings.model_fields}
    used = {v for s in _strings(_compose()) for v in re.findall(r"\bINCIDENTFLOW_[A-Z0-9_]+", s)}
    assert used, "no INCIDENTFLOW_* variables found in the compose file"
    assert used <= known, f"not fields of domain.config.Settings: {sorted(used - known)}"

    api_port = Settings.model_fields["api_port"].get_default(call_default_factory=True)
    api = services["incidentflow-api"]
    assert _env(api).get("INCIDENTFLOW_API_PORT") == str(api_port), "INCIDENTFLOW_API_PORT != Settings.api_port"
    published = []
    for p in api.get("ports", []):
        if isinstance(p, dict):
            published.append((str(p.get("published")), str(p["target"])))
        else:
            *_, host, target = str(p).split("/")[0].split(":")
            published.append((host, target))
    assert (str(api_port), str(api_port)) in published, (
        f"incidentflow-api should publish {api_port}:{api_port} (Settings.api_port), has {published}"
    )
    ns = _env(services["temporal-create-namespace"]).get("TEMPORAL_NAMESPACE")
    for name in ("incidentflow-worker", "incidentflow-api"):
        env = _env(services[name])
        assert env.get("INCIDENTFLOW_TEMPORAL_NAMESPACE") == ns, f"{name} uses a namespace that is not created"
        assert _depends_on(services[name]).get("temporal-create-namespace") == "service_completed_successfully", (
            f"{name} must wait for temporal-create-namespace to complete (search attributes registered)"
        )
