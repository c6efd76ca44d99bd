"""Soak: a simulated Entra provisioning run against our endpoint while storage misbehaves at random.

Azurite (in memory) ← a fault proxy (tests/fault_proxy.py) ← ``python -m scim serve`` ← a simulated Entra with C
workers. The simulated Entra behaves as Entra does: it looks a user up by ``userName`` before creating it, reads a
409 on create as "look it up again", re-sends any request that failed with a 5xx or a broken connection (after a
pause, where Entra would wait for its next cycle), and keeps its own belief of what the target holds, updated only
on 2xx. After the initial cycle it sends incremental changes (attribute updates, renames, deactivations, deletes,
member adds and removes, membership checks) until the time is up.

Meanwhile the proxy cycles through storage troubles: a share of connections dropped, reset or cut mid-answer, then
outages (connections refused), throttling (every call answered 503 ServerBusy) and stalls (a black hole). At the end
the faults stop, every pending request is re-sent until it succeeds, and the run is judged:

- no 500 and no 404 on a lookup or on a resource Entra believes exists, at any time;
- every 5xx carried ``Retry-After``;
- what the endpoint holds equals what Entra believes (every user's name and state, every group's members);
- ``python -m scim check`` finds nothing to repair;
- the change feed (on unless ``--no-feed``), followed through the faults by a reader of ``GET /scim/v2/Changes``
  and read to its end once the settle horizon has passed the last write, holds exactly the events Entra's belief
  implies: 0 missing, 0 invented, 0 out of order per resource, no event twice (bench/feed_check.py says how a
  503'd request that may or may not have committed is judged without a false alarm);
- the change feed's queue (unless ``--no-queue``; Azurite's queue service behind a fault proxy of its own, on the
  same schedule), consumed the whole time, delivers the same: 0 missing, 0 invented, 0 out of order per resource
  (on first deliveries); an event delivered more than once is counted, not a violation (at least once).

Entra also re-sends some changes that already succeeded (as it does when an answer is lost): they must answer 2xx
and record nothing. It prints requests and failures by status, the fault schedule, and the verdict; the exit code is
0 only when the verdict is clean. See bench/README.md.
"""

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.feed_check import Expected, Verdict, judge, unique  # noqa: E402
from bench.queue_consumer import QueueConsumer, open_queue  # noqa: E402
from scim.consistency import check  # noqa: E402
from scim.local import azurite  # noqa: E402
from scim.settings import DEFAULT_TENANT  # noqa: E402
from scim.store.tables import TableStore  # noqa: E402
from tests.fault_proxy import Fault, FaultProxy  # noqa: E402
from tests.local_server import LocalServer  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
RESULTS_DIR = BENCH_DIR / "results"
RETRY_PAUSE = (0.5, 3.0)
"""Seconds a failed request waits before it is re-sent (Entra waits for its next cycle, 40 minutes)."""
RESEND_SHARE = 0.1
"""Share of successful changes sent once more, as Entra does when their answer was lost: each must record nothing."""
FEED_PAGE = 1000
FEED_POLL_SECONDS = 1.0
SETTLE_MARGIN_SECONDS = 2.0
"""Waited beyond the settle horizon: the server may still be finishing a request its client has given up on."""
QUEUE = "soak-changes"
LATE_DUPLICATE_SECONDS = 2.0
"""How long the queue is still consumed once every event has arrived, to count late duplicates."""
FAULTS: list[tuple[str, Fault, float]] = [
    ("flaky 10%", Fault("flaky", probability=0.10, faults=("drop", "reset", "cut")), 8.0),
    ("outage (refused)", Fault("refuse"), 4.0),
    ("flaky 30%", Fault("flaky", probability=0.30, faults=("drop", "reset", "cut", "respond")), 6.0),
    ("throttled (503 ServerBusy)", Fault("respond", status=503), 3.0),
    ("stall (black hole)", Fault("blackhole"), 3.0),
    ("healthy", Fault(), 6.0),
    ("long outage (refused, past the 20 s budget)", Fault("refuse"), 25.0),
    ("healthy", Fault(), 6.0),
]
"""The proxy's schedule, repeated until the run ends: (name, fault, seconds)."""


