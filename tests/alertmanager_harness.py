"""A real Prometheus Alertmanager for tests (and the script that captured tests/fixtures/alertmanager-*.json).

The binary comes from the Debian package `prometheus-alertmanager` (0.25.0 on bookworm); when it is
missing and we are root, `alertmanager_binary()` apt-installs it. Usage:

    with WebhookRecorder() as hook, Alertmanager(hook.url, tmp_path, bearer_token="t") as am:
        am.fire({"alertname": "X", "service": "checkout"})
        request = hook.wait_for(lambda r: r.json()["status"] == "firing")

`Alertmanager` runs the binary on a free 127.0.0.1 port with clustering (HA gossip) disabled
(`--cluster.listen-address=` empty: "Set to empty string to disable HA mode", per `--help`), storage in
`tmp_dir`, and one route to a webhook receiver named "incidentflow". The process is stopped on
`__exit__`, at interpreter exit (atexit) and, when started from the main thread on Linux, by the kernel
if this process dies (PR_SET_PDEATHSIG), so it cannot outlive the test run.

Regenerate the fixtures with `python -m tests.alertmanager_harness capture tests/fixtures`.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from tests.debian import ensure

BINARY_NAMES = ("prometheus-alertmanager", "alertmanager")
DEBIAN_PACKAGE = "prometheus-alertmanager"
RECEIVER = "incidentflow"


# --------------------------------------------------------------------------------------------- binary
def alertmanager_binary() -> str:
    """Path of the Alertmanager binary; apt-installs `prometheus-alertmanager` when missing and root."""
    return ensure(DEBIAN_PACKAGE, BINARY_NAMES)


# ---------------------------------------------------------------------------------------------- utils
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rfc3339(t: datetime) -> str:
    """UTC, millisecond precision, `Z` suffix: what Alertmanager's API (go-openapi strfmt) expects."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _load_prctl() -> Callable[..., int] | None:
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # resolved in the parent: the child only calls it (no dlopen after fork)
_PR_SET_PDEATHSIG = 1


def _pdeathsig() -> None:  # runs in the child between fork and exec
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


_LIVE: set[subprocess.Popen[bytes]] = set()  # strong refs: stopped at exit even if the owner was dropped


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    _LIVE.discard(proc)
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@atexit.register
def _stop_all() -> None:
    for proc in list(_LIVE):
        _terminate(proc)


