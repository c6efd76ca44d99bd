"""What removing members costs in storage requests and time, measured on the wire, over HTTP.

Entra re-sends a PATCH whose answer it did not get (a timeout, a 503); a re-sent removal names members that are
already gone. This script runs ``python -m scim serve`` (from this checkout, or from ``--code DIR``, so that an
older revision can be measured the same way) against Azurite through a recording proxy
(``tests/storage_traffic.py``) and prints, for each step, the answer, the time, and the storage requests it caused:

1. ``add``: PATCH adding ``--members`` existing users to a group;
2. ``remove``: PATCH removing them all (present);
3. ``remove again``: the same PATCH, re-sent (every member absent);
4. ``remove made-up``: PATCH removing ``--members`` ids that were never members.

    .venv/bin/python bench/member_removal.py                      # 1,000 members
    git worktree add /tmp/before <rev> && .venv/bin/python bench/member_removal.py --code /tmp/before
"""

import argparse
import asyncio
import json
import re
import secrets
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
from tests.storage_traffic import TrafficProxy  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000, help="members per PATCH (at most 1,000)")
    parser.add_argument("--code", type=Path, default=REPO_ROOT, help="the checkout whose server is measured")
    parser.add_argument("--timeout", type=float, default=60.0, help="client timeout per request, seconds")
    return parser.parse_args()


async def create_users(http: httpx.AsyncClient, count: int) -> list[str]:
    semaphore = asyncio.Semaphore(8)

    async def create(index: int) -> str:
        async with semaphore:
            body = {"schemas": [USER], "userName": f"bench{index}-{secrets.token_hex(3)}@example.com"}
            response = await http.post("/Users", json=body)
            response.raise_for_status()
            return str(response.json()["id"])

    return list(await asyncio.gather(*(create(i) for i in range(count))))


def logged_writes(log_path: Path, seen: int) -> tuple[list[int], int]:
    """The ``writes`` of PATCH request lines logged since line ``seen``."""
    lines = log_path.read_text(errors="replace").splitlines()
    found = []
    for line in lines[seen:]:
        match = re.search(r"\{\"event\": \"scim.request\".*\}", line)
        if match and json.loads(match.group(0))["method"] == "PATCH":
            found.append(int(json.loads(match.group(0))["writes"]))
    return found, len(lines)


async def run(args: argparse.Namespace, base_url: str, token: str, traffic: TrafficProxy, log: Path) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=args.timeout) as http:
        users = await create_users(http, args.members)
        group = (await http.post("/Groups", json={"schemas": [GROUP], "displayName": "bench"})).json()["id"]
        named = [{"value": user} for user in users]
        made_up = [{"value": secrets.token_hex(16)} for _ in range(args.members)]
        steps = [
            ("add", {"op": "add", "path": "members", "value": named}),
            ("remove", {"op": "remove", "path": "members", "value": named}),
            ("remove again", {"op": "remove", "path": "members", "value": named}),
            ("remove made-up", {"op": "remove", "path": "members", "value": made_up}),
        ]
        print(f"{'step':<16}{'status':>7}{'seconds':>9}{'txns':>7}{'ops':>8}{'writes':>8}{'reads':>7}{'logged':>8}")
        seen = len((await asyncio.to_thread(log.read_text, errors="replace")).splitlines())
        for name, operation in steps:
            mark = traffic.mark()
            started = time.perf_counter()
            try:
                response = await http.patch(f"/Groups/{group}", json={"schemas": [PATCH], "Operations": [operation]})
                status: Any = response.status_code
            except httpx.TimeoutException:
                status = "timeout"
            seconds = time.perf_counter() - started
            await asyncio.sleep(0.2)  # the log line is written after the answer
            calls = await asyncio.to_thread(traffic.since, mark)
            transactions = [call for call in calls if call.kind == "batch"]
            writes = [call for call in calls if call.kind in ("batch", "write")]
            reads = [call for call in calls if call.kind in ("point-read", "query")]
            logged, seen = await asyncio.to_thread(logged_writes, log, seen)
            print(
                f"{name:<16}{status!s:>7}{seconds:>9.2f}{len(transactions):>7}"
                f"{sum(t.operations for t in transactions):>8}{len(writes):>8}{len(reads):>7}"
                f"{','.join(map(str, logged)) or '-':>8}"
            )


def main() -> int:
    args = parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    port = azurite.free_port()
    process = azurite.start(port)
    log = BENCH_DIR / "results" / f"member_removal-{secrets.token_hex(3)}.log"
    log.parent.mkdir(exist_ok=True)
    try:
        with TrafficProxy(port) as traffic, log.open("wb") as log_file:
            server = LocalServer(azurite.connection_string(traffic.port), "bench", log_file, root=args.code.resolve())
            server.start()
            try:
                asyncio.run(run(args, server.base_url, server.token, traffic, log))
            finally:
                server.close()
    finally:
        azurite.stop(process)
    print("txns: $batch requests; ops: rows they carried; writes: every write request; logged: the request log's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
