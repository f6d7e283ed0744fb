"""Validated building blocks shared by the YAML config models (no imports from domain.config)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter

from domain.models.common import Severity

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)?\s*$")
_TIMEDELTA = TypeAdapter(timedelta)
_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """'15m', '1h', '2d', '30s', 90 (seconds), or an ISO/`timedelta` value pydantic already parsed."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match and str(value).startswith(("P", "-P")):  # ISO 8601, as the value travels in JSON
        return _TIMEDELTA.validate_python(value)
    if not match:
        raise ValueError(f"invalid duration {value!r}: use e.g. 30s, 15m, 1h, 5d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
SeverityKey = Annotated[Severity, BeforeValidator(Severity.parse)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
