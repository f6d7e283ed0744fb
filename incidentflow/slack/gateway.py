"""Slack in: `/incident …` commands, buttons and modals → workflow updates and signals.

Transport-neutral: the HTTP routes (`incidentflow.api.slack`) and Socket Mode (`incidentflow.slack.socket`)
both hand payloads here after verifying them. Every answer is a `Reply` (ephemeral unless it says
otherwise); a rejected command gets the workflow validator's message and the command's usage.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from domain import blockkit as render
from domain.config import IncidentflowConfig
from domain.models import (
    AckInput,
    DeclareInput,
    EscalateInput,
    NoteInput,
    PageInput,
    Phase,
    PhaseInput,
    ReopenInput,
    ResolveInput,
    Role,
    RoleInput,
    Severity,
    SeverityInput,
    StandDownInput,
    StatusUpdateInput,
)
from domain.models.runbook import Decision
from domain.runbooks.loader import RunbookError
from domain.runbooks.render import ParamError, RenderError
from incidentflow.client import (
    CommandRejected,
    IncidentflowError,
    IncidentNotFound,
    Incidents,
    TemporalUnavailable,
)

log = logging.getLogger("incidentflow.slack")

_ID = re.compile(r"^incident-[a-z0-9][a-z0-9-]*$")
_CHANNEL_ID = re.compile(r"^[A-Z0-9]{2,32}$")  # Slack conversation ids (C…, G…, D…): safe to put in a query
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|([^>]*))?>$")
_PURPOSE_ID = re.compile(r"Incident (incident-[a-z0-9-]+) ")
_ROLE_WORDS = {"ic": Role.ic, "commander": Role.ic, "lead": Role.lead, "tech": Role.lead, "comms": Role.comms,
               "scribe": Role.scribe}
_STATUS_WORDS = ("investigating", "identified", "mitigating", "monitoring")
# What a Slack Web API call may raise: Slack's answer (SlackApiError), or no answer at all.
_SLACK_ERRORS = (SlackClientError, aiohttp.ClientError, TimeoutError, OSError)


@dataclass(frozen=True)
class Spec:
    usage: str
    help: str
    read_only: bool = False
    needs_incident: bool = True


COMMANDS: dict[str, Spec] = {
    "declare": Spec("declare [sev1-4] [service=NAME] <title>", "declare an incident (no arguments: a form)",
                    needs_incident=False),
    "ack": Spec("ack", "acknowledge: stops the escalation"),
    "sev": Spec("sev <1-4> [reason]", "change the severity"),
    "role": Spec("role <ic|lead|comms|scribe> <@user|me>", "assign a role"),
    "status": Spec("status <investigating|identified|mitigating|monitoring> [note]", "move the incident on"),
    "update": Spec("update <text>", "post a status update (resets the update timer)"),
    "note": Spec("note <text>", "add a note to the timeline"),
    "resolve": Spec("resolve [summary]", "resolve the incident"),
    "reopen": Spec("reopen [reason]", "reopen a resolved incident"),
    "standdown": Spec("standdown <reason>", "stand down: it was not an incident"),
    "page": Spec("page <@user> [note]", "page someone into the incident"),
    "escalate": Spec("escalate [level]", "escalate now (default level 2)"),
    "runbook": Spec("runbook [NAME [key=value …]]", "list the runbooks, or run one (changes wait for approval)"),
    "approve": Spec("approve <run-id> [comment]", "approve the step a runbook run waits on", needs_incident=False),
    "deny": Spec("deny <run-id> [reason]", "deny it: the run stops there", needs_incident=False),
    "timeline": Spec("timeline", "show the latest timeline events", read_only=True),
    "help": Spec("help", "this list", read_only=True, needs_incident=False),
}
ALIASES = {"acknowledge": "ack", "severity": "sev", "stand-down": "standdown", "stood-down": "standdown",
           "phase": "status", "assign": "role"}


class Usage(Exception):
    """Bad arguments: the message says what was wrong; the usage line is added for the reply."""


@dataclass
class Reply:
    text: str
    public: bool = False
    blocks: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"response_type": "in_channel" if self.public else "ephemeral", "text": self.text}
        if self.blocks:
            out["blocks"] = self.blocks
        out.update(self.extra)
        return out


@dataclass
class Caller:
    user_id: str
    user_name: str
    person: str | None  # config person id, when the Slack user maps to one

    @property
    def actor(self) -> str:
        return self.person or self.user_name or self.user_id


def help_text() -> str:
    lines = ["*`/incident` commands* (in an incident channel they act on its incident; elsewhere add the "
             "incident id after the command, e.g. `/incident ack incident-20261123-0815-checkout`):"]
    lines += [f"• `/incident {spec.usage}` — {spec.help}" for spec in COMMANDS.values()]
    return "\n".join(lines)


class SlackGateway:
    def __init__(self, incidents: Callable[[], Awaitable[Incidents]], config: Callable[[], IncidentflowConfig],
                 web: AsyncWebClient | None) -> None:
        self._incidents = incidents
        self._config = config
        self.web = web
        self._emails: dict[str, str] = {}  # Slack user id → email, as Slack answered (lookups that worked)
        self._channels: dict[str, str] = {}  # channel id → incident id

    # ------------------------------------------------------------------ who and where
    async def caller(self, user_id: str, user_name: str = "") -> Caller:
        return Caller(user_id=user_id, user_name=user_name, person=await self.person_for(user_id))

    async def person_for(self, user_id: str) -> str | None:
        """The config person for a Slack user: by `slack:` id, else by the email Slack has for them.

        The config is read on every call (it may be reloaded); only Slack's answers are cached, and a
        failed lookup is not, so a Slack hiccup never leaves a responder read-only until a restart.
        """
        if not user_id:
            return None
        cfg = self._config()
        found = next((p.id for p in cfg.people if p.slack == user_id), None)
        if found is None and any(p.email for p in cfg.people):
            email = await self._email_of(user_id)
            if email:
                found = next((p.id for p in cfg.people if p.email and p.email.lower() == email.lower()), None)
        return found

    async def _email_of(self, user_id: str) -> str:
        if user_id in self._emails:
            return self._emails[user_id]
        if self.web is None:
            return ""
        try:
            info = await self.web.users_info(user=user_id)
        except _SLACK_ERRORS as exc:
            log.warning("Slack users.info for %s failed: %s", user_id, _slack_error(exc))
            return ""
        user = (info.data or {}).get("user") if isinstance(info.data, dict) else None
        profile = (user or {}).get("profile") or {}
        email = str(profile.get("email") or "")
        self._emails[user_id] = email
        return email

    async def person_arg(self, text: str, caller: Caller) -> str:
        """`@user` (Slack escapes it as `<@U…|name>`), `me`, or a config person id/name."""
        if text.lower() in ("me", "myself"):
            return caller.actor
        m = _MENTION.match(text)
        if m:
            person = await self.person_for(m.group(1))
            return person or (m.group(2) or m.group(1))
        name = text.lstrip("@")
        known = self._config().person(name)
        return known.id if known else name

    async def incident_for_channel(self, channel_id: str) -> str | None:
        if not channel_id or not _CHANNEL_ID.match(channel_id):
            return None
        if channel_id in self._channels:
            return self._channels[channel_id]
        found: str | None = None
        incidents = await self._incidents()
        try:
            found = await incidents.find_by_channel(channel_id)
        except IncidentflowError as exc:  # visibility trouble: Slack may still know (the channel's purpose)
            log.warning("finding the incident of channel %s in visibility failed: %s", channel_id, exc)
        if found is None and self.web is not None:  # visibility lags a second behind: ask Slack
            try:
                info = await self.web.conversations_info(channel=channel_id)
                data = info.data if isinstance(info.data, dict) else {}
                purpose = str(((data.get("channel") or {}).get("purpose") or {}).get("value") or "")
                m = _PURPOSE_ID.search(purpose + " ")
                found = m.group(1) if m else None
            except _SLACK_ERRORS:
                found = None
        if found:
            self._channels[channel_id] = found
        return found

    # ------------------------------------------------------------------ slash commands
    async def command(self, form: dict[str, str]) -> Reply:
        text = (form.get("text") or "").strip()
        caller = await self.caller(form.get("user_id", ""), form.get("user_name", ""))
        name, rest = _first_word(text)
        name = ALIASES.get(name.lower(), name.lower()) or "help"
        spec = COMMANDS.get(name)
        if spec is None:
            return Reply(f"Unknown command `{name}`.\n{help_text()}")
        if name == "help":
            return Reply(help_text())
        if not spec.read_only and caller.person is None and not self._config().slack.allow_everyone:
            return Reply(f"<@{caller.user_id}> is not in incidentflow's people (add `slack: {caller.user_id}` or "
                         "your email to your entry in the config), so only read-only commands work for you: "
                         "`/incident timeline`, `/incident help`.")
        if name == "declare":
            if not rest:
                return await self.open_declare_modal(form.get("trigger_id", ""), form.get("channel_id", ""))
            return await self._guard(name, lambda: self.declare(rest, caller))
        if name in ("approve", "deny"):
            return await self._guard(name, lambda: self.decide(name == "approve", rest, caller))
        if name == "runbook" and not rest:
            return await self._guard(name, self.list_runbooks)

        async def act() -> Reply:  # finding the channel's incident asks Temporal: guarded like the command
            incident_id, args = await self._target(rest, form.get("channel_id", ""))
            if incident_id is None:
                return Reply(f"This channel is not an incident channel: add the incident id, e.g. "
                             f"`/incident {name} incident-20261123-0815-checkout`.\nUsage: `/incident {spec.usage}`")
            return await self.run(name, incident_id, args, caller)
        return await self._guard(name, act)

    async def _target(self, rest: str, channel_id: str) -> tuple[str | None, str]:
        first, after = _first_word(rest)
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
        except TemporalUnavailable:
            return Reply("incidentflow cannot reach Temporal right now; nothing was changed. Try again shortly.")
        except IncidentflowError as exc:
            return Reply(f"Failed: {exc}")
        except ValueError as exc:  # pydantic validation of the command input
            return Reply(f"{_first_error(exc)}\n{usage}")

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
        iid = await incidents.declare(cmd)
        return Reply(f"<@{caller.user_id}> declared *{cmd.severity.value}* `{iid}`: {title}. The incident channel "
                     "is being created; responders are paged per the service's escalation policy.", public=True,
                     extra={"incident_id": iid})

    async def run(self, name: str, iid: str, rest: str, caller: Caller) -> Reply:
        inc = await self._incidents()
        by = caller.actor
        if name == "timeline":
            state = await inc.get(iid)
            events = [(e.at, e.kind.value, e.actor, e.text) for e in state.timeline]
            return Reply(f"*Timeline of `{iid}`* ({state.severity.value}, {state.phase.value}):\n"
                         + render.timeline_text(events))
        if name == "ack":
            result = await inc.acknowledge(iid, AckInput(by=by))
        elif name == "sev":
            level, reason = _first_word(rest)
            if not re.fullmatch(r"(?i)(sev)?[1-4]", level):
                raise Usage("Give a severity from 1 (worst) to 4.")
            result = await inc.set_severity(iid, SeverityInput(severity=Severity.parse(level), by=by,
                                                               reason=reason))
        elif name == "role":
            parts = rest.split(None, 1)
            if len(parts) < 2 or parts[0].lower() not in _ROLE_WORDS:
                raise Usage("Name a role (ic, lead, comms, scribe) and a person (`@user` or `me`).")
            person = await self.person_arg(parts[1].strip(), caller)
            result = await inc.assign_role(iid, RoleInput(role=_ROLE_WORDS[parts[0].lower()], person=person, by=by))
        elif name == "status":
            phase, note = _first_word(rest)
            if phase.lower() not in _STATUS_WORDS:
                raise Usage(f"Give a phase: {', '.join(_STATUS_WORDS)}.")
            result = await inc.set_phase(iid, PhaseInput(phase=Phase(phase.lower()), by=by, note=note))
        elif name == "update":
            if not rest:
                raise Usage("A status update needs text.")
            result = await inc.post_status_update(iid, StatusUpdateInput(text=rest, by=by))
        elif name == "note":
            if not rest:
                raise Usage("A note needs text.")
            await inc.add_note(iid, NoteInput(text=rest, by=by))
            return Reply(f"Noted on `{iid}`.")
        elif name == "resolve":
            result = await inc.resolve(iid, ResolveInput(by=by, summary=rest))
        elif name == "reopen":
            result = await inc.reopen(iid, ReopenInput(by=by, reason=rest))
        elif name == "standdown":
            if not rest:
                raise Usage("Standing down needs a reason.")
            result = await inc.stand_down(iid, StandDownInput(by=by, reason=rest))
        elif name == "page":
            who, note = _first_word(rest)
            if not who:
                raise Usage("Name who to page (`@user`).")
            person = await self.person_arg(who, caller)
            result = await inc.page(iid, PageInput(person=person, by=by, note=note))
        elif name == "runbook":
            return await self.run_runbook(iid, rest, caller)
        elif name == "escalate":
            if rest and not rest.strip().isdigit():
                raise Usage("The level is a number, e.g. `escalate 3`.")
            result = await inc.escalate(iid, EscalateInput(level=int(rest.strip()) if rest else 2, by=by))
        else:  # pragma: no cover - COMMANDS and this dispatch are kept together
            raise Usage(f"`{name}` is not implemented")
        warn = "".join(f"\n⚠️ {w}" for w in result.warnings)
        return Reply(f"`{iid}`: {result.text}.{warn}")

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
            result = await inc.run_runbook(iid, words[0], params, caller.actor)
        except (ParamError, RenderError) as exc:
            raise Usage(str(exc)) from None
        return Reply(f"`{iid}`: runbook `{words[0]}` started as `{result.ref}`. Steps that change things wait "
                     f"for approval: the Approve button, or `/incident approve {result.ref}`.")

    async def decide(self, approve: bool, rest: str, caller: Caller) -> Reply:
        run_id, comment = _first_word(rest)
        if not run_id:
            raise Usage("Give the run id (it is in the approval request).")
        inc = await self._incidents()
        text = await inc.decide_runbook(run_id, Decision(approve=approve, by=caller.actor, comment=comment))
        return Reply(f"`{run_id}`: {text}.")

    # ------------------------------------------------------------------ modals and buttons
    async def open_declare_modal(self, trigger_id: str, channel_id: str) -> Reply:
        if self.web is None or not trigger_id:
            return Reply("Give a title: `/incident declare [sev1-4] [service=NAME] <title>`.")
        services = self._config().services
        service_element: dict[str, Any]
        if services:
            service_element = {"type": "static_select", "action_id": "value",
                               "options": [_option(s.name, s.description or s.name) for s in services[:100]]}
        else:
            service_element = {"type": "plain_text_input", "action_id": "value"}
        view = {
            "type": "modal", "callback_id": render.DECLARE_VIEW, "private_metadata": channel_id,
            "title": {"type": "plain_text", "text": "Declare an incident"},
            "submit": {"type": "plain_text", "text": "Declare"},
            "blocks": [
                {"type": "input", "block_id": "title", "label": {"type": "plain_text", "text": "Title"},
                 "element": {"type": "plain_text_input", "action_id": "value", "max_length": 200}},
                {"type": "input", "block_id": "severity", "label": {"type": "plain_text", "text": "Severity"},
                 "element": {"type": "static_select", "action_id": "value", "initial_option": _option("SEV3", "SEV3"),
                             "options": [_option(s.value, s.value) for s in Severity]}},
                {"type": "input", "block_id": "service", "optional": True,
                 "label": {"type": "plain_text", "text": "Service"}, "element": service_element},
                {"type": "input", "block_id": "description", "optional": True,
                 "label": {"type": "plain_text", "text": "What is happening?"},
                 "element": {"type": "plain_text_input", "action_id": "value", "multiline": True}},
            ],
        }
        try:
            await self.web.views_open(trigger_id=trigger_id, view=view)
        except _SLACK_ERRORS as exc:
            return Reply(f"Could not open the form ({_slack_error(exc)}); type "
                         "`/incident declare [sev1-4] [service=NAME] <title>` instead.")
        return Reply("", extra={"modal": True})

    async def interaction(self, payload: dict[str, Any]) -> tuple[Reply | None, dict[str, Any] | None]:
        """→ (reply for the user, HTTP body for Slack). View submissions answer in the body."""
        kind = payload.get("type")
        user = payload.get("user") or {}
        caller = await self.caller(str(user.get("id", "")), str(user.get("username") or user.get("name") or ""))
        if kind == "view_submission":
            return await self._submission(payload, caller)
        if kind != "block_actions" or not payload.get("actions"):
            return None, None
        action = payload["actions"][0]
        action_id, iid = action.get("action_id"), str(action.get("value") or "")
        if caller.person is None and not self._config().slack.allow_everyone:
            return Reply(f"<@{caller.user_id}> is not in incidentflow's people: buttons are for responders."), None
        try:
            if action_id == render.POST_UPDATE:
                return await self._open_update_modal(str(payload.get("trigger_id", "")), iid), None
            if action_id in (render.APPROVE, render.DENY):
                inc = await self._incidents()
                text = await inc.decide_runbook(iid, Decision(approve=action_id == render.APPROVE, by=caller.actor))
                return Reply(f"`{iid}`: {text}."), None
            if action_id not in (render.ACK, render.CLAIM_IC, render.RESOLVE):
                return None, None
            inc = await self._incidents()
            if action_id == render.ACK:
                result = await inc.acknowledge(iid, AckInput(by=caller.actor))
            elif action_id == render.CLAIM_IC:
                result = await inc.assign_role(iid, RoleInput(role=Role.ic, person=caller.actor, by=caller.actor))
            else:
                result = await inc.resolve(iid, ResolveInput(by=caller.actor))
        except CommandRejected as exc:
            return Reply(f"Rejected: {exc}"), None
        except IncidentflowError as exc:
            return Reply(f"Failed: {exc}"), None
        except ValueError as exc:  # pydantic validation of the command input
            return Reply(f"Failed: {_first_error(exc)}"), None
        return Reply(f"`{iid}`: {result.text}."), None

    async def _open_update_modal(self, trigger_id: str, iid: str) -> Reply:
        if self.web is None or not trigger_id:
            return Reply(f"Type `/incident update <text>` in the incident channel of `{iid}`.")
        view = {"type": "modal", "callback_id": render.UPDATE_VIEW, "private_metadata": iid,
                "title": {"type": "plain_text", "text": "Post a status update"},
                "submit": {"type": "plain_text", "text": "Post"},
                "blocks": [{"type": "input", "block_id": "text",
                            "label": {"type": "plain_text", "text": "Status, impact, theory, next action"},
                            "element": {"type": "plain_text_input", "action_id": "value", "multiline": True}}]}
        try:
            await self.web.views_open(trigger_id=trigger_id, view=view)
        except _SLACK_ERRORS as exc:
            return Reply(f"Could not open the form ({_slack_error(exc)}): type `/incident update <text>`.")
        return Reply("", extra={"modal": True})

    async def _submission(self, payload: dict[str, Any], caller: Caller) -> tuple[Reply | None, dict[str, Any] | None]:
        view = payload.get("view") or {}
        values = _values(view)
        callback = view.get("callback_id")
        if caller.person is None and not self._config().slack.allow_everyone:
            return None, {"response_action": "errors", "errors": {
                next(iter(values), "title"): "You are not in incidentflow's people config."}}
        if callback == render.UPDATE_VIEW:
            text = (values.get("text") or "").strip()
            if not text:
                return None, {"response_action": "errors", "errors": {"text": "A status update needs text."}}
            try:
                inc = await self._incidents()
                await inc.post_status_update(str(view.get("private_metadata") or ""),
                                             StatusUpdateInput(text=text, by=caller.actor))
            except IncidentflowError as exc:
                return None, {"response_action": "errors", "errors": {"text": str(exc)[:150]}}
            except ValueError as exc:  # pydantic validation (e.g. too long)
                return None, {"response_action": "errors", "errors": {"text": _first_error(exc)[:150]}}
            return None, {}
        if callback == render.DECLARE_VIEW:
            title = (values.get("title") or "").strip()
            if not title:
                return None, {"response_action": "errors", "errors": {"title": "A title is needed."}}
            try:
                severity = Severity(values.get("severity") or "SEV3")
            except ValueError:
                return None, {"response_action": "errors", "errors": {"severity": "Choose a severity."}}
            try:
                reply = await self._declare(title, caller, service=values.get("service") or None,
                                            severity=severity, description=values.get("description") or "")
            except Usage as exc:
                return None, {"response_action": "errors", "errors": {"service": str(exc)[:150]}}
            except IncidentflowError as exc:
                return None, {"response_action": "errors", "errors": {"title": str(exc)[:150]}}
            except ValueError as exc:  # pydantic validation: put the message on the field it is about
                return None, {"response_action": "errors", "errors": {_field_of(exc, values): _first_error(exc)[:150]}}
            channel = str(view.get("private_metadata") or "")
            if channel and self.web is not None:
                try:
                    await self.web.chat_postEphemeral(channel=channel, user=caller.user_id, text=reply.text)
                except _SLACK_ERRORS as exc:
                    log.warning("could not tell %s about the declared incident: %s", caller.user_id,
                                _slack_error(exc))
            return reply, {}
        return None, {}

    # ------------------------------------------------------------------ events
    async def event(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("type") == "url_verification":
            return {"challenge": body.get("challenge", "")}
        event = body.get("event") or {}
        if event.get("type") == "app_mention" and self.web is not None:
            try:
                await self.web.chat_postEphemeral(channel=event.get("channel", ""), user=event.get("user", ""),
                                                  text=help_text())
            except _SLACK_ERRORS as exc:
                log.warning("could not answer an app mention: %s", _slack_error(exc))
        return {}


def _option(value: str, text: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text[:75]}, "value": value}


def _values(view: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for block_id, actions in ((view.get("state") or {}).get("values") or {}).items():
        for element in actions.values():
            value = element.get("value")
            if value is None and element.get("selected_option"):
                value = element["selected_option"].get("value")
            out[block_id] = str(value) if value is not None else ""
    return out


def _first_word(text: str) -> tuple[str, str]:
    """The first word and the rest, both stripped; any whitespace (a newline, a tab) separates."""
    parts = text.strip().split(None, 1)
    return (parts[0], parts[1].strip()) if len(parts) == 2 else (parts[0] if parts else "", "")


def _slack_error(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error"))
    return type(exc).__name__


def _field_of(exc: ValueError, values: dict[str, str]) -> str:
    """The modal block a validation error is about (DeclareInput's fields are named like the blocks)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        loc = errors()[0].get("loc", ())
        if loc and str(loc[0]) in values:
            return str(loc[0])
    return "title"


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg')}"
    return str(exc)
