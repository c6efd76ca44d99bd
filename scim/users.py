"""The SCIM operations on Users: create, read, query, replace, patch, delete.

This layer knows SCIM (RFC 7643/7644 and Entra's profile), not HTTP and not Table Storage: it validates and
normalises documents, decides which index keys a resource has, and turns store failures into SCIM errors. Every
write is one conditional store transaction, so a request that fails changes nothing.
"""

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from scim2_models import Context, ResponseParameters

from scim import cpu_share, declarations, documents, entra, errors, extensions, indexes, protocol
from scim.changes import ChangeRecorder
from scim.concurrent import all_of, both, map_bounded
from scim.errors import ScimError
from scim.filters import IndexLookup, ParsedFilter, fold, parse_filter_shared
from scim.protocol import Page, Rendered
from scim.schemas import ENTRA_POLICY, ScimUser
from scim.store.contract import (
    IndexKey,
    ResourceChanged,
    ResourceTooLarge,
    StoredResource,
    StoreUnavailable,
)
from scim.store.tables import MembershipStore, TableStore

RESOURCE_TYPE = "User"
MAX_EMAILS = 40
"""Each e-mail is an index row written in the user's transaction, which holds at most 100 operations."""
PATCH_RETRIES = 3
_NOT_STORED = ("id", "meta", "groups", "password")


