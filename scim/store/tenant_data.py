"""A whole tenant's data, for ``python -m scim tenants remove NAME --delete-data``: every row of every partition
that begins with ``<tenant>:`` in the resources table (resources, index rows, membership edges)."""

from itertools import groupby
from typing import Any

from azure.core.exceptions import AzureError

from scim.store import entity_group, keys, retries
from scim.store.contract import StoreUnavailable
from scim.store.tables import MAX_TRANSACTION_OPERATIONS, TableStore


async def delete_tenant_data(store: TableStore, tenant: str) -> int:
    """Delete the tenant's rows, page by page, 100 per transaction; returns how many rows were deleted.

    Safe to run again after a failure: what is gone stays gone, and the next run deletes the rest.
    """
    table = await store.table_client()
    low = keys.partition_key(tenant, "")
    high = keys.prefix_upper_bound(low)
    deleted = 0
    while True:

        async def page(low: str = low, high: str = high) -> list[dict[str, Any]]:
            rows = table.query_entities(
                "PartitionKey ge @low and PartitionKey lt @high",
                parameters={"low": low, "high": high},
                select=["PartitionKey", "RowKey"],
                results_per_page=1000,
            )
            found: list[dict[str, Any]] = []
            async for row in rows:
                found.append({"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"]})
                if len(found) >= 1000:
                    break
            return found

        try:
            rows = await retries.Attempts(retries.REQUEST_BUDGET_SECONDS).run(page)
        except AzureError as exc:
            raise StoreUnavailable() from exc
        if not rows:
            return deleted
        for _, partition_rows in groupby(rows, key=lambda row: row["PartitionKey"]):
            batch = list(partition_rows)
            for start in range(0, len(batch), MAX_TRANSACTION_OPERATIONS):
                chunk = [("delete", row) for row in batch[start : start + MAX_TRANSACTION_OPERATIONS]]
                try:
                    await retries.Attempts(retries.REQUEST_BUDGET_SECONDS).run(
                        lambda chunk=chunk: entity_group.submit(table, chunk)
                    )
                except AzureError:
                    for _, row in chunk:  # a row already gone fails its batch: delete what is left one by one
                        await _delete_one(table, row)
                deleted += len(chunk)


async def _delete_one(table: Any, row: dict[str, Any]) -> None:
    try:
        await retries.Attempts(retries.REQUEST_BUDGET_SECONDS).run(
            lambda: table.delete_entity(row["PartitionKey"], row["RowKey"])
        )
    except AzureError as exc:
        raise StoreUnavailable() from exc
