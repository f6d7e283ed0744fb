"""The alert group's state and the messages it receives (the base of AlertGroupWorkflow).

An incident tells its group about phase changes (`incident_changed`). `workflows.alert_group` imports
the incident to start it as a child, so the incident names that handler here, on the base class.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.models.common import Phase
    from domain.models.group import AlertBatch, AlertGroupState, IncidentStatusSignal
    from domain.models.incident import IncidentPolicy

NO_REOPEN = (Phase.postmortem, Phase.closed, Phase.stood_down)


class AlertGroupCore:
    s: AlertGroupState
    policy: IncidentPolicy
    _inbox: list[AlertBatch]  # batches received and not yet handled
    _incident_moved: bool  # the incident's phase changed: the reopen window may have opened or closed

    @workflow.signal
    def alerts(self, batch: AlertBatch) -> None:
        self.s.batches += 1
        self.s.alerts += len(batch.alerts)
        self._inbox.append(batch)

    @workflow.signal
    def incident_changed(self, status: IncidentStatusSignal) -> None:
        if status.incident_id == self.s.incident_id:
            self.s.incident_phase = status.phase
            self.s.resolved_at = status.resolved_at
            self._incident_moved = True

    @workflow.query
    def get_state(self) -> AlertGroupState:
        return self.s

    def _history_full(self) -> bool:
        info = workflow.info()
        limit = min(5_000, self.policy.continue_as_new_after_events)
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > limit

    def _incident_is_current(self) -> bool:
        """Whether a firing alert belongs to the group's incident (open, or resolved within the window)."""
        s = self.s
        if s.incident_id is None or s.incident_phase in NO_REOPEN:
            return False
        if s.incident_phase == Phase.resolved:
            return s.resolved_at is not None and workflow.now() - s.resolved_at <= self.policy.reopen_window
        return True

    def _finished(self) -> bool:
        return self.s.incident_id is not None and not self._incident_is_current()

    def _until_window_closes(self) -> timedelta | None:
        if self.s.incident_phase == Phase.resolved and self.s.resolved_at:
            return max(self.s.resolved_at + self.policy.reopen_window - workflow.now(), timedelta(0)) \
                + timedelta(seconds=1)
        return None
