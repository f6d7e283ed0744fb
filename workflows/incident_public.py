"""The incident's public side (a mixin of IncidentWorkflow): drafts of the public update it owes, published by
the comms lead (or itself, for the severities that auto-publish), and the public-update cadence.

An incident on a service that affects status page components owes a first public update `first_update` after
declaring, then one per `cadence` of its severity; reminders go to the comms lead (else the IC) until one is
published. Declaring, identified, monitoring, resolved and a reopen each ask for a draft: the worker writes it
from the config's templates, and it goes on the timeline (so to the channel) with how to publish it. The
StatusPageWorkflow tells the incident when an update went out (`public_update_published`).

Drafts name the cause as the responders last gave it (`IncidentState.cause`), except those that auto-publish:
nobody reads those before the public does, and a cause is written for colleagues (hosts, releases, names)."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.stakeholders import StakeholderActivities
    from activities.statuspage import StatusPageActivities
    from domain import policy
    from domain.blockkit import PUBLIC_DRAFT_REF
    from domain.models.common import EventKind, Phase
    from domain.models.incident import PublicState
    from domain.stakeholders import StakeholderUpdate, resolution
    from domain.statuspage.drafts import Draft, context_of
    from domain.statuspage.messages import PUBLISH_REQUESTED, PublicPublished, statuspage_id
    from domain.statuspage.models import PublishInput
    from workflows import options
    from workflows.incident_core import SYSTEM, IncidentCore, why

AUTO = "incidentflow (auto-publish)"
DRAFTED_ON = (Phase.identified, Phase.monitoring, Phase.resolved)


class IncidentPublic(IncidentCore):
    @workflow.signal
    def public_update_published(self, done: PublicPublished) -> None:
        s = self.s
        self._event(EventKind.action, done.by, f"Published a public update ({done.status}): {done.body}",
                    subject="status page")
        if s.public is None:
            return
        s.public.last_status, s.public.last_at, s.public.reminders = done.status, done.at, 0
        s.public.due = None if done.status == "resolved" else self._public_next(done.at)
        self._wake = True

    def _public_next(self, after: datetime) -> datetime | None:
        pp = self.s.policy.public
        cadence = pp.cadence.get(self.s.severity) if pp else None
        return after + cadence if cadence and self.s.phase in policy.ACTIVE else None

    def _setup_public(self) -> None:
        """At declaration: is the public affected? Then the first update is due, and drafted now."""
        s, pp = self.s, self.s.policy.public
        components = pp.components.get(s.service or "", []) if pp else []
        if not pp or not components:
            return
        s.public = PublicState(components=components, due=s.declared_at + pp.first_update)
        self._public_queue.append(s.phase)

    # ---------------------------------------------------------------- stakeholders inside the company
    def _tell_stakeholders(self, text: str, subject: str, seq: int) -> None:
        s = self.s
        if s.policy.stakeholders:
            self._stakeholder_queue.append(StakeholderUpdate(
                incident_id=s.id, service=s.service, dedup_key=f"{s.id}:stakeholders:{seq}", subject=subject,
                text=text))

    def _tell_resolution(self) -> None:
        """The resolution message, to the stakeholders and the incident channel; the activity lists the action
        items. Code level 2: to the channel even where no stakeholder channel or list is configured."""
        s = self.s
        chat = s.chat if s.chat is not None and not s.chat.broken else None
        if not (s.policy.stakeholders or (chat is not None and s.code_level >= 2)):
            return
        self._stakeholder_queue.append(StakeholderUpdate(
            incident_id=s.id, service=s.service, dedup_key=f"{s.id}:stakeholders:{s.seq}",
            subject=f"Resolved: {s.title}", text=resolution(s, self._root_cause, workflow.now()),
            action_items_of=s.id, incident_channel=chat.channel_id if chat else None,
            stakeholders=s.policy.stakeholders))

    async def _flush_stakeholders(self) -> None:
        while self._stakeholder_queue:
            update = self._stakeholder_queue.pop(0)
            try:
                await self._order.settle(workflow.execute_activity_method(
                    StakeholderActivities.send_stakeholder_update, update, summary=f"Stakeholders: {update.subject}"[:200],
                    **options.NOTIFY))
            except ActivityError as exc:
                self._event(EventKind.warning, SYSTEM, f"Stakeholders not told ({update.subject}): {why(exc)}")

    # ---------------------------------------------------------------- the public
    def _public_phase(self, old: Phase, target: Phase) -> None:
        s = self.s
        if target == Phase.resolved:
            self._tell_resolution()
        if s.public is None:
            return
        reopened = old == Phase.resolved and target == Phase.investigating
        if target in DRAFTED_ON or reopened:
            self._public_queue.append(target)
        if (target == Phase.resolved or reopened) and s.policy.public:  # owed now: the draft comes at once,
            s.public.due, s.public.reminders = workflow.now() + s.policy.public.remind_every, 0  # reminders after
        elif target not in policy.ACTIVE:
            s.public.due = None

    async def _flush_public(self) -> None:
        await self._flush_stakeholders()
        while self._public_queue and self.s.public is not None:
            phase = self._public_queue.pop(0)
            s, public = self.s, self.s.public
            public.drafts += 1
            pp = s.policy.public
            auto = bool(pp and s.severity in pp.auto_publish)  # nobody reads it first: no internal wording
            request = context_of(s, phase, public.components, self._public_next(workflow.now()), cause=not auto)
            try:
                draft: Draft = await self._order.settle(workflow.execute_activity_method(
                    StatusPageActivities.draft_public_update, request, summary=f"Draft the public update ({phase.value})",
                    **options.CONFIG))
            except ActivityError as exc:
                self._event(EventKind.warning, SYSTEM, f"No public update drafted: {why(exc)}")
                continue
            if s.code_level < 2:  # as their histories decided: after drafting (the severity may have changed)
                auto = bool(pp and s.severity in pp.auto_publish)
            if auto:  # level 2 decided before: a draft written for a person (with the cause) never auto-publishes
                await self._auto_publish(draft, public.drafts)
            else:
                listed = ", ".join(f"{c.component} {c.status.value}" for c in draft.components)
                self._event(EventKind.suggestion, SYSTEM,
                            f"Public update to publish ({draft.status.value}; {listed}): \"{draft.body}\" "
                            f"Publish it with `/incident publish` or `incidentflow statuspage publish {s.id}`, "
                            f"or in your words: `incidentflow statuspage publish {s.id} \"…\"`.",
                            subject=policy.update_recipient(s), ref=f"{PUBLIC_DRAFT_REF}{s.id}")

    async def _auto_publish(self, draft: Draft, n: int) -> None:
        s = self.s
        page = workflow.get_external_workflow_handle(statuspage_id(workflow.info().task_queue))
        try:
            await self._order.settle(page.signal(PUBLISH_REQUESTED, PublishInput(
                incident_id=s.id, name=draft.name, status=draft.status, body=draft.body, impact=draft.impact,
                components=draft.components, by=AUTO, request_id=f"{s.id}:auto:{n}")))
        except Exception as exc:  # no status page running: say so, a person can still publish
            self._event(EventKind.warning, SYSTEM, f"Not auto-published (the status page is not running): {exc}")
