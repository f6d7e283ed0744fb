"""Kubernetes output as kubectl shows it: durations, ages, the pods table, log tails. Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

TRUNCATED = "… truncated"


def fmt_duration(seconds: float) -> str:
    """600 → "10m", 90 → "1m30s", 3900 → "1h5m", 0.5 → "0.5s"."""
    if seconds < 60:
        return f"{seconds:g}s" if seconds != int(seconds) else f"{int(seconds)}s"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return out or "0s"


def age(since: str | None, now: datetime | None = None) -> str:
    """kubectl's human duration for a timestamp ("45s", "5m12s", "3h", "4d2h", "12d", "1y")."""
    if not since:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    s = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def as_int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0

def fit(text: str, max_bytes: int) -> str:
    """At most `max_bytes` UTF-8 bytes of the start of `text` (no broken characters)."""
    data = text.encode()
    return text if len(data) <= max_bytes else data[:max(0, max_bytes)].decode(errors="ignore")


def tail(text: str, max_bytes: int) -> tuple[str, bool]:
    """The end of `text` in at most `max_bytes` bytes, starting at a line boundary, after a marker."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text, False
    marker = f"{TRUNCATED}: earlier lines omitted\n".encode()
    room = max_bytes - len(marker)
    if room <= 0:
        return fit(marker.decode(), max_bytes), True
    start = len(data) - room
    kept = data[start:]
    if data[start - 1:start] != b"\n":  # mid-line: drop the partial line when a whole one follows
        cut = kept.find(b"\n")
        if 0 <= cut < len(kept) - 1:
            kept = kept[cut + 1:]
    return marker.decode() + kept.decode(errors="ignore"), True



def pod_status(pod: dict[str, Any]) -> str:
    """kubectl get pods' STATUS column."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    spec = pod.get("spec") or {}
    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, c in enumerate(init_statuses):
        state = c.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + (term.get("reason") or (f"Signal:{term['signal']}" if term.get("signal")
                                                       else f"ExitCode:{term.get('exitCode')}"))
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or init_statuses)}"
        initializing = True
        break
    if not initializing:
        running = False
        for c in reversed(status.get("containerStatuses") or []):
            state = c.get("state") or {}
            term, wait = state.get("terminated"), state.get("waiting")
            if wait and wait.get("reason"):
                reason = wait["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                reason = f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode')}"
            elif state.get("running") and c.get("ready"):
                running = True
        if reason == "Completed" and running:
            reason = "Running"
    if meta.get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return str(reason)


def pod_ready(pod: dict[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all(c.get("ready") for c in statuses)


def pod_restarts(pod: dict[str, Any]) -> tuple[int, str | None]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = sum(as_int(c.get("restartCount")) for c in statuses)
    last = max((str(((c.get("lastState") or {}).get("terminated") or {}).get("finishedAt") or "")
                for c in statuses), default="")
    return total, last or None


def pod_row(pod: dict[str, Any], now: datetime) -> list[str]:
    meta = pod.get("metadata") or {}
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or statuses)
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts, last = pod_restarts(pod)
    shown = f"{restarts} ({age(last, now)} ago)" if restarts and last else str(restarts)
    return [str(meta.get("name", "")), f"{ready}/{total}", pod_status(pod), shown,
            age(meta.get("creationTimestamp"), now)]


def pods_table(pods: list[dict[str, Any]], max_bytes: int, now: datetime | None = None) -> tuple[str, bool]:
    """`kubectl get pods` as text, whole rows only, with a marker when rows were left out."""
    now = now or datetime.now(UTC)
    rows = [["NAME", "READY", "STATUS", "RESTARTS", "AGE"], *(pod_row(p, now) for p in pods)]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["   ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() + "\n" for r in rows]
    text = "".join(lines)
    if len(text.encode()) <= max_bytes:
        return text, False
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        marker = f"{TRUNCATED} ({len(lines) - i} more pods)\n"
        if used + len(line.encode()) + len(marker.encode()) > max_bytes:
            return fit("".join(out) + marker, max_bytes), True
        out.append(line)
        used += len(line.encode())
    return fit("".join(out), max_bytes), True  # pragma: no cover - the full text fitted above


def join_logs(sections: list[tuple[str, str]], max_bytes: int) -> tuple[str, bool]:
    """"==> name <==" sections in at most `max_bytes` bytes: the budget is shared fairly (a short log
    leaves its unused share to the others) and each cut log keeps its END, after a marker."""
    heads = [f"==> {name} <==\n" for name, _ in sections]
    bodies = [body if not body or body.endswith("\n") else body + "\n" for _, body in sections]
    fixed = sum(len(h.encode()) for h in heads) + max(0, len(sections) - 1)  # blank line between sections
    budget = max(0, max_bytes - fixed)
    alloc = [0] * len(sections)
    order = sorted(range(len(sections)), key=lambda i: len(bodies[i].encode()))
    remaining = budget
    for k, i in enumerate(order):
        alloc[i] = min(len(bodies[i].encode()), remaining // (len(order) - k))
        remaining -= alloc[i]
    truncated = False
    parts = []
    for i, head in enumerate(heads):
        body, cut = tail(bodies[i], alloc[i])
        truncated = truncated or cut
        parts.append(head + body)
    text = "\n".join(parts)
    if len(text.encode()) > max_bytes:
        text, truncated = fit(text, max_bytes), True
    return text, truncated
