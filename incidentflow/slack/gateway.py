"""Slack in: `/incident …` commands, buttons and modals → workflow updates and signals.

Transport-neutral: the HTTP routes (`incidentflow.api.slack`) and Socket Mode (`incidentflow.slack.socket`)
both hand payloads here after verifying them, each with a key naming the request (its signature, or Slack's
trigger id): every command a request makes carries it, so the same request replayed, to this process or
another, is applied once (Temporal update ids and request records; see `incidentflow.client`). Every answer is a `Reply` (ephemeral unless it says
otherwise); a rejected command gets the workflow validator's message and the command's usage. The incident
commands and their syntax come from the command table (`incidentflow.slack.syntax`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from domain import blockkit as render
from domain.config import IncidentflowConfig
from domain.models import DeclareInput, Phase, Role, Severity, StatusUpdateInput
from domain.models.runbook import Decision
from domain.runbooks.loader import RunbookError
from domain.runbooks.render import ParamError, RenderError
from domain.text import sentence
from incidentflow.client import (
    CommandRejected,
    IncidentflowError,
    IncidentNotFound,
    Incidents,
    NoWorker,
    TemporalUnavailable,
)
from incidentflow.commands import Command, by_name
from incidentflow.slack import learning, modals
from incidentflow.slack.people import SlackDirectory
from incidentflow.slack.reply import SLACK_ERRORS, Caller, Reply, Usage, first_error, first_word, slack_error
from incidentflow.slack.syntax import COMMANDS, answer, help_text, read_args, resolve_name

log = logging.getLogger("incidentflow.slack")
__all__ = ["COMMANDS", "Caller", "Reply", "SlackGateway", "Usage", "help_text"]

_ID = re.compile(r"^incident-[a-z0-9][a-z0-9-]*$")
_DECLARE_USAGE = "`/incident declare [sev1-4] [service=NAME] <title>`"
_NO_WORKER = ("No incidentflow worker took {what} within a few seconds, so it is not done yet: it will apply once a "
              "worker is back. Check the timeline before repeating it.")


class SlackGateway:
    def __init__(self, incidents: Callable[[], Awaitable[Incidents]], config: Callable[[], IncidentflowConfig],
                 web: AsyncWebClient | None) -> None:
        self._incidents = incidents
        self._config = config
        self.web = web
        self.people = SlackDirectory(incidents, config, web)

    # ------------------------------------------------------------------ who and where
    async def caller(self, user_id: str, user_name: str = "") -> Caller:
        return await self.people.caller(user_id, user_name)

    async def person_for(self, user_id: str) -> str | None:
        return await self.people.person_for(user_id)

    async def incident_for_channel(self, channel_id: str) -> str | None:
        return await self.people.incident_for_channel(channel_id)

    def _may_act(self, caller: Caller) -> bool:
        return caller.person is not None or self._config().slack.allow_everyone

    # ------------------------------------------------------------------ slash commands
    async def command(self, form: dict[str, str], key: str | None = None) -> Reply:
        """A slash command; `key` names the request (a replay with the same key is applied once)."""
        caller = await self.caller(form.get("user_id", ""), form.get("user_name", ""))
        caller.request_key = request_key(key, form.get("trigger_id"))
        word, rest = first_word((form.get("text") or "").strip())
        name = resolve_name(word)
        spec = COMMANDS.get(name)
        if spec is None:
            return Reply(f"Unknown command `{name}`.\n{help_text()}")
        if name == "help":
            return Reply(help_text())
        if name in learning.WORDS:  # postmortems and action items: their own syntax and checks
            return await learning.command(self, name, rest, caller, form.get("channel_id", ""))
        if not spec.read_only and not self._may_act(caller):
            return Reply(caller.refusal(f" (add `slack: {caller.user_id}` or your email to your entry in the "
                                        "config), so only read-only commands work for you: `/incident timeline`, "
                                        "`/incident help`."))
        if name == "declare":
            if not rest:
                return await self.open_declare_modal(form.get("trigger_id", ""), form.get("channel_id", ""))
            return await self._guard(name, lambda: self.declare(rest, caller))
        if name in ("approve", "deny"):
            return await self._guard(name, lambda: self.decide(name == "approve", rest, caller))
        if name == "runbook" and not rest:
            return await self._guard(name, self.list_runbooks)
        if not spec.needs_incident:
            return await self._guard(name, lambda: self.run(name, "", rest, caller))

        async def act() -> Reply:  # finding the channel's incident asks Temporal: guarded like the command
            incident_id, args = await self._target(rest, form.get("channel_id", ""))
            if incident_id is None:
                return Reply(f"This channel is not an incident channel: add the incident id, e.g. "
                             f"`/incident {name} incident-20261123-0815-checkout`.\nUsage: `/incident {spec.usage}`")
            return await self.run(name, incident_id, args, caller)
        return await self._guard(name, act)

    async def _target(self, rest: str, channel_id: str) -> tuple[str | None, str]:
        first, after = first_word(rest)
        if _ID.match(first):
            return first, after
        return await self.incident_for_channel(channel_id), rest

    async def _guard(self, name: str, action: Callable[[], Awaitable[Reply]]) -> Reply:
        usage = f"Usage: `/incident {COMMANDS[name].usage}`"
        try:
            return await action()
        except Usage as exc:
            return Reply(f"{exc}\n{usage}")
        except CommandRejected as exc:
            return Reply(f"Rejected: {exc}\n{usage}")
        except IncidentNotFound as exc:
            return Reply(f"{exc}. {usage}")
        except NoWorker:
            return Reply(_NO_WORKER.format(what=f"`{name}`"))
        except TemporalUnavailable:
            return Reply("incidentflow cannot reach Temporal right now; nothing was changed. Try again shortly.")
        except IncidentflowError as exc:
            return Reply(f"Failed: {exc}")
        except ValueError as exc:  # pydantic validation of the command input
            return Reply(f"{first_error(exc)}\n{usage}")

    async def run(self, name: str, iid: str, rest: str, caller: Caller) -> Reply:
        """Run a command on an incident: `rest` is the text after the command (and the id)."""
        inc = await self._incidents()
        if name == "timeline":
            state = await inc.get(iid)
            events = [(e.at, e.kind.value, e.actor, e.text) for e in state.timeline]
            return Reply(f"*Timeline of `{iid}`* ({state.severity.value}, {state.phase.value}):\n"
                         + render.timeline_text(events))
        if name == "runbook":
            return await self.run_runbook(iid, rest, caller)
        if name == "publish":
            result = await inc.publish_public_update(iid, caller.actor, rest.strip() or None, key=caller.request_key)
            return Reply(f"`{iid}`: published to the status page ({result.update.status.value}): "
                         f"{result.update.body}")
        command = COMMANDS[name].command
        if command is None:  # pragma: no cover - every other chat command is a table command
            raise Usage(f"`{name}` is not implemented")
        cmd = command.input(await read_args(command, rest, caller, self.people.person_arg), caller.actor)
        return Reply(answer(command, iid, await command.run(inc, iid, cmd, key=caller.request_key)))

    # ------------------------------------------------------------------ declare
    async def declare(self, rest: str, caller: Caller, service: str | None = None,
                      severity: Severity | None = None, description: str = "") -> Reply:
        words = rest.split()
        while words:
            w = words[0]
            if re.fullmatch(r"(?i)sev[1-4]", w):
                severity = Severity(w.upper())
            elif w.lower().startswith(("service=", "svc=")):
                service = w.split("=", 1)[1] or None
            else:
                break
            words.pop(0)
        return await self._declare(" ".join(words), caller, service, severity, description)

    async def _declare(self, title: str, caller: Caller, service: str | None, severity: Severity | None,
                       description: str) -> Reply:
        """Declare with the title as given (the modal's fields are not parsed for `sevN` or `service=`)."""
        title = title.strip()
        if not title:
            raise Usage("A title is needed.")
        if service and self._config().services and self._config().service(service) is None:
            known = ", ".join(s.name for s in self._config().services)
            raise Usage(f"Unknown service `{service}` (known: {known}).")
        incidents = await self._incidents()
        cmd = DeclareInput(title=title, severity=severity or Severity.SEV3, service=service,
                           description=description, declared_by=caller.actor)
        iid = await incidents.declare(cmd, key=caller.request_key)
        return Reply(f"<@{caller.user_id}> declared *{cmd.severity.value}* `{iid}`: {title}. The incident channel "
                     "is being created; responders are paged per the service's escalation policy.", public=True,
                     extra={"incident_id": iid})

    async def open_declare_modal(self, trigger_id: str, channel_id: str) -> Reply:
        if self.web is None or not trigger_id:
            return Reply(f"Give a title: {_DECLARE_USAGE}.")
        try:
            await self.web.views_open(trigger_id=trigger_id,
                                      view=modals.declare_view(self._config().services, channel_id))
        except SLACK_ERRORS as exc:
            return Reply(f"Could not open the form ({slack_error(exc)}); type {_DECLARE_USAGE} instead.")
        return Reply("", extra={"modal": True})

    # ------------------------------------------------------------------ runbooks
    async def list_runbooks(self) -> Reply:
        inc = await self._incidents()
        try:
            runbooks = inc.runbooks()
        except RunbookError as exc:
            return Reply(f"The runbooks do not validate: {exc}")
        lines = [f"• `{rb.name}` — {rb.title}" + (f" (params: {', '.join(rb.parameters)})" if rb.parameters else "")
                 for rb in runbooks.runbooks.values()]
        return Reply("*Runbooks* (`/incident runbook NAME key=value …` in an incident channel):\n"
                     + ("\n".join(lines) or "none configured"))

    async def run_runbook(self, iid: str, rest: str, caller: Caller) -> Reply:
        words = rest.split()
        if not words:
            raise Usage("Name the runbook (`/incident runbook` lists them).")
        params: dict[str, str] = {}
        for word in words[1:]:
            key, sep, value = word.partition("=")
            if not sep or not key:
                raise Usage(f"`{word}`: parameters are key=value, e.g. `deployment=checkout-service`.")
            params[key] = value
        inc = await self._incidents()
        try:
            result = await inc.run_runbook(iid, words[0], params, caller.actor, key=caller.request_key)
        except (ParamError, RenderError) as exc:
            raise Usage(str(exc)) from None
        if result.phase in (Phase.closed, Phase.stood_down):  # ran on its own: read-only, nothing to approve
            return Reply(f"`{iid}`: {result.text}")
        return Reply(f"`{iid}`: runbook `{words[0]}` started as `{result.ref}`. Steps that change things wait "
                     f"for approval: the Approve button on the request in the channel, or "
                     f"`/incident approve {result.ref}`.")

    async def decide(self, approve: bool, rest: str, caller: Caller) -> Reply:
        run_id, comment = first_word(rest)
        if not run_id:
            raise Usage("Give the run id (it is in the approval request).")
        inc = await self._incidents()
        text = await inc.decide_runbook(run_id, Decision(approve=approve, by=caller.actor, comment=comment),
                                        key=caller.request_key)
        return Reply(sentence(f"`{run_id}`: {text}"))  # the prompt may end in "?" or ".": no "?." or ".."

    # ------------------------------------------------------------------ buttons and forms
    async def interaction(self, payload: dict[str, Any],
                          key: str | None = None) -> tuple[Reply | None, dict[str, Any] | None]:
        """→ (reply for the user, HTTP body for Slack). View submissions answer in the body. `key`: as for
        `command`."""
        kind = payload.get("type")
        user = payload.get("user") or {}
        caller = await self.caller(str(user.get("id", "")), str(user.get("username") or user.get("name") or ""))
        caller.request_key = request_key(key, payload.get("trigger_id"))
        if kind == "view_submission":
            return await self._submission(payload, caller)
        if kind != "block_actions" or not payload.get("actions"):
            return None, None
        action = payload["actions"][0]
        action_id, iid = action.get("action_id"), str(action.get("value") or "")
        if not self._may_act(caller):
            return Reply(caller.refusal(": buttons are for responders.")), None
        try:
            return await self._press(str(action_id), iid, caller, str(payload.get("trigger_id", ""))), None
        except CommandRejected as exc:
            return Reply(f"Rejected: {exc}"), None
        except NoWorker:
            return Reply(_NO_WORKER.format(what="that")), None
        except IncidentflowError as exc:
            return Reply(f"Failed: {exc}"), None
        except ValueError as exc:  # pydantic validation of the command input
            return Reply(f"Failed: {first_error(exc)}"), None

    async def _press(self, action_id: str, iid: str, caller: Caller, trigger_id: str) -> Reply | None:
        if action_id == render.POST_UPDATE:
            return await self._open_update_modal(trigger_id, iid)
        if action_id in (render.PUBLISH_PUBLIC, render.EDIT_PUBLIC):
            return await self._public(action_id == render.EDIT_PUBLIC, iid, caller, trigger_id)
        if action_id in (render.APPROVE, render.DENY):
            inc = await self._incidents()
            text = await inc.decide_runbook(iid, Decision(approve=action_id == render.APPROVE, by=caller.actor),
                                            key=caller.request_key)
            return Reply(sentence(f"`{iid}`: {text}"))
        button = _button(action_id, caller)
        if button is None:
            return None
        command, values = button
        inc = await self._incidents()
        result = await command.run(inc, iid, command.input(values, caller.actor), key=caller.request_key)
        return Reply(sentence(f"`{iid}`: {result.text}") if result is not None else answer(command, iid, None))

    async def _public(self, edit: bool, iid: str, caller: Caller, trigger_id: str) -> Reply:
        inc = await self._incidents()
        if edit and self.web is not None and trigger_id:
            draft = await inc.public_draft(iid)
            try:
                await self.web.views_open(trigger_id=trigger_id, view=modals.public_view(iid, draft.body,
                                                                                        draft.status.value))
                return Reply("", extra={"modal": True})
            except SLACK_ERRORS as exc:
                return Reply(f"Could not open the form ({slack_error(exc)}): type `/incident publish <text>`.")
        result = await inc.publish_public_update(iid, caller.actor, key=caller.request_key)
        return Reply(f"`{iid}`: published to the status page ({result.update.status.value}): {result.update.body}")

    async def _open_update_modal(self, trigger_id: str, iid: str) -> Reply:
        if self.web is None or not trigger_id:
            return Reply(f"Type `/incident update <text>` in the incident channel of `{iid}`.")
        try:
            await self.web.views_open(trigger_id=trigger_id, view=modals.update_view(iid))
        except SLACK_ERRORS as exc:
            return Reply(f"Could not open the form ({slack_error(exc)}): type `/incident update <text>`.")
        return Reply("", extra={"modal": True})

    async def _submission(self, payload: dict[str, Any], caller: Caller) -> tuple[Reply | None, dict[str, Any] | None]:
        view = payload.get("view") or {}
        given = modals.values(view)
        if not self._may_act(caller):
            return None, modals.errors(next(iter(given), "title"),
                                       "Slack could not say who you are: submit again in a moment."
                                       if caller.unchecked else "You are not in incidentflow's people config.")
        if view.get("callback_id") == render.UPDATE_VIEW:
            return None, await self._submit_update(str(view.get("private_metadata") or ""), given, caller)
        if view.get("callback_id") == render.PUBLIC_VIEW:
            text = (given.get("text") or "").strip()
            if not text:
                return None, modals.errors("text", "A public update needs text.")
            inc = await self._incidents()
            try:
                await inc.publish_public_update(str(view.get("private_metadata") or ""), caller.actor, text,
                                                key=caller.request_key)
            except CommandRejected as exc:
                return None, modals.errors("text", str(exc))
            return None, {}
        if view.get("callback_id") == render.DECLARE_VIEW:
            return await self._submit_declare(str(view.get("private_metadata") or ""), given, caller)
        return None, {}

    async def _submit_update(self, iid: str, given: dict[str, str], caller: Caller) -> dict[str, Any]:
        text = (given.get("text") or "").strip()
        if not text:
            return modals.errors("text", "A status update needs text.")
        try:
            inc = await self._incidents()
            await inc.post_status_update(iid, StatusUpdateInput(text=text, by=caller.actor), key=caller.request_key)
        except IncidentflowError as exc:
            return modals.errors("text", str(exc))
        except ValueError as exc:  # pydantic validation (e.g. too long)
            return modals.errors("text", first_error(exc))
        return {}

    async def _submit_declare(self, channel: str, given: dict[str, str],
                              caller: Caller) -> tuple[Reply | None, dict[str, Any]]:
        title = (given.get("title") or "").strip()
        if not title:
            return None, modals.errors("title", "A title is needed.")
        try:
            severity = Severity(given.get("severity") or "SEV3")
        except ValueError:
            return None, modals.errors("severity", "Choose a severity.")
        try:
            reply = await self._declare(title, caller, service=given.get("service") or None, severity=severity,
                                        description=given.get("description") or "")
        except Usage as exc:
            return None, modals.errors("service", str(exc))
        except IncidentflowError as exc:
            return None, modals.errors("title", str(exc))
        except ValueError as exc:  # pydantic validation: put the message on the field it is about
            return None, modals.errors(modals.field_of(exc, given), first_error(exc))
        if channel and self.web is not None:
            try:
                await self.web.chat_postEphemeral(channel=channel, user=caller.user_id, text=reply.text)
            except SLACK_ERRORS as exc:
                log.warning("could not tell %s about the declared incident: %s", caller.user_id, slack_error(exc))
        return reply, {}

    # ------------------------------------------------------------------ events
    async def event(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("type") == "url_verification":
            return {"challenge": body.get("challenge", "")}
        event = body.get("event") or {}
        if event.get("type") == "app_mention" and self.web is not None:
            try:
                await self.web.chat_postEphemeral(channel=event.get("channel", ""), user=event.get("user", ""),
                                                  text=help_text())
            except SLACK_ERRORS as exc:
                log.warning("could not answer an app mention: %s", slack_error(exc))
        return {}


def request_key(given: str | None, trigger_id: object) -> str | None:
    """The key of a Slack request: the transport's (the HTTP signature), else Slack's trigger id, which
    names one user action. None: nothing names it (the request is not deduplicated)."""
    if given:
        return given
    return f"slack-trigger:{trigger_id}" if isinstance(trigger_id, str) and trigger_id else None


def _button(action_id: str, caller: Caller) -> tuple[Command[Any], dict[str, Any]] | None:
    """The table command a summary-message button runs, with its arguments."""
    if action_id == render.ACK:
        return by_name("ack"), {}
    if action_id == render.CLAIM_IC:
        return by_name("role"), {"role": Role.ic, "person": caller.actor}
    if action_id == render.RESOLVE:
        return by_name("resolve"), {}
    return None
