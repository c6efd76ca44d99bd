"""Replay an Entra ID initial provisioning cycle against our endpoint (on Azurite) and against scim2-server.

For N users the cycle sends, phase after phase, over real HTTP with a keep-alive httpx client and C workers:

1. ``GET /Users?filter=userName eq "<name>"`` for each user, expecting ``totalResults`` 0 (Entra's lookup before
   a create);
2. ``POST /Users`` with an Entra-shaped body (core + enterprise schemas, externalId, userName, active, a primary work
   e-mail, name, department), expecting 201;
3. ``PATCH /Users/{id}`` with ``Replace active "False"`` and ``Replace emails[type eq "work"].value``, expecting
   200 or 204;

then a spot check (``GET /Users/{id}``) that the PATCHes took effect. In the same run it measures the floor (a bare
``azure-data-tables`` aio ``get_entity`` on the same Azurite) and the same client workload against scim2-server
(in-memory, its own CLI), and prints our req/s divided by theirs. Every process it starts is stopped on exit, Ctrl-C
or error. All traffic goes to 127.0.0.1. See bench/README.md for how to read the figures.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import secrets
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))

from scim.local import azurite  # noqa: E402

PEER_REQUIREMENT = "scim2-server==0.8.3"
PEER_VENV = BENCH_DIR / ".venv-peer"
RESULTS_DIR = BENCH_DIR / "results"
HOST = "127.0.0.1"

CORE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"
SPOT_CHECKS = 100
"""How many users (spread evenly over the N) are read back after the PATCH phase."""
REQUEST_TIMEOUT = 30.0
START_TIMEOUT = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NAMESPACE = uuid.UUID("6f0c0b8e-9a55-4bde-9a0e-2f6f3c1a7d42")


# ---------------------------------------------------------------------------------------------------------------------
# The workload: the same requests, in the same order, for both servers


def user_name(i: int) -> str:
    return f"bench.user{i:05d}@contoso.example"


def moved_email(i: int) -> str:
    return f"bench.user{i:05d}.moved@contoso.example"


def department(i: int) -> str:
    return f"Department {i % 25:02d}"


def post_body(i: int) -> bytes:
    given, family = f"Given{i:05d}", f"Family{i % 97:02d}"
    body = {
        "schemas": [CORE_SCHEMA, ENTERPRISE_SCHEMA],
        "externalId": str(uuid.uuid5(NAMESPACE, str(i))),
        "userName": user_name(i),
        "active": True,
        "displayName": f"{given} {family}",
        "emails": [{"primary": True, "type": "work", "value": user_name(i)}],
        "name": {"formatted": f"{given} {family}", "familyName": family, "givenName": given},
        ENTERPRISE_SCHEMA: {"department": department(i)},
    }
    return json.dumps(body).encode()


def patch_body(i: int) -> bytes:
    body = {
        "schemas": [PATCH_SCHEMA],
        "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": moved_email(i)},
        ],
    }
    return json.dumps(body).encode()


def work_email(document: dict[str, Any]) -> str | None:
    return next((e.get("value") for e in document.get("emails") or () if e.get("type") == "work"), None)


@dataclass
class Cycle:
    """One client run of the cycle against one server; ``ids[i]`` is what the server answered to user i's POST."""

    client: httpx.AsyncClient
    n: int
    ids: list[str | None] = field(default_factory=list)
    posts: list[bytes] = field(default_factory=list)
    patches: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ids = [None] * self.n
        self.posts = [post_body(i) for i in range(self.n)]
        self.patches = [patch_body(i) for i in range(self.n)]

    async def filter_get(self, i: int) -> str | None:
        response = await self.client.get("/Users", params={"filter": f'userName eq "{user_name(i)}"'})
        if response.status_code != 200:
            return f"filter-GET {i}: HTTP {response.status_code} {response.text[:200]}"
        body = response.json()
        if body.get("totalResults") != 0 or body.get("Resources"):
            return f"filter-GET {i}: expected totalResults 0, got {body.get('totalResults')}"
        return None

    async def post(self, i: int) -> str | None:
        response = await self.client.post("/Users", content=self.posts[i], headers={"Content-Type": SCIM_JSON})
        if response.status_code != 201:
            return f"POST {i}: HTTP {response.status_code} {response.text[:200]}"
        body = response.json()
        if not body.get("id") or body.get("userName") != user_name(i):
            return f"POST {i}: 201 without the id or userName: {response.text[:200]}"
        self.ids[i] = str(body["id"])
        return None

    async def patch(self, i: int) -> str | None:
        resource_id = self.ids[i]
        if resource_id is None:
            return f"PATCH {i}: no id (its POST failed)"
        response = await self.client.patch(
            f"/Users/{resource_id}", content=self.patches[i], headers={"Content-Type": SCIM_JSON}
        )
        if response.status_code not in (200, 204):
            return f"PATCH {i}: HTTP {response.status_code} {response.text[:200]}"
        if response.status_code == 200:
            body = response.json()
            if body.get("active") is not False or work_email(body) != moved_email(i):
                return f"PATCH {i}: 200 but the body does not show the change: {response.text[:200]}"
        return None

    async def spot_check(self, concurrency: int) -> tuple[int, list[str]]:
        """Read back up to SPOT_CHECKS users spread over the N and confirm the PATCH (and the POST) stuck."""
        count = min(self.n, SPOT_CHECKS)
        picks = sorted({round(k * (self.n - 1) / max(count - 1, 1)) for k in range(count)})
        gate = asyncio.Semaphore(concurrency)

        async def check(i: int) -> str | None:
            resource_id = self.ids[i]
            if resource_id is None:
                return f"spot-check {i}: no id"
            async with gate:
                response = await self.client.get(f"/Users/{resource_id}")
            if response.status_code != 200:
                return f"spot-check {i}: HTTP {response.status_code}"
            doc = response.json()
            enterprise = doc.get(ENTERPRISE_SCHEMA) or {}
            if doc.get("active") is not False or work_email(doc) != moved_email(i):
                return f"spot-check {i}: PATCH not applied: active={doc.get('active')!r} work={work_email(doc)!r}"
            if doc.get("userName") != user_name(i) or enterprise.get("department") != department(i):
                return f"spot-check {i}: userName/department changed: {response.text[:200]}"
            return None

        outcomes = await asyncio.gather(*(check(i) for i in picks), return_exceptions=True)
        problems = [str(o) if isinstance(o, BaseException) else o for o in outcomes]
        return len(picks), [p for p in problems if p]