@dataclass
class Belief:
    """What Entra believes the endpoint holds, changed only by a 2xx."""

    user_ids: dict[int, str] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    active: dict[int, bool] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    group_ids: dict[int, str] = field(default_factory=dict)
    members: dict[int, set[int]] = field(default_factory=dict)


@dataclass
class Tally:
    """What Entra saw: answers by operation and status, violations, and the changes the feed must hold."""

    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    requests: int = 0
    resent: int = 0
    duplicates_sent: int = 0
    expected: list[Expected] = field(default_factory=list)
    last_answer: float = 0.0
    """Wall-clock second of the last answer (or failure) to any request: the last moment anything was stamped."""

    def violation(self, text: str) -> None:
        if len(self.violations) < 200:
            self.violations.append(text)


Operation = Callable[[], Awaitable[bool]]
"""One Entra operation; True when done (2xx, or an answer Entra accepts), False to re-send it later."""


class Entra:
    """The simulated provisioning service: its requests, its belief, and its rules for failures."""

    def __init__(self, http: httpx.AsyncClient, rng: random.Random) -> None:
        self.http = http
        self.rng = rng
        self.belief = Belief()
        self.tally = Tally()
        self.busy: set[tuple[str, int]] = set()
        """Resources with an operation in flight or awaiting a re-send: new changes leave them alone, so every claim
        is exclusive and an operation's belief update can never interleave with another's on the same resource."""
        self.claimed_at: dict[tuple[str, int], float] = {}
        """When the operation holding each busy resource was submitted: no attempt of it started earlier."""

    async def send(
        self,
        kind: str,
        method: str,
        url: str,
        http: httpx.AsyncClient | None = None,
        stamps: bool = True,
        **kwargs: Any,
    ) -> httpx.Response | None:
        """One request, counted and checked; ``stamps`` is False for a request that can record no change."""
        self.tally.requests += 1
        try:
            response = await (http or self.http).request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.tally.statuses[(kind, type(exc).__name__)] += 1
            return None
        finally:
            if stamps:
                self.tally.last_answer = time.time()
        self.tally.statuses[(kind, str(response.status_code))] += 1
        if response.status_code in (400, 500) or response.status_code > 503:
            self.tally.violation(f"{kind}: {response.status_code} {response.text[:300]}")
        if response.status_code >= 500 and not response.headers.get("Retry-After", "").isdigit():
            self.tally.violation(f"{kind}: {response.status_code} without Retry-After")
        return response

    def expect(self, claim: tuple[str, int], subject: str, kind: str, detail: str | frozenset[str] | None) -> None:
        """The one event an operation that just succeeded implies (see bench/feed_check.py)."""
        started = self.claimed_at[claim]
        self.tally.expected.append(Expected(subject, (kind, detail), started, time.monotonic()))

    async def resend(self, kind: str, method: str, url: str, **kwargs: Any) -> None:
        """Sometimes send a change that already succeeded once more: it must answer 2xx (404 for a delete) and record
        nothing; its own failure is harmless, since the change is made."""
        if self.rng.random() >= RESEND_SHARE:
            return
        self.tally.duplicates_sent += 1
        await self.send(f"{kind} (again)", method, url, **kwargs)

    def user_name(self, index: int, generation: int = 0) -> str:
        return f"soak{index}-{generation}@example.com"

    async def provision_user(self, index: int) -> bool:
        name = self.belief.names.setdefault(index, self.user_name(index))
        found = await self.send("lookup user", "GET", "/Users", params={"filter": f'userName eq "{name}"'})
        if found is None or found.status_code != 200:
            self._no_404(found, "lookup user")
            return False
        resources = found.json()["Resources"]
        if resources:  # an earlier attempt's POST committed though its answer was lost
            self._created_user(index, resources[0])
            return True
        body = {"schemas": [USER], "userName": name, "active": True, "externalId": f"ext-{index}"}
        created = await self.send("create user", "POST", "/Users", json=body)
        if created is not None and created.status_code == 201:
            self._created_user(index, created.json())
            return True
        return False  # 409: created by an earlier attempt whose answer was lost; the next lookup finds it

    def _created_user(self, index: int, document: dict[str, Any]) -> None:
        self.belief.user_ids[index] = document["id"]
        self.belief.active[index] = bool(document.get("active", True))
        version = document["meta"]["lastModified"]
        self.expect(("user", index), f"Users/{document['id']}", "scim.user.created", version)

    async def update_user(self, index: int, active: bool) -> bool:
        body = {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": active}]}
        url = f"/Users/{self.belief.user_ids[index]}"
        response = await self.send("update user", "PATCH", url, json=body)
        if response is not None and response.status_code == 200:
            self.belief.active[index] = active
            await self.resend("update user", "PATCH", url, json=body)
            kind = "scim.user.reactivated" if active else "scim.user.deactivated"
            self.expect(("user", index), url[1:], kind, response.json()["meta"]["lastModified"])
            return True
        self._no_404(response, "update user")
        return False

    async def rename_user(self, index: int, name: str) -> bool:
        body = {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "userName", "value": name}]}
        url = f"/Users/{self.belief.user_ids[index]}"
        response = await self.send("rename user", "PATCH", url, json=body)
        if response is not None and response.status_code == 200:
            self.belief.names[index] = name
            await self.resend("rename user", "PATCH", url, json=body)
            self.expect(("user", index), url[1:], "scim.user.updated", response.json()["meta"]["lastModified"])
            return True
        self._no_404(response, "rename user")
        return False

    async def delete_user(self, index: int) -> bool:
        user_id = self.belief.user_ids[index]
        response = await self.send("delete user", "DELETE", f"/Users/{user_id}")
        if response is None or response.status_code not in (204, 404):  # 404: an earlier attempt deleted it
            return False
        await self.resend("delete user", "DELETE", f"/Users/{user_id}")
        self.belief.deleted.add(index)
        for group, members in self.belief.members.items():
            if index in members:  # the user leaves its groups: one removal event on each
                members.discard(index)
                subject = f"Groups/{self.belief.group_ids[group]}"
                self.expect(("user", index), subject, "scim.group.members.removed", frozenset({user_id}))
        self.expect(("user", index), f"Users/{user_id}", "scim.user.deleted", None)
        return True

    async def provision_group(self, index: int) -> bool:
        name = f"Soak group {index}"
        query = {"filter": f'displayName eq "{name}"', "excludedAttributes": "members"}
        found = await self.send("lookup group", "GET", "/Groups", params=query)
        if found is None or found.status_code != 200:
            self._no_404(found, "lookup group")
            return False
        resources = found.json()["Resources"]
        if resources:
            self._created_group(index, resources[0])
            return True
        created = await self.send("create group", "POST", "/Groups", json={"schemas": [GROUP], "displayName": name})
        if created is not None and created.status_code == 201:
            self._created_group(index, created.json())
            return True
        return False

    def _created_group(self, index: int, document: dict[str, Any]) -> None:
        self.belief.group_ids[index] = document["id"]
        self.belief.members.setdefault(index, set())
        version = document["meta"]["lastModified"]
        self.expect(("group", index), f"Groups/{document['id']}", "scim.group.created", version)

    async def change_members(self, group: int, added: list[int], removed: list[int]) -> bool:
        operations: list[dict[str, Any]] = []
        if added:
            value = [{"value": self.belief.user_ids[i]} for i in added]
            operations.append({"op": "Add", "path": "members", "value": value})
        if removed:
            value = [{"value": self.belief.user_ids[i]} for i in removed]
            operations.append({"op": "Remove", "path": "members", "value": value})
        body = {"schemas": [PATCH], "Operations": operations}
        url = f"/Groups/{self.belief.group_ids[group]}"
        response = await self.send("member patch", "PATCH", url, json=body)
        if response is None or response.status_code != 204:
            self._no_404(response, "member patch")
            return False
        await self.resend("member patch", "PATCH", url, json=body)
        self.belief.members.setdefault(group, set()).update(added)
        self.belief.members[group].difference_update(removed)
        for kind, changed in (("added", added), ("removed", removed)):
            if changed:
                ids = frozenset(self.belief.user_ids[i] for i in changed)
                self.expect(("group", group), url[1:], f"scim.group.members.{kind}", ids)
        return True

    async def check_membership(self, group: int, user: int) -> bool:
        group_id, user_id = self.belief.group_ids[group], self.belief.user_ids[user]
        query = {"filter": f'id eq "{group_id}" and members[value eq "{user_id}"]', "excludedAttributes": "members"}
        response = await self.send("membership check", "GET", "/Groups", params=query)
        if response is None or response.status_code != 200:
            self._no_404(response, "membership check")
            return False
        expected = int(user in self.belief.members.get(group, set()))
        if response.json()["totalResults"] != expected:
            self.tally.violation(f"membership check of group {group}, user {user}: expected {expected}")
        return True

    def _no_404(self, response: httpx.Response | None, kind: str) -> None:
        if response is not None and response.status_code == 404:
            self.tally.violation(f"{kind}: 404 for something that exists: {response.text[:200]}")


