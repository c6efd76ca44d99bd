"""One tenant's costliest requests against another tenant's latency, on one ``python -m scim serve`` instance.

The victim tenant sends Entra's most frequent request, ``GET /Users?filter=userName eq "…"``, one at a time; its
p50/p99 are measured alone, then while ``--attackers`` clients of another tenant send the costliest requests the
endpoint accepts, back to back:

- ``search``: ``POST /Users/.search`` with ``count`` 200 and ``attributes`` at its cap (64 paths), over 200 users;
- ``scan``: ``GET /Users?filter=`` a filter of 100 comparisons (the cap) that no index answers, over those users;
- ``patch``: ``PATCH /Users/{id}`` whose paths hold 100 comparisons (the cap for one PATCH) in 100 operations.

``--attack issue`` sends the red team's request instead (``attributes`` naming ``userName`` 21,000 times), which
the endpoint now refuses; with ``--code DIR`` the script measures another checkout the same way. It prints the
server CPU per attacking request (from ``/proc``) and the victim's latencies and their ratio.

    .venv/bin/python bench/fairness.py
    .venv/bin/python bench/fairness.py --attack issue --code /tmp/before
"""

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))

from scim.local import azurite  # noqa: E402
from tests.local_server import LocalServer  # noqa: E402

TIMEOUT = 30.0
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ATTRIBUTES = [
    "userName", "displayName", "nickName", "profileUrl", "title", "userType", "preferredLanguage", "locale",
    "timezone", "active", "externalId", "name.formatted", "name.familyName", "name.givenName", "name.middleName",
    "name.honorificPrefix", "name.honorificSuffix", "emails.value", "emails.type", "emails.primary",
    "emails.display", "phoneNumbers.value", "phoneNumbers.type", "phoneNumbers.primary", "ims.value", "ims.type",
    "photos.value", "photos.type", "addresses.formatted", "addresses.streetAddress", "addresses.locality",
    "addresses.region", "addresses.postalCode", "addresses.country", "addresses.type", "addresses.primary",
    "groups.value", "groups.display", "groups.type", "entitlements.value", "entitlements.type", "roles.value",
    "roles.type", "roles.primary", "x509Certificates.value", "meta.created", "meta.lastModified", "meta.version",
    "meta.location", "meta.resourceType", "id", "emails", "phoneNumbers", "addresses", "name", "ims", "photos",
    "roles", "entitlements", "x509Certificates",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter",
]  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each measured phase")
    parser.add_argument("--attackers", type=int, default=4, help="concurrent clients of the attacking tenant")
    parser.add_argument("--users", type=int, default=200, help="users of the attacking tenant")
    parser.add_argument("--attack", choices=("capped", "issue"), default="capped")
    parser.add_argument("--only", choices=("search", "scan", "patch"), help="send only this attacking request")
    parser.add_argument("--code", type=Path, default=REPO_ROOT, help="the checkout whose server is measured")
    return parser.parse_args()


def attacks(args: argparse.Namespace, user_id: str) -> list[tuple[str, str, str, Any]]:
    """(name, method, url, json body) of each attacking request."""
    if args.attack == "issue":
        return [("search-21000", "POST", "/Users/.search", {"attributes": ["userName"] * 21000, "count": 200})]
    scan = " or ".join(f'title eq "t{i}"' for i in range(99)) + " or title pr"
    paths = [
        {"op": "replace", "path": f'emails[value eq "a{i % 3}@x.org"].display', "value": f"d{i}"} for i in range(100)
    ]
    return [
        ("search", "POST", "/Users/.search", {"attributes": ATTRIBUTES, "count": 200}),
        ("scan", "GET", f"/Users?count=200&filter={scan}", None),
        ("patch", "PATCH", f"/Users/{user_id}", {"schemas": [PATCH], "Operations": paths}),
    ]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def victim(http: httpx.AsyncClient, user_name: str, seconds: float) -> tuple[list[float], list[float]]:
    """Latencies of the filter-GET (storage included) and of ``GET /ServiceProviderConfig`` (authentication and
    the event loop only: on one machine Azurite's single thread is shared with the attackers' storage calls, so
    only this one isolates the endpoint's own fairness)."""
    lookups: list[float] = []
    loop_only: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for url, params, latencies in (
            ("/Users", {"filter": f'userName eq "{user_name}"'}, lookups),
            ("/ServiceProviderConfig", None, loop_only),
        ):
            started = time.perf_counter()
            try:
                response = await http.get(url, params=params)
                assert response.status_code == 200, response.text
            except httpx.TimeoutException:
                pass  # counted at the client's timeout: the victim never got its answer
            latencies.append((time.perf_counter() - started) * 1000)
    return lookups, loop_only


