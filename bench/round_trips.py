"""Storage round trips per Entra operation, with a fixed network delay on every storage request.

On one machine Azurite answers in well under a millisecond; in Azure, Table Storage is a network hop away and what
Entra waits for is the number of *sequential* storage round trips. This benchmark puts a proxy
(``tests/storage_traffic.py``) between ``python -m scim serve`` and Azurite that holds every storage request
``--delay`` seconds (10 ms by default) and records each one, then sends each Entra operation ``--repeat`` times, one
at a time, and prints per operation: the storage requests it made, how many of them were sequential, its latency
(p50/p99, client side), the server's CPU per request, and the minimum the data model allows (bench/README.md says
why). The exit code is 1 if any request failed or any operation is above its minimum.

    .venv/bin/python bench/round_trips.py                  # 10 ms delay, 30 of each operation
    .venv/bin/python bench/round_trips.py --delay 0.02 --repeat 50 --json bench/results/round-trips.json

Every process it starts (Azurite, the server) is stopped on exit; all traffic goes to 127.0.0.1.
"""

import argparse
import asyncio
import json
import os
import secrets
import shlex
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))

from scim.local import azurite  # noqa: E402
from tests.local_server import LocalServer  # noqa: E402
from tests.storage_traffic import StorageCall, TrafficProxy, sequential  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"
MANY_GROUPS = 50
GROUP_SIZE = 100
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

MINIMUM: dict[str, tuple[int, int]] = {
    "userName match, user in 0 groups": (3, 2),
    "userName match, user in 50 groups": (3, 2),
    "GET /Users/{id}, user in 0 groups": (2, 1),
    "GET /Users/{id}, user in 50 groups": (2, 1),
    "POST /Users": (1, 1),
    'PATCH /Users/{id} active "False"': (3, 2),
    "PUT /Users/{id}": (3, 2),
    "DELETE /Users/{id}, user in 0 groups": (4, 3),
    "DELETE /Users/{id}, user in 50 groups": (5, 4),
    "POST /Groups with 100 members": (103, 3),
    "PATCH /Groups/{id} adding 100 members": (104, 2),
    "PATCH /Groups/{id} removing 100 members": (4, 2),
    "membership check": (2, 1),
    "GET /Groups/{id}?excludedAttributes=members": (1, 1),
}
"""Per operation: (storage requests, sequential round trips) that the data model needs; bench/README.md derives
each one."""


def user_body(name: str, display: str = "Bench User") -> dict[str, Any]:
    """An Entra-shaped user (core and enterprise schemas), as Entra's create sends it."""
    return {
        "schemas": [USER, ENTERPRISE],
        "externalId": name.split("@")[0],
        "userName": name,
        "active": True,
        "displayName": display,
        "emails": [{"primary": True, "type": "work", "value": name}],
        "name": {"givenName": "Bench", "familyName": "User"},
        ENTERPRISE: {"department": "Benchmarks"},
    }


def members_patch(op: str, ids: list[str]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": [{"op": op, "path": "members", "value": [{"value": i} for i in ids]}]}


@dataclass
class Request:
    method: str
    path: str
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)
    expect: int = 200


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    sequential: list[int] = field(default_factory=list)
    cpu_ms: float = 0.0
    errors: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        minimum = MINIMUM[self.name]
        ordered = sorted(self.latencies)
        return {
            "operation": self.name,
            "requests": _spread(self.requests),
            "sequential": _spread(self.sequential),
            "p50_ms": round(statistics.median(ordered) * 1000, 1) if ordered else None,
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1) if ordered else None,
            "server_cpu_ms": round(self.cpu_ms, 2),
            "minimum": f"{minimum[0]} / {minimum[1]}",
            "at_minimum": bool(self.requests)
            and max(self.requests) <= minimum[0]
            and max(self.sequential) <= minimum[1],
            "errors": len(self.errors),
        }