class Run:
    """Workers, the queue of operations, and re-sends of failed ones."""

    def __init__(self, entra: Entra, concurrency: int) -> None:
        self.entra = entra
        self.concurrency = concurrency
        self.queue: asyncio.Queue[tuple[Operation, tuple[tuple[str, int], ...]]] = asyncio.Queue()
        self.pending = 0
        self.idle = asyncio.Event()

    def submit(self, operation: Operation, *resources: tuple[str, int]) -> None:
        self.entra.busy.update(resources)
        self.entra.claimed_at.update(dict.fromkeys(resources, time.monotonic()))
        self.pending += 1
        self.idle.clear()
        self.queue.put_nowait((operation, resources))

    async def worker(self) -> None:
        while True:
            operation, resources = await self.queue.get()
            if await operation():
                self.entra.busy.difference_update(resources)
                self.pending -= 1
                if not self.pending:
                    self.idle.set()
            else:
                self.entra.tally.resent += 1
                asyncio.get_running_loop().call_later(
                    self.entra.rng.uniform(*RETRY_PAUSE), self.queue.put_nowait, (operation, resources)
                )

    async def drain(self, seconds: float) -> bool:
        """Wait until every operation succeeded, re-sends included."""
        if self.pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.idle.wait(), seconds)
        return self.pending == 0


