"""The change feed's queue publisher: how long after the SCIM answer an event is on the queue, and how many events
per second the publisher moves.

1. **Delay** (what a consumer of the queue sees): Azurite (tables and queues, in memory) ← ``python -m scim serve``
   (``SCIM_CHANGE_FEED=on``: each write kicks the in-process publisher) ← ``--writers`` Entra-like writers, paced
   together at ``--rate`` writes/s (0: as fast as they go), each sequence creating a user, PATCHing its title,
   adding it to a group, deactivating it, removing it from the group and deleting it. A consumer polls the queue
   the whole time (receive, decode, delete) and notes when each event arrived. Each event is matched to the answer
   of the write that recorded it, by what the answer said (the version for a user write, the member id for a member
   PATCH: bench/feed_check.py), and its delay is arrival - answer, both on this process's clock.
2. **Throughput** (the publisher alone): a backlog of ``--backlog`` sequences is written in process by an instance
   with no publisher of its own (its events wait in their pending rows), then one publisher pass
   (``scim.publisher.Publisher.publish``, what a kick or the timer sweep runs) moves it all to the queue:
   events/s, messages, events per message. The queue is then drained and must hold every event.

    .venv/bin/python bench/publisher.py                        # 20 writes/s for 30 s; a 300-sequence backlog
    .venv/bin/python bench/publisher.py --rate 0 --seconds 20 --backlog 100

All traffic goes to 127.0.0.1; Azurite and the server are stopped on exit. Figures only: nothing here is asserted
against a time, only that every event arrived.
"""

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.change_feed import WRITES_PER_SEQUENCE, sequence  # noqa: E402
from bench.feed_check import Key, event_key  # noqa: E402
from bench.queue_consumer import POLL_PAUSE_SECONDS, QueueConsumer, open_queue  # noqa: E402
from scim.dispatch import ScimEndpoint  # noqa: E402
from scim.local import azurite  # noqa: E402
from scim.publisher import Publisher  # noqa: E402
from scim.settings import Settings  # noqa: E402
from scim.store.event_queue import EventQueue  # noqa: E402
from scim.store.tables import TableStore  # noqa: E402
from tests.conftest import Client  # noqa: E402
from tests.local_server import LocalServer  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
QUEUE = "bench-changes"
RESULTS_DIR = BENCH_DIR / "results"


