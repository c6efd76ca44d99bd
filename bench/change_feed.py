"""SCIM write throughput with the change feed off, on, and on with its queue publisher, and how fast the pull feed
reads back what was written.

The handler layer (``scim.dispatch.ScimEndpoint``, what function_app.py calls) runs in this process against an
Azurite of its own (tables and queues), optionally behind proxies that hold every storage request ``--delay``
seconds (a network hop to Table Storage). ``--writers`` concurrent Entra-like sequences each create a user, PATCH its
title, add it to a group, deactivate it, remove it from the group and delete it. The three modes take turns, each
round on a fresh tenant, the order rotating, so that the machine's noise hits all alike: "off", "on" (the event
rows only: the pull feed, ``SCIM_CHANGE_FEED_QUEUE=off``), and "queue" (as deployed by default: each event also has
its pending row, and each write kicks the in-process publisher, which sends to Azurite's queue in the background
while the writers go on; what it has left when the round's writes are done is awaited outside the timing). The
figures are the median round of each, and the median of the ratios of each round to the "off" round of the same
turn.
Because other processes steal whole rounds on a shared machine, it also prints CPU milliseconds per write, which
they cannot inflate: this process's (the handler layer, the SDK and the client, from ``time.process_time``) and
Azurite's (from /proc). Then the pull feed reads every event of the "on" rounds.

    .venv/bin/python bench/change_feed.py                       # 4 rounds of each, 8 writers, 25 sequences each
    .venv/bin/python bench/change_feed.py --delay 0.01 --rounds 6

All traffic goes to 127.0.0.1; Azurite is stopped on exit.
"""

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.entra_cycle import process_cpu  # noqa: E402
from scim.dispatch import ScimEndpoint  # noqa: E402
from scim.local import azurite  # noqa: E402
from scim.settings import Settings  # noqa: E402
from scim.store.event_queue import EventQueue  # noqa: E402
from scim.store.tables import TableStore  # noqa: E402
from tests.conftest import Client  # noqa: E402
from tests.storage_traffic import TrafficProxy  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
WRITES_PER_SEQUENCE = 6
MODES = ("off", "on", "queue")
QUEUE = "bench-feed"


def client(store: TableStore, tenant: str, feed: bool, events: EventQueue | None = None) -> Client:
    """With ``events``, the feed as deployed with a queue; without, the pull feed only (no pending rows)."""
    token = secrets.token_urlsafe(24)
    settings = Settings(
        storage_connection_string="unused",
        storage_table_uri=None,
        bearer_tokens=((tenant, token),),
        change_feed=feed,
        change_feed_settle_seconds=0.0,
        change_feed_queue=QUEUE if events is not None else "",
    )
    return Client(ScimEndpoint(settings, store, events), token)


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


async def check(call: Any, status: int) -> None:
    response = await call
    assert response.status == status, response.document


async def sequence(scim: Client, group_id: str, name: str) -> None:
    user = await scim.create_user(f"{name}@example.com")
    url, members = f"Users/{user['id']}", f"Groups/{group_id}"
    await check(scim.call("PATCH", url, patch({"op": "add", "path": "title", "value": "Engineer"})), 200)
    await check(
        scim.call("PATCH", members, patch({"op": "Add", "path": "members", "value": [{"value": user["id"]}]})), 204
    )
    await check(scim.call("PATCH", url, patch({"op": "Replace", "path": "active", "value": "False"})), 200)
    await check(scim.call("PATCH", members, patch({"op": "remove", "path": f'members[value eq "{user["id"]}"]'})), 204)
    await check(scim.call("DELETE", url), 204)


@dataclass(frozen=True)
class Round:
    """One round's throughput and the CPU it cost per write, in this process and in Azurite (tables and queues)."""

    rate: float
    cpu_ms: float
    storage_cpu_ms: float
    tenant: str


