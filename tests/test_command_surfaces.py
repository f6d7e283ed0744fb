"""The CLI, the HTTP API and Slack offer the same incident commands: the ones in `incidentflow.commands`.

Each surface is read the way its users see it (argparse's subcommands, the app's OpenAPI, the `/incident help`
text), not from the table, and then compared with the table. A fake `Incidents` shows that one command
given on each surface makes the same call with the same input model. No Temporal needed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

from domain.config import IncidentflowConfig, Settings, SlackConfig
from domain.models import CommandResult, NoteInput, Phase, Role, Severity
from incidentflow import cli
from incidentflow.api import create_app
from incidentflow.api.incidents import add_command as add_route
from incidentflow.cli import incidents as cli_incidents
from incidentflow.cli.parser import add_command as add_subcommand
from incidentflow.cli.parser import build_parser
from incidentflow.client import Incidents
from incidentflow.commands import ACTOR_FIELD, COMMANDS, Arg, Command, Kind
from incidentflow.slack.gateway import SlackGateway
from incidentflow.slack.syntax import help_text

# what each surface has besides the table's commands (each shapes these itself)
CLI_OWN = {"postmortem", "action", "archive", "report", "dev", "worker", "api", "temporal", "handoff", "config", "oncall", "drill", "runbook", "declare", "list",
           "statuspage", "maintenance",
           "show", "timeline"}
HTTP_OWN = {"runbooks", "public-updates", "postmortem", "action-items"}  # POST /v1/incidents/{incident_id}/runbooks, …/public-updates (status page)
SLACK_OWN = {"declare", "runbook", "publish", "approve", "deny", "timeline", "help", "postmortem", "action"}
IID = "incident-20261123-0815-checkout"


def _subcommands() -> argparse._SubParsersAction:  # type: ignore[type-arg]
    return next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))


def cli_commands() -> dict[str, argparse.ArgumentParser]:
    return dict(_subcommands().choices)


def cli_help() -> dict[str, str]:
    """`incidentflow --help`'s one line per command."""
    return {a.dest: str(a.help) for a in _subcommands()._choices_actions}


def http_commands() -> dict[str, dict[str, Any]]:
    """POST /v1/incidents/{incident_id}/<segment> → its OpenAPI operation."""
    paths = create_app(Settings()).openapi()["paths"]
    found = {}
    for path, ops in paths.items():
        m = re.fullmatch(r"/v1/incidents/\{incident_id\}/([a-z-]+)", path)
        if m and "post" in ops:
            found[m.group(1)] = ops["post"]
    return found


def slack_commands() -> dict[str, tuple[str, str]]:
    """`/incident <word> …` → (its usage, its help), as the help reply lists them."""
    lines = re.findall(r"^• `/incident (([a-z-]+)[^`]*)` — (.*)$", help_text(), re.M)
    return {word: (usage, help_) for usage, word, help_ in lines}


def test_every_surface_lists_the_table_commands_and_only_those() -> None:
    assert set(cli_commands()) == {c.name for c in COMMANDS} | CLI_OWN
    assert set(http_commands()) == {c.http_path.rsplit("/", 1)[1] for c in COMMANDS} | HTTP_OWN
    assert set(slack_commands()) == {c.chat_name for c in COMMANDS} | SLACK_OWN
    assert len({c.name for c in COMMANDS}) == len({c.chat_name for c in COMMANDS}) == len(
        {c.http_path for c in COMMANDS}) == len(COMMANDS), "names are unique on every surface"


