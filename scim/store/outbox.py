"""The change feed's rows: positions, the outbox row written inside a change's own transaction, and the reader.

Positions. A position is ``<16-digit microseconds since the epoch><8 hex digits naming the writing process>``,
stamped by the writer when it builds the transaction, and strictly increasing within a process. Positions of
different processes never collide (the process tag), so the tenant's feed is totally ordered by position, a plain
string comparison.

Why a follower cannot skip an event that commits late. A position is stamped before its transaction commits, so
a reader that saw position 100 could later find a position-90 event appear. Two rules close that gap:

- the writer never starts an attempt of a transaction later than :data:`COMMIT_WINDOW_SECONDS` after its stamp
  (a transaction still failing then answers 503 and Entra retries it later, with a new stamp); an attempt reaches
  the server within the attempt timeout, and Table Storage applies a request within its server timeout
  (:data:`SERVER_APPLY_SECONDS`) or not at all;
- the reader reads only up to its *horizon*, ``now - settle`` (``SCIM_CHANGE_FEED_SETTLE_SECONDS``), with settle
  at least the sum of those three and :data:`CLOCK_SKEW_SECONDS` (:data:`MIN_SETTLE_SECONDS`). Every event at or
  before the horizon has therefore committed or never will, and a page never ends beyond the horizon. A position
  is never earlier than the moment it was stamped (it can be later, see :func:`next_position`), so the rule holds.

Order per resource. A resource's row keeps the position of its last event (``event``); the next change of the
resource reads that row anyway (its writes are conditional on the version read) and stamps a later position
whatever this instance's clock says (:func:`next_position`).

No counter row is read or written: a counter would add a round trip to every SCIM request and serialise a tenant's
writers on one row. The price is that the pull feed runs ``settle`` seconds behind the writes.

Pending rows. Where a queue publisher is configured (:attr:`Change.queued`), the transaction also writes a copy of
the event at ``pend:<position>``, and the ``ev:`` row says so (``queued``). The publisher reads only ``pend:`` rows
and deletes each once its event is on the queue, so a pass costs what it sends, not the events of the last settle
window (:mod:`scim.publisher`). The pending row commits with its change or not at all, like the event row.
"""

import itertools
import json
import secrets
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from scim.store import keys
from scim.store.contract import Change, RecordedChange
from scim.store.retries import ATTEMPT_TIMEOUT_SECONDS

COMMIT_WINDOW_SECONDS = 15.0
"""No attempt of a transaction carrying an event starts later than this after its stamp; each attempt lasts at most
:data:`scim.store.retries.ATTEMPT_TIMEOUT_SECONDS` before the client gives up on it."""
SERVER_APPLY_SECONDS = 30.0
"""Table Storage's server timeout for a write: a request it received is applied within this or failed."""
CLOCK_SKEW_SECONDS = 5.0
"""Allowed disagreement between the clocks of two instances (Azure keeps them within a second of UTC via NTP)."""
MIN_SETTLE_SECONDS = COMMIT_WINDOW_SECONDS + ATTEMPT_TIMEOUT_SECONDS + SERVER_APPLY_SECONDS + CLOCK_SKEW_SECONDS
"""An attempt starts within the window, reaches the server within its timeout, and is applied within the server's."""
DEFAULT_SETTLE_SECONDS = 60.0
FEED_TYPES = ("User", "Group", keys.MEMBERSHIP_TYPE)
"""The partitions holding a tenant's events: each event lives beside the rows of the change it records."""
MAX_SNAPSHOT_CHARS = 30_000
QUEUED = "queued"
"""On an event row: it was written with a pending row, so the queue publisher sends it (or has)."""

PROCESS_TAG = secrets.token_hex(4)
"""This process's part of every position it stamps; the publisher knows its own events by it (no clock skew)."""
_last_stamp = 0
_stamp_lock = threading.Lock()


