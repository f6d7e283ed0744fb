"""The postmortem: what the incident gives it (computed facts, the folded timeline), what people fill in,
and the state the PostmortemWorkflow owns (pure models, the contract between drafting, sinks and doors)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from enum import Enum

from pydantic import BaseModel, Field

from domain.models.common import Role, Severity
from domain.text import MultiLine, SingleLine


class PostmortemStatus(str, Enum):
    draft = "draft"
    in_review = "in_review"
    published = "published"


class ItemKind(str, Enum):
    """How our users group action items (DOMAIN.md): fix, detect, prevent, process."""

    fix = "fix"
    detect = "detect"
    prevent = "prevent"
    process = "process"


class Priority(str, Enum):
    P0 = "P0"
    P1 = "P1"
    P2 = "P2"


class RunbookOutcome(BaseModel):
    runbook: str
    title: str
    status: str  # RunStatus value: succeeded, failed, denied, …
    by: str
    auto: bool = False


class PostmortemFacts(BaseModel):
    """Computed from the incident, never typed. A time is None when the incident never got there."""

    started_at: datetime  # impact start: the first alert's start, else the declaration
    declared_at: datetime
    detected_at: datetime | None = None  # the first alert's start (None: declared by a person, no alert)
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None  # the first move to monitoring
    resolved_at: datetime | None = None
    ended_at: datetime | None = None
    time_to_detect: timedelta | None = None  # first alert's start -> incident opened
    time_to_acknowledge: timedelta | None = None  # opened -> first acknowledgement
    time_to_mitigate: timedelta | None = None  # opened -> monitoring
    time_to_resolve: timedelta | None = None  # opened -> resolved
    first_page_at: datetime | None = None
    pages: int = 0
    max_level: int | None = None  # highest escalation level paged (L1 = 1)
    runbooks: list[RunbookOutcome] = Field(default_factory=list)
    internal_updates: int = 0
    public_updates: int = 0
    longest_update_gap: timedelta | None = None  # between internal updates (declaration counts as the start)
    cadence: timedelta | None = None  # the severity's internal update cadence
    alerts: int = 0  # distinct alerts (fingerprints)
    alert_notifications: int = 0  # notifications received, repeats included
    hints: list[str] = Field(default_factory=list)  # evidence-based, e.g. "acknowledged 2 min after the page"


class TimelineRow(BaseModel):
    at: datetime
    text: str  # one line, plain text (the renderer escapes it for Markdown)


class PostmortemSource(BaseModel):
    """What the incident hands its postmortem (bounded: a folded timeline, no raw alert payloads)."""

    incident_id: str
    title: str
    severity: Severity
    service: str | None = None
    declared_by: str
    roles: dict[Role, str] = Field(default_factory=dict)
    description: str = ""
    resolution_summary: str = ""
    stand_down_reason: str = ""
    facts: PostmortemFacts
    timeline: list[TimelineRow] = Field(default_factory=list)
    timeline_omitted: int = 0  # events left out as noise or folded churn beyond the bound
    postmortem_due: datetime | None = None
    url: str | None = None  # the incident's link (Temporal UI)


class ActionRow(BaseModel):
    """One row of the document's action items table (parsed back from the published text)."""

    action: str = Field(..., min_length=1, max_length=500)
    owner: str | None = None
    due: date | None = None
    priority: Priority | None = None
    kind: ItemKind = ItemKind.fix
    aid: str | None = None  # the action item it became (filled on publish)


class PostmortemFields(BaseModel):
    """What people fill in (`postmortem set`); empty means "to fill" in the document."""

    summary: str = ""
    impact: str = ""
    users_affected: str = ""
    failed_requests: str = ""
    revenue: str = ""
    tickets: str = ""
    root_cause: str = ""
    trigger: str = ""
    detection: str = ""
    resolution: str = ""
    went_well: str = ""
    improve: str = ""
    lucky: str = ""
    lessons: str = ""
    review_date: date | None = None
    reviewers: list[str] = Field(default_factory=list)


class DraftInput(BaseModel):
    """Render the document: the activity loads the template (built in or the user's) and fills it."""

    source: PostmortemSource
    fields: PostmortemFields
    actions: list[ActionRow] = Field(default_factory=list)
    status: PostmortemStatus = PostmortemStatus.draft
    template: str = "default"
    now: datetime


