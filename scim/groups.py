"""The SCIM operations on Groups, with members kept as rows (see :class:`scim.store.tables.MembershipStore`).

A group's document never holds its members. A PATCH is split into attribute operations, applied to the document as
for any resource, and a membership delta, applied row by row; a membership check is a point read; a GET returns at
most :data:`MAX_MEMBERS_PER_GET` members and never reads a member row when ``members`` is excluded.

Order of writes, so that an interrupted request leaves nothing a retry or a later read cannot repair: every member
of a PATCH is checked to exist before anything is written; the group row (attributes, ``meta.version``) is written
before its member rows; member rows are removed before the group row on DELETE, and once more after it.
"""

import asyncio
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from scim2_models import Context, PatchOp, ResponseParameters

from scim import cpu_share, declarations, documents, entra, errors, extensions, indexes, protocol
from scim.changes import ChangeRecorder
from scim.concurrent import all_of, both, map_bounded
from scim.errors import ScimError
from scim.filters import ParsedFilter, fold, parse_filter_shared
from scim.membership import MembershipChange, member_entries, named_members, split_members
from scim.protocol import Page, Rendered
from scim.schemas import ENTRA_POLICY, MAX_MEMBERS_PER_GET, ScimGroup
from scim.store.contract import (
    IndexKey,
    Member,
    StoredResource,
    StoreError,
)
from scim.store.tables import MembershipStore, TableStore

RESOURCE_TYPE = "Group"
LIST_PAGE_WITH_MEMBERS = 20
"""A list page that includes members holds at most this many groups, so one response reads at most 20,000 rows."""
DELETE_BUDGET_SECONDS = 150.0
"""Member rows removed by one DELETE before it answers 503 (the group still there) and lets the retry continue;
Azure cuts HTTP functions off at 230 s."""
LOOKUP_CONCURRENCY = 100
"""Member reads in flight at once: Entra's batch of 100 members is checked in one round trip."""
INLINE_MEMBERS = 100
"""Members a request's body may name, or a response list, before reading or rendering them takes turns at the CPU
(:mod:`scim.cpu_share`): Entra's batches of 100 cost a fraction of a millisecond and stay inline; 1,000 members
were steps of 2-4 ms that held every other tenant's request on the instance."""
MEMBERS_PER_TURN = 250
"""Member documents rendered in one turn: about a tenth of a millisecond of CPU."""
PATCH_RETRIES = 3
_NOT_STORED = ("id", "meta", "members")


