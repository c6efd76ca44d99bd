"""Cold start: from process start to the first 200 on Entra's ``userName`` match, with the breakdown.

Each run is a fresh Python process that does what the Functions worker does: import ``function_app`` (the worker
indexes the functions by importing it), then call the ``users`` function with an ``azure.functions.HttpRequest`` for
``GET /Users?filter=userName eq "…"``, then once more (warm). Storage is Azurite behind ``tests/storage_traffic.py``
with ``--delay`` per storage request (10 ms by default, a network hop), so the first request's extra storage calls
(the table check, done once per process) show in its latency and are counted on the wire.

Printed per phase, median over ``--runs`` processes: interpreter start (``Popen`` to the script's first line),
``import function_app``, the first request (settings, clients, first connection, table check, the lookup), and the
second request of the same process; then the first request's storage calls, and the slowest imports
(``-X importtime``).

    .venv/bin/python bench/cold_start.py                   # 7 processes, 10 ms storage delay
    .venv/bin/python bench/cold_start.py --runs 3 --delay 0
"""

import argparse
import json
import os
import secrets
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))

from scim.local import azurite  # noqa: E402
from tests.storage_traffic import TrafficProxy, sequential  # noqa: E402

USER_NAME = "cold.start@contoso.example"
CHILD = """
import time
began, began_clock = time.time(), time.monotonic()
import asyncio, json, sys
sys.path.insert(0, {root!r})
started = time.perf_counter()
import function_app
imported = time.perf_counter()
import azure.functions as func

def lookup():
    return func.HttpRequest(
        "GET", "http://localhost/scim/v2/Users", headers={{"Authorization": "Bearer {token}"}},
        params={{"filter": 'userName eq "{user}"'}}, route_params={{}}, body=b"",
    )

async def main():
    marks = []
    for _ in range(2):
        first_clock = time.monotonic()
        before = time.perf_counter()
        response = await function_app.users(lookup())
        marks.append((first_clock, time.monotonic(), time.perf_counter() - before, response.status_code))
    return marks

marks = asyncio.run(main())
print(json.dumps({{"began": began, "import": imported - started, "requests": marks}}))
"""


def child_env(connection_string: str, token: str, prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "SCIM_STORAGE_CONNECTION_STRING": connection_string,
        "SCIM_BEARER_TOKENS": token,
        "SCIM_TABLE_PREFIX": prefix,
    }


def seed(connection_string: str, token: str, prefix: str) -> None:
    """Create the table and the user through the endpoint itself, in a process of its own."""
    code = f"""
import asyncio, json, sys
sys.path.insert(0, {str(REPO_ROOT)!r})
import function_app, azure.functions as func
body = json.dumps({{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "{USER_NAME}"}}).encode()
request = func.HttpRequest("POST", "http://localhost/scim/v2/Users", body=body, route_params={{}},
    headers={{"Authorization": "Bearer {token}", "Content-Type": "application/scim+json"}})
response = asyncio.run(function_app.users(request))
assert response.status_code == 201, response.get_body()
"""
    env = child_env(connection_string, token, prefix)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)  # noqa: S603


def slowest_imports(count: int = 8) -> list[tuple[str, float]]:
    """The modules whose import (with what they import) takes longest, from ``-X importtime``."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import function_app"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        depth = len(name) - len(name.lstrip())
        if depth <= 4:
            rows.append((name.strip(), int(cumulative) / 1000))
    return sorted(rows, key=lambda row: -row[1])[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--delay", type=float, default=0.010, help="seconds added to every storage request")
    args = parser.parse_args()
    command = shlex.join([".venv/bin/python", "bench/cold_start.py", *sys.argv[1:]])
    token, prefix = secrets.token_urlsafe(32), f"cold{secrets.token_hex(4)}"
    port = azurite.free_port()
    storage = azurite.start(port)
    runs = []
    try:
        with TrafficProxy(port) as proxy:
            connection_string = azurite.connection_string(proxy.port)
            seed(connection_string, token, prefix)
            proxy.delay = args.delay
            script = CHILD.format(root=str(REPO_ROOT), token=token, user=USER_NAME)
            for _ in range(args.runs):
                launched = time.time()
                mark = proxy.mark()
                output = subprocess.run(  # noqa: S603
                    [sys.executable, "-c", script],
                    env=child_env(connection_string, token, prefix),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                report = json.loads(output.stdout.strip().splitlines()[-1])
                calls = proxy.since(mark)
                (first_from, first_to, first, status), (_, _, second, second_status) = report["requests"]
                assert status == 200 and second_status == 200, output.stdout
                first_calls = [c for c in calls if first_from <= c.started <= first_to]
                runs.append(
                    {
                        "interpreter": report["began"] - launched,
                        "import": report["import"],
                        "first": first,
                        "second": second,
                        "first_calls": first_calls,
                    }
                )
    finally:
        azurite.stop(storage)

    def median_ms(key: str) -> float:
        return statistics.median(run[key] for run in runs) * 1000

    total = median_ms("interpreter") + median_ms("import") + median_ms("first")
    calls = runs[-1]["first_calls"]
    kinds = ", ".join(f"{c.method} {c.kind}" for c in calls)
    print(f"command: {command}")
    print(f"{args.runs} fresh processes, {args.delay * 1000:.0f} ms per storage request, load {os.getloadavg()[0]:.2f}")
    print()
    print("| phase | median ms |")
    print("|---|---|")
    print(f"| interpreter start | {median_ms('interpreter'):.0f} |")
    print(f"| `import function_app` | {median_ms('import'):.0f} |")
    print(f"| first request (settings, clients, connection, table check, lookup) | {median_ms('first'):.0f} |")
    print(f"| **process start to first 200** | **{total:.0f}** |")
    print(f"| second request, same process | {median_ms('second'):.0f} |")
    print()
    print(f"first request's storage calls: {len(calls)}, {sequential(calls)} sequential ({kinds})")
    print()
    print("slowest imports (cumulative ms, one run):")
    for name, ms in slowest_imports():
        print(f"  {ms:7.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
