"""`incidentflow runbook check|list|show|rbac|run|approve|status`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.exceptions import ApplicationError

from domain.config import Settings
from domain.models import Phase
from domain.models.runbook import Decision, RunbookState, StepPlan
from domain.runbooks.loader import RunbookSet, check_runbooks, load_runbooks
from domain.runbooks.rbac import (
    SA_NAMESPACE,
    SERVICE_ACCOUNT,
    RbacError,
    account_problem,
    render_rbac,
    rules_for,
)
from domain.runbooks.render import ParamError, RenderedStep, coerce_params, fmt_duration, render_steps
from incidentflow.cli.actor import acting
from incidentflow.cli.types import person
from incidentflow.client import Incidents

EXIT_USAGE = 2
NAME_HELP = "the runbook's name (`incidentflow runbook list`)"
RUN_HELP = "the run id, <incident id>-runbook-N"
BY_HELP = "who does it: a person of the config (default: INCIDENTFLOW_USER, else your OS user)"
RBAC_HELP = """\
Print the Kubernetes Role and RoleBinding (one pair per namespace) that exactly the runbooks' steps
need, for the worker's service account: get/update/patch on deployments, get/patch on deployments/scale,
list on replicasets (rollout undo reads the revision history), list on pods, get on pods/log — each
only where a runbook step needs it. Never a ClusterRole, never '*', never secrets.

The runbooks are those the worker loads (./runbooks and INCIDENTFLOW_RUNBOOKS_DIR), or the given paths.
A step's namespace is its literal value; a templated one (`namespace: "{{ namespace }}"`) is only known
when a run starts (from --param or the alert label of that name), so it gets its parameter's default plus
every --namespace given. A run in any other namespace has its Kubernetes steps refused (403 Forbidden,
naming the verb, resource and namespace) and stops there: list every namespace runbooks may act in.

