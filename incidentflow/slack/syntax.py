"""`/incident …` words: the chat syntax of every command, its usage line and the help.

The incident commands come from `incidentflow.commands`: their arguments are read word by word, the
last one taking the rest of the line (`sev 1 all regions down` → severity 1, reason "all regions down").
The few commands only chat has (declare with its form, runbooks, approvals, timeline, help) are listed here.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from domain.models import CommandResult, Phase, Role, Severity
from domain.text import sentence
from incidentflow.commands import COMMANDS as TABLE
from incidentflow.commands import Access, Arg, Command, Kind
from incidentflow.slack.learning import HELP, WORDS
from incidentflow.slack.reply import Caller, Usage, first_word

ROLE_WORDS = {"ic": Role.ic, "commander": Role.ic, "lead": Role.lead, "tech": Role.lead, "comms": Role.comms,
              "scribe": Role.scribe}
STATUS_WORDS = ("investigating", "identified", "mitigating", "monitoring")
_LABELS = {Kind.severity: "1-4", Kind.role: "ic|lead|comms|scribe", Kind.phase: "|".join(STATUS_WORDS),
           Kind.person: "@user"}
PersonReader = Callable[[str, Caller], Awaitable[str]]  # `@user`, `me` or a name → the config person


@dataclass(frozen=True)
class Spec:
    usage: str
    help: str
    read_only: bool = False
    needs_incident: bool = True
    command: Command[Any] | None = None  # the table command it runs (None: a chat-only command)


def chat_args(command: Command[Any]) -> tuple[Arg, ...]:
    return tuple(a for a in command.args if a.chat)


def usage(command: Command[Any]) -> str:
    words = [command.chat_name]
    for arg in chat_args(command):
        label = arg.label or _LABELS.get(arg.kind, arg.field)
        words.append(f"<{label}>" if command.required(arg) else f"[{label}]")
    return " ".join(words)


def _spec(command: Command[Any]) -> Spec:
    return Spec(usage(command), command.help, read_only=command.access is Access.anyone,
                needs_incident=command.needs_incident, command=command)


COMMANDS: dict[str, Spec] = {
    "declare": Spec("declare [sev1-4] [service=NAME] <title>", "declare an incident (no arguments: a form)",
                    needs_incident=False),
    **{command.chat_name: _spec(command) for command in TABLE},
    "runbook": Spec("runbook [NAME [key=value …]]", "list the runbooks, or run one (changes wait for approval)"),
    "publish": Spec("publish [text]", "publish the public status page update (the draft, or your text); "
                                      "comms lead or IC"),
    "approve": Spec("approve <run-id> [comment]", "approve the step a runbook run waits on", needs_incident=False),
    "deny": Spec("deny <run-id> [reason]", "deny it: the run stops there", needs_incident=False),
    "timeline": Spec("timeline", "show the latest timeline events", read_only=True),
    **{word: Spec(*HELP[word]) for word in WORDS},  # postmortems and action items (incidentflow.slack.learning)
    "help": Spec("help", "this list", read_only=True, needs_incident=False),
}
ALIASES = {alias: command.chat_name for command in TABLE for alias in command.aliases}


def help_text() -> str:
    lines = ["*`/incident` commands* (in an incident channel they act on its incident; elsewhere add the "
             "incident id after the command, e.g. `/incident ack incident-20261123-0815-checkout`):"]
    lines += [f"• `/incident {spec.usage}` — {spec.help}" for spec in COMMANDS.values()]
    return "\n".join(lines)


def resolve_name(word: str) -> str:
    """The command a word names ("" → help); unknown words come back as they are (lowercased)."""
    name = word.lower()
    return ALIASES.get(name, name) or "help"


async def read_args(command: Command[Any], rest: str, caller: Caller, person: PersonReader) -> dict[str, Any]:
    """The command's arguments from the words after it; `Usage` (with the argument's hint) when one is
    missing or not understood."""
    values: dict[str, Any] = {}
    args = chat_args(command)
    for i, arg in enumerate(args):
        word, rest = (rest.strip(), "") if i == len(args) - 1 else first_word(rest)
        if not word:
            if command.required(arg):
                raise Usage(arg.hint)
            continue
        value = await person(word, caller) if arg.kind is Kind.person else _read(arg.kind, word)
        if value is None:
            raise Usage(arg.hint)
        values[arg.field] = value
    return values


def _read(kind: Kind, word: str) -> Any:
    if kind is Kind.severity:
        return Severity.parse(word) if re.fullmatch(r"(?i)(sev)?[1-4]", word) else None
    if kind is Kind.phase:
        return Phase(word.lower()) if word.lower() in STATUS_WORDS else None
    if kind is Kind.role:
        return ROLE_WORDS.get(word.lower())
    if kind is Kind.level:
        return int(word) if re.fullmatch(r"[0-9]+", word) else None
    return word


def answer(command: Command[Any], incident_id: str, result: CommandResult | None) -> str:
    if result is None:
        if command.chat_accepted:
            return command.chat_accepted.format(incident_id=incident_id)
        return f"`{incident_id}`: {command.accepted}."
    warn = "".join(f"\n⚠️ {w}" for w in result.warnings)
    return f"`{incident_id}`: {sentence(result.text)}{warn}"
