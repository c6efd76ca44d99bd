"""The resource store on Azure Table Storage (Azurite locally), through the async ``azure-data-tables`` client.

Layout (the README's data-model section describes it for teams reading the data from their own apps):

- table ``<prefix>Resources``; PartitionKey ``<tenant>:<ResourceType>``;
- resource row: RowKey ``id:<id>``, properties ``doc`` (the SCIM document as JSON), ``created``, ``lastModified``
  and readable copies of a few attributes (``userName``, ``externalId``…);
- index rows in the same partition: RowKey ``ix:<index>:<sha256>`` (unique) or ``ix:<index>:<sha256>:<id>``
  (shared), property ``resourceId``.

A resource and its index rows change in one entity-group transaction, so uniqueness is atomic and an index never
points at a resource that is not there. Table Storage's limits that Azurite does not enforce (entity size, 100
operations per transaction) are checked here.
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from typing import Any, TypeVar

import aiohttp
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.core.pipeline.transport import AioHttpTransport
from azure.data.tables import TableEntity, TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from scim import cpu_share
from scim.concurrent import map_bounded
from scim.store import entity_group, keys, outbox, retries, row_reads
from scim.store.contract import (
    Change,
    IndexKey,
    Member,
    RecordedChange,
    ResourceChanged,
    ResourceTooLarge,
    StoredResource,
    StoreUnavailable,
    UniqueKeyTaken,
)
from scim.store.outbox import CommitWindowClosed, Outbox

MAX_DOCUMENT_CHARS = 30_000
"""A string property holds at most 64 KiB of UTF-16; the document must fit in one, with room to spare."""
MAX_TRANSACTION_OPERATIONS = 100
WRITES: ContextVar[list[int] | None] = ContextVar("scim_table_writes", default=None)
"""Table write requests (transactions and single-row writes) made for the current request; the dispatcher logs it.
A one-element list, so writes made in tasks the request spawns are counted too."""
IF_NOT_MODIFIED = MatchConditions.IfNotModified
TRANSACTIONS_AT_ONCE = 4
"""Membership transactions of one request in flight together: Entra's batch of 100 members (2 transactions) is one
round trip, while a 1,000-member PATCH does not put 2,000 rows at once on one partition (Table Storage's target is
2,000 entities/s per partition) and an interrupted one leaves a prefix for the re-send to complete."""
PAGE_SIZE = 100
"""Rows per range read. A page is decoded in one go and no other request on the instance runs meanwhile: 100 user
rows cost 1.1 ms of CPU (:mod:`scim.store.row_reads`; the SDK's decoding took 3.3, and 500 rows held the loop 28 ms,
bench/fairness.py)."""
CONNECTIONS = 256
"""Storage connections the process keeps open at most (aiohttp's default is 100): a 100-member group PATCH reads
the group and its 100 members at once, 101 calls, and an instance serves several requests at a time."""
CALLS_IN_FLIGHT_PER_REQUEST = 128
"""Storage calls one request may have waiting on storage at once. A 200-user search reads 200 users' groups, and
unbounded those calls queue ahead of every other tenant's call at the storage account's front end; 128 is more than
any Entra request needs at once (a 100-member group PATCH reads the group and its 100 members together)."""
_IN_FLIGHT: ContextVar[asyncio.Semaphore | None] = ContextVar("scim_calls_in_flight", default=None)
READ_CONCURRENCY = 32
"""Point reads one request keeps in flight at once: enough to hide storage latency, few enough to share the pool."""
DELETE_ROUNDS = 5
"""Attempts of a row delete that keeps meeting rows deleted under it (each after reading which remain)."""
HEALTH_PARTITION = "health"
"""No tenant's partition: tenant partitions are ``<tenant>:<type>``."""

CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 0,
    "connection_timeout": 3,
    "read_timeout": retries.ATTEMPT_TIMEOUT_SECONDS,
    "use_env_settings": False,
}
"""The SDK's defaults retry for up to a week with 300 s timeouts; :mod:`scim.store.retries` retries instead, within
the request's budget. ``use_env_settings=False`` stops aiohttp from reading proxy variables and ``.netrc`` on every
call (8 % of the server's time in bench/entra_cycle.py); the Functions sandbox reaches storage directly."""
T = TypeVar("T")
Verify = Callable[[], Awaitable[str | None]]
"""After a write whose earlier attempt may have been applied fails with a conflict: the new ETag if the stored row
is the one this write meant to leave (the conflict was with itself), else None."""

logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
"""At INFO the SDK logs every storage call's headers: 4-5 % of server time locally, and App Insights volume in Azure."""


