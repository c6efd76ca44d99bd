"""One tenant's costliest requests against another tenant's latency, on one ``python -m scim serve`` instance.

The victim tenant sends, one at a time, Entra's most frequent request (``GET /Users?filter=userName eq "…"``), after
each of which the script reads a row straight from Azurite (storage alone, no endpoint); beside them it sends ``GET
/ServiceProviderConfig`` every 5 ms (no storage: the instance's own event loop). Each is measured in these phases:

- ``alone``: nobody else sends anything;
- ``attacked``: ``--attackers`` clients of another tenant send, back to back, the costliest requests the caps accept,
  to the victim's instance (the target: the victim's p99 at most 2x ``alone``);
- ``control``: the same attack sent to a second instance on the same machine and Azurite, so the victim's instance
  serves only the victim while the box and Azurite are as busy as in ``attacked``. What ``control`` costs the
  victim is the shared machine's and Azurite's doing; what ``attacked`` adds beyond it is the instance's;
- with ``--each``, one ``attacked`` phase per kind of attacking request.

With ``--rounds N`` the whole sequence runs N times in turn and each phase's samples are pooled: a shared machine's
load comes and goes (another engineer's test run), and in one sequence it can fall on one phase only, moving its p99
by half; in turns it falls on every phase alike. Each round's own ratio (its phase ÷ the same round's ``alone``) is
printed too.

The attacking requests (``--only`` picks one):

- ``search``: ``POST /Users/.search`` with ``count`` 1000 (clamped to 200) and ``attributes`` at its cap (64 paths);
- ``scan``: ``GET /Users?filter=`` a filter of 100 comparisons (the cap) that no index answers, over the users;
- ``patch``: ``PATCH /Users/{id}`` whose paths hold 100 comparisons (the cap for one PATCH) in 100 operations;
- ``big-patch``: a 100-operation PATCH with a body just under 256 KiB (2,400-character values);
- ``group-get``: ``GET /Groups/{id}`` of a 1,000-member group (1,000 members per response, the cap);
- ``members``: ``PATCH /Groups/{id}`` adding 1,000 members (the cap), then removing them;
- ``members-100``: Entra's own widest request, ``PATCH /Groups/{id}`` adding 100 members (each read at once), then
  removing them: a light request, which no admission holds back, so the attacking clients run four at once.

With ``--stalls`` the victim's instance runs through ``bench/loop_stalls.py``, and each phase also reports its event
loop's steps of 5 ms or more (``--stalls-ms``): how many, the longest (wall and CPU time), and the code that was
running in them (sampled stacks: the innermost frame of ``scim/`` and what it had called).

The attacking clients run in a process of their own, so that reading their answers never holds up the loop that
times the victim. With ``--pin`` the victim's instance gets a CPU of its own, shared only with the victim's
``ServiceProviderConfig`` probe, a process of its own that sends a request per 5 ms at real-time priority
(``SCHED_FIFO``, when the OS allows it), so that it answers at once and waits only for the instance, as Entra's
client elsewhere would; everything else (Azurite, the second instance, the attacking clients, the victim's lookups,
which wait on Azurite anyway) runs on the others, as in Azure, where an instance has its own cores and Table
Storage and the clients are elsewhere: the instance's own fairness, without the shared machine's. (Before,
``--client-beside``, the whole victim client ran beside the instance at ordinary priority: its back-to-back lookups
used about 40% of that CPU, and whenever the attack kept the instance busy the two took turns at it, so in the
attacked phases only, the probe also waited for its own client's work. A client on the other CPUs instead waits for
the attack's load there: the control phase then cost it 1.4-1.6x.) Without ``--pin`` all of them share every CPU.

``--attack issue`` sends the red team's request instead (``attributes`` naming ``userName`` 21,000 times), which
the endpoint now refuses; with ``--code DIR`` the script measures another checkout the same way. It prints the
server CPU per attacking request (from ``/proc``), the victim's latencies and their ratios.

    .venv/bin/python bench/fairness.py --seconds 15
    .venv/bin/python bench/fairness.py --seconds 10 --each
    .venv/bin/python bench/fairness.py --seconds 10 --each --stalls
    .venv/bin/python bench/fairness.py --seconds 10 --each --pin
    .venv/bin/python bench/fairness.py --seconds 5 --each --pin --rounds 3
    .venv/bin/python bench/fairness.py --seconds 10 --each --pin --client-beside
    .venv/bin/python bench/fairness.py --attack issue --code /tmp/before
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx
from azure.data.tables.aio import TableClient

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


SHAPES = ("search", "scan", "patch", "big-patch", "group-get", "members", "members-100")
ENTRA_MEMBERS = 100
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
GROUP_MEMBERS = 1000
PROBE_INTERVAL = 0.005


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each measured phase")
    parser.add_argument("--attackers", type=int, default=4, help="concurrent clients of the attacking tenant")
    parser.add_argument("--users", type=int, default=200, help="users the scan and the search go over")
    parser.add_argument("--attack", choices=("capped", "issue"), default="capped")
    parser.add_argument("--only", choices=SHAPES, help="send only this attacking request")
    parser.add_argument("--each", action="store_true", help="also one attacked phase per kind of request")
    parser.add_argument(
        "--rounds", type=int, default=1, help="run the phases this many times in turn, pooling each phase's samples"
    )
    parser.add_argument("--no-control", action="store_true", help="skip the second-instance control phase")
    parser.add_argument("--code", type=Path, default=REPO_ROOT, help="the checkout whose server is measured")
    parser.add_argument("--stalls", action="store_true", help="report each phase's longest event-loop steps")
    parser.add_argument("--stalls-ms", type=float, default=5.0, help="the shortest step --stalls reports")
    parser.add_argument("--pin", action="store_true", help="one CPU for the victim's instance, the rest for the others")
    parser.add_argument(
        "--client-beside", action="store_true", help="with --pin, the victim's client on its instance's CPU"
    )
    return parser.parse_args()


Shape = tuple[str, str, str, bytes | None]
"""(name, method, url, body): the body is encoded once, so that the client's loop, which also times the victim's
requests, does not spend milliseconds encoding a 250 KB body before each attacking request."""


def attacks(args: argparse.Namespace, user_id: str, groups: list[str], ids: list[str]) -> list[Shape]:
    """(name, method, url, json body) of each attacking request; the second of ``members`` (and of
    ``members-100``) undoes the first. ``groups``: the 1,000-member group and two empty ones."""
    if args.attack == "issue":
        return [("search-21000", "POST", "/Users/.search", encoded({"attributes": ["userName"] * 21000, "count": 200}))]
    scan = " or ".join(f'title eq "t{i}"' for i in range(99)) + " or title pr"
    paths = [
        {"op": "replace", "path": f'emails[value eq "a{i % 3}@x.org"].display', "value": f"d{i}"} for i in range(100)
    ]
    big = [{"op": "replace", "path": "displayName", "value": f"{i:04d}" + "x" * 2396} for i in range(100)]
    group_id, member_group_id, entra_group_id = groups
    members = [{"value": i} for i in ids[:GROUP_MEMBERS]]
    entra = [{"value": i} for i in ids[:ENTRA_MEMBERS]]
    shapes = [
        ("search", "POST", "/Users/.search", {"attributes": ATTRIBUTES, "count": 1000}),
        ("scan", "GET", f"/Users?count=200&filter={scan}", None),
        ("patch", "PATCH", f"/Users/{user_id}", {"schemas": [PATCH], "Operations": paths}),
        ("big-patch", "PATCH", f"/Users/{user_id}", {"schemas": [PATCH], "Operations": big}),
        ("group-get", "GET", f"/Groups/{group_id}", None),
        ("members", "PATCH", f"/Groups/{member_group_id}",
         {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": members}]}),
        ("members", "PATCH", f"/Groups/{member_group_id}",
         {"schemas": [PATCH], "Operations": [{"op": "remove", "path": "members", "value": members}]}),
        ("members-100", "PATCH", f"/Groups/{entra_group_id}",
         {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": entra}]}),
        ("members-100", "PATCH", f"/Groups/{entra_group_id}",
         {"schemas": [PATCH], "Operations": [{"op": "remove", "path": "members", "value": entra}]}),
    ]  # fmt: skip
    return [(name, method, url, encoded(body)) for name, method, url, body in shapes if args.only in (None, name)]


def encoded(body: Any) -> bytes | None:
    return None if body is None else json.dumps(body).encode()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Series = dict[str, list[float]]


async def victim(http: httpx.AsyncClient, table: TableClient, user_name: str, seconds: float) -> Series:
    """Latencies of the filter-GET (the endpoint and Azurite) followed by a point read sent straight to Azurite
    (storage alone: on one machine Azurite's single thread is shared with the attackers' storage calls), one after
    the other; and beside them, every :data:`PROBE_INTERVAL` seconds, from a light process of its own
    (:func:`probe_process`), of ``GET /ServiceProviderConfig`` (the endpoint's event loop alone), so that a slow
    storage call does not leave that series with too few samples for a p99."""
    context = multiprocessing.get_context("spawn")
    ready, start, results = context.Event(), context.Event(), context.Queue()
    headers = {"Authorization": str(http.headers["Authorization"])}
    process = context.Process(
        target=probe_process, args=(str(http.base_url), headers, seconds, PROBE_PLACEMENT, ready, start, results)
    )
    process.start()
    if not await asyncio.to_thread(ready.wait, 60):
        raise RuntimeError("the probe process did not start")
    start.set()
    series = await lookups(http, table, user_name, seconds)
    series["ServiceProviderConfig"] = await asyncio.to_thread(results.get, True, TIMEOUT * 2)
    await asyncio.to_thread(process.join, 10)
    return series


def probe_process(
    base_url: str, headers: dict[str, str], seconds: float, placement: "Placement", ready: Any, start: Any, results: Any
) -> None:
    """``GET /ServiceProviderConfig`` every :data:`PROBE_INTERVAL` seconds for ``seconds``: a light client (a
    request per 5 ms), placed as ``placement`` says (with ``--pin``: beside its instance at real-time priority)."""
    cpus, realtime = placement
    if cpus:
        os.sched_setaffinity(0, cpus)
    if realtime:
        with contextlib.suppress(PermissionError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    results.put(asyncio.run(_probe(base_url, headers, seconds, ready, start)))


async def _probe(base_url: str, headers: dict[str, str], seconds: float, ready: Any, start: Any) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=TIMEOUT) as http:
        assert (await http.get("/ServiceProviderConfig")).status_code == 200  # the connection is open before timing
        ready.set()
        await asyncio.to_thread(start.wait)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                response = await http.get("/ServiceProviderConfig")
                assert response.status_code == 200, response.text
            except httpx.TimeoutException:
                pass  # counted at the client's timeout: the victim never got its answer
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(PROBE_INTERVAL)
    return latencies


async def lookups(http: httpx.AsyncClient, table: TableClient, user_name: str, seconds: float) -> Series:
    """The filter-GET and the point read straight to Azurite, one after the other, for ``seconds``."""
    series: Series = {"filter-GET": [], "Azurite point read": []}
    deadline = time.monotonic() + seconds

    async def timed(name: str, call: Awaitable[Any]) -> None:
        started = time.perf_counter()
        try:
            response = await call
            assert not isinstance(response, httpx.Response) or response.status_code == 200, response.text
        except httpx.TimeoutException:
            pass  # counted at the client's timeout: the victim never got its answer
        series[name].append((time.perf_counter() - started) * 1000)

    while time.monotonic() < deadline:
        await timed("filter-GET", http.get("/Users", params={"filter": f'userName eq "{user_name}"'}))
        await timed("Azurite point read", table.get_entity("bench", "probe"))
    return series


async def attacker(http: httpx.AsyncClient, shapes: list[Shape], stop: asyncio.Event) -> dict[str, int]:
    statuses: dict[str, int] = {}
    while not stop.is_set():
        for name, method, url, body in shapes:
            try:
                key = f"{name} {(await http.request(method, url, content=body)).status_code}"
            except httpx.TimeoutException:
                key = f"{name} timeout"
            statuses[key] = statuses.get(key, 0) + 1
    return statuses


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def attacked(
    me: httpx.AsyncClient,
    table: TableClient,
    target: str,
    headers: dict[str, str],
    shapes: list[Shape],
    user_name: str,
    args: argparse.Namespace,
) -> Series:
    """The victim's latencies while the attackers send ``shapes`` to ``target`` (each client starts at a different
    one), from a process of their own."""
    context = multiprocessing.get_context("spawn")
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    process = context.Process(
        target=attack_process, args=(target, headers, shapes, args.attackers, set(OTHER_CPUS), ready, stop, results)
    )
    process.start()
    try:
        if not await asyncio.to_thread(ready.wait, 60):
            raise RuntimeError("the attacking process did not start")
        await asyncio.sleep(1)
        series = await victim(me, table, user_name, args.seconds)
    finally:
        stop.set()
    statuses: dict[str, int] = await asyncio.to_thread(results.get, True, TIMEOUT * 2)
    await asyncio.to_thread(process.join, 10)
    print(f"    attacking requests answered: {statuses}")
    return series


def attack_process(
    target: str,
    headers: dict[str, str],
    shapes: list[Shape],
    clients: int,
    cpus: set[int] | None,
    ready: Any,
    stop: Any,
    results: Any,
) -> None:
    """The attacking tenant's clients, in a process of their own so that reading their answers (a 1,000-member
    group, 200 users) never holds up the loop that times the victim; with ``--pin``, on the CPUs that are not the
    victim instance's."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    results.put(asyncio.run(_attack(target, headers, shapes, clients, ready, stop)))


