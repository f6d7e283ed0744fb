"""Process settings from the environment (INCIDENTFLOW_*), validated; secrets live here, never in workflow
inputs or history. `domain.config` re-exports them beside the YAML config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.models.base import _Strict


class RunbookSecret(_Strict):
    """A `${secret:NAME}` value of INCIDENTFLOW_RUNBOOK_SECRETS and the hosts it may be sent to.

    `{"flags_token": {"value": "…", "hosts": ["flags.internal", "*.flags.example.com"]}}`. The old plain
    form `{"flags_token": "…"}` still loads, bound to no host: a step that uses it is refused (with a
    message saying how to bind it) until hosts are given. Patterns: domain/runbooks/hosts.py.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    value: SecretStr
    hosts: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, data: Any) -> Any:
        return {"value": data} if isinstance(data, (str, SecretStr)) else data

    @field_validator("hosts")
    @classmethod
    def _patterns(cls, hosts: list[str]) -> list[str]:
        from domain.runbooks.hosts import parse_patterns  # domain.runbooks imports this module

        parse_patterns(hosts)  # ValueError names the bad pattern
        return hosts


class Settings(BaseSettings):
    """Process settings. Secrets (later: tokens) come from here, never from workflow inputs."""

    # hide_input_in_errors: a malformed INCIDENTFLOW_RUNBOOK_SECRETS (or token) must not print its values
    model_config = SettingsConfigDict(env_prefix="INCIDENTFLOW_", extra="ignore", hide_input_in_errors=True)

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    # Temporal over TLS (a cluster, or Temporal Cloud): PEM files, read when connecting. None: TLS when any of
    # the others is set; false with an API key: plaintext to a local proxy (a sidecar) that adds TLS
    temporal_tls: bool | None = None
    temporal_tls_ca: Path | None = None  # CA that signed the server's certificate (else the system roots)
    temporal_tls_cert: Path | None = None  # client certificate (mTLS), with its key
    temporal_tls_key: Path | None = None
    temporal_tls_server_name: str | None = None  # the name the server's certificate carries, if not the host's
    temporal_api_key: SecretStr | None = None  # Temporal Cloud API key: sent as `authorization: Bearer …`
    # The worker's Prometheus endpoint (Temporal SDK metrics and incidentflow's own); None: off
    worker_metrics_port: int | None = Field(None, ge=1, le=65535)
    worker_metrics_host: str = "0.0.0.0"
    # Run workflow code in the SDK's sandbox. Off by default: measured, the sandbox costs ~40 % of a worker's CPU
    # (it re-enters itself for every payload of every workflow task; bench/README.md "Issue 16"). The test suite
    # runs every workflow sandboxed (tests/conftest.py turns it on), replays are sandboxed, and ruff bans
    # clocks, randomness and the environment in workflows/ (pyproject.toml): determinism is checked there.
    workflow_sandbox: bool = False
    task_queue: str = "incidentflow"
    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, ge=1, le=65535)
    config: Path | None = None
    data_dir: Path = Path(".incidentflow")
    ui_port: int = Field(8233, ge=1, le=65535)
    temporal_ui_url: str | None = None  # link base for the Web UI; derived for the embedded server
    user: str | None = None  # default actor for CLI commands
    # HTTP API: bearer tokens (all /v1 routes; a per-source token overrides it for that webhook)
    api_token: SecretStr | None = None
    alertmanager_token: SecretStr | None = None
    grafana_token: SecretStr | None = None
    generic_token: SecretStr | None = None
    grafana_hmac_secret: SecretStr | None = None  # checks X-Grafana-Alerting-Signature when set
    grafana_hmac_timestamp_header: str | None = None  # the timestamp header name, if Grafana sends one
    max_body_bytes: int = Field(1_048_576, ge=1024)
    # seconds a worker has to accept a command before the door answers 503 + Retry-After (CLI exit 4)
    command_deadline: float = Field(10.0, gt=0, le=300)
    max_inflight: int = Field(256, ge=1)  # concurrent webhook requests before shedding load with 503
    # Paging (secrets stay here, on the worker: never in workflow inputs or history)
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    pagerduty_routing_keys: dict[str, SecretStr] = Field(default_factory=dict)  # JSON: {"checkout": "R0UT…"}
    pagerduty_default_routing_key: SecretStr | None = None
    pagerduty_webhook_secrets: list[SecretStr] = Field(default_factory=list)  # JSON list; v3 webhook signatures
    paging_webhook_url: str | None = None  # SMS/voice gateway: signed JSON POST per page
    paging_webhook_secret: SecretStr | None = None
    # Slack (chat ops): the bot token goes to the worker and the API; the signing secret to the API only
    slack_api_url: str = "https://slack.com/api/"
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None  # xapp-…: Socket Mode instead of public HTTP endpoints
    slack_incidents_channel: str = "incidents"  # announcements of new incidents

    # Runbooks: YAML under ./runbooks plus this directory; side effects run on the worker with these
    runbooks_dir: Path | None = None
    kubeconfig: Path | None = None  # else KUBECONFIG / ~/.kube/config, else in-cluster
    kube_context: str | None = None
    prometheus_url: str | None = None  # for prometheus.query steps (verification)
    prometheus_token: SecretStr | None = None
    # JSON {"NAME": {"value": "…", "hosts": ["flags.internal"]}}: ${secret:NAME} in step headers, sent only there
    runbook_secrets: dict[str, RunbookSecret] = Field(default_factory=dict)
    # Status page: the records store (subscribers), status mail, and an optional Atlassian Statuspage mirror
    database_url: SecretStr | None = None  # default sqlite under data_dir; postgresql+psycopg://… for production
    smtp_url: SecretStr | None = None  # smtp://user:pass@host:587?starttls=true&from=status@example.com
    subscriber_key: SecretStr | None = None  # derives unsubscribe links: keep stable, keep secret
    statuspage_io_url: str = "https://api.statuspage.io"
    statuspage_io_page_id: str | None = None
    statuspage_io_api_key: SecretStr | None = None
    statuspage_io_components: dict[str, str] = Field(default_factory=dict)  # JSON: our id -> Statuspage's

    @field_validator("temporal_tls", "temporal_tls_ca", "temporal_tls_cert", "temporal_tls_key",
                     "temporal_tls_server_name", "worker_metrics_port", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        """`INCIDENTFLOW_TEMPORAL_TLS_CA=` (compose's `${VAR:-}`) means unset, not the current directory."""
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _temporal_tls(self) -> Settings:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError("INCIDENTFLOW_TEMPORAL_TLS_CERT and INCIDENTFLOW_TEMPORAL_TLS_KEY go together (the "
                             "client certificate and its private key): set both or neither")
        files = [name for name, value in (("CA", self.temporal_tls_ca), ("CERT", self.temporal_tls_cert),
                                          ("SERVER_NAME", self.temporal_tls_server_name)) if value]
        if self.temporal_tls is False and files:
            raise ValueError(f"INCIDENTFLOW_TEMPORAL_TLS is false but INCIDENTFLOW_TEMPORAL_TLS_{files[0]} is set: "
                             "unset one of them")
        return self

    @property
    def temporal_tls_enabled(self) -> bool:
        """TLS to Temporal: asked for, or implied by a CA, a client certificate, a server name or an API key."""
        if self.temporal_tls is not None:
            return self.temporal_tls
        return any((self.temporal_tls_ca, self.temporal_tls_cert, self.temporal_tls_server_name,
                    self.temporal_api_key))

    def runbook_secret_hosts(self) -> dict[str, list[str]]:
        """Each runbook secret's host patterns (no values): for `runbook check` and render-time checks."""
        return {name: list(secret.hosts) for name, secret in self.runbook_secrets.items()}

    def runbook_paths(self) -> list[Path]:
        paths = [p for p in (Path("runbooks"),) if p.is_dir()]
        if self.runbooks_dir is not None:
            paths.append(self.runbooks_dir)
        return paths

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None and bool(self.slack_bot_token.get_secret_value())

    def ui_url(self) -> str:
        if self.temporal_ui_url:
            return self.temporal_ui_url.rstrip("/")
        host = self.temporal_address.rsplit(":", 1)[0]
        return f"http://{host}:{self.ui_port}"

    def workflow_url(self, workflow_id: str) -> str:
        return f"{self.ui_url()}/namespaces/{self.temporal_namespace}/workflows/{workflow_id}"
