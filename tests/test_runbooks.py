"""Runbook files: loading, line-precise errors, parameters, rendering and classification."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from domain.runbooks import (
    STEP_KINDS,
    Condition,
    ParamError,
    RenderError,
    Runbook,
    RunbookError,
    RunbookSet,
    check_runbooks,
    coerce_params,
    load_runbook,
    load_runbooks,
    render_steps,
)

RUNBOOKS = Path(__file__).parent.parent / "runbooks"
SHIPPED = ["checkout-high-error-rate", "disable-feature-flag", "restart-pods", "rollback-deployment",
           "scale-up"]

HEADER = """\
name: demo
title: Demo runbook
description: A runbook for the tests
parameters:
  namespace: {type: string, default: payments}
  deployment: {type: string, required: true}
  replicas: {type: integer, default: 6, min: 1, max: 200}
steps:
"""  # the first step starts on line 9


def write(tmp_path: Path, text: str, name: str = "demo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(RunbookError) as info:
        load_runbook(path)
    assert str(info.value) == "\n".join(info.value.problems)
    return [p.removeprefix(f"{path}:") for p in info.value.problems]


def runbook(steps: str, header: str = HEADER) -> Runbook:
    import yaml

    return Runbook.model_validate(yaml.safe_load(header + textwrap.dedent(steps)))


# ---------------------------------------------------------------- the shipped runbooks

def test_every_shipped_runbook_loads() -> None:
    found, problems = check_runbooks([RUNBOOKS])
    assert problems == []
    assert found is not None and sorted(found.names) == SHIPPED
    assert found.sources["scale-up"] == RUNBOOKS / "scale-up.yaml"
    for rb in found:
        assert rb.title and rb.description and rb.likely_causes and rb.escalation
        assert load_runbook(found.sources[rb.name]) == rb
        assert Runbook.model_validate_json(rb.model_dump_json()) == rb  # survives a workflow input


def test_shipped_runbooks_render_with_their_required_parameters() -> None:
    rbs = load_runbooks([RUNBOOKS])
    given = {"rollback-deployment": {"deployment": "checkout-service"}, "scale-up": {"deployment": "api"},
             "restart-pods": {"deployment": "api"}, "disable-feature-flag": {"flag": "new-checkout"},
             "checkout-high-error-rate": {}}
    for rb in rbs:
        steps = render_steps(rb, coerce_params(rb, given[rb.name]), {"id": "incident-20240101-1200-checkout"})
        json.dumps([s.model_dump(mode="json") for s in steps])  # JSON-safe
        assert [s.name for s in steps] == rb.step_names


def test_shipped_step_sequences() -> None:
    rbs = load_runbooks([RUNBOOKS])
    kinds = {rb.name: [s.kind for s in rb.steps] for rb in rbs}
    assert kinds["rollback-deployment"] == ["approval", "kubernetes.rollout_undo",
                                            "kubernetes.rollout_status"]
    assert kinds["scale-up"] == ["kubernetes.scale", "kubernetes.rollout_status"]
    assert kinds["restart-pods"] == ["kubernetes.pods", "approval", "kubernetes.restart",
                                     "kubernetes.rollout_status"]
    assert kinds["disable-feature-flag"] == ["http.request", "approval", "http.request", "notify"]
    assert kinds["checkout-high-error-rate"] == [
        "kubernetes.pods", "kubernetes.logs", "prometheus.query", "approval", "kubernetes.rollout_undo",
        "kubernetes.rollout_status", "prometheus.query"]


def test_checkout_runbook() -> None:
    rb = load_runbooks([RUNBOOKS]).get("checkout-high-error-rate")
    steps = render_steps(rb, coerce_params(rb, {}))
    assert steps[0].title == "List pods app=checkout-service in payments"
    assert steps[2].args["query"] == ('sum(rate(http_requests_total{service="checkout",code=~"5.."}[5m])) / '
                                      'sum(rate(http_requests_total{service="checkout"}[5m]))')
    assert steps[4].title == "Roll back payments/checkout-service to the previous revision"
    assert steps[4].args == {"namespace": "payments", "deployment": "checkout-service", "to_revision": None}
    verify = steps[-1].args
    assert verify["until"] == {"op": "<", "threshold": 0.01} and verify["timeout_s"] == 600.0
    assert 'code=~"5.."' in verify["query"]
    assert [s.diagnostic for s in steps] == [True, True, True, False, False, True, True]
    assert [s.destructive for s in steps] == [False, False, False, False, True, False, False]


def test_checkout_runbook_takes_its_targets_from_the_alert() -> None:
    """A service named checkout-service whose metric labels the status `status`: the shipped runbook matches
    its alert and queries, lists and rolls back what the labels and parameters name, not `checkout`."""
    rb = load_runbooks([RUNBOOKS]).get("checkout-high-error-rate")
    labels = {"alertname": "HighErrorRate", "service": "checkout-service", "namespace": "shop",
              "deployment": "checkout-api", "status_label": "status", "severity": "critical"}
    assert rb.applies(labels, "checkout-service")
    assert rb.applies({"alertname": "CheckoutHighErrorRate", "service": "checkout"}, None)
    assert not rb.applies({"alertname": "HighErrorRate", "service": "search"}, "search")
    steps = render_steps(rb, coerce_params(rb, {k: v for k, v in labels.items() if k in rb.parameters}))
    assert steps[0].args == {"namespace": "shop", "selector": "app=checkout-api"}
    assert steps[2].args["query"] == (
        'sum(rate(http_requests_total{service="checkout-service",status=~"5.."}[5m])) / '
        'sum(rate(http_requests_total{service="checkout-service"}[5m]))')
    assert steps[2].title == "checkout-service 5xx ratio (last 5 minutes)"
    assert steps[4].args == {"namespace": "shop", "deployment": "checkout-api", "to_revision": None}
    assert 'status=~"5.."' in steps[6].args["query"]
    custom = render_steps(rb, coerce_params(rb, {"pod_label": "app.kubernetes.io/name", "metric": "requests"}))
    assert custom[0].args["selector"] == "app.kubernetes.io/name=checkout-service"
    assert custom[2].args["query"].startswith('sum(rate(requests{service="checkout",code=~"5.."}')
    with pytest.raises(ParamError, match="service"):  # a label value never breaks out of the query
        coerce_params(rb, {"service": 'x"} or vector(1) #'})
    with pytest.raises(ParamError, match="status_label"):
        coerce_params(rb, {"status_label": "code!~"})
    restart = load_runbooks([RUNBOOKS]).get("restart-pods")
    pods = render_steps(restart, coerce_params(restart, {"deployment": "api", "pod_label": "app.kubernetes.io/name"}))
    assert pods[0].args["selector"] == "app.kubernetes.io/name=api"


def test_disable_feature_flag_keeps_the_secret_placeholder() -> None:
    rb = load_runbooks([RUNBOOKS]).get("disable-feature-flag")
    steps = render_steps(rb, coerce_params(rb, {"flag": "new-checkout"}), {"id": "incident-7"})
    post = steps[2]
    assert post.title == "POST https://flags.internal/flags/new-checkout/disable"
    assert post.args["headers"]["Authorization"] == "Bearer ${secret:flags_token}"
    assert post.args["json"] == {"reason": "incident mitigation", "incident": "incident-7"}
    assert post.destructive and not post.diagnostic
    assert steps[0].diagnostic and not steps[0].destructive
    with pytest.raises(ParamError, match="does not match"):
        coerce_params(rb, {"flag": "../admin"})


# ---------------------------------------------------------------- line-precise errors

def test_unknown_kind(tmp_path: Path) -> None:
    assert problems_of(tmp_path, HEADER + """\
  - kind: approval
  - kind: kubernetes.scael
    deployment: x
