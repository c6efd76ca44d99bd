"""The change feed's queue publisher: moves a tenant's events to the Azure Storage Queue, at least once, each
resource's events in position order, batched into messages (:mod:`scim.change_messages`).

Every event still to send has a pending row (``pend:<position>``, a copy of its event row) written in the change's
own transaction (:mod:`scim.store.outbox`). A pass (:meth:`Publisher.publish`), for one tenant:

1. note the time ``T0``, read the tenant's state row, and read its pending rows (only those: a pass costs what it
   sends, not the events it sent before);
2. take the tenant's lease (the state row, changed only conditionally on the ETag read in step 1): one publisher at
   a time sends a tenant's events, so instances do not interleave their sends;
3. send, in position order, the prefix of those rows that were stamped before ``T0`` (before ``T0 - 5 s`` when
   another process stamped them: clock skew), then delete their pending rows; release the lease.

Why step 3 keeps each resource's order: writes of one resource are conditional on the version they read, so an
event's predecessors on its resource committed before it was stamped. An event whose position is before ``T0`` was
stamped before ``T0`` (a position is never earlier than its stamp), so each of its predecessors committed before
``T0``: either it was sent already (its pending row deleted after the send), or its pending row is visible to the
pass, which sends it first (the prefix stops at the first row it may not send yet). An event that commits late
(after a pass has sent later positions) is simply a pending row that a later pass finds: nothing is missed, since a
pending row goes only after its event was accepted by the queue. Nothing is invented: only committed rows are read.
A crash after a send and before the delete sends those events again on the next pass: at least once, and the
consumer de-duplicates by event id (= position).

Passes are started right after a write that recorded an event (:meth:`Publisher.kick`, from the dispatcher, after
the answer is built and never failing it) and by the timer sweep (:meth:`Publisher.sweep`), which also deletes event
rows older than the retention once they were sent.

Upgrading from the version before pending rows: its state row has no ``pendingRows``. The first pass that finds
such a row gives the events after its cursor that were never marked ``published`` a pending row (under the lease,
before sending), so they go in order with the rest (:func:`scim.store.publishing.legacy_unsent`).
"""

import asyncio
import contextlib
import contextvars
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from scim import change_messages
from scim.changes import cloud_event
from scim.store import outbox, publishing, retries
from scim.store.contract import StoreUnavailable
from scim.store.event_queue import EventQueue
from scim.store.publishing import EventRow, PublisherState
from scim.store.tables import TableStore

log = logging.getLogger("scim.publisher")

LEASE_SECONDS = 60.0
LEASE_MARGIN_SECONDS = outbox.CLOCK_SKEW_SECONDS + 10.0
"""A holder sends only while its lease has this long left: another instance's clock may run ahead by the skew, and
a send in flight may take its attempt timeout."""
FOREIGN_HOLD_SECONDS = outbox.CLOCK_SKEW_SECONDS
"""Rows stamped by another process wait this long, so its clock being ahead of ours cannot break step 3."""
CHUNK_ROWS = 1000
"""Rows read per partition at a time: a pass never holds the whole backlog in memory."""
BUSY_RETRY_SECONDS = 1.0
RETENTION_ROWS_PER_SWEEP = 2000
"""Rows per partition a sweep deletes at most, so one sweep stays short; the next goes on."""


class LeaseLost(Exception):
    """Another publisher took the tenant's lease (ours lapsed): stop sending, it goes on."""


@dataclass
class PassReport:
    """What one pass did; ``busy`` when another publisher held the tenant's lease (nothing was read)."""

    tenant: str
    sent: int = 0
    messages: int = 0
    held: int = 0
    """Rows read but left for the next pass (stamped after the pass began, or too recently by another process, and
    the rows after them)."""
    sendable_in: float = 0.0
    """Seconds until a pass may send the first held row."""
    busy: bool = False


@dataclass
class SweepReport:
    passes: list[PassReport] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    expired: int = 0


