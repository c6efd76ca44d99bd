"""The queue publisher's rows: per-tenant state (the lease), the pending rows of events not yet on the queue, and
retention.

State row: PartitionKey ``publisher`` (no tenant's partition: those are ``<tenant>:<type>``), RowKey
``tenant:<tenant>``, properties ``tenant``, ``owner``, ``leaseUntil``, ``cursor``, ``pendingRows``.
``owner``/``leaseUntil`` is the lease: only its holder sends the tenant's events, and every change to the row is
conditional on its ETag, so two publishers never both believe they hold it. ``cursor``: every event before it is on
the queue or has a pending row. ``pendingRows`` (true) says this version wrote the row; a row without it was
written by the version before pending rows, whose publisher marked sent event rows ``published`` instead: the
events after its cursor that it had not sent are given pending rows first (:func:`legacy_unsent`).

Pending row: ``pend:<position>`` beside the event row ``ev:<position>``, a copy of it, written in the change's own
transaction (:mod:`scim.store.outbox`) and deleted once the event is on the queue. The pending rows are exactly the
events still to send, so a publisher reads those and nothing else.
"""

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from scim.store import entity_group, keys, outbox, retries
from scim.store.contract import RecordedChange, StoreUnavailable
from scim.store.tables import MAX_TRANSACTION_OPERATIONS, TableStore

PUBLISHER_PARTITION = "publisher"
STATE_PREFIX = "tenant:"
PENDING_ROWS = "pendingRows"
LEGACY_PUBLISHED = "published"
"""How the publisher before pending rows marked a sent event row (merged after the send)."""
T = TypeVar("T")


@dataclass(frozen=True)
class PublisherState:
    """A tenant's state row as last read or written; ``etag`` None when the row does not exist yet; ``legacy`` when
    the version before pending rows wrote it (its unsent events after ``cursor`` have no pending row yet)."""

    tenant: str
    cursor: str = ""
    owner: str = ""
    lease_until: float = 0.0
    etag: str | None = None
    legacy: bool = False


@dataclass(frozen=True)
class EventRow:
    """One event to send: its pending row (a copy of the event row), where it lives and its position."""

    partition: str
    position: str
    entity: dict[str, Any]

    @property
    def change(self) -> RecordedChange:
        return outbox.recorded(self.entity)


async def read_state(store: TableStore, tenant: str) -> PublisherState:
    row = await store.point_read(PUBLISHER_PARTITION, STATE_PREFIX + tenant)
    return PublisherState(tenant) if row is None else _state(row)


async def states(store: TableStore) -> list[PublisherState]:
    """Every tenant's state row: the tenants a publisher has ever sent for."""
    upper = keys.prefix_upper_bound(STATE_PREFIX)
    return [_state(row) async for row in store.range(PUBLISHER_PARTITION, STATE_PREFIX, upper, None)]


async def write_state(store: TableStore, state: PublisherState) -> PublisherState | None:
    """Write the row if it is still as ``state`` was read (its ETag; absent when ``etag`` is None); None when
    another publisher changed it first. A lost answer whose write was applied also reads as None: the lease then
    lapses and the next publisher takes it, which delays, never loses."""
    table = await store.table_client()
    entity: dict[str, Any] = {
        "PartitionKey": PUBLISHER_PARTITION,
        "RowKey": STATE_PREFIX + state.tenant,
        "tenant": state.tenant,
        "owner": state.owner,
        "leaseUntil": float(state.lease_until),
        "cursor": state.cursor,
    }
    if not state.legacy:
        entity[PENDING_ROWS] = True
    try:
        if state.etag is None:
            result = await _attempts(lambda: table.create_entity(entity))
        else:
            condition = {"etag": state.etag, "match_condition": MatchConditions.IfNotModified}
            result = await _attempts(lambda: table.update_entity(entity, mode=UpdateMode.REPLACE, **condition))
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        return None
    except AzureError as exc:
        raise StoreUnavailable() from exc
    return replace(state, etag=str(result.get("etag", "")))