""") == [f"10: steps.1.kind: unknown step kind 'kubernetes.scael' (kinds: {', '.join(STEP_KINDS)})"]


def test_missing_kind(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, HEADER + "  - name: x\n")
    assert problem.startswith("9: steps.0: missing kind (kinds: kubernetes.rollout_undo,")


def test_typo_field(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, HEADER + """\
  - kind: kubernetes.scale
    deployment: "{{ deployment }}"
    replicas: 3
    max_replicsa: 10
""")
    assert problem.startswith(
        "12: steps.0.max_replicsa: unknown field 'max_replicsa'; did you mean 'max_replicas'? "
        "(fields: kind, name, title, continue_on_error, namespace, deployment, replicas, factor, "
        "max_replicas)")


def test_typo_top_level_and_parameter_fields(tmp_path: Path) -> None:
    assert problems_of(tmp_path, """\
name: demo
title: Demo
aproval_timeout: 5m
parameters:
  x: {type: integer, defualt: 3}
steps:
  - kind: approval
""") == [
        "3: aproval_timeout: unknown field 'aproval_timeout'; did you mean 'approval_timeout'? "
        "(fields: name, title, description, applies_to, likely_causes, investigation, escalation, "
        "approvers, approval_timeout, on_approval_timeout, auto_run, parameters, steps)",
        "5: parameters.x.defualt: unknown field 'defualt'; did you mean 'default'? "
        "(fields: type, description, required, default, min, max, pattern, allowed_hosts)",
    ]


def test_bad_duration(tmp_path: Path) -> None:
    assert problems_of(tmp_path, HEADER + """\
  - kind: kubernetes.rollout_status
    deployment: "{{ deployment }}"
    timeout: 10 minutes
  - kind: wait
    duration: 0s
