"""Read runbook files: every problem in every file as `file:line: field.path: message`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from domain.config import line_of
from domain.runbooks.model import AppliesTo, ParamSpec, Runbook
from domain.runbooks.steps import STEP_KINDS

SUFFIXES = (".yaml", ".yml")


class RunbookError(ValueError):
    """Runbook files that do not validate. The message is one `file:line: field: problem` per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class UnknownRunbook(KeyError):
    """`RunbookSet.get` of a name that is not loaded; str() is the plain message (no KeyError quotes)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown runbook"


@dataclass
class RunbookSet:
    """Runbooks by name, in load order (files sorted within each directory)."""

    runbooks: dict[str, Runbook] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)

    def get(self, name: str) -> Runbook:
        try:
            return self.runbooks[name]
        except KeyError:
            known = ", ".join(self.runbooks) or "none loaded"
            raise UnknownRunbook(f"unknown runbook {name!r} (known: {known})") from None

    def matching(self, labels: Mapping[str, str], service: str | None = None) -> list[Runbook]:
        """The runbooks whose applies_to matches this alert's labels and service."""
        return [rb for rb in self.runbooks.values() if rb.applies(labels, service)]

    @property
    def names(self) -> list[str]:
        return list(self.runbooks)

    def __len__(self) -> int:
        return len(self.runbooks)

    def __iter__(self) -> Iterator[Runbook]:
        return iter(self.runbooks.values())

    def __contains__(self, name: object) -> bool:
        return name in self.runbooks


def load_runbook(path: Path | str) -> Runbook:
    """One runbook file; RunbookError with every problem in it."""
    runbook, problems, _ = _check_file(Path(path))
    if problems or runbook is None:
        raise RunbookError(problems)
    return runbook


def load_runbooks(paths: Iterable[Path | str]) -> RunbookSet:
    """Runbooks from files and directories (their *.yaml/*.yml, sorted, not recursive).
    RunbookError lists every problem across all files, duplicate names included."""
    runbooks, problems = check_runbooks(paths)
    if runbooks is None:
        raise RunbookError(problems)
    return runbooks


def check_runbooks(paths: Iterable[Path | str], secret_hosts: Mapping[str, Sequence[str]] | None = None
                   ) -> tuple[RunbookSet | None, list[str]]:
    """(the set, []) when everything validates, else (None, the problems as lines) for `runbook check`.

    With `secret_hosts` (the worker's Settings.runbook_secret_hosts()), a secret used where its hosts do
    not allow it (or not configured at all) is a problem too, on the line of the header that uses it."""
    files, problems = _files(paths)
    found = RunbookSet()
    name_lines: dict[str, int] = {}
    for path in files:
        runbook, file_problems, node = _check_file(path, secret_hosts)
        problems += file_problems
        if runbook is None:
            continue
        line = line_of(node, ["name"])
        if runbook.name in found.runbooks:
            first = found.sources[runbook.name]
            problems.append(f"{path}:{line}: name: duplicate runbook name {runbook.name!r} "
                            f"(also in {first}:{name_lines[runbook.name]})")
            continue
        found.runbooks[runbook.name] = runbook
        found.sources[runbook.name] = path
        name_lines[runbook.name] = line
    return (None, problems) if problems else (found, [])


def _files(paths: Iterable[Path | str]) -> tuple[list[Path], list[str]]:
    files: list[Path] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for raw in [paths] if isinstance(paths, (str, Path)) else paths:
        path = Path(raw)
        if path.is_dir():
            chosen = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
        elif path.is_file():
            chosen = [path]
        else:
            problems.append(f"{path}: no such runbook file or directory")
            continue
        for p in chosen:
            if p.resolve() not in seen:
                seen.add(p.resolve())
                files.append(p)
    return files, problems


