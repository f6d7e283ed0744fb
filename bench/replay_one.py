"""Replay one exported workflow history (`temporal workflow show -o json`) through the current workflow code.

    .venv/bin/python bench/replay_one.py HISTORY.json [--upto EVENT_ID ...]

Prints, for each cut (the whole history by default), whether it replays, and the first failure. Use it on a
history a worker failed with a nondeterminism error: cutting it at event ids narrows down the task that
diverges (bench/README.md, "Issue 16, fifth session").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import WorkflowHistory  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.worker import Replayer  # noqa: E402

from workers.registry import WORKFLOWS  # noqa: E402


async def replay(data: dict, upto: int | None) -> str:
    cut = dict(data)
    if upto is not None:
        cut["events"] = [e for e in data["events"] if int(e["eventId"]) <= upto]
    history = WorkflowHistory.from_json("replayed", cut)
    result = await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter).replay_workflow(
        history, raise_on_replay_failure=False)
    return "replays" if result.replay_failure is None else f"FAILS: {result.replay_failure}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("history", type=Path)
    ap.add_argument("--upto", type=int, nargs="*", default=[None], help="replay only the events up to these ids")
    args = ap.parse_args()
    data = json.loads(args.history.read_text())
    for upto in args.upto or [None]:
        print(f"events ≤ {upto if upto is not None else 'all'}: {asyncio.run(replay(data, upto))[:400]}", flush=True)


if __name__ == "__main__":
    main()