async def _attack(
    target: str, headers: dict[str, str], shapes: list[Shape], clients: int, ready: Any, stop: Any
) -> dict[str, int]:
    limits = httpx.Limits(max_connections=clients + 2)
    async with httpx.AsyncClient(base_url=target, headers=headers, timeout=TIMEOUT, limits=limits) as them:
        done = asyncio.Event()
        watcher = asyncio.create_task(asyncio.to_thread(stop.wait))
        watcher.add_done_callback(lambda _: done.set())
        ready.set()
        workers = [
            asyncio.create_task(attacker(them, shapes[k % len(shapes) :] + shapes[: k % len(shapes)], done))
            for k in range(clients)
        ]
        statuses: dict[str, int] = {}
        for result in await asyncio.gather(*workers):
            for key, count in result.items():
                statuses[key] = statuses.get(key, 0) + count
        await watcher
        return statuses


async def setup(them: httpx.AsyncClient, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The attacking tenant's users (``--users`` of them searchable by the scan, 1,000 in all for the groups), a
    group with 1,000 members and two empty ones."""
    emails = [{"value": f"a{i}@x.org", "type": "work"} for i in range(3)]
    ids: list[str] = []
    gate = asyncio.Semaphore(8)

    async def create(index: int) -> None:
        body: dict[str, Any] = {"schemas": [USER], "userName": f"a{index}@x.org", "emails": emails}
        if index < args.users:
            body["title"] = f"t{index}"
        async with gate:
            response = await them.post("/Users", json=body)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])

    await asyncio.gather(*(create(index) for index in range(max(args.users, GROUP_MEMBERS))))
    ids.sort()
    groups = []
    for name in ("big", "empty", "entra"):
        response = await them.post("/Groups", json={"schemas": [GROUP], "displayName": name})
        assert response.status_code == 201, response.text
        groups.append(response.json()["id"])
    add = [{"op": "add", "path": "members", "value": [{"value": i} for i in ids[:GROUP_MEMBERS]]}]
    response = await them.patch(f"/Groups/{groups[0]}", json={"schemas": [PATCH], "Operations": add})
    assert response.status_code in (200, 204), response.text
    return ids, groups


def report(name: str, phases: dict[str, Series]) -> None:
    """p50/p99/max per phase, and the ratios within this run."""
    alone = phases["alone"][name]
    print(f"victim {name:<44}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'p99 / alone':>13}")
    for label, series in phases.items():
        values = series[name]
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        ratio = p99 / percentile(alone, 0.99)
        print(f"  {label:<48}{len(values):>9}{p50:>9.1f}{p99:>9.1f}{max(values):>9.1f}{ratio:>13.2f}")
    if "attacked (mix)" in phases and "control: mix on another instance" in phases:
        ours = percentile(phases["attacked (mix)"][name], 0.99)
        box = percentile(phases["control: mix on another instance"][name], 0.99)
        print(f"  p99 attacked / control (the instance's own share): {ours / box:.2f}")


Window = tuple[float, float]
Windows = dict[str, list[Window]]


def stall_report(path: Path, windows: Windows, threshold_ms: float) -> None:
    """Per phase, how late the victim instance's loop ran a callback due every 5 ms (p50/p99/max), its steps of at
    least ``threshold_ms``, the longest three, and where the sampled time of all of them went (the innermost
    ``scim/`` frames, and the call they were in when sampled)."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    steps = [line for line in lines if "wall_ms" in line]
    print("\nthe victim instance's event loop (bench/loop_stalls.py): lag of a callback due every 5 ms, and its")
    print(f"steps of {threshold_ms:g} ms or more: the three longest and the three of most CPU, each with its wall and")
    print("CPU time, how often the OS preempted the loop's thread in it, the garbage collector's time in it (gcN: the")
    print("oldest generation collected), and the code sampled in it")
    alone = loop_lags(lines, windows["alone"])
    for label, window in windows.items():
        lags = loop_lags(lines, window)
        inside = sorted((s for s in steps if in_window(s, window)), key=lambda s: -s["wall_ms"])
        over_20 = sum(1 for s in inside if s["wall_ms"] >= 20)
        wall = sum(s["wall_ms"] for s in inside)
        lag_p99 = percentile(lags, 0.99) if lags else float("nan")
        ratio = lag_p99 / percentile(alone, 0.99) if alone and lags else float("nan")
        print(f"  {label}: loop lag p50 {statistics.median(lags) if lags else float('nan'):.1f} ms, p99 {lag_p99:.1f}")
        print(f"    ({ratio:.2f}x alone), max {max(lags, default=float('nan')):.1f}; {len(inside)} long steps")
        print(f"    ({over_20} of 20 ms or more), {wall:.0f} ms in all")
        by_cpu = sorted(inside, key=lambda s: -s["cpu_ms"])
        for title, chosen in (("longest", inside[:3]), ("most CPU", by_cpu[:3])):
            for step in chosen:
                places = Counter(where(sample) for sample in step["samples"]).most_common(2)
                said = "; ".join(f"{place} ({n})" for place, n in places) or "no sample"
                collected = ""
                if step["gc_generations"]:
                    generation, garbage = max(step["gc_generations"]), step["gc_garbage"]
                    collected = f" gc{generation} {step['gc_ms']:.1f} ms ({garbage} freed)"
                print(
                    f"    {title:<9}{step['wall_ms']:6.1f} ms wall{step['cpu_ms']:6.1f} ms CPU"
                    f"{step['preempted']:3d} preempted{collected}  {said}"
                )
        sampled = Counter(where(sample) for step in inside for sample in step["samples"])
        for place, n in sampled.most_common(4):
            print(f"    samples {n:5d}  {place}")


def loop_lags(lines: list[dict[str, Any]], window: list[Window]) -> list[float]:
    return [lag for line in lines if "lags_ms" in line and in_window(line, window) for lag in line["lags_ms"]]


def in_window(line: dict[str, Any], window: list[Window]) -> bool:
    return any(start <= line["end"] <= end for start, end in window)


def where(sample: list[str]) -> str:
    """The innermost two frames of our code, the innermost frame of the library they called (past azure-core's
    pipeline and asyncio), and the innermost frame of all."""
    ours = [i for i, frame in enumerate(sample) if frame.startswith(("scim/", "function_app.py"))]
    if not ours:
        return " > ".join(sample[-2:]) or "?"
    inner = ours[-1]
    library = [f for f in sample[inner + 1 :] if "azure/core/" not in f and not f.startswith("asyncio/")]
    chosen = [*(sample[i] for i in ours[-2:]), *library[:1], *library[-1:][: len(library) > 1]]
    return " > ".join(frame.replace(".venv/lib/python3.11/site-packages/", "") for frame in chosen)


async def run(
    args: argparse.Namespace,
    server: LocalServer,
    other: LocalServer | None,
    attacker_token: str,
    windows: Windows,
) -> None:
    assert server.process is not None
    pid = server.process.pid
    mine = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/scim+json"}
    theirs = {"Authorization": f"Bearer {attacker_token}", "Content-Type": "application/scim+json"}
    limits = httpx.Limits(max_connections=args.attackers + 2)
    connection = server.env["SCIM_STORAGE_CONNECTION_STRING"]
    async with (
        httpx.AsyncClient(base_url=server.base_url, headers=mine, timeout=TIMEOUT) as me,
        httpx.AsyncClient(base_url=server.base_url, headers=theirs, timeout=TIMEOUT, limits=limits) as them,
        TableClient.from_connection_string(connection, server.env["SCIM_TABLE_PREFIX"] + "Resources") as table,
    ):
        user_name = f"victim-{secrets.token_hex(3)}@example.com"
        assert (await me.post("/Users", json={"schemas": [USER], "userName": user_name})).status_code == 201
        await table.upsert_entity({"PartitionKey": "bench", "RowKey": "probe"})  # the endpoint made the table
        ids, groups = await setup(them, args)
        shapes = attacks(args, ids[0], groups, ids)

        print(f"{'attacking request':<22}{'status':>7}{'server CPU ms':>15}")
        for name, method, url, body in shapes:
            before = cpu_seconds(pid)
            try:
                codes = [(await them.request(method, url, content=body)).status_code for _ in range(3)]
            except httpx.TimeoutException:
                codes = ["timeout"]
            print(f"{name:<22}{codes[0]!s:>7}{(cpu_seconds(pid) - before) * 1000 / len(codes):>15.1f}")

        phases: dict[str, Series] = {}
        rounds: dict[str, list[float]] = {}
        """Each phase's ServiceProviderConfig p99 ÷ alone's, round by round."""

        async def phase(label: str, measured: Awaitable[Series]) -> None:
            print(f"phase: {label}")
            started = time.time()
            series = await measured
            windows.setdefault(label, []).append((started, time.time()))
            for name, values in series.items():
                phases.setdefault(label, {}).setdefault(name, []).extend(values)
            if label == "alone":
                last_alone.update(series)
            alone = percentile(last_alone["ServiceProviderConfig"], 0.99)
            rounds.setdefault(label, []).append(percentile(series["ServiceProviderConfig"], 0.99) / alone)

        last_alone: Series = {}
        here = server.base_url
        for _ in range(args.rounds):
            await phase("alone", victim(me, table, user_name, args.seconds))
            await phase("attacked (mix)", attacked(me, table, here, theirs, shapes, user_name, args))
            if other is not None:
                control = attacked(me, table, other.base_url, theirs, shapes, user_name, args)
                await phase("control: mix on another instance", control)
            if args.each:
                for shape in SHAPES:
                    chosen = [s for s in shapes if s[0] == shape]
                    if chosen:
                        kind = attacked(me, table, here, theirs, chosen, user_name, args)
                        await phase(f"attacked ({shape} only)", kind)
    for name in ("ServiceProviderConfig", "filter-GET", "Azurite point read"):
        report(name, phases)
    if args.rounds > 1:
        print("ServiceProviderConfig p99 / the same round's alone, round by round:")
        for label, ratios in rounds.items():
            print(f"  {label:<48}" + " ".join(f"{ratio:6.2f}" for ratio in ratios))


OTHER_CPUS: set[int] = set()
"""With ``--pin``, the CPUs of everything but the victim's instance and client."""


def pin(server: LocalServer, cpu: int) -> None:
    """Every thread of the instance onto ``cpu``; threads it starts later inherit it."""
    assert server.process is not None
    for task in os.listdir(f"/proc/{server.process.pid}/task"):
        os.sched_setaffinity(int(task), {cpu})


Placement = tuple[set[int] | None, bool]
"""CPUs (None: any) and whether at real-time priority."""
PROBE_PLACEMENT: Placement = (None, False)
"""Where the ``ServiceProviderConfig`` probe runs (:func:`probe_process`)."""


def place_victim_client(instance_cpu: int, beside: bool) -> None:
    """The probe beside its instance at real-time priority, and this process (the victim's lookups) on the other
    CPUs; or, ``beside``, both on the instance's CPU at ordinary priority, as before."""
    global PROBE_PLACEMENT
    PROBE_PLACEMENT = ({instance_cpu}, not beside)
    if beside:
        os.sched_setaffinity(0, {instance_cpu})
        print(f"the victim's client (lookups and probe) beside its instance on CPU {instance_cpu}")
        return
    print(
        f"the victim's probe beside its instance on CPU {instance_cpu} at real-time priority (SCHED_FIFO 1, when "
        f"permitted); its lookups on {sorted(OTHER_CPUS)}"
    )


def main() -> int:
    args = parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]), f"| cpus {os.cpu_count()}")
    print("load average at start:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    cpus = sorted(os.sched_getaffinity(0))
    if args.pin:
        if len(cpus) < 2:
            raise SystemExit("--pin needs two CPUs")
        os.sched_setaffinity(0, set(cpus[1:]))  # inherited by Azurite, the instances and this script's threads
        print(f"pinned: the victim's instance on CPU {cpus[0]}, everything else on {cpus[1:]}")
    port = azurite.free_port()
    process = azurite.start(port)
    servers: list[LocalServer] = []
    windows: Windows = {}
    stalls = Path(tempfile.mkstemp(prefix="stalls-", suffix=".jsonl")[1])
    try:
        prefix = f"fair{secrets.token_hex(3)}"
        attacker_token = secrets.token_urlsafe(32)
        for _ in range(1 if args.no_control else 2):
            server = LocalServer(azurite.connection_string(port), prefix, root=args.code.resolve())
            server.token = servers[0].token if servers else server.token  # both instances serve the same tenants
            server.env["SCIM_BEARER_TOKENS"] = f"{server.token},attacker={attacker_token}"
            if args.stalls and not servers:
                server.command = [sys.executable, str(BENCH_DIR / "loop_stalls.py")]
                server.env.update(SCIM_STALLS_OUT=str(stalls), SCIM_STALLS_MS=str(args.stalls_ms))
            server.start()
            if args.pin and not servers:
                pin(server, cpus[0])
            servers.append(server)
        if args.pin:
            OTHER_CPUS.update(cpus[1:])
            place_victim_client(cpus[0], args.client_beside)
        asyncio.run(run(args, servers[0], servers[1] if len(servers) > 1 else None, attacker_token, windows))
    finally:
        for server in servers:
            server.close()
        azurite.stop(process)
        if args.stalls and windows.get("alone"):
            stall_report(stalls, windows, args.stalls_ms)
        stalls.unlink()
    print("load average at end:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