async def pending(store: TableStore, tenant: str, after: str, limit: int) -> tuple[list[EventRow], str | None]:
    """The tenant's pending rows after position ``after`` ("": all), in position order, and how far they are
    complete: each partition is read up to ``limit`` rows; when one had more, rows past the lowest such partition's
    last row are left out (another partition may hold rows below them that were not read) and its last position is
    returned, else None (every pending row after ``after`` was read)."""
    low = keys.pending_row_key(after) + "\x00" if after else keys.PENDING_PREFIX
    high = keys.prefix_upper_bound(keys.PENDING_PREFIX)

    async def first_rows(resource_type: str) -> tuple[list[EventRow], str | None]:
        partition = keys.partition_key(tenant, resource_type)
        rows: list[EventRow] = []
        async for entity in store.range(partition, low, high, None):  # the store's pages: one turn each
            rows.append(EventRow(partition, entity["RowKey"][len(keys.PENDING_PREFIX) :], entity))
            if len(rows) >= limit:
                return rows, rows[-1].position
        return rows, None

    found = await asyncio.gather(*(first_rows(resource_type) for resource_type in outbox.FEED_TYPES))
    complete = min((last for _, last in found if last is not None), default=None)
    rows = sorted(itertools.chain.from_iterable(rows for rows, _ in found), key=lambda row: row.position)
    if complete is not None:
        rows = [row for row in rows if row.position <= complete]
    return rows, complete


async def oldest_pending(store: TableStore, tenant: str) -> EventRow | None:
    """The tenant's oldest event not yet on the queue: the first pending row of each partition, the earliest."""
    rows, _ = await pending(store, tenant, "", 1)
    return rows[0] if rows else None


async def sent(store: TableStore, rows: Sequence[EventRow]) -> None:
    """Delete the pending rows of events now on the queue, up to 100 rows of one partition to a transaction, all at
    once. A row already gone (another publisher sent it too) is left out."""
    table = await store.table_client()
    by_partition: dict[str, list[str]] = {}
    for row in rows:
        by_partition.setdefault(row.partition, []).append(keys.pending_row_key(row.position))
    work = [
        _submit_present(table, partition, row_keys[i : i + MAX_TRANSACTION_OPERATIONS], _delete)
        for partition, row_keys in by_partition.items()
        for i in range(0, len(row_keys), MAX_TRANSACTION_OPERATIONS)
    ]
    await asyncio.gather(*work)


async def delete_sent_before(store: TableStore, tenant: str, position: str, most: int) -> int:
    """Retention with a queue: delete up to ``most`` event rows per partition with a position before ``position``
    (a 16-digit horizon) and before the partition's oldest pending row, so an event not yet on the queue is never
    deleted (nor any later one of its partition: they go once it is sent); returns how many went."""
    table = await store.table_client()

    async def expire(resource_type: str) -> int:
        partition = keys.partition_key(tenant, resource_type)
        upper = position
        high = keys.prefix_upper_bound(keys.PENDING_PREFIX)
        async for entity in store.range(partition, keys.PENDING_PREFIX, high, ["RowKey"], page_size=1):
            upper = min(upper, entity["RowKey"][len(keys.PENDING_PREFIX) :])
            break
        return await _delete_range(store, table, partition, keys.EVENT_PREFIX, keys.event_row_key(upper), most)

    return sum(await asyncio.gather(*(expire(resource_type) for resource_type in outbox.FEED_TYPES)))


async def delete_before(store: TableStore, tenant: str, position: str, most: int) -> int:
    """Retention without a queue (pull feed only): delete up to ``most`` event rows per partition with a position
    before ``position``, sent or not, and as many pending rows (left from a time a queue was configured); returns
    how many events went."""
    table = await store.table_client()

    async def expire(resource_type: str) -> int:
        partition = keys.partition_key(tenant, resource_type)
        events, _ = await asyncio.gather(
            _delete_range(store, table, partition, keys.EVENT_PREFIX, keys.event_row_key(position), most),
            _delete_range(store, table, partition, keys.PENDING_PREFIX, keys.pending_row_key(position), most),
        )
        return events

    return sum(await asyncio.gather(*(expire(resource_type) for resource_type in outbox.FEED_TYPES)))


async def legacy_unsent(store: TableStore, tenant: str, cursor: str) -> list[EventRow]:
    """Events recorded by the version before pending rows that its publisher had not sent: event rows after its
    ``cursor`` (a position, or a 16-digit horizon) with neither its ``published`` mark nor ``queued`` (written
    with a pending row). Read once per tenant, on the first pass that finds a state row of that version."""
    low = keys.event_row_key(cursor) + ("\x00" if len(cursor) > 16 else "") if cursor else keys.EVENT_PREFIX
    high = keys.prefix_upper_bound(keys.EVENT_PREFIX)

    async def unsent(resource_type: str) -> list[EventRow]:
        partition = keys.partition_key(tenant, resource_type)
        return [
            EventRow(partition, entity["RowKey"][len(keys.EVENT_PREFIX) :], entity)
            async for entity in store.range(partition, low, high, None)
            if not entity.get(LEGACY_PUBLISHED) and not entity.get(outbox.QUEUED)
        ]

    found = await asyncio.gather(*(unsent(resource_type) for resource_type in outbox.FEED_TYPES))
    return sorted(itertools.chain.from_iterable(found), key=lambda row: row.position)


