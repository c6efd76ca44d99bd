"""How one instance shares its event loop between tenants, so that one tenant's costly requests cannot stall the rest.

One process serves every tenant on one event loop, and asyncio runs ready work first come, first served: four
requests of one tenant, each rendering a 200-resource page and reading 200 users' groups, kept every step of
another tenant's lookup waiting behind their slices and their storage answers (17x its usual p99 in
bench/fairness.py). Three rules keep each tenant its share:

- **Turns.** Costly loops (rendering a page, applying a long PATCH, reading rows) take a turn at the CPU per slice
  (:func:`turn`). Turns go round the tenants that are waiting for one, one slice each, so a request's step waits
  behind at most one slice of each other tenant, however many requests that tenant has running.
- **Admission.** A request that has taken :data:`LIGHT_TURNS` turns or made :data:`LIGHT_STORAGE_CALLS` storage
  calls is a heavy one (a page, a scan, a long PATCH, a 1,000-member one; of Entra's, only a lookup of a user in
  about 100 groups). A tenant runs at most :data:`HEAVY_REQUESTS_PER_TENANT` heavy request at a time on an
  instance; its other heavy requests wait for it, not the other tenants. A request that waited
  :data:`ADMISSION_WAIT_SECONDS` without having written anything is answered 429 with ``Retry-After`` (Entra
  retries 429); one that has written keeps waiting, so that it never fails half done.
- **Storage calls.** A tenant's calls hold at most :data:`STORAGE_CALLS_PER_TENANT` of the instance's storage
  connections, so another tenant's call never queues for one behind them. A heavy request's calls share
  :data:`HEAVY_STORAGE_CALLS_PER_TENANT` slots per tenant. A call of a heavy request, or one past a request's first
  :data:`UNPACED_CALLS` in flight, goes out in a turn and its answer waits for a turn before it is decoded
  (:func:`storage_call`, :func:`answer_turn`): sending and decoding cost CPU (about 0.4 ms a call), and
  a hundred calls sent in one step, or a hundred answers landing together, hold the loop for tens of
  milliseconds; on a shared storage account, the calls would also queue ahead of every other tenant's. Light
  requests count here too: four of Entra's 100-member PATCHes at once, each reading its 100 members together, made
  another tenant's p99 6-11x its own (bench/fairness.py, ``members-100``).
"""

import asyncio
import contextlib
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from scim import errors

LIGHT_TURNS = 100
"""Turns a request takes before it counts as heavy. A lookup takes one per group of the user (its reverse
membership rows) and one to render: only a user in about 100 groups gets there. A 100-user page takes 100 to count
the users, then one per user read and one per user rendered; a 100-operation PATCH one per operation parsed and one
per operation applied."""
LIGHT_STORAGE_CALLS = 256
"""Storage calls a request makes before it counts as heavy: Entra's costliest requests, a 100-member group PATCH
and its re-send after a timeout (a read per edge before deleting), make about 104 and 205; a 1,000-member one makes
over 1,000, and their answers are as much CPU as a page."""
HEAVY_REQUESTS_PER_TENANT = 1
"""Heavy requests one tenant runs at once on an instance: Entra never sends two pages or scans at once for a job."""
STORAGE_CALLS_PER_TENANT = 128
"""Storage calls one tenant has in flight on an instance, light requests or heavy, out of the process's 256
connections (scim/store/tables.py): four 1,000-member PATCHes of one tenant (128 calls each) took every connection,
and another tenant's lookup queued for one behind hundreds of calls. Entra's 100-member PATCH needs 101 at once, and
gets them. Not more: every call in flight holds about 110 objects (the SDK's pipeline is 28 coroutines deep), which
every young garbage collection walks and cannot free; with 192, four of those PATCHes at once made collections of
3-11 ms (bench/fairness.py, ``members-100``)."""
HEAVY_STORAGE_CALLS_PER_TENANT = 16
"""Storage calls of one tenant's heavy requests in flight together: enough to hide storage latency on a page of
groups reads (200 reads in 13 rounds), few enough that their answers, decoded on the loop, stay a few milliseconds."""
UNPACED_CALLS = 8
"""Storage calls a light request has in flight before the next ones go out and come back in turns: Entra's lookups
and writes make one to three and never wait for a turn; its 100-member PATCH sends its first 8 reads at once and the
other 93 a turn each, in the same round trip (they would have gone out one after another in one long step)."""
ADMISSION_WAIT_SECONDS = 10.0
"""How long a heavy request waits for its tenant's slot before a 429: half the request budget, so the answer comes
well before Entra's own timeout."""
RETRY_AFTER_SECONDS = 2