def _spread(values: list[int]) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Bench:
    def __init__(self, client: httpx.AsyncClient, proxy: TrafficProxy, server_pid: int, repeat: int) -> None:
        self.client = client
        self.proxy = proxy
        self.pid = server_pid
        self.repeat = repeat
        self.run_id = secrets.token_hex(3)

    def name(self, label: str) -> str:
        return f"{label}.{self.run_id}@bench.example"

    async def send(self, request: Request) -> httpx.Response:
        response = await self.client.request(
            request.method,
            request.path,
            json=request.body,
            params=request.params,
            headers={"Content-Type": SCIM_JSON} if request.body is not None else None,
        )
        if response.status_code != request.expect:
            raise RuntimeError(f"{request.method} {request.path}: {response.status_code} {response.text[:300]}")
        return response

    async def create_user(self, label: str) -> str:
        response = await self.send(Request("POST", "/Users", user_body(self.name(label)), expect=201))
        return str(response.json()["id"])

    async def create_group(self, label: str, members: list[str] = ()) -> str:  # type: ignore[assignment]
        body = {"schemas": [GROUP], "displayName": f"{label} {self.run_id}", "members": [{"value": m} for m in members]}
        response = await self.send(Request("POST", "/Groups", body, expect=201))
        return str(response.json()["id"])

    async def measure(self, name: str, requests: list[Request]) -> Result:
        """Send each request alone and attribute to it the storage calls made while it was in flight."""
        result = Result(name)
        cpu = process_cpu(self.pid)
        for request in requests:
            mark = self.proxy.mark()
            started = time.perf_counter()
            try:
                await self.send(request)
            except (RuntimeError, httpx.HTTPError) as exc:
                result.errors.append(str(exc))
                continue
            result.latencies.append(time.perf_counter() - started)
            calls: list[StorageCall] = self.proxy.since(mark)
            result.requests.append(len(calls))
            result.sequential.append(sequential(calls))
        result.cpu_ms = (process_cpu(self.pid) - cpu) * 1000 / max(len(requests), 1)
        return result


async def gather_limited(coroutines: list[Awaitable[Any]], limit: int = 8) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def run(coroutine: Awaitable[Any]) -> Any:
        async with semaphore:
            return await coroutine

    return await asyncio.gather(*(run(c) for c in coroutines))