""") == ["11: steps.0.timeout: invalid duration '10 minutes': use e.g. 30s, 15m, 1h, 5d",
         "13: steps.1.duration: must be a positive duration, e.g. 30s, 5m"]


def test_unknown_template_parameter(tmp_path: Path) -> None:
    assert problems_of(tmp_path, HEADER + """\
  - kind: kubernetes.pods
    namespace: "{{ namespace }}"
    selector: "app={{ deploymnt }}"
  - kind: notify
    text: "{{ incident.owner }} and {{ replicas + 1 }}"
""") == ["11: steps.0.selector: unknown parameter 'deploymnt' (declared: namespace, deployment, replicas)",
         "13: steps.1.text: unknown built-in 'incident.owner' (built-ins: incident.id, incident.service, "
         "incident.severity)",
         "13: steps.1.text: templates take a parameter name only, got '{{ replicas + 1 }}'"]


def test_templates_in_headers_and_json(tmp_path: Path) -> None:
    assert problems_of(tmp_path, HEADER + """\
  - kind: http.request
    method: post
    url: "https://x.internal/{{ deployment }}"
    headers:
      X-Who: "{{ who }}"
    json:
      items: ["{{ namespace }}", "{{ nope }}"]
""") == ["13: steps.0.headers.X-Who: unknown parameter 'who' (declared: namespace, deployment, replicas)",
         "15: steps.0.json.items.1: unknown parameter 'nope' (declared: namespace, deployment, replicas)"]


def test_invalid_matcher(tmp_path: Path) -> None:
    assert problems_of(tmp_path, """\
name: demo
title: Demo
applies_to:
  services: [checkout]
  alerts:
    - 'alertname="HighErrorRate"'
    - 'severity=="critical"'
steps:
  - kind: approval
""") == ["7: applies_to.alerts.1: invalid matcher 'severity==\"critical\"': use label=\"value\", !=, "
         "=~ \"regex\" or !~ \"regex\""]


def test_invalid_until(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, HEADER + """\
  - kind: prometheus.query
    query: up
    until: "about 0.01"
""")
    assert problem.startswith("11: steps.0.until: invalid condition 'about 0.01': use an operator")


def test_unquoted_greater_than_is_yaml_syntax(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, HEADER + """\
  - kind: prometheus.query
    query: up
    until: > 0
""")
    assert problem.startswith("11: invalid YAML:")  # '>' starts a folded scalar: quote conditions
    assert problems_of(tmp_path, HEADER + "  - {kind: prometheus.query, query: up, until: 0}\n") == [
        "9: steps.0.until: invalid condition 0: use an operator and a number, e.g. \"< 0.01\" "
        "(quote it in YAML: until: \"> 0\")"]


def test_both_replicas_and_factor(tmp_path: Path) -> None:
    assert problems_of(tmp_path, HEADER + """\
  - kind: kubernetes.scale
    deployment: "{{ deployment }}"
    replicas: 3
    factor: 2
  - kind: kubernetes.scale
    deployment: "{{ deployment }}"
