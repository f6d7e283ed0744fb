"""Postmortem documents: rendered from a Jinja2 template (the user's `postmortem.template_dir` first, then the
built-in ones) and kept in a sink (a directory, a GitHub pull request, a signed webhook) where people edit them.

Edits people make in the sink are never overwritten: a redraft only rewrites a document nobody touched since
the last write, and `postmortem set` replaces just the sections of the fields it sets. Publishing reads the
final text back and turns its action items table into rows, with owners checked against the config and due
dates that are not in the past; any problem refuses the publish, naming the row."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import REJECTED
from activities.ports import PostmortemSink
from domain import known
from domain.config import IncidentflowConfig
from domain.postmortem.actions_table import parse_actions
from domain.postmortem.config import BUILTIN_TEMPLATES, TEMPLATE_NAME
from domain.postmortem.models import (
    ActionRow,
    Collected,
    CollectRequest,
    Drafted,
    DraftRequest,
    FieldsRequest,
    SinkRef,
    WriteInput,
)
from domain.postmortem.render import TEMPLATE_DIR, TemplateError, render_markdown
from domain.postmortem.sections import with_fields

SUFFIX = ".md.j2"


def refused(message: str) -> ApplicationError:
    return ApplicationError(message, type=REJECTED, non_retryable=True)


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class PostmortemActivities:
    def __init__(self, config: Callable[[], IncidentflowConfig], sink: PostmortemSink,
                 base_dir: Path | None = None) -> None:
        self._config, self._sink = config, sink
        self._base = base_dir or Path.cwd()  # a relative template_dir is relative to the config's directory

    def template_names(self) -> list[str]:
        names = set(BUILTIN_TEMPLATES)
        user = self._user_dir()
        if user is not None and user.is_dir():
            names |= {p.name[: -len(SUFFIX)] for p in user.glob(f"*{SUFFIX}")}
        return sorted(names)

    def _user_dir(self) -> Path | None:
        configured = self._config().postmortem.template_dir
        return None if not configured else (self._base / configured).resolve()

    def template(self, name: str) -> str:
        import re

        if not re.match(TEMPLATE_NAME, name):
            raise refused(f"template {name!r}: letters, digits, '.', '_' and '-' only")
        for folder in (self._user_dir(), TEMPLATE_DIR):
            if folder is not None and (folder / f"{name}{SUFFIX}").is_file():
                return (folder / f"{name}{SUFFIX}").read_text()
        raise refused(f"template {name!r} not found (known: {', '.join(self.template_names())})")

    @activity.defn
    async def draft_postmortem(self, request: DraftRequest) -> Drafted:
        """Render and write the document; a document people edited since the last write is left alone."""
        draft = request.draft
        name = draft.template or self._config().postmortem.template_for(draft.source.severity.value)
        if request.ref is not None:
            current = await self._sink.read(request.ref)
            if request.ref.digest and digest_of(current) != request.ref.digest:
                return Drafted(ref=request.ref, template=name, edited=True)
        try:
            markdown = render_markdown(self.template(name), draft.model_copy(update={"template": name}))
        except TemplateError as exc:
            raise refused(str(exc)) from None
        ref = await self._sink.write(WriteInput(incident_id=draft.source.incident_id, title=draft.source.title,
                                                markdown=markdown, status=draft.status, ref=request.ref))
        return Drafted(ref=ref, template=name)

    @activity.defn
    async def update_postmortem(self, request: FieldsRequest) -> SinkRef:
        """Replace the sections of the given fields in the document as people left it."""
        current = await self._sink.read(request.ref)
        try:
            text = with_fields(current, request.updates)
        except ValueError as exc:
            raise refused(f"cannot set {', '.join(sorted(request.updates))}: {exc}; edit the document "
                          f"itself ({request.ref.link})") from None
        seen = request.ref.model_copy(update={"digest": digest_of(current)})  # written over what we just read
        return await self._sink.write(WriteInput(incident_id=request.incident_id, title=request.title,
                                                 markdown=text, status=request.status, ref=seen))

    @activity.defn
    async def collect_postmortem(self, request: CollectRequest) -> Collected:
        """The final text and its action items; `problems` lists every row that cannot become an item."""
        text = await self._sink.read(request.ref)
        rows, problems = parse_actions(text, default_year=request.today.year)
        config = self._config()
        vetted: list[ActionRow] = []
        for row in rows:
            what = f"action item {row.action[:60]!r}"
            owner = (row.owner or "").lstrip("@")
            if owner and config.people and known.person_id(config, owner) is None:
                problems.append(f"{what}: owner {owner!r} is not one of incidentflow's people "
                                f"(known: {known.listing(known.people(config))})")
            if row.due is not None and row.due < request.today:
                problems.append(f"{what}: due {row.due:%Y-%m-%d} is in the past")
            vetted.append(row.model_copy(update={"owner": known.person_id(config, owner) or owner or None}))
        return Collected(text=text, rows=vetted, problems=problems, remind_at=config.action_items.remind_at)
