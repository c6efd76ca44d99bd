"""Where the time of an indexed lookup goes on Azurite: a point read vs a one-prefix RowKey range query, as the
target partition grows at a fixed table size and as the table grows (other tenants' rows) at a fixed partition size.

``bench/indexed_filter.py`` found the indexed ``eq`` filter 2.3 times slower at 20,000 users than at 1,000 although it
reads one key range and one user either way. This control separates the two candidate causes at the store level,
through the same ``TableStore.point_read`` / ``TableStore.range`` the endpoint uses:

1. a small partition (``--small`` rows) and a large one (``--large`` rows) in one table: same table, different
   partition sizes;
2. then ``--others`` rows of a third partition are added: same partitions, a bigger table.

Each case times a point read of an existing row and a range query ``PartitionKey eq p and RowKey ge lo and RowKey lt
hi`` that returns exactly one row (an index prefix). Rows look like index rows (``ix:<hash>:<id>`` + ``resourceId``).
Azurite runs in memory on a free port; all traffic goes to 127.0.0.1. Usage:
``.venv/bin/python bench/azurite_query_cost.py [--small 1000] [--large 20000] [--others 20000]``.
"""

import argparse
import asyncio
import hashlib
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from azure.core.exceptions import ServiceResponseTimeoutError

from scim.local import azurite
from scim.store import keys
from scim.store.tables import TableStore


def row_key(i: int) -> str:
    return f"ix:a0:{hashlib.sha256(str(i).encode()).hexdigest()}:{i:032x}"


async def fill(store: TableStore, partition: str, count: int, concurrency: int = 8) -> None:
    """``count`` index-like rows in transactions of 4, as the endpoint writes a user with its index rows: Azurite
    takes longer than a storage call's timeout for a 100-row transaction into a partition of tens of thousands."""
    table = await store.table_client()
    chunks = iter(range(0, count, 4))

    async def worker() -> None:
        for start in chunks:
            operations = [
                ("upsert", {"PartitionKey": partition, "RowKey": row_key(i), "resourceId": f"{i:032x}"})
                for i in range(start, min(count, start + 4))
            ]
            for attempt in range(5):  # upserts: a transaction that timed out may be sent again
                try:
                    await table.submit_transaction(operations)
                    break
                except ServiceResponseTimeoutError:
                    if attempt == 4:
                        raise

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def measure(store: TableStore, partitions: dict[str, int], samples: int) -> dict[str, tuple[float, float]]:
    """Per partition: (point read, one-row range query) median ms on random existing rows, the partitions and the
    two kinds of call taking turns in rounds of 10, so that all of them see the same noise."""

    async def point(partition: str, size: int) -> None:
        assert await store.point_read(partition, row_key(secrets.randbelow(size))) is not None

    async def prefix(partition: str, size: int) -> None:
        prefix = row_key(secrets.randbelow(size)).rsplit(":", 1)[0] + ":"
        found = [row async for row in store.range(partition, prefix, keys.prefix_upper_bound(prefix), ["resourceId"])]
        assert len(found) == 1

    calls: dict[str, Callable[[str, int], Awaitable[None]]] = {"point": point, "prefix": prefix}
    taken: dict[tuple[str, str], list[float]] = {(p, kind): [] for p in partitions for kind in calls}
    for round_ in range(samples // 10 + 1):
        for partition, size in partitions.items():
            for kind, call in calls.items():
                for _ in range(10):
                    started = time.perf_counter()
                    await call(partition, size)
                    if round_:  # the first round warms up
                        taken[(partition, kind)].append((time.perf_counter() - started) * 1000)
    return {p: (statistics.median(taken[(p, "point")]), statistics.median(taken[(p, "prefix")])) for p in partitions}


async def run(args: argparse.Namespace) -> None:
    port = azurite.free_port()
    process = azurite.start(port)
    store = TableStore.from_settings(azurite.connection_string(port), None, f"cost{secrets.token_hex(3)}")
    small, large, others = "small:User", "large:User", "others:User"
    results: list[tuple[str, int, str, int, float, float]] = []
    try:
        started = time.perf_counter()
        await fill(store, small, args.small)
        await fill(store, large, args.large)
        print(f"{args.small + args.large:,} rows written in {time.perf_counter() - started:.0f} s", flush=True)
        table_rows = args.small + args.large
        sizes = {small: args.small, large: args.large}
        for partition, (point, prefix) in (await measure(store, sizes, args.samples)).items():
            results.append(("1", table_rows, partition, sizes[partition], point, prefix))
        started = time.perf_counter()
        await fill(store, others, args.others)
        print(f"{args.others:,} other rows written in {time.perf_counter() - started:.0f} s", flush=True)
        table_rows += args.others
        for partition, (point, prefix) in (await measure(store, sizes, args.samples)).items():
            results.append(("2", table_rows, partition, sizes[partition], point, prefix))
    finally:
        await store.close()
        azurite.stop(process)
    print("\n| step | rows in table | partition rows | point read p50 ms | one-row range query p50 ms |")
    print("|---|---|---|---|---|")
    for step, table_rows, _, size, point, prefix in results:
        print(f"| {step} | {table_rows:,} | {size:,} | {point:.2f} | {prefix:.2f} |")
    by = {(step, size): (point, prefix) for step, _, _, size, point, prefix in results}
    print("\nratios, p50 (point read, range query):")
    for label, a, b in (
        (f"partition {args.large:,} ÷ {args.small:,} rows, same table (step 1)", ("1", args.large), ("1", args.small)),
        (f"table grown by {args.others:,} rows, {args.small:,}-row partition", ("2", args.small), ("1", args.small)),
        (f"table grown by {args.others:,} rows, {args.large:,}-row partition", ("2", args.large), ("1", args.large)),
    ):
        print(f"- {label}: {by[a][0] / by[b][0]:.2f}, {by[a][1] / by[b][1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000, help="rows in the small partition")
    parser.add_argument("--large", type=int, default=20000, help="rows in the large partition")
    parser.add_argument("--others", type=int, default=20000, help="rows of another partition added in step 2")
    parser.add_argument("--samples", type=int, default=100, help="timed calls per case")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