class TableStore:
    """Resources and their index rows in one table; one instance (and one HTTP session) per process."""

    def __init__(
        self,
        service: Callable[[], TableServiceClient],
        table_name: str,
        request_budget: float = retries.REQUEST_BUDGET_SECONDS,
    ) -> None:
        self._new_service = service
        self._built: TableServiceClient | None = None
        self._table_name = table_name
        self._table: TableClient | None = None
        self._table_checked: asyncio.Lock | None = None
        self._budget = request_budget
        self.commit_window = outbox.COMMIT_WINDOW_SECONDS
        """How long after its stamp an event's transaction may still be attempted (:mod:`scim.store.outbox`)."""

    @classmethod
    def from_settings(
        cls,
        connection_string: str | None,
        table_uri: str | None,
        table_prefix: str,
        request_budget: float = retries.REQUEST_BUDGET_SECONDS,
    ) -> "TableStore":
        """Connection string on Azurite; managed identity (DefaultAzureCredential) on Azure. The client is built on
        first use, inside the event loop its HTTP session belongs to; a malformed connection string fails here."""
        if connection_string:
            TableServiceClient.from_connection_string(connection_string)  # raises ValueError now, not mid-request

            def service() -> TableServiceClient:
                return TableServiceClient.from_connection_string(
                    connection_string, transport=_transport(), **CLIENT_OPTIONS
                )

        else:

            def service() -> TableServiceClient:
                from azure.identity.aio import DefaultAzureCredential

                credential = DefaultAzureCredential()
                return TableServiceClient(
                    str(table_uri), credential=credential, transport=_transport(), **CLIENT_OPTIONS
                )

        return cls(service, f"{table_prefix}Resources", request_budget)

    @property
    def _service(self) -> TableServiceClient:
        """The process's one service client (and HTTP session), built on first use."""
        if self._built is None:
            self._built = self._new_service()
        return self._built

    @contextmanager
    def request_scope(self) -> Iterator[None]:
        """Everything the store does inside shares one retry budget and one bound on storage calls in flight: one
        request's storage work."""
        token = _IN_FLIGHT.set(asyncio.Semaphore(CALLS_IN_FLIGHT_PER_REQUEST))
        try:
            with retries.request_budget(self._budget):
                yield
        finally:
            _IN_FLIGHT.reset(token)

    async def _run(self, call: Callable[[], Awaitable[T]], attempts: retries.Attempts | None = None) -> T:
        limit = _IN_FLIGHT.get()
        if limit is None:
            return await (attempts or retries.Attempts(self._budget)).run(call)
        async with limit, cpu_share.storage_call():
            return await (attempts or retries.Attempts(self._budget)).run(call)

    async def close(self) -> None:
        if self._built is not None:
            await self._built.close()

    async def table_client(self) -> TableClient:
        """The table, created on first use by this process; for store modules (maintenance) that need raw rows."""
        return await self._client()

    async def companion_table(self, suffix: str) -> TableClient:
        """Another table of this deployment, ``<prefix><suffix>`` (credentials), over the same HTTP session."""
        name = self._table_name.removesuffix("Resources") + suffix
        try:
            await self._run(lambda: self._service.create_table_if_not_exists(name))
        except AzureError as exc:
            raise StoreUnavailable() from exc
        return self._service.get_table_client(name)

    async def _client(self) -> TableClient:
        """The table, created on first use by this process: once, even when a request's first calls run at once."""
        if self._table is not None:
            return self._table
        if self._table_checked is None:
            self._table_checked = asyncio.Lock()
        async with self._table_checked:
            if self._table is None:
                try:
                    await self._run(lambda: self._service.create_table_if_not_exists(self._table_name))
                except AzureError as exc:
                    raise StoreUnavailable() from exc
                self._table = self._service.get_table_client(self._table_name)
        return self._table

    async def create(
        self,
        tenant: str,
        resource_type: str,
        stored: StoredResource,
        summary: dict[str, str],
        indexes: list[IndexKey],
        change: Change | None = None,
    ) -> StoredResource:
        """Insert a resource and its index rows atomically; a taken unique key fails the whole insert. ``change``
        is recorded for the change feed in the same transaction."""
        partition = keys.partition_key(tenant, resource_type)
        events = self._outbox(change)
        entity = _resource_entity(partition, stored, summary, _last_event(events))
        operations: list[Any] = [("create", entity)]
        operations += [_index_insert(partition, index, stored.resource_id) for index in indexes]
        etag = await self.transact(operations, 1, indexes, self._stored_as(entity), event_rows=events)
        return _with_etag(stored, etag, entity.get("event", ""))

    def _outbox(self, change: Change | None, current: StoredResource | None = None) -> list[Outbox]:
        """A resource's event goes after its rows: the resource row stays first, where conflicts are settled. It
        is stamped after the resource's previous event (``current.event``), whatever this instance's clock says."""
        if change is None:
            return []
        return [Outbox(change, self.commit_window, first=False, after=current.event if current else "")]

    async def replace(
        self,
        tenant: str,
        resource_type: str,
        current: StoredResource,
        stored: StoredResource,
        summary: dict[str, str],
        old_indexes: list[IndexKey],
        new_indexes: list[IndexKey],
        change: Change | None = None,
    ) -> StoredResource:
        """Replace a resource if it still has ``current.etag``, moving only the index rows whose value changed."""
        partition = keys.partition_key(tenant, resource_type)
        added = [index for index in new_indexes if index not in old_indexes]
        removed = [index for index in old_indexes if index not in new_indexes]
        events = self._outbox(change, current)
        entity = _resource_entity(partition, stored, summary, _last_event(events) or current.event)
        if not added and not removed and not events:
            etag = await self._update(entity, current.etag, self._stored_as(entity))
            return _with_etag(stored, etag, current.event)
        operations: list[Any] = [
            ("update", entity, {"mode": UpdateMode.REPLACE, "etag": current.etag, "match_condition": IF_NOT_MODIFIED})
        ]
        operations += [_index_delete(partition, index, current.resource_id) for index in removed]
        first_insert = len(operations)
        operations += [_index_insert(partition, index, current.resource_id) for index in added]
        verify = self._stored_as(entity)
        etag = await self.transact(operations, first_insert, added, verify, event_rows=events)
        return _with_etag(stored, etag, entity.get("event", ""))

    async def delete(
        self,
        tenant: str,
        resource_type: str,
        current: StoredResource,
        indexes: list[IndexKey],
        change: Change | None = None,
    ) -> None:
        """Delete a resource that still has ``current.etag``, with its index rows."""
        partition = keys.partition_key(tenant, resource_type)
        entity = {"PartitionKey": partition, "RowKey": keys.resource_row_key(current.resource_id)}
        operations: list[Any] = [("delete", entity, {"etag": current.etag, "match_condition": IF_NOT_MODIFIED})]
        operations += [_index_delete(partition, index, current.resource_id) for index in indexes]
        await self.transact(operations, verify=self._gone(entity), event_rows=self._outbox(change, current))

    async def changes(
        self, tenant: str, after: str | None, limit: int, settle: float
    ) -> tuple[list[RecordedChange], str]:
        """Up to ``limit`` of a tenant's events after position ``after``, in position order, and the position to
        resume from. Only events at or before the horizon are read (:mod:`scim.store.outbox`), so a follower never
        passes an event that has yet to commit; each partition holding events is read with one range read."""
        high = outbox.horizon(settle)
        start = after or ""
        if start >= high:
            return [], start
        low = keys.event_row_key(start) + "\x00" if start else keys.EVENT_PREFIX
        upper = keys.event_row_key(high)

        async def first_rows(resource_type: str) -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = []
            partition = keys.partition_key(tenant, resource_type)
            async for entity in self.range(partition, low, upper, None, min(limit, PAGE_SIZE)):
                rows.append(entity)
                if len(rows) >= limit:
                    break
            return rows

        pages = await asyncio.gather(*(first_rows(resource_type) for resource_type in outbox.FEED_TYPES))
        rows = outbox.merge(pages, limit)
        found = [outbox.recorded(entity) for entity in rows]
        return found, (found[-1].position if len(found) == limit else high)

    def _stored_as(self, entity: dict[str, Any]) -> Verify:
        """Whether the resource row holds exactly what ``entity`` wrote: ids are never reused and the document
        carries its write's timestamp, so an equal row means an earlier attempt of this write was applied."""

        async def verify() -> str | None:
            row = await self.point_read(entity["PartitionKey"], entity["RowKey"])
            if row is None or row.get("doc") != entity["doc"] or row.get("lastModified") != entity["lastModified"]:
                return None
            return str(row.metadata["etag"])

        return verify

    def _gone(self, entity: dict[str, Any]) -> Verify:
        """A deleted resource never comes back (ids are never reused): if its row is gone, the delete was applied."""

        async def verify() -> str | None:
            return "" if await self.point_read(entity["PartitionKey"], entity["RowKey"]) is None else None

        return verify

    async def _update(self, entity: dict[str, Any], etag: str, verify: Verify) -> str:
        """A conditional replace of one row: no transaction needed when no index row moves, and the SDK's batch
        encoding is the costliest step of a write (bench/README.md)."""
        table = await self._client()
        attempts = retries.Attempts(self._budget)

        def replace() -> Awaitable[dict[str, Any]]:
            _count_write()
            return table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=IF_NOT_MODIFIED)

        try:
            result = await self._run(replace, attempts)
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            return await self._settle(attempts, verify, exc)
        except HttpResponseError as exc:
            raise (ResourceTooLarge() if exc.status_code == 413 else StoreUnavailable()) from exc
        except AzureError as exc:
            raise StoreUnavailable() from exc
        return str(result.get("etag", ""))

    async def touch(
        self, tenant: str, resource_type: str, resource_id: str, last_modified: str, etag: str | None = None
    ) -> str | None:
        """Set ``lastModified`` (a merge, never creating the row); None if the resource is gone. With ``etag``, only
        if the row still has it, else :class:`ResourceChanged`: of concurrent writers holding one version, one wins."""
        table = await self._client()
        entity = {
            "PartitionKey": keys.partition_key(tenant, resource_type),
            "RowKey": keys.resource_row_key(resource_id),
            "lastModified": last_modified,
        }
        condition: dict[str, Any] = {"etag": etag, "match_condition": IF_NOT_MODIFIED} if etag else {}
        attempts = retries.Attempts(self._budget)

        def merge() -> Awaitable[dict[str, Any]]:
            _count_write()
            return table.update_entity(entity, mode=UpdateMode.MERGE, **condition)

        try:
            result = await self._run(merge, attempts)
        except ResourceModifiedError as exc:
            return await self._settle(attempts, self._touched(entity), exc)
        except ResourceNotFoundError as exc:
            self._check_table(exc)
            return None
        except AzureError as exc:
            raise StoreUnavailable() from exc
        return str(result.get("etag", ""))

    def _touched(self, entity: dict[str, Any]) -> Verify:
        """Whether an earlier attempt of this merge was applied: the row carries its timestamp."""

        async def verify() -> str | None:
            row = await self.point_read(entity["PartitionKey"], entity["RowKey"])
            return str(row.metadata["etag"]) if row and row.get("lastModified") == entity["lastModified"] else None

        return verify

    async def get(self, tenant: str, resource_type: str, resource_id: str) -> StoredResource | None:
        entity = await self.point_read(keys.partition_key(tenant, resource_type), keys.resource_row_key(resource_id))
        return None if entity is None else _stored(entity)

    async def has_row(self, tenant: str, resource_type: str, row_key: str) -> bool:
        """Whether a row outside the resource and index ranges (a state row, such as an index's ready row) exists."""
        return await self.point_read(keys.partition_key(tenant, resource_type), row_key) is not None

    async def lookup(self, tenant: str, resource_type: str, index: IndexKey) -> list[str]:
        """The ids of the resources an index key points at: a point read, or a range read of one prefix."""
        partition = keys.partition_key(tenant, resource_type)
        if index.unique:
            entity = await self.point_read(partition, keys.unique_index_row_key(index.name, index.value))
            return [] if entity is None else [entity["resourceId"]]
        prefix = keys.shared_index_prefix(index.name, index.value)
        return [entity["resourceId"] async for entity in self._prefix(partition, prefix, ["resourceId"])]

    async def scan(self, tenant: str, resource_type: str, after: str = "") -> AsyncIterator[StoredResource]:
        """Every resource of a type (with an id greater than ``after``), in id order, read page by page (never the
        whole partition at once)."""
        partition = keys.partition_key(tenant, resource_type)
        low = keys.resource_row_key(after) if after else keys.RESOURCE_PREFIX
        high = keys.prefix_upper_bound(keys.RESOURCE_PREFIX)
        async for entity in self.range(partition, low, high, None):
            stored = _stored(entity)
            if stored.resource_id != after:
                yield stored

    async def count(self, tenant: str, resource_type: str) -> int:
        """How many resources of a type exist, reading keys only."""
        partition = keys.partition_key(tenant, resource_type)
        return sum([1 async for _ in self._prefix(partition, keys.RESOURCE_PREFIX, ["RowKey"])])

    def _prefix(self, partition: str, prefix: str, select: Sequence[str] | None) -> AsyncIterator[dict[str, Any]]:
        return self.range(partition, prefix, keys.prefix_upper_bound(prefix), select)

    async def range(
        self, partition: str, low: str, high: str, select: Sequence[str] | None, page_size: int = PAGE_SIZE
    ) -> AsyncIterator[dict[str, Any]]:
        """Rows with ``low <= RowKey < high`` in key order, read page by page; a page that fails is fetched again
        from the continuation token of the one before, so a hiccup mid-scan neither repeats nor skips rows."""
        table = await self._client()
        token: Any = None
        while True:
            try:
                rows, token = await self._run(
                    lambda token=token: row_reads.read_page(table, partition, low, high, select, page_size, token)
                )
            except ResourceNotFoundError as exc:
                self._check_table(exc)
                raise StoreUnavailable() from exc
            except AzureError as exc:
                raise StoreUnavailable() from exc
            for row in rows:
                async with cpu_share.turn():  # the caller's work on each row is CPU: one scanning request at a time
                    pass
                yield row
            if not token:
                return

    async def point_read(self, partition: str, row_key: str, select: Sequence[str] | None = None) -> TableEntity | None:
        """One row, or None when the row does not exist; a missing table is an outage, never "no such row"."""
        table = await self._client()
        try:
            return await self._run(lambda: row_reads.read_row(table, partition, row_key, select))
        except ResourceNotFoundError as exc:
            self._check_table(exc)
            return None
        except AzureError as exc:
            raise StoreUnavailable() from exc

    async def reachable(self, budget: float) -> bool:
        """Whether the table answers a point read (of a row that never exists) within ``budget`` seconds."""
        try:
            with retries.request_budget(budget):
                await self.point_read(HEALTH_PARTITION, HEALTH_PARTITION)
        except StoreUnavailable:
            return False
        return True

    def _check_table(self, exc: ResourceNotFoundError) -> None:
        """A 404 for the table itself (deleted under a running app) must not read as "no such user": Entra would
        create every user again. The next request recreates the table."""
        if exc.error_code == "TableNotFound":
            self._table = None
            raise StoreUnavailable() from exc

    async def _settle(self, attempts: retries.Attempts, verify: Verify | None, exc: Exception) -> str:
        """A write failed on a conflict: if an earlier attempt of it was applied, that is success, else the
        resource changed under it."""
        if attempts.uncertain and verify is not None:
            etag = await verify()
            if etag is not None:
                return etag
        raise ResourceChanged() from exc

    async def delete_rows(self, partition: str, row_keys: Sequence[str], event_rows: Sequence[Outbox] = ()) -> None:
        """Delete rows in one transaction; rows already gone are skipped (idempotent).

        A transaction fails whole on the first row that is not there, so when one is missing (a re-sent request, a
        racing delete) the rows still present are learnt with point reads and only they are deleted: a batch of
        missing rows costs one failed transaction and its reads, never one transaction per missing row.
        ``event_rows`` (the change feed) are written with the rows that are deleted, naming only those."""
        remaining = list(row_keys)
        for _ in range(DELETE_ROUNDS):
            if not remaining:
                return
            operations: list[Any] = [("delete", {"PartitionKey": partition, "RowKey": key}) for key in remaining]
            try:
                await self.transact(operations, guarded_rows=len(operations), event_rows=event_rows)
                return
            except ResourceChanged:
                remaining = await self.present(partition, remaining)
        raise ResourceChanged()

    async def present(self, partition: str, row_keys: Sequence[str]) -> list[str]:
        """Which of these rows exist, by concurrent point reads of their keys only."""

        async def exists(row_key: str) -> bool:
            return await self.point_read(partition, row_key, select=["RowKey"]) is not None

        found = await map_bounded(exists, row_keys, cpu_share.read_workers(len(row_keys), READ_CONCURRENCY))
        return [row_key for row_key, there in zip(row_keys, found, strict=True) if there]

    async def transact(
        self,
        operations: list[Any],
        indexes_from: int = 0,
        index_keys: Iterable[IndexKey] = (),
        verify: Verify | None = None,
        guarded_rows: int = 1,
        event_rows: Sequence[Outbox] = (),
        upsert_on_conflict: bool = False,
    ) -> str:
        """Run one entity-group transaction, retried as a whole (it is atomic, so a failed attempt left nothing
        or everything); returns the first row's new ETag. ``verify`` settles a conflict on the first row after an
        attempt whose answer was lost.

        A delete of a row that is not there is dropped and the rest run again: that row's goal is reached. For an
        index row only a bug or a hand edit removes one alone, and the resource's next write then repairs the damage
        instead of failing on it for ever. The first ``guarded_rows`` operations (the resource row, whose absence
        means it changed) are exempt. With ``upsert_on_conflict`` an insert of a row already there becomes an upsert
        (a member already present is refreshed, not added).

        ``event_rows`` are the change-feed rows of this change, rebuilt from the operations left before each attempt
        and each kept at one position: a 409 on one means an earlier attempt of this transaction was applied (an
        event row precedes its pending row, which the publisher may have deleted since)."""
        if len(operations) + sum(event_row.rows for event_row in event_rows) > MAX_TRANSACTION_OPERATIONS:
            raise ResourceTooLarge()
        table = await self._client()
        attempts = retries.Attempts(self._budget)

        def submit(batch: list[Any]) -> Awaitable[list[dict[str, Any]]]:
            for event_row in event_rows:  # never sent after its commit window (scim.store.outbox)
                event_row.check_window()
            _count_write()
            return entity_group.submit(table, batch)

        partition = operations[0][1]["PartitionKey"] if operations else ""
        first = any(event_row.first for event_row in event_rows)
        while operations:
            events = [row for event_row in event_rows for row in event_row.operations(partition, operations)]
            batch = [*events, *operations] if first else [*operations, *events]
            offset = len(events) if first else 0
            try:
                results = await self._run(lambda batch=batch: submit(batch), attempts)
                return str(results[offset].get("etag", "")) if results else ""
            except TableTransactionError as exc:
                failed = (getattr(exc, "index", 0) or 0) - offset
                if events and exc.status_code == 409 and not 0 <= failed < len(operations):
                    return ""  # an event row is there: an earlier attempt of this transaction was applied
                if exc.status_code == 404 and failed >= guarded_rows and operations[failed][0] == "delete":
                    operations = operations[:failed] + operations[failed + 1 :]
                    indexes_from -= failed < indexes_from
                    continue
                if exc.status_code == 409 and upsert_on_conflict and operations[failed][0] == "create":
                    operations = [*operations[:failed], ("upsert", operations[failed][1]), *operations[failed + 1 :]]
                    continue
                failure = _transaction_failure(exc, operations, indexes_from, list(index_keys))
                if failed == 0 and exc.status_code in (404, 409, 412):
                    return await self._settle(attempts, verify, failure)
                raise failure from exc
            except (ResourceModifiedError, ResourceNotFoundError) as exc:
                return await self._settle(attempts, verify, exc)
            except HttpResponseError as exc:
                if exc.status_code == 413:
                    raise ResourceTooLarge() from exc
                raise StoreUnavailable() from exc
            except (AzureError, CommitWindowClosed) as exc:
                raise StoreUnavailable() from exc
        return ""  # every row was a delete of a row already gone