# ---------------------------------------------------------------------------------------------------------------------
# Measuring


def process_cpu(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    snapshot = {name: process_cpu(pid) for name, pid in pids.items()}
    snapshot["client"] = time.process_time()
    return snapshot


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_row(name: str, latencies: list[float], errors: int, seconds: float) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "name": name,
        "requests": len(ordered),
        "errors": errors,
        "seconds": round(seconds, 3),
        "req_per_s": round(len(ordered) / seconds, 1) if seconds > 0 else math.nan,
        "p50_ms": round(percentile(ordered, 50), 2),
        "p99_ms": round(percentile(ordered, 99), 2),
        "max_ms": round(ordered[-1], 2) if ordered else math.nan,
    }


Step = tuple[str, Callable[[int], Awaitable[str | None]]]


@dataclass
class Phase:
    """One pass over users 0..n-1 where each worker runs ``steps`` (one request each, in order) for a user."""

    name: str
    planned: int
    wall_s: float = 0.0
    users_done: int = 0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)

    def error_count(self, kind: str) -> int:
        return len(self.errors[kind]) + (self.planned - self.users_done)

    def kind_rows(self) -> list[dict[str, Any]]:
        """One row per request kind; a kind that shares the phase gets the share of the wall time its requests took."""
        busy = sum(sum(values) for values in self.latencies.values()) or 1.0
        return [
            latency_row(kind, values, self.error_count(kind), self.wall_s * sum(values) / busy)
            for kind, values in self.latencies.items()
        ]

    def summary(self) -> dict[str, Any]:
        requests = sum(len(values) for values in self.latencies.values())
        return {
            "phase": self.name,
            "users": self.users_done,
            "requests": requests,
            "wall_s": round(self.wall_s, 3),
            "req_per_s": round(requests / self.wall_s, 1) if self.wall_s else math.nan,
            "cpu_ms_per_request": {k: round(v, 2) for k, v in self.cpu_ms_per_request.items()},
            "first_errors": [e for errors in self.errors.values() for e in errors][:5],
        }


