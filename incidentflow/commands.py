"""Every incident command, defined once. The CLI subcommands, the HTTP routes and the Slack `/incident`
subcommands (with their help) are built from `COMMANDS`; each surface adds only its own syntax.

Adding a command is one `Command` here plus its workflow handler (and its `Incidents` method):

    Command("ack", AckInput, "acknowledge: stops the escalation", Incidents.acknowledge,
            route="acknowledge", aliases=("acknowledge",))

- `args` are the input model's fields a person types, in order. The CLI makes them positionals (or
  `--field` flags when `flag`); chat reads them word by word, the last one taking the rest of the line;
  HTTP takes the whole model as the JSON body.
- Who did it is never an argument: the CLI fills `by` from `--by`/INCIDENTFLOW_USER/the OS user, Slack from
  the caller's identity (the config person the Slack user maps to); over HTTP it is the token's person, or
  the body's `by` with the act-as scope (the contract since v1).
- `run` checks the people in the input against the door's config first, for every surface alike: the actor
  must be a config person (unless `slack.allow_everyone`), and a `Kind.person` argument (who is paged, who
  takes a role) always; names become person ids. A refusal is `InvalidInput` listing who is known.
- Updates answer with a `CommandResult`; a signal (`accepted` set) answers nothing, so the surfaces say
  `accepted` instead (HTTP: 202).
- Every surface sends an idempotency key with each command (HTTP: the `Idempotency-Key` header; the CLI: one
  per run; Slack: the request's signature), so a retried request is applied once and answered with the
  first result. A command no worker accepts within the deadline is `NoWorker` (HTTP 503, CLI exit 4).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from domain.config import IncidentflowConfig
from domain.models import (
    AckInput,
    CommandResult,
    EscalateInput,
    NoteInput,
    PageInput,
    PhaseInput,
    ReopenInput,
    ResolveInput,
    RoleInput,
    SeverityInput,
    StandDownInput,
    StatusUpdateInput,
)
from incidentflow.client import Incidents, InvalidInput, vet_person

M = TypeVar("M", bound=BaseModel)
ACTOR_FIELD = "by"


class Kind(Enum):
    """What an argument holds: each surface knows how to read one (argparse type, chat word)."""

    text = "text"
    person = "person"  # chat: `@user`, `me` or a config person; elsewhere as typed
    severity = "severity"
    phase = "phase"
    role = "role"
    level = "level"  # an escalation level, 1-based


class Access(Enum):
    """Who may run a command. Over HTTP every /v1 route needs the API token (when one is set)."""

    responder = "responder"  # changes the incident: in chat only people in the config (or `allow_everyone`)
    anyone = "anyone"  # reads only


@dataclass(frozen=True)
class Arg:
    field: str  # the input model's field
    kind: Kind = Kind.text
    flag: bool = False  # CLI: `--field VALUE` instead of a positional
    default: Any = None  # CLI and chat, when not given (HTTP: the model's own default)
    help: str | None = None  # CLI help of the argument
    label: str | None = None  # chat usage: `<label>` / `[label]` (default: by kind, else the field name)
    hint: str = ""  # chat: what to say when it is missing or not understood
    chat: bool = True  # chat reads it (False: CLI flag and HTTP field only; chat's last argument takes the rest)


@dataclass(frozen=True)
class Command(Generic[M]):
    name: str  # the CLI subcommand, and the command's name everywhere else unless renamed below
    model: type[M]
    help: str
    call: Callable[[Incidents, str, M], Awaitable[CommandResult | None]]
    args: tuple[Arg, ...] = ()
    route: str = ""  # HTTP: POST /v1/incidents/{incident_id}/<route> (default: name)
    chat: str = ""  # Slack: `/incident <chat>` (default: name)
    aliases: tuple[str, ...] = ()  # more words chat accepts for it
    access: Access = Access.responder
    needs_incident: bool = True
    accepted: str | None = None  # a signal: what the CLI and HTTP say once Temporal has it
    chat_accepted: str | None = None  # ... and chat (`{incident_id}` is filled in)

    @property
    def http_path(self) -> str:
        return f"/{{incident_id}}/{self.route or self.name}" if self.needs_incident else f"/{self.route or self.name}"

    @property
    def chat_name(self) -> str:
        return self.chat or self.name

    @property
    def operation(self) -> str:
        """The `Incidents` method it calls (also the HTTP operation name)."""
        return str(getattr(self.call, "__name__", self.name))

    def required(self, arg: Arg) -> bool:
        return arg.default is None and self.model.model_fields[arg.field].is_required()

    def input(self, values: Mapping[str, Any], by: str) -> M:
        """The input model from the arguments given (those left out take their defaults) and the actor.

        Raises pydantic's ValidationError (a ValueError) naming the bad field."""
        given = {a.field: values[a.field] if values.get(a.field) is not None else a.default for a in self.args}
        return self.model(**{k: v for k, v in given.items() if v is not None}, **{ACTOR_FIELD: by})

    def vet(self, config: IncidentflowConfig, cmd: M) -> M:
        """The input with its people checked against `config` and named by their ids (see the module doc).
        InvalidInput names every bad field."""
        people, problems = {}, []
        fields = [(ACTOR_FIELD, True), *((a.field, False) for a in self.args if a.kind is Kind.person)]
        for field, acting in fields:
            name = getattr(cmd, field, None)
            if not isinstance(name, str):
                continue
            try:
                people[field] = vet_person(config, field, name, acting=acting)
            except InvalidInput as exc:
                problems += exc.problems
        if problems:
            raise InvalidInput(problems)
        return cmd.model_copy(update=people)

    async def run(self, incidents: Incidents, incident_id: str, cmd: M,
                  key: str | None = None) -> CommandResult | None:
        """Vet it, then run it; `key` is the request's idempotency key (a retry with it is applied once). An
        id that is no incident's is IncidentNotFound before anything else is checked."""
        if self.needs_incident:
            await incidents.require_incident(incident_id)
        cmd = self.vet(incidents.config, cmd)
        # looked up on the instance rather than calling `self.call`, so a subclass or a test double answers
        method: Callable[..., Awaitable[CommandResult | None]] = getattr(incidents, self.operation)
        return await method(incident_id, cmd, key=key)