def _check_file(path: Path, secret_hosts: Mapping[str, Sequence[str]] | None = None
                ) -> tuple[Runbook | None, list[str], yaml.Node | None]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return None, [f"{path}: cannot read runbook: {reason}"], None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        return None, [f"{path}{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}"], None
    if not isinstance(data, dict):
        return None, [f"{path}:1: a runbook must be a mapping (name, title, parameters, steps)"], node
    located = [(line, f"{field_path}: duplicate key {key!r} (line {first})")
               for line, field_path, key, first in _duplicate_keys(node, [])]
    runbook: Runbook | None = None
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        located += [_pydantic_problem(err, node, data) for err in exc.errors()]
        located += _raw_template_problems(node, data)  # so one `check` shows every problem of the file
    else:
        found = runbook.problems() + (runbook.secret_problems(secret_hosts) if secret_hosts is not None else [])
        for problem in found:
            loc = list(problem.loc)
            located.append((line_of(node, loc), f"{_dotted(loc)}: {problem.message}"))
    if located:
        located.sort(key=lambda item: item[0])  # stable: same-line problems keep their order
        return None, [f"{path}:{line}: {message}" for line, message in located], node
    return runbook, [], node


def _raw_template_problems(node: yaml.Node | None, data: dict[str, Any]) -> list[tuple[int, str]]:
    """Template references in the steps' raw strings, for a file whose fields do not validate."""
    from domain.runbooks.fields import template_problems

    params = data.get("parameters")
    declared = params if isinstance(params, dict) else {}
    out: list[tuple[int, str]] = []

    def walk(value: Any, loc: list[str | int]) -> None:
        if isinstance(value, str):
            out.extend((line_of(node, loc), f"{_dotted(loc)}: {msg}") for msg in template_problems(value, declared))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, [*loc, str(key)])
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, [*loc, i])
    steps = data.get("steps")
    if isinstance(steps, list):
        walk(steps, ["steps"])
    return out


def _pydantic_problem(err: Any, node: yaml.Node | None, data: dict[str, Any]) -> tuple[int, str]:
    loc: list[str | int] = [p for p in err["loc"]
                            if not (isinstance(p, str) and (p.startswith("function-") or p == "[key]"))]
    if len(loc) >= 3 and loc[0] == "steps" and isinstance(loc[1], int) and loc[2] in STEP_KINDS:
        del loc[2]  # the discriminated union's tag
    message = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "union_tag_invalid":
        loc.append("kind")
        message = f"unknown step kind {ctx.get('tag')!r} (kinds: {', '.join(STEP_KINDS)})"
    elif kind == "union_tag_not_found":
        message = f"missing kind (kinds: {', '.join(STEP_KINDS)})"
    elif kind == "model_attributes_type" and len(loc) == 2 and loc[0] == "steps":
        message = "a step must be a mapping with a kind, e.g. {kind: notify, text: …}"
    elif kind == "step_fields" and ctx.get("at"):
        loc.append(ctx["at"])
    elif kind == "extra_forbidden" and loc:
        message = _unknown_field(str(loc[-1]), _model_at(loc[:-1], data))
    return line_of(node, loc), f"{_dotted(loc)}: {message}"


def _model_at(loc: list[str | int], data: dict[str, Any]) -> type[BaseModel] | None:
    """The model whose fields live at loc (for 'did you mean' on an unknown field)."""
    if not loc:
        return Runbook
    if loc == ["applies_to"]:
        return AppliesTo
    if len(loc) == 2 and loc[0] == "parameters":
        return ParamSpec
    if len(loc) == 2 and loc[0] == "steps" and isinstance(loc[1], int):
        steps = data.get("steps")
        step = steps[loc[1]] if isinstance(steps, list) and loc[1] < len(steps) else None
        return STEP_KINDS.get(str(step.get("kind"))) if isinstance(step, dict) else None
    return None


def _unknown_field(name: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return f"unknown field {name!r}"
    allowed = [f.alias or n for n, f in model.model_fields.items()]
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown field {name!r}{hint} (fields: {', '.join(allowed)})"


def _dotted(loc: list[str | int]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _duplicate_keys(node: yaml.Node | None, loc: list[str | int]) -> Iterator[tuple[int, str, str, int]]:
    """(line, field path, key, line of the first) for each key repeated in a mapping (YAML keeps the last)."""
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            line = key.start_mark.line + 1
            if name in first:
                yield line, _dotted([*loc, name]), name, first[name]
            first.setdefault(name, line)
            yield from _duplicate_keys(value, [*loc, name])
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, [*loc, i])