class UserService:
    """Users for every tenant; ``tenant`` is who authenticated, and every store call is scoped to it."""

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
        body, blocks = extensions.split_body(entra.normalise_resource(payload), RESOURCE_TYPE, self._undeclared)
        user = _validate(body, Context.RESOURCE_CREATION_REQUEST)
        blocks = declarations.validate_blocks(blocks, RESOURCE_TYPE, creating=True)
        now = protocol.now()
        stored = StoredResource(secrets.token_hex(16), _document(user, blocks), now, now, "")
        with protocol.store_errors(RESOURCE_TYPE):
            change = self._changes.created(RESOURCE_TYPE, stored)
            stored = await self._store.create(
                tenant, RESOURCE_TYPE, stored, _summary(user), self._keys(user, stored), change
            )
        return _render(stored, base_url, None)

    async def get(self, tenant: str, resource_id: str, query: Mapping[str, str], base_url: str) -> Rendered:
        stored, groups = await both(self._load(tenant, resource_id), self._groups(tenant, resource_id, query, base_url))
        return _render(stored, base_url, protocol.response_parameters(query, ScimUser), groups)

    async def replace(
        self, tenant: str, resource_id: str, payload: Any, if_match: str | None, base_url: str
    ) -> Rendered:
        current, groups = await both(self._load(tenant, resource_id), self._groups(tenant, resource_id, {}, base_url))
        protocol.check_precondition(current, if_match)
        body, blocks = extensions.split_body(entra.normalise_resource(payload), RESOURCE_TYPE, self._undeclared)
        user = _validate(body, Context.RESOURCE_REPLACEMENT_REQUEST)
        blocks = declarations.validate_blocks(blocks, RESOURCE_TYPE, creating=False)
        stored = await self._save(tenant, current, user, blocks)
        return _render(stored, base_url, None, groups)

    async def patch(
        self, tenant: str, resource_id: str, payload: Any, if_match: str | None, query: Mapping[str, str], base_url: str
    ) -> Rendered:
        """Apply a PATCH and return the user (200: Entra's examples show the resource, and scim-sanity requires it),
        projected by the request's ``attributes``/``excludedAttributes`` as RFC 7644 §3.5.2 allows."""
        body = entra.normalise_patch(payload)
        others, on_extensions = extensions.split_operations(body["Operations"], RESOURCE_TYPE, self._undeclared)
        operations = await documents.parse_patch_shared(ScimUser, {**body, "Operations": others}) if others else None
        parameters = protocol.response_parameters(query, ScimUser)
        current, groups = await both(
            self._load(tenant, resource_id), self._groups(tenant, resource_id, query, base_url)
        )
        for attempt in range(PATCH_RETRIES):
            if attempt:
                current = await self._load(tenant, resource_id)
            protocol.check_precondition(current, if_match)
            changed, patched = (False, current.document)
            if operations is not None:
                changed, patched = await documents.apply_patch_shared(operations, _from_stored(current))
            user = _validate(patched, Context.RESOURCE_REPLACEMENT_REQUEST)
            before = extensions.stored_blocks(current.document, RESOURCE_TYPE)
            _, blocks = extensions.apply_operations(on_extensions, before)
            blocks = declarations.validate_blocks(blocks, RESOURCE_TYPE, creating=False) if on_extensions else before
            blocks_changed = blocks != before
            try:
                stored = await self._save(tenant, current, user, blocks) if changed or blocks_changed else current
            except ScimError as exc:
                if exc.status != 412 or if_match:
                    raise
                continue
            return _render(stored, base_url, parameters, groups)
        raise errors.ScimError(409, "The user kept changing while the PATCH was applied; retry")

    async def delete(self, tenant: str, resource_id: str, if_match: str | None) -> None:
        """Delete a user and its memberships: rows are removed before the user and once more after it, so a
        membership added concurrently, or left by an interrupted delete, does not outlive the user. The user's
        groups are read beside the user itself."""
        try:
            current, groups = await both(self._load(tenant, resource_id), self._group_ids(tenant, resource_id))
            protocol.check_precondition(current, if_match)
            await self._members.remove(tenant, [(group_id, resource_id) for group_id in groups])
            change = self._changes.deleted(RESOURCE_TYPE, current)
            await self._store.delete(tenant, RESOURCE_TYPE, current, stored_index_keys(current, self._indexed), change)
            await self._leave_all_groups(tenant, resource_id)
        except (ResourceChanged, StoreUnavailable, ResourceTooLarge) as exc:
            raise protocol.store_error(exc) from exc

    async def _group_ids(self, tenant: str, user_id: str) -> list[str]:
        """An id this service never issues has no groups, and never reaches a key (it is read beside the user)."""
        return await self._members.groups_of(tenant, user_id) if protocol.is_safe_id(user_id) else []

    async def _leave_all_groups(self, tenant: str, user_id: str) -> None:
        groups = await self._members.groups_of(tenant, user_id)
        await self._members.remove(tenant, [(group_id, user_id) for group_id in groups])

    async def _groups(
        self, tenant: str, user_id: str, query: Mapping[str, str], base_url: str
    ) -> list[dict[str, str]] | None:
        """The read-only ``groups`` attribute: the user's direct groups, from its reverse membership rows alone.

        One range read whatever the number of groups, needing only the user's id, so it runs beside the read of
        the user. Without ``display``, which RFC 7643 §4.1.2 makes optional: taking it from each group would cost a
        read per group on every lookup, and keeping a copy in the membership rows would make renaming a
        100,000-member group rewrite 100,000 rows (README, "Design notes")."""
        if not protocol.returns(query, "groups"):
            return None
        group_ids = await self._group_ids(tenant, user_id)
        return [{"value": g, "$ref": f"{base_url}/Groups/{g}", "type": "direct"} for g in group_ids]

    async def query(self, tenant: str, query: Mapping[str, str], base_url: str) -> dict[str, Any]:
        """A ListResponse; a filter that matches nothing is 200 with no resources, never 404 (Entra quarantines)."""
        parameters = protocol.response_parameters(query, ScimUser)
        page = protocol.page_of(query)
        text = query.get("filter")
        parsed = await parse_filter_shared(text, ScimUser, self._extra_indexes) if text else None
        try:
            lookup = parsed.lookup if parsed is not None else None
            if lookup is not None and await self._readiness.answers(tenant, lookup.index):
                total, found, groups = await self._list_indexed(tenant, parsed, page, query, base_url)
            else:
                if parsed is None:
                    total, found = await self._list_all(tenant, page)
                else:
                    total, found = await self._list_scanned(tenant, parsed, page)
                groups = await map_bounded(
                    lambda s: self._groups(tenant, s.resource_id, query, base_url),
                    found,
                    cpu_share.read_workers(len(found), len(found)),
                )
        except (StoreUnavailable, ResourceChanged, ResourceTooLarge) as exc:
            raise protocol.store_error(exc) from exc
        resources = await protocol.render_each(
            zip(found, groups, strict=True), lambda item: _render(item[0], base_url, parameters, item[1]).document
        )
        return protocol.list_response(total, page, resources)

    async def _list_all(self, tenant: str, page: Page) -> tuple[int, list[StoredResource]]:
        total = await self._store.count(tenant, RESOURCE_TYPE)
        found: list[StoredResource] = []
        if page.count == 0 or page.start > total:
            return total, found
        position = 0
        async for stored in self._store.scan(tenant, RESOURCE_TYPE):
            position += 1
            if position >= page.start:
                found.append(stored)
                if len(found) == page.count:
                    break
        return total, found

    async def _list_indexed(
        self, tenant: str, parsed: ParsedFilter, page: Page, query: Mapping[str, str], base_url: str
    ) -> tuple[int, list[StoredResource], list[list[dict[str, str]] | None]]:
        """Candidates from the index, each read beside its groups (Entra's userName match: 2 round trips)."""
        assert parsed.lookup is not None
        ids = sorted(set(await self._candidate_ids(tenant, parsed.lookup)))
        loaded = await all_of(
            [both(self._store.get(tenant, RESOURCE_TYPE, i), self._groups(tenant, i, query, base_url)) for i in ids]
        )
        matches = [(stored, groups) for stored, groups in loaded if stored is not None and _matches(parsed, stored)]
        shown = page.window(matches)
        return len(matches), [stored for stored, _ in shown], [groups for _, groups in shown]

    async def _candidate_ids(self, tenant: str, lookup: IndexLookup) -> list[str]:
        if lookup.index == "id":
            return [lookup.value] if protocol.is_safe_id(lookup.value) else []
        attribute = next((a for a in self._indexed if a.key_name == lookup.index), None)
        if attribute is not None:
            key = IndexKey(attribute.key_name, attribute.lookup_value(lookup.value), unique=False)
        else:
            key = _lookup_key(lookup)
        return await self._store.lookup(tenant, RESOURCE_TYPE, key)

    async def _list_scanned(self, tenant: str, parsed: ParsedFilter, page: Page) -> tuple[int, list[StoredResource]]:
        total = 0
        found: list[StoredResource] = []
        async for stored in self._store.scan(tenant, RESOURCE_TYPE):
            if _matches(parsed, stored):
                total += 1
                if page.holds(total):
                    found.append(stored)
        return total, found

    def _keys(self, user: ScimUser, stored: StoredResource) -> list[IndexKey]:
        return index_keys(user) + indexes.index_keys(self._indexed, stored.document)

    async def _load(self, tenant: str, resource_id: str) -> StoredResource:
        return await protocol.load(self._store, tenant, RESOURCE_TYPE, resource_id)

    async def _save(
        self, tenant: str, current: StoredResource, user: ScimUser, blocks: extensions.Blocks
    ) -> StoredResource:
        stored = StoredResource(current.resource_id, _document(user, blocks), current.created, protocol.now(), "")
        old_keys = stored_index_keys(current, self._indexed)
        change = self._changes.updated(RESOURCE_TYPE, current, stored)
        with protocol.store_errors(RESOURCE_TYPE):
            return await self._store.replace(
                tenant, RESOURCE_TYPE, current, stored, _summary(user), old_keys, self._keys(user, stored), change
            )


