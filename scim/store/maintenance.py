"""Raw rows for ``python -m scim check``: the table's partitions, point reads that keep the ETag, and writes that
lose to any concurrent change.

The service's store methods hide the ETags of index and membership rows and turn every conflict into a SCIM failure.
A repair needs the opposite: it must be conditional on the exact row it judged, and learn quietly that a concurrent
write got there first, because while the endpoint serves, the endpoint's write must always win over a repair.
Transient failures are retried as the store retries them (:mod:`scim.store.retries`); a write whose earlier attempt
may have been applied and then meets a conflict counts as not done, so a repair is never claimed that is not known.
"""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from scim.store import entity_group, retries
from scim.store.contract import StoreUnavailable
from scim.store.tables import TableStore

_LOST_TO_A_CONCURRENT_WRITE = (404, 409, 412)
"""Row gone, row already there, row changed: each means someone else wrote first, and the repair must not happen."""
_KEYS = ("PartitionKey", "RowKey")


@dataclass(frozen=True)
class Row:
    """One row as read: its properties (without the keys) and the ETag a repair of it is conditional on."""

    row_key: str
    properties: dict[str, Any]
    etag: str


async def partition_keys(store: TableStore) -> AsyncIterator[str]:
    """Every PartitionKey in the table, in key order: one short query per partition, each asking for the first key
    after the last one found, so a partition of 100,000 rows costs one read rather than 100,000."""
    table = await store.table_client()
    last = ""
    while True:
        try:
            found = await _attempts().run(lambda last=last: _first_partition_after(table, last))
        except AzureError as exc:
            raise StoreUnavailable() from exc
        if found is None:
            return
        yield found
        last = found


async def _first_partition_after(table: TableClient, partition: str) -> str | None:
    rows = table.query_entities(
        "PartitionKey gt @pk", parameters={"pk": partition}, select=["PartitionKey"], results_per_page=1
    )
    async for entity in rows:
        return str(entity["PartitionKey"])
    return None


async def read(store: TableStore, partition: str, row_key: str) -> Row | None:
    """A fresh point read, with the ETag."""
    entity = await store.point_read(partition, row_key)
    if entity is None:
        return None
    properties = {name: value for name, value in entity.items() if name not in _KEYS}
    return Row(row_key, properties, str(entity.metadata["etag"]))


async def delete_unchanged(store: TableStore, partition: str, rows: Sequence[Row]) -> bool:
    """Delete rows in one transaction, each only if it still has the ETag read; False (nothing deleted) if any of
    them changed or vanished meanwhile."""
    operations = [
        ("delete", _keys(partition, row.row_key), {"etag": row.etag, "match_condition": MatchConditions.IfNotModified})
        for row in rows
    ]
    return await _submit(store, operations) is not None


async def create(
    store: TableStore, partition: str, row_key: str, properties: dict[str, Any], beside: Row | None = None
) -> str | None:
    """Insert a row that must not exist yet, never overwriting one; with ``beside``, only if that row is still as
    read (the same transaction merges nothing into it, conditionally on its ETag). The new row's ETag, or None if a
    write came first."""
    operations: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    if beside is not None:
        condition = {"mode": UpdateMode.MERGE, "etag": beside.etag, "match_condition": MatchConditions.IfNotModified}
        operations.append(("update", _keys(partition, beside.row_key), condition))
    operations.append(("create", {**_keys(partition, row_key), **properties}, {}))
    results = await _submit(store, operations)
    return None if results is None else str(results[-1]["etag"])


async def insert_many(
    store: TableStore, partition: str, rows: Sequence[tuple[str, dict[str, Any]]]
) -> list[str] | None:
    """Insert up to 100 rows that must not exist yet, in one transaction: their ETags, or None (nothing inserted) if
    any of them was written meanwhile."""
    operations = [("create", {**_keys(partition, row_key), **properties}, {}) for row_key, properties in rows]
    results = await _submit(store, list(operations))
    return None if results is None else [str(result["etag"]) for result in results]


async def upsert(store: TableStore, partition: str, row_key: str, properties: dict[str, Any]) -> None:
    """Write a row whatever it holds: for state rows only the writer owns (a run's progress)."""
    await _submit(store, [("upsert", {**_keys(partition, row_key), **properties}, {})])


async def _submit(
    store: TableStore, operations: list[tuple[str, dict[str, Any], dict[str, Any]]]
) -> list[dict[str, Any]] | None:
    """The transaction's results, or None when it lost to a concurrent write."""
    table = await store.table_client()
    try:
        return await _attempts().run(lambda: entity_group.submit(table, operations))
    except HttpResponseError as exc:
        if exc.status_code in _LOST_TO_A_CONCURRENT_WRITE:
            return None
        raise StoreUnavailable() from exc
    except AzureError as exc:
        raise StoreUnavailable() from exc


def _attempts() -> retries.Attempts:
    """The store's bounded retry of transient failures, one request's budget per call."""
    return retries.Attempts(retries.REQUEST_BUDGET_SECONDS)


def _keys(partition: str, row_key: str) -> dict[str, Any]:
    return {"PartitionKey": partition, "RowKey": row_key}
