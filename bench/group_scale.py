"""A 10,000-member group on our endpoint (on Azurite): Entra's membership PATCHes, checks and removals, at scale.

Over real HTTP with one keep-alive httpx client and C workers (default 4), against Azurite through
``python -m scim serve``, it sends, phase after phase:

1. ``POST /Users`` for N users (plus 10 that stay out of the big group) and ``POST /Groups`` for a big and a small
   group (setup; its req/s is printed but is not the point);
2. ``PATCH /Groups/{big}`` adding all N users as members, 100 per PATCH (Entra's batch), expecting 204;
3. 1,000 membership checks of random members, Entra's ``GET /Groups?filter=id eq "<g>" and members[value eq "<u>"]
   &excludedAttributes=members``, expecting ``totalResults`` 1, and 100 of non-members, expecting 0;
4. removing 1,000 random members: half in the legacy shape (``Remove members`` with a value list, 100 per PATCH),
   half as ``remove members[value eq "<id>"]`` (one id per operation, 10 operations per PATCH), expecting 204; then
   membership checks of removed ids (0) and the whole member list read page by page (``membersAfter``), which must
   be exactly the N - 1,000 members left;
5. latency vs group size: ``GET /Groups/{id}?excludedAttributes=members`` and the membership check, ~300 of each on
   the 10-member group and on the big group (after the removals), interleaved, with the big/small p50 and p99 ratios.

It also reads the server's request log (one JSON line per request, ``scim.request``) and prints the Table write
requests each add- and remove-PATCH made (its ``writes`` field). Every phase stops starting new requests after its
time cap (about 3 minutes in all; ``--cap-scale`` multiplies the caps). Every process it starts is stopped on exit,
Ctrl-C or SIGTERM. All traffic goes to 127.0.0.1. Exit code: 0 with 0 errors and no phase cut short by its cap, 1 with
any error, 2 with 0 errors but a capped phase. See bench/README.md.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import shlex
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import entra_cycle as ec

azurite = ec.azurite
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = ec.PATCH_SCHEMA
SCIM_JSON = ec.SCIM_JSON
HOST = ec.HOST
RESULTS_DIR = ec.RESULTS_DIR
SERVER_LOG = RESULTS_DIR / "group-scale-server.log"
SMALL_GROUP = 10
"""Members of the small group; they are also the users that are never members of the big group."""
CHECKS = 1000
NON_MEMBER_CHECKS = 100
REMOVALS = 1000
REMOVED_CHECKS = 200
"""Membership checks of removed members after the removals (each must answer 0)."""
FILTER_OPS_PER_PATCH = 10
"""``remove members[value eq "<id>"]`` operations per PATCH."""
SIZE_SAMPLES = 300
"""Requests of each kind, on each group, in the latency-vs-size phase."""
PAGE_LIMIT = 1000
"""What the server returns at most per GET /Groups/{id} (scim.schemas.MAX_MEMBERS_PER_GET)."""
SLOWEST = 3
"""The slowest requests printed per phase."""
PHASE_CAPS = {
    "POST /Users (setup)": 70.0,
    "add-PATCH": 60.0,
    "membership check": 15.0,
    "remove-PATCH legacy": 10.0,
    "remove-PATCH filter": 10.0,
    "check removed": 5.0,
    "latency vs size": 15.0,
}
"""Seconds after which a phase starts no new request (times ``--cap-scale``); about 3 minutes in all."""

Job = tuple[str, str, Callable[[], Awaitable[str | None]]]
"""(kind, label, send): a request kind (a row of the table), a description for the slowest list, and the request."""


# ---------------------------------------------------------------------------------------------------------------------
# Running phases


@dataclass
class Phase:
    name: str
    planned: int
    cap_s: float
    wall_s: float = 0.0
    done: int = 0
    cap_hit: bool = False
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    slowest: list[tuple[float, str]] = field(default_factory=list)
    log_lines: list[dict[str, Any]] = field(default_factory=list)
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)

    @property
    def not_run(self) -> int:
        return self.planned - self.done

    @property
    def error_list(self) -> list[str]:
        return [e for errors in self.errors.values() for e in errors]

    def rows(self) -> list[dict[str, Any]]:
        """One row per kind; kinds that share the phase get the share of its wall time their requests took."""
        busy = sum(sum(values) for values in self.latencies.values()) or 1.0
        rows = []
        for kind, values in self.latencies.items():
            seconds = self.wall_s * sum(values) / busy
            row = ec.latency_row(kind, values, len(self.errors[kind]), seconds)
            row["phase"] = self.name
            rows.append(row)
        return rows

    def summary(self) -> dict[str, Any]:
        return {
            "phase": self.name,
            "planned": self.planned,
            "done": self.done,
            "wall_s": round(self.wall_s, 3),
            "cap_s": self.cap_s,
            "cap_hit": self.cap_hit,
            "errors": len(self.error_list),
            "not_run": self.not_run,
            "first_errors": self.error_list[:5],
            "cpu_ms_per_request": {k: round(v, 2) for k, v in self.cpu_ms_per_request.items()},
            "slowest": [{"ms": round(ms, 1), "request": label} for ms, label in self.slowest],
        }


class Runner:
    """Runs phases with C workers, each within its time cap, and reads the server log after each phase."""

    def __init__(self, args: argparse.Namespace, log: Path, pids: dict[str, int]) -> None:
        self.args = args
        self.log = log
        self.pids = pids
        self.log_offset = 0
        self.phases: list[Phase] = []

    def read_log(self) -> list[dict[str, Any]]:
        """The ``scim.request`` lines the server wrote since the last call."""
        try:
            with self.log.open("rb") as handle:
                handle.seek(self.log_offset)
                data = handle.read()
        except OSError:
            return []
        complete = data.rfind(b"\n") + 1
        self.log_offset += complete
        records = []
        for line in data[:complete].decode(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == "scim.request":
                    records.append(record)
        return records

    async def run(self, name: str, jobs: list[Job], concurrency: int | None = None) -> Phase:
        cap = PHASE_CAPS[name] * self.args.cap_scale
        workers = concurrency or self.args.concurrency
        phase = Phase(name, len(jobs), round(cap, 1))
        for kind in sorted({kind for kind, _, _ in jobs}):
            phase.latencies[kind] = []
            phase.errors[kind] = []
        pending = iter(jobs)
        timed: list[tuple[float, str]] = []
        self.read_log()  # skip what earlier (unmeasured) requests logged
        print(f"  {name} x{len(jobs)}, C={workers} ...", end=" ", flush=True)
        before = ec.cpu_snapshot(self.pids)
        started = time.perf_counter()
        stop_at = started + cap

        async def worker() -> None:
            for kind, label, send in pending:
                if time.perf_counter() > stop_at:
                    phase.cap_hit = True
                    return
                sent = time.perf_counter()
                try:
                    problem = await send()
                except Exception as exc:
                    problem = f"{label}: {type(exc).__name__}: {exc}"
                elapsed = (time.perf_counter() - sent) * 1000
                phase.latencies[kind].append(elapsed)
                timed.append((elapsed, label))
                phase.done += 1
                if problem:
                    phase.errors[kind].append(problem)

        await asyncio.gather(*(worker() for _ in range(workers)))
        phase.wall_s = time.perf_counter() - started
        after = ec.cpu_snapshot(self.pids)
        phase.cpu_ms_per_request = {k: (after[k] - before[k]) * 1000 / max(phase.done, 1) for k in before}
        phase.slowest = sorted(timed, reverse=True)[:SLOWEST]
        await asyncio.sleep(0.05)  # the server logs before it answers; this only guards against a late flush
        phase.log_lines = self.read_log()
        requests = sum(len(v) for v in phase.latencies.values())
        rate = requests / phase.wall_s if phase.wall_s else math.nan
        print(f"{rate:.0f} req/s, {phase.wall_s:.1f} s", flush=True)
        problems = phase.error_list
        if problems or phase.not_run:
            first = problems[0] if problems else "-"
            capped = f", CAP of {cap:.0f} s HIT: {phase.not_run} not run" if phase.cap_hit else ""
            print(f"    {name}: {len(problems)} errors{capped}; first: {first}")
        self.phases.append(phase)
        return phase


# ---------------------------------------------------------------------------------------------------------------------
# The requests


@dataclass
class Bench:
    client: httpx.AsyncClient
    user_ids: dict[int, str] = field(default_factory=dict)
    big: str = ""
    small: str = ""

    async def create_user(self, i: int) -> str | None:
        body = ec.post_body(i)
        response = await self.client.post("/Users", content=body, headers={"Content-Type": SCIM_JSON})
        if response.status_code != 201:
            return f"POST /Users #{i}: HTTP {response.status_code} {response.text[:200]}"
        self.user_ids[i] = str(response.json()["id"])
        return None

    async def create_group(self, name: str) -> str:
        body = {"schemas": [GROUP_SCHEMA], "displayName": name}
        response = await self.client.post("/Groups", json=body, headers={"Content-Type": SCIM_JSON})
        if response.status_code != 201:
            raise RuntimeError(f"POST /Groups {name!r}: HTTP {response.status_code} {response.text[:300]}")
        return str(response.json()["id"])

    async def patch(self, group_id: str, operations: list[dict[str, Any]], label: str) -> str | None:
        body = json.dumps({"schemas": [PATCH_SCHEMA], "Operations": operations}).encode()
        response = await self.client.patch(f"/Groups/{group_id}", content=body, headers={"Content-Type": SCIM_JSON})
        if response.status_code != 204:
            return f"{label}: HTTP {response.status_code} {response.text[:200]}"
        return None

    async def check(self, group_id: str, user_id: str, expected: int, label: str) -> str | None:
        """Entra's membership check; the group must come back without its members."""
        params = {
            "filter": f'id eq "{group_id}" and members[value eq "{user_id}"]',
            "excludedAttributes": "members",
        }
        response = await self.client.get("/Groups", params=params)
        if response.status_code != 200:
            return f"{label}: HTTP {response.status_code} {response.text[:200]}"
        body = response.json()
        resources = body.get("Resources") or []
        if body.get("totalResults") != expected or len(resources) != expected:
            return f"{label}: expected totalResults {expected}, got {body.get('totalResults')} ({len(resources)} shown)"
        if resources and ("members" in resources[0] or resources[0].get("id") != group_id):
            return f"{label}: wrong group or members not excluded: {response.text[:200]}"
        return None

    async def get_group(self, group_id: str, label: str) -> str | None:
        response = await self.client.get(f"/Groups/{group_id}", params={"excludedAttributes": "members"})
        if response.status_code != 200:
            return f"{label}: HTTP {response.status_code} {response.text[:200]}"
        document = response.json()
        if document.get("id") != group_id or "members" in document:
            return f"{label}: wrong group or members not excluded: {response.text[:200]}"
        return None

    async def member_pages(self, group_id: str, limit_pages: int) -> tuple[list[str], list[float], list[str]]:
        """Every member id, page by page with ``membersAfter``; returns the ids, per-page latencies and problems."""
        ids: list[str] = []
        latencies: list[float] = []
        after: str | None = None
        for _ in range(limit_pages):
            params = {"membersAfter": after} if after else {}
            sent = time.perf_counter()
            response = await self.client.get(f"/Groups/{group_id}", params=params)
            latencies.append((time.perf_counter() - sent) * 1000)
            if response.status_code != 200:
                return ids, latencies, [f"GET members page after {after}: HTTP {response.status_code}"]
            page = [m.get("value") for m in response.json().get("members") or []]
            if len(page) > PAGE_LIMIT:
                return ids, latencies, [f"GET members page after {after}: {len(page)} members > {PAGE_LIMIT}"]
            if not page:
                return ids, latencies, []
            ids += page
            after = page[-1]
        return ids, latencies, [f"member paging stopped after {limit_pages} pages"]