class GroupService:
    """Groups for every tenant; every store call is scoped to the authenticated tenant."""

    def __init__(
        self,
        store: TableStore,
        members: MembershipStore,
        undeclared: str = extensions.KEEP,
        indexed: Sequence[indexes.IndexedAttribute] = (),
        changes: ChangeRecorder | None = None,
    ) -> None:
        self._store = store
        self._members = members
        self._undeclared = undeclared
        self._indexed = indexes.for_type(indexed, RESOURCE_TYPE)
        self._extra_indexes = {attribute.canonical: attribute.key_name for attribute in self._indexed}
        self._readiness = indexes.Readiness(store, RESOURCE_TYPE, self._indexed)
        self._changes = changes or ChangeRecorder()

    async def create(self, tenant: str, payload: Any, base_url: str) -> Rendered:
        body, entries = _split_body(entra.normalise_resource(payload))
        body, blocks = extensions.split_body(body, RESOURCE_TYPE, self._undeclared)
        group = _validate(body, Context.RESOURCE_CREATION_REQUEST)
        blocks = declarations.validate_blocks(blocks, RESOURCE_TYPE, creating=True)
        group_id = secrets.token_hex(16)
        members = await self._resolve(tenant, entries, group_id)
        now = protocol.now()
        stored = StoredResource(group_id, _document(group, blocks), now, now, "")
        with protocol.store_errors(RESOURCE_TYPE):
            change = self._changes.created(RESOURCE_TYPE, stored)
            stored = await self._store.create(
                tenant, RESOURCE_TYPE, stored, _summary(group), self._keys(group, stored), change
            )
        try:
            await self._members.add(tenant, group_id, members)
        except StoreError as exc:  # undo, so that Entra's retry of the POST is not refused as a duplicate
            await self._members.remove(tenant, [(group_id, member.member_id) for member in members])
            undone = self._changes.deleted(RESOURCE_TYPE, stored)
            await self._store.delete(tenant, RESOURCE_TYPE, stored, self._keys(group, stored), undone)
            raise protocol.store_error(exc) from exc
        return _render(stored, base_url, members[:MAX_MEMBERS_PER_GET], None)

    async def get(self, tenant: str, group_id: str, query: Mapping[str, str], base_url: str) -> Rendered:
        stored = await self._load(tenant, group_id)
        members = await self._member_page(tenant, stored, query)
        return await _render_shared(stored, base_url, members, protocol.response_parameters(query, ScimGroup))

    async def query(self, tenant: str, query: Mapping[str, str], base_url: str) -> dict[str, Any]:
        """A ListResponse; a filter that matches nothing is 200 with no resources, never 404."""
        parameters = protocol.response_parameters(query, ScimGroup)
        page = protocol.page_of(query)
        if protocol.returns(query, "members"):
            page = Page(page.start, min(page.count, LIST_PAGE_WITH_MEMBERS))
        text = query.get("filter")
        parsed = await parse_filter_shared(text, ScimGroup, self._extra_indexes) if text else None
        try:
            total, found = await self._find(tenant, parsed, page)
            pages = [await self._member_page(tenant, stored, query) for stored in found]
            resources = await protocol.render_each(
                zip(found, pages, strict=True), lambda item: _render(item[0], base_url, item[1], parameters).document
            )
        except StoreError as exc:
            raise protocol.store_error(exc) from exc
        return protocol.list_response(total, page, resources)

    async def replace(self, tenant: str, group_id: str, payload: Any, if_match: str | None, base_url: str) -> Rendered:
        body, entries = _split_body(entra.normalise_resource(payload))
        body, blocks = extensions.split_body(body, RESOURCE_TYPE, self._undeclared)
        group = _validate(body, Context.RESOURCE_REPLACEMENT_REQUEST)
        blocks = declarations.validate_blocks(blocks, RESOURCE_TYPE, creating=False)
        current, members = await both(self._load(tenant, group_id), self._resolve(tenant, entries, group_id))
        protocol.check_precondition(current, if_match)
        stored = await self._save(tenant, current, group, blocks)
        change = MembershipChange()
        change.remove_all()
        for member in members:
            change.add(member.member_id, member.display)
        await self._apply(tenant, group_id, change, members)
        return _render(stored, base_url, members[:MAX_MEMBERS_PER_GET], None)

    async def patch(
        self, tenant: str, group_id: str, payload: Any, if_match: str | None, query: Mapping[str, str], base_url: str
    ) -> Rendered | None:
        """Apply a PATCH; the resource is returned only when the request names attributes (Entra expects 204)."""
        body = entra.normalise_patch(payload)
        async with cpu_share.turn_if(named_members(body["Operations"]) > INLINE_MEMBERS):
            change, others = split_members(body["Operations"])
        others, on_extensions = extensions.split_operations(others, RESOURCE_TYPE, self._undeclared)
        operations = await documents.parse_patch_shared(ScimGroup, {**body, "Operations": others}) if others else None
        added = list(change.added.items())
        current, members = await both(self._load(tenant, group_id), self._resolve(tenant, added, group_id))
        protocol.check_precondition(current, if_match)
        members_only = operations is None and not on_extensions
        if not members_only:
            stored = await self._patch_attributes(tenant, current, operations, on_extensions, if_match)
        elif if_match is not None and not change.empty:  # the group row first, on the version named: one copy wins
            stored = await self._touch(tenant, current, conditional=True)
        else:
            stored = current
        if members_only and not change.empty and if_match is None:  # the rows and the group's timestamp at once
            _, stored = await both(self._apply(tenant, group_id, change, members), self._touch(tenant, stored))
        elif not change.empty:
            await self._apply(tenant, group_id, change, members)
        if not (query.get("attributes") or query.get("excludedAttributes")):
            return None
        page = await self._member_page(tenant, stored, query)
        return await _render_shared(stored, base_url, page, protocol.response_parameters(query, ScimGroup))

    async def _patch_attributes(
        self,
        tenant: str,
        current: StoredResource,
        operations: "PatchOp[ScimGroup] | None",
        on_extensions: list[extensions.Operation],
        if_match: str | None,
    ) -> StoredResource:
        """Write the group row conditionally on the version read, retrying on a concurrent change (no If-Match)."""
        for _ in range(PATCH_RETRIES):
            group = _from_stored(current) if operations is None else await _patched(operations, _from_stored(current))
            _, blocks = extensions.apply_operations(
                on_extensions, extensions.stored_blocks(current.document, RESOURCE_TYPE)
            )
            blocks = declarations.validate_blocks(blocks, RESOURCE_TYPE, creating=False)
            try:
                return await self._save(tenant, current, group, blocks)
            except ScimError as exc:
                if exc.status != 412 or if_match:
                    raise
            current = await self._load(tenant, current.resource_id)
        raise ScimError(409, "The group kept changing while the PATCH was applied; retry")

    async def _touch(self, tenant: str, current: StoredResource, conditional: bool = False) -> StoredResource:
        """A membership-only PATCH bumps ``meta.lastModified``/``version`` without a conditional write, so concurrent
        membership PATCHes on one group (Entra sends them) never conflict on the group row; with ``If-Match``
        (``conditional``) the write is conditional on the version read, as RFC 7644 §3.14 asks."""
        now = protocol.now()
        with protocol.store_errors(RESOURCE_TYPE):
            etag = await self._store.touch(
                tenant, RESOURCE_TYPE, current.resource_id, now, current.etag if conditional else None
            )
        if etag is None and conditional:
            raise errors.not_found(f"{RESOURCE_TYPE} {current.resource_id} not found")
        return StoredResource(
            current.resource_id, current.document, current.created, now, etag or current.etag, current.event
        )

    async def delete(self, tenant: str, group_id: str, if_match: str | None) -> None:
        current = await self._load(tenant, group_id)
        protocol.check_precondition(current, if_match)
        deadline = time.monotonic() + DELETE_BUDGET_SECONDS
        try:
            await self._remove_all_members(tenant, group_id, deadline)
            await self._members.remove(tenant, [(g, group_id) for g in await self._members.groups_of(tenant, group_id)])
            change = self._changes.deleted(RESOURCE_TYPE, current)
            await self._store.delete(tenant, RESOURCE_TYPE, current, stored_index_keys(current, self._indexed), change)
            await self._remove_all_members(tenant, group_id, deadline + DELETE_BUDGET_SECONDS)
        except (StoreError, TimeoutError) as exc:
            raise protocol.store_error(exc) from exc

    async def is_member(self, tenant: str, group_id: str, member_id: str) -> bool:
        return await self._members.member(tenant, group_id, member_id) is not None

    async def _find(self, tenant: str, parsed: ParsedFilter | None, page: Page) -> tuple[int, list[StoredResource]]:
        if parsed is None:
            total = await self._store.count(tenant, RESOURCE_TYPE)
            found: list[StoredResource] = []
            if page.count and page.start <= total:
                position = 0
                async for stored in self._store.scan(tenant, RESOURCE_TYPE):
                    position += 1
                    if page.holds(position):
                        found.append(stored)
                    if len(found) == page.count:
                        break
            return total, found
        if parsed.lookup is not None and await self._readiness.answers(tenant, parsed.lookup.index):
            ids = await self._candidates(tenant, parsed)
            loaded = await all_of([self._candidate(tenant, parsed, i) for i in sorted(set(ids))])
            matches = [stored for stored in loaded if stored is not None]
            return len(matches), page.window(matches)
        total, found = 0, []
        async for stored in self._store.scan(tenant, RESOURCE_TYPE):
            if await self._matches(tenant, parsed, stored):
                total += 1
                if page.holds(total):
                    found.append(stored)
        return total, found

    async def _candidates(self, tenant: str, parsed: ParsedFilter) -> list[str]:
        assert parsed.lookup is not None
        index, value = parsed.lookup.index, parsed.lookup.value
        if index == "id":
            return [value] if protocol.is_safe_id(value) else []
        if index == "member":
            return await self._members.groups_of(tenant, value) if protocol.is_safe_id(value) else []
        key = IndexKey("displayName", fold(value), True) if index == "displayName" else IndexKey(index, value, False)
        attribute = next((a for a in self._indexed if a.key_name == index), None)
        if attribute is not None:
            key = IndexKey(index, attribute.lookup_value(value), unique=False)
        return await self._store.lookup(tenant, RESOURCE_TYPE, key)

    async def _candidate(self, tenant: str, parsed: ParsedFilter, group_id: str) -> StoredResource | None:
        """A group the index named, if it matches: its row and the membership rows the filter names are read at
        once (Entra's membership check: one round trip)."""
        stored, rows = await both(
            self._store.get(tenant, RESOURCE_TYPE, group_id), self._named_members(tenant, parsed, group_id)
        )
        return stored if stored is not None and _matches(parsed, stored, rows) else None

    async def _matches(self, tenant: str, parsed: ParsedFilter, stored: StoredResource) -> bool:
        return _matches(parsed, stored, await self._named_members(tenant, parsed, stored.resource_id))

    async def _named_members(self, tenant: str, parsed: ParsedFilter, group_id: str) -> list[Member | None]:
        """The group's membership rows for just the member ids the filter names."""
        ids = [i for i in parsed.member_ids if protocol.is_safe_id(i)]
        return await _gather(self._members.member(tenant, group_id, i) for i in ids)

    async def _member_page(self, tenant: str, stored: StoredResource, query: Mapping[str, str]) -> list[Member] | None:
        if not protocol.returns(query, "members"):
            return None
        after = query.get("membersAfter")
        if after is not None and not protocol.is_safe_id(after):
            raise errors.invalid_value("membersAfter must be a member id")
        return await self._members.members(tenant, stored.resource_id, after, MAX_MEMBERS_PER_GET)

    async def _resolve(self, tenant: str, entries: Sequence[tuple[str, str | None]], group_id: str) -> list[Member]:
        """Check that every member is a User or Group of this tenant; if one is not, nothing is written."""
        unique = dict(entries)
        if group_id in unique:
            raise errors.invalid_value("A group cannot be a member of itself")
        unsafe = [member_id for member_id in unique if not protocol.is_safe_id(member_id)]
        if unsafe:
            raise errors.invalid_value("Members must be ids of existing Users or Groups")

        async def resolve(entry: tuple[str, str | None]) -> Member | None:
            member_id, display = entry
            for resource_type in ("User", "Group"):
                found = await self._store.get(tenant, resource_type, member_id)
                if found is not None:
                    name = found.document.get("displayName") or found.document.get("userName")
                    return Member(member_id, resource_type, display or name)
            return None

        try:
            items = list(unique.items())
            resolved = await map_bounded(resolve, items, cpu_share.read_workers(len(items), LOOKUP_CONCURRENCY))
        except StoreError as exc:
            raise protocol.store_error(exc) from exc
        missing = [member_id for member_id, member in zip(unique, resolved, strict=True) if member is None]
        if missing:
            shown = ", ".join(missing[:5])
            raise errors.invalid_value(f"Members must be existing Users or Groups; not found: {shown}")
        return [member for member in resolved if member is not None]

    async def _apply(self, tenant: str, group_id: str, change: MembershipChange, members: list[Member]) -> None:
        try:
            if change.clear:
                keep = set(change.added)
                stale = [member_id async for member_id in self._members.member_ids(tenant, group_id)]
                await self._members.remove(tenant, [(group_id, m) for m in stale if m not in keep])
            # An id this service never issues cannot be a member: removing it changes nothing, and never reaches a key
            removed = sorted(member_id for member_id in change.removed if protocol.is_safe_id(member_id))
            await both(  # disjoint rows: a member is either added or removed
                self._members.remove(tenant, [(group_id, member_id) for member_id in removed]),
                self._members.add(tenant, group_id, members),
            )
        except StoreError as exc:
            raise protocol.store_error(exc) from exc

    async def _remove_all_members(self, tenant: str, group_id: str, deadline: float) -> None:
        batch: list[tuple[str, str]] = []
        async for member_id in self._members.member_ids(tenant, group_id):
            batch.append((group_id, member_id))
            if len(batch) == MembershipStore.EDGES_PER_TRANSACTION:
                await self._members.remove(tenant, batch)
                batch = []
                if time.monotonic() > deadline:
                    raise TimeoutError()
        await self._members.remove(tenant, batch)

    def _keys(self, group: ScimGroup, stored: StoredResource) -> list[IndexKey]:
        return index_keys(group) + indexes.index_keys(self._indexed, stored.document)

    async def _load(self, tenant: str, group_id: str) -> StoredResource:
        return await protocol.load(self._store, tenant, RESOURCE_TYPE, group_id)

    async def _save(
        self, tenant: str, current: StoredResource, group: ScimGroup, blocks: extensions.Blocks
    ) -> StoredResource:
        stored = StoredResource(current.resource_id, _document(group, blocks), current.created, protocol.now(), "")
        old_keys = stored_index_keys(current, self._indexed)
        change = self._changes.updated(RESOURCE_TYPE, current, stored)
        with protocol.store_errors(RESOURCE_TYPE):
            return await self._store.replace(
                tenant, RESOURCE_TYPE, current, stored, _summary(group), old_keys, self._keys(group, stored), change
            )


