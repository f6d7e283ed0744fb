"""A fake Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`): real HTTP on a loopback port.

Runs a stdlib `ThreadingHTTPServer` in a daemon thread (see `tests/fakes/kubernetes.HttpFake`), state under
a lock. Answers are programmed per exact query string; everything asked is recorded.

    with FakePrometheus() as prom:
        q = 'sum(rate(http_requests_total{job="checkout",code=~"5.."}[5m]))'
        prom.set(q, [0.4, 0.2, 0.01])          # each call answers the next value; the last one repeats
        prom.set_vector("up", [({"job": "checkout", "instance": "a"}, 1), ({"job": "checkout"}, 0)])
        prom.fail_next(1, status=503)
        r = httpx.get(prom.url + "/api/v1/query", params={"query": q})
        assert prom.queries == [q]

Wire format as Prometheus: `{"status": "success", "data": {"resultType": "vector", "result":
[{"metric": {...}, "value": [<unix ts float>, "<value as string>"]}]}}`; values formatted like Go
(`1`, `0.25`, `NaN`, `+Inf`). Errors: `{"status": "error", "errorType": "bad_data"|"unavailable"|...,
"error": "..."}`. A query with unbalanced brackets, an empty query, the literal "bad(" or one registered with
`invalid()` gets 400 bad_data "parse error". Unknown queries answer an empty vector.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tests.fakes.kubernetes import HttpFake, RecordedRequest, Reply

Sample = tuple[dict[str, str], float | int | str | None]  # labels, value (None: no sample)
_ERROR_TYPES = {400: "bad_data", 422: "execution", 429: "unavailable", 500: "internal", 503: "unavailable",
                504: "timeout"}


def format_value(value: float | int | str) -> str:
    """Prometheus (Go strconv 'f', -1) formatting: 1 -> "1", 0.25 -> "0.25", NaN, +Inf, -Inf."""
    if isinstance(value, str):
        return value
    f = float(value)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f.is_integer() and abs(f) < 1e21:
        return str(int(f))
    return format(Decimal(repr(f)), "f")


@dataclass
class _Program:
    vectors: list[list[Sample]]  # one vector per call; the last repeats
    calls: int = 0

    def next(self) -> list[Sample]:
        vector = self.vectors[min(self.calls, len(self.vectors) - 1)]
        self.calls += 1
        return vector


def _parse_error(query: str) -> str | None:
    if not query.strip():
        return "1:1: parse error: no expression found in input"
    pairs, stack, quote = {")": "(", "]": "[", "}": "{"}, [], None
    names = {"(": "parenthesis", "[": "bracket", "{": "brace"}
    for i, ch in enumerate(query, start=1):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            stack.append((ch, i))
        elif ch in ")]}":
            if not stack or stack[-1][0] != pairs[ch]:
                return f"1:{i}: parse error: unexpected right {names[pairs[ch]]} '{ch}'"
            stack.pop()
    if stack:
        ch, i = stack[-1]
        return f"1:{len(query) + 1}: parse error: unclosed left {names[ch]}"
    if quote:
        return f"1:{len(query) + 1}: parse error: unterminated quoted string"
    return None


class FakePrometheus(HttpFake):
    """`.url` is the base URL (clients append /api/v1/query). `.queries` every query string asked, in order
    (instant and range). Optional bearer `token`: without the right `Authorization` header -> 401."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None) -> None:
        super().__init__(host, port)
        self.token = token
        self.queries: list[str] = []
        self._programs: dict[str, _Program] = {}
        self._invalid: dict[str, str] = {}

    def __enter__(self) -> FakePrometheus:
        self.start()
        return self

    def fail_next(self, n: int = 1, status: int = 503, reason: str | None = None, message: str | None = None,
                  *, path_contains: str | None = None, method: str | None = None,
                  retry_after: str | int | None = None) -> None:
        """The next `n` matching requests get `status` with a Prometheus error body (`reason` overrides
        errorType, `message` the error) and are not evaluated (not in `queries`)."""
        super().fail_next(n, status, reason, message, path_contains=path_contains, method=method,
                          retry_after=retry_after)

    # ------------------------------------------------------------------------------------- programming
    def set(self, query: str, value: float | int | str | None | list[float | int | str | None],
            labels: dict[str, str] | None = None) -> None:
        """One sample (`labels`, default `{}`) per call; a list gives one value per call, the last repeating.
        `None` answers an empty vector (no data) for that call."""
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ValueError("set() needs at least one value")
        self.set_vectors(query, [[] if v is None else [(dict(labels or {}), v)] for v in values])

    def set_vector(self, query: str, samples: list[Sample]) -> None:
        """A fixed vector of (labels, value) samples for every call."""
        self.set_vectors(query, [samples])

    def set_vectors(self, query: str, vectors: list[list[Sample]]) -> None:
        """One vector per call, the last repeating."""
        if not vectors:
            raise ValueError("set_vectors() needs at least one vector")
        with self._lock:
            self._programs[query] = _Program([list(v) for v in vectors])
            self._invalid.pop(query, None)

    def invalid(self, query: str, error: str | None = None) -> None:
        """`query` answers 400 bad_data with a parse error."""
        with self._lock:
            self._invalid[query] = error or f"1:1: parse error: unexpected character in {query!r}"

    def calls(self, query: str) -> int:
        """How many times `query` was evaluated (instant or range)."""
        with self._lock:
            return sum(1 for q in self.queries if q == query)

    def reset(self) -> None:
        with self._lock:
            self._programs.clear()
            self._invalid.clear()
            self.queries.clear()
            self.requests.clear()

    # -------------------------------------------------------------------------------------------- HTTP
    def fault_reply(self, req: RecordedRequest, status: int, reason: str | None,
                    message: str | None) -> Reply:
        return Reply(status, {"status": "error", "errorType": reason or _ERROR_TYPES.get(status, "internal"),
                              "error": message or f"injected failure {status}"})

    def handle(self, req: RecordedRequest) -> Reply:
        if self.token is not None and req.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"status": "error", "errorType": "unauthorized", "error": "Unauthorized"})
        path = req.path.rstrip("/")
        if path in ("/-/ready", "/-/healthy"):
            return Reply(200, "Prometheus Server is Ready.\n" if path == "/-/ready"
                         else "Prometheus Server is Healthy.\n")
        if path not in ("/api/v1/query", "/api/v1/query_range"):
            return Reply(404, "404 page not found\n")
        if req.method not in ("GET", "POST"):
            return Reply(405, {"status": "error", "errorType": "bad_data", "error": "method not allowed"})
        params = dict(req.query)
        if req.method == "POST" and req.content_type == "application/x-www-form-urlencoded":
            params.update(req.form)
        query = params.get("query")
        if query is None:
            return _bad_data('invalid parameter "query": 1:1: parse error: no expression found in input')
        error = self._invalid.get(query) or _parse_error(query)  # e.g. "bad(": unclosed left parenthesis
        if error:
            self.queries.append(query)
            return _bad_data(f'invalid parameter "query": {error}')
        if path == "/api/v1/query":
            return self._instant(query, params)
        return self._range(query, params)

    def _vector(self, query: str) -> list[Sample]:
        self.queries.append(query)
        program = self._programs.get(query)
        return program.next() if program is not None else []

    def _instant(self, query: str, params: dict[str, str]) -> Reply:
        try:
            at = _parse_time(params["time"]) if params.get("time") else time.time()
        except ValueError:
            return _bad_data(f'invalid parameter "time": cannot parse "{params["time"]}" to a valid '
                             "timestamp")
        result = [{"metric": dict(labels), "value": [at, format_value(value)]}
                  for labels, value in self._vector(query) if value is not None]
        return Reply(200, {"status": "success", "data": {"resultType": "vector", "result": result}})

    def _range(self, query: str, params: dict[str, str]) -> Reply:
        try:
            start, end = _parse_time(params.get("start", "")), _parse_time(params.get("end", ""))
        except ValueError:
            return _bad_data('invalid parameter "start": cannot parse to a valid timestamp')
        try:
            step = _parse_duration(params.get("step", ""))
        except ValueError:
            return _bad_data('invalid parameter "step": cannot parse to a valid duration')
        if end < start:
            return _bad_data('invalid parameter "end": end timestamp must not be before start time')
        if step <= 0:
            return _bad_data("zero or negative query resolution step widths are not accepted. Try a positive "
                             "integer")
        if (end - start) / step > 11000:
            return _bad_data("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing "
                             "the query resolution (?step=XX)")
        points = [start + i * step for i in range(int((end - start) // step) + 1)]
        result = [{"metric": dict(labels), "values": [[t, format_value(value)] for t in points]}
                  for labels, value in self._vector(query) if value is not None]
        return Reply(200, {"status": "success", "data": {"resultType": "matrix", "result": result}})


def _bad_data(error: str) -> Reply:
    return Reply(400, {"status": "error", "errorType": "bad_data", "error": error})


def _parse_time(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _parse_duration(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    for unit in sorted(units, key=len, reverse=True):
        if value.endswith(unit) and value[:-len(unit)].isdigit():
            return int(value[:-len(unit)]) * units[unit]
    raise ValueError(value)


def sample(labels: dict[str, str] | None, value: float | int | str | None) -> Sample:
    """Readability helper: `sample({"pod": "a"}, 1)`."""
    return (dict(labels or {}), value)