class Writers:
    """Entra-like writers over HTTP that note when each write was answered, under the key its event will carry."""

    def __init__(self, http: httpx.AsyncClient, rate: float) -> None:
        self.http = http
        self.rate = rate
        self.answered: dict[tuple[str, Key], float] = {}
        self.writes = 0
        self._next_slot = time.monotonic()

    async def _pace(self) -> None:
        """One global schedule of ``rate`` writes/s, shared by all writers."""
        if self.rate <= 0:
            return
        slot, self._next_slot = self._next_slot, max(self._next_slot, time.monotonic()) + 1 / self.rate
        await asyncio.sleep(max(0.0, slot - time.monotonic()))

    async def write(self, method: str, url: str, status: int, body: Any, key: Callable[[Any], Key] | None) -> Any:
        await self._pace()
        response = await self.http.request(method, url, json=body)
        answered = time.monotonic()
        assert response.status_code == status, response.text[:300]
        document = response.json() if response.content else None
        self.writes += 1
        if key is not None:
            subject = url.lstrip("/") if method != "POST" else f"{url.strip('/')}/{document['id']}"
            self.answered[(subject, key(document))] = answered
        return document

    async def sequence(self, group_id: str, name: str) -> None:
        def version(kind: str) -> Callable[[Any], Key]:
            return lambda document: (kind, document["meta"]["lastModified"])

        user = await self.write(
            "POST", "/Users", 201, {"schemas": [USER], "userName": name}, version("scim.user.created")
        )
        url, members = f"/Users/{user['id']}", f"/Groups/{group_id}"
        title = {"schemas": [PATCH], "Operations": [{"op": "add", "path": "title", "value": "Engineer"}]}
        await self.write("PATCH", url, 200, title, version("scim.user.updated"))
        added = {"schemas": [PATCH], "Operations": [{"op": "Add", "path": "members", "value": [{"value": user["id"]}]}]}
        await self.write("PATCH", members, 204, added, lambda _: ("scim.group.members.added", frozenset({user["id"]})))
        inactive = {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
        await self.write("PATCH", url, 200, inactive, version("scim.user.deactivated"))
        removed = {"schemas": [PATCH], "Operations": [{"op": "remove", "path": f'members[value eq "{user["id"]}"]'}]}
        await self.write(
            "PATCH", members, 204, removed, lambda _: ("scim.group.members.removed", frozenset({user["id"]}))
        )
        await self.write("DELETE", url, 204, None, lambda _: ("scim.user.deleted", None))


def arrivals(consumer: QueueConsumer) -> dict[tuple[str, Key], float]:
    """When each event first arrived, under the key of the write that recorded it."""
    first: dict[tuple[str, Key], float] = {}
    for delivery in consumer.deliveries:
        first.setdefault((delivery.event["subject"], event_key(delivery.event)), delivery.at)
    return first


async def measure_delay(args: argparse.Namespace, connection_string: str, server: LocalServer) -> dict[str, Any]:
    queue = await open_queue(connection_string, QUEUE)
    consumer, stop = QueueConsumer(queue), asyncio.Event()
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/scim+json"}
    limits = httpx.Limits(max_connections=args.writers, max_keepalive_connections=args.writers)
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=headers, timeout=60, limits=limits, trust_env=False
    ) as http:
        polling = asyncio.create_task(consumer.poll(stop))
        writers = Writers(http, args.rate)
        group = await writers.write("POST", "/Groups", 201, {"schemas": [GROUP], "displayName": "Bench"}, None)
        started = time.monotonic()

        async def writer(number: int) -> None:
            count = 0
            while time.monotonic() - started < args.seconds:
                await writers.sequence(group["id"], f"w{number}s{count}@example.com")
                count += 1

        await asyncio.gather(*(writer(w) for w in range(args.writers)))
        written = time.monotonic() - started
        await consumer.until(lambda: writers.answered.keys() <= arrivals(consumer).keys(), args.wait)
        await asyncio.sleep(1.0)  # late duplicates
        stop.set()
        await polling
    await queue.close()
    arrived = arrivals(consumer)
    delays = sorted((arrived[key] - answered) * 1000 for key, answered in writers.answered.items() if key in arrived)
    last = max(consumer.first.values(), default=started)
    return {
        "writes": writers.writes,
        "written_seconds": written,
        "expected": len(writers.answered),
        "arrived": len(delays),
        "events": len(consumer.first),
        "duplicates": consumer.duplicates,
        "messages": consumer.messages,
        "delays": delays,
        "through": len(consumer.first) / max(last - started, 1e-9),
    }


async def measure_throughput(args: argparse.Namespace, connection_string: str) -> dict[str, Any]:
    store = TableStore.from_settings(connection_string, None, f"pub{secrets.token_hex(3)}")
    tenant, token = f"bench{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    settings = Settings(
        storage_connection_string="unused",
        storage_table_uri=None,
        bearer_tokens=((tenant, token),),
        change_feed=True,
        change_feed_queue=QUEUE,
    )
    scim = Client(ScimEndpoint(settings, store), token)
    group = (await scim.call("POST", "Groups", {"schemas": [GROUP], "displayName": "Backlog"})).document
    assert group is not None

    async def writer(number: int) -> None:
        for i in range(number, args.backlog, args.writers):
            await sequence(scim, group["id"], f"b{i}")

    await asyncio.gather(*(writer(w) for w in range(args.writers)))
    backlog = args.backlog * WRITES_PER_SEQUENCE + 1
    queue = await open_queue(connection_string, QUEUE)
    publisher = Publisher(store, EventQueue.from_settings(connection_string, None, QUEUE))
    started, cpu = time.perf_counter(), time.process_time()
    report = await publisher.publish(tenant)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    consumer, stop = QueueConsumer(queue), asyncio.Event()
    draining = asyncio.create_task(consumer.poll(stop))
    await consumer.until(lambda: len(consumer.first) >= backlog, 60)
    stop.set()
    await draining
    await publisher.close()
    await queue.close()
    await store.close()
    return {
        "backlog": backlog,
        "sent": report.sent,
        "messages": report.messages,
        "seconds": seconds,
        "cpu_ms": cpu_seconds * 1000 / max(report.sent, 1),
        "drained": len(consumer.first),
        "duplicates": consumer.duplicates,
    }


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))] if values else float("nan")


