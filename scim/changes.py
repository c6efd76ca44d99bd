"""The change feed's events: which change a write records, and how a recorded change reads as a CloudEvent 1.0.

The services ask :class:`ChangeRecorder` for the event of each write and hand it to the store, which writes it in
the write's own transaction (:mod:`scim.store.outbox`). A write that changes no attribute records nothing, so an
idempotent re-send or a no-op PATCH never reaches the feed; membership events are recorded by the membership store,
which alone knows which rows a request really added or removed.
"""

import re
from typing import Any

from scim.store.contract import Change, RecordedChange, StoredResource

SPEC_VERSION = "1.0"
POSITION = re.compile(r"[0-9]{16}(?:[0-9a-f]{8})?")
"""A position as the feed hands it out: 16 digits of microseconds, then the writer's tag (absent on a horizon)."""
_PATHS = {"User": "Users", "Group": "Groups"}


class ChangeRecorder:
    """Decides each write's event; when the feed is off it records nothing, and writes stay as they were."""

    def __init__(self, enabled: bool = False, snapshots: bool = False, queued: bool = False) -> None:
        self.enabled = enabled
        self._snapshots = snapshots
        self._queued = queued
        """A queue publisher is configured: each event is also written as pending (:mod:`scim.store.outbox`)."""

    def created(self, resource_type: str, stored: StoredResource) -> Change | None:
        if not self.enabled:
            return None
        noun = resource_type.lower()
        data = self._data(resource_type, stored)
        return Change(f"scim.{noun}.created", resource_type, stored.resource_id, data, self._queued)

    def updated(self, resource_type: str, before: StoredResource, after: StoredResource) -> Change | None:
        """``scim.user.deactivated``/``reactivated`` when ``active`` flips, else ``<type>.updated``; None when no
        attribute changed (a PUT of the same document, a PATCH that sets what is already there)."""
        if not self.enabled:
            return None
        changed = changed_attributes(before.document, after.document)
        if not changed:
            return None
        noun = resource_type.lower()
        kind = "updated"
        if resource_type == "User" and "active" in changed:
            was, now = before.document.get("active", True), after.document.get("active", True)
            if was is not False and now is False:
                kind = "deactivated"
            elif was is False and now is not False:
                kind = "reactivated"
        data = {**self._data(resource_type, after), "changedAttributes": changed}
        return Change(f"scim.{noun}.{kind}", resource_type, after.resource_id, data, self._queued)

    def deleted(self, resource_type: str, current: StoredResource) -> Change | None:
        if not self.enabled:
            return None
        return Change(f"scim.{resource_type.lower()}.deleted", resource_type, current.resource_id, {}, self._queued)

    def _data(self, resource_type: str, stored: StoredResource) -> dict[str, Any]:
        """The resource's version after the change: ``meta.lastModified``, written in the same transaction (the
        ETag behind ``meta.version`` is assigned by storage at commit, so no row of that commit can hold it)."""
        data: dict[str, Any] = {"lastModified": stored.last_modified}
        if self._snapshots:
            meta = {"resourceType": resource_type, "created": stored.created, "lastModified": stored.last_modified}
            data["snapshot"] = {**stored.document, "id": stored.resource_id, "meta": meta}
        return data


def changed_attributes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Top-level attribute names (extension blocks by schema URN) whose value differs, in sorted order."""
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def cloud_event(tenant: str, change: RecordedChange) -> dict[str, Any]:
    """One recorded change as a CloudEvents 1.0 JSON event; ``tenant`` and ``position`` are extension attributes
    (lower-case alphanumeric names, as the spec requires)."""
    path = _PATHS.get(change.resource_type, change.resource_type)
    data = {"id": change.resource_id, "resourceType": change.resource_type, **change.data}
    return {
        "specversion": SPEC_VERSION,
        "id": change.position,
        "source": f"/scim/v2/tenants/{tenant}",
        "type": change.type,
        "subject": f"{path}/{change.resource_id}",
        "time": change.time,
        "datacontenttype": "application/json",
        "tenant": tenant,
        "position": change.position,
        "data": data,
    }