def incremental_change(entra: Entra, run: Run, users: int) -> bool:
    """One random change to resources nobody is working on, as Entra's incremental cycles send them; False when
    there was nothing free to change."""
    submitted = run.pending
    _change(entra, run, users)
    return run.pending > submitted


def _change(entra: Entra, run: Run, users: int) -> None:
    belief, rng = entra.belief, entra.rng
    live = [i for i in belief.user_ids if i not in belief.deleted and ("user", i) not in entra.busy]
    groups = [g for g in belief.group_ids if ("group", g) not in entra.busy]
    if not live or not groups:
        return
    user, group = rng.choice(live), rng.choice(groups)
    roll = rng.random()
    if roll < 0.25:
        active = not belief.active[user]
        run.submit(lambda: entra.update_user(user, active), ("user", user))
    elif roll < 0.35:
        name = entra.user_name(user, rng.randrange(1, 10**6))
        run.submit(lambda: entra.rename_user(user, name), ("user", user))
    elif roll < 0.40 and len(live) > users // 2:
        run.submit(lambda: entra.delete_user(user), ("user", user))  # only its own memberships change
    elif roll < 0.75:
        members = belief.members.get(group, set())
        free = [i for i in live if ("user", i) not in entra.busy]
        added = [i for i in rng.sample(free, min(len(free), rng.randint(1, 20))) if i not in members]
        present = sorted(i for i in members if ("user", i) not in entra.busy)
        removed = rng.sample(present, min(len(present), rng.randint(0, 5)))
        if added or removed:
            touched = [("user", i) for i in added + removed]
            run.submit(lambda: entra.change_members(group, added, removed), ("group", group), *touched)
    else:
        run.submit(lambda: entra.check_membership(group, user), ("group", group), ("user", user))


