"""The forms: declare an incident, post a status update. Block Kit views and reading their submissions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain import blockkit as render
from domain.config import Service
from domain.models import Severity


def option(value: str, text: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text[:75]}, "value": value}


def declare_view(services: Sequence[Service], channel_id: str) -> dict[str, Any]:
    service_element: dict[str, Any]
    if services:
        service_element = {"type": "static_select", "action_id": "value",
                           "options": [option(s.name, s.description or s.name) for s in services[:100]]}
    else:
        service_element = {"type": "plain_text_input", "action_id": "value"}
    return {
        "type": "modal", "callback_id": render.DECLARE_VIEW, "private_metadata": channel_id,
        "title": {"type": "plain_text", "text": "Declare an incident"},
        "submit": {"type": "plain_text", "text": "Declare"},
        "blocks": [
            {"type": "input", "block_id": "title", "label": {"type": "plain_text", "text": "Title"},
             "element": {"type": "plain_text_input", "action_id": "value", "max_length": 200}},
            {"type": "input", "block_id": "severity", "label": {"type": "plain_text", "text": "Severity"},
             "element": {"type": "static_select", "action_id": "value", "initial_option": option("SEV3", "SEV3"),
                         "options": [option(s.value, s.value) for s in Severity]}},
            {"type": "input", "block_id": "service", "optional": True,
             "label": {"type": "plain_text", "text": "Service"}, "element": service_element},
            {"type": "input", "block_id": "description", "optional": True,
             "label": {"type": "plain_text", "text": "What is happening?"},
             "element": {"type": "plain_text_input", "action_id": "value", "multiline": True}},
        ],
    }


def update_view(incident_id: str) -> dict[str, Any]:
    return {"type": "modal", "callback_id": render.UPDATE_VIEW, "private_metadata": incident_id,
            "title": {"type": "plain_text", "text": "Post a status update"},
            "submit": {"type": "plain_text", "text": "Post"},
            "blocks": [{"type": "input", "block_id": "text",
                        "label": {"type": "plain_text", "text": "Status, impact, theory, next action"},
                        "element": {"type": "plain_text_input", "action_id": "value", "multiline": True}}]}


def public_view(incident_id: str, draft: str, status: str) -> dict[str, Any]:
    """Edit a public update before it goes out (the draft filled in)."""
    return {"type": "modal", "callback_id": render.PUBLIC_VIEW, "private_metadata": incident_id,
            "title": {"type": "plain_text", "text": "Public update"},
            "submit": {"type": "plain_text", "text": "Publish"},
            "blocks": [{"type": "input", "block_id": "text",
                        "label": {"type": "plain_text", "text": f"What the status page says ({status})"},
                        "element": {"type": "plain_text_input", "action_id": "value", "multiline": True,
                                    "initial_value": draft[:3000], "max_length": 5000}}]}


def values(view: dict[str, Any]) -> dict[str, str]:
    """A submitted view's input values by block id (a select's chosen value, a text input's text)."""
    out: dict[str, str] = {}
    for block_id, actions in ((view.get("state") or {}).get("values") or {}).items():
        for element in actions.values():
            value = element.get("value")
            if value is None and element.get("selected_option"):
                value = element["selected_option"].get("value")
            out[block_id] = str(value) if value is not None else ""
    return out


def errors(block_id: str, text: str) -> dict[str, Any]:
    """The answer that shows `text` under the view's block (and keeps the form open)."""
    return {"response_action": "errors", "errors": {block_id: text[:150]}}


def field_of(exc: ValueError, given: dict[str, str]) -> str:
    """The block a validation error is about (DeclareInput's fields are named like the blocks)."""
    found = getattr(exc, "errors", None)
    if callable(found):
        loc = found()[0].get("loc", ())
        if loc and str(loc[0]) in given:
            return str(loc[0])
    return "title"