""") == ["12: steps.0.factor: use either replicas or factor, not both",
         "13: steps.1: set replicas (a count) or factor (a multiplier)"]


def test_duplicate_step_names(tmp_path: Path) -> None:
    assert problems_of(tmp_path, HEADER + """\
  - kind: approval
    name: check
  - kind: notify
    text: hi
  - kind: wait
    duration: 1m
    name: check
""") == ["15: steps.2.name: duplicate step name 'check' (also steps.0)"]


def test_duplicate_runbook_names_across_files(tmp_path: Path) -> None:
    write(tmp_path, "# first\nname: demo\ntitle: A\nsteps: [{kind: approval}]\n", "a.yaml")
    write(tmp_path, "name: demo\ntitle: B\nsteps: [{kind: approval}]\n", "b.yml")
    write(tmp_path, "not: a runbook\n", "ignored.txt")
    found, problems = check_runbooks([tmp_path])
    assert found is None
    assert problems == [
        f"{tmp_path / 'b.yml'}:1: name: duplicate runbook name 'demo' (also in {tmp_path / 'a.yaml'}:2)"]
    with pytest.raises(RunbookError, match="duplicate runbook name"):
        load_runbooks([tmp_path])


def test_invalid_yaml(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, HEADER + """\
  - kind: notify
    text: "unterminated
""")
    assert problem.startswith("11: invalid YAML:")


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    assert problems_of(tmp_path, HEADER + """\
  - kind: kubernetes.restart
    deployment: a
    deployment: b
""") == ["11: steps.0.deployment: duplicate key 'deployment' (line 10)"]


def test_bad_parameter_defaults_and_specs(tmp_path: Path) -> None:
    assert problems_of(tmp_path, """\
name: demo
title: Demo
parameters:
  replicas: {type: integer, default: "6"}
  ratio: {type: number, min: 1, max: 5, default: 9}
  flag: {type: string, pattern: "^[a-z]+$", default: Bad_Flag}
  enabled: {type: boolean, min: 1}
  bad-name: {type: string}
  both: {type: string, required: true, default: x}
steps:
  - kind: approval
""") == [
        "4: parameters.replicas.default: default expected an integer, got '6'",
        "5: parameters.ratio.default: default must be <= 5, got 9",
        "6: parameters.flag.default: default 'Bad_Flag' does not match the pattern ^[a-z]+$",
        "7: parameters.enabled.min: min applies to integer and number parameters only",
        "8: parameters.bad-name: invalid parameter name 'bad-name': letters, digits and '_' "
        "(it is used as {{ bad-name }})",
        "9: parameters.both.default: a required parameter has no default (drop one of required, default)",
    ]


def test_type_and_structure_errors(tmp_path: Path) -> None:
    assert problems_of(tmp_path, """\
name: Demo_Runbook
title: Demo
approvers: [ic, "group:", "group:payments-leads", alice]
auto_run: sometimes
steps:
  - kind: kubernetes.rollout_undo
    deployment: Checkout_Service
    to_revision: latest
  - kind: kubernetes.logs
    pod: x
    selector: app=x
  - kind: http.request
    url: "https://x/{{ incident.id }}"
    body: "token=${secret:t}"
  - kind: kubernetes.logs
    selector: app=x
    tail_lines: 10000
""") == [
        "1: name: String should match pattern '^[a-z0-9][a-z0-9-]{0,62}$'",
        "3: approvers.1: invalid approver 'group:': use \"ic\" (the incident commander), a person id or "
        "\"group:<name>\"",
        "4: auto_run: Input should be 'none', 'diagnostics' or 'all'",
        "8: steps.0.to_revision: expected an integer or a {{ parameter }} template, got 'latest'",
        "11: steps.1.selector: use either pod or selector, not both",
        "14: steps.2.body: ${secret:…} is only resolved in header values",
        "17: steps.3.tail_lines: Input should be less than or equal to 5000",
    ]


def test_cross_checks_once_fields_validate(tmp_path: Path) -> None:
    assert problems_of(tmp_path, """\
name: demo
title: Demo
parameters:
  enabled: {type: boolean, default: false}
steps:
  - kind: kubernetes.scale
    deployment: Checkout_Service
    replicas: "{{ enabled }}"