async def inject_faults(proxies: list[FaultProxy], stop: asyncio.Event, schedule: list[tuple[float, str]]) -> None:
    """Cycle the proxies (the storage account's services) through :data:`FAULTS` together until ``stop``; the
    switch itself blocks, so it runs in a thread."""
    started = time.monotonic()
    while not stop.is_set():
        for name, fault, seconds in FAULTS:
            if stop.is_set():
                break
            await asyncio.gather(*(asyncio.to_thread(proxy.set_fault, fault) for proxy in proxies))
            schedule.append((time.monotonic() - started, name))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)
    await asyncio.gather(*(asyncio.to_thread(proxy.heal) for proxy in proxies))


async def reconcile(entra: Entra, http: httpx.AsyncClient, versions: dict[str, str]) -> list[str]:
    """Where the endpoint differs from Entra's belief, read with faults off; ``versions`` receives each live user's
    ``meta.lastModified``, which the user's last event must carry."""
    belief, problems = entra.belief, []
    for index, user_id in sorted(belief.user_ids.items()):
        response = await http.get(f"/Users/{user_id}")
        if index in belief.deleted:
            if response.status_code != 404:
                problems.append(f"user {index} was deleted but answers {response.status_code}")
            continue
        if response.status_code != 200:
            problems.append(f"user {index} answers {response.status_code}")
            continue
        document = response.json()
        versions[f"Users/{user_id}"] = document["meta"]["lastModified"]
        if document["userName"] != belief.names[index] or document.get("active", True) != belief.active[index]:
            problems.append(f"user {index} holds {document['userName']}/{document.get('active')}")
        found = await http.get("/Users", params={"filter": f'userName eq "{belief.names[index]}"'})
        if [user["id"] for user in found.json()["Resources"]] != [user_id]:
            problems.append(f"user {index} is not the one match of its userName")
    for index, group_id in sorted(belief.group_ids.items()):
        response = await http.get(f"/Groups/{group_id}")
        held = {member["value"] for member in response.json().get("members", [])}
        expected = {belief.user_ids[i] for i in belief.members.get(index, set())}
        if held != expected:
            problems.append(f"group {index}: {len(held - expected)} extra, {len(expected - held)} missing members")
    return problems


class FeedReader:
    """A consumer of the pull feed: follows ``GET /scim/v2/Changes`` through the faults on a connection of its own,
    resuming from each page's ``next`` as a real consumer does; a failed page is simply read again."""

    def __init__(self, entra: Entra, http: httpx.AsyncClient) -> None:
        self.entra = entra
        self.http = http
        self.events: list[dict[str, Any]] = []
        self.after: str | None = None
        self.pages = 0

    async def page(self) -> int | None:
        """Read one page; the number of events on it, or None if the read failed."""
        params = {"limit": str(FEED_PAGE), **({"after": self.after} if self.after else {})}
        response = await self.entra.send("feed page", "GET", "/Changes", http=self.http, stamps=False, params=params)
        if response is None or response.status_code != 200:
            return None
        document = response.json()
        self.events.extend(document["events"])
        self.after = document["next"]
        self.pages += 1
        return len(document["events"])

    async def follow(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.page()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), FEED_POLL_SECONDS)

    async def read_to_end(self) -> None:
        """Read until a page comes back short: its ``next`` is the horizon, past every event there is."""
        while (count := await self.page()) is None or count == FEED_PAGE:
            if count is None:
                await asyncio.sleep(FEED_POLL_SECONDS)