_ROLE_HINT = "Name a role (ic, lead, comms, scribe) and a person (`@user` or `me`)."

_TABLE = (  # not annotated, so mypy checks each entry's model against its `Incidents` method
    Command("ack", AckInput, "acknowledge: stops the escalation", Incidents.acknowledge,
            route="acknowledge", aliases=("acknowledge",)),
    Command("severity", SeverityInput, "change the severity", Incidents.set_severity, chat="sev",
            aliases=("severity",),
            args=(Arg("severity", Kind.severity, help="SEV1 (worst) to SEV4; 1-4 works too",
                      hint="Give a severity from 1 (worst) to 4."),
                  Arg("reason", flag=True, help="why (goes on the timeline)"))),
    Command("role", RoleInput, "assign a role", Incidents.assign_role, route="roles", aliases=("assign",),
            args=(Arg("role", Kind.role, help="ic, lead, comms or scribe", hint=_ROLE_HINT),
                  Arg("person", Kind.person, label="@user|me", help="who takes it: a person of the config",
                      hint=_ROLE_HINT))),
    Command("phase", PhaseInput, "move the incident on", Incidents.set_phase, chat="status", aliases=("phase",),
            args=(Arg("phase", Kind.phase, help="the phase to move to (`show` lists the allowed next ones)",
                      hint="Give a phase: investigating, identified, mitigating, monitoring."),
                  Arg("note", flag=True, help="what changed (goes on the timeline)"))),
    Command("update", StatusUpdateInput, "post a status update (resets the update timer)",
            Incidents.post_status_update, route="status-updates",
            args=(Arg("text", help="the update: impact, what is known, what is being done",
                      hint="A status update needs text."),
                  Arg("impact", flag=True, chat=False, help="who or what is affected, how much (with --theory "
                      "or --next-action: the stakeholders' template, also sent to the stakeholders)"),
                  Arg("theory", flag=True, chat=False, help="the current theory of the cause"),
                  Arg("next_action", flag=True, chat=False, help="what is being done next"),
                  Arg("next_update", flag=True, chat=False, help="when the next update comes (default: the "
                      "severity's cadence): 30m, 1h30m, 14:30 (UTC, within 12 h) or an ISO time; at most 24 h"))),
    Command("note", NoteInput, "add a note to the timeline", Incidents.add_note, route="notes",
            args=(Arg("text", help="the note", hint="A note needs text."),),
            accepted="note added", chat_accepted="Noted on `{incident_id}`."),
    Command("resolve", ResolveInput, "resolve the incident", Incidents.resolve,
            args=(Arg("summary", flag=True, help="what fixed it"),
                  Arg("root_cause", flag=True, chat=False, help="for the stakeholders' resolution message"))),
    Command("reopen", ReopenInput, "reopen a resolved incident", Incidents.reopen,
            args=(Arg("reason", flag=True, help="why it is back"),)),
    Command("standdown", StandDownInput, "stand down: it was not an incident", Incidents.stand_down,
            route="stand-down", aliases=("stand-down", "stood-down"),
            args=(Arg("reason", flag=True, help="why it was not an incident (required)",
                      hint="Standing down needs a reason."),)),
    Command("page", PageInput, "page someone into the incident", Incidents.page,
            args=(Arg("person", Kind.person, help="who to page: a person of the config",
                      hint="Name who to page (`@user`)."),
                  Arg("note", flag=True, help="what to tell them"))),
    Command("escalate", EscalateInput, "escalate now (default level 2)", Incidents.escalate,
            args=(Arg("level", Kind.level, flag=True, default=2,
                      help="a level of the incident's escalation policy, 1-based (default 2)",
                      hint="The level is a number, e.g. `escalate 3`."),)),
)

COMMANDS: tuple[Command[Any], ...] = _TABLE


def by_name(name: str) -> Command[Any]:
    """The command with this (CLI) name."""
    return next(c for c in COMMANDS if c.name == name)