Example: incidentflow runbook rbac --namespace payments --namespace search | kubectl apply -f -"""


class UsageError(ValueError):
    """Bad arguments (exit 2)."""


def add_parser(sub: Any) -> None:
    rb = sub.add_parser("runbook", help="runbooks: check, list, show, rbac, run (with --dry-run), approve, status")
    acts = rb.add_subparsers(dest="action", required=True, metavar="ACTION")
    ck = acts.add_parser("check", help="validate runbook YAML (file:line: field: problem)")
    ck.add_argument("paths", nargs="*", help="files or directories (default: ./runbooks and INCIDENTFLOW_RUNBOOKS_DIR)")
    acts.add_parser("list", help="list the runbooks")
    sh = acts.add_parser("show", help="a runbook's parameters, causes, escalation and steps")
    sh.add_argument("name", help=NAME_HELP)
    _add_rbac(acts)
    run = acts.add_parser("run", help="run a runbook on an incident (destructive steps wait for approval)")
    run.add_argument("name", help=NAME_HELP)
    run.add_argument("--incident", help="incident id (required unless --dry-run)")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a parameter (repeatable)")
    run.add_argument("--dry-run", action="store_true", help="print the plan (exact objects and changes); change nothing")
    run.add_argument("--by", type=person, help=BY_HELP)
    ap = acts.add_parser("approve", help="approve (or --deny) the step a run waits on")
    ap.add_argument("run_id", help=RUN_HELP)
    ap.add_argument("--deny", action="store_true", help="deny it instead: the run stops there")
    ap.add_argument("--comment", default="", help="why (goes on the run's decisions)")
    ap.add_argument("--by", type=person, help=BY_HELP)
    st = acts.add_parser("status", help="a run's steps, results and pending approval")
    st.add_argument("run_id", help=RUN_HELP)
    st.add_argument("--json", action="store_true", help="print JSON instead of text")


def _add_rbac(acts: Any) -> None:
    rbac = acts.add_parser("rbac", help="print the least-privilege Kubernetes Role and RoleBinding the runbooks need",
                           description=RBAC_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    rbac.add_argument("paths", nargs="*", help="runbook files or directories (default: those the worker loads)")
    rbac.add_argument("--namespace", action="append", default=[], metavar="NS",
                      help="a namespace templated namespaces may take at run time (repeatable)")
    rbac.add_argument("--service-account", default=SERVICE_ACCOUNT, metavar="NAME",
                      help=f"the worker's service account (default: {SERVICE_ACCOUNT})")
    rbac.add_argument("--sa-namespace", default=SA_NAMESPACE, metavar="NS",
                      help=f"the service account's namespace (default: {SA_NAMESPACE})")


def rbac(args: argparse.Namespace, settings: Settings) -> str:
    """The manifests `runbook rbac` prints. UsageError for bad flags or namespaces nobody can know."""
    if (problem := account_problem(args.service_account, args.sa_namespace)) is not None:
        raise UsageError(problem)
    runbooks = load_runbooks(_paths(args, settings))
    try:
        roles = rules_for(runbooks, args.namespace)
    except RbacError as exc:
        raise UsageError("; ".join(exc.problems)) from None
    flags = [f"--namespace {ns}" for ns in sorted(set(args.namespace))]
    if args.service_account != SERVICE_ACCOUNT:
        flags.append(f"--service-account {args.service_account}")
    if args.sa_namespace != SA_NAMESPACE:
        flags.append(f"--sa-namespace {args.sa_namespace}")
    return render_rbac(roles, runbooks.names, service_account=args.service_account, sa_namespace=args.sa_namespace,
                       command=" ".join(["incidentflow runbook rbac", *flags]))


def _params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {pair!r}: use KEY=VALUE, e.g. --param deployment=checkout-service")
        out[key.strip()] = value
    return out


def _paths(args: argparse.Namespace, settings: Settings) -> list[Path]:
    given = [Path(p) for p in getattr(args, "paths", []) or []]
    return given or settings.runbook_paths()


def local(args: argparse.Namespace, settings: Settings) -> int | None:
    """check/list/show: no Temporal needed. None when the action needs Temporal."""
    if args.action == "check":
        paths = _paths(args, settings)
        found, problems = check_runbooks(paths, settings.runbook_secret_hosts() or None)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        assert found is not None
        print(f"{len(found.runbooks)} runbooks ok: {', '.join(sorted(found.runbooks)) or '(none)'} "
              f"(from {', '.join(str(p) for p in paths) or 'no directory'})")
        return 0
    if args.action == "rbac":
        print(rbac(args, settings), end="")
        return 0
    if args.action == "list":
        runbooks = load_runbooks(settings.runbook_paths())
        for rb in runbooks.runbooks.values():
            print(f"{rb.name:<28} {rb.title}  [{len(rb.steps)} steps; auto: {rb.auto_run}]")
        if not runbooks.runbooks:
            print("no runbooks (./runbooks or INCIDENTFLOW_RUNBOOKS_DIR)", file=sys.stderr)
        return 0
    if args.action == "show":
        rb = _get(load_runbooks(settings.runbook_paths()), args.name)
        print(f"{rb.name}: {rb.title}\n")
        if rb.description:
            print(rb.description.strip() + "\n")
        for name, spec in rb.parameters.items():
            extra = " (required)" if spec.required else f" (default {spec.default!r})" if spec.default is not None else ""
            print(f"  --param {name}=<{spec.type}>{extra}  {spec.description}")
        if rb.likely_causes:
            print("\nLikely causes:\n" + "\n".join(f"  - {c}" for c in rb.likely_causes))
        if rb.escalation:
            print(f"\nEscalation: {rb.escalation}")
        print(f"\nApprovers: {', '.join(rb.approvers)}; timeout {fmt_duration(rb.approval_timeout)} → "
              f"{rb.on_approval_timeout}")
        print("Steps:")
        for i, step in enumerate(rb.steps):
            flag = " (destructive: needs approval)" if step.destructive else ""
            print(f"  {i + 1}. {step.kind}{flag}  {rb.step_names[i]}")
        return 0
    if args.action == "run" and args.dry_run:
        return None
    if args.action == "run" and not args.incident:
        raise UsageError("--incident: which incident to run it on (or --dry-run to only print the plan)")
    return None


def _get(runbooks: RunbookSet, name: str) -> Any:
    try:
        return runbooks.get(name)
    except KeyError as exc:
        raise UsageError(str(exc.args[0]) if exc.args else str(exc)) from None


async def remote(args: argparse.Namespace, settings: Settings, inc: Incidents | None) -> int:
    if args.action == "run" and args.dry_run:
        return await dry_run(args, settings, inc)
    assert inc is not None
    if args.action == "run":
        rb = _get(inc.runbooks(), args.name)  # an unknown name is a usage error (exit 2), as with --dry-run
        try:
            coerce_params(rb, _params(args.param))  # so are bad parameters
        except ParamError as exc:
            raise UsageError(str(exc)) from None
        await inc.require_incident(args.incident)  # then an unknown incident (exit 1), then who asks
        by = acting(args, settings, inc.config)
        try:
            result = await inc.run_runbook(args.incident, args.name, _params(args.param), by,
                                           key=getattr(args, "idempotency_key", None))
        except ParamError as exc:
            raise UsageError(str(exc)) from None
        print(f"{result.ref}")
        if result.phase in (Phase.closed, Phase.stood_down):  # ran on its own: read-only, nothing to approve
            print(f"  {result.text}", file=sys.stderr)
        else:
            print(f"  {args.name} started on {result.incident_id}; destructive steps wait for approval: "
                  f"`incidentflow runbook approve {result.ref}`", file=sys.stderr)
        return 0
    if args.action == "approve":
        await inc.require_run(args.run_id)
        by = acting(args, settings, inc.config)
        text = await inc.decide_runbook(args.run_id, Decision(approve=not args.deny, by=by, comment=args.comment),
                                        key=getattr(args, "idempotency_key", None))
        print(f"{args.run_id}: {text}")
        return 0
    if args.action == "status":
        state = await inc.runbook_run(args.run_id)
        print(state.model_dump_json(indent=2) if args.json else render_state(state))
        return 0
    raise UsageError(f"unknown action {args.action}")


def render_state(s: RunbookState) -> str:
    lines = [f"{s.run_id}  {s.runbook}  {s.status.value}  (incident {s.incident_id}, started by {s.started_by} "
             f"at {s.started_at:%H:%M} UTC)"]
    done = {r.index: r for r in s.results}
    for step in s.steps:
        r = done.get(step.index)
        mark = {"ok": "✓", "failed": "✗", "skipped": "-", "denied": "✗"}.get(r.status, "?") if r else " "
        lines.append(f"  [{mark}] {step.index + 1}. {step.title}" + (f" — {r.summary}" if r and r.summary else ""))
    if s.pending:
        lines.append(f"  waiting for approval until {s.pending.deadline:%H:%M} UTC: {s.pending.prompt}")
    lines += [f"  {d}" for d in s.decisions]
    return "\n".join(lines)


async def dry_run(args: argparse.Namespace, settings: Settings, inc: Incidents | None) -> int:
    """Render and plan every step with read-only calls; print it. Nothing is changed anywhere."""
    from activities.runbook import RunbookSteps  # the step adapters (Kubernetes, probes): for --dry-run only

    rb = _get(load_runbooks(settings.runbook_paths()), args.name)
    incident = None
    if args.incident and inc is not None:
        state = await inc.get(args.incident)
        incident = {"id": state.id, "service": state.service or "", "severity": state.severity.value}
    try:
        params = coerce_params(rb, _params(args.param))
    except ParamError as exc:
        raise UsageError(str(exc)) from None
    steps = render_steps(rb, params, incident, secret_hosts=settings.runbook_secret_hosts() or None)
    runner = RunbookSteps.from_settings(settings)
    print(f"Dry run of {rb.name} ({rb.title}){' on ' + args.incident if args.incident else ''}: nothing is changed.")
    for step in steps:
        plan = await _plan(runner, step)
        gate = "  [needs approval]" if step.destructive else ""
        print(f"  {step.index + 1}. {step.kind}{gate}: {plan.summary}" + (" (already so: nothing to do)" if plan.noop
                                                                           else ""))
        for change in plan.changes:
            print(f"       {change}")
    print(json.dumps({"params": params}, default=str) if args.param else "", end="\n" if args.param else "")
    return 0


async def _plan(runner: Any, step: RenderedStep) -> StepPlan:
    if step.kind == "kubernetes.restart":
        step = step.model_copy(update={"args": {**step.args, "restarted_at": datetime.now(UTC).isoformat()}})
    try:
        plan: StepPlan = await runner.plan(step)
        return plan
    except ApplicationError as exc:
        return StepPlan(summary=f"{step.title} — cannot plan: {exc.message}")
