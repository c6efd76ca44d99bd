"""``eq`` filters on a configured matching attribute (SCIM_INDEXED_ATTRIBUTES) at two tenant sizes, indexed vs
scanned, and the rate of ``python -m scim reindex`` on Azurite.

Two tenants are filled through the handler layer (in process, no HTTP: the figures are the endpoint's and the
store's, not a client's) with users carrying an enterprise ``employeeNumber`` and a custom extension attribute,
written without the setting, as on a deployment that adds it later. Then, per tenant:

1. ``eq`` on each attribute without the setting (every filter scans the tenant);
2. ``reindex`` builds the rows (users/s);
3. ``eq`` on each attribute with the setting (prefix reads of the index), and, as the control, ``userName eq`` on
   the same tenants in the same turns (a point read of its unique index row).

It prints p50/p99 latency per case and the large ÷ small ratio, and for the indexed cases the CPU this process
spends per lookup (the endpoint and the SDK; Azurite is another process) and the storage calls per lookup: the
part of the latency that is our code's, which must not grow with the tenant, apart from what Azurite takes to
answer the same calls (``bench/azurite_query_cost.py`` measures that part alone). Azurite runs in memory on a
free port; all traffic goes to 127.0.0.1.
Usage: ``.venv/bin/python bench/indexed_filter.py [--small 1000] [--large 20000]``.
"""

import argparse
import asyncio
import math
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scim import indexes, reindex
from scim.dispatch import ScimEndpoint
from scim.local import azurite
from scim.messages import ScimRequest
from scim.settings import Settings
from scim.store.contract import StoreUnavailable
from scim.store.tables import TableStore

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
ATTRIBUTES = {"employeeNumber": f"{ENTERPRISE}:employeeNumber", "custom": f"{CUSTOM}:CustomAttribute"}
CONTROL = "userName"
"""Answered by a point read of its unique index row since the start: the same tenants' baseline."""
BASE = "http://127.0.0.1/scim/v2"


class BudgetExceeded(Exception):
    """The endpoint answered 503: the request needed more than its storage budget."""


