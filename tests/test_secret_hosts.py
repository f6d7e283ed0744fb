"""Secrets bound to hosts (issue 11, item 1): a runbook parameter must never send a worker secret elsewhere.

Two real flag services on loopback: the real one (127.0.0.1, the secret's host) and an attacker's
(127.0.0.2, another host and port). The attacker's must receive no request and no secret, whichever way
a URL reaches the worker: a `--param`, an alert label, a rendered step the worker is handed, a redirect.
"""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.errors import NOT_CONFIGURED, SECRET_REFUSED, UNEXPECTED_STATUS
from activities.probes import HttpProbe
from activities.runbook import RunbookActivities
from activities.steps import RunbookSteps
from domain.config import IncidentflowConfig, RunbookSecret, Settings
from domain.models import AlertSignal, DeclareInput, Severity
from domain.models.runbook import HttpRequestArgs, MatchInput, RunStatus
from domain.runbooks import (
    ParamError,
    RenderError,
    check_runbooks,
    coerce_params,
    load_runbooks,
    render_steps,
)
from domain.runbooks.hosts import HostPattern, Target, url_target
from incidentflow.client import Incidents
from tests.conftest import running_worker
from tests.fakes.flags import FakeFlags
from tests.fakes.kubernetes import RecordedRequest, Reply
from tests.helpers import eventually

RUNBOOKS = Path(__file__).resolve().parents[1] / "runbooks"
FLAG = "new-checkout"
CONFIG = IncidentflowConfig.model_validate({"people": [{"id": "alice", "name": "Alice"}],
                                            "services": [{"name": "flags"}]})

# `base` may point at both services (the runbook allows it); only the worker's secret binding keeps the
# token from the attacker. `probe` runs by itself when an alert on service `flags` fires.
ANYWHERE = """\
name: read-flag-anywhere
title: Read a flag
description: Reads a flag
applies_to: {services: [flags]}
auto_run: diagnostics
parameters:
  base: {type: url, default: "REAL", allowed_hosts: ["REAL", "EVIL"]}
  flag: {type: string, default: new-checkout}
steps:
  - kind: http.request
    name: read
    url: "{{ base }}/flags/{{ flag }}"
    headers: {Authorization: "Bearer ${secret:flags_token}"}
    expect_status: [200]
"""


@pytest.fixture
def services() -> Iterator[tuple[FakeFlags, FakeFlags]]:
    with FakeFlags() as real, FakeFlags("127.0.0.2", token="attacker-token") as evil:
        real.add_flag(FLAG, enabled=True)
        evil.add_flag(FLAG, enabled=True)
        yield real, evil


def bound(real: FakeFlags) -> dict[str, RunbookSecret]:
    return {"flags_token": RunbookSecret(value=real.token, hosts=[real.url])}  # type: ignore[arg-type]


def get(url: str) -> HttpRequestArgs:
    return HttpRequestArgs(method="GET", url=url, headers={"Authorization": "Bearer ${secret:flags_token}"},
                           expect_status=[200])


def leaked(evil: FakeFlags, token: str) -> list[RecordedRequest]:
    return [r for r in evil.requests if token in json.dumps(r.headers) or token.encode() in r.raw]


# ---------------------------------------------------------------- host patterns


