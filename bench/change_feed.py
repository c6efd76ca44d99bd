"""SCIM write throughput with the change feed off and on, and how fast the pull feed reads back what was written.

The handler layer (``scim.dispatch.ScimEndpoint``, what function_app.py calls) runs in this process against an
Azurite of its own, optionally behind a proxy that holds every storage request ``--delay`` seconds (a network hop to
Table Storage). ``--writers`` concurrent Entra-like sequences each create a user, PATCH its title, add it to a
group, deactivate it, remove it from the group and delete it. Rounds alternate off/on so that the machine's noise
hits both alike; the figures are the median round of each. Then the pull feed reads every event of the "on" rounds.

    .venv/bin/python bench/change_feed.py                       # 4 rounds of each, 8 writers, 25 sequences each
    .venv/bin/python bench/change_feed.py --delay 0.01 --rounds 6

All traffic goes to 127.0.0.1; Azurite is stopped on exit.
"""

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from scim.dispatch import ScimEndpoint  # noqa: E402
from scim.local import azurite  # noqa: E402
from scim.settings import Settings  # noqa: E402
from scim.store.tables import TableStore  # noqa: E402
from tests.conftest import Client  # noqa: E402
from tests.storage_traffic import TrafficProxy  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
WRITES_PER_SEQUENCE = 6


def client(store: TableStore, tenant: str, feed: bool) -> Client:
    token = secrets.token_urlsafe(24)
    settings = Settings(
        storage_connection_string="unused",
        storage_table_uri=None,
        bearer_tokens=((tenant, token),),
        change_feed=feed,
        change_feed_settle_seconds=0.0,
    )
    return Client(ScimEndpoint(settings, store), token)


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


async def round_(store: TableStore, feed: bool, writers: int, per_writer: int) -> tuple[float, str]:
    tenant = f"bench{secrets.token_hex(4)}"
    scim = client(store, tenant, feed)
    group = (await scim.call("POST", "Groups", {"schemas": [GROUP], "displayName": "Bench"})).document
    assert group is not None

    async def writer(w: int) -> None:
        for i in range(per_writer):
            await sequence(scim, group["id"], f"w{w}s{i}")

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - started
    return writers * per_writer * WRITES_PER_SEQUENCE / elapsed, tenant


async def read_all(store: TableStore, tenant: str) -> tuple[int, float]:
    started, count, after = time.perf_counter(), 0, None
    while True:
        found, after = await store.changes(tenant, after, 1000, 0.0)
        count += len(found)
        if len(found) < 1000:
            return count, time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    port = azurite.free_port()
    process = azurite.start(port)
    proxy = TrafficProxy(port, delay=args.delay) if args.delay else None
    try:
        if proxy:
            proxy.start()
        store = TableStore.from_settings(azurite.connection_string(proxy.port if proxy else port), None, "bench")
        rates: dict[bool, list[float]] = {False: [], True: []}
        tenants: list[str] = []
        await round_(store, False, 2, 2)  # warm: the table, the connection pool, imports
        for _ in range(args.rounds):
            for feed in (False, True):
                rate, tenant = await round_(store, feed, args.writers, args.sequences)
                rates[feed].append(rate)
                if feed:
                    tenants.append(tenant)
        events, seconds = 0, 0.0
        for tenant in tenants:
            count, took = await read_all(store, tenant)
            events, seconds = events + count, seconds + took
        await store.close()
    finally:
        if proxy:
            proxy.close()
        azurite.stop(process)
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    print(
        f"storage delay {args.delay * 1000:.0f} ms, {args.writers} writers x {args.sequences} sequences x 6 writes, "
        f"{args.rounds} rounds each"
    )
    print(f"SCIM writes/s  feed off: {off:8.1f}   feed on: {on:8.1f}   on/off ratio: {on / off:.3f}")
    print(f"  rounds off: {', '.join(f'{r:.1f}' for r in rates[False])}")
    print(f"  rounds on:  {', '.join(f'{r:.1f}' for r in rates[True])}")
    expected = args.rounds * (args.writers * args.sequences * WRITES_PER_SEQUENCE + 1)  # and each round's group
    print(f"pull feed: {events} events read (expected {expected}) at {events / seconds:.0f} events/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each storage request is held (0: direct)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--sequences", type=int, default=25)
    asyncio.run(main(parser.parse_args()))