def read_workers(reads: int, light: int) -> int:
    """How many of the current request's ``reads`` to run at once: ``light`` while it can stay light. A request
    that is heavy already (a page or a search that has counted its resources), or that has more reads to make than
    a light request may, has only :data:`HEAVY_STORAGE_CALLS_PER_TENANT` calls in flight, so more workers would only
    wait. A waiting worker is not free: its chain of coroutines, cells, contexts and timers is objects every garbage
    collection walks. A 1,000-member add with 100 workers held about 2,300 coroutines and 12,000 objects in the
    youngest generation, whose collections took 5-6 ms of the instance's loop; with 16, none in it met 3,000, and it
    took as long."""
    share = _REQUEST.get()
    if reads > LIGHT_STORAGE_CALLS or (share is not None and share.heavy):
        return min(light, HEAVY_STORAGE_CALLS_PER_TENANT)
    return light


@dataclass
class _Tenant:
    """One tenant's slots on one event loop."""

    heavy: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(HEAVY_REQUESTS_PER_TENANT))
    calls: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(STORAGE_CALLS_PER_TENANT))
    storage: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(HEAVY_STORAGE_CALLS_PER_TENANT))


class _Turns:
    """The loop's single turn at the CPU, handed round the waiting tenants (first come, first served within one)."""

    def __init__(self) -> None:
        self.taken = False
        self.waiting: dict[str, deque[asyncio.Future[None]]] = {}
        """Tenants in the order their next turn comes; a tenant served goes to the back."""
        self.served: str | None = None
        """The tenant that had the last turn: a tenant that starts waiting comes before it, not after."""

    async def acquire(self, tenant: str) -> None:
        if not self.taken and not self.waiting:
            self.taken, self.served = True, tenant
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if tenant not in self.waiting and self.served in self.waiting and self.served != tenant:
            behind = self.waiting.pop(self.served)
            self.waiting[tenant] = deque()
            self.waiting[self.served] = behind
        self.waiting.setdefault(tenant, deque()).append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # the turn was handed over as the task was cancelled: pass it on
            else:
                self._forget(tenant, granted)
            raise

    def release(self) -> None:
        while self.waiting:
            tenant, queue = next(iter(self.waiting.items()))
            del self.waiting[tenant]
            granted = queue.popleft()
            if queue:
                self.waiting[tenant] = queue
            if not granted.done():
                granted.set_result(None)
                self.served = tenant
                return
        self.taken = False

    def _forget(self, tenant: str, granted: asyncio.Future[None]) -> None:
        queue = self.waiting.get(tenant)
        if queue is not None and granted in queue:
            queue.remove(granted)
            if not queue:
                del self.waiting[tenant]


class _Loop:
    """Everything shared on one event loop (tests run several loops in one process)."""

    def __init__(self) -> None:
        self.turns = _Turns()
        self.tenants: dict[str, _Tenant] = {}

    def tenant(self, name: str) -> _Tenant:
        found = self.tenants.get(name)
        if found is None:
            found = self.tenants[name] = _Tenant()
        return found


_loops: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Loop]" = weakref.WeakKeyDictionary()


def _shared() -> _Loop:
    loop = asyncio.get_running_loop()
    shared = _loops.get(loop)
    if shared is None:
        shared = _loops[loop] = _Loop()
    return shared


@dataclass
class _Request:
    """One request's standing, shared by the tasks it spawns (they copy the context, not this object)."""

    tenant: str
    has_written: Callable[[], bool]
    turns: int = 0
    storage_calls: int = 0
    calls_in_flight: int = 0
    heavy: bool = False
    refused: errors.ScimError | None = None
    admitting: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def admit(self) -> None:
        """Wait for the tenant's heavy slot, once per request however many of its tasks ask."""
        async with self.admitting:
            if self.heavy:
                return
            if self.refused is not None:  # another task of this request already waited its time
                raise self.refused
            slot = _shared().tenant(self.tenant).heavy
            try:
                await asyncio.wait_for(slot.acquire(), ADMISSION_WAIT_SECONDS)
            except TimeoutError:
                if not self.has_written():
                    self.refused = errors.ScimError(
                        429,
                        "This tenant's costly requests are queued on this instance; retry later",
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                    )
                    raise self.refused from None
                await slot.acquire()  # half done: finishing is better than failing
            self.heavy = True