def test_host_patterns() -> None:
    def ok(pattern: str, url: str) -> bool:
        return HostPattern.parse(pattern).matches(url_target(url))

    assert ok("flags.internal", "https://flags.internal/x") and ok("flags.internal", "https://FLAGS.internal.:443")
    assert not ok("flags.internal", "http://flags.internal/x"), "https unless http:// is written"
    assert not ok("flags.internal", "https://flags.internal:8443/x"), "the default port only"
    assert ok("flags.internal:8443", "https://flags.internal:8443/x")
    assert ok("http://127.0.0.1:8080", "http://127.0.0.1:8080/x") and not ok("http://127.0.0.1:8080", "http://127.0.0.1:8081")
    assert ok("*.flags.example.com", "https://eu.flags.example.com") and ok("*.flags.example.com", "https://a.b.flags.example.com")
    assert not ok("*.flags.example.com", "https://flags.example.com"), "a wildcard is for subdomains"
    assert not ok("*.flags.example.com", "https://evilflags.example.com")
    assert not ok("flags.internal", "https://flags.internal.evil.example/")
    assert ok("http://[::1]:8080", "http://[::1]:8080/x")
    assert HostPattern.parse("*.example.com").covers(HostPattern.parse("*.eu.example.com"))
    assert not HostPattern.parse("eu.example.com").covers(HostPattern.parse("*.example.com"))
    for bad in ["https://flags.internal/path", "user@flags.internal", "flags.*.internal", "ftp://x", "x:0", ""]:
        with pytest.raises(ValueError):
            HostPattern.parse(bad)
    for bad in ["https://flags.internal@evil.example/", "https://evil.example\\@flags.internal/", "file:///etc/passwd",
                "https:///x", "https://fl ags.internal/"]:
        with pytest.raises(ValueError):
            url_target(bad)
    assert str(url_target("http://127.0.0.1:80/x")) == "http://127.0.0.1" == str(Target("http", "127.0.0.1", 80))


def test_secret_config_forms_and_errors_never_print_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIDENTFLOW_RUNBOOK_SECRETS", json.dumps({
        "old": "plain-value", "flags_token": {"value": "v", "hosts": ["flags.internal", "http://localhost:8080"]}}))
    settings = Settings()
    assert settings.runbook_secret_hosts() == {"old": [], "flags_token": ["flags.internal", "http://localhost:8080"]}
    assert settings.runbook_secrets["old"].value.get_secret_value() == "plain-value"
    monkeypatch.setenv("INCIDENTFLOW_RUNBOOK_SECRETS", json.dumps({"t": {"valeu": "TOPSECRET", "hosts": ["x/y"]}}))
    with pytest.raises(ValueError) as info:
        Settings()
    assert "valeu" in str(info.value) and "TOPSECRET" not in str(info.value)


# ---------------------------------------------------------------- the worker's probe, against real servers


async def test_only_the_bound_host_gets_the_secret(services: tuple[FakeFlags, FakeFlags]) -> None:
    real, evil = services
    async with httpx.AsyncClient() as http:
        probe = HttpProbe(http, bound(real))
        done = await probe.request(get(f"{real.url}/flags/{FLAG}"))
        assert done.data["status"] == 200 and real.requests[-1].headers["authorization"] == f"Bearer {real.token}"
        for url in [f"{evil.url}/flags/{FLAG}",  # another host and port
                    f"http://127.0.0.1:{evil.port}/flags/{FLAG}",  # the bound host on another port
                    f"http://127.0.0.1:{real.port}@127.0.0.2:{evil.port}/flags/{FLAG}",  # user info trick
                    f"http://localhost:{real.port}/flags/{FLAG}"]:  # the same machine by another name
            with pytest.raises(ApplicationError) as info:
                await probe.request(get(url))
            assert info.value.type == SECRET_REFUSED and info.value.non_retryable, url
            assert "'flags_token'" in info.value.message and "INCIDENTFLOW_RUNBOOK_SECRETS" in info.value.message
            assert real.token not in info.value.message
            with pytest.raises(ApplicationError, match="may not be sent to"):
                probe.plan_request(get(url))  # a dry run shows it too
        assert f"may not be sent to http://127.0.0.2:{evil.port}" in str(
            await _refusal(probe, f"{evil.url}/flags/{FLAG}"))
    assert evil.requests == [], "refused before any request"
    assert len(real.requests) == 1


async def _refusal(probe: HttpProbe, url: str) -> str:
    try:
        await probe.request(get(url))
    except ApplicationError as exc:
        return exc.message
    raise AssertionError("not refused")


