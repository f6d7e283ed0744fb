"""`incidentflow`: drive incidents against any Temporal (the embedded dev server by default).

Each command loads only what it needs: the incident commands import the Temporal client and the command
table, never the worker, Kubernetes, Slack or the HTTP stack (tests/test_cli_imports.py keeps it so). This
module is light on purpose: `show` and `timeline`, the reads people repeat most, take a short path
(`incidentflow.cli.reads`: neither the command table nor a workflow module); every other command goes through
`incidentflow.cli.full`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["build_parser", "entry", "main"]


def __getattr__(name: str) -> Any:  # `from incidentflow.cli import main` loads the full CLI only then
    if name in ("main", "build_parser"):
        from incidentflow.cli import full

        return getattr(full, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def entry() -> None:
    """Console-script entry. Exits with os._exit: the Temporal client's Rust threads can abort CPython's
    finalization ("PyGILState_Release", temporalio/sdk-python#300), turning a clean exit into SIGABRT."""
    from incidentflow.cli import reads

    argv = sys.argv[1:]
    if reads.handles(argv):
        code = reads.main(argv)
    else:
        from incidentflow.cli.full import main

        code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