async def queue_legacy(store: TableStore, rows: Sequence[EventRow]) -> None:
    """Give each of ``rows`` (:func:`legacy_unsent`) its pending row and mark it ``queued``, one transaction per 50
    rows of a partition: from then on they are sent like any other event."""
    table = await store.table_client()
    by_partition: dict[str, list[EventRow]] = {}
    for row in rows:
        by_partition.setdefault(row.partition, []).append(row)
    for partition_rows in by_partition.values():
        for i in range(0, len(partition_rows), MAX_TRANSACTION_OPERATIONS // 2):
            await _queue_rows(table, partition_rows[i : i + MAX_TRANSACTION_OPERATIONS // 2])


async def _queue_rows(table: Any, rows: list[EventRow]) -> None:
    """Each row's ``queued`` mark (conditional on the version read) and its pending copy, all or nothing; a row
    changed or gone since it was read (marked ``published`` by a publisher of the previous version still running
    during the deploy, or expired) is left out and the rest retried."""
    while rows:
        operations: list[Any] = []
        for row in rows:
            etag = {"etag": row.entity.metadata["etag"], "match_condition": MatchConditions.IfNotModified}
            mark = {"PartitionKey": row.partition, "RowKey": row.entity["RowKey"], outbox.QUEUED: True}
            copy = {name: value for name, value in row.entity.items() if name != LEGACY_PUBLISHED}
            copy.update(PartitionKey=row.partition, RowKey=keys.pending_row_key(row.position))
            operations += [("update", mark, {"mode": UpdateMode.MERGE, **etag}), ("upsert", copy)]
        try:
            await _attempts(lambda operations=operations: entity_group.submit(table, operations))
            return
        except TableTransactionError as exc:
            failed = (getattr(exc, "index", 0) or 0) // 2
            if exc.status_code not in (404, 412) or not 0 <= failed < len(rows):
                raise StoreUnavailable() from exc
            rows = rows[:failed] + rows[failed + 1 :]
        except AzureError as exc:
            raise StoreUnavailable() from exc


async def _delete_range(store: TableStore, table: Any, partition: str, low: str, high: str, most: int) -> int:
    row_keys: list[str] = []
    async for entity in store.range(partition, low, high, ["RowKey"]):
        row_keys.append(entity["RowKey"])
        if len(row_keys) >= most:
            break
    for i in range(0, len(row_keys), MAX_TRANSACTION_OPERATIONS):
        await _submit_present(table, partition, row_keys[i : i + MAX_TRANSACTION_OPERATIONS], _delete)
    return len(row_keys)


def _delete(key: str, partition: str) -> tuple[Any, ...]:
    return ("delete", {"PartitionKey": partition, "RowKey": key})


async def _submit_present(
    table: Any, partition: str, row_keys: list[str], operation: Callable[[str, str], tuple[Any, ...]]
) -> None:
    """One transaction of ``operation`` on each row, leaving out any row already gone (another publisher or
    retention got there first: a transaction fails whole on its first missing row, which it names)."""
    while row_keys:
        operations = [operation(key, partition) for key in row_keys]
        try:
            await _attempts(lambda operations=operations: entity_group.submit(table, operations))
            return
        except TableTransactionError as exc:
            failed = getattr(exc, "index", 0) or 0
            if exc.status_code != 404 or not 0 <= failed < len(row_keys):
                raise StoreUnavailable() from exc
            row_keys = row_keys[:failed] + row_keys[failed + 1 :]
        except AzureError as exc:
            raise StoreUnavailable() from exc


async def _attempts(call: Callable[[], Awaitable[T]]) -> T:
    return await retries.Attempts(retries.REQUEST_BUDGET_SECONDS).run(call)


def _state(row: dict[str, Any]) -> PublisherState:
    return PublisherState(
        tenant=str(row.get("tenant") or row["RowKey"][len(STATE_PREFIX) :]),
        cursor=str(row.get("cursor") or ""),
        owner=str(row.get("owner") or ""),
        lease_until=float(row.get("leaseUntil") or 0.0),
        etag=str(row.metadata["etag"]),
        legacy=not row.get(PENDING_ROWS),
    )
