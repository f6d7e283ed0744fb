"""Issue 11, item 8 (log forgery): a field can never forge a log line or hide what it says.

A title carrying "\\n<time> WARNING incidentflow.paging: PAGE trigger → vp-eng" once wrote a forged line
into the worker log, and NUL, ESC, BEL and RTL-override characters were stored verbatim. Text is cleaned
at the edge (`domain.text`), and every log line is one record in both formats (`incidentflow.logs`),
with Temporal's and the request's context in the JSON one.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.text import UNSAFE, MultiLine, SingleLine, escape_unsafe, multi_line, single_line
from incidentflow import logs
from incidentflow.logs import RequestIdMiddleware, configure_logging, incident_of, incident_scope, safe_id

FORGED_LINE = "2026-05-09 07:35:25,123 WARNING incidentflow.paging: PAGE trigger → vp-eng"
HOSTILE = f"Checkout down\n{FORGED_LINE}\r\x00\x1b[2J\x07\u202egnp.exe\u2028\x85\x7f\ufeff end"
ORDINARY = ["Checkout is down", "Café crème à Zürich", "数据库连接池耗尽", "支払い 障害 ☕",
            "Deploy 🚀 failed 👩‍💻 🏳️‍🌈", "مرحبا بالعالم", "Ñandú – “quotes” … 100%", "naïve façade Ω≈ç√"]


class _Title(BaseModel):
    title: SingleLine = Field(..., min_length=1, max_length=200)
    commander: SingleLine | None = Field(None, max_length=128)
    note: MultiLine = Field("", max_length=4000)


# --- domain.text ---------------------------------------------------------------------------------

def test_hostile_title_goes_through_single_line_cleanly() -> None:
    got = _Title(title=HOSTILE).title
    assert UNSAFE.search(got) is None
    assert "\n" not in got and "\r" not in got and len(got.splitlines()) == 1
    assert got == "Checkout down 2026-05-09 07:35:25,123 WARNING incidentflow.paging: PAGE trigger → vp-eng " \
                  "[2J gnp.exe end"


def test_lengths_are_checked_on_the_cleaned_text() -> None:
    assert _Title(title="a" + "\x00" * 300).title == "a"  # the controls are gone before max_length
    with pytest.raises(ValidationError):
        _Title(title="\x00\x1b\u202e \t")  # nothing visible left: min_length fails
    with pytest.raises(ValidationError):
        _Title(title="x" * 201)
    assert _Title(title="t", commander=" alice\x1b[2J ").commander == "alice [2J"
    assert _Title(title="t", commander=None).commander is None


def test_multi_line_keeps_lines_and_drops_the_rest() -> None:
    note = _Title(title="t", note="  step 1\r\nstep 2\rstep\t3\u2028\x00done\u202e\x1b \n\n").note
    assert note.split("\n") == ["step 1", "step 2", "step\t3", " done"]


def test_incident_inputs_clean_text_at_the_edge() -> None:
    """The commands' input models use the types: fails until DeclareInput & co. do."""
    from domain.models.incident import DeclareInput, NoteInput, StatusUpdateInput

    cmd = DeclareInput(title=HOSTILE, declared_by="alice\x1b[2J\u202e", description="a\r\nb\x07")
    assert UNSAFE.search(cmd.title) is None and UNSAFE.search(cmd.declared_by) is None
    assert cmd.description == "a\nb"
    assert StatusUpdateInput(text="line 1\r\nline 2\x00\u202e", by="bob").text == "line 1\nline 2"
    # a note keeps its lines (the log formats escape them); the controls and the override go
    assert NoteInput(text=HOSTILE, by="bob").text.split("\n") == ["Checkout down", FORGED_LINE, "  [2J gnp.exe", "",
                                                                   "  end"]


_FORBIDDEN_IN_MULTI = re.compile(f"(?![\n\t]){UNSAFE.pattern}")
_ordinary_words = st.text(st.characters(categories=("L", "M", "N", "P", "S"), include_characters="\u200d\u200c"),
                          min_size=1, max_size=12)


@given(st.text())
def test_single_line_output_is_always_safe_and_stable(s: str) -> None:
    once = single_line(s)
    assert UNSAFE.search(once) is None and "  " not in once and once == once.strip()
    assert single_line(once) == once


@given(st.text())
def test_multi_line_output_is_always_safe_and_stable(s: str) -> None:
    once = multi_line(s)
    assert _FORBIDDEN_IN_MULTI.search(once) is None and once == once.strip()
    assert multi_line(once) == once