async def run(bench: Bench, delay: float) -> list[Result]:
    n = bench.repeat
    print(f"[setup] users, {MANY_GROUPS} groups and their memberships (no delay)", flush=True)
    loner = await bench.create_user("loner")
    joiner = await bench.create_user("joiner")
    pool = await gather_limited([bench.create_user(f"pool{i:03d}") for i in range(GROUP_SIZE)])
    patched = await gather_limited([bench.create_user(f"patched{i:03d}") for i in range(n)])
    doomed_alone = await gather_limited([bench.create_user(f"gone{i:03d}") for i in range(n)])
    doomed_member = await gather_limited([bench.create_user(f"gonemember{i:03d}") for i in range(n)])
    many = await gather_limited([bench.create_group(f"Many {i:02d}", [joiner, *doomed_member]) for i in range(50)])
    big = await bench.create_group("Big", pool)
    empty = await gather_limited([bench.create_group(f"Empty {i:03d}") for i in range(n)])
    assert len(many) == MANY_GROUPS

    bench.proxy.delay = delay
    match = 'userName eq "{}"'
    put_body = [user_body(bench.name("loner"), display=f"Renamed {i}") for i in range(n)]
    check = {"filter": f'id eq "{big}" and members[value eq "{pool[0]}"]', "excludedAttributes": "members"}
    plan: list[tuple[str, Callable[[int], Request]]] = [
        (
            "userName match, user in 0 groups",
            lambda i: Request("GET", "/Users", params={"filter": match.format(bench.name("loner"))}),
        ),
        (
            "userName match, user in 50 groups",
            lambda i: Request("GET", "/Users", params={"filter": match.format(bench.name("joiner"))}),
        ),
        ("GET /Users/{id}, user in 0 groups", lambda i: Request("GET", f"/Users/{loner}")),
        ("GET /Users/{id}, user in 50 groups", lambda i: Request("GET", f"/Users/{joiner}")),
        ("POST /Users", lambda i: Request("POST", "/Users", user_body(bench.name(f"new{i:03d}")), expect=201)),
        (
            'PATCH /Users/{id} active "False"',
            lambda i: Request(
                "PATCH",
                f"/Users/{patched[i]}",
                {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]},
            ),
        ),
        ("PUT /Users/{id}", lambda i: Request("PUT", f"/Users/{loner}", put_body[i])),
        ("DELETE /Users/{id}, user in 0 groups", lambda i: Request("DELETE", f"/Users/{doomed_alone[i]}", expect=204)),
        (
            "DELETE /Users/{id}, user in 50 groups",
            lambda i: Request("DELETE", f"/Users/{doomed_member[i]}", expect=204),
        ),
        (
            "POST /Groups with 100 members",
            lambda i: Request(
                "POST",
                "/Groups",
                {"schemas": [GROUP], "displayName": f"New {i} {bench.run_id}", "members": [{"value": m} for m in pool]},
                expect=201,
            ),
        ),
        (
            "PATCH /Groups/{id} adding 100 members",
            lambda i: Request("PATCH", f"/Groups/{empty[i]}", members_patch("Add", pool), expect=204),
        ),
        (
            "PATCH /Groups/{id} removing 100 members",
            lambda i: Request("PATCH", f"/Groups/{empty[i]}", members_patch("Remove", pool), expect=204),
        ),
        ("membership check", lambda i: Request("GET", "/Groups", params=check)),
        (
            "GET /Groups/{id}?excludedAttributes=members",
            lambda i: Request("GET", f"/Groups/{big}", params={"excludedAttributes": "members"}),
        ),
    ]
    results = []
    for name, make in plan:
        print(f"[measure] {name}", flush=True)
        results.append(await bench.measure(name, [make(i) for i in range(n)]))
    return results


def report(results: list[Result], args: argparse.Namespace, command: str) -> int:
    rows = [result.row() for result in results]
    print()
    print(f"command: {command}")
    print(
        f"storage delay {args.delay * 1000:.0f} ms per request, {args.repeat} of each operation, one at a time; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print()
    header = ("operation", "storage requests", "sequential", "p50 ms", "p99 ms", "server CPU ms", "minimum req / seq")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        mark = "" if row["at_minimum"] else " (above)"
        cells = (
            row["operation"],
            row["requests"],
            row["sequential"],
            row["p50_ms"],
            row["p99_ms"],
            row["server_cpu_ms"],
            row["minimum"] + mark,
        )
        print("| " + " | ".join(str(c) for c in cells) + " |")
    failures = [(r.name, e) for r in results for e in r.errors]
    for name, error in failures[:5]:
        print(f"ERROR {name}: {error}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"command": command, "delay": args.delay, "rows": rows}, indent=2))
    return 1 if failures or not all(row["at_minimum"] for row in rows) else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=0.010, help="seconds added to every storage request")
    parser.add_argument("--repeat", type=int, default=30, help="requests of each operation")
    parser.add_argument("--json", help="also write the table as JSON here")
    return parser.parse_args()


async def main_async(args: argparse.Namespace, server: LocalServer, proxy: TrafficProxy) -> list[Result]:
    assert server.process is not None
    headers = {"Authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as client:
        return await run(Bench(client, proxy, server.process.pid, args.repeat), args.delay)


def main() -> int:
    args = parse_args()
    command = shlex.join([".venv/bin/python", "bench/round_trips.py", *sys.argv[1:]])
    port = azurite.free_port()
    storage = azurite.start(port)
    try:
        with TrafficProxy(port) as proxy:
            server = LocalServer(azurite.connection_string(proxy.port), f"rt{secrets.token_hex(4)}")
            server.start()
            try:
                results = asyncio.run(main_async(args, server, proxy))
            finally:
                server.close()
    finally:
        azurite.stop(storage)
    return report(results, args, command)


if __name__ == "__main__":
    sys.exit(main())