def _matches(parsed: ParsedFilter, stored: StoredResource, rows: list[Member | None]) -> bool:
    """Evaluate the filter on the group with the membership rows of the member ids the filter names."""
    if parsed.exact and parsed.lookup is not None:  # Entra's match by displayName: one value compared
        index = parsed.lookup.index
        return parsed.key_matches(stored.resource_id if index == "id" else stored.document.get(index))
    document = {**stored.document, "id": stored.resource_id}
    document["meta"] = {"resourceType": RESOURCE_TYPE, "created": stored.created, "lastModified": stored.last_modified}
    document["members"] = [{"value": row.member_id, "type": row.member_type} for row in rows if row is not None]
    with ENTRA_POLICY:
        group = ScimGroup.model_validate(document, scim_ctx=Context.DEFAULT)
        return parsed.matches(group, document)


def _split_body(body: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str | None]]]:
    """The group document without ``members``, and the members it names (checked and stored as rows)."""
    key = next((k for k in body if k.lower() == "members"), None)
    if key is None:
        return body, []
    value = body.pop(key)
    return body, member_entries(value) if value is not None else []


def _validate(payload: dict[str, Any], context: Context) -> ScimGroup:
    group = documents.parse(ScimGroup, payload, context)
    if not (group.display_name or "").strip():  # the library takes "" for the required, unique displayName
        raise errors.invalid_value("displayName must not be empty")
    return group