async def attacker(http: httpx.AsyncClient, shapes: list[tuple[str, str, str, Any]], stop: asyncio.Event) -> dict:
    statuses: dict[str, int] = {}
    while not stop.is_set():
        for name, method, url, body in shapes:
            try:
                key = f"{name} {(await http.request(method, url, json=body)).status_code}"
            except httpx.TimeoutException:
                key = f"{name} timeout"
            statuses[key] = statuses.get(key, 0) + 1
    return statuses


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run(args: argparse.Namespace, server: LocalServer, attacker_token: str) -> None:
    assert server.process is not None
    pid = server.process.pid
    mine = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/scim+json"}
    theirs = {"Authorization": f"Bearer {attacker_token}", "Content-Type": "application/scim+json"}
    limits = httpx.Limits(max_connections=args.attackers + 2)
    async with (
        httpx.AsyncClient(base_url=server.base_url, headers=mine, timeout=TIMEOUT) as me,
        httpx.AsyncClient(base_url=server.base_url, headers=theirs, timeout=TIMEOUT, limits=limits) as them,
    ):
        user_name = f"victim-{secrets.token_hex(3)}@example.com"
        assert (await me.post("/Users", json={"schemas": [USER], "userName": user_name})).status_code == 201
        emails = [{"value": f"a{i}@x.org", "type": "work"} for i in range(3)]
        ids = []
        for index in range(args.users):
            body = {"schemas": [USER], "userName": f"a{index}@x.org", "title": f"t{index}", "emails": emails}
            response = await them.post("/Users", json=body)
            ids.append(response.json()["id"])
        shapes = [[shape for shape in attacks(args, ids[k]) if args.only in (None, shape[0])] for k in range(4)]

        print(f"{'attacking request':<22}{'status':>7}{'server CPU ms':>15}")
        for name, method, url, body in shapes[0]:
            before = cpu_seconds(pid)
            try:
                codes = [(await them.request(method, url, json=body)).status_code for _ in range(3)]
            except httpx.TimeoutException:
                codes = ["timeout"]
            print(f"{name:<22}{codes[0]!s:>7}{(cpu_seconds(pid) - before) * 1000 / len(codes):>15.1f}")

        alone = await victim(me, user_name, args.seconds)
        stop = asyncio.Event()
        workers = [asyncio.create_task(attacker(them, shapes[k % 4], stop)) for k in range(args.attackers)]
        await asyncio.sleep(1)
        loaded = await victim(me, user_name, args.seconds)
        stop.set()
        results = await asyncio.gather(*workers)
    statuses: dict[str, int] = {}
    for result in results:
        for key, count in result.items():
            statuses[key] = statuses.get(key, 0) + count
    print(f"attacking requests answered during the loaded phase: {statuses}")
    for name, index in (("filter-GET", 0), ("ServiceProviderConfig", 1)):
        quiet, busy = alone[index], loaded[index]
        print(f"{'victim ' + name:<34}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        for label, values in (("alone", quiet), (f"with {args.attackers} attackers", busy)):
            p50, p99 = statistics.median(values), percentile(values, 0.99)
            print(f"  {label:<32}{len(values):>9}{p50:>9.1f}{p99:>9.1f}{max(values):>9.1f}")
        ratio50 = statistics.median(busy) / statistics.median(quiet)
        ratio99 = percentile(busy, 0.99) / percentile(quiet, 0.99)
        print(f"  ratio loaded/alone: p50 {ratio50:.2f}, p99 {ratio99:.2f} (target p99 <= 2)")


def main() -> int:
    args = parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]), f"| cpus {os.cpu_count()}")
    port = azurite.free_port()
    process = azurite.start(port)
    try:
        server = LocalServer(azurite.connection_string(port), f"fair{secrets.token_hex(3)}", root=args.code.resolve())
        attacker_token = secrets.token_urlsafe(32)
        server.env["SCIM_BEARER_TOKENS"] = f"{server.token},attacker={attacker_token}"
        server.start()
        try:
            asyncio.run(run(args, server, attacker_token))
        finally:
            server.close()
    finally:
        azurite.stop(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