""") == ["7: steps.0.deployment: 'Checkout_Service' is not a valid Kubernetes name",
         "8: steps.0.replicas: replicas needs an integer but parameter 'enabled' is a boolean (true/false)"]


def test_not_a_mapping_and_missing_paths(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "- just\n- a list\n") == [
        "1: a runbook must be a mapping (name, title, parameters, steps)"]
    found, problems = check_runbooks([tmp_path / "nope"])
    assert found is None and problems == [f"{tmp_path / 'nope'}: no such runbook file or directory"]


def test_all_problems_across_all_files(tmp_path: Path) -> None:
    write(tmp_path, "name: a\ntitle: A\nsteps: [{kind: wait, duration: soon}]\n", "a.yaml")
    write(tmp_path, "name: b\ntitle: B\nsteps: []\n", "b.yaml")
    write(tmp_path, "name: c\ntitle: C\nsteps: [{kind: approval}]\n", "c.yaml")
    with pytest.raises(RunbookError) as info:
        load_runbooks([tmp_path])
    assert [p.split(": ", 1)[0].removeprefix(str(tmp_path) + "/") for p in info.value.problems] == [
        "a.yaml:3", "b.yaml:3"]


def test_a_file_and_its_directory_load_once(tmp_path: Path) -> None:
    path = write(tmp_path, "name: c\ntitle: C\nsteps: [{kind: approval}]\n")
    assert load_runbooks([tmp_path, path]).names == ["c"]
    assert load_runbooks([]).names == []


# ---------------------------------------------------------------- parameters

def test_coerce_params_converts_cli_strings() -> None:
    rb = runbook("  - kind: approval\n", header="""\
name: demo
title: Demo
parameters:
  namespace: {type: string, default: default}
  deployment: {type: string, required: true}
  replicas: {type: integer, default: 6, min: 1, max: 200}
  factor: {type: number, min: 1}
  enabled: {type: boolean, default: false}
  revision: {type: integer}
steps:
""")
    assert coerce_params(rb, {"deployment": "api"}) == {
        "namespace": "default", "deployment": "api", "replicas": 6, "factor": None, "enabled": False,
        "revision": None}
    got = coerce_params(rb, {"deployment": "api", "replicas": "12", "factor": "1.5", "enabled": "yes",
                             "revision": " 41 "})
    assert got["replicas"] == 12 and got["factor"] == 1.5 and got["enabled"] is True and got["revision"] == 41
    cases: list[tuple[str | bool, bool]] = [
        ("true", True), ("No", False), ("1", True), ("0", False), (True, True)]
    for raw, expected in cases:
        assert coerce_params(rb, {"deployment": "api", "enabled": raw})["enabled"] is expected
    assert coerce_params(rb, {"deployment": "api", "factor": 2})["factor"] == 2.0


@pytest.mark.parametrize("given, message", [
    ({}, "missing required parameter 'deployment': pass --param deployment=<string>"),
    ({"deployment": "a", "replica": "3"},
     "unknown parameter 'replica' (declared: deployment, replicas, enabled)"),
    ({"deployment": "a", "replicas": "3.5"}, "parameter 'replicas': expected an integer, got '3.5' "
                                             "(--param replicas=<integer>)"),
    ({"deployment": "a", "replicas": "0"}, "parameter 'replicas': must be >= 1, got 0"),
    ({"deployment": "a", "replicas": 500}, "parameter 'replicas': must be <= 200, got 500"),
    ({"deployment": "a", "enabled": "maybe"}, "parameter 'enabled': expected true/false (yes/no, 1/0), "
                                              "got 'maybe' (--param enabled=<boolean>)"),
    ({"deployment": "Bad Name"}, "parameter 'deployment': 'Bad Name' does not match the pattern ^[a-z-]+$"),
])
def test_coerce_params_errors(given: dict[str, str | int], message: str) -> None:
    rb = runbook("  - kind: approval\n", header="""\
name: demo
title: Demo
parameters:
  deployment: {type: string, required: true, pattern: "^[a-z-]+$"}
  replicas: {type: integer, default: 6, min: 1, max: 200}
  enabled: {type: boolean, default: false}