async def run_phase(name: str, n: int, args: argparse.Namespace, steps: list[Step], pids: dict[str, int]) -> Phase:
    """Run the steps for users 0..n-1 with ``args.concurrency`` workers; no new user starts after the phase cap."""
    phase = Phase(name, n, latencies={kind: [] for kind, _ in steps}, errors={kind: [] for kind, _ in steps})
    indexes: Iterator[int] = iter(range(n))
    before = cpu_snapshot(pids)
    started = time.perf_counter()
    deadline = started + args.phase_cap

    async def worker() -> None:
        for i in indexes:
            if time.perf_counter() > deadline:
                return
            for kind, send in steps:
                sent = time.perf_counter()
                try:
                    problem = await send(i)
                except Exception as exc:
                    problem = f"{kind} {i}: {type(exc).__name__}: {exc}"
                phase.latencies[kind].append((time.perf_counter() - sent) * 1000)
                if problem:
                    phase.errors[kind].append(problem)
            phase.users_done += 1

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    phase.wall_s = time.perf_counter() - started
    after = cpu_snapshot(pids)
    requests = sum(len(values) for values in phase.latencies.values())
    phase.cpu_ms_per_request = {k: (after[k] - before[k]) * 1000 / max(requests, 1) for k in before}
    problems = [e for errors in phase.errors.values() for e in errors]
    if problems or phase.users_done < n:
        first = problems[0] if problems else f"phase cap reached after {phase.users_done} users"
        print(f"\n    {name}: {len(problems)} errors, {n - phase.users_done} users not run; first: {first}")
    return phase


def http_client(base_url: str, token: str, concurrency: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}", "Accept": SCIM_JSON},
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=REQUEST_TIMEOUT,
        trust_env=False,
    )


async def run_cycle(label: str, base_url: str, token: str, args: argparse.Namespace, pids: dict[str, int]) -> dict:
    async with http_client(base_url, token, args.concurrency) as client:
        cycle = Cycle(client, args.users)
        # One unmeasured lookup so that one-off work (our table's create-if-not-exists) is not in the figures.
        warm = await client.get("/Users", params={"filter": 'userName eq "bench.warmup@contoso.example"'})
        if warm.status_code != 200:
            raise RuntimeError(f"{label}: warm-up filter-GET answered HTTP {warm.status_code}: {warm.text[:300]}")
        lookup: Step = ("filter-GET", cycle.filter_get)
        create: Step = ("POST", cycle.post)
        update: Step = ("PATCH", cycle.patch)
        if args.order == "entra":
            plan = [("lookup+create", [lookup, create]), ("PATCH", [update])]
        else:
            plan = [("filter-GET", [lookup]), ("POST", [create]), ("PATCH", [update])]
        phases = []
        for name, steps in plan:
            print(f"  [{label}] {name} x{args.users} users ...", end=" ", flush=True)
            phase = await run_phase(name, args.users, args, steps, pids)
            print(f"{phase.summary()['req_per_s']:.0f} req/s", flush=True)
            phases.append(phase)
        checked, problems = await cycle.spot_check(args.concurrency)
    for problem in problems[:5]:
        print(f"    {problem}")
    kinds = [row for phase in phases for row in phase.kind_rows()]
    all_latencies = [x for phase in phases for values in phase.latencies.values() for x in values]
    total = latency_row(
        "overall", all_latencies, sum(row["errors"] for row in kinds), sum(phase.wall_s for phase in phases)
    )
    return {
        "kinds": [*kinds, total],
        "phases": [phase.summary() for phase in phases],
        "spot_check": {"checked": checked, "failed": len(problems), "first_failures": problems[:5]},
    }


