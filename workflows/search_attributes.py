"""Typed search-attribute keys: the Temporal UI filters incidents by these.

The sqlite/SQL visibility stores cap custom attributes (10 Keyword, 3 Datetime, 3 Text): spend carefully.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

SEVERITY = SearchAttributeKey.for_keyword("IncidentSeverity")
PHASE = SearchAttributeKey.for_keyword("IncidentPhase")
SERVICE = SearchAttributeKey.for_keyword("IncidentService")
COMMANDER = SearchAttributeKey.for_keyword("IncidentCommander")
ACKNOWLEDGED = SearchAttributeKey.for_bool("IncidentAcknowledged")
DECLARED_AT = SearchAttributeKey.for_datetime("IncidentDeclaredAt")
CHANNEL = SearchAttributeKey.for_keyword("IncidentChannel")  # the Slack channel id: chat commands find their incident

# Action items (ActionItemWorkflow): the weekly review filters by owner, status and due date.
ACTION_OWNER = SearchAttributeKey.for_keyword("ActionOwner")
ACTION_STATUS = SearchAttributeKey.for_keyword("ActionStatus")  # open | done | dropped
ACTION_INCIDENT = SearchAttributeKey.for_keyword("ActionIncident")
ACTION_DUE = SearchAttributeKey.for_datetime("ActionDue")

ALL: list[SearchAttributeKey[Any]] = [SEVERITY, PHASE, SERVICE, COMMANDER, ACKNOWLEDGED, DECLARED_AT, CHANNEL,
                                      ACTION_OWNER, ACTION_STATUS, ACTION_INCIDENT, ACTION_DUE]