async def round_(
    store: TableStore, mode: str, writers: int, per_writer: int, storage_pids: tuple[int, ...], events: EventQueue
) -> Round:
    tenant = f"bench{secrets.token_hex(4)}"
    scim = client(store, tenant, mode != "off", events if mode == "queue" else None)
    group = (await scim.call("POST", "Groups", {"schemas": [GROUP], "displayName": "Bench"})).document
    assert group is not None

    async def writer(w: int) -> None:
        for i in range(per_writer):
            await sequence(scim, group["id"], f"w{w}s{i}")

    started, cpu, storage_cpu = time.perf_counter(), time.process_time(), sum(map(process_cpu, storage_pids))
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - started
    writes = writers * per_writer * WRITES_PER_SEQUENCE
    cpu_ms = (time.process_time() - cpu) * 1000 / writes
    storage_cpu_ms = (sum(map(process_cpu, storage_pids)) - storage_cpu) * 1000 / writes
    if scim.endpoint.publisher is not None:
        await scim.endpoint.publisher.idle()  # its last pass, outside the timing; the next round starts quiet
        await scim.endpoint.close_publisher()
    return Round(writes / elapsed, cpu_ms, storage_cpu_ms, tenant)


async def read_all(store: TableStore, tenant: str) -> tuple[int, float]:
    started, count, after = time.perf_counter(), 0, None
    while True:
        found, after = await store.changes(tenant, after, 1000, 0.0)
        count += len(found)
        if len(found) < 1000:
            return count, time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    port, queue_port = azurite.free_port(), azurite.free_port()
    process, queues = azurite.start(port), azurite.start_queue(queue_port)
    proxies = [TrafficProxy(port, delay=args.delay), TrafficProxy(queue_port, delay=args.delay)] if args.delay else []
    try:
        for proxy in proxies:
            proxy.start()
        ports = (proxies[0].port, proxies[1].port) if proxies else (port, queue_port)
        connection_string = azurite.connection_string(ports[0], queue_port=ports[1])
        store = TableStore.from_settings(connection_string, None, "bench")
        queue = EventQueue.from_settings(connection_string, None, QUEUE)
        rounds: dict[str, list[Round]] = {mode: [] for mode in MODES}
        await round_(
            store, "queue", 2, 2, (process.pid, queues.pid), queue
        )  # warm: the table, the queue, the pools, imports
        for number in range(args.rounds):
            for mode in MODES[number % 3 :] + MODES[: number % 3]:
                rounds[mode].append(
                    await round_(store, mode, args.writers, args.sequences, (process.pid, queues.pid), queue)
                )
        events, seconds = 0, 0.0
        for tenant in (r.tenant for r in rounds["on"]):
            count, took = await read_all(store, tenant)
            events, seconds = events + count, seconds + took
        messages = (await queue.client.get_queue_properties()).approximate_message_count
        await queue.close()
        await store.close()
    finally:
        for proxy in proxies:
            proxy.close()
        azurite.stop(queues)
        azurite.stop(process)
    report(args, rounds)
    expected = args.rounds * (args.writers * args.sequences * WRITES_PER_SEQUENCE + 1)  # and each round's group
    print(f"pull feed: {events} events read (expected {expected}) at {events / seconds:.0f} events/s")
    print(f'queue: {messages} messages published in the "queue" rounds (bench/publisher.py checks their content)')


def report(args: argparse.Namespace, rounds: dict[str, list[Round]]) -> None:
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"machine: {os.cpu_count()} CPUs, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"storage delay {args.delay * 1000:.0f} ms, {args.writers} writers x {args.sequences} sequences x 6 writes, "
        f"{args.rounds} rounds each (the order rotating)"
    )
    off = rounds["off"]
    base = statistics.median(r.rate for r in off)
    base_cpu = statistics.median(r.cpu_ms for r in off)
    base_storage = statistics.median(r.storage_cpu_ms for r in off)
    for mode in MODES:
        done = rounds[mode]
        rate = statistics.median(r.rate for r in done)
        pairs = statistics.median(b.rate / a.rate for a, b in zip(off, done, strict=True))
        cpu, storage = statistics.median(r.cpu_ms for r in done), statistics.median(r.storage_cpu_ms for r in done)
        print(
            f"feed {mode:<5}  writes/s {rate:7.1f} (rounds {', '.join(f'{r.rate:.1f}' for r in done)})  "
            f"/off {rate / base:.3f} (same turn's off round {pairs:.3f})  CPU ms per write: this process {cpu:.2f} "
            f"(off/this {base_cpu / cpu:.3f}), Azurite {storage:.2f} (off/this {base_storage / storage:.3f})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each storage request is held (0: direct)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--sequences", type=int, default=25)
    asyncio.run(main(parser.parse_args()))