class SinkRef(BaseModel):
    """Where a draft lives: the sink's kind, its link for people, and what reading it back needs."""

    sink: str  # directory | github | webhook
    link: str  # a file path, a pull request URL, the webhook receiver's URL for the document
    ref: str = ""  # sink-specific locator (file path, branch + path, document id)
    digest: str = ""  # sha256 of the text last written (a retry writes nothing new)


class WriteInput(BaseModel):
    incident_id: str
    title: str
    markdown: str
    status: PostmortemStatus = PostmortemStatus.draft
    ref: SinkRef | None = None  # the earlier write, when there is one


class PostmortemStart(BaseModel):
    source: PostmortemSource
    template: str | None = None  # None: by severity from config (the worker's activity decides)
    requested_by: str = "incidentflow"
    carried: PostmortemState | None = None


class PostmortemState(BaseModel):
    incident_id: str
    status: PostmortemStatus = PostmortemStatus.draft
    template: str = "default"
    source: PostmortemSource
    fields: PostmortemFields = Field(default_factory=PostmortemFields)
    actions: list[ActionRow] = Field(default_factory=list)
    sink: SinkRef | None = None
    drafted_at: datetime | None = None
    drafts: int = 0
    published_at: datetime | None = None
    published_by: str | None = None
    link: str | None = None
    items: list[str] = Field(default_factory=list)  # action item ids created from the published table
    final_text: str = ""  # the document as published (read back from the sink)
    history: list[str] = Field(default_factory=list)  # "2026-12-07 10:00 UTC alice: set root cause" (bounded)


class PostmortemSetInput(BaseModel):
    """`postmortem set ID --root-cause …`: each given field replaces the document's."""

    by: SingleLine = Field(..., min_length=1, max_length=128)
    root_cause: MultiLine | None = Field(None, max_length=4000)
    trigger: MultiLine | None = Field(None, max_length=4000)
    impact: MultiLine | None = Field(None, max_length=4000)
    summary: MultiLine | None = Field(None, max_length=4000)
    detection: MultiLine | None = Field(None, max_length=4000)
    resolution: MultiLine | None = Field(None, max_length=4000)
    went_well: MultiLine | None = Field(None, max_length=4000)
    improve: MultiLine | None = Field(None, max_length=4000)
    lessons: MultiLine | None = Field(None, max_length=4000)
    review_date: date | None = None
    reviewers: list[SingleLine] | None = Field(None, max_length=20)
    status: PostmortemStatus | None = Field(None, description="draft or in_review (publish publishes)")


class PostmortemPublishInput(BaseModel):
    by: SingleLine = Field(..., min_length=1, max_length=128)


class PostmortemResult(BaseModel):
    incident_id: str
    status: PostmortemStatus
    message: str = ""  # what happened, for a person
    link: str | None = None
    text: str = ""  # the document as published
    items: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
PostmortemStart.model_rebuild()


# ---------------------------------------------------------------------------- activity and signal messages
class DraftRequest(BaseModel):
    """Render and write the whole document (the first draft; later only while nobody edited it)."""

    draft: DraftInput
    ref: SinkRef | None = None


class Drafted(BaseModel):
    ref: SinkRef
    template: str  # the template used (chosen by severity when the request named none)
    edited: bool = False  # people changed the document in the sink: it was left as they left it


class FieldsRequest(BaseModel):
    """Replace only the sections of these fields in the document as people left it."""

    incident_id: str
    title: str
    ref: SinkRef
    updates: dict[str, str]
    status: PostmortemStatus = PostmortemStatus.draft


class CollectRequest(BaseModel):
    """Read the final text back and turn its action items table into rows (owners vetted, dates checked)."""

    incident_id: str
    ref: SinkRef
    today: date


class Collected(BaseModel):
    text: str
    remind_at: time = time(9, 0)  # the config's action item reminder time (for the items it becomes)
    rows: list[ActionRow] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)  # publishing is refused while there are any


class PostmortemEvent(BaseModel):
    """The postmortem tells its incident: a draft is there, or it was published."""

    kind: str  # drafted | failed (the first draft was refused) | published
    link: str | None = None
    detail: str = Field("", max_length=1000)  # why it failed
    by: str = "incidentflow"
    template: str = ""
    items: list[str] = Field(default_factory=list)


class PostmortemRequest(BaseModel):
    """`postmortem start ID` on an incident (any severity on request)."""

    by: SingleLine = Field(..., min_length=1, max_length=128)
    template: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def postmortem_id(incident_id: str) -> str:
    return f"postmortem-{incident_id}"