async def settle_and_judge(
    args: argparse.Namespace,
    entra: Entra,
    reader: FeedReader,
    stop: asyncio.Event,
    follower: asyncio.Task[None],
    versions: dict[str, str],
) -> dict[str, Any]:
    """Wait until the feed's horizon has passed the last write, finish reading, and judge what was read."""
    wait = max(0.0, entra.tally.last_answer + args.settle + SETTLE_MARGIN_SECONDS - time.time())
    print(
        f"[feed] waiting {wait:.0f} s: the pull feed shows a change only once SCIM_CHANGE_FEED_SETTLE_SECONDS "
        f"({args.settle:g} s) have passed since it was stamped, and the last write was answered "
        f"{time.time() - entra.tally.last_answer:.0f} s ago (+{SETTLE_MARGIN_SECONDS:g} s margin)",
        flush=True,
    )
    await asyncio.sleep(wait)
    stop.set()
    await follower
    await reader.read_to_end()
    first, repeats = unique(reader.events)
    verdict = judge(entra.tally.expected, first, versions)
    verdict.duplicates = repeats
    return {"verdict": verdict, "pages": reader.pages, "waited": wait, "expected": len(entra.tally.expected)}


async def queue_verdict(
    args: argparse.Namespace,
    entra: Entra,
    consumer: QueueConsumer,
    stop: asyncio.Event,
    polling: asyncio.Task[None],
    feed_ids: set[str],
    versions: dict[str, str],
) -> dict[str, Any]:
    """Consume until every event the pull feed holds has arrived (a kick that failed leaves its events to the
    timer's sweep, once a minute), or ``--queue-wait`` passes; then judge first deliveries in arrival order."""
    started = time.monotonic()
    print(f"[queue] waiting up to {args.queue_wait:g} s for the {len(feed_ids)} events of the pull feed", flush=True)
    await consumer.until(lambda: feed_ids <= consumer.first.keys(), args.queue_wait)
    waited = time.monotonic() - started
    await asyncio.sleep(LATE_DUPLICATE_SECONDS)
    stop.set()
    await polling
    first, repeats = unique(delivery.event for delivery in consumer.deliveries)
    verdict = judge(entra.tally.expected, first, versions)
    verdict.duplicates = repeats
    return {"verdict": verdict, "messages": consumer.messages, "waited": waited, "failed": consumer.failed_receives}