async def measure_floor(connection_string: str, table_name: str, args: argparse.Namespace, pids: dict[str, int]):
    """A bare azure-data-tables aio point read of one user-sized entity, as many times as there are users."""
    from azure.data.tables.aio import TableServiceClient

    document = json.loads(post_body(0))
    entity = {"PartitionKey": "default~User", "RowKey": "r:floor", "doc": json.dumps(document), "userName": "x"}
    async with TableServiceClient.from_connection_string(connection_string) as service:
        table = await service.create_table_if_not_exists(table_name)
        try:
            await table.upsert_entity(entity)

            async def read(_: int) -> str | None:
                got = await table.get_entity(entity["PartitionKey"], entity["RowKey"])
                return None if got["RowKey"] == entity["RowKey"] else "floor: wrong entity"

            await asyncio.gather(*(read(i) for i in range(args.concurrency)))  # open the connection pool
            phase = await run_phase("get_entity", args.users, args, [("get_entity", read)], pids)
        finally:
            await service.delete_table(table_name)
    return {"kinds": phase.kind_rows(), "phases": [phase.summary()]}


# ---------------------------------------------------------------------------------------------------------------------
# Processes: Azurite, our endpoint, the peer


def wait_until_serving(process: subprocess.Popen[bytes], url: str, token: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(trust_env=False, timeout=2.0) as probe:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{url} exited with {process.returncode}; log:\n{tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if probe.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200:
                    return
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {START_TIMEOUT:.0f} s; log:\n{tail(log)}")


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_process(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Its own session, so that a Ctrl-C reaches only this script, which then stops it in order."""
    with log.open("wb") as sink:
        return subprocess.Popen(  # noqa: S603
            command, cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # aiohttp and wsgiref both shut down cleanly on SIGINT
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def peer_python(args: argparse.Namespace) -> tuple[Path, str]:
    """The interpreter that has scim2-server: --peer-python, or bench/.venv-peer (created here on first use)."""
    python = Path(args.peer_python) if args.peer_python else PEER_VENV / "bin" / "python"
    version = peer_version(python)
    if version is None and not args.peer_python:
        print(f"[setup] creating {PEER_VENV.relative_to(REPO_ROOT)} with {PEER_REQUIREMENT} (one-off, from PyPI)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True, timeout=120)  # noqa: S603
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", PEER_REQUIREMENT]
        installed = subprocess.run(pip, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
        if installed.returncode != 0:
            raise SystemExit(f"pip could not install {PEER_REQUIREMENT}:\n{installed.stdout}{installed.stderr}")
        version = peer_version(python)
    if version is None:
        raise SystemExit(f"{python} cannot import scim2_server; pass --peer-python or delete {PEER_VENV}")
    return python, version


def peer_version(python: Path) -> str | None:
    if not python.exists():
        return None
    probe = [str(python), "-c", "import importlib.metadata as m, scim2_server; print(m.version('scim2-server'))"]
    result = subprocess.run(probe, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    return result.stdout.strip() if result.returncode == 0 else None


PEER_LAUNCHER = (
    "import sys; from importlib.metadata import entry_points; "
    "main = entry_points(group='console_scripts')['scim2-server'].load(); "
    "sys.argv[0] = 'scim2-server'; sys.exit(main())"
)


# ---------------------------------------------------------------------------------------------------------------------
# Reporting


def machine_info() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in line
            ),
            "?",
        )
    quota = "none"
    with contextlib.suppress(OSError):
        quota = Path("/sys/fs/cgroup/cpu.max").read_text().strip()
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cgroup_cpu_max": quota,
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "git": git_revision(),
    }


def git_revision() -> str:
    """The commit the endpoint's code comes from, with ``-dirty`` when the work tree has changes."""
    command = ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        result = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)  # noqa: S603
        if result.returncode == 0:
            return result.stdout.strip()
    return "?"


def print_kinds(rows: list[tuple[str, dict[str, Any]]]) -> None:
    header = (
        f"{'target':<6} {'request':<11} {'requests':>8} {'errors':>6} {'req/s':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for target, row in rows:
        print(
            f"{target:<6} {row['name']:<11} {row['requests']:>8} {row['errors']:>6} {row['req_per_s']:>8.1f} "
            f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['max_ms']:>8.2f}"
        )


def print_phases(rows: list[tuple[str, dict[str, Any]]]) -> None:
    header = (
        f"{'target':<6} {'phase':<14} {'requests':>8} {'wall s':>7} {'req/s':>7}   "
        f"CPU ms per request: {'server':>6} {'azurite':>7} {'client':>6}"
    )
    print(header)
    print("-" * len(header))
    for target, row in rows:
        cpu = row["cpu_ms_per_request"]
        cells = " ".join(
            f"{cpu[k]:>{width}.2f}" if k in cpu else f"{'-':>{width}}"
            for k, width in (("server", 6), ("azurite", 7), ("client", 6))
        )
        print(
            f"{target:<6} {row['phase']:<14} {row['requests']:>8} {row['wall_s']:>7.1f} {row['req_per_s']:>7.1f}   "
            f"{'':<20}{cells}"
        )


def report(results: dict[str, Any]) -> int:
    targets = [t for t in ("ours", "peer", "floor") if t in results]
    print(f"\n== Requests (order: {results['config']['order']}) ==")
    print_kinds([(t, row) for t in targets for row in results[t]["kinds"]])
    print("\n== Phases (client, server and Azurite share the machine's CPUs) ==")
    print_phases([(t, row) for t in targets for row in results[t]["phases"]])
    print()
    errors = sum(row["errors"] for t in targets for row in results[t]["kinds"] if row["name"] != "overall")
    for target in ("ours", "peer"):
        if target in results:
            spot = results[target]["spot_check"]
            errors += spot["failed"]
            print(f"spot-check {target}: {spot['checked'] - spot['failed']}/{spot['checked']} users show the PATCH")
    if "ours" in results and "peer" in results:
        theirs = {row["name"]: row["req_per_s"] for row in results["peer"]["kinds"]}
        ratios = {row["name"]: round(row["req_per_s"] / theirs[row["name"]], 2) for row in results["ours"]["kinds"]}
        results["ratio_ours_over_peer"] = ratios
        print("ours / peer, req/s: " + "   ".join(f"{k} {v:.2f}x" for k, v in ratios.items()) + "   (target >= 1.5x)")
    if "floor" in results and "ours" in results:
        floor = results["floor"]["kinds"][0]
        lookup = next(row for row in results["ours"]["kinds"] if row["name"] == "filter-GET")
        print(
            f"floor (bare aio get_entity, same Azurite, same C): {floor['req_per_s']:.0f} req/s, "
            f"p50 {floor['p50_ms']:.2f} ms, p99 {floor['p99_ms']:.2f} ms; "
            f"our filter-GET p50 = {lookup['p50_ms'] / floor['p50_ms']:.1f}x the floor's"
        )
    results["errors_total"] = errors
    print(f"errors: {errors}")
    return errors


# ---------------------------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000, help="N users in the cycle (default 2000)")
    parser.add_argument("--concurrency", type=int, default=8, help="C concurrent client workers (default 8)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--order",
        choices=("entra", "phased"),
        default="entra",
        help="entra (default): each user's filter-GET then its POST, then all PATCHes; "
        "phased: all filter-GETs, then all POSTs, then all PATCHes",
    )
    parser.add_argument("--peer-python", help="a python that has scim2-server (default: bench/.venv-peer, made here)")
    parser.add_argument("--no-peer", action="store_true", help="skip the scim2-server run")
    parser.add_argument(
        "--phase-cap", type=float, default=120.0, help="seconds after which a phase stops (default 120)"
    )
    parser.add_argument("--profile-server", type=Path, help="run our server under cProfile and write its stats here")
    args = parser.parse_args()
    if not 1 <= args.users <= 100_000 or not 1 <= args.concurrency <= 256:
        parser.error("--users must be 1..100000 and --concurrency 1..256")
    return args


def main() -> int:
    args = parse_args()
    print("$ " + shlex.join([sys.executable, *sys.argv]))
    machine = machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()))
    print(
        f"workload: N={args.users} users, concurrency {args.concurrency}, order {args.order}, "
        f"httpx keep-alive, phase cap {args.phase_cap:.0f} s"
    )
    RESULTS_DIR.mkdir(exist_ok=True)
    peer = None if args.no_peer else peer_python(args)
    if peer:
        print(f"peer: scim2-server {peer[1]} ({peer[0]})")
        results_peer = {"version": peer[1], "python": str(peer[0])}
    results: dict[str, Any] = {"command": [sys.executable, *sys.argv], "machine": machine, "config": vars(args).copy()}
    results["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in results["config"].items()}
    if peer:
        results["peer_server"] = results_peer
    started = time.perf_counter()
    with contextlib.ExitStack() as cleanup:
        port = azurite.free_port()
        store = azurite.start(port)
        cleanup.callback(azurite.stop, store)
        prefix = f"bench{secrets.token_hex(4)}"
        token = secrets.token_urlsafe(24)
        connection_string = azurite.connection_string(port)
        env = dict(os.environ)
        env.update(
            SCIM_STORAGE_CONNECTION_STRING=connection_string,
            SCIM_BEARER_TOKENS=token,
            SCIM_TABLE_PREFIX=prefix,
            NO_PROXY="127.0.0.1,localhost",
        )
        env.pop("SCIM_STORAGE_TABLE_URI", None)
        our_port = azurite.free_port()
        command = [sys.executable]
        if args.profile_server:
            command += ["-m", "cProfile", "-o", str(args.profile_server.resolve())]
        command += ["-m", "scim", "serve", "--host", HOST, "--port", str(our_port)]
        log = RESULTS_DIR / "our-server.log"
        ours = start_process(command, log, env)
        cleanup.callback(stop_process, ours)
        base = f"http://{HOST}:{our_port}/scim/v2"
        wait_until_serving(ours, f"{base}/ServiceProviderConfig", token, log)
        print(
            f"[setup] Azurite 127.0.0.1:{port} (in memory, pid {store.pid}); "
            f"ours {base} (pid {ours.pid}), table prefix {prefix}"
        )
        pids = {"server": ours.pid, "azurite": store.pid}
        results["ours"] = asyncio.run(run_cycle("ours", base, token, args, pids))
        stop_process(ours)
        print(f"  [floor] get_entity x{args.users} ...", end=" ", flush=True)
        results["floor"] = asyncio.run(measure_floor(connection_string, f"{prefix}Floor", args, {"azurite": store.pid}))
        print(f"{results['floor']['phases'][0]['req_per_s']:.0f} req/s", flush=True)
        azurite.stop(store)
        if peer:
            peer_port = azurite.free_port()
            log = RESULTS_DIR / "peer-server.log"
            peer_command = [str(peer[0]), "-c", PEER_LAUNCHER, "--hostname", HOST, "--port", str(peer_port)]
            theirs = start_process([*peer_command, "--bearer-token", token], log)
            cleanup.callback(stop_process, theirs)
            peer_base = f"http://{HOST}:{peer_port}/v2"
            wait_until_serving(theirs, f"{peer_base}/ServiceProviderConfig", token, log)
            print(f"[setup] peer {peer_base} (pid {theirs.pid})")
            results["peer"] = asyncio.run(run_cycle("peer", peer_base, token, args, {"server": theirs.pid}))
    results["total_s"] = round(time.perf_counter() - started, 1)
    errors = report(results)
    print(f"total {results['total_s']:.0f} s (not counting the peer venv's creation)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 1 if errors else 0


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; every process this script started has been stopped", file=sys.stderr)
        sys.exit(130)