async def test_an_unbound_or_https_only_secret_is_never_sent(services: tuple[FakeFlags, FakeFlags]) -> None:
    real, _ = services
    async with httpx.AsyncClient() as http:
        legacy = HttpProbe(http, {"flags_token": real.token})  # the old plain-string form
        message = await _refusal(legacy, f"{real.url}/flags/{FLAG}")
        assert "bound to no host" in message and '"hosts": ["http://127.0.0.1:' in message
        https_only = HttpProbe(http, {"flags_token": RunbookSecret(value=real.token,  # type: ignore[arg-type]
                                                                    hosts=[f"127.0.0.1:{real.port}"])})
        assert "its hosts: 127.0.0.1:" in await _refusal(https_only, f"{real.url}/flags/{FLAG}")
        with pytest.raises(ApplicationError) as info:
            await HttpProbe(http, {}).request(get(f"{real.url}/flags/{FLAG}"))
        assert info.value.type == NOT_CONFIGURED
        public = await HttpProbe(http, {}).request(HttpRequestArgs(url=f"{real.url}/flags", expect_status=[401]))
        assert public.data["status"] == 401, "a step without secrets goes where its runbook says"
    assert [r.path for r in real.requests] == ["/flags"]


class Redirecting(FakeFlags):
    def __init__(self, to: str) -> None:
        super().__init__()
        self.to = to

    def handle(self, req: RecordedRequest) -> Reply:
        return Reply(302, {"moved": True}, headers={"Location": self.to})


async def test_a_redirect_never_carries_the_secret_elsewhere(services: tuple[FakeFlags, FakeFlags]) -> None:
    _, evil = services
    with Redirecting(f"{evil.url}/flags/{FLAG}") as hop:
        secrets = {"flags_token": RunbookSecret(value=hop.token, hosts=[hop.url])}  # type: ignore[arg-type]
        async with httpx.AsyncClient(follow_redirects=True) as http:
            with pytest.raises(ApplicationError) as info:
                await HttpProbe(http, secrets).request(get(f"{hop.url}/flags/{FLAG}"))
        assert info.value.type == UNEXPECTED_STATUS and "302" in info.value.message
        assert len(hop.requests) == 1
    assert evil.requests == []


# ---------------------------------------------------------------- render time and `runbook check`


def test_the_shipped_flag_runbook_refuses_another_host_at_render_time() -> None:
    rb = load_runbooks([RUNBOOKS]).get("disable-feature-flag")
    assert rb.parameters["flags_url"].type == "url" and rb.parameters["flags_url"].allowed_hosts == ["flags.internal"]
    with pytest.raises(ParamError) as info:
        coerce_params(rb, {"flag": FLAG, "flags_url": "http://127.0.0.2:8080"})
    assert str(info.value) == ("parameter 'flags_url': host http://127.0.0.2:8080 is not allowed (allowed_hosts: "
                               "flags.internal); to allow it, add \"http://127.0.0.2:8080\" to the parameter's "
                               "allowed_hosts in the runbook")
    for url in ["https://flags.internal@127.0.0.2", "https://flags.internal.evil.example", "http://flags.internal"]:
        with pytest.raises(ParamError):
            coerce_params(rb, {"flag": FLAG, "flags_url": url})
    params = coerce_params(rb, {"flag": FLAG})
    assert render_steps(rb, params, {"id": "i"}, {"flags_token": ["flags.internal"]})[0].args["url"] == \
        f"https://flags.internal/flags/{FLAG}"
    with pytest.raises(RenderError) as bad:
        render_steps(rb, params, {"id": "i"}, {"flags_token": ["*.flags.example.com"]})
    assert "step 'flag-state' (steps.0) headers.Authorization: secret 'flags_token' may not be sent to " \
           "https://flags.internal" in str(bad.value)


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "rb.yaml").write_text(textwrap.dedent(text))
    return tmp_path