def _validate(payload: dict[str, Any], context: Context) -> ScimUser:
    user = documents.parse(ScimUser, payload, context)
    if not (user.user_name or "").strip():  # the library takes "" for the required, unique userName
        raise errors.invalid_value("userName must not be empty")
    if len(user.emails or ()) > MAX_EMAILS:
        raise errors.invalid_value(f"A user may have at most {MAX_EMAILS} e-mail addresses")
    return user


def _document(user: ScimUser, blocks: extensions.Blocks) -> dict[str, Any]:
    return extensions.with_blocks(documents.stored_document(user, _NOT_STORED), blocks, RESOURCE_TYPE)


def _from_stored(stored: StoredResource) -> ScimUser:
    return documents.from_stored(ScimUser, stored)


def _render(
    stored: StoredResource,
    base_url: str,
    parameters: ResponseParameters[Any] | None,
    groups: list[dict[str, str]] | None = None,
) -> Rendered:
    location = f"{base_url}/Users/{stored.resource_id}"
    document = dict(stored.document)
    document["id"] = stored.resource_id
    if groups:
        document["groups"] = groups
    document["meta"] = protocol.meta(RESOURCE_TYPE, stored, location)
    document = documents.project(ScimUser, document, parameters, RESOURCE_TYPE)
    return Rendered(document, stored.etag)


def _matches(parsed: ParsedFilter, stored: StoredResource) -> bool:
    if parsed.exact and parsed.lookup is not None:  # Entra's match: one value compared, no model validation
        index = parsed.lookup.index
        return parsed.key_matches(stored.resource_id if index == "id" else stored.document.get(index))
    document = dict(stored.document)
    document["id"] = stored.resource_id
    document["meta"] = {"resourceType": RESOURCE_TYPE, "created": stored.created, "lastModified": stored.last_modified}
    with ENTRA_POLICY:
        user = ScimUser.model_validate(document, scim_ctx=Context.DEFAULT)
        return parsed.matches(user, document)


def index_keys(user: ScimUser) -> list[IndexKey]:
    """userName is unique case-insensitively; externalId (case-exact) and e-mails only need fast lookups."""
    keys = [IndexKey("userName", fold(user.user_name or ""), unique=True)]
    if user.external_id:
        keys.append(IndexKey("externalId", user.external_id, unique=False))
    emails = {fold(email.value) for email in user.emails or () if email.value}
    keys += [IndexKey("email", value, unique=False) for value in sorted(emails)]
    return keys


def stored_index_keys(stored: StoredResource, indexed: Sequence[indexes.IndexedAttribute] = ()) -> list[IndexKey]:
    """The index rows a stored user must have; ``python -m scim check`` compares them with the rows present."""
    return index_keys(_from_stored(stored)) + indexes.index_keys(indexed, stored.document)


def _lookup_key(lookup: IndexLookup) -> IndexKey:
    if lookup.index == "userName":
        return IndexKey("userName", fold(lookup.value), unique=True)
    if lookup.index == "externalId":
        return IndexKey("externalId", lookup.value, unique=False)
    return IndexKey("email", fold(lookup.value), unique=False)


def _summary(user: ScimUser) -> dict[str, str]:
    """Readable columns for teams that read the table from their own app; the document stays the source of truth."""
    summary = {"userName": user.user_name or ""}
    if user.external_id:
        summary["externalId"] = user.external_id
    return summary
