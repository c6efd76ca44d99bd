"""``python -m scim reindex``: build the index rows of attributes added to ``SCIM_INDEXED_ATTRIBUTES`` on tenants
that already have resources, online, while Entra keeps writing.

The endpoint writes a listed attribute's rows with every write from the moment the setting is live, so only
resources written before lack them. Per tenant, resource type and attribute:

1. the rows present are read once (keys only, a digest each in memory);
2. the resources are read page by page in id order; each row a resource needs and lacks is inserted (100 per
   transaction, never overwriting: a row the endpoint wrote first wins), then the page's resources are read again:
   one that changed meanwhile and no longer needs a row just inserted gets it deleted, on that row's ETag, so a row
   the endpoint rewrote since stays;
3. after each page the last id done is recorded (``state:reindex:<index>``), so an interrupted run resumes there;
4. at the end the index's ready row (``state:index:<index>``) is written: from then on ``eq`` filters on the
   attribute are answered from the index; before it, they scan, so they are right all along.

Run it after the setting is live on every instance (an instance still on the old setting writes no rows).
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from scim import indexes, protocol
from scim.indexes import IndexedAttribute
from scim.store import keys, maintenance
from scim.store.contract import StoredResource
from scim.store.maintenance import Row
from scim.store.tables import TableStore

PROGRESS_PREFIX = "state:reindex:"
BATCH = 100
"""Rows inserted per transaction (Table Storage's limit per entity-group transaction)."""
RESOURCE_TYPES = ("User", "Group")
PAGE = 500
"""Resources per recorded progress step."""


@dataclass
class ReindexReport:
    """What one run did, per ``<tenant> <resource type> <attribute path>``."""

    resources_read: int = 0
    rows_inserted: int = 0
    rows_withdrawn: int = 0
    completed: list[str] = field(default_factory=list)
    already_ready: list[str] = field(default_factory=list)


async def reindex(
    store: TableStore, indexed: Sequence[IndexedAttribute], tenants: Sequence[str] | None = None
) -> ReindexReport:
    """Build the missing rows of every listed attribute for the given tenants (all tenants in the table if None)."""
    report = ReindexReport()
    for tenant in list(tenants) if tenants is not None else await _all_tenants(store):
        for resource_type in RESOURCE_TYPES:
            for attribute in indexes.for_type(indexed, resource_type):
                await _Reindex(store, tenant, attribute, report).run()
    return report


async def _all_tenants(store: TableStore) -> list[str]:
    found: dict[str, None] = {}
    async for partition in maintenance.partition_keys(store):
        tenant, separator, resource_type = partition.rpartition(":")
        if separator and resource_type in RESOURCE_TYPES:
            found[tenant] = None
    return sorted(found)


@dataclass
class _Reindex:
    store: TableStore
    tenant: str
    attribute: IndexedAttribute
    report: ReindexReport

    @property
    def partition(self) -> str:
        return keys.partition_key(self.tenant, self.attribute.resource_type)

    @property
    def label(self) -> str:
        return f"{self.tenant} {self.attribute.resource_type} {self.attribute.path}"

    async def run(self) -> None:
        ready_key = indexes.ready_row_key(self.attribute)
        if await maintenance.read(self.store, self.partition, ready_key) is not None:
            self.report.already_ready.append(self.label)
            return
        present = await self._present_rows()
        progress_key = PROGRESS_PREFIX + self.attribute.key_name
        progress = await maintenance.read(self.store, self.partition, progress_key)
        after = str(progress.properties.get("after", "")) if progress is not None else ""
        page: list[StoredResource] = []
        async for stored in self.store.scan(self.tenant, self.attribute.resource_type, after):
            page.append(stored)
            if len(page) == PAGE:
                await self._index_page(after, page, present)
                after = page[-1].resource_id
                await self._record(progress_key, after)
                page = []
        if page:
            await self._index_page(after, page, present)
            await self._record(progress_key, page[-1].resource_id)
        await maintenance.create(
            self.store, self.partition, ready_key, {"attribute": self.attribute.path, "completed": protocol.now()}
        )
        self.report.completed.append(self.label)

    async def _present_rows(self) -> set[str]:
        prefix = f"{keys.INDEX_PREFIX}{self.attribute.key_name}:"
        rows = self.store.range(self.partition, prefix, keys.prefix_upper_bound(prefix), ["RowKey"])
        return {str(entity["RowKey"]) async for entity in rows}

    async def _index_page(self, after: str, page: list[StoredResource], present: set[str]) -> None:
        self.report.resources_read += len(page)
        needed: list[tuple[str, str]] = []
        for stored in page:
            for key in self.attribute.keys(stored.document):
                row_key = keys.shared_index_row_key(key.name, key.value, stored.resource_id)
                if row_key not in present:
                    needed.append((row_key, stored.resource_id))
        if not needed:
            return
        inserted = await self._insert(needed)
        await self._withdraw_unneeded(after, page, inserted)

    async def _insert(self, needed: list[tuple[str, str]]) -> list[tuple[Row, str]]:
        """Insert the rows, a transaction per 100; a transaction that meets a row written meanwhile is redone row by
        row. Returns the rows this run inserted, with their resource ids."""
        inserted: list[tuple[Row, str]] = []
        for start in range(0, len(needed), BATCH):
            chunk = needed[start : start + BATCH]
            rows = [(row_key, {"resourceId": rid}) for row_key, rid in chunk]
            batch = await maintenance.insert_many(self.store, self.partition, rows)
            if batch is not None:
                inserted += [(Row(rk, {}, etag), rid) for (rk, rid), etag in zip(chunk, batch, strict=True)]
                continue
            etags = await asyncio.gather(
                *(maintenance.create(self.store, self.partition, rk, {"resourceId": rid}) for rk, rid in chunk)
            )
            inserted += [(Row(rk, {}, etag), rid) for (rk, rid), etag in zip(chunk, etags, strict=True) if etag]
        self.report.rows_inserted += len(inserted)
        return inserted

    async def _withdraw_unneeded(self, after: str, page: list[StoredResource], inserted: list[tuple[Row, str]]) -> None:
        """A resource changed or deleted since it was read may no longer need a row just inserted for it. The page is
        read again as one range (not a point read per resource), after the inserts."""
        last = page[-1].resource_id
        fresh: dict[str, StoredResource] = {}
        async for stored in self.store.scan(self.tenant, self.attribute.resource_type, after):
            if stored.resource_id > last:
                break
            fresh[stored.resource_id] = stored
        versions = {stored.resource_id: stored.etag for stored in page}
        for row, rid in inserted:
            now = fresh.get(rid)
            if now is not None and now.etag == versions[rid]:
                continue
            needs = now is not None and row.row_key in {
                keys.shared_index_row_key(k.name, k.value, rid) for k in self.attribute.keys(now.document)
            }
            if not needs and await maintenance.delete_unchanged(self.store, self.partition, [row]):
                self.report.rows_withdrawn += 1

    async def _record(self, progress_key: str, last_id: str) -> None:
        await maintenance.upsert(self.store, self.partition, progress_key, {"after": last_id})