def next_position(after: str = "") -> tuple[str, float]:
    """A fresh position, later than ``after`` (the position of the resource's previous event), and the wall-clock
    second it was stamped at.

    ``after`` makes this a hybrid logical clock: another instance whose clock runs ahead of ours may have recorded
    the resource's previous change at a position our clock has not reached yet; stamping from our clock alone would
    put this change before that one, and a consumer ordering by position would apply them the wrong way round. The
    process's later stamps follow, so its own positions stay strictly increasing."""
    global _last_stamp
    floor = int(after[:16]) + 1 if after else 0
    with _stamp_lock:
        now = time.time()
        micros = max(int(now * 1_000_000), _last_stamp + 1, floor)
        _last_stamp = micros
    return f"{micros:016d}{PROCESS_TAG}", now


def horizon(settle: float, now: float | None = None) -> str:
    """The highest position a reader may return: everything at or before it has committed or never will."""
    micros = int(((time.time() if now is None else now) - settle) * 1_000_000)
    return f"{max(micros, 0):016d}"


class CommitWindowClosed(Exception):
    """A transaction's event was stamped too long ago to commit safely; the request answers 503."""


class Outbox:
    """The event row of one transaction: position fixed across attempts, so a retry of an applied attempt fails on
    the event row (409) instead of recording the change twice; the row's content follows the operations that are
    still in the batch (a member row already there is not an added member)."""

    def __init__(self, change: Change, commit_window: float, first: bool, after: str = "") -> None:
        self.change = change
        self.position, self._stamped = next_position(after)
        self._commit_window = commit_window
        self.first = first
        """Membership transactions put the event first: a re-applied attempt then fails on it at once."""

    def check_window(self) -> None:
        if time.time() > self._stamped + self._commit_window:
            raise CommitWindowClosed()

    @property
    def rows(self) -> int:
        """Operations this event adds to its transaction: the event row, and its pending row when queued."""
        return 2 if self.change.queued else 1

    def operations(self, partition: str, operations: Sequence[Any]) -> list[tuple[str, dict[str, Any]]]:
        """The event's inserts (none when a membership batch no longer writes any of its group's rows): the event
        row first, so that a retry of an applied attempt fails on it, then the pending row, a copy."""
        data = dict(self.change.data)
        if "members" in data:
            data["members"] = _written_members(operations, self.change.resource_id)
            if not data["members"]:
                return []
        entity: dict[str, Any] = {
            "PartitionKey": partition,
            "RowKey": keys.event_row_key(self.position),
            "time": _timestamp(self._stamped),
            "type": self.change.type,
            "resourceType": self.change.resource_type,
            "resourceId": self.change.resource_id,
        }
        snapshot = data.pop("snapshot", None)
        if snapshot is not None:
            text = json.dumps(snapshot, ensure_ascii=False, separators=(",", ":"))
            if len(text) <= MAX_SNAPSHOT_CHARS:
                entity["snapshot"] = text
            else:  # a property holds 64 KiB: the consumer is told to read the resource instead
                data["snapshotOmitted"] = True
        entity["data"] = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        if not self.change.queued:
            return [("create", entity)]
        pending = {**entity, "RowKey": keys.pending_row_key(self.position)}
        return [("create", {**entity, QUEUED: True}), ("create", pending)]


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _written_members(operations: Sequence[Any], group_id: str) -> list[str]:
    """The members of the group whose forward row this batch inserts (adds) or deletes (removals), in batch order."""
    prefix = keys.member_row_key(group_id, "")
    return [
        entity["RowKey"][len(prefix) :]
        for verb, entity, *_ in operations
        if verb in ("create", "delete") and entity["RowKey"].startswith(prefix)
    ]


def recorded(entity: dict[str, Any]) -> RecordedChange:
    data = json.loads(entity["data"])
    if entity.get("snapshot"):
        data["snapshot"] = json.loads(entity["snapshot"])
    return RecordedChange(
        position=entity["RowKey"].split(":", 1)[1],  # an event row or its pending copy
        time=entity["time"],
        type=entity["type"],
        resource_type=entity["resourceType"],
        resource_id=entity["resourceId"],
        data=data,
    )


def merge(pages: Sequence[Sequence[dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` rows of partitions each read in position order: the tenant's feed in order."""
    ordered = sorted(itertools.chain.from_iterable(pages), key=lambda entity: entity["RowKey"])
    return ordered[:limit]