@given(st.lists(_ordinary_words, min_size=1, max_size=8))
def test_ordinary_text_is_unchanged(words: list[str]) -> None:
    text = " ".join(words)
    assert single_line(text) == text and multi_line(text) == text
    lines = "\n".join(words)
    assert multi_line(lines) == lines


@pytest.mark.parametrize("text", ORDINARY)
def test_real_world_text_is_unchanged(text: str) -> None:
    assert single_line(text) == text == multi_line(text) == escape_unsafe(text)


# --- incidentflow.logs ---------------------------------------------------------------------------

@pytest.fixture
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """configure_logging changes process-wide state: give it back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    monkeypatch.setattr(activity.logger, "activity_info_on_message", activity.logger.activity_info_on_message)
    monkeypatch.setattr(workflow.logger, "workflow_info_on_message", workflow.logger.workflow_info_on_message)
    monkeypatch.setattr(logs, "_core_forwarded", logs._core_forwarded)
    runtime = Runtime.default()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    Runtime.set_default(runtime, error_if_already_set=False)


def _log_hostile(fmt: str) -> list[str]:
    out = io.StringIO()
    configure_logging(fmt, "INFO", stream=out)
    logging.getLogger("incidentflow.test").warning("declared %s", HOSTILE)
    text = out.getvalue()
    assert text.endswith("\n")
    return text[:-1].split("\n")


@pytest.mark.usefixtures("restore_logging")
def test_human_format_writes_one_line_per_record() -> None:
    lines = _log_hostile("text")
    assert len(lines) == 1 and len(lines[0].splitlines()) == 1  # splitlines also breaks on \x85, \u2028 …
    line = lines[0]
    assert " WARNING incidentflow.test: declared Checkout down\\n2026-05-09 07:35:25,123 WARNING" in line
    assert UNSAFE.search(line) is None
    assert "\\x00\\x1b[2J\\x07\\u202egnp.exe\\u2028\\x85\\x7f\\ufeff end" in line


@pytest.mark.usefixtures("restore_logging")
def test_json_format_writes_one_object_per_record() -> None:
    lines = _log_hostile("json")
    assert len(lines) == 1 and len(lines[0].splitlines()) == 1 and UNSAFE.search(lines[0]) is None
    doc = json.loads(lines[0])
    assert doc["message"] == f"declared {HOSTILE}"  # the reader gets the exact text back
    assert doc["level"] == "WARNING" and doc["logger"] == "incidentflow.test" and doc["time"].endswith("Z")


@pytest.mark.usefixtures("restore_logging")
def test_format_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setenv("INCIDENTFLOW_LOG_FORMAT", "json")
    configure_logging(stream=out)
    with incident_scope("incident-20260509-0735-checkout"):
        logging.getLogger("incidentflow.test").info("hello")
    assert json.loads(out.getvalue())["incident_id"] == "incident-20260509-0735-checkout"
    monkeypatch.setenv("INCIDENTFLOW_LOG_FORMAT", "yaml")  # a typo must not stop a worker: text, and a warning
    configure_logging(stream=out)
    assert out.getvalue().splitlines()[-1].endswith("WARNING incidentflow: unknown log format 'yaml' (use text or "
                                                    "json): using text")


@pytest.mark.usefixtures("restore_logging")
def test_human_tracebacks_are_indented_so_no_line_can_pass_for_a_record() -> None:
    out = io.StringIO()
    configure_logging("text", stream=out)
    try:
        raise ValueError(f"bad title\n{FORGED_LINE}")
    except ValueError:
        logging.getLogger("incidentflow.test").exception("declare failed")
    first, *rest = out.getvalue().rstrip("\n").split("\n")
    assert first.endswith("ERROR incidentflow.test: declare failed") and rest
    assert all(line.startswith("    ") for line in rest)
    assert f"    {FORGED_LINE}" in rest


def test_incident_ids_come_from_workflow_ids() -> None:
    inc = "incident-20260509-0735-checkout-2"
    assert incident_of(inc) == incident_of(f"{inc}-escalation-1") == incident_of(f"{inc}-runbook-3") == inc
    assert incident_of("alertgroup-ab12") is None and incident_of(None) is None and incident_of(f"{inc}\n") is None


@pytest.mark.parametrize("bad", ["req 1", "req-1\n", "\x1b[2J", "-starts-with-dash", "x" * 129, ""])
def test_context_ids_that_are_not_plain_ids_are_dropped(bad: str) -> None:
    assert safe_id(bad) is None and safe_id("req-42.a:b") == "req-42.a:b"


@activity.defn
async def _page_someone(title: str) -> str:
    logging.getLogger("incidentflow.paging").warning("paging for %s", title)  # as our activities log
    activity.logger.info("temporal's own logger")
    return "paged"


@workflow.defn(sandboxed=False)  # a test double: no sandbox re-imports of this module
class _LoggingWorkflow:
    @workflow.run
    async def run(self, title: str) -> str:
        workflow.logger.info("incident %s", title)
        return await workflow.execute_activity(_page_someone, title, start_to_close_timeout=timedelta(seconds=10))


@pytest.mark.usefixtures("restore_logging")
async def test_json_lines_carry_workflow_and_activity_from_a_real_run(ts_env: WorkflowEnvironment) -> None:
    out = io.StringIO()
    configure_logging("json", "INFO", stream=out)
    queue, workflow_id = f"logs-{uuid.uuid4().hex[:8]}", f"incident-20260509-0735-checkout-{uuid.uuid4().hex[:6]}"
    child_like = f"{workflow_id}-escalation-1"  # what an escalation's activities log under
    async with Worker(ts_env.client, task_queue=queue, workflows=[_LoggingWorkflow], activities=[_page_someone]):
        handle = await ts_env.client.start_workflow(_LoggingWorkflow.run, HOSTILE, id=child_like, task_queue=queue)
        assert await handle.result() == "paged"
    docs = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    assert all(UNSAFE.search(line) is None for line in out.getvalue().split("\n"))
    mine = {d["message"]: d for d in docs if d.get("workflow_id") == child_like}
    paging, own, wf = mine[f"paging for {HOSTILE}"], mine["temporal's own logger"], mine[f"incident {HOSTILE}"]
    for doc in (paging, own):
        assert doc["activity"] == "_page_someone" and doc["run_id"] == handle.result_run_id
        assert doc["incident_id"] == workflow_id and doc["workflow_type"] == "_LoggingWorkflow"
    assert paging["logger"] == "incidentflow.paging" and paging["level"] == "WARNING"
    assert wf["run_id"] == handle.result_run_id and wf["incident_id"] == workflow_id and "activity" not in wf


@pytest.mark.usefixtures("restore_logging")
async def test_json_mode_turns_temporal_core_lines_into_records(ts_env: WorkflowEnvironment) -> None:
    """The Rust core prints its own lines; in JSON they are forwarded (clients made after setup)."""
    out = io.StringIO()
    configure_logging("json", "INFO", stream=out)
    client = await Client.connect(ts_env.client.service_client.config.target_host, runtime=Runtime.default())
    queue = f"logs-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[_LoggingWorkflow], activities=[_page_someone]):
        await client.execute_workflow(_LoggingWorkflow.run, "t", id=f"logs-{uuid.uuid4().hex}", task_queue=queue)
    for _ in range(50):  # the test server lacks a capability core warns about; it hands lines over in batches
        if "temporalio.core" in out.getvalue():
            break
        await asyncio.sleep(0.05)
    core = [d for d in map(json.loads, out.getvalue().splitlines()) if d["logger"] == "temporalio.core"]
    assert core and core[0]["level"] == "WARNING" and "sdk_core::" in core[0]["message"]


def _api() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/incidents/{incident_id}/notes")
    async def add_note(incident_id: str) -> dict[str, str]:
        logging.getLogger("incidentflow.api").warning("note for %s", incident_id)
        return {"ok": incident_id}

    app.add_middleware(RequestIdMiddleware)
    return app


@pytest.mark.usefixtures("restore_logging")
async def test_json_lines_carry_the_request_id_set_by_the_middleware() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    inc = "incident-20260509-0735-checkout"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_api()), base_url="http://api") as http:
        given_id = await http.post(f"/v1/incidents/{inc}/notes", headers={"X-Request-ID": "req-42.a"})
        bad_id = await http.post(f"/v1/incidents/{inc}/notes", headers={"X-Request-ID": "spaces are not ids"})
        no_id = await http.post(f"/v1/incidents/{inc}%0A{FORGED_LINE}/notes")
    assert given_id.headers["x-request-id"] == "req-42.a"
    generated = {bad_id.headers["x-request-id"], no_id.headers["x-request-id"]}
    assert len(generated) == 2 and all(re.fullmatch("[0-9a-f]{32}", r) for r in generated)
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    by_request = {d["request_id"]: d for d in docs if d["logger"] == "incidentflow.api"}
    assert set(by_request) == {"req-42.a", *generated}
    assert by_request["req-42.a"]["incident_id"] == inc
    forged = by_request[no_id.headers["x-request-id"]]
    assert "incident_id" not in forged and forged["message"] == f"note for {inc}\n{FORGED_LINE}"
