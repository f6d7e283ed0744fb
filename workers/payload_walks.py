"""Skip the SDK's payload walks for our workflows when they cannot change a payload.

For every workflow activation and every completion, temporalio (1.35) walks all payloads three times each way
(storage references, external storage, codec: `temporalio.bridge.worker.decode_activation` and
`encode_completion`). With neither a payload codec nor external storage each walk returns every payload as it
was, but it still copies each one back into its message (`del payloads[:]; payloads.extend(...)`), and an
incident's payloads are large (its state, the archive record, chat summaries). Three paired runs of
`bench/escalation.py --quick` spent 12 % less CPU in the worker's process with the walks skipped
(bench/README.md, "Issue 16, seventh session").

The skip is narrow. It applies only to activations of workflows run under our guard (`GuardedInstance`,
workers/query_guard.py) whose runner was built for a converter without codec or external storage
(`QueryGuardRunner.for_converter`), and only once the SDK has made the instance (a run's first activation is
walked as before). Any other worker in the process (the benches' raw baselines) is walked by the SDK as always.
What the skip gives up: the SDK's error for a payload stored externally by some other worker (TMPRL1105); the
payload converter then fails on the unknown encoding instead. Nothing here configures external storage.

`install()` checks that the SDK still has what it replaces and does nothing otherwise (it logs why);
`tests/test_query_guard.py` fails when the skip no longer applies, so an SDK upgrade that changes this is seen.
"""

from __future__ import annotations

import logging
from typing import Any

import temporalio.bridge.worker as bridge
import temporalio.converter

from workers.query_guard import GuardedInstance

log = logging.getLogger("incidentflow.worker")
_sdk_decode: Any = None  # the SDK's own functions, called for everything the skip does not cover
_sdk_encode: Any = None


def inert(data_converter: Any) -> bool:
    """Whether this walk is one of ours that can change nothing: the SDK's per-command converter for an instance
    under the guard, built for a converter without codec or external storage."""
    instance = getattr(data_converter, "_ca_instance", None)
    return isinstance(instance, GuardedInstance) and not instance.contexts


async def decode_activation(activation: Any, data_converter: Any, decode_headers: bool,
                            storage_concurrency_limit: int) -> Any:
    if inert(data_converter):
        return temporalio.converter._extstore.StorageOperationMetrics()
    return await _sdk_decode(activation, data_converter, decode_headers=decode_headers,
                             storage_concurrency_limit=storage_concurrency_limit)


async def encode_completion(completion: Any, data_converter: Any, encode_headers: bool,
                            storage_concurrency_limit: int) -> Any:
    if inert(data_converter):
        return temporalio.converter._extstore.StorageOperationMetrics()
    return await _sdk_encode(completion, data_converter, encode_headers=encode_headers,
                             storage_concurrency_limit=storage_concurrency_limit)


def install() -> bool:
    """Put the skip in place (once per process); False, with a log line, when this SDK lacks what it replaces."""
    global _sdk_decode, _sdk_encode
    if bridge.decode_activation is decode_activation:
        return True
    extstore = getattr(temporalio.converter, "_extstore", None)
    found = (getattr(bridge, "decode_activation", None), getattr(bridge, "encode_completion", None),
             getattr(extstore, "StorageOperationMetrics", None))
    if not all(found):
        log.info("payload walks not skipped: this temporalio has no %s",
                 "/".join(n for n, f in zip(("decode_activation", "encode_completion", "StorageOperationMetrics"),
                                            found, strict=True) if not f))
        return False
    _sdk_decode, _sdk_encode = found[0], found[1]
    bridge.decode_activation, bridge.encode_completion = decode_activation, encode_completion
    return True
