"""The Temporal connection for real clusters, for real: TLS and mTLS through a TLS proxy in front of the dev
server (tests/tls_proxy.py, certificates made by `openssl`), the Temporal Cloud API key as it goes on the wire,
and `incidentflow temporal setup` where the server refuses to add search attributes."""

from __future__ import annotations

import functools
import logging
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.config import IncidentflowConfig, Settings
from domain.models import DeclareInput, Severity
from incidentflow.client import Incidents
from incidentflow.client_base import TemporalUnavailable, connect
from incidentflow.temporal_cloud import tcld_commands
from tests import test_cli
from tests.conftest import binary, running_worker
from tests.helpers import eventually
from tests.tls_proxy import TlsProxy, pki
from workflows import search_attributes as sa

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "tc-api-key-" + uuid.uuid4().hex  # unique: any appearance in output is a leak


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pki(tmp_path_factory.mktemp("pki"))


def upstream(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def tls(proxy: TlsProxy, certs: Path, client: str | None = "client", ca: str = "ca", **more: object) -> Settings:
    files = {"temporal_tls_cert": certs / f"{client}.pem", "temporal_tls_key": certs / f"{client}.key"} if client else {}
    return Settings.model_validate({"temporal_address": proxy.address, "temporal_tls_ca": certs / f"{ca}.pem",
                                    **files, **more})


async def refused(settings: Settings) -> str:
    with pytest.raises(TemporalUnavailable) as caught:
        await connect(settings, timeout=5)
    return str(caught.value)


async def test_mtls_with_the_right_ca_and_client_certificate_runs_an_incident(
        dev_env: WorkflowEnvironment, certs: Path) -> None:
    async with TlsProxy(upstream(dev_env), certs, mtls=True) as proxy:
        client = await connect(tls(proxy, certs))
        async with running_worker(client) as (settings, _):  # the worker polls through TLS too
            incidents = Incidents(client, settings, IncidentflowConfig())
            iid = await incidents.declare(DeclareInput(title="TLS all the way", severity=Severity.SEV3,
                                                       declared_by="pat"))
            state = await eventually(lambda: incidents.get(iid), lambda s: s.title == "TLS all the way")
            assert state.id == iid
    paths = {r.get(":path", "").rsplit("/", 1)[-1] for r in proxy.requests}
    assert {"StartWorkflowExecution", "PollWorkflowTaskQueue", "RespondWorkflowTaskCompleted", "PollActivityTaskQueue",
            "QueryWorkflow"} <= paths, paths
    assert proxy.clients and set(proxy.clients) == {"client"}  # every connection presented our client cert


async def test_mtls_refuses_a_missing_or_foreign_client_certificate_and_a_wrong_ca(
        dev_env: WorkflowEnvironment, certs: Path) -> None:
    async with TlsProxy(upstream(dev_env), certs, mtls=True) as proxy:
        missing = await refused(tls(proxy, certs, client=None))
        assert "it may require a client certificate (mTLS): set INCIDENTFLOW_TEMPORAL_TLS_CERT" in missing, missing
        foreign = await refused(tls(proxy, certs, client="stranger"))
        assert "did not accept the client certificate" in foreign and "stranger.pem" in foreign, foreign
        wrong_ca = await refused(tls(proxy, certs, ca="other-ca"))
        assert "the server's certificate is not signed by" in wrong_ca and "other-ca.pem" in wrong_ca, wrong_ca
        assert "INCIDENTFLOW_TEMPORAL_TLS_CA" in wrong_ca
        plaintext = await refused(Settings(temporal_address=proxy.address))
        assert "if the server expects TLS, set INCIDENTFLOW_TEMPORAL_TLS=true" in plaintext, plaintext
    assert set(proxy.clients) <= {"stranger"}  # nobody got through with our client's identity


async def test_server_name_override(dev_env: WorkflowEnvironment, certs: Path) -> None:
    async with TlsProxy(upstream(dev_env), certs, server_cert="named") as proxy:  # a cert for temporal.internal
        wrong = await refused(tls(proxy, certs, client=None))
        assert "the server's certificate is for temporal.internal, not 127.0.0.1" in wrong, wrong
        assert "INCIDENTFLOW_TEMPORAL_TLS_SERVER_NAME" in wrong
        client = await connect(tls(proxy, certs, client=None, temporal_tls_server_name="temporal.internal"))
        await client.workflow_service.get_system_info(GetSystemInfoRequest())


async def test_bad_files_are_named_by_their_variable_and_never_quoted(tmp_path: Path, certs: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    address = {"temporal_address": "127.0.0.1:1"}
    missing = await refused(Settings(**address, temporal_tls_ca=tmp_path / "nope.pem"))  # type: ignore[arg-type]
    assert f"INCIDENTFLOW_TEMPORAL_TLS_CA: cannot read {tmp_path / 'nope.pem'}: No such file" in missing, missing
    secret = tmp_path / "key.txt"
    secret.write_text("hunter2-not-a-pem-key")
    not_pem = await refused(Settings(**address, temporal_tls_cert=certs / "client.pem",  # type: ignore[arg-type]
                                     temporal_tls_key=secret))
    assert "INCIDENTFLOW_TEMPORAL_TLS_KEY" in not_pem and "is not a PEM private key" in not_pem, not_pem
    assert "hunter2" not in not_pem
    swapped = await refused(Settings(**address, temporal_tls_cert=certs / "client.pem",  # type: ignore[arg-type]
                                     temporal_tls_key=certs / "client.pem"))
    assert "INCIDENTFLOW_TEMPORAL_TLS_KEY" in swapped, swapped
    directory = await refused(Settings(**address, temporal_tls_ca=tmp_path))  # type: ignore[arg-type]
    assert "INCIDENTFLOW_TEMPORAL_TLS_CA: cannot read" in directory, directory
    with pytest.raises(ValidationError, match="INCIDENTFLOW_TEMPORAL_TLS_CERT and INCIDENTFLOW_TEMPORAL_TLS_KEY"):
        Settings(temporal_tls_cert=certs / "client.pem")
    with pytest.raises(ValidationError, match="INCIDENTFLOW_TEMPORAL_TLS is false"):
        Settings(temporal_tls=False, temporal_tls_ca=certs / "ca.pem")
    assert Settings(temporal_api_key=API_KEY).temporal_tls_enabled  # type: ignore[arg-type]
    assert not Settings(temporal_api_key=API_KEY, temporal_tls=False).temporal_tls_enabled  # type: ignore[arg-type]
    assert API_KEY not in repr(Settings(temporal_api_key=API_KEY))  # type: ignore[arg-type]
    for blank in ("TLS", "TLS_CA", "TLS_CERT", "TLS_KEY", "TLS_SERVER_NAME", "API_KEY"):  # compose's ${VAR:-}
        monkeypatch.setenv(f"INCIDENTFLOW_TEMPORAL_{blank}", "")
    monkeypatch.setenv("INCIDENTFLOW_WORKER_METRICS_PORT", "")
    unset = Settings()
    assert not unset.temporal_tls_enabled and unset.temporal_tls_ca is None and unset.worker_metrics_port is None


async def test_api_key_goes_as_bearer_metadata_and_never_into_errors_or_logs(
        dev_env: WorkflowEnvironment, certs: Path, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    async with TlsProxy(upstream(dev_env), certs) as proxy:
        client = await connect(tls(proxy, certs, client=None, temporal_api_key=API_KEY))
        await client.workflow_service.get_system_info(GetSystemInfoRequest())
        await client.count_workflows()
        assert proxy.requests
        assert {r.get("authorization") for r in proxy.requests} == {f"Bearer {API_KEY}"}, proxy.requests
        failed = await refused(tls(proxy, certs, client=None, ca="other-ca", temporal_api_key=API_KEY))
        assert "API key" in failed and API_KEY not in failed
        run = await cli("list", env={"INCIDENTFLOW_TEMPORAL_ADDRESS": proxy.address, "INCIDENTFLOW_LOG_LEVEL": "DEBUG",
                                     "INCIDENTFLOW_TEMPORAL_TLS_CA": str(certs / "other-ca.pem"),
                                     "INCIDENTFLOW_TEMPORAL_API_KEY": API_KEY})
        assert run.code == 3 and "not signed by" in run.err, run
        assert API_KEY not in run.out + run.err
    out, err = capfd.readouterr()
    assert API_KEY not in out + err + caplog.text


cli = functools.partial(test_cli.cli, clean=True)  # only the variables each case sets


async def test_temporal_setup_prints_tcld_commands_when_the_server_refuses(certs: Path) -> None:
    """A server that refuses to add our attributes: the dev server with its 3 Datetime slots taken (Temporal Cloud
    refuses the operator API outright). With an API key (Cloud) setup prints the tcld commands; self-hosted, as before."""
    taken = [SearchAttributeKey.for_datetime(f"Taken{i}") for i in range(3)]
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=binary("temporal"), search_attributes=taken,
                                                data_converter=pydantic_data_converter, ui=False)
    try:
        async with TlsProxy(upstream(env), certs) as proxy:
            cloud = {"INCIDENTFLOW_TEMPORAL_ADDRESS": proxy.address, "INCIDENTFLOW_TEMPORAL_API_KEY": API_KEY,
                     "INCIDENTFLOW_TEMPORAL_TLS_CA": str(certs / "ca.pem")}
            run = await cli("temporal", "setup", env=cloud)
            assert run.code == 1, run
            assert "Temporal refused to register incidentflow's search attributes in namespace default" in run.out
            for line in tcld_commands("default", list(sa.ALL)):
                assert f"  {line}\n" in run.out + "\n", (line, run.out)
            assert "tcld namespace search-attributes add --namespace default --search-attribute " \
                   "IncidentDeclaredAt=Datetime" in run.out
            assert API_KEY not in run.out + run.err
            assert any(r.get("authorization") == f"Bearer {API_KEY}" and r[":path"].endswith("/AddSearchAttributes")
                       for r in proxy.requests)
        self_hosted = await cli("temporal", "setup", env={"INCIDENTFLOW_TEMPORAL_ADDRESS": upstream(env)})
        assert self_hosted.code != 0 and "tcld" not in self_hosted.out + self_hosted.err, self_hosted
        assert "cannot have more than 3 search attribute of type Datetime" in self_hosted.err
    finally:
        await env.shutdown()


async def test_temporal_setup_with_an_api_key_where_the_server_accepts(certs: Path) -> None:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=binary("temporal"),
                                                data_converter=pydantic_data_converter, ui=False)
    try:
        async with TlsProxy(upstream(env), certs) as proxy:
            cloud = {"INCIDENTFLOW_TEMPORAL_ADDRESS": proxy.address, "INCIDENTFLOW_TEMPORAL_API_KEY": API_KEY,
                     "INCIDENTFLOW_TEMPORAL_TLS_CA": str(certs / "ca.pem")}
            first = await cli("temporal", "setup", env=cloud)
            assert first.code == 0 and first.out.startswith("search attributes added: "), first
            again = await cli("temporal", "setup", env=cloud)
            assert again.code == 0 and again.out.strip() == "search attributes already registered", again
    finally:
        await env.shutdown()