_REQUEST: ContextVar[_Request | None] = ContextVar("scim_request_share", default=None)


@asynccontextmanager
async def request(tenant: str, has_written: Callable[[], bool]) -> AsyncIterator[None]:
    """The scope of one authenticated request of ``tenant``; its heavy slot, if it took one, is given back at the
    end. ``has_written`` says whether a refusal could still change nothing."""
    share = _Request(tenant, has_written)
    token = _REQUEST.set(share)
    try:
        yield
    finally:
        _REQUEST.reset(token)
        if share.heavy:
            _shared().tenant(tenant).heavy.release()


@asynccontextmanager
async def turn() -> AsyncIterator[None]:
    """Hold this event loop's single turn for one slice of CPU work (a few milliseconds at most); a task that
    leaves the block and asks again waits until every other waiting tenant has had a turn."""
    share = _REQUEST.get()
    if share is not None:
        share.turns += 1
        if share.turns > LIGHT_TURNS and not share.heavy:
            await share.admit()
    turns = _shared().turns
    await turns.acquire(share.tenant if share is not None else "")
    try:
        yield
        await asyncio.sleep(0)  # still holding the turn: every task already ready runs before the next slice
    finally:
        turns.release()


@asynccontextmanager
async def turn_if(costly: bool) -> AsyncIterator[None]:
    """A slice of work that is ``costly`` (reading a 1,000-member body) runs in a turn and in a step of the loop of
    its own: a :func:`turn` alone ends the step after the slice, but the slice would still share its first step
    with whatever the request did before (parsing that body). Work that is not costly runs inline, with no turn and
    no await, so that Entra's usual requests (a lookup, a 100-member PATCH) never queue behind other tenants'
    slices for work that costs next to nothing."""
    if not costly:
        yield
        return
    async with turn():
        await asyncio.sleep(0)
        yield


_PACED: ContextVar[bool] = ContextVar("scim_paced_call", default=False)
"""Whether the storage call running in this task went out in a turn, so that its answer is decoded in one too."""


async def answer_turn() -> None:
    """Before a paced storage call's answer is decoded (the SDK's parsing and the caller's work up to its next
    await), wait for a turn like any other slice; other calls go straight on."""
    share = _REQUEST.get()
    if share is not None and (share.heavy or _PACED.get()):
        await _pass_turn(share.tenant)


async def _pass_turn(tenant: str) -> None:
    """Wait for this tenant's turn, let every task already ready run, and hand the turn on: the step that follows
    (one call's sending or decoding) runs between other tenants' steps, not in a burst of its own."""
    turns = _shared().turns
    await turns.acquire(tenant)
    try:
        await asyncio.sleep(0)
    finally:
        turns.release()


@asynccontextmanager
async def storage_call() -> AsyncIterator[None]:
    """One storage call's slot: one of the tenant's :data:`STORAGE_CALLS_PER_TENANT` for a light request (a
    100-member PATCH reads 101 rows at once, in one round trip), and also one of its few for a heavy one. Counting
    calls here is what makes a request heavy that takes no turns (a 1,000-member PATCH: 1,000 reads, then 20
    transactions). A call of a heavy request, or one past the request's first :data:`UNPACED_CALLS` in flight, is
    sent in a turn of its own (the pipeline's work and the socket write happen in the step after it)."""
    share = _REQUEST.get()
    if share is None:
        yield
        return
    share.storage_calls += 1
    if share.storage_calls > LIGHT_STORAGE_CALLS and not share.heavy:
        await share.admit()
    tenant = _shared().tenant(share.tenant)
    async with tenant.calls, tenant.storage if share.heavy else contextlib.nullcontext(), _in_flight(share):
        yield


@asynccontextmanager
async def _in_flight(share: _Request) -> AsyncIterator[None]:
    """The call counted among the request's calls in flight while it is; sent in a turn if it is one too many, and
    marked so, for its answer to be decoded in a turn too."""
    share.calls_in_flight += 1
    paced = share.heavy or share.calls_in_flight > UNPACED_CALLS
    marked = _PACED.set(paced)
    try:
        if paced:
            await _pass_turn(share.tenant)
        yield
    finally:
        share.calls_in_flight -= 1
        _PACED.reset(marked)