async def soak(
    args: argparse.Namespace, base_url: str, token: str, proxies: list[FaultProxy], queue_connection: str | None
) -> tuple[Entra, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    client = {"base_url": base_url, "headers": headers, "timeout": 60, "trust_env": False}
    async with httpx.AsyncClient(limits=limits, **client) as http, httpx.AsyncClient(**client) as feed_http:
        entra = Entra(http, random.Random(args.seed))
        run = Run(entra, args.concurrency)
        workers = [asyncio.create_task(run.worker()) for _ in range(args.concurrency)]
        stop, schedule = asyncio.Event(), []
        faults = asyncio.create_task(inject_faults(proxies, stop, schedule))
        reader, stop_reading = FeedReader(entra, feed_http), asyncio.Event()
        follower = asyncio.create_task(reader.follow(stop_reading)) if args.feed else None
        consumer, stop_consuming = None, asyncio.Event()
        if queue_connection is not None:
            consumer = QueueConsumer(await open_queue(queue_connection, QUEUE))
            polling = asyncio.create_task(consumer.poll(stop_consuming))
        started = time.monotonic()
        for index in range(args.users):
            run.submit(lambda index=index: entra.provision_user(index), ("user", index))
        for index in range(args.groups):
            run.submit(lambda index=index: entra.provision_group(index), ("group", index))
        while time.monotonic() - started < args.seconds:
            if run.queue.qsize() < args.concurrency * 2 and incremental_change(entra, run, args.users):
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(0.01)
        stop.set()
        await faults
        faulted_seconds = time.monotonic() - started
        drained = await run.drain(args.drain_seconds)
        for worker in workers:
            worker.cancel()
        versions: dict[str, str] = {}
        problems = await reconcile(entra, http, versions) if drained else ["pending requests never succeeded"]
        feed = queued = None
        if follower is not None:
            if drained:
                feed = await settle_and_judge(args, entra, reader, stop_reading, follower, versions)
            else:
                follower.cancel()
        if consumer is not None:
            if feed is not None:
                feed_ids = {event["id"] for event in reader.events}
                queued = await queue_verdict(args, entra, consumer, stop_consuming, polling, feed_ids, versions)
            else:
                polling.cancel()
            await consumer.queue.close()
    summary = {
        "seconds": faulted_seconds,
        "schedule": schedule,
        "drained": drained,
        "problems": problems,
        "connections": [proxy.connections for proxy in proxies],
        "faulted": [proxy.faulted for proxy in proxies],
        "feed": feed,
        "queue": queued,
    }
    return entra, summary


async def invariants(connection_string: str, prefix: str) -> list[str]:
    store = TableStore.from_settings(connection_string, None, prefix)
    try:
        report = await check(store, [DEFAULT_TENANT])
    finally:
        await store.close()
    return [f"{finding.kind}: {finding.row_key} ({finding.detail})" for finding in report.findings]


def report(args: argparse.Namespace, entra: Entra, summary: dict[str, Any], findings: list[str]) -> int:
    tally = entra.tally
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(
        f"workload: {args.users} users, {args.groups} groups, concurrency {args.concurrency}, seed {args.seed}, "
        f"change feed {'on' if args.feed else 'off'}"
    )
    services = ("tables", "queue")
    connections = ", ".join(
        f"{service} {opened} (faulted {faulted})"
        for service, opened, faulted in zip(services, summary["connections"], summary["faulted"], strict=False)
    )
    connections = f"connections through the fault proxies: {connections}"
    print(f"faults for {summary['seconds']:.0f} s; {connections}")
    print("  schedule: " + ", ".join(f"{at:.0f}s {name}" for at, name in summary["schedule"][:12]) + " …")
    print(f"requests: {tally.requests}, re-sent operations: {tally.resent}")
    kinds = sorted({kind for kind, _ in tally.statuses})
    for kind in kinds:
        row = {status: count for (k, status), count in tally.statuses.items() if k == kind}
        print(f"  {kind:<17} " + "  ".join(f"{status}: {count}" for status, count in sorted(row.items())))
    by_status = Counter()
    for (_, status), count in tally.statuses.items():
        by_status[status] += count
    print("by status: " + "  ".join(f"{status}: {count}" for status, count in sorted(by_status.items())))
    print(f"violations (400, 5xx but 503, 404 for what exists, 5xx without Retry-After): {len(tally.violations)}")
    for line in tally.violations[:20]:
        print(f"  {line}")
    print(f"endpoint vs Entra's belief after the faults stopped: {len(summary['problems'])} differences")
    for line in summary["problems"][:20]:
        print(f"  {line}")
    print(f"python -m scim check: {len(findings)} findings")
    for line in findings[:20]:
        print(f"  {line}")
    feed_clean = report_feed(args, entra, summary["feed"])
    queue_clean = report_queue(args, summary["queue"], summary["feed"] is not None)
    clean = not tally.violations and not summary["problems"] and not findings and feed_clean and queue_clean
    print("verdict: " + ("CLEAN" if clean else "NOT CLEAN"))
    return 0 if clean else 1


def report_feed(args: argparse.Namespace, entra: Entra, feed: dict[str, Any] | None) -> bool:
    """Print the pull feed's verdict; True when it is clean (or the feed was not asked for)."""
    if not args.feed:
        print("change feed: off (--no-feed)")
        return True
    if feed is None:
        print("pull feed: not judged, operations were still pending")
        return False
    verdict: Verdict = feed["verdict"]
    print(
        f"pull feed (GET /scim/v2/Changes, followed through the faults, then read to the end after waiting "
        f"{feed['waited']:.0f} s for the {args.settle:g} s settle horizon): {verdict.events} events in "
        f"{feed['pages']} pages; Entra's belief implies {feed['expected']}; "
        f"{entra.tally.duplicates_sent} changes re-sent after success (no event expected)"
    )
    print_verdict(verdict, "delivered twice")
    return verdict.clean(duplicates_allowed=False)


def report_queue(args: argparse.Namespace, queued: dict[str, Any] | None, judged_feed: bool) -> bool:
    """Print the queue's verdict; True when it is clean (or the queue was not asked for)."""
    if not (args.feed and args.queue):
        print("queue: off (--no-queue)" if args.feed else "queue: off (no feed)")
        return True
    if queued is None:
        print("queue: not judged, " + ("operations were still pending" if not judged_feed else "no pull feed"))
        return False
    verdict: Verdict = queued["verdict"]
    print(
        f"queue ({QUEUE} on Azurite, its storage behind the same fault schedule; consumed the whole time, then "
        f"{queued['waited']:.0f} s after the pull feed was read): {verdict.events} distinct events in "
        f"{queued['messages']} messages ({queued['failed']} failed receives)"
    )
    print_verdict(verdict, "delivered more than once (allowed: at least once)")
    return verdict.clean(duplicates_allowed=True)


def print_verdict(verdict: Verdict, repeats: str) -> None:
    print(
        f"  per resource vs Entra's belief: missing {len(verdict.missing)}, invented {len(verdict.invented)}, "
        f"out of order {len(verdict.out_of_order)}; {repeats} {verdict.duplicates}; "
        f"users whose last event is not the version held {len(verdict.stale)}"
    )
    for name, lines in (
        ("missing", verdict.missing),
        ("invented", verdict.invented),
        ("out of order", verdict.out_of_order),
        ("stale", verdict.stale),
    ):
        for line in lines[:10]:
            print(f"  {name}: {line}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--groups", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120, help="how long faults are injected")
    parser.add_argument("--drain-seconds", type=float, default=120, help="time allowed to re-send after the faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-feed", dest="feed", action="store_false", help="run with SCIM_CHANGE_FEED off")
    parser.add_argument(
        "--settle", type=int, default=60, help="SCIM_CHANGE_FEED_SETTLE_SECONDS for the server (at least 60)"
    )
    parser.add_argument("--no-queue", dest="queue", action="store_false", help="the pull feed only, no publisher")
    parser.add_argument(
        "--queue-wait", type=float, default=150, help="seconds to wait for the queue to catch up with the pull feed"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    RESULTS_DIR.mkdir(exist_ok=True)
    azurite_port, queue_port = azurite.free_port(), azurite.free_port()
    storage, queues = azurite.start(azurite_port), azurite.start_queue(queue_port)
    prefix = f"soak{secrets.token_hex(4)}"
    try:
        with FaultProxy(azurite_port) as proxy, FaultProxy(queue_port) as queue_proxy:
            server = LocalServer(
                azurite.connection_string(proxy.port, queue_port=queue_proxy.port),
                prefix,
                (RESULTS_DIR / "soak-server.log").open("wb"),
            )
            server.env["SCIM_CHANGE_FEED"] = "on" if args.feed else "off"
            server.env["SCIM_CHANGE_FEED_SETTLE_SECONDS"] = str(args.settle)
            server.env["SCIM_CHANGE_FEED_QUEUE"] = QUEUE if args.queue else "off"
            direct = azurite.connection_string(azurite_port, queue_port=queue_port)
            try:
                server.start()
                consumed = direct if args.feed and args.queue else None
                entra, summary = asyncio.run(soak(args, server.base_url, server.token, [proxy, queue_proxy], consumed))
            finally:
                server.close()
        findings = asyncio.run(invariants(azurite.connection_string(azurite_port), prefix))
        return report(args, entra, summary, findings)
    finally:
        azurite.stop(queues)
        azurite.stop(storage)


if __name__ == "__main__":
    raise SystemExit(main())