class Publisher:
    """One per process: the tenant passes, the in-process kicks, and the sweep."""

    def __init__(
        self,
        store: TableStore,
        queue: EventQueue,
        delay: float = 0.1,
        retention_days: float = 7.0,
        clock: Callable[[], float] = time.time,
        budget: float = retries.REQUEST_BUDGET_SECONDS,
    ) -> None:
        self.store = store
        self.queue = queue
        self.delay = delay
        self.retention_days = retention_days
        self.owner = f"{outbox.PROCESS_TAG}-{secrets.token_hex(4)}"
        self._clock = clock
        self._budget = budget
        """A pass's storage and queue calls are retried until this long after it began; then a failing call fails
        the pass, and the next pass (a kick or the sweep) goes on from the cursor."""
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._passes: dict[str, asyncio.Lock] = {}
        """One pass per tenant at a time in this process: a kicked pass and the sweep's share the lease's owner, so
        the lease alone would let the second take over the first's lease and send its events again."""

    async def publish(self, tenant: str) -> PassReport:
        """One pass for ``tenant`` (module docstring). Raises StoreUnavailable when storage or the queue fails;
        what was sent before the failure may be sent again by the next pass."""
        async with self._passes.setdefault(tenant, asyncio.Lock()):
            with retries.request_budget(self._budget):
                return await self._pass(tenant)

    async def _pass(self, tenant: str) -> PassReport:
        report = PassReport(tenant)
        started = self._clock()
        own_bound, foreign_bound = _stamp(started), _stamp(started - FOREIGN_HOLD_SECONDS)
        settled = outbox.horizon(outbox.MIN_SETTLE_SECONDS, started)
        state = await publishing.read_state(self.store, tenant)
        if self._held_by_another(state):
            report.busy = True
            return report
        rows, complete_to = await publishing.pending(self.store, tenant, "", CHUNK_ROWS)
        if not rows and not state.legacy:
            return report  # nothing to send: an idle tenant costs reads only
        leased = await publishing.write_state(self.store, self._leased(state))
        if leased is None:
            report.busy = True
            return report
        state = leased
        try:
            if state.legacy:  # the first pass after an upgrade: the previous version's unsent events join the rest
                unsent = await publishing.legacy_unsent(self.store, tenant, state.cursor)
                await publishing.queue_legacy(self.store, unsent)
                state = replace(state, legacy=False)
                rows, complete_to = await publishing.pending(self.store, tenant, "", CHUNK_ROWS)
            while True:  # the rows read before the lease are the first chunk: read after T0, they may be sent
                ready, report.held = _sendable(rows, own_bound, foreign_bound)
                state = await self._send(state, ready, report)
                if report.held:
                    report.sendable_in = max(0.0, _sendable_from(rows[len(ready)]) - self._clock())
                    break
                if complete_to is None:
                    break
                rows, complete_to = await publishing.pending(self.store, tenant, complete_to, CHUNK_ROWS)
            cursor = max(state.cursor, settled)
            await publishing.write_state(self.store, PublisherState(tenant, cursor, etag=state.etag))
        except LeaseLost:
            log.info("publisher: lease of %s lost mid-pass; its new holder goes on", tenant)
        except Exception:
            with contextlib.suppress(Exception):  # let the next publisher go on now, not when the lease lapses
                released = PublisherState(tenant, state.cursor, etag=state.etag, legacy=state.legacy)
                await publishing.write_state(self.store, released)
            raise
        return report

    def _held_by_another(self, state: PublisherState) -> bool:
        return state.owner not in ("", self.owner) and state.lease_until > self._clock()

    def _leased(self, state: PublisherState) -> PublisherState:
        return replace(state, owner=self.owner, lease_until=self._clock() + LEASE_SECONDS)

    async def _write(self, state: PublisherState, new: PublisherState) -> PublisherState:
        written = await publishing.write_state(self.store, new)
        if written is None:
            raise LeaseLost()
        return written

    async def _send(self, state: PublisherState, rows: list[EventRow], report: PassReport) -> PublisherState:
        """Send ``rows`` in order, renewing the lease whenever it runs short, then delete their pending rows."""
        if not rows:
            return state
        events = [cloud_event(state.tenant, row.change) for row in rows]
        for message in change_messages.encode(events):
            if self._clock() > state.lease_until - LEASE_MARGIN_SECONDS:
                state = await self._write(state, self._leased(state))
            await self.queue.send(message)
            report.messages += 1
        report.sent += len(rows)
        await publishing.sent(self.store, rows)
        return state

    def kick(self, tenant: str) -> None:
        """Publish ``tenant``'s new events soon, in the background: called by the dispatcher after a write's answer
        is built. Never raises and never waits; kicks while a pass runs are folded into one more pass."""
        if tenant in self._running:
            self._again.add(tenant)
            return
        task = asyncio.get_running_loop().create_task(self._follow(tenant), context=contextvars.Context())
        self._running[tenant] = task
        task.add_done_callback(lambda _: self._running.pop(tenant, None))

    async def _follow(self, tenant: str) -> None:
        """Passes until the tenant has nothing left to send: while another instance holds the lease (it may have
        read before this write committed), while rows are held back, and while new kicks came in."""
        await asyncio.sleep(self.delay)
        patience = time.monotonic() + LEASE_SECONDS + BUSY_RETRY_SECONDS
        while True:
            self._again.discard(tenant)
            try:
                report = await self.publish(tenant)
            except Exception as exc:  # storage or queue down: the sweep retries; a request never sees this
                log.warning("publisher: pass for %s failed (%s); the sweep retries", tenant, type(exc).__name__)
                return
            if report.busy and time.monotonic() < patience:
                await asyncio.sleep(BUSY_RETRY_SECONDS)
            elif report.held:  # a write of ours that committed as the pass began: at once; another's: after the hold
                await asyncio.sleep(max(self.delay, report.sendable_in))
            elif tenant not in self._again:
                return
            else:  # writes came in during the pass: gather more of them into the next
                await asyncio.sleep(self.delay)

    async def close(self) -> None:
        """Stop kicked passes (their events stay in the outbox for the sweep) and close the queue's session."""
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        await self.queue.close()

    async def idle(self) -> None:
        """Wait until no kicked pass is running (tests, and the local host's shutdown)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def sweep(self, tenants: Iterable[str] = ()) -> SweepReport:
        """One pass for every tenant that has a state row or is named in ``tenants`` (configured and stored
        tenants: one whose first event's kick was lost has no state row yet), then retention. A tenant whose pass
        fails is reported and left for the next sweep."""
        report = SweepReport()
        known = {state.tenant for state in await publishing.states(self.store)} | set(tenants)
        cutoff = outbox.horizon(self.retention_days * 86_400, self._clock())
        for tenant in sorted(known):
            try:
                report.passes.append(await self.publish(tenant))
                report.expired += await publishing.delete_sent_before(
                    self.store, tenant, cutoff, RETENTION_ROWS_PER_SWEEP
                )
            except Exception as exc:
                log.warning("publisher: sweep of %s failed (%s)", tenant, type(exc).__name__)
                report.failed.append(tenant)
        return report


async def expire(store: TableStore, tenants: Iterable[str], retention_days: float) -> int:
    """Retention where no queue is configured (pull feed only): events older than the retention go, sent or not."""
    cutoff = outbox.horizon(retention_days * 86_400)
    expired = 0
    for tenant in sorted(set(tenants)):
        try:
            expired += await publishing.delete_before(store, tenant, cutoff, RETENTION_ROWS_PER_SWEEP)
        except StoreUnavailable:
            log.warning("publisher: retention for %s failed; the next sweep retries", tenant)
    return expired


async def stuck(store: TableStore, tenant: str, minutes: float, now: float | None = None) -> str | None:
    """Why the tenant's publisher looks stuck, or None: its oldest unsent event (pending row) is more than
    ``minutes`` old (kicks send within seconds and the sweep within a minute, so an older one means passes keep
    failing or never run)."""
    oldest = await publishing.oldest_pending(store, tenant)
    if oldest is None:
        return None
    age = ((time.time() if now is None else now) - int(oldest.position[:16]) / 1_000_000) / 60
    if age <= minutes:
        return None
    state = await publishing.read_state(store, tenant)
    lease = f"; lease held by {state.owner}" if state.owner else ""
    return f"oldest unsent event {oldest.position} ({oldest.change.type}) is {age:.0f} minutes old{lease}"


def _sendable(rows: list[EventRow], own_bound: str, foreign_bound: str) -> tuple[list[EventRow], int]:
    """The prefix of unsent rows (position order) that a pass started at the bounds' time may send, and how many
    are left: a row stamped after the pass began might have a predecessor on its resource the pass did not see."""
    for index, row in enumerate(rows):
        bound = own_bound if row.position.endswith(outbox.PROCESS_TAG) else foreign_bound
        if row.position[:16] > bound:
            return rows[:index], len(rows) - index
    return rows, 0


def _sendable_from(row: EventRow) -> float:
    """When a pass may begin that sends ``row`` (:func:`_sendable`): its stamp, plus the hold if another process
    stamped it."""
    stamped = int(row.position[:16]) / 1_000_000
    return stamped if row.position.endswith(outbox.PROCESS_TAG) else stamped + FOREIGN_HOLD_SECONDS


def _stamp(seconds: float) -> str:
    return f"{int(seconds * 1_000_000):016d}"
