"""Runbook parameters: `--param name=value` strings coerced to their declared types (pure)."""


from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from domain.runbooks.model import ParamSpec, Runbook

_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0"}


class ParamError(ValueError):
    """Parameters that do not fit the runbook; one problem per line, each naming the parameter."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def usage(name: str, spec: ParamSpec) -> str:
    """`--param deployment=<string>`."""
    return f"--param {name}=<{spec.type}>"


def coerce_params(runbook: Runbook, given: Mapping[str, str | int | float | bool | None]) -> dict[str, Any]:
    """Every declared parameter typed (strings from the CLI converted), defaults filled, optional ones
    without a default None. ParamError lists every problem: unknown, missing, wrong type, bounds, pattern."""
    declared = runbook.parameters
    problems = [f"unknown parameter {name!r} (declared: {', '.join(declared) or 'none'})"
                for name in given if name not in declared]
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        raw = given.get(name)
        if raw is None:
            if spec.required:
                about = f" ({spec.description.strip()})" if spec.description.strip() else ""
                problems.append(f"missing required parameter {name!r}{about}: pass {usage(name, spec)}")
            values[name] = spec.default
            continue
        try:
            value = _convert(spec, raw)
        except ValueError as exc:
            problems.append(f"parameter {name!r}: {exc} ({usage(name, spec)})")
            continue
        problem = spec.check(value)
        if problem:
            problems.append(f"parameter {name!r}: {problem}")
        values[name] = value
    if problems:
        raise ParamError(problems)
    return values


def _convert(spec: ParamSpec, raw: str | int | float | bool) -> Any:
    if spec.type in ("string", "url"):  # a url is checked against allowed_hosts by spec.check
        if isinstance(raw, bool):
            return "true" if raw else "false"
        return raw if isinstance(raw, str) else str(raw)
    if spec.type == "boolean":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError(f"expected true/false (yes/no, 1/0), got {raw!r}")
    if isinstance(raw, bool):
        raise ValueError(f"expected {'an integer' if spec.type == 'integer' else 'a number'}, got {raw!r}")
    if spec.type == "integer":
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str) and re.fullmatch(r"\s*[-+]?\d+\s*", raw):
            return int(raw)
        raise ValueError(f"expected an integer, got {raw!r}")
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {raw!r}")
    return number


# ---------------------------------------------------------------- rendering