async def _patched(operations: "PatchOp[ScimGroup]", group: ScimGroup) -> ScimGroup:
    patched = await documents.apply_patch_shared(operations, group)
    return _validate(patched[1], Context.RESOURCE_REPLACEMENT_REQUEST)


def _document(group: ScimGroup, blocks: extensions.Blocks) -> dict[str, Any]:
    return extensions.with_blocks(documents.stored_document(group, _NOT_STORED), blocks, RESOURCE_TYPE)


def _from_stored(stored: StoredResource) -> ScimGroup:
    return documents.from_stored(ScimGroup, stored)


def index_keys(group: ScimGroup) -> list[IndexKey]:
    """displayName is unique case-insensitively: Entra matches groups by it and needs exactly one answer."""
    keys = [IndexKey("displayName", fold(group.display_name or ""), unique=True)]
    if group.external_id:
        keys.append(IndexKey("externalId", group.external_id, unique=False))
    return keys


def stored_index_keys(stored: StoredResource, indexed: Sequence[indexes.IndexedAttribute] = ()) -> list[IndexKey]:
    """The index rows a stored group must have; ``python -m scim check`` compares them with the rows present."""
    return index_keys(_from_stored(stored)) + indexes.index_keys(indexed, stored.document)


def _summary(group: ScimGroup) -> dict[str, str]:
    summary = {"displayName": group.display_name or ""}
    if group.external_id:
        summary["externalId"] = group.external_id
    return summary


