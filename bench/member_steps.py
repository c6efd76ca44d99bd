"""The longest event-loop steps of a 1,000-member group PATCH and GET, in CPU time, and the code they ran.

One instance serves every tenant on one event loop, so a single step (a callback, or a task's run between two
``await``s) of one request holds every other request of every tenant until it returns. ``bench/fairness.py --stalls``
finds such steps on a served instance among many requests; this script isolates one request at a time: it drives the
handler layer in-process (as the tests do) against Azurite, times every step of the loop in thread CPU time while
each request runs, and prints the longest ones with where each started and where it stopped (the innermost
coroutine frames), the garbage collector's share, and how many CPU turns (:mod:`scim.cpu_share`) the request took.

The requests, on a group of ``--members`` (default 1,000, the cap) users: the PATCH adding them all, a ``GET`` of
the group (every member rendered), the PATCH removing them all, the same removal re-sent (every member absent), the
add again and a removal of them all through one ``members[value eq "…" or …]`` path, and Entra's usual
100-member add and remove for comparison (which should take no turns of their own).

    .venv/bin/python bench/member_steps.py                      # 3 runs of each request, 3 longest (~1 min)
    .venv/bin/python bench/member_steps.py --repeat 5 --top 6
    git worktree add /tmp/before <rev> && .venv/bin/python bench/member_steps.py --code /tmp/before
"""

import argparse
import asyncio
import asyncio.events
import gc
import json
import secrets
import statistics
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BASE_URL = "http://127.0.0.1/scim/v2"


@dataclass
class Step:
    cpu_ms: float
    gc_ms: float
    oldest: int
    """The oldest generation the garbage collector collected in the step (-1: none)."""
    started: str
    stopped: str

    @property
    def generation(self) -> str:
        return f" gc{self.oldest}" if self.oldest >= 0 else ""

    @property
    def work_ms(self) -> float:
        """The step's own CPU: a garbage collection runs in whichever step allocates when the threshold is met."""
        return self.cpu_ms - self.gc_ms


@dataclass
class StepProbe:
    """Every step of the running loop in thread CPU time, with where its task started and stopped."""

    steps: list[Step] = field(default_factory=list)
    recording: bool = False
    ignored: "asyncio.Task[Any] | None" = None
    """The script's own task, whose bookkeeping between requests is not theirs."""
    collected: float = 0.0
    collecting: float | None = None
    oldest: int = -1

    def install(self) -> None:
        original = asyncio.events.Handle._run
        probe = self

        def timed_run(handle: asyncio.events.Handle) -> None:
            if not probe.recording or getattr(handle._callback, "__self__", None) is probe.ignored:
                original(handle)
                return
            started = where(handle)
            probe.collected, probe.oldest = 0.0, -1
            cpu = time.thread_time()
            try:
                original(handle)
            finally:
                spent = (time.thread_time() - cpu) * 1000
                probe.steps.append(Step(spent, probe.collected * 1000, probe.oldest, started, where(handle)))

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
        gc.callbacks.append(self.on_gc)

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.collecting = time.thread_time()
        elif self.collecting is not None:
            self.collected += time.thread_time() - self.collecting
            self.oldest = max(self.oldest, info["generation"])
            self.collecting = None


def where(handle: asyncio.events.Handle) -> str:
    """The innermost ``scim/`` frames of the coroutine chain a task step is in (before it runs: where it resumes;
    after: where it awaits), or the callback's name."""
    task = getattr(handle._callback, "__self__", None)
    if not isinstance(task, asyncio.Task):
        return str(getattr(handle._callback, "__qualname__", "callback"))  # never repr(): some have side effects
    frames: list[str] = []
    coroutine: Any = task.get_coro()
    while isinstance(coroutine, types.CoroutineType | types.AsyncGeneratorType):
        code = coroutine.cr_code if isinstance(coroutine, types.CoroutineType) else coroutine.ag_code
        if "/scim/" in code.co_filename and "/site-packages/" not in code.co_filename:
            frames.append(f"{Path(code.co_filename).stem}.{code.co_name}")
        coroutine = coroutine.cr_await if isinstance(coroutine, types.CoroutineType) else coroutine.ag_await
    return " > ".join(frames[-3:]) or "(outside scim)"


def request(token: str, method: str, path: str, body: Any = None) -> Any:
    """A request as the host hands it over: its body already bytes (encoding it is the client's work, not ours)."""
    from scim.messages import ScimRequest

    name, _, resource_id = path.partition("/")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    raw = b"" if body is None else json.dumps(body).encode()
    return ScimRequest(method, name, resource_id or None, {}, headers, raw, BASE_URL)


async def call(endpoint: Any, scim_request: Any) -> Any:
    response = await endpoint.handle(scim_request)
    if response.status >= 300:
        raise RuntimeError(f"{scim_request.method} {scim_request.endpoint}: {response.status} {response.document}")
    return response.document


class TurnCounter:
    """How many CPU turns (:func:`scim.cpu_share.turn`) the running request takes."""

    def __init__(self) -> None:
        from scim import cpu_share

        self.count = 0
        original = cpu_share.turn

        def counted() -> Any:
            self.count += 1
            return original()

        cpu_share.turn = counted  # type: ignore[assignment]