def report(args: argparse.Namespace, delay: dict[str, Any], throughput: dict[str, Any]) -> int:
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"machine: {os.cpu_count()} CPUs, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    delays = delay["delays"]
    pace = f"{args.rate:g} writes/s" if args.rate > 0 else "unpaced"
    print(
        f"delay: {delay['writes']} writes in {delay['written_seconds']:.1f} s ({args.writers} writers, {pace}, "
        f"{delay['writes'] / delay['written_seconds']:.1f} writes/s answered); consumer polls every "
        f"{POLL_PAUSE_SECONDS * 1000:.0f} ms when the queue is empty"
    )
    print(
        f"  events matched to their answer: {delay['arrived']} of {delay['expected']}; "
        f"{delay['events']} events in {delay['messages']} messages "
        f"({delay['events'] / max(delay['messages'], 1):.1f} per message), {delay['duplicates']} delivered twice"
    )
    if delays:
        print(
            f"  SCIM answer → queue message, ms: p50 {statistics.median(delays):.0f}  p90 {percentile(delays, 0.9):.0f}"
            f"  p99 {percentile(delays, 0.99):.0f}  max {delays[-1]:.0f}"
        )
    print(f"  events on the queue per second, from the first write to the last arrival: {delay['through']:.1f}")
    print(
        f"throughput: one pass over a backlog of {throughput['backlog']} events sent {throughput['sent']} in "
        f"{throughput['messages']} messages in {throughput['seconds']:.2f} s: "
        f"{throughput['sent'] / throughput['seconds']:.0f} events/s, {throughput['cpu_ms']:.2f} CPU ms per event "
        f"(publisher process); queue then held {throughput['drained']} distinct events "
        f"({throughput['duplicates']} duplicates)"
    )
    complete = delay["arrived"] == delay["expected"] and throughput["drained"] == throughput["backlog"]
    print("every event arrived" if complete else "EVENTS MISSING from the queue")
    return 0 if complete else 1


async def run(args: argparse.Namespace, connection_string: str, server: LocalServer) -> int:
    delay = await measure_delay(args, connection_string, server)
    throughput = await measure_throughput(args, connection_string)
    return report(args, delay, throughput)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=20.0, help="writes/s for all writers together (0: unpaced)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the writers write")
    parser.add_argument("--wait", type=float, default=90.0, help="how long to wait for the last events (a sweep)")
    parser.add_argument("--backlog", type=int, default=300, help="sequences (6 events each) in the backlog")
    args = parser.parse_args()
    RESULTS_DIR.mkdir(exist_ok=True)
    port, queue_port = azurite.free_port(), azurite.free_port()
    tables, queues = azurite.start(port), azurite.start_queue(queue_port)
    connection_string = azurite.connection_string(port, queue_port=queue_port)
    server = LocalServer(
        connection_string, f"pub{secrets.token_hex(3)}", (RESULTS_DIR / "publisher-server.log").open("wb")
    )
    server.env.update({"SCIM_CHANGE_FEED": "on", "SCIM_CHANGE_FEED_QUEUE": QUEUE})
    try:
        server.start()
        return asyncio.run(run(args, connection_string, server))
    finally:
        server.close()
        azurite.stop(queues)
        azurite.stop(tables)


if __name__ == "__main__":
    raise SystemExit(main())