def test_runbook_check_reports_an_unbound_secret_use(tmp_path: Path) -> None:
    settings = Settings(runbook_secrets={"flags_token": "plain"})  # type: ignore[dict-item]
    found, problems = check_runbooks([RUNBOOKS], settings.runbook_secret_hosts())
    assert found is None and len(problems) == 2
    assert problems[0].startswith(f"{RUNBOOKS}/disable-feature-flag.yaml:")
    assert "steps.0.headers.Authorization: secret 'flags_token' is bound to no host" in problems[0]
    assert '"hosts": ["flags.internal"]' in problems[0]
    _, problems = check_runbooks([RUNBOOKS], {"flags_token": ["*.flags.example.com"]})
    assert "may not be sent to flags.internal, a host parameter 'flags_url' allows (its hosts: " \
           "*.flags.example.com)" in problems[0]
    assert check_runbooks([RUNBOOKS], {"flags_token": ["flags.internal"]})[1] == []
    assert check_runbooks([RUNBOOKS])[1] == [], "without the worker's secrets only the runbooks are checked"
    _, problems = check_runbooks([write(tmp_path, """\
        name: literal
        title: Literal
        steps:
          - kind: http.request
            url: https://api.other.example/x
            headers: {X-Key: "${secret:flags_token}"}
        """)], {"flags_token": ["flags.internal"]})
    assert problems == [f"{tmp_path}/rb.yaml:6: steps.0.headers.X-Key: secret 'flags_token' may not be sent to "
                        "https://api.other.example (its hosts: flags.internal); to allow it, add "
                        "\"api.other.example\" to its \"hosts\" in INCIDENTFLOW_RUNBOOK_SECRETS"]


def test_a_url_host_comes_only_from_a_url_parameter_with_allowed_hosts(tmp_path: Path) -> None:
    _, problems = check_runbooks([write(tmp_path, """\
        name: hosts
        title: Hosts
        parameters:
          base: {type: string, default: "https://flags.internal"}
          host: {type: string, default: flags.internal}
          anywhere: {type: url}
          typed: {type: integer, allowed_hosts: [x]}
        steps:
          - {kind: http.request, url: "{{ base }}/x"}
          - {kind: http.request, url: "https://{{ host }}/x"}
          - {kind: http.request, url: "https://flags.internal{{ host }}"}
          - {kind: http.request, url: "{{ anywhere }}{{ host }}"}
          - {kind: http.request, url: "https://{{ incident.service }}.internal/x"}
          - {kind: http.request, url: "https://flags.internal/{{ host }}?q={{ base }}"}
        """)])
    assert [p.split(": ", 2)[1:] for p in problems] == [
        ["parameters.anywhere", "a url parameter needs allowed_hosts: the hosts its value may point at, e.g. "
                                "[flags.internal, \"*.flags.example.com\"]"],
        ["parameters.typed.allowed_hosts", "allowed_hosts applies to url parameters only"],
        ["steps.0.url", "the URL starts with {{ base }}, which is not a `type: url` parameter: declare it "
                        "`type: url` with allowed_hosts, so no value can send the request to another host"],
        ["steps.1.url", "the URL's host may not come from a template: put the base URL in one `type: url` "
                        "parameter with allowed_hosts, e.g. url: \"{{ base_url }}/path\""],
        ["steps.2.url", "the URL's host may not come from a template: put the base URL in one `type: url` "
                        "parameter with allowed_hosts, e.g. url: \"{{ base_url }}/path\""],
        ["steps.3.url", "{{ anywhere }} must be followed by '/', '?' or '#': the host comes from anywhere alone"],
        ["steps.4.url", "the URL's host may not come from a template: put the base URL in one `type: url` "
                        "parameter with allowed_hosts, e.g. url: \"{{ base_url }}/path\""],
    ]


# ---------------------------------------------------------------- auto-runs: a URL never comes from a label


def anywhere(tmp_path: Path, real: FakeFlags, evil: FakeFlags) -> Path:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "anywhere.yaml").write_text(ANYWHERE.replace("REAL", real.url).replace("EVIL", evil.url))
    return folder


