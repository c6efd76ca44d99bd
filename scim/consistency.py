"""``python -m scim check``: find, and on request repair, stored rows that disagree with each other.

The store keeps a resource and its index rows, and both halves of a membership, in single transactions, so these
invariants hold unless a bug, a hand edit or a request interrupted between partitions broke them. Per tenant:

1. every index row points at an existing resource of its partition that expects exactly this row
   ("orphan index row": deleted);
2. every index row a resource expects exists and points at it ("missing index row": inserted), unless a unique
   row already belongs to another existing resource that expects it too ("duplicate unique value": a person must
   decide which resource keeps the value, so it is only reported);
3. every forward membership row has its reverse row and vice versa ("half edge": the missing half is written when
   group and member exist, the lone half deleted otherwise);
4. every edge's group exists, and its member exists as a row of its ``memberType`` ("dangling membership": both
   rows deleted).

It is safe while the endpoint serves. A scan is not a snapshot, so scans only nominate suspects; each finding is
re-established with fresh point reads (the row, what it refers to, then the row again, unchanged) just before it
is reported, and each repair is conditional on those reads (a delete on the row's ETag, an insert that fails on an
existing row), so a concurrent write by the endpoint always wins. Ids are never reused: a row that refers to a gone
id is garbage forever, which is what makes deleting it safe.

Memory: scans go page by page; what is held per partition is its resource ids and one 64-bit digest per expected
row (an index row a resource needs, the reverse row a forward row needs), never rows or documents. Suspects are
rare, so their point reads cost little; a digest collision could only hide a problem until the next run.
"""

import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scim2_models import SCIMException

from scim import groups, indexes, protocol, users
from scim.store import keys, maintenance
from scim.store.contract import IndexKey, StoredResource
from scim.store.maintenance import Row
from scim.store.tables import TableStore

ORPHAN_INDEX = "orphan index row"
MISSING_INDEX = "missing index row"
CONFIGURED_INDEX = re.compile(r"a[0-9a-f]{16}")
"""A configured index's name in row keys (:attr:`scim.indexes.IndexedAttribute.key_name`)."""
DUPLICATE_UNIQUE = "duplicate unique value"
HALF_EDGE = "half edge"
DANGLING = "dangling membership"
STUCK_PUBLISHER = "stuck publisher"

RESOURCE_TYPES = ("User", "Group")
_INDEX_KEYS: dict[str, Callable[[StoredResource], list[IndexKey]]] = {
    "User": users.stored_index_keys,
    "Group": groups.stored_index_keys,
}


@dataclass(frozen=True)
class Finding:
    """One broken invariant, as re-verified just before it was reported; ``detail`` names ids, never values."""

    tenant: str
    kind: str
    partition: str
    row_key: str
    detail: str
    repaired: bool


@dataclass
class Report:
    """What one check saw. ``clean`` means nothing was found at all, repaired or not: a run that had to repair
    something is worth a look at what broke the data."""

    tenants: list[str]
    rows_scanned: int
    findings: list[Finding]

    @property
    def clean(self) -> bool:
        return not self.findings


async def check(
    store: TableStore,
    tenants: Sequence[str] | None = None,
    repair: bool = False,
    indexed: Sequence[indexes.IndexedAttribute] = (),
    stuck_minutes: float | None = None,
) -> Report:
    """Check the given tenants (every tenant in the table when None), repairing what can be repaired safely.

    ``indexed`` are the attributes of ``SCIM_INDEXED_ATTRIBUTES``: their rows are expected like the built-in ones
    (missing ones are inserted on repair), and rows of an attribute no longer listed are orphans. With
    ``stuck_minutes`` (the change feed's queue publisher runs), a tenant whose oldest unsent event is older is
    reported: nothing to repair, the publisher's log says why it fails."""
    names = list(tenants) if tenants is not None else await _all_tenants(store)
    report = Report(names, 0, [])
    for tenant in names:
        await _TenantCheck(store, tenant, repair, report, tuple(indexed)).run()
        if stuck_minutes is not None:
            from scim.publisher import stuck

            problem = await stuck(store, tenant, stuck_minutes)
            if problem is not None:
                report.findings.append(
                    Finding(tenant, STUCK_PUBLISHER, "publisher", f"tenant:{tenant}", problem, False)
                )
    return report


async def _all_tenants(store: TableStore) -> list[str]:
    """Tenants as the partition keys name them: ``<tenant>:<type>``, the tenant being all before the last ':'."""
    found: dict[str, None] = {}
    async for partition in maintenance.partition_keys(store):
        tenant, separator, _ = partition.rpartition(":")
        if separator:
            found[tenant] = None
    return sorted(found)