async def measure(args: argparse.Namespace, connection: str) -> None:
    from scim.dispatch import ScimEndpoint
    from scim.settings import Settings
    from scim.store.tables import TableStore

    store = TableStore.from_settings(connection, None, "steps")
    tenant, token = f"t{secrets.token_hex(5)}", secrets.token_urlsafe(24)
    settings = Settings(storage_connection_string="unused", storage_table_uri=None, bearer_tokens=((tenant, token),))
    endpoint = ScimEndpoint(settings, store)
    semaphore = asyncio.Semaphore(16)

    async def create(index: int) -> str:
        async with semaphore:
            user = {"schemas": [USER], "userName": f"u{index}@x.org"}
            created = await call(endpoint, request(token, "POST", "Users", user))
            return str(created["id"])

    ids = list(await asyncio.gather(*(create(i) for i in range(args.members))))
    group = (await call(endpoint, request(token, "POST", "Groups", {"schemas": [GROUP], "displayName": "g"})))["id"]
    small = (await call(endpoint, request(token, "POST", "Groups", {"schemas": [GROUP], "displayName": "s"})))["id"]
    gc.collect()
    gc.freeze()  # as the served app does once started (scim/dispatch.py)

    def members_patch(op: str, members: list[str]) -> dict[str, Any]:
        return {
            "schemas": [PATCH],
            "Operations": [{"op": op, "path": "members", "value": [{"value": m} for m in members]}],
        }

    def filter_patch(members: list[str]) -> dict[str, Any]:
        path = "members[" + " or ".join(f'value eq "{member}"' for member in members) + "]"
        return {"schemas": [PATCH], "Operations": [{"op": "remove", "path": path}]}

    sent = [
        (f"PATCH add {args.members}", "PATCH", f"Groups/{group}", members_patch("add", ids)),
        (f"GET group of {args.members}", "GET", f"Groups/{group}", None),
        (f"PATCH remove {args.members}", "PATCH", f"Groups/{group}", members_patch("remove", ids)),
        (f"PATCH remove {args.members} again", "PATCH", f"Groups/{group}", members_patch("remove", ids)),
        (f"PATCH add {args.members} back", "PATCH", f"Groups/{group}", members_patch("add", ids)),
        (f"PATCH remove {args.members} by filter", "PATCH", f"Groups/{group}", filter_patch(ids)),
        ("PATCH add 100", "PATCH", f"Groups/{small}", members_patch("add", ids[:100])),
        ("PATCH remove 100", "PATCH", f"Groups/{small}", members_patch("remove", ids[:100])),
    ]
    probe = StepProbe()
    probe.install()
    probe.ignored = asyncio.current_task()
    turns = TurnCounter()
    heading = "the longest steps' CPU ms (of which gc; gcN: the oldest generation collected)"
    print(f"{'request':28} {'turns':>5} {'steps':>6}  {'work':>5}  {heading}")
    every: dict[str, list[list[Step]]] = {}
    for _ in range(args.repeat):
        for name, method, path, body in sent:
            prepared = request(token, method, path, body)
            turns.count = 0
            probe.steps, probe.recording = [], True
            await asyncio.create_task(call(endpoint, prepared))
            probe.recording = False
            every.setdefault(name, []).append(probe.steps)
            longest = sorted(probe.steps, key=lambda step: step.cpu_ms, reverse=True)[: args.top]
            work = max(step.work_ms for step in probe.steps)
            shown = ", ".join(f"{s.cpu_ms:.2f} ({s.gc_ms:.1f}{s.generation})" for s in longest)
            print(f"{name:28} {turns.count:5} {len(probe.steps):6}  {work:5.2f}  {shown}")
    print("\nper request, the median over the runs of its longest step's own work (CPU less garbage collection), and")
    print("where the longest steps' own work ran (started => stopped), each place's longest and how often it ran:")
    for name, runs in every.items():
        print(f"  {name}: {statistics.median(max(s.work_ms for s in steps) for steps in runs):.2f} ms")
        places: dict[tuple[str, str], list[Step]] = {}
        for step in (step for steps in runs for step in steps):
            places.setdefault((step.started, step.stopped), []).append(step)
        ranked = sorted(places.items(), key=lambda item: max(s.work_ms for s in item[1]), reverse=True)
        for (started, stopped), found in ranked[: args.top]:
            top = max(found, key=lambda s: s.work_ms)
            collected = f"+gc {top.gc_ms:.1f}{top.generation}"
            print(f"    {top.work_ms:5.2f} ms ({collected}) x{len(found):<5} {started}  =>  {stopped}")
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--code", type=Path, default=REPO_ROOT, help="the checkout whose handler layer is measured")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    from scim.local import azurite

    print(f"measuring {args.code.resolve()}")
    port = azurite.free_port()
    process = azurite.start(port)
    try:
        asyncio.run(measure(args, azurite.connection_string(port)))
    finally:
        azurite.stop(process)


if __name__ == "__main__":
    main()