async def test_match_runbooks_ignores_a_url_from_an_alert_label(tmp_path: Path, services: tuple[FakeFlags, FakeFlags],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    real, evil = services
    folder = anywhere(tmp_path, real, evil)
    (folder / "needs-url.yaml").write_text(ANYWHERE.replace("name: read-flag-anywhere", "name: needs-url")
                                           .replace('default: "REAL", ', "required: true, ")
                                           .replace("REAL", real.url).replace("EVIL", evil.url))
    acts = RunbookActivities(lambda: RunbookSteps(None, HttpProbe(httpx.AsyncClient(), {}), None),  # type: ignore[arg-type]
                             lambda: load_runbooks([folder]), lambda: CONFIG)
    labels = {"alertname": "FlagErrors", "service": "flags", "base": evil.url, "flag": "other-flag"}
    with caplog.at_level(logging.WARNING, logger="incidentflow.runbooks"):
        requests = await acts.match_runbooks(MatchInput(incident_id="incident-1", service="flags", labels=labels))
    assert [r.runbook for r in requests] == ["read-flag-anywhere"]
    assert requests[0].params["base"] == real.url and requests[0].steps[0].args["url"] == f"{real.url}/flags/{FLAG}", \
        "a parameter that becomes part of a URL keeps its default (also `flag`, which is in the path)"
    assert "alert labels base, flag not used, a URL never comes from an alert" in caplog.text
    assert "needs-url matches incident-1 but does not run automatically: base become part of a URL" in caplog.text


# ---------------------------------------------------------------- end to end: worker, workflow, fakes


@asynccontextmanager
async def stack(env: WorkflowEnvironment, folder: Path, real: FakeFlags) -> AsyncIterator[Incidents]:
    secrets = {"flags_token": {"value": real.token, "hosts": [real.url]}}
    async with running_worker(env.client, config=lambda: CONFIG, runbooks_dir=str(folder),
                              runbook_secrets=secrets) as (settings, _):
        yield Incidents(env.client, settings, CONFIG)


async def declare(inc: Incidents) -> str:
    return await inc.declare(DeclareInput(title="Flag errors", severity=Severity.SEV3, service="flags",
                                          declared_by="alice", commander="alice", page=False))


async def test_a_param_pointing_elsewhere_sends_nothing_there(ts_env: WorkflowEnvironment, tmp_path: Path,
                                                              services: tuple[FakeFlags, FakeFlags]) -> None:
    real, evil = services
    async with stack(ts_env, anywhere(tmp_path, real, evil), real) as inc:
        iid = await declare(inc)
        # A door that knows the secrets' hosts (same settings as the worker) refuses before starting anything.
        with pytest.raises(RenderError, match=f"secret 'flags_token' may not be sent to {evil.url}"):
            await inc.run_runbook(iid, "read-flag-anywhere", {"base": evil.url}, by="alice")
        # A door that does not (a CLI elsewhere) gets the run started; the worker refuses before any request.
        door = Incidents(inc.client, inc.settings.model_copy(update={"runbook_secrets": {}}), CONFIG)
        run_id = (await door.run_runbook(iid, "read-flag-anywhere", {"base": evil.url}, by="alice")).ref
        run = await eventually(lambda: inc.runbook_run(run_id), lambda r: r.ended_at is not None)
        assert run.status == RunStatus.failed
        assert f"secret 'flags_token' may not be sent to {evil.url}" in run.results[0].summary
        assert evil.requests == [] and not leaked(evil, real.token)

        ok = (await inc.run_runbook(iid, "read-flag-anywhere", {"base": real.url}, by="alice")).ref
        run = await eventually(lambda: inc.runbook_run(ok), lambda r: r.ended_at is not None)
        assert run.status == RunStatus.succeeded, run.results
        assert real.requests[-1].headers["authorization"] == f"Bearer {real.token}"
        history = await ts_env.client.get_workflow_handle(ok).fetch_history()
        assert real.token not in history.to_json()


async def test_an_alert_label_carrying_a_url_is_not_used(ts_env: WorkflowEnvironment, tmp_path: Path,
                                                         services: tuple[FakeFlags, FakeFlags]) -> None:
    real, evil = services
    async with stack(ts_env, anywhere(tmp_path, real, evil), real) as inc:
        iid = await declare(inc)
        await inc.raise_alert(iid, AlertSignal(source="alertmanager", fingerprint="f1", title="FlagErrors",
                                               labels={"alertname": "FlagErrors", "service": "flags",
                                                       "base": evil.url}))
        state = await eventually(lambda: inc.get(iid), lambda s: bool(s.runbooks) and s.runbooks[0].status
                                 in (RunStatus.succeeded, RunStatus.failed))
        run: Any = await inc.runbook_run(state.runbooks[0].run_id)
        assert run.auto and run.status == RunStatus.succeeded, run.results
        assert run.steps[0].args["url"] == f"{real.url}/flags/{FLAG}"
    assert evil.requests == []
    assert [r.path for r in real.requests] == [f"/flags/{FLAG}"]
