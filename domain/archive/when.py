"""`--since 30d` / `?since=2026-11-01`: a span back from now, or an ISO date or time (UTC unless it says)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

UNITS = {"h": 3600, "d": 86400, "w": 604800}


def parse_when(text: str, now: datetime) -> datetime:
    """ValueError naming what is accepted."""
    text = text.strip()
    if text[:-1].isdigit() and text[-1:] in UNITS:
        return now - timedelta(seconds=int(text[:-1]) * UNITS[text[-1]])
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r}: use a span back from now (30d, 12h, 2w) or an ISO date "
                         "(2026-11-01, 2026-11-01T09:00)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)