def add_operation(ids: list[str]) -> list[dict[str, Any]]:
    return [{"op": "Add", "path": "members", "value": [{"$ref": None, "value": i} for i in ids]}]


def legacy_remove(ids: list[str]) -> list[dict[str, Any]]:
    return [{"op": "Remove", "path": "members", "value": [{"value": i} for i in ids]}]


def filter_removes(ids: list[str]) -> list[dict[str, Any]]:
    return [{"op": "remove", "path": f'members[value eq "{i}"]'} for i in ids]


def chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# ---------------------------------------------------------------------------------------------------------------------
# The workload


async def workload(base_url: str, token: str, args: argparse.Namespace, runner: Runner) -> dict[str, Any]:
    rng = random.Random(args.seed)
    n = args.members
    extra = range(n, n + SMALL_GROUP)
    tag = secrets.token_hex(3)
    checks: dict[str, Any] = {}
    async with ec.http_client(base_url, token, args.concurrency) as client:
        bench = Bench(client)
        warm = await client.get("/Users", params={"filter": 'userName eq "bench.warmup@contoso.example"'})
        if warm.status_code != 200:
            raise RuntimeError(f"warm-up GET /Users answered HTTP {warm.status_code}: {warm.text[:300]}")

        # 1. setup
        await runner.run(
            "POST /Users (setup)",
            [("POST /Users", f"POST /Users #{i}", lambda i=i: bench.create_user(i)) for i in (*extra, *range(n))],
        )
        bench.big = await bench.create_group(f"Bench big group {tag}")
        bench.small = await bench.create_group(f"Bench small group {tag}")
        small_members = [bench.user_ids[i] for i in extra if i in bench.user_ids]
        if len(small_members) != SMALL_GROUP:
            raise RuntimeError(f"only {len(small_members)} of the small group's {SMALL_GROUP} users were created")
        problem = await bench.patch(bench.small, add_operation(small_members), "PATCH small group")
        if problem:
            raise RuntimeError(problem)
        members = [bench.user_ids[i] for i in range(n) if i in bench.user_ids]
        print(f"  groups: big {bench.big}, small {bench.small} ({len(small_members)} members)")

        # 2. add every user to the big group, `batch` per PATCH
        batches = chunks(members, args.batch)
        added: set[str] = set()

        def add(k: int, ids: list[str]) -> Callable[[], Awaitable[str | None]]:
            async def send() -> str | None:
                problem = await bench.patch(bench.big, add_operation(ids), f"add-PATCH #{k}")
                if problem is None:
                    added.update(ids)
                return problem

            return send

        add_phase = await runner.run(
            "add-PATCH",
            [("add-PATCH", f"PATCH add {len(ids)} members (batch #{k})", add(k, ids)) for k, ids in enumerate(batches)],
            args.patch_concurrency,
        )

        # 3. membership checks
        present = sorted(added)
        sample = rng.sample(present, min(CHECKS, len(present)))
        outsiders = [small_members[k % SMALL_GROUP] if k % 2 else secrets.token_hex(16) for k in range(100)]
        jobs: list[Job] = [
            ("check member", f"check member {u}", lambda u=u: bench.check(bench.big, u, 1, f"check member {u}"))
            for u in sample
        ]
        jobs += [
            ("check non-member", f"check non-member {u}", lambda u=u: bench.check(bench.big, u, 0, f"non-member {u}"))
            for u in outsiders[:NON_MEMBER_CHECKS]
        ]
        rng.shuffle(jobs)
        await runner.run("membership check", jobs)

        # 4. removals: half legacy value lists, half members[value eq] filters
        removing = rng.sample(present, min(REMOVALS, len(present)))
        legacy, filtered = removing[: len(removing) // 2], removing[len(removing) // 2 :]
        removed: set[str] = set()

        def remove(ids: list[str], operations: list[dict[str, Any]], label: str) -> Callable[[], Awaitable[str | None]]:
            async def send() -> str | None:
                problem = await bench.patch(bench.big, operations, label)
                if problem is None:
                    removed.update(ids)
                return problem

            return send

        legacy_phase = await runner.run(
            "remove-PATCH legacy",
            [
                (
                    "remove-PATCH legacy",
                    f"PATCH Remove members [{len(ids)} values] #{k}",
                    remove(ids, legacy_remove(ids), f"legacy remove #{k}"),
                )
                for k, ids in enumerate(chunks(legacy, args.batch))
            ],
            args.patch_concurrency,
        )
        filter_phase = await runner.run(
            "remove-PATCH filter",
            [
                (
                    "remove-PATCH filter",
                    f"PATCH {len(ids)}x remove members[value eq] #{k}",
                    remove(ids, filter_removes(ids), f"filter remove #{k}"),
                )
                for k, ids in enumerate(chunks(filtered, FILTER_OPS_PER_PATCH))
            ],
            args.patch_concurrency,
        )
        gone = rng.sample(sorted(removed), min(REMOVED_CHECKS, len(removed)))
        await runner.run(
            "check removed",
            [
                ("check removed", f"check removed {u}", lambda u=u: bench.check(bench.big, u, 0, f"removed {u}"))
                for u in gone
            ],
        )
        expected = added - removed
        print(f"  paging the member list of the big group (expecting {len(expected)}) ...", end=" ", flush=True)
        started = time.perf_counter()
        listed, page_ms, problems = await bench.member_pages(bench.big, limit_pages=n // PAGE_LIMIT + 5)
        paging_s = time.perf_counter() - started
        print(f"{len(listed)} in {len(page_ms)} pages, {paging_s:.1f} s")
        listed_set = set(listed)
        if len(listed) != len(listed_set):
            problems.append(f"member pages repeat {len(listed) - len(listed_set)} ids")
        if listed != sorted(listed):
            problems.append("member pages are not in id order")
        if listed_set != expected:
            missing, unexpected = expected - listed_set, listed_set - expected
            problems.append(f"member list differs: {len(missing)} missing, {len(unexpected)} unexpected")
        checks["paging"] = {
            "expected": len(expected),
            "listed": len(listed),
            "pages": len(page_ms),
            "seconds": round(paging_s, 3),
            "page_p50_ms": round(ec.percentile(sorted(page_ms), 50), 2),
            "page_max_ms": round(max(page_ms), 2) if page_ms else math.nan,
            "problems": problems,
        }
        for problem in problems:
            print(f"    {problem}")

        # 5. latency vs group size, the four kinds interleaved so that drift hits them alike
        left = sorted(expected)
        big_sample = [left[rng.randrange(len(left))] for _ in range(SIZE_SAMPLES)] if left else []
        jobs = []
        for k, u_big in enumerate(big_sample):
            u_small = small_members[k % SMALL_GROUP]
            jobs += [
                ("GET small", "GET small group", lambda: bench.get_group(bench.small, "GET small")),
                ("GET big", "GET big group", lambda: bench.get_group(bench.big, "GET big")),
                ("check small", f"check small {u_small}", lambda u=u_small: bench.check(bench.small, u, 1, "small")),
                ("check big", f"check big {u_big}", lambda u=u_big: bench.check(bench.big, u, 1, f"big {u}")),
            ]
        rng.shuffle(jobs)
        size_phase = await runner.run("latency vs size", jobs)
        checks["size"] = {"small_members": len(small_members), "big_members": len(expected)}
    checks["writes"] = {
        "add-PATCH": writes(add_phase),
        "remove-PATCH legacy": writes(legacy_phase),
        "remove-PATCH filter": writes(filter_phase),
    }
    checks["size_ratios"] = size_ratios(size_phase)
    return checks


def writes(phase: Phase) -> dict[str, Any]:
    """Table write requests per PATCH, from the server's log lines for the phase."""
    patches = [r for r in phase.log_lines if r.get("method") == "PATCH" and r.get("endpoint") == "Groups"]
    statuses: dict[str, int] = {}
    for record in patches:
        statuses[str(record.get("status"))] = statuses.get(str(record.get("status")), 0) + 1
    server_ms = sorted(float(r["ms"]) for r in patches if isinstance(r.get("ms"), int | float))
    result: dict[str, Any] = {
        "patches_logged": len(patches),
        "statuses": statuses,
        "server_p50_ms": round(ec.percentile(server_ms, 50), 2),
        "server_max_ms": round(server_ms[-1], 2) if server_ms else math.nan,
    }
    for status, key in (("204", "ok"), ("409", "conflict")):
        counts = [r["writes"] for r in patches if str(r.get("status")) == status and _is_number(r.get("writes"))]
        if counts:
            result[key] = {
                "n": len(counts),
                "min": min(counts),
                "mean": round(sum(counts) / len(counts), 2),
                "max": max(counts),
            }
    result["logged_writes"] = any("writes" in r for r in patches)
    return result


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def size_ratios(phase: Phase) -> list[dict[str, Any]]:
    rows = {row["name"]: row for row in phase.rows()}
    out = []
    for kind in ("GET", "check"):
        small, big = rows.get(f"{kind} small"), rows.get(f"{kind} big")
        if small and big and small["requests"] and big["requests"]:
            out.append(
                {
                    "request": kind,
                    "small_p50": small["p50_ms"],
                    "big_p50": big["p50_ms"],
                    "p50_ratio": round(big["p50_ms"] / small["p50_ms"], 2),
                    "small_p99": small["p99_ms"],
                    "big_p99": big["p99_ms"],
                    "p99_ratio": round(big["p99_ms"] / small["p99_ms"], 2),
                }
            )
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Reporting


def report(results: dict[str, Any], phases: list[Phase]) -> int:
    checks = results["checks"]
    print("\n== Requests (client-side latency; req/s = requests / the phase's wall time share) ==")
    header = f"{'operation':<20} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    print(header)
    print("-" * len(header))
    errors = 0
    for phase in phases:
        errors += len(phase.error_list)
        for row in phase.rows():
            print(
                f"{row['name']:<20} {row['requests']:>8} {row['errors']:>6} {row['req_per_s']:>8.1f} "
                f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['max_ms']:>8.2f}"
            )
        if phase.not_run:
            print(f"{'  (not run: cap)':<20} {phase.not_run:>8}")
    paging = checks["paging"]
    print(
        f"{'GET members pages':<20} {paging['pages']:>8} {len(paging['problems']):>6} "
        f"{paging['pages'] / paging['seconds'] if paging['seconds'] else math.nan:>8.1f} "
        f"{paging['page_p50_ms']:>8.2f} {'':>8} {paging['page_max_ms']:>8.2f}   (sequential)"
    )
    errors += len(paging["problems"])
    capped = [f"{p.name} ({p.not_run} not run after {p.cap_s:.0f} s)" for p in phases if p.cap_hit]
    print("phase caps hit: " + (", ".join(capped) if capped else "none"))

    print("\n== CPU ms per request, by process (client, server and Azurite share the machine's CPUs) ==")
    print(f"{'phase':<20} {'wall s':>7} {'server':>7} {'azurite':>7} {'client':>7}")
    for phase in phases:
        cpu = phase.cpu_ms_per_request
        cells = " ".join(f"{cpu.get(k, math.nan):>7.2f}" for k in ("server", "azurite", "client"))
        print(f"{phase.name:<20} {phase.wall_s:>7.1f} {cells}")

    print("\n== Slowest requests per phase (client-side ms) ==")
    for phase in phases:
        shown = "; ".join(f"{ms:.0f} {label}" for ms, label in phase.slowest)
        print(f"{phase.name:<20} {shown}")

    print(
        f"\n== Latency vs group size ({checks['size']['small_members']} vs {checks['size']['big_members']} members) =="
    )
    header = (
        f"{'request':<44} {'p50 small':>9} {'p50 big':>8} {'ratio':>6}   {'p99 small':>9} {'p99 big':>8} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    names = {"GET": "GET /Groups/{id}?excludedAttributes=members", "check": "membership check (filter)"}
    for row in checks["size_ratios"]:
        print(
            f"{names[row['request']]:<44} {row['small_p50']:>9.2f} {row['big_p50']:>8.2f} {row['p50_ratio']:>6.2f}   "
            f"{row['small_p99']:>9.2f} {row['big_p99']:>8.2f} {row['p99_ratio']:>6.2f}"
        )

    print("\n== Table write requests per PATCH (from the server's scim.request log lines) ==")
    for name, stats in checks["writes"].items():
        statuses = ", ".join(f"{n} x {status}" for status, n in sorted(stats["statuses"].items()))
        logged = f"logged: {statuses or 'none'}; server p50 {stats['server_p50_ms']:.1f} ms"
        if not stats["logged_writes"]:
            print(f"{name:<20} n/a (server does not log writes)   ({logged})")
            continue
        cells = [
            f"{label}: min {w['min']} mean {w['mean']:.2f} max {w['max']} (n={w['n']})"
            for key, label in (("ok", "204"), ("conflict", "409"))
            if (w := stats.get(key))
        ]
        print(f"{name:<20} {'; '.join(cells) or 'no writes field on the 204s'}   ({logged})")
    print(
        f"\npaging: {paging['listed']} members listed in {paging['pages']} pages, expected {paging['expected']}"
        + (" -- OK" if not paging["problems"] else " -- " + "; ".join(paging["problems"]))
    )
    results["errors_total"] = errors
    print(f"errors: {errors}")
    return errors


# ---------------------------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000, help="N members of the big group (default 10000)")
    parser.add_argument("--batch", type=int, default=100, help="members per add/legacy-remove PATCH (default 100)")
    parser.add_argument("--concurrency", type=int, default=4, help="C concurrent client workers (default 4)")
    parser.add_argument(
        "--patch-concurrency",
        type=int,
        help="concurrent PATCHes to the big group (default: --concurrency); 1 sends them one after another",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--cap-scale",
        type=float,
        default=1.0,
        help="multiply every phase's time cap (default 1: about 3 min in all; e.g. 8 for the whole 10,000 on Azurite)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for the random samples (default 1)")
    args = parser.parse_args()
    if not 2 * REMOVALS <= args.members <= 100_000:
        parser.error(f"--members must be {2 * REMOVALS}..100000")
    args.patch_concurrency = args.patch_concurrency or args.concurrency
    if not 1 <= args.batch <= 1000 or not 1 <= args.concurrency <= 64 or not 1 <= args.patch_concurrency <= 64:
        parser.error("--batch must be 1..1000 and --concurrency and --patch-concurrency 1..64")
    return args


def main() -> int:
    args = parse_args()
    print("$ " + shlex.join([sys.executable, *sys.argv]))
    machine = ec.machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()))
    print(
        f"workload: {args.members} members, {args.batch} per PATCH, concurrency {args.concurrency} "
        f"(PATCHes {args.patch_concurrency}), httpx keep-alive, "
        f"phase caps {sum(PHASE_CAPS.values()) * args.cap_scale:.0f} s in all (x{args.cap_scale:g}), seed {args.seed}"
    )
    RESULTS_DIR.mkdir(exist_ok=True)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results: dict[str, Any] = {"command": [sys.executable, *sys.argv], "machine": machine, "config": config}
    started = time.perf_counter()
    with contextlib.ExitStack() as cleanup:
        port = azurite.free_port()
        store = azurite.start(port)
        cleanup.callback(azurite.stop, store)
        prefix = f"bench{secrets.token_hex(4)}"
        token = secrets.token_urlsafe(24)
        env = dict(os.environ)
        env.update(
            SCIM_STORAGE_CONNECTION_STRING=azurite.connection_string(port),
            SCIM_BEARER_TOKENS=token,
            SCIM_TABLE_PREFIX=prefix,
            NO_PROXY="127.0.0.1,localhost",
        )
        env.pop("SCIM_STORAGE_TABLE_URI", None)
        our_port = azurite.free_port()
        command = [sys.executable, "-m", "scim", "serve", "--host", HOST, "--port", str(our_port)]
        ours = ec.start_process(command, SERVER_LOG, env)
        cleanup.callback(ec.stop_process, ours)
        base = f"http://{HOST}:{our_port}/scim/v2"
        ec.wait_until_serving(ours, f"{base}/ServiceProviderConfig", token, SERVER_LOG)
        print(
            f"[setup] Azurite 127.0.0.1:{port} (in memory, pid {store.pid}); ours {base} (pid {ours.pid}), "
            f"table prefix {prefix}, server log {SERVER_LOG.relative_to(ec.REPO_ROOT)}"
        )
        runner = Runner(args, SERVER_LOG, {"server": ours.pid, "azurite": store.pid})
        results["checks"] = asyncio.run(workload(base, token, args, runner))
        if ours.poll() is not None:
            raise RuntimeError(f"our server exited with {ours.returncode}; log:\n{ec.tail(SERVER_LOG)}")
    results["total_s"] = round(time.perf_counter() - started, 1)
    results["phases"] = [phase.summary() for phase in runner.phases]
    results["requests"] = [row for phase in runner.phases for row in phase.rows()]
    errors = report(results, runner.phases)
    print(f"total {results['total_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    if errors:
        return 1
    if any(phase.not_run for phase in runner.phases):
        print("INCOMPLETE: a phase cap cut the run short (exit code 2); raise --cap-scale for the full run")
        return 2
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, ec._interrupt)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; every process this script started has been stopped", file=sys.stderr)
        sys.exit(130)
