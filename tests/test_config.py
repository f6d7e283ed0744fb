"""Config file, durations, environment settings and `incidentflow config check`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from domain.config import ConfigError, Settings, load_config, parse_duration
from domain.escalation_check import levels_adding_nobody
from domain.models.incident import IncidentPolicy, Severity
from incidentflow.cli import main

EXAMPLE = Path(__file__).parent.parent / "config/example.yaml"
ENV = ["TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TASK_QUEUE", "API_HOST", "API_PORT", "CONFIG", "DATA_DIR",
       "UI_PORT", "TEMPORAL_UI_URL", "USER"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(f"INCIDENTFLOW_{name}", raising=False)


# ---------------------------------------------------------------- the example file

def test_example_loads() -> None:
    cfg = load_config(EXAMPLE)
    assert [s.name for s in cfg.services] == ["checkout", "search", "login"]
    assert [p.id for p in cfg.people] == ["alice", "bob", "carol", "dan", "erin", "frank"]
    assert cfg.service("checkout").owner == "payments"
    assert cfg.service("nope") is None


def test_example_policy_matches_the_defaults() -> None:
    got, default = load_config(EXAMPLE).incident_policy(), IncidentPolicy()
    fields = ["first_update_after", "update_every", "monitoring_window", "auto_close_after",
              "postmortem_required", "postmortem_business_days", "postmortem_remind_before",
              "postmortem_overdue_every", "postmortem_max_overdue_reminders"]
    assert {f: getattr(got, f) for f in fields} == {f: getattr(default, f) for f in fields}
    assert got.model_copy(update={"public": None}) == default  # the example adds a status page
    assert got.public is not None and got.public.components["checkout"] == ["checkout"]


def test_every_escalation_level_of_the_example_reaches_someone_new() -> None:
    """`incidentflow oncall` once showed primary dan / secondary dan: L2 re-paged L1's person."""
    cfg = load_config(EXAMPLE)
    assert levels_adding_nobody(cfg.schedules, cfg.escalation_policies, datetime(2026, 1, 1, tzinfo=UTC)) == []