def test_the_table_is_well_formed() -> None:
    words: list[str] = []
    for command in COMMANDS:
        fields = command.model.model_fields
        assert ACTOR_FIELD in fields, f"{command.name}: who did it goes in `{ACTOR_FIELD}`"
        assert all(a.field in fields and a.field != ACTOR_FIELD for a in command.args), command.name
        assert callable(getattr(Incidents, command.operation, None)), command.operation
        assert (command.accepted is None) == (command.chat_accepted is None), command.name
        words += [command.chat_name, *command.aliases]
    assert len(words) == len(set(words)), "a chat word names one command"
    assert not set(words) & SLACK_OWN


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_each_surface_takes_the_commands_input(command: Command[Any]) -> None:
    # CLI: the id, the positionals in order, the flags and --by; the table's help
    parser = cli_commands()[command.name]
    positionals = [a.dest for a in parser._actions if not a.option_strings]
    assert positionals == ["id", *[a.field for a in command.args if not a.flag]]
    flags = {s for a in parser._actions for s in a.option_strings} - {"-h", "--help"}
    assert flags == {"--by", *[f"--{a.field.replace('_', '-')}" for a in command.args if a.flag]}
    assert cli_help()[command.name] == command.help

    # HTTP: the input model as the JSON body, its answer and status
    op = http_commands()[command.http_path.rsplit("/", 1)[1]]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": f"#/components/schemas/{command.model.__name__}"}
    assert set(op["responses"]) >= {"202" if command.accepted else "200", "404", "409", "422", "503"}
    assert op["operationId"].startswith(command.operation + "_v1_incidents")

    # Slack: the help line and the usage (required <…>, optional […])
    usage, help_ = slack_commands()[command.chat_name]
    assert help_ == command.help
    spoken = [a for a in command.args if a.chat]  # flags chat does not read (`chat=False`) are CLI/HTTP only
    assert len(usage.split()) == 1 + len(spoken)
    optional = [a.field for a in spoken if not command.required(a)]
    assert [w.startswith("[") for w in usage.split()[1:]] == [a.field in optional for a in spoken]


# ---------------------------------------------------------------------------------------------- same call


PEOPLE = IncidentflowConfig.model_validate({"people": [{"id": "pat", "name": "Pat", "slack": "UPAT0001"},
                                                       {"id": "bob", "name": "Bob Okafor"}]})


class FakeIncidents:
    """Records what each table command asks of `Incidents`; the door's config knows pat and bob."""

    def __init__(self, config: IncidentflowConfig = PEOPLE) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.keys: list[str | None] = []  # the idempotency key each call came with
        self.settings = Settings()
        self.config = config

    async def require_incident(self, incident_id: str) -> None:
        assert incident_id == IID

    def __getattr__(self, operation: str) -> Any:
        async def call(incident_id: str, cmd: Any, key: str | None = None) -> CommandResult | None:
            self.calls.append((operation, incident_id, cmd.model_dump()))
            self.keys.append(key)
            command = next(c for c in COMMANDS if c.operation == operation)
            if command.accepted:
                return None
            return CommandResult(incident_id=incident_id, phase=Phase.investigating, severity=Severity.SEV2,
                                 text="done")
        if operation.startswith("_"):
            raise AttributeError(operation)
        return call


# one sample per kind: (CLI word, chat word, JSON value)
SAMPLES: dict[Kind, tuple[str, str, Any]] = {
    Kind.severity: ("sev1", "1", "SEV1"), Kind.phase: ("mitigating", "mitigating", "mitigating"),
    Kind.role: ("lead", "lead", Role.lead.value), Kind.level: ("3", "3", 3), Kind.person: ("bob", "bob", "bob"),
}


def sample(arg: Arg, last: bool) -> tuple[str, str, Any]:
    text = "rolled back the deploy" if last else "rollback"
    return SAMPLES.get(arg.kind, (text, text, text))


