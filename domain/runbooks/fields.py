"""Runbook field types: names, templates, durations, numbers and conditions (pure)."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
)
from pydantic_core import PydanticCustomError

from domain.models.base import parse_duration

RUNBOOK_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
STEP_NAME = r"^[a-z0-9_-]+$"
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BUILTINS = ("incident.id", "incident.service", "incident.severity")
TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)
SECRET = re.compile(r"\$\{secret:([^}]*)\}")
SECRET_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # namespaces, containers
DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")  # deployments, pods
_PERSON = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_APPROVER = re.compile(rf"^(ic|group:{_PERSON}|{_PERSON})$")
_SERVICE = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

Loc = tuple[str | int, ...]


class Problem(NamedTuple):
    """A cross-field problem: where (a pydantic-style location, e.g. ('steps', 2, 'selector')) and what."""

    loc: Loc
    message: str


# ---------------------------------------------------------------- templates

def template_refs(text: str) -> list[str]:
    """The names inside `{{ … }}` in text, stripped (`{{ deployment }}` → 'deployment')."""
    return [m.group(1).strip() for m in TEMPLATE.finditer(text)]


def single_template(text: str) -> str | None:
    """The name when text is exactly one template (`"{{ replicas }}"`), else None."""
    found = TEMPLATE.fullmatch(text.strip())
    return found.group(1).strip() if found else None


def template_problems(text: str, declared: Mapping[str, Any]) -> list[str]:
    """What is wrong with the templates in text: syntax, unknown parameters, unknown built-ins."""
    found: list[str] = []
    rest = TEMPLATE.sub("", text)
    if "{{" in rest or "}}" in rest:
        found.append("unbalanced '{{' / '}}': write templates as {{ parameter }}")
    for ref in template_refs(text):
        if ref.startswith("incident."):
            if ref not in BUILTINS:
                found.append(f"unknown built-in '{ref}' (built-ins: {', '.join(BUILTINS)})")
        elif not PARAM_NAME.match(ref):
            found.append(f"templates take a parameter name only, got '{{{{ {ref} }}}}'")
        elif ref not in declared:
            found.append(f"unknown parameter '{ref}' (declared: {', '.join(declared) or 'none'})")
    return found


# ---------------------------------------------------------------- field types

def _duration(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").upper().startswith("P"):
        return value  # ISO 8601, as pydantic serialises a timedelta: let pydantic parse it
    return parse_duration(value)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration, e.g. 30s, 5m")
    return value


PositiveDuration = Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_positive)]

_TEMPLATE_HINT = "{{ parameter }} template"


def _int_or_template(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        if "{{" in value:
            return value
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected an integer or a {_TEMPLATE_HINT}, got {value!r}")


def _optional_int_or_template(value: Any) -> int | str | None:
    return None if value is None else _int_or_template(value)


def _number_or_template(value: Any) -> float | str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value!r}")
        return float(value)
    if isinstance(value, str):
        if "{{" in value:
            return value
        try:
            return _number_or_template(float(value.strip()))
        except ValueError:
            pass
    raise ValueError(f"expected a number or a {_TEMPLATE_HINT}, got {value!r}")


def _optional_number_or_template(value: Any) -> float | str | None:
    return None if value is None else _number_or_template(value)


IntOrTemplate = Annotated[int | str, PlainValidator(_int_or_template)]
OptionalIntOrTemplate = Annotated[int | str | None, PlainValidator(_optional_int_or_template)]
OptionalNumberOrTemplate = Annotated[float | str | None, PlainValidator(_optional_number_or_template)]


def _num(x: float) -> str:
    """0.01 → '0.01', 5.0 → '5', 2.5 → '2.5'."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


# ---------------------------------------------------------------- conditions

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
_CONDITION = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")


class Condition(BaseModel):
    """`until: "< 0.01"`: a comparison of a query's value against a threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["<", "<=", ">", ">=", "==", "!="]
    threshold: float

    @classmethod
    def parse(cls, text: str) -> Condition:
        found = _CONDITION.match(text)
        threshold = math.nan
        if found:
            try:
                threshold = float(found.group(2))
            except ValueError:
                pass
        if not found or not math.isfinite(threshold):
            raise ValueError(f'invalid condition {text!r}: use an operator (<, <=, >, >=, ==, !=) '
                             f'and a number, e.g. "< 0.01" (quote it in YAML: until: "> 0")')
        return cls(op=found.group(1), threshold=threshold)

    def holds(self, value: float) -> bool:
        """Whether value satisfies the condition (never for NaN: an empty or broken query is not 'fixed')."""
        if math.isnan(value):
            return False
        return _OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.op} {_num(self.threshold)}"


def _condition(value: Any) -> Any:
    if value is None or isinstance(value, (Condition, dict)):
        return value
    if isinstance(value, str):
        return Condition.parse(value)
    raise ValueError(f'invalid condition {value!r}: use an operator and a number, e.g. "< 0.01" '
                     f'(quote it in YAML: until: "> 0")')


# ---------------------------------------------------------------- steps

def _conflict(message: str, at: str | None = None) -> PydanticCustomError:
    """A step-level error; `at` names the field the loader should point the line at."""
    return PydanticCustomError("step_fields", message, {"at": at} if at else None)
