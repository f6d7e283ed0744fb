"""`incidentflow temporal setup` on Temporal Cloud: where the operator API refuses to add search attributes,
the `tcld` commands that register ours (workflows/search_attributes.ALL)."""

from __future__ import annotations

import shlex
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError

from workflows import search_attributes as sa

# tcld's names for the indexed value types
TCLD_TYPES: dict[int, str] = {IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword", IndexedValueType.INDEXED_VALUE_TYPE_TEXT: "Text",
              IndexedValueType.INDEXED_VALUE_TYPE_INT: "Int", IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE: "Double",
              IndexedValueType.INDEXED_VALUE_TYPE_BOOL: "Bool", IndexedValueType.INDEXED_VALUE_TYPE_DATETIME: "Datetime",
              IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST: "KeywordList"}


def tcld_commands(namespace: str, keys: list[SearchAttributeKey[Any]]) -> list[str]:
    """One `tcld namespace search-attributes add` per attribute (each can be re-run on its own)."""
    return [f"tcld namespace search-attributes add --namespace {shlex.quote(namespace)} "
            f"--search-attribute {shlex.quote(f'{k.name}={TCLD_TYPES[int(k.indexed_value_type)]}')}" for k in keys]


async def missing_keys(client: Client, namespace: str) -> list[SearchAttributeKey[Any]]:
    """Our attributes the namespace lacks (all of them when it cannot be listed either)."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace))
    except RPCError:
        return list(sa.ALL)
    return [k for k in sa.ALL if k.name not in existing.custom_attributes]


async def cloud_setup_message(client: Client, namespace: str, refusal: RPCError) -> str:
    """What to tell the operator when Temporal (Cloud) refused to add our search attributes."""
    keys = await missing_keys(client, namespace)
    reason = f"{refusal.status.name if refusal.status else 'error'}: {refusal.message.splitlines()[0][:200]}"
    if not keys:
        return f"search attributes already registered (Temporal answered {reason})"
    return "\n".join([
        f"Temporal refused to register incidentflow's search attributes in namespace {namespace} ({reason}).",
        "On Temporal Cloud, register them with tcld (logged in to your account), then run "
        "`incidentflow temporal setup` again to check:",
        "",
        *(f"  {line}" for line in tcld_commands(namespace, keys)),
    ])