# ------------------------------------------------------------------------------------- alertmanager
class Alertmanager:
    """A real Alertmanager routing every alert to one webhook receiver ("incidentflow")."""

    def __init__(self, webhook_url: str, tmp_dir: Path, bearer_token: str | None = None,
                 group_by: Iterable[str] = ("alertname", "service"), group_wait: str = "1s",
                 group_interval: str = "1s", repeat_interval: str = "1h", resolve_timeout: str = "5m",
                 external_url: str | None = None, startup_timeout: float = 20.0) -> None:
        self.webhook_url = webhook_url
        self.tmp_dir = Path(tmp_dir)
        self.bearer_token = bearer_token
        self.group_by = list(group_by)
        self.group_wait, self.group_interval, self.repeat_interval = group_wait, group_interval, repeat_interval
        self.resolve_timeout = resolve_timeout
        self.external_url = external_url
        self.startup_timeout = startup_timeout
        self.port = 0
        self.url = ""
        self.config_path = self.tmp_dir / "alertmanager.yml"
        self.storage_path = self.tmp_dir / "alertmanager-data"
        self.log_path = self.tmp_dir / "alertmanager.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._starts: dict[frozenset[tuple[str, str]], datetime] = {}

    # -- config
    def config(self) -> dict[str, Any]:
        webhook: dict[str, Any] = {"url": self.webhook_url, "send_resolved": True, "max_alerts": 0}
        if self.bearer_token is not None:
            webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": self.bearer_token}}
        return {
            "global": {"resolve_timeout": self.resolve_timeout},
            "route": {"receiver": RECEIVER, "group_by": self.group_by, "group_wait": self.group_wait,
                      "group_interval": self.group_interval, "repeat_interval": self.repeat_interval},
            "receivers": [{"name": RECEIVER, "webhook_configs": [webhook]}],
        }

    # -- lifecycle
    def __enter__(self) -> Alertmanager:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        binary = alertmanager_binary()
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.storage_path.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        last_error = ""
        for _ in range(3):  # a free port can be taken between probe and bind: retry on a new one
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            argv = [binary, f"--config.file={self.config_path}", f"--storage.path={self.storage_path}",
                    f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
                    f"--web.external-url={self.external_url or self.url}", "--log.level=debug"]
            main_thread = threading.current_thread() is threading.main_thread()
            with open(self.log_path, "ab") as log:
                log.write(f"\n$ {' '.join(argv)}\n".encode())
                log.flush()
                self._proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    preexec_fn=_pdeathsig if _PRCTL is not None and main_thread else None)
            _LIVE.add(self._proc)
            try:
                self._wait_ready()
                return
            except RuntimeError as e:
                last_error = str(e)
                self.stop()
                if "address already in use" not in _tail(self.log_path).lower():
                    break
        raise RuntimeError(last_error)

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited with {self._proc.returncode} during startup; "
                                   f"log {self.log_path}:\n{_tail(self.log_path)}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"alertmanager not ready at {self.url}/-/ready within {self.startup_timeout} s; "
                           f"log {self.log_path}:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return _tail(self.log_path, chars)

    # -- API
    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            raise RuntimeError(f"{method} {path} -> {e.code}: {detail}\nlog:\n{self.log_tail()}") from e
        return json.loads(raw) if raw.strip() else None

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """POST /api/v2/alerts. Each alert: labels (required), annotations, startsAt, endsAt, generatorURL;
        datetimes may be given as `datetime` (converted to RFC 3339 UTC) or strings."""
        payload = []
        for a in alerts:
            item: dict[str, Any] = {"labels": dict(a["labels"])}
            for key in ("annotations", "startsAt", "endsAt", "generatorURL"):
                value = a.get(key)
                if value is not None:
                    item[key] = rfc3339(value) if isinstance(value, datetime) else value
            payload.append(item)
        self._request("POST", "/api/v2/alerts", payload)

    def fire(self, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None,
             generator_url: str | None = None) -> None:
        """Post a firing alert: startsAt now (kept across re-fires), no endsAt (Alertmanager then resolves
        it after resolve_timeout unless re-posted; the webhook shows endsAt 0001-01-01T00:00:00Z)."""
        key = frozenset(labels.items())
        starts = self._starts.setdefault(key, datetime.now(UTC))
        self.post_alerts([{"labels": labels, "annotations": annotations, "startsAt": starts,
                           "generatorURL": generator_url}])

    def resolve(self, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None,
                generator_url: str | None = None) -> None:
        """Post the same labels with endsAt = now (already past when Alertmanager evaluates it). startsAt is
        the one `fire` used (Alertmanager rejects endsAt < startsAt)."""
        ends = datetime.now(UTC)
        starts = self._starts.pop(frozenset(labels.items()), ends - timedelta(seconds=1))
        self.post_alerts([{"labels": labels, "annotations": annotations, "startsAt": min(starts, ends),
                           "endsAt": ends, "generatorURL": generator_url}])

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts (what Alertmanager currently holds)."""
        result = self._request("GET", "/api/v2/alerts")
        return list(result or [])


# ------------------------------------------------------------------------------------ webhook recorder
@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class WebhookRecorder:
    """A stdlib HTTP server on a free loopback port (in a thread) recording every request; answers 200."""

    def __init__(self, path: str = "/webhook", status: int = 200) -> None:
        self.path = path
        self.status = status
        self.requests: list[RecordedRequest] = []
        self._cond = threading.Condition()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = RecordedRequest(self.command, self.path, list(self.headers.items()), body)
                with recorder._cond:
                    recorder.requests.append(req)
                    recorder._cond.notify_all()
                self.send_response(recorder.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = do_GET = _record  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-recorder",
                                        daemon=True)

    def __enter__(self) -> WebhookRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, predicate: Callable[[RecordedRequest], bool] = lambda r: True,
                 timeout: float = 15.0, start: int = 0) -> RecordedRequest:
        """The first request (from index `start`) matching `predicate`, waiting up to `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for req in self.requests[start:]:
                    if predicate(req):
                        return req
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching webhook request within {timeout} s; "
                                       f"got {len(self.requests)}: {[r.body[:300] for r in self.requests]}")
                self._cond.wait(left)


# ------------------------------------------------------------------------------------- fixture capture
CHECKOUT_LABELS = {"alertname": "CheckoutErrorRate", "service": "checkout", "severity": "critical",
                   "instance": "web-1"}
CHECKOUT_ANNOTATIONS = {"summary": "Checkout error rate above 5%",
                        "runbook_url": "https://runbooks.example.com/checkout"}
GENERATOR_URL = ("http://prometheus.example.com:9090/graph?g0.expr=job%3Acheckout_errors%3Arate5m+%3E+0.05"
                 "&g0.tab=1")


def capture(out_dir: Path, tmp_dir: Path, token: str = "test-token") -> dict[str, float]:
    """Drive a real Alertmanager through firing -> two alerts -> resolved and save what it POSTed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    web2 = {**CHECKOUT_LABELS, "instance": "web-2"}
    timings: dict[str, float] = {}

    def save(name: str, data: Any) -> None:
        (out_dir / name).write_text(json.dumps(data, indent=2) + "\n")

    with WebhookRecorder() as hook, Alertmanager(hook.url, tmp_dir, bearer_token=token) as am:
        t0 = time.monotonic()
        am.fire(CHECKOUT_LABELS, CHECKOUT_ANNOTATIONS, GENERATOR_URL)
        first = hook.wait_for(lambda r: len(r.json()["alerts"]) == 1)
        timings["firing"] = first.received_at - t0

        t1 = time.monotonic()
        am.fire(web2, CHECKOUT_ANNOTATIONS, GENERATOR_URL)
        two = hook.wait_for(lambda r: len(r.json()["alerts"]) == 2)
        timings["firing-two"] = two.received_at - t1

        t2 = time.monotonic()
        am.resolve(CHECKOUT_LABELS, CHECKOUT_ANNOTATIONS, GENERATOR_URL)
        am.resolve(web2, CHECKOUT_ANNOTATIONS, GENERATOR_URL)
        resolved = hook.wait_for(lambda r: r.json()["status"] == "resolved"
                                 and all(a["status"] == "resolved" for a in r.json()["alerts"]))
        timings["resolved"] = resolved.received_at - t2

        save("alertmanager-firing.json", first.json())
        save("alertmanager-firing-two.json", two.json())
        save("alertmanager-resolved.json", resolved.json())
        save("alertmanager-headers.json", {"method": first.method, "path": first.path,
                                           "headers": dict(first.headers)})
        timings["requests"] = len(hook.requests)
    return timings


def main(argv: list[str]) -> int:
    import tempfile

    if len(argv) != 2 or argv[0] != "capture":
        print("usage: python -m tests.alertmanager_harness capture OUT_DIR", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="alertmanager-") as tmp:
        print(json.dumps(capture(Path(argv[1]), Path(tmp)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