steps:
""")
    with pytest.raises(ParamError) as info:
        coerce_params(rb, given)
    assert str(info.value) == message


def test_coerce_params_reports_every_problem() -> None:
    rb = runbook("  - kind: approval\n")
    with pytest.raises(ParamError) as info:
        coerce_params(rb, {"replicas": "x", "nope": "1"})
    assert len(info.value.problems) == 3


# ---------------------------------------------------------------- rendering

ALL_KINDS = """\
  - kind: kubernetes.rollout_undo
    namespace: "{{ namespace }}"
    deployment: "{{ deployment }}"
  - kind: kubernetes.rollout_undo
    name: to-41
    namespace: "{{ namespace }}"
    deployment: "{{ deployment }}"
    to_revision: 41
  - kind: kubernetes.scale
    namespace: "{{ namespace }}"
    deployment: "{{ deployment }}"
    replicas: "{{ replicas }}"
  - kind: kubernetes.scale
    name: double
    namespace: "{{ namespace }}"
    deployment: "{{ deployment }}"
    factor: 2
  - kind: kubernetes.restart
    namespace: "{{ namespace }}"
    deployment: "{{ deployment }}"
    continue_on_error: true
  - kind: kubernetes.rollout_status
    namespace: "{{ namespace }}"
    deployment: "{{ deployment }}"
    timeout: 90m
  - kind: kubernetes.pods
    namespace: "{{ namespace }}"
    selector: app=checkout
  - kind: kubernetes.logs
    namespace: "{{ namespace }}"
    pod: "{{ deployment }}-7d9f-abcde"
    container: app
  - kind: http.request
    method: GET
    url: https://status.internal/api/checkout
  - kind: prometheus.query
    query: sum(rate(http_requests_total{service="{{ incident.service }}",code=~"5.."}[5m]))
    until: "<= 5"
    interval: 15s
  - kind: approval
    prompt: Roll back {{ deployment }}?
  - kind: notify
    text: "Incident {{ incident.id }} ({{ incident.severity }}): scaling {{ deployment }}"
  - kind: wait
    duration: 5m
"""


def test_render_titles_and_args() -> None:
    rb = runbook(ALL_KINDS)
    steps = render_steps(rb, coerce_params(rb, {"deployment": "checkout-service"}),
                         {"id": "incident-1", "service": "checkout", "severity": "SEV2"})
    assert [s.title for s in steps] == [
        "Roll back payments/checkout-service to the previous revision",
        "Roll back payments/checkout-service to revision 41",
        "Scale payments/checkout-service to 6 replicas",
        "Scale payments/checkout-service ×2 (max 100)",
        "Restart payments/checkout-service",
        "Wait for the rollout of payments/checkout-service (timeout 1h30m)",
        "List pods app=checkout in payments",
        "Logs of pod checkout-service-7d9f-abcde (container app) in payments, last 100 lines",
        "GET https://status.internal/api/checkout",
        'Query Prometheus until <= 5: sum(rate(http_requests_total{service="checkout",code=~"5.."}…',
        "Approval: Roll back checkout-service?",
        "Notify: Incident incident-1 (SEV2): scaling checkout-service",
        "Wait 5m",
    ]
    assert [s.name for s in steps][:4] == [
        "0-kubernetes.rollout_undo", "to-41", "2-kubernetes.scale", "double"]
    assert [s.index for s in steps] == list(range(13))
    args = [s.args for s in steps]
    dep = {"namespace": "payments", "deployment": "checkout-service"}
    assert args[0] == {**dep, "to_revision": None}
    assert args[1] == {**dep, "to_revision": 41}
    assert args[2] == {**dep, "replicas": 6, "factor": None, "max_replicas": 100}
    assert args[3] == {**dep, "replicas": None, "factor": 2.0, "max_replicas": 100}
    assert args[4] == dep and steps[4].continue_on_error
    assert args[5] == {**dep, "timeout_s": 5400.0}
    assert args[6] == {"namespace": "payments", "selector": "app=checkout"}
    assert args[7] == {"namespace": "payments", "pod": "checkout-service-7d9f-abcde", "selector": None,
                       "container": "app", "tail_lines": 100, "max_bytes": 8000}
    assert args[8] == {"method": "GET", "url": "https://status.internal/api/checkout", "headers": {},
                       "json": None, "body": None, "expect_status": [200, 201, 202, 204], "timeout_s": 30.0}
    assert args[9] == {"query": 'sum(rate(http_requests_total{service="checkout",code=~"5.."}[5m]))',
                       "until": {"op": "<=", "threshold": 5.0}, "timeout_s": 600.0, "interval_s": 15.0}
    assert args[10] == {"prompt": "Roll back checkout-service?"}
    assert args[12] == {"duration_s": 300.0}
    assert type(args[2]["replicas"]) is int and type(args[3]["factor"]) is float


def test_destructive_and_diagnostic() -> None:
    steps = render_steps(rb := runbook(ALL_KINDS), coerce_params(rb, {"deployment": "d"}), {"service": "s"})
    flags = {s.name: (s.destructive, s.diagnostic) for s in steps}
    assert [flags[n] for n in rb.step_names] == [
        (True, False), (True, False), (True, False), (True, False), (True, False),  # undo, undo, scale…
        (False, True), (False, True), (False, True), (False, True), (False, True),  # status … query
        (False, False),  # approval
        (False, True), (False, True),  # notify, wait
    ]
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        step = runbook(f"  - kind: http.request\n    method: {method}\n    url: https://x\n").steps[0]
        assert step.destructive and not step.diagnostic


def test_templates_filling_int_fields() -> None:
    rb = runbook("""\
  - kind: kubernetes.rollout_undo
    deployment: "{{ deployment }}"
    to_revision: "{{ revision }}"