def surface_inputs(command: Command[Any]) -> tuple[list[str], str, dict[str, Any]]:
    argv, words, body = [command.name, IID, "--by", "pat"], [command.chat_name, IID], {"by": "pat"}
    spoken = [a for a in command.args if a.chat]  # chat cannot give the others: compare what all three can
    for i, arg in enumerate(spoken):
        cli_word, chat_word, value = sample(arg, i == len(spoken) - 1)
        argv += [f"--{arg.field.replace('_', '-')}", cli_word] if arg.flag else [cli_word]
        words.append(chat_word)
        body[arg.field] = value
    return argv, " ".join(words), body


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
async def test_a_command_makes_the_same_call_from_every_surface(command: Command[Any],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    argv, text, body = surface_inputs(command)
    fake = FakeIncidents()

    async def incidents(*_: Any) -> Any:
        return fake

    monkeypatch.setattr(cli_incidents, "open_incidents", incidents)
    assert await asyncio.to_thread(cli.main, argv) == 0, argv

    app = create_app(Settings(), config=IncidentflowConfig())
    app.state.incidents = incidents
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        r = await http.post(f"/v1/incidents{command.http_path.replace('{incident_id}', IID)}", json=body,
                            headers={"Idempotency-Key": "http-key-1"})
    assert r.status_code == (202 if command.accepted else 200), r.text

    gateway = SlackGateway(incidents, lambda: fake.config, None)
    reply = await gateway.command({"text": text, "user_id": "UPAT0001", "user_name": "pat", "channel_id": "C1",
                                   "trigger_id": "13345224609.738474920.8088930838d88f008e0"})
    said = (command.chat_accepted or "").format(incident_id=IID) if command.accepted else f"`{IID}`: done."
    assert reply.text == said, reply.text

    assert len(fake.calls) == 3 and fake.calls[0] == fake.calls[1] == fake.calls[2], fake.calls
    assert fake.calls[0][:2] == (command.operation, IID) and fake.calls[0][2]["by"] == "pat"
    cli_key, http_key, slack_key = fake.keys  # every surface names its request, so a retry is applied once
    assert cli_key and http_key == "http-key-1" and slack_key == "slack-trigger:13345224609.738474920.8088930838d88f008e0"


def test_a_command_without_an_incident_id_is_built_too() -> None:
    """`needs_incident=False`: no id argument on the CLI, no `{incident_id}` in the route."""
    broadcast = Command("broadcast", NoteInput, "tell everyone", Incidents.add_note, needs_incident=False,
                        args=(Arg("text", hint="Say what."),), accepted="sent", chat_accepted="Sent.")
    parser = argparse.ArgumentParser(prog="incidentflow")
    add_subcommand(parser.add_subparsers(dest="command"), broadcast)
    args = parser.parse_args(["broadcast", "maintenance at 10:00", "--by", "pat"])
    assert (args.command, args.text, args.by) == ("broadcast", "maintenance at 10:00", "pat")
    assert not hasattr(args, "id")
    router = APIRouter(prefix="/v1/incidents")
    add_route(router, broadcast)
    route = router.routes[-1]
    assert isinstance(route, APIRoute)
    assert (route.path, route.status_code, route.dependant.path_params) == ("/v1/incidents/broadcast", 202, [])


# ---------------------------------------------------------------------------------------------- who is known


async def on_every_surface(fake: FakeIncidents, argv: list[str], text: str, body: dict[str, Any], path: str,
                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                           slack_user: str = "UPAT0001") -> tuple[tuple[int, str], httpx.Response, str]:
    """One command given on the CLI, over HTTP and in Slack, against `fake`: (CLI exit and stderr, the HTTP
    answer, the Slack reply)."""
    async def incidents(*_: Any) -> Any:
        return fake

    monkeypatch.setattr(cli_incidents, "open_incidents", incidents)
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, argv)
    err = capsys.readouterr().err
    app = create_app(Settings(), config=fake.config)
    app.state.incidents = incidents
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        answer = await http.post(f"/v1/incidents/{IID}/{path}", json=body)
    reply = await SlackGateway(incidents, lambda: fake.config, None).command(
        {"text": text, "user_id": slack_user, "user_name": "someone", "channel_id": "C1"})
    return (code, err), answer, reply.text


KNOWN = "is not one of incidentflow's people (known: pat, bob)"


