"""The queue publisher's rows: per-tenant state (cursor and lease), the events not yet published, the marks that
say an event was sent, and retention.

State row: PartitionKey ``publisher`` (no tenant's partition: those are ``<tenant>:<type>``), RowKey
``tenant:<tenant>``, properties ``tenant``, ``cursor``, ``owner``, ``leaseUntil``. ``cursor`` is a position: every
event at or before it (a 24-character position) or before it (a 16-digit horizon) has been sent or will never
commit. ``owner``/``leaseUntil`` is the lease: only its holder sends the tenant's events, and every change to the
row is conditional on its ETag, so two publishers never both believe they hold it.

An event row that has been sent carries ``published`` (when): a publisher re-reading the events after its cursor
skips it. Marks are merges (never inserts), so a mark never brings back a row retention deleted.
"""

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from scim.store import keys, outbox, retries
from scim.store.contract import RecordedChange, StoreUnavailable
from scim.store.tables import MAX_TRANSACTION_OPERATIONS, TableStore

PUBLISHER_PARTITION = "publisher"
STATE_PREFIX = "tenant:"
PUBLISHED = "published"
T = TypeVar("T")


@dataclass(frozen=True)
class PublisherState:
    """A tenant's state row as last read or written; ``etag`` None when the row does not exist yet."""

    tenant: str
    cursor: str = ""
    owner: str = ""
    lease_until: float = 0.0
    etag: str | None = None


@dataclass(frozen=True)
class EventRow:
    """One outbox row: where it lives, whether it was sent, and (read only when it is to be sent: most rows a pass
    reads were sent before) the change it records."""

    partition: str
    position: str
    published: bool
    entity: dict[str, Any]

    @property
    def change(self) -> RecordedChange:
        return outbox.recorded(self.entity)


def scan_start(cursor: str) -> str:
    """The first RowKey after ``cursor``: after a full position, or from a 16-digit horizon (positions that begin
    with it are later than it)."""
    if not cursor:
        return keys.EVENT_PREFIX
    return keys.event_row_key(cursor) + ("\x00" if len(cursor) > 16 else "")


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
    entity = {
        "PartitionKey": PUBLISHER_PARTITION,
        "RowKey": STATE_PREFIX + state.tenant,
        "tenant": state.tenant,
        "cursor": state.cursor,
        "owner": state.owner,
        "leaseUntil": float(state.lease_until),
    }
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
    return PublisherState(state.tenant, state.cursor, state.owner, state.lease_until, str(result.get("etag", "")))


async def pending(store: TableStore, tenant: str, cursor: str, limit: int) -> tuple[list[EventRow], str | None]:
    """The tenant's event rows after ``cursor``, in position order, sent or not, and how far they are complete:
    each partition is read up to ``limit`` rows; when one had more, rows past the lowest such partition's last row
    are left out (another partition may hold rows below them that were not read) and its last position is returned,
    else None (every row after ``cursor`` was read)."""
    low, high = scan_start(cursor), keys.prefix_upper_bound(keys.EVENT_PREFIX)

    async def first_rows(resource_type: str) -> tuple[list[EventRow], str | None]:
        partition = keys.partition_key(tenant, resource_type)
        rows: list[EventRow] = []
        async for entity in store.range(partition, low, high, None):  # the store's pages: one turn each
            position = entity["RowKey"][len(keys.EVENT_PREFIX) :]
            rows.append(EventRow(partition, position, bool(entity.get(PUBLISHED)), entity))
            if len(rows) >= limit:
                return rows, rows[-1].position
        return rows, None

    found = await asyncio.gather(*(first_rows(resource_type) for resource_type in outbox.FEED_TYPES))
    complete = min((last for _, last in found if last is not None), default=None)
    rows = sorted(itertools.chain.from_iterable(rows for rows, _ in found), key=lambda row: row.position)
    if complete is not None:
        rows = [row for row in rows if row.position <= complete]
    return rows, complete


async def mark_published(store: TableStore, rows: Sequence[EventRow], when: str) -> None:
    """Merge ``published`` into each row, up to 100 rows of one partition to a transaction, all at once. A row
    already gone (deleted by retention) is left out: marking is only a hint to skip it."""
    table = await store.table_client()

    def mark(key: str, partition: str) -> tuple[Any, ...]:
        return ("update", {"PartitionKey": partition, "RowKey": key, PUBLISHED: when}, {"mode": UpdateMode.MERGE})

    by_partition: dict[str, list[str]] = {}
    for row in rows:
        by_partition.setdefault(row.partition, []).append(keys.event_row_key(row.position))
    work = [
        _submit_present(table, partition, row_keys[i : i + MAX_TRANSACTION_OPERATIONS], mark)
        for partition, row_keys in by_partition.items()
        for i in range(0, len(row_keys), MAX_TRANSACTION_OPERATIONS)
    ]
    await asyncio.gather(*work)


async def delete_before(store: TableStore, tenant: str, position: str, most: int) -> int:
    """Delete up to ``most`` event rows per partition with a position before ``position`` (a 16-digit horizon that
    the caller knows is below the cursor: every such row has been sent); returns how many went."""
    table = await store.table_client()
    upper = keys.event_row_key(position)

    async def expire(resource_type: str) -> int:
        partition = keys.partition_key(tenant, resource_type)
        row_keys: list[str] = []
        async for entity in store.range(partition, keys.EVENT_PREFIX, upper, ["RowKey"]):
            row_keys.append(entity["RowKey"])
            if len(row_keys) >= most:
                break
        for i in range(0, len(row_keys), MAX_TRANSACTION_OPERATIONS):
            await _submit_present(table, partition, row_keys[i : i + MAX_TRANSACTION_OPERATIONS], _delete)
        return len(row_keys)

    return sum(await asyncio.gather(*(expire(resource_type) for resource_type in outbox.FEED_TYPES)))


def _delete(key: str, partition: str) -> tuple[Any, ...]:
    return ("delete", {"PartitionKey": partition, "RowKey": key})


async def _submit_present(
    table: Any, partition: str, row_keys: list[str], operation: Callable[[str, str], tuple[Any, ...]]
) -> None:
    """One transaction of ``operation`` on each row, leaving out any row already gone (another sweep or retention
    got there first: a transaction fails whole on its first missing row, which it names)."""
    while row_keys:
        operations = [operation(key, partition) for key in row_keys]
        try:
            await _attempts(lambda operations=operations: table.submit_transaction(operations))
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
    )