""", header=HEADER.replace("steps:", "  revision: {type: string}\nsteps:"))
    given = {"deployment": "d", "revision": "41"}
    assert render_steps(rb, coerce_params(rb, given))[0].args["to_revision"] == 41
    assert render_steps(rb, coerce_params(rb, {"deployment": "d"}))[0].args["to_revision"] is None
    with pytest.raises(RenderError) as info:
        render_steps(rb, coerce_params(rb, {"deployment": "d", "revision": "latest"}))
    assert str(info.value) == ("step '0-kubernetes.rollout_undo' (steps.0) to_revision: '{{ revision }}' "
                               "rendered 'latest', not an integer")


def test_render_errors_name_step_and_field() -> None:
    rb = runbook("""\
  - kind: kubernetes.scale
    name: scale
    namespace: "{{ namespace }}"
    deployment: "{{ deployment }}"
    replicas: "{{ replicas }}"
    max_replicas: 10
  - kind: notify
    text: "{{ incident.id }}"
  - kind: kubernetes.pods
    selector: "app={{ incident.service }}"
""")
    with pytest.raises(RenderError) as info:
        render_steps(rb, coerce_params(rb, {"deployment": "Bad Name", "replicas": "50"}))
    assert info.value.problems == [
        "step 'scale' (steps.0) deployment: 'Bad Name' is not a valid Kubernetes name",
        "step 'scale' (steps.0) replicas: must be between 0 and max_replicas (10), got 50",
        "step '2-kubernetes.pods' (steps.2) selector: 'incident.service' is unknown (no incident)",
    ]
    # human text reads an unset value as "(not set)" instead of failing
    notify = render_steps(rb, {"deployment": "d", "replicas": 3}, {"service": "s"})[1]
    assert notify.args == {"text": "(not set)"}


def test_parameter_values_cannot_smuggle_secrets() -> None:
    rb = runbook("""\
  - kind: http.request
    method: POST
    url: https://flags.internal/x
    headers: {X-Deployment: "{{ deployment }}", Authorization: "Bearer ${secret:token}"}
""")
    with pytest.raises(RenderError, match=r"may not contain '\$\{'"):
        render_steps(rb, coerce_params(rb, {"deployment": "${secret:db_password}"}))
    step = render_steps(rb, coerce_params(rb, {"deployment": "api"}))[0]
    assert step.args["headers"] == {"X-Deployment": "api", "Authorization": "Bearer ${secret:token}"}


def test_json_templates_keep_types() -> None:
    rb = runbook("""\
  - kind: http.request
    method: PATCH
    url: "https://x.internal/deployments/{{ deployment }}"
    json: {replicas: "{{ replicas }}", label: "n={{ replicas }}", who: "{{ incident.id }}", fixed: [1, true]}
