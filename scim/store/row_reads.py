"""Rows read by this module instead of the SDK's ``TableClient.query_entities`` and ``get_entity``: pages of a RowKey
range, and single rows.

Every list, scan, member page and user's groups is a range page. The SDK turns the JSON answer into entities in two
generic passes (its model deserializer over every row, then ``_convert_to_entity``, which parses each row's
``Timestamp`` with ``strptime``): 3.3 ms of CPU for a 100-row page of users against 1.1 ms here, request included
(``bench/row_reads.py``), all of it one step of the event loop that every other tenant's request on the instance
waits behind (README, "One tenant cannot starve another").

A point read of a row that is not there (Entra's lookup of a user not yet created, a re-sent member removal's
reads, a member id that is a group and not a user) is an exception in the SDK, whose traceback holds the frames
that hold it: about 80 objects of cyclic garbage per read, with the HTTP response and its finalizer. Only the
garbage collector frees them, and a full collection after a thousand such reads held the loop 35-80 ms
(``bench/fairness.py --stalls``). Here a missing row is simply None.

Nearly every property we store is a string, which JSON already types: those rows become entities in one pass over
their properties. A row with an OData type annotation (``Edm.Int64``, ``Edm.DateTime``, ``Edm.Guid``,
``Edm.Binary``…) goes through the SDK's own ``_convert_to_entity``, so every value comes out exactly as the SDK
would give it. The entity's ``metadata`` holds its ``etag``; the row's ``Timestamp`` (which nothing of ours reads)
is left out rather than parsed.

The requests go through the table client's own pipeline (credential, our transport, the same connections), as
:mod:`scim.store.entity_group`'s do, and errors come out as the SDK's exceptions (its ``_decode_error``), so the
store maps them as before: a missing table is still ``ResourceNotFoundError`` with ``error_code`` ``TableNotFound``,
throttling an ``HttpResponseError`` with its status, an answer that is not the JSON of a row or a page a
``DecodeError`` (transient). ``tests/integration/test_row_reads.py`` compares rows, types and errors with the SDK's
own calls on Azurite, so an upgrade of the pinned SDK that moves the private names used here fails there.
"""

import json
from collections.abc import Sequence
from typing import Any

from azure.core.exceptions import DecodeError
from azure.core.rest import HttpRequest
from azure.data.tables import TableEntity
from azure.data.tables._deserialize import _convert_to_entity
from azure.data.tables._error import _decode_error
from azure.data.tables.aio import TableClient

from scim.store import keys

Token = tuple[str, str]
"""Where the next page starts: Table Storage's next PartitionKey and next RowKey."""


async def read_page(
    table: TableClient,
    partition: str,
    low: str,
    high: str,
    select: Sequence[str] | None,
    page_size: int,
    token: Token | None,
) -> tuple[list[TableEntity], Token | None]:
    """Up to ``page_size`` rows with ``low <= RowKey < high`` in one partition, in key order, from ``token`` on;
    and the token of the next page (None after the last)."""
    query_filter = f"PartitionKey eq {_quoted(partition)} and RowKey ge {_quoted(low)} and RowKey lt {_quoted(high)}"
    params = {"$filter": query_filter, "$top": str(page_size)}
    if select:
        params["$select"] = ",".join(select)
    if token:
        params["NextPartitionKey"], params["NextRowKey"] = token
    response = await _get(table, "()", params)
    if response.status_code != 200:
        raise _decode_error(response)
    rows = decode(response.content)
    next_partition = response.headers.get("x-ms-continuation-NextPartitionKey")
    next_row = response.headers.get("x-ms-continuation-NextRowKey")
    return rows, ((next_partition or "", next_row or "") if next_partition or next_row else None)


async def read_row(
    table: TableClient, partition: str, row_key: str, select: Sequence[str] | None = None
) -> TableEntity | None:
    """One row, or None when the table has no such row (a missing *table* is the SDK's error, as before)."""
    response = await _get(
        table, keys.entity_address(partition, row_key), {"$select": ",".join(select)} if select else {}
    )
    if response.status_code == 200:
        return decode_row(response.content)
    if response.status_code == 404 and _error_code(response.content) == "ResourceNotFound":
        return None
    raise _decode_error(response)


async def _get(table: TableClient, address: str, params: dict[str, str]) -> Any:
    """A GET of ``<table><address>`` through the table client's own pipeline; any status comes back as it is."""
    request = HttpRequest(
        "GET",
        f"{table.scheme}://{table._primary_hostname}/{table.table_name}{address}",
        params=params,
        headers={
            "x-ms-version": table.api_version,
            "DataServiceVersion": "3.0",
            "Accept": "application/json;odata=minimalmetadata",
        },
    )
    return await table._client.send_request(request)


def decode(body: bytes) -> list[TableEntity]:
    """The entities of a page's JSON answer; anything else is a garbled or cut answer (transient)."""
    try:
        values = json.loads(body)["value"]
        if not isinstance(values, list) or not all(isinstance(row, dict) for row in values):
            raise TypeError("value is not a list of rows")
    except (ValueError, KeyError, TypeError) as exc:
        raise DecodeError("the page's answer could not be read") from exc
    return [_entity(row) for row in values]


def decode_row(body: bytes) -> TableEntity:
    """The entity of a point read's JSON answer; anything else is a garbled or cut answer (transient)."""
    try:
        row = json.loads(body)
        if not isinstance(row, dict):
            raise TypeError("not a row")
    except (ValueError, TypeError) as exc:
        raise DecodeError("the row's answer could not be read") from exc
    return _entity(row)


def _error_code(body: bytes) -> str | None:
    """The ``odata.error`` code of an error answer, if it has one."""
    try:
        return str(json.loads(body)["odata.error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _entity(row: dict[str, Any]) -> TableEntity:
    """A row as the SDK's entity: its properties, and its ETag as ``metadata["etag"]``."""
    entity = TableEntity()
    etag = None
    for name, value in row.items():
        if name.startswith("odata."):
            if name == "odata.etag":
                etag = value
        elif name.endswith("@odata.type") or (type(value) is int and not -(2**31) <= value < 2**31):
            return _convert_to_entity(row)  # a typed value: exactly as the SDK decodes it
        elif name != "Timestamp":
            entity[name] = value
    entity._metadata = {"etag": etag, "timestamp": None}
    return entity


def _quoted(value: str) -> str:
    """A string literal of the OData filter: quotes doubled, as the SDK's parameter substitution does."""
    return "'" + value.replace("'", "''") + "'"