@pytest.mark.parametrize("argv, text, body, path, field", [
    (["page", IID, "zed", "--by", "pat"], f"page {IID} zed", {"person": "zed", "by": "pat"}, "page", "person"),
    (["role", IID, "ic", "zed", "--by", "pat"], f"role {IID} ic zed", {"role": "ic", "person": "zed", "by": "pat"},
     "roles", "person"),
], ids=["page", "role"])
async def test_an_unknown_person_is_refused_alike_everywhere(argv: list[str], text: str, body: dict[str, Any],
                                                             path: str, field: str, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeIncidents()
    (code, err), answer, reply = await on_every_surface(fake, argv, text, body, path, monkeypatch, capsys)
    problem = f"{field}: 'zed' {KNOWN}"
    assert code == 1 and err == f"error: {problem}\n", err
    assert answer.status_code == 422 and answer.json() == {"error": problem, "fields": [problem]}, answer.text
    assert reply.startswith(f"Rejected: {problem}\nUsage: `/incident "), reply
    assert fake.calls == [], "nothing reached the incident"


async def test_an_unknown_actor_is_refused_and_the_cli_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeIncidents()
    (code, err), answer, reply = await on_every_surface(fake, ["ack", IID, "--by", "zed"], f"ack {IID}", {"by": "zed"},
                                                        "acknowledge", monkeypatch, capsys, slack_user="UZED0001")
    assert code == 1 and err == f"error: by: 'zed' (--by) {KNOWN}: give --by one of them\n", err
    assert answer.status_code == 422 and answer.json()["fields"] == [f"by: 'zed' {KNOWN}"], answer.text
    assert "only read-only commands work for you" in reply, reply
    assert fake.calls == []

    monkeypatch.delenv("INCIDENTFLOW_USER", raising=False)
    monkeypatch.setenv("USER", "zed")
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, ["ack", IID]) == 1
    assert capsys.readouterr().err == (f"error: by: 'zed' (your OS user) {KNOWN}: set INCIDENTFLOW_USER to your id "
                                       "among them (or pass --by)\n")
    monkeypatch.setenv("INCIDENTFLOW_USER", "zed")
    assert await asyncio.to_thread(cli.main, ["ack", IID]) == 1
    assert "by: 'zed' (INCIDENTFLOW_USER) is not one of" in capsys.readouterr().err
    monkeypatch.setenv("INCIDENTFLOW_USER", "bob")
    assert await asyncio.to_thread(cli.main, ["ack", IID]) == 0
    assert fake.calls[-1] == ("acknowledge", IID, {"by": "bob"})


async def test_a_name_becomes_the_person_id(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeIncidents()
    (code, _), answer, reply = await on_every_surface(
        fake, ["role", IID, "lead", "Bob Okafor", "--by", "Pat"], f"role {IID} lead Bob Okafor",
        {"role": "lead", "person": "Bob Okafor", "by": "Pat"}, "roles", monkeypatch, capsys)
    assert code == 0 and answer.status_code == 200 and reply == f"`{IID}`: done."
    assert [c[2] for c in fake.calls] == [{"role": Role.lead, "person": "bob", "by": "pat"}] * 3


async def test_allow_everyone_lets_anyone_act_but_targets_stay_people(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    open_door = FakeIncidents(PEOPLE.model_copy(update={"slack": SlackConfig(allow_everyone=True)}))
    (code, _), answer, reply = await on_every_surface(open_door, ["ack", IID, "--by", "zed"], f"ack {IID}",
                                                      {"by": "zed"}, "acknowledge", monkeypatch, capsys,
                                                      slack_user="UZED0001")
    assert code == 0 and answer.status_code == 200 and reply == f"`{IID}`: done.", (answer.text, reply)
    (code, _), answer, _ = await on_every_surface(open_door, ["page", IID, "zed", "--by", "zed"], f"page {IID} zed",
                                                  {"person": "zed", "by": "zed"}, "page", monkeypatch, capsys)
    assert code == 1 and answer.status_code == 422
    no_people = FakeIncidents(IncidentflowConfig())  # nothing to check against: nobody is refused
    (code, _), answer, _ = await on_every_surface(no_people, ["page", IID, "zed", "--by", "zed"], f"page {IID} zed",
                                                  {"person": "zed", "by": "zed"}, "page", monkeypatch, capsys)
    assert code == 0 and answer.status_code == 200


def _parsers(parser: argparse.ArgumentParser, path: str = "incidentflow") -> dict[str, argparse.ArgumentParser]:
    found = {path: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_parsers(sub, f"{path} {name}"))
    return found


def test_every_cli_argument_says_what_it_is_for() -> None:
    parsers = _parsers(build_parser())
    missing = [f"{path} {a.option_strings[0] if a.option_strings else a.dest}"
               for path, parser in parsers.items() for a in parser._actions
               if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and not (a.help or "").strip()]
    assert missing == []
    for reader in ("show", "timeline"):  # reads have no actor: an option that did nothing is gone
        assert "--by" not in parsers[f"incidentflow {reader}"]._option_string_actions