@dataclass
class _TenantCheck:
    """One tenant's pass: the resource partitions (and their index rows) first, then memberships, which need the
    resource ids those scans collected."""

    store: TableStore
    tenant: str
    repair: bool
    report: Report
    indexed: tuple[indexes.IndexedAttribute, ...] = ()
    _edges_verified: set[tuple[str, str]] = field(default_factory=set, init=False)

    async def run(self) -> None:
        ids = {resource_type: await self._check_indexes(resource_type) for resource_type in RESOURCE_TYPES}
        await self._check_memberships(ids)

    def _found(self, kind: str, partition: str, row_key: str, detail: str, repaired: bool) -> None:
        self.report.findings.append(Finding(self.tenant, kind, partition, row_key, detail, repaired))

    async def _scan(self, partition: str, prefix: str, select: list[str]) -> AsyncIterator[dict[str, Any]]:
        async for entity in self.store.range(partition, prefix, keys.prefix_upper_bound(prefix), select):
            self.report.rows_scanned += 1
            yield entity

    async def _changed(self, partition: str, *seen: tuple[str, Row | None]) -> bool:
        """Whether any of these rows (as read, or absent) is different now: then someone is writing it, and what was
        judged from the first read may no longer hold. Left for the next run."""
        for row_key, row in seen:
            if _etag(await maintenance.read(self.store, partition, row_key)) != _etag(row):
                return True
        return False

    def _index_name(self, row_key: str) -> str:
        """``userName`` from ``ix:userName:<digest>``, and the attribute path for a configured index's hashed name
        (``ix:a<16 hex>:…``), so an operator can tell which listed attribute a finding is about; the detail names
        the index, never the value."""
        name = row_key.split(":")[1]
        attribute = next((a for a in self.indexed if a.key_name == name), None)
        if attribute is not None:
            return f"{attribute.path} (index {name})"
        if CONFIGURED_INDEX.fullmatch(name):
            return f"index {name} (of an attribute not in SCIM_INDEXED_ATTRIBUTES)"
        return name

    # Index rows

    async def _check_indexes(self, resource_type: str) -> set[str]:
        """Match the index rows present with those the resources expect; returns the partition's resource ids."""
        partition = keys.partition_key(self.tenant, resource_type)
        ids: set[str] = set()
        expected: dict[int, str] = {}  # digest of an index row key -> id of the resource that needs the row
        suspects: set[str] = set()
        async for stored in self.store.scan(self.tenant, resource_type):
            self.report.rows_scanned += 1
            ids.add(stored.resource_id)
            for row_key in _expected_row_keys(self.indexed, resource_type, stored) or ():
                if expected.setdefault(hash(row_key), stored.resource_id) != stored.resource_id:
                    suspects.add(stored.resource_id)  # two resources need one unique row
        async for entity in self._scan(partition, keys.INDEX_PREFIX, ["RowKey", "resourceId"]):
            digest = hash(entity["RowKey"])
            if digest in expected and expected[digest] == entity.get("resourceId"):
                del expected[digest]
            else:
                await self._verify_index_row(resource_type, entity["RowKey"])
        for resource_id in sorted(suspects | set(expected.values())):
            await self._verify_resource_indexes(resource_type, resource_id)
        return ids

    async def _verify_index_row(self, resource_type: str, row_key: str) -> None:
        """Row, then its resource, then the row again: a row that stayed the same while its resource did not need
        it is an orphan, and deleting it on that ETag loses to any write that makes it needed (which rewrites it)."""
        partition = keys.partition_key(self.tenant, resource_type)
        row = await maintenance.read(self.store, partition, row_key)
        if row is None:
            return
        problem = await self._index_row_problem(resource_type, row_key, row.properties.get("resourceId"))
        if problem is None or await self._changed(partition, (row_key, row)):
            return
        repaired = self.repair and await maintenance.delete_unchanged(self.store, partition, [row])
        self._found(ORPHAN_INDEX, partition, row_key, problem, repaired)

    async def _index_row_problem(self, resource_type: str, row_key: str, resource_id: Any) -> str | None:
        """Why the row should not exist, or None if its resource needs it (or has a document nobody can judge)."""
        if not isinstance(resource_id, str) or not protocol.is_safe_id(resource_id):
            return "has no valid resourceId"
        stored = await self.store.get(self.tenant, resource_type, resource_id)
        if stored is None:
            return f"points at {resource_type} {resource_id}, which does not exist"
        expected = _expected_row_keys(self.indexed, resource_type, stored)
        if expected is None or row_key in expected:
            return None
        return f"points at {resource_type} {resource_id}, which has no such {self._index_name(row_key)}"

    async def _verify_resource_indexes(self, resource_type: str, resource_id: str) -> None:
        """Judge a resource's expected rows between two reads of the resource with the same ETag: nothing rewrote it
        meanwhile, so it needed each of them all along."""
        stored = await self.store.get(self.tenant, resource_type, resource_id)
        expected = _expected_row_keys(self.indexed, resource_type, stored) if stored is not None else None
        if stored is None or expected is None:
            return
        partition = keys.partition_key(self.tenant, resource_type)
        problems: list[tuple[str, Any]] = []
        for row_key in sorted(expected):
            row = await maintenance.read(self.store, partition, row_key)
            holder = row.properties.get("resourceId") if row is not None else None
            if row is None or holder != resource_id:
                problems.append((row_key, holder))
        again = await self.store.get(self.tenant, resource_type, resource_id)
        if again is None or again.etag != stored.etag:
            return
        for row_key, holder in problems:
            await self._report_missing(resource_type, resource_id, row_key, holder)

    async def _report_missing(self, resource_type: str, resource_id: str, row_key: str, holder: Any) -> None:
        """A missing row is inserted. A row held by another resource is a duplicate if that one needs it too, and
        otherwise an orphan (reported on its own, and deleted before this runs when repairing) blocking the insert."""
        partition = keys.partition_key(self.tenant, resource_type)
        index = self._index_name(row_key)
        if holder is None:
            detail = f"{resource_type} {resource_id} has no {index} row"
            repaired = self.repair and await self._insert_index_row(resource_type, resource_id, row_key)
            self._found(MISSING_INDEX, partition, row_key, detail, repaired)
        elif await self._index_row_problem(resource_type, row_key, holder) is None:
            detail = f"{resource_type} {resource_id} has the {index} of {resource_type} {holder}, which holds the row"
            self._found(DUPLICATE_UNIQUE, partition, row_key, detail, False)
        else:
            detail = f"{resource_type} {resource_id} has no {index} row: an orphan row held by {holder} takes its key"
            self._found(MISSING_INDEX, partition, row_key, detail, False)

    async def _insert_index_row(self, resource_type: str, resource_id: str, row_key: str) -> bool:
        """Insert a missing row, then look again. The endpoint cannot drop a value whose row is missing (its
        transaction's delete of that row fails), but should that change, a row inserted for a value dropped in
        between is deleted again, on this insert's ETag, so that a row the endpoint rewrote since stays."""
        partition = keys.partition_key(self.tenant, resource_type)
        etag = await maintenance.create(self.store, partition, row_key, {"resourceId": resource_id})
        if etag is None:
            return False
        stored = await self.store.get(self.tenant, resource_type, resource_id)
        expected = _expected_row_keys(self.indexed, resource_type, stored) if stored is not None else frozenset()
        if expected is not None and row_key not in expected:
            await maintenance.delete_unchanged(self.store, partition, [Row(row_key, {}, etag)])
        return True

    # Memberships

    async def _check_memberships(self, ids: dict[str, set[str]]) -> None:
        """Forward rows name the edges whose group or member was not among the ids scanned; each reverse row consumes
        the digest its forward row left, so a reverse row finding none, or a digest left over, is a half edge."""
        partition = keys.partition_key(self.tenant, keys.MEMBERSHIP_TYPE)
        forward: set[int] = set()
        async for entity in self._scan(partition, keys.MEMBER_PREFIX, ["RowKey", "memberType"]):
            edge = _edge(entity["RowKey"])
            if edge is None:
                continue
            forward.add(hash(edge))
            group_id, member_id = edge
            if group_id not in ids["Group"] or member_id not in ids.get(entity.get("memberType") or "User", ()):
                await self._verify_edge(group_id, member_id)
        async for entity in self._scan(partition, keys.MEMBER_OF_PREFIX, ["RowKey"]):
            edge = _edge(entity["RowKey"], reverse=True)
            if edge is None:
                continue
            if hash(edge) in forward:
                forward.remove(hash(edge))
            else:
                await self._verify_edge(*edge)
        if forward:
            async for entity in self._scan(partition, keys.MEMBER_PREFIX, ["RowKey"]):
                edge = _edge(entity["RowKey"])
                if edge is not None and hash(edge) in forward:
                    await self._verify_edge(*edge)

    async def _verify_edge(self, group_id: str, member_id: str) -> None:
        """Both halves, then group and member, then both halves again: judged only if no write touched the edge."""
        if (group_id, member_id) in self._edges_verified:
            return
        self._edges_verified.add((group_id, member_id))
        partition = keys.partition_key(self.tenant, keys.MEMBERSHIP_TYPE)
        forward_key, reverse_key = keys.member_row_key(group_id, member_id), keys.member_of_row_key(member_id, group_id)
        forward = await maintenance.read(self.store, partition, forward_key)
        reverse = await maintenance.read(self.store, partition, reverse_key)
        if forward is None and reverse is None:
            return
        group = await self.store.get(self.tenant, "Group", group_id)
        member_type, member = await self._member(member_id, forward)
        gone = [f"group {group_id} does not exist"] if group is None else []
        gone += [f"member {member_id} is not an existing {member_type}"] if member is None else []
        if forward is not None and reverse is not None and not gone:
            return
        if await self._changed(partition, (forward_key, forward), (reverse_key, reverse)):
            return
        present = [row for row in (forward, reverse) if row is not None]
        if gone or member is None:
            repaired = self.repair and await maintenance.delete_unchanged(self.store, partition, present)
        else:
            repaired = self.repair and await self._complete_edge(group_id, member_type, member, present[0])
        missing = "no reverse row" if reverse is None else "no forward row" if forward is None else ""
        detail = "; ".join(part for part in (missing, *gone) if part)
        self._found(HALF_EDGE if missing else DANGLING, partition, present[0].row_key, detail, repaired)

    async def _member(self, member_id: str, forward: Row | None) -> tuple[str, StoredResource | None]:
        """The member as the forward row types it or, with only a reverse row, as whichever type it exists as."""
        if forward is not None:
            member_type = str(forward.properties.get("memberType") or "User")
            if member_type not in RESOURCE_TYPES:
                return member_type, None
            return member_type, await self.store.get(self.tenant, member_type, member_id)
        for member_type in RESOURCE_TYPES:
            stored = await self.store.get(self.tenant, member_type, member_id)
            if stored is not None:
                return member_type, stored
        return "User or Group", None

    async def _complete_edge(self, group_id: str, member_type: str, member: StoredResource, present: Row) -> bool:
        """Write the missing half beside the present one, unchanged. Then look again, as the endpoint's deletes do
        after deleting the resource: a group or member deleted meanwhile may have missed the edge, which then goes."""
        partition = keys.partition_key(self.tenant, keys.MEMBERSHIP_TYPE)
        member_id = member.resource_id
        if present.row_key.startswith(keys.MEMBER_PREFIX):
            row_key, properties = keys.member_of_row_key(member_id, group_id), {"groupId": group_id}
        else:
            row_key = keys.member_row_key(group_id, member_id)
            properties = {"memberId": member_id, "memberType": member_type, "display": _display(member)}
        if not await maintenance.create(self.store, partition, row_key, properties, beside=present):
            return False
        group = await self.store.get(self.tenant, "Group", group_id)
        if group is None or await self.store.get(self.tenant, member_type, member_id) is None:
            rows = [await maintenance.read(self.store, partition, key) for key in (row_key, present.row_key)]
            await maintenance.delete_unchanged(self.store, partition, [row for row in rows if row is not None])
        return True