def _render(
    stored: StoredResource, base_url: str, members: list[Member] | None, parameters: ResponseParameters[Any] | None
) -> Rendered:
    listed = None if members is None else [_member_document(member, base_url) for member in members]
    return _rendered(stored, base_url, listed, parameters)


async def _render_shared(
    stored: StoredResource, base_url: str, members: list[Member] | None, parameters: ResponseParameters[Any] | None
) -> Rendered:
    """:func:`_render`, a long member list rendered :data:`MEMBERS_PER_TURN` at a time, a turn at the CPU each
    (:mod:`scim.cpu_share`): 1,000 members in one go were a step of several milliseconds on a busy instance."""
    if members is None or len(members) <= INLINE_MEMBERS:
        return _render(stored, base_url, members, parameters)
    listed: list[dict[str, str]] = []
    for start in range(0, len(members), MEMBERS_PER_TURN):
        async with cpu_share.turn():
            listed += [_member_document(member, base_url) for member in members[start : start + MEMBERS_PER_TURN]]
    return _rendered(stored, base_url, listed, parameters)


def _rendered(
    stored: StoredResource,
    base_url: str,
    members: list[dict[str, str]] | None,
    parameters: ResponseParameters[Any] | None,
) -> Rendered:
    document = {**stored.document, "id": stored.resource_id}
    document["meta"] = protocol.meta(RESOURCE_TYPE, stored, f"{base_url}/Groups/{stored.resource_id}")
    if members is not None:
        document["members"] = members
    document = documents.project(ScimGroup, document, parameters, RESOURCE_TYPE)
    return Rendered(document, stored.etag)


def _member_document(member: Member, base_url: str) -> dict[str, str]:
    document = {
        "value": member.member_id,
        "$ref": f"{base_url}/{member.member_type}s/{member.member_id}",
        "type": member.member_type,
    }
    if member.display:
        document["display"] = member.display
    return document


async def _gather(awaitables: Any) -> list[Any]:
    return list(await asyncio.gather(*awaitables))
