"""Server CPU per ``userName`` lookup: our endpoint against the floor, a bare handler making the same storage calls.

Starts Azurite (in memory), ``python -m scim serve`` and ``bench/floor_server.py`` on the same table, creates
``--users`` users through our endpoint, then sends Entra's match (``GET /Users?filter=userName eq "…"``) to each
server in alternating rounds (so that the machine's noise falls on both alike) and reads each server's CPU time from
``/proc``. Prints CPU ms per lookup for each, the ratio, and client-side p50s. Every process it starts is stopped.

    .venv/bin/python bench/lookup_cpu.py                        # 8 rounds of 250 lookups each, concurrency 4
    .venv/bin/python bench/lookup_cpu.py --rounds 4 --per-round 500 --concurrency 1
"""

import argparse
import asyncio
import os
import secrets
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))

from scim.local import azurite  # noqa: E402
from tests.local_server import LocalServer  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def user_name(i: int) -> str:
    return f"cpu.user{i:05d}@contoso.example"


def user_body(i: int) -> dict:
    name = user_name(i)
    return {
        "schemas": [USER, ENTERPRISE],
        "externalId": name.split("@")[0],
        "userName": name,
        "active": True,
        "displayName": f"CPU User {i}",
        "emails": [{"primary": True, "type": "work", "value": name}],
        "name": {"givenName": "CPU", "familyName": f"User {i}"},
        ENTERPRISE: {"department": "Benchmarks"},
    }


async def lookups(client: httpx.AsyncClient, names: list[str], concurrency: int) -> list[float]:
    """Send one lookup per name, ``concurrency`` at a time; each must find exactly one user."""
    queue = list(reversed(names))
    latencies: list[float] = []

    async def worker() -> None:
        while queue:
            name = queue.pop()
            started = time.perf_counter()
            response = await client.get("/Users", params={"filter": f'userName eq "{name}"'})
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200 or response.json()["totalResults"] != 1:
                raise RuntimeError(f"lookup of {name}: {response.status_code} {response.text[:200]}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def run(args: argparse.Namespace, ours: LocalServer, floor_url: str, floor_pid: int) -> dict[str, dict]:
    assert ours.process is not None
    headers = {"Authorization": f"Bearer {ours.token}"}
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    results: dict[str, dict] = {"ours": {"cpu": 0.0, "n": 0, "lat": []}, "floor": {"cpu": 0.0, "n": 0, "lat": []}}
    async with (
        httpx.AsyncClient(base_url=ours.base_url, headers=headers, limits=limits, timeout=60) as our_client,
        httpx.AsyncClient(base_url=floor_url, headers=headers, limits=limits, timeout=60) as floor_client,
    ):
        semaphore = asyncio.Semaphore(8)

        async def create(i: int) -> None:
            async with semaphore:
                response = await our_client.post("/Users", json=user_body(i))
                if response.status_code != 201:
                    raise RuntimeError(f"create {i}: {response.status_code} {response.text[:200]}")

        print(f"[setup] {args.users} users", flush=True)
        await asyncio.gather(*(create(i) for i in range(args.users)))
        names = [user_name(i) for i in range(args.users)]
        servers = {"ours": (our_client, ours.process.pid), "floor": (floor_client, floor_pid)}
        for client, _ in servers.values():  # warm-up: connections, caches, lazily imported code
            await lookups(client, names[:100], args.concurrency)
        for round_number in range(args.rounds):
            batch = [names[(round_number * args.per_round + k) % len(names)] for k in range(args.per_round)]
            order = ("ours", "floor") if round_number % 2 == 0 else ("floor", "ours")
            for label in order:
                client, pid = servers[label]
                before = process_cpu(pid)
                latencies = await lookups(client, batch, args.concurrency)
                results[label]["cpu"] += process_cpu(pid) - before
                results[label]["n"] += len(batch)
                results[label]["lat"] += latencies
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=250)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    command = shlex.join([".venv/bin/python", "bench/lookup_cpu.py", *sys.argv[1:]])
    port = azurite.free_port()
    storage = azurite.start(port)
    prefix = f"cpu{secrets.token_hex(4)}"
    floor = None
    try:
        ours = LocalServer(azurite.connection_string(port), prefix)
        ours.start()
        floor_port = azurite.free_port()
        floor = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                str(BENCH_DIR / "floor_server.py"),
                "--port",
                str(floor_port),
                "--connection-string",
                azurite.connection_string(port),
                "--table",
                f"{prefix}Resources",
                "--token",
                ours.token,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        _wait_listening(floor_port)
        try:
            results = asyncio.run(run(args, ours, f"http://127.0.0.1:{floor_port}/scim/v2", floor.pid))
        finally:
            ours.close()
    finally:
        if floor is not None:
            floor.terminate()
            floor.wait(timeout=10)
        azurite.stop(storage)
    print()
    print(f"command: {command}")
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {args.rounds} alternating rounds of "
        f"{args.per_round} lookups per server, concurrency {args.concurrency}"
    )
    print()
    print("| server | lookups | CPU ms per lookup | p50 ms |")
    print("|---|---|---|---|")
    per_lookup = {}
    for label, result in results.items():
        per_lookup[label] = result["cpu"] * 1000 / result["n"]
        p50 = statistics.median(result["lat"]) * 1000
        print(f"| {label} | {result['n']} | {per_lookup[label]:.2f} | {p50:.1f} |")
    print()
    print(f"ours / floor CPU per lookup: {per_lookup['ours'] / per_lookup['floor']:.2f}x (target <= 1.3x)")
    return 0


def _wait_listening(port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the floor server did not listen on {port}")


if __name__ == "__main__":
    sys.exit(main())