""")
    args = render_steps(rb, coerce_params(rb, {"deployment": "api"}))[0].args
    assert args["json"] == {"replicas": 6, "label": "n=6", "who": None, "fixed": [1, True]}


# ---------------------------------------------------------------- conditions, applies, the set

@pytest.mark.parametrize("text, value, holds", [
    ("< 0.01", 0.005, True), ("< 0.01", 0.01, False), ("<= 5", 5, True), ("> 0", 0, False),
    (">=1", 1, True), ("== 0", 0.0, True), ("!= 0", 0, False), ("< 1", float("nan"), False),
])
def test_condition(text: str, value: float, holds: bool) -> None:
    cond = Condition.parse(text)
    assert cond.holds(value) is holds
    assert str(Condition.parse("< 0.01")) == "< 0.01" and str(Condition.parse(">=1")) == ">= 1"


@pytest.mark.parametrize("text", ["0.01", "<", "< abc", "=< 1", "< nan", "< 1 2"])
def test_invalid_condition(text: str) -> None:
    with pytest.raises(ValueError, match="invalid condition"):
        Condition.parse(text)


def test_applies() -> None:
    rbs = load_runbooks([RUNBOOKS])
    checkout = rbs.get("checkout-high-error-rate")  # the service comes from the alert's `service` label
    assert checkout.applies({"alertname": "CheckoutHighErrorRate", "service": "checkout"}, "checkout")
    assert checkout.applies({"alertname": "HighErrorRate", "severity": "page", "service": "checkout"}, None)
    assert checkout.applies({"alertname": "HighErrorRate", "service": "checkout-service"}, "checkout-service")
    assert not checkout.applies({"alertname": "HighErrorRate", "service": "search"}, "search")
    assert not checkout.applies({"alertname": "HighErrorRate", "service": "checkouts"}, None)
    assert not checkout.applies({"alertname": "HighErrorRate"}, None)
    assert not checkout.applies({"alertname": "CheckoutHighErrorRateX", "service": "checkout"}, "checkout")
    # no applies_to: never applies on its own
    assert not rbs.get("scale-up").applies({"alertname": "CheckoutHighErrorRate"}, "checkout")
    assert [rb.name for rb in rbs.matching({"alertname": "HighErrorRate", "service": "checkout"}, "checkout")] == [
        "checkout-high-error-rate"]

    both = runbook("  - kind: approval\n", header="""\
name: demo
title: Demo
applies_to:
  alerts: ['alertname=~"High.*"', 'severity="critical"']
steps:
""")
    assert both.applies({"alertname": "HighLatency", "severity": "critical"}, None)
    assert not both.applies({"alertname": "HighLatency", "severity": "warning"}, "any")
    services_only = runbook("  - kind: approval\n",
                            header="name: d\ntitle: D\napplies_to: {services: [a, b]}\nsteps:\n")
    assert services_only.applies({}, "b") and not services_only.applies({}, "c")


def test_empty_applies_to_is_an_error() -> None:
    with pytest.raises(ValidationError, match="applies_to needs services, alerts or both"):
        runbook("  - kind: approval\n", header="name: d\ntitle: D\napplies_to: {}\nsteps:\n")


def test_runbook_set_get() -> None:
    rbs = load_runbooks([RUNBOOKS])
    assert isinstance(rbs, RunbookSet) and len(rbs) == 5 and "scale-up" in rbs
    with pytest.raises(KeyError) as info:
        rbs.get("scale-down")
    assert str(info.value) == ("unknown runbook 'scale-down' (known: checkout-high-error-rate, "
                               "disable-feature-flag, restart-pods, rollback-deployment, scale-up)")


def test_defaults() -> None:
    rb = runbook("  - kind: approval\n  - kind: kubernetes.restart\n    deployment: x\n")
    assert rb.approvers == ["ic"] and rb.approval_timeout == timedelta(minutes=15)
    assert rb.on_approval_timeout == "deny" and rb.auto_run == "diagnostics" and rb.applies_to is None
    assert rb.steps[0].prompt == "Approve the next steps?"  # type: ignore[union-attr]
    assert rb.steps[1].namespace == "default"  # type: ignore[union-attr]
    assert rb.step_names == ["0-approval", "1-kubernetes.restart"]
    assert list(rb.parameters) == ["namespace", "deployment", "replicas"]  # YAML order
