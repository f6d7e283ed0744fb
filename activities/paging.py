"""Escalation activities: read the policy and schedules from the worker's config, page people."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.metrics import recorder
from activities.ports import Pager
from domain.config import IncidentflowConfig
from domain.models.oncall import Target
from domain.models.paging import (
    EscalationPlan,
    EscalationStart,
    EscalationStep,
    EscalationStepResult,
    LevelPlan,
    PagedResponder,
    PageRequest,
    PageResult,
    ResolveRequest,
    Responder,
)

log = logging.getLogger("incidentflow.paging")


class LogPager:
    """Default pager: writes the page to the log (and remembers dedup keys within the process)."""

    name = "log"

    def __init__(self) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.sent: list[PageRequest] = []

    async def send(self, request: PageRequest) -> PageResult:
        key = f"{request.action}:{request.dedup_key}"
        if key not in self._seen:
            self._seen[key] = None
            if len(self._seen) > 10_000:
                self._seen.popitem(last=False)
            self.sent.append(request)
            links = " ".join(link for link in (request.channel.url if request.channel else None,
                                               request.incident_url) if link)
            log.warning("PAGE %s → %s (%s): %s%s", request.action, request.target, request.reason, request.summary,
                        f" {links}" if links else "")
        return PageResult(channel=self.name, detail="logged")


class EscalationActivities:
    def __init__(self, config: Callable[[], IncidentflowConfig], pagers: Mapping[str, Pager],
                 default_channels: list[str] | None = None,
                 shift: Callable[[datetime], datetime] | None = None,
                 incident_url: Callable[[str], str] | None = None) -> None:
        self._config = config  # called per activity: edits to schedules/overrides apply to the next level
        self._shift = shift or (lambda at: at)  # drills replay a policy at another moment
        self._pagers = dict(pagers)
        self._default = [c for c in (default_channels or list(self._pagers)) if c in self._pagers]
        # The incident's link (Settings.workflow_url): every page carries it, whoever opened the incident.
        self._incident_url = incident_url

    @activity.defn
    async def plan_escalation(self, start: EscalationStart) -> EscalationPlan:
        """The incident's policy (its routing rule's, else its service's: `domain.known.policy_name`)."""
        from domain import known, oncall

        cfg = self._config()
        if not cfg.escalation_policies:
            return EscalationPlan(policy="", levels=[])
        name, warning = known.policy_name(cfg, start.service, start.escalation_policy)
        policy = next((p for p in cfg.escalation_policies if p.name == name), None)
        if policy is None:
            return EscalationPlan(policy=name, levels=[], warning=warning)
        levels = [LevelPlan(targets=[_spec(t) for t in level.targets], wait=level.wait.total_seconds(),
                            name=level.name or f"L{i + 1}")
                  for i, level in enumerate(oncall.levels_for(policy, start.severity))]
        return EscalationPlan(policy=policy.name, levels=levels, repeat=policy.repeat,
                              fallback=[_spec(t) for t in policy.fallback], warning=warning)

    @activity.defn
    async def resolve_targets(self, request: ResolveRequest) -> list[Responder]:
        from domain import oncall

        cfg = self._config()
        targets = [Target.model_validate(t) for t in request.targets]
        return [Responder(kind=r.kind, id=r.id, via=r.via)
                for r in oncall.resolve_targets(targets, cfg.schedules, self._shift(request.at))]

    @activity.defn
    async def escalate_level(self, step: EscalationStep) -> EscalationStepResult:
        """One step of an escalation run inside its incident: the policy (read once, with the first step), who
        is on call for the level at `step.at`, and their pages, all at once. Every page keeps its dedup key
        (incident, round, level, person), so a retried step pages nobody twice."""
        async with heartbeating():
            return await self._escalate_level(step)

    async def _escalate_level(self, step: EscalationStep) -> EscalationStepResult:
        start = step.start
        plan = step.plan or await self.plan_escalation(start)
        if step.fallback:
            level, label, targets = 0, "fallback", plan.fallback
        elif plan.levels:
            level = min(max(1, step.level), len(plan.levels))
            label, targets = f"L{level}", plan.levels[level - 1].targets
        else:
            return EscalationStepResult(plan=plan)
        responders = await self.resolve_targets(ResolveRequest(targets=targets, at=step.at))

        async def page(r: Responder) -> PagedResponder:
            again = f"e{step.number}:" if step.number > 1 else ""  # a restarted escalation pages everyone again
            request = PageRequest(
                incident_id=start.incident_id, dedup_key=f"{start.incident_id}:{again}r{step.round}:{label}:{r.id}",
                incident_key=f"incidentflow-{start.incident_id}", target=r.id, level=level,
                reason=f"{label}, {r.via}" if r.via else label, summary=start.summary, severity=start.severity,
                service=start.service, incident_url=start.incident_url, channel=start.channel)
            return PagedResponder(responder=r, result=await self.page(request))

        paged = await asyncio.gather(*(page(r) for r in responders), return_exceptions=True)
        for outcome in paged:
            if isinstance(outcome, BaseException):
                raise outcome  # a rate limit or an outage: the step retries, pages already sent are not repeated
        return EscalationStepResult(plan=plan, level=level, label=label,
                                    pages=[p for p in paged if isinstance(p, PagedResponder)])

    @activity.defn
    async def page(self, request: PageRequest) -> PageResult:
        async with heartbeating():
            return await self._page(request)

    async def _page(self, request: PageRequest) -> PageResult:
        if self._incident_url is not None:
            request = request.model_copy(update={"incident_url": self._incident_url(request.incident_id)})
        cfg = self._config()
        person = next((p for p in cfg.people if p.id == request.target), None)
        channels = [c for c in (person.notify if person and person.notify else self._default) if c in self._pagers]
        channels = channels or ["log"]
        results, failed = [], []
        for c in channels:
            try:
                results.append(await _counted(c, self._pagers.get(c, _LOG).send(request)))
            except ApplicationError as exc:
                if not exc.non_retryable:
                    raise  # a rate limit or an outage: the activity retries (channels are idempotent)
                failed.append(f"{c}: {exc.message}")  # a refusal must not cost the person their other channels
        if failed:
            log.warning("page to %s: %s", request.target, "; ".join(failed))
        if request.action == "trigger" and any(r.delivered for r in results):
            recorder().first_page(request.incident_id, request.level)
        return PageResult(channel="+".join(r.channel for r in results) or "none",
                          delivered=bool(results) and not failed and all(r.delivered for r in results),
                          detail="; ".join([*(r.detail for r in results if r.detail), *(f"failed {f}" for f in failed)]),
                          messages=[m for r in results for m in r.messages])

    @activity.defn
    async def sync_pagers(self, request: PageRequest) -> PageResult:
        """Acknowledge/resolve on vendors that keep one incident per key (PagerDuty), so both sides agree."""
        syncing = [p for name, p in self._pagers.items() if name == "pagerduty"]
        async with heartbeating():
            results = [await p.send(request) for p in syncing]
        return PageResult(channel="+".join(r.channel for r in results) or "none",
                          detail="; ".join(r.detail for r in results))


_LOG = LogPager()


async def _counted(channel: str, sending: Awaitable[PageResult]) -> PageResult:
    """The page's result, counted by channel and outcome (activities/metrics.py); errors pass through."""
    try:
        result = await sending
    except ApplicationError as exc:
        recorder().page(channel, "failed" if exc.non_retryable else "error")
        raise
    except Exception:
        recorder().page(channel, "error")
        raise
    recorder().page(channel, "sent" if result.delivered else "failed")
    return result


def _spec(target: Target) -> dict[str, str]:
    return {k: str(v) for k, v in target.model_dump(exclude_none=True).items()}