def test_a_level_that_only_repages_an_earlier_level_is_caught(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    old_secondary = text.replace("participants: [erin, frank], handoff_time: \"10:30\"",
                                 "participants: [carol, dan], handoff_time: \"10:30\"")
    assert old_secondary != text
    cfg = load_config(write(tmp_path, old_secondary, "example.yaml"))
    problems = levels_adding_nobody(cfg.schedules, cfg.escalation_policies, datetime(2026, 1, 1, tzinfo=UTC))
    assert any(p.startswith("escalation policy 'checkout' level 2 pages nobody new") and "only dan" in p
               for p in problems), problems
    assert any(p.startswith("escalation policy 'checkout' level 3") and "only carol" in p for p in problems)
    gap = cfg.model_copy(update={"schedules": [s for s in cfg.schedules if s.name != "search-oncall"]})
    assert any("'default' level 1 pages nobody new" in p and "resolves to nobody" in p
               for p in levels_adding_nobody(gap.schedules, gap.escalation_policies, datetime(2026, 1, 1, tzinfo=UTC)))


def test_no_config_file_means_defaults() -> None:
    assert load_config(None).incident_policy() == IncidentPolicy()


# ---------------------------------------------------------------- durations

@pytest.mark.parametrize("raw, expected", [
    ("30s", timedelta(seconds=30)), ("15m", timedelta(minutes=15)), ("1h", timedelta(hours=1)),
    ("5d", timedelta(days=5)), ("1w", timedelta(weeks=1)), (90, timedelta(seconds=90)),
    ("1.5h", timedelta(minutes=90)), (" 10 min ", timedelta(minutes=10)), ("250ms", timedelta(milliseconds=250)),
    ("45", timedelta(seconds=45)), (timedelta(hours=2), timedelta(hours=2)),
])
def test_parse_duration(raw: object, expected: timedelta) -> None:
    assert parse_duration(raw) == expected


@pytest.mark.parametrize("raw", ["soon", "15x", "", "m15", "1h30m", "-5m"])
def test_parse_duration_rejects(raw: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_duration(raw)
    assert f"invalid duration {raw!r}" in str(exc.value)
    assert "15m" in str(exc.value)  # shows an example of the right form


# ---------------------------------------------------------------- load_config errors

def write(tmp_path: Path, text: str, name: str = "broken.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    return str(exc.value)


def test_typo_in_a_service_field(tmp_path: Path) -> None:
    path = write(tmp_path, "services:\n  - name: checkout\n    owner: payments\n"
                           "  - name: search\n    ownr: discovery\n")
    assert config_error(path) == f"{path}:5: services.1.ownr: Extra inputs are not permitted"


def test_unknown_top_level_key_with_scalar_value(tmp_path: Path) -> None:
    path = write(tmp_path, "people: []\nservics: checkout\n")
    assert config_error(path).startswith(f"{path}:2: servics: Extra inputs are not permitted")


def test_unknown_top_level_key_with_block_value(tmp_path: Path) -> None:
    path = write(tmp_path, "people: []\nservics:\n  - name: checkout\n")
    assert config_error(path).startswith(f"{path}:2: servics:")


def test_bad_duration_under_update_every_first_entry(tmp_path: Path) -> None:
    path = write(tmp_path, "policy:\n  update_every:\n    SEV1: 15x\n    SEV2: 30m\n")
    msg = config_error(path)
    assert msg.startswith(f"{path}:3: policy.update_every")
    assert "invalid duration '15x'" in msg


def test_bad_duration_under_update_every_later_entry(tmp_path: Path) -> None:
    path = write(tmp_path, "policy:\n  update_every:\n    SEV1: 15m\n    SEV2: 30x\n    SEV3: 60m\n")
    msg = config_error(path)
    assert msg.startswith(f"{path}:4: policy.update_every")
    assert "invalid duration '30x'" in msg


def test_bad_duration_in_a_plain_field(tmp_path: Path) -> None:
    path = write(tmp_path, "people: []\npolicy:\n  first_update_after: 10m\n  monitoring_window: soon\n")
    assert config_error(path) == (f"{path}:4: policy.monitoring_window: "
                                  "Value error, invalid duration 'soon': use e.g. 30s, 15m, 1h, 5d")


def test_bad_nested_postmortem_duration(tmp_path: Path) -> None:
    path = write(tmp_path, "policy:\n  postmortem:\n    business_days: 5\n    overdue_every: 1 day\n")
    assert config_error(path).startswith(f"{path}:4: policy.postmortem.overdue_every: ")


def test_bad_severity_key(tmp_path: Path) -> None:
    path = write(tmp_path, "policy:\n  update_every:\n    SEV1: 15m\n    SEV5: 1h\n")
    msg = config_error(path)
    assert msg.startswith(f"{path}:4: policy.update_every")
    assert "unknown severity 'SEV5'" in msg


def test_bad_severity_key_first_entry(tmp_path: Path) -> None:
    path = write(tmp_path, "people: []\npolicy:\n  update_every:\n    SEV5: 1h\n")
    msg = config_error(path)
    assert msg.startswith(f"{path}:4: policy.update_every")
    assert "unknown severity 'SEV5'" in msg and "SEV1, SEV2, SEV3, SEV4" in msg


def test_bad_severity_in_postmortem_list(tmp_path: Path) -> None:
    path = write(tmp_path, "policy:\n  postmortem:\n    required_for:\n      - SEV1\n      - SEV9\n")
    assert config_error(path).startswith(f"{path}:5: policy.postmortem.required_for.1: ")


def test_invalid_yaml_syntax(tmp_path: Path) -> None:
    path = write(tmp_path, "people: []\nservices: x: y\n")
    assert config_error(path).startswith(f"{path}:2: invalid YAML: ")


def test_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- just\n- a list\n")
    assert config_error(path).startswith(f"{path}:1: ")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    msg = config_error(path)
    assert msg.startswith(f"{path}: cannot read config")
    assert "No such file" in msg


def test_every_problem_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "services:\n  - name: ok\n    ownr: x\npolicy:\n  monitoring_window: later\n")
    lines = config_error(path).splitlines()
    assert lines == [f"{path}:3: services.0.ownr: Extra inputs are not permitted",
                     f"{path}:5: policy.monitoring_window: "
                     "Value error, invalid duration 'later': use e.g. 30s, 15m, 1h, 5d"]


def test_valid_overrides_are_applied(tmp_path: Path) -> None:
    path = write(tmp_path, "policy:\n  update_every: {1: 5m, sev4: 2h}\n  auto_close_after: null\n"
                           "  postmortem: {business_days: 3, required_for: [SEV1]}\n", "ok.yaml")
    p = load_config(path).incident_policy()
    assert p.update_every == {Severity.SEV1: timedelta(minutes=5), Severity.SEV2: timedelta(minutes=30),
                              Severity.SEV3: timedelta(hours=1), Severity.SEV4: timedelta(hours=2)}
    assert p.auto_close_after is None
    assert p.postmortem_business_days == 3 and p.postmortem_required == [Severity.SEV1]


# ---------------------------------------------------------------- settings

def test_settings_defaults() -> None:
    s = Settings()
    assert (s.temporal_address, s.temporal_namespace, s.task_queue, s.api_port, s.config) == \
        ("127.0.0.1:7233", "default", "incidentflow", 8080, None)
    assert s.workflow_url("incident-1") == "http://127.0.0.1:8233/namespaces/default/workflows/incident-1"


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIDENTFLOW_TEMPORAL_ADDRESS", "temporal.internal:7233")
    monkeypatch.setenv("INCIDENTFLOW_TEMPORAL_NAMESPACE", "prod")
    monkeypatch.setenv("INCIDENTFLOW_TASK_QUEUE", "incidents-q")
    monkeypatch.setenv("INCIDENTFLOW_API_PORT", "9090")
    monkeypatch.setenv("INCIDENTFLOW_CONFIG", str(EXAMPLE))
    s = Settings()
    assert (s.temporal_address, s.temporal_namespace, s.task_queue, s.api_port, s.config) == \
        ("temporal.internal:7233", "prod", "incidents-q", 9090, EXAMPLE)
    assert s.workflow_url("x") == "http://temporal.internal:8233/namespaces/prod/workflows/x"


def test_explicit_ui_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIDENTFLOW_TEMPORAL_UI_URL", "https://ui.example.com/")
    assert Settings().workflow_url("x") == "https://ui.example.com/namespaces/default/workflows/x"


@pytest.mark.parametrize("port", ["99999", "0", "http"])
def test_invalid_api_port(monkeypatch: pytest.MonkeyPatch, port: str) -> None:
    monkeypatch.setenv("INCIDENTFLOW_API_PORT", port)
    with pytest.raises(ValidationError) as exc:
        Settings()
    assert exc.value.errors()[0]["loc"] == ("api_port",)


# ---------------------------------------------------------------- CLI: config check

def test_cli_config_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"{EXAMPLE}: ok (3 services, 6 people)"
    assert err == ""


def test_cli_config_check_broken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "services:\n  - name: a\n  - name: b\n    ownr: x\n")
    assert main(["config", "check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert re.search(rf"^error: {re.escape(str(path))}:4: services\.1\.ownr: Extra inputs are not permitted$",
                     err, re.M)