class _SharedTransport(AioHttpTransport):
    """azure-core's aiohttp transport, whose answers to a paced call wait for a turn at the CPU before the SDK
    decodes them (:func:`scim.cpu_share.answer_turn`): the transport is the one place between the wire and the
    decoding that the SDK lets us own."""

    async def send(self, request: Any, **kwargs: Any) -> Any:
        response = await super().send(request, **kwargs)
        await cpu_share.answer_turn()
        return response


def _transport() -> AioHttpTransport:
    """azure-core's aiohttp transport over a session like the one it would build itself, but with a pool of
    :data:`CONNECTIONS` instead of aiohttp's 100. Must run inside the event loop."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CONNECTIONS),
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )
    timeouts = {name: CLIENT_OPTIONS[name] for name in ("connection_timeout", "read_timeout")}
    return _SharedTransport(session=session, session_owner=True, **timeouts)


def _count_write() -> None:
    counter = WRITES.get()
    if counter is not None:
        counter[0] += 1


def _transaction_failure(
    exc: TableTransactionError, operations: list[Any], indexes_from: int, index_keys: list[IndexKey]
) -> Exception:
    failed = getattr(exc, "index", 0) or 0
    if exc.status_code == 409 and indexes_from <= failed < indexes_from + len(index_keys):
        return UniqueKeyTaken(index_keys[failed - indexes_from].name)
    if exc.status_code in (404, 412):
        return ResourceChanged()
    if exc.status_code == 413:
        return ResourceTooLarge()
    return StoreUnavailable()


def _last_event(events: Sequence[Outbox]) -> str:
    return events[-1].position if events else ""


def _resource_entity(partition: str, stored: StoredResource, summary: dict[str, str], event: str) -> dict[str, Any]:
    """The resource row; ``event`` is the position of its last change-feed event, kept so that the next one is
    stamped after it (:func:`scim.store.outbox.next_position`)."""
    document = json.dumps(stored.document, ensure_ascii=False, separators=(",", ":"))
    if len(document) > MAX_DOCUMENT_CHARS:
        raise ResourceTooLarge()
    entity: dict[str, Any] = {
        "PartitionKey": partition,
        "RowKey": keys.resource_row_key(stored.resource_id),
        "doc": document,
        "created": stored.created,
        "lastModified": stored.last_modified,
    }
    entity.update({name: value[:1024] for name, value in summary.items()})
    if event:
        entity["event"] = event
    return entity


def _index_insert(partition: str, index: IndexKey, resource_id: str) -> tuple[str, dict[str, Any]]:
    if index.unique:
        row_key = keys.unique_index_row_key(index.name, index.value)
        return ("create", {"PartitionKey": partition, "RowKey": row_key, "resourceId": resource_id})
    row_key = keys.shared_index_row_key(index.name, index.value, resource_id)
    return ("upsert", {"PartitionKey": partition, "RowKey": row_key, "resourceId": resource_id})


def _index_delete(partition: str, index: IndexKey, resource_id: str) -> tuple[str, dict[str, Any]]:
    if index.unique:
        row_key = keys.unique_index_row_key(index.name, index.value)
    else:
        row_key = keys.shared_index_row_key(index.name, index.value, resource_id)
    return ("delete", {"PartitionKey": partition, "RowKey": row_key})


def _stored(entity: dict[str, Any]) -> StoredResource:
    return StoredResource(
        resource_id=entity["RowKey"][len(keys.RESOURCE_PREFIX) :],
        document=json.loads(entity["doc"]),
        created=entity["created"],
        last_modified=entity["lastModified"],
        etag=entity.metadata["etag"],
        event=entity.get("event", ""),
    )


def _with_etag(stored: StoredResource, etag: str, event: str) -> StoredResource:
    return StoredResource(stored.resource_id, stored.document, stored.created, stored.last_modified, etag, event)


class MembershipStore:
    """Group membership as rows: a forward row per (group, member) and a reverse row per (member, group).

    Both rows of every edge live in one partition per tenant (``<tenant>:Membership``), so an edge's two rows are
    written and deleted in the same entity-group transaction and can never disagree. A transaction carries 50 edges
    (100 rows); adding 1,000 members is 20 transactions, never 1,000 round trips. A group's member list is read
    page by page and never held whole; a membership check is one point read.
    """

    EDGES_PER_TRANSACTION = MAX_TRANSACTION_OPERATIONS // 2
    EDGES_PER_RECORDED_TRANSACTION = (MAX_TRANSACTION_OPERATIONS - 2) // 2
    """With the change feed on, each transaction also carries its event row, and its pending row when queued: 49
    edges either way."""
    MEMBERS_ADDED = "scim.group.members.added"
    MEMBERS_REMOVED = "scim.group.members.removed"

    def __init__(self, store: TableStore, record_changes: bool = False, queued: bool = False) -> None:
        self._store = store
        self._record = record_changes
        self._queued = queued
        """Events are also written as pending, for the queue publisher: two rows per event."""

    async def add(self, tenant: str, group_id: str, members: Sequence[Member]) -> None:
        """Insert or refresh edges; adding a member already present changes nothing but its display. The
        transactions touch disjoint rows, so they run at once.

        With the change feed on, a forward row is inserted rather than upserted, so the event names exactly the
        members this request added: a member already there fails its insert, which becomes an upsert."""
        partition = keys.partition_key(tenant, keys.MEMBERSHIP_TYPE)
        size = self.EDGES_PER_RECORDED_TRANSACTION if self._record else self.EDGES_PER_TRANSACTION
        transactions = []
        for chunk in _chunks(members, size):
            event_rows = self._event_rows(self.MEMBERS_ADDED, [group_id])
            transactions.append(partial(self._add_edges, partition, group_id, chunk, event_rows))
        await _settle_all(transactions)

    async def _add_edges(
        self, partition: str, group_id: str, chunk: Sequence[Member], event_rows: list[Outbox]
    ) -> None:
        """One transaction of :meth:`add`, its rows built only now (see :func:`_settle_all`)."""
        operations: list[Any] = []
        for member in chunk:
            forward = {
                "PartitionKey": partition,
                "RowKey": keys.member_row_key(group_id, member.member_id),
                "memberId": member.member_id,
                "memberType": member.member_type,
                "display": (member.display or "")[:1024],
            }
            reverse = {
                "PartitionKey": partition,
                "RowKey": keys.member_of_row_key(member.member_id, group_id),
                "groupId": group_id,
            }
            operations += [("create" if self._record else "upsert", forward), ("upsert", reverse)]
        await self._store.transact(operations, guarded_rows=0, event_rows=event_rows, upsert_on_conflict=True)

    async def remove(self, tenant: str, edges: Sequence[tuple[str, str]]) -> None:
        """Delete (group, member) edges, any number of which may already be gone (Entra re-sends a removal whose
        answer it missed): 50 edges to a transaction, and only a transaction that fails on a missing row costs
        reads (:meth:`TableStore.delete_rows`). Both rows of each edge are deleted if present, so a half edge
        left by a hand edit goes too. Removing 1,000 members costs 20 transactions when they are there, and 20
        failed transactions and 2,000 point reads when none is: never one transaction per edge. With the change
        feed on, each transaction holds one group's edges (49 and the event), so that its event names one group."""
        partition = keys.partition_key(tenant, keys.MEMBERSHIP_TYPE)
        transactions = []
        for chunk in self._remove_chunks(edges):
            event_rows = self._event_rows(self.MEMBERS_REMOVED, list(dict.fromkeys(g for g, _ in chunk)))
            transactions.append(partial(self._remove_edges, partition, chunk, event_rows))
        await _settle_all(transactions)

    async def _remove_edges(self, partition: str, chunk: Sequence[tuple[str, str]], event_rows: list[Outbox]) -> None:
        """One transaction of :meth:`remove`, its row keys built only now (see :func:`_settle_all`)."""
        await self._store.delete_rows(partition, _edge_rows(chunk), event_rows)

    def _remove_chunks(self, edges: Sequence[tuple[str, str]]) -> list[Sequence[tuple[str, str]]]:
        """Without the feed, 50 edges to a transaction. With it, each transaction also holds the rows of one event
        per group it touches (its event row, and its pending row when queued): one group's 100 members take
        49 + 49 + 2 edges; a user leaving 50 groups takes 33 + 17 (three rows an edge), or 25 + 25 when queued
        (four), still sent at once."""
        if not self._record:
            return _chunks(edges, self.EDGES_PER_TRANSACTION)
        event_rows = 2 if self._queued else 1
        ordered = sorted(edges)
        chunks: list[list[tuple[str, str]]] = []
        rows = MAX_TRANSACTION_OPERATIONS
        for edge in ordered:
            new_group = not chunks or not chunks[-1] or chunks[-1][-1][0] != edge[0]
            cost = 2 + event_rows * new_group
            if rows + cost > MAX_TRANSACTION_OPERATIONS:
                chunks.append([])
                rows, cost = 0, 2 + event_rows
            chunks[-1].append(edge)
            rows += cost
        return chunks

    def _event_rows(self, change_type: str, group_ids: Sequence[str]) -> list[Outbox]:
        if not self._record:
            return []
        return [
            Outbox(
                Change(change_type, "Group", group_id, {"members": []}, self._queued),
                self._store.commit_window,
                first=True,
            )
            for group_id in group_ids
        ]

    async def member(self, tenant: str, group_id: str, member_id: str) -> Member | None:
        partition = keys.partition_key(tenant, keys.MEMBERSHIP_TYPE)
        entity = await self._store.point_read(partition, keys.member_row_key(group_id, member_id))
        return _member(entity) if entity is not None else None

    async def members(self, tenant: str, group_id: str, after: str | None, limit: int) -> list[Member]:
        """Up to ``limit`` members in id order, starting after the member id ``after``."""
        partition = keys.partition_key(tenant, keys.MEMBERSHIP_TYPE)
        prefix = keys.member_row_key(group_id, "")
        start = keys.member_row_key(group_id, after) + "\x00" if after else prefix
        rows = self._store.range(partition, start, keys.prefix_upper_bound(prefix), None, min(limit, PAGE_SIZE))
        found: list[Member] = []
        async for entity in rows:
            found.append(_member(entity))
            if len(found) >= limit:
                break
        return found

    async def member_ids(self, tenant: str, group_id: str) -> AsyncIterator[str]:
        """Every member id of a group, page by page."""
        partition = keys.partition_key(tenant, keys.MEMBERSHIP_TYPE)
        prefix = keys.member_row_key(group_id, "")
        async for entity in self._store.range(partition, prefix, keys.prefix_upper_bound(prefix), ["memberId"]):
            yield entity["memberId"]

    async def groups_of(self, tenant: str, member_id: str) -> list[str]:
        """The ids of the groups a user or group is a direct member of."""
        partition = keys.partition_key(tenant, keys.MEMBERSHIP_TYPE)
        prefix = keys.member_of_row_key(member_id, "")
        rows = self._store.range(partition, prefix, keys.prefix_upper_bound(prefix), ["groupId"])
        return [entity["groupId"] async for entity in rows]


def _edge_rows(edges: Sequence[tuple[str, str]]) -> list[str]:
    """Both rows of each edge: the group's forward row and the member's reverse row."""
    return [
        row
        for group_id, member_id in edges
        for row in (keys.member_row_key(group_id, member_id), keys.member_of_row_key(member_id, group_id))
    ]


def _member(entity: dict[str, Any]) -> Member:
    return Member(entity["memberId"], entity.get("memberType") or "User", entity.get("display") or None)


async def _settle_all(transactions: list[Callable[[], Awaitable[Any]]]) -> None:
    """Send :data:`TRANSACTIONS_AT_ONCE` at a time; once all have settled, raise the first failure (none is left
    running after its request). Each transaction's rows are built when its slot frees, not all up front: the 2,000
    rows of a 1,000-member add, built at once, were 2 ms of the loop in one step, and then as many objects alive for
    every garbage collection to walk while the transactions ran four at a time."""
    slots = asyncio.Semaphore(TRANSACTIONS_AT_ONCE)

    async def run(transaction: Callable[[], Awaitable[Any]]) -> Any:
        async with slots:
            return await transaction()

    for result in await asyncio.gather(*(run(t) for t in transactions), return_exceptions=True):
        if isinstance(result, BaseException):
            raise result


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