def _expected_row_keys(
    indexed: Sequence[indexes.IndexedAttribute], resource_type: str, stored: StoredResource
) -> frozenset[str] | None:
    """The index row keys a resource needs; None when its document no longer validates (written by an older
    version, or by hand): nobody can then say which rows it needs, so rows pointing at it are left alone."""
    try:
        expected = _INDEX_KEYS[resource_type](stored) + indexes.index_keys(
            indexes.for_type(indexed, resource_type), stored.document
        )
    except (ValueError, SCIMException):
        return None
    return frozenset(_row_key(index, stored.resource_id) for index in expected)


def _row_key(index: IndexKey, resource_id: str) -> str:
    if index.unique:
        return keys.unique_index_row_key(index.name, index.value)
    return keys.shared_index_row_key(index.name, index.value, resource_id)


def _edge(row_key: str, reverse: bool = False) -> tuple[str, str] | None:
    """``(group id, member id)`` from a forward ``g:<group>:<member>`` or a reverse ``m:<member>:<group>`` key."""
    parts = row_key.split(":")
    if len(parts) != 3:
        return None
    return (parts[2], parts[1]) if reverse else (parts[1], parts[2])


def _display(member: StoredResource) -> str:
    """What the endpoint records as a member's display when the request gives none."""
    return str(member.document.get("displayName") or member.document.get("userName") or "")[:1024]


def _etag(row: Row | None) -> str | None:
    return row.etag if row is not None else None