class Caller:
    def __init__(self, store: TableStore, tenant: str, listed: str) -> None:
        self.token = secrets.token_urlsafe(24)
        settings = Settings("unused", None, ((tenant, self.token),), indexed_attributes=listed)
        self.endpoint = ScimEndpoint(settings, store)

    async def call(self, method: str, endpoint: str, body: bytes = b"", query: dict[str, str] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/scim+json"}
        request = ScimRequest(method, endpoint, None, query or {}, headers, body, BASE)
        response = await self.endpoint.handle(request)
        if response.status == 503:
            raise BudgetExceeded()
        assert response.status in (200, 201), response.document
        return response.document


async def fill(caller: Caller, count: int, concurrency: int) -> None:
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            body = (
                f'{{"schemas":["{USER}"],"userName":"u{i}@contoso.com",'
                f'"{ENTERPRISE}":{{"employeeNumber":"{i}"}},"{CUSTOM}":{{"CustomAttribute":"c{i}"}}}}'
            )
            await caller.call("POST", "Users", body.encode())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class StorageCalls:
    """Counts the store's point reads and range queries (one page each here) by wrapping the store's own methods
    on this one instance, so that a lookup's storage work is counted without a proxy."""

    def __init__(self, store: TableStore) -> None:
        self.point_reads = 0
        self.range_queries = 0
        point_read, range_query = store.point_read, store.range

        async def counted_point_read(*args: Any, **kwargs: Any) -> Any:
            self.point_reads += 1
            return await point_read(*args, **kwargs)

        def counted_range(*args: Any, **kwargs: Any) -> Any:
            self.range_queries += 1
            return range_query(*args, **kwargs)

        store.point_read = counted_point_read  # type: ignore[method-assign]
        store.range = counted_range  # type: ignore[method-assign]


def filter_text(attribute: str, i: int) -> str:
    if attribute == CONTROL:
        return f'userName eq "u{i}@contoso.com"'
    value = str(i) if attribute == "employeeNumber" else f"c{i}"
    return f'{ATTRIBUTES[attribute]} eq "{value}"'


async def latencies(
    caller: Caller, attribute: str, size: int, samples: int, cpu: list[float] | None = None
) -> list[float]:
    """Wall milliseconds per filter; with ``cpu``, this process's CPU milliseconds per filter are appended to it."""
    taken = []
    for _ in range(samples):
        text = filter_text(attribute, secrets.randbelow(size))
        started, cpu_started = time.perf_counter(), time.process_time()
        found = await caller.call("GET", "Users", query={"filter": text})
        taken.append((time.perf_counter() - started) * 1000)
        if cpu is not None:
            cpu.append((time.process_time() - cpu_started) * 1000)
        assert found["totalResults"] == 1, found
    return taken


def summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def run(args: argparse.Namespace) -> None:
    port = azurite.free_port()
    process = azurite.start(port)
    store = TableStore.from_settings(azurite.connection_string(port), None, f"bench{secrets.token_hex(3)}")
    listed = ",".join(ATTRIBUTES.values())
    indexed = indexes.parse(listed)
    results: dict[tuple[str, str, int], tuple[float, float]] = {}
    cpu: dict[tuple[str, int], float] = {}
    calls: dict[tuple[str, int], tuple[float, float]] = {}
    rates: dict[int, float] = {}
    resumed: dict[int, int] = {}
    sizes = (args.small, args.large)
    try:
        for size in sizes:
            started = time.perf_counter()
            await fill(Caller(store, f"bench{size}", ""), size, args.concurrency)
            print(f"{size} users written in {time.perf_counter() - started:.0f} s", flush=True)
        plain = {size: Caller(store, f"bench{size}", "") for size in sizes}
        configured = {size: Caller(store, f"bench{size}", listed) for size in sizes}
        for attribute in ATTRIBUTES:
            for size in sizes:
                try:
                    taken = await latencies(plain[size], attribute, size, args.scan_samples)
                except BudgetExceeded:  # the scan outlasted the request's 20 s storage budget: a 503
                    taken = [math.inf]
                results[("scan", attribute, size)] = summary(taken)
        for size in sizes:
            started = time.perf_counter()
            while True:
                try:
                    await reindex.reindex(store, indexed, [f"bench{size}"])
                    break
                except StoreUnavailable:  # a storage call outlasted its budget: run it again, as an operator would
                    resumed[size] = resumed.get(size, 0) + 1
            rates[size] = size / (time.perf_counter() - started)
        counter = StorageCalls(store)
        for attribute in (*ATTRIBUTES, CONTROL):  # both sizes in turns: both see the same table and the same noise
            taken_by_size: dict[int, list[float]] = {size: [] for size in sizes}
            cpu_by_size: dict[int, list[float]] = {size: [] for size in sizes}
            for size in sizes:
                await latencies(configured[size], attribute, size, 5)  # warm: the ready row is read once
            for size in sizes:  # storage calls of 10 lookups, the ready row already known
                before = counter.point_reads, counter.range_queries
                await latencies(configured[size], attribute, size, 10)
                after = counter.point_reads, counter.range_queries
                calls[(attribute, size)] = ((after[0] - before[0]) / 10, (after[1] - before[1]) / 10)
            for _ in range(args.samples // 10):
                for size in sizes:
                    taken_by_size[size] += await latencies(configured[size], attribute, size, 10, cpu_by_size[size])
            for size in sizes:
                results[("index", attribute, size)] = summary(taken_by_size[size])
                cpu[(attribute, size)] = statistics.median(cpu_by_size[size])
    finally:
        await store.close()
        azurite.stop(process)
    print("\n| eq filter on | users | indexed p50 / p99 ms | scanned p50 / p99 ms |")
    print("|---|---|---|---|")
    for attribute in ATTRIBUTES:
        for size in (args.small, args.large):
            index, scan = results[("index", attribute, size)], results[("scan", attribute, size)]
            scanned = "503 (over the 20 s budget)" if math.isinf(scan[0]) else f"{scan[0]:.0f} / {scan[1]:.0f}"
            print(f"| {attribute} | {size:,} | {index[0]:.1f} / {index[1]:.1f} | {scanned} |")
    print("\n| eq filter on | indexed p50 ratio (large ÷ small) | scanned p50 ratio |")
    print("|---|---|---|")
    for attribute in ATTRIBUTES:
        index = results[("index", attribute, args.large)][0] / results[("index", attribute, args.small)][0]
        scan = results[("scan", attribute, args.large)][0] / results[("scan", attribute, args.small)][0]
        print(f"| {attribute} | {index:.2f} | {scan:.1f} |")
    print("\n| eq filter (indexed) | users | p50 / p99 ms | our CPU ms per lookup, p50 | point reads + range queries |")
    print("|---|---|---|---|---|")
    for attribute in (*ATTRIBUTES, CONTROL):
        for size in sizes:
            index = results[("index", attribute, size)]
            reads, ranges = calls[(attribute, size)]
            print(
                f"| {attribute} | {size:,} | {index[0]:.1f} / {index[1]:.1f} | {cpu[(attribute, size)]:.2f} | "
                f"{reads:g} + {ranges:g} |"
            )
    print("\n| eq filter (indexed) | latency p50 ratio (large ÷ small) | our CPU ratio |")
    print("|---|---|---|")
    for attribute in (*ATTRIBUTES, CONTROL):
        latency = results[("index", attribute, args.large)][0] / results[("index", attribute, args.small)][0]
        own = cpu[(attribute, args.large)] / cpu[(attribute, args.small)]
        print(f"| {attribute} | {latency:.2f} | {own:.2f} |")
    print("\nreindex: " + ", ".join(f"{size:,} users at {rate:.0f} users/s" for size, rate in rates.items()))
    if resumed:
        print("reindex runs that stopped on a storage timeout and were resumed: " + str(resumed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=20000)
    parser.add_argument("--samples", type=int, default=200, help="indexed filters timed per case")
    parser.add_argument("--scan-samples", type=int, default=5, help="scanned filters timed per case")
    parser.add_argument("--concurrency", type=int, default=8)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
