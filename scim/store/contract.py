"""What the service and the store exchange: stored records, index keys, and the failures a store reports.

These types carry no SCIM and no Azure, so the service can reason about storage without importing either.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IndexKey:
    """One lookup key of a resource: ``name`` is the index (``userName``…), ``value`` its already-folded value.

    A unique key is one row whose key *is* the value, so a second insert fails atomically; a non-unique key is one
    row per resource under the value's prefix.
    """

    name: str
    value: str
    unique: bool


@dataclass(frozen=True)
class StoredResource:
    """A resource as stored: its SCIM document (without ``id`` and ``meta``), timestamps and the entity's ETag."""

    resource_id: str
    document: dict[str, Any]
    created: str
    last_modified: str
    etag: str
    event: str = ""
    """The position of the resource's last change-feed event ("" when none): its next event is stamped later."""


@dataclass(frozen=True)
class Member:
    """One membership: a member (User or Group) of a group, with the display name recorded when it was added."""

    member_id: str
    member_type: str
    display: str | None = None


class StoreError(Exception):
    """Base of the failures the store reports; each maps to one SCIM error in the service."""


class UniqueKeyTaken(StoreError):
    """A unique index key belongs to another resource."""

    def __init__(self, index: str) -> None:
        super().__init__(index)
        self.index = index


class ResourceChanged(StoreError):
    """The resource changed (or vanished) since the ETag the write was conditional on."""


class ResourceTooLarge(StoreError):
    """The resource exceeds what one Table Storage entity can hold."""


class StoreUnavailable(StoreError):
    """Table Storage could not be reached or failed; the request may be retried."""


@dataclass(frozen=True)
class Change:
    """An event the service wants recorded with a write (the change feed): the store adds the position and writes
    it as a row of the same entity-group transaction, so the change and its event commit together or not at all.

    ``data`` is the event's payload, decided by the service; for membership changes the store fills in the member
    ids actually written, since only the store learns which rows were already there. ``queued``: a queue publisher
    is configured, so the event also gets its pending row (:mod:`scim.store.outbox`)."""

    type: str
    resource_type: str
    resource_id: str
    data: dict[str, Any]
    queued: bool = False


@dataclass(frozen=True)
class RecordedChange:
    """An event as the feed reads it back: its position in the tenant's feed and when it was recorded."""

    position: str
    time: str
    type: str
    resource_type: str
    resource_id: str
    data: dict[str, Any]
