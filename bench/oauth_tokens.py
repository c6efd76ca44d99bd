"""OAuth access tokens vs static bearer tokens: SCIM throughput with each, and the token endpoint's requests/s.

Starts Azurite (in memory, free port) and ``python -m scim serve`` with ``SCIM_TOKEN_SIGNING_KEYS`` set; stores one
tenant with an OAuth client (through the tenants API, as ``python -m scim tenants oauth-client`` does) and gives the
same tenant a static token in ``SCIM_BEARER_TOKENS``. Then, over real HTTP with one keep-alive httpx client and C
workers:

1. SCIM throughput: ``GET /Users?filter=userName eq "<name>"`` (Entra's matching lookup, one point read) for
   ``--seconds`` per round, alternating static-token and access-token rounds (``--rounds`` each) so machine noise
   hits both alike; prints each mode's best and median round and the ratio of medians (access / static). Verifying
   an access token must not cost a storage read, so the ratio should be close to 1.
2. Token endpoint: ``POST /oauth2/token`` (client_secret_basic) for ``--seconds``; requests/s. Each answer issues a
   signed JWT and records the client's ``lastUsed`` (one storage write); the secret's scrypt hash is paid once per
   process, then remembered.

3. The authentication step alone, in process, for each token kind: microseconds per request.

All traffic goes to 127.0.0.1; every process started is stopped on exit.
"""

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))

from scim.admin.tenants import TenantAdmin  # noqa: E402
from scim.auth import Authenticator  # noqa: E402
from scim.credential_directory import CredentialDirectory  # noqa: E402
from scim.local import azurite  # noqa: E402
from scim.settings import Settings  # noqa: E402
from scim.store.credentials import CredentialStore  # noqa: E402
from scim.store.tables import TableStore  # noqa: E402
from tests.local_server import LocalServer  # noqa: E402

TENANT = "benchoauth"


async def oauth_client(connection_string: str, prefix: str) -> tuple[str, str]:
    store = TableStore.from_settings(connection_string, None, prefix)
    try:
        admin = TenantAdmin(store)
        await admin.add_tenant(TENANT)
        issued = await admin.create_oauth_client(TENANT)
        return issued.client_id, issued.secret
    finally:
        await store.close()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): the server's own cost, whatever else runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Round:
    rate: float
    cpu_ms: float


async def run_for(seconds: float, concurrency: int, call: Callable[[], Awaitable[bool]], pid: int = 0) -> Round:
    """Requests per second of ``call`` (an async function answering True on success) over ``seconds``, and the
    server's CPU milliseconds per request meanwhile."""
    cpu_before = cpu_seconds(pid) if pid else 0.0
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            if not await call():
                raise RuntimeError("a request failed")
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = (cpu_seconds(pid) - cpu_before) if pid else 0.0
    return Round(done / elapsed, cpu * 1000 / max(done, 1))


async def measure(args: argparse.Namespace, server: LocalServer, client_id: str, secret: str) -> str:
    origin = server.base_url.removesuffix("/scim/v2")
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        answer = await http.post(
            f"{origin}/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )
        answer.raise_for_status()
        access_token = answer.json()["access_token"]
        static_token = server.token

        def lookup(token: str) -> Callable[[], Awaitable[bool]]:
            headers = {"Authorization": f"Bearer {token}"}

            async def call() -> bool:
                name = secrets.token_hex(6)
                response = await http.get(
                    f"{server.base_url}/Users", params={"filter": f'userName eq "{name}"'}, headers=headers
                )
                return response.status_code == 200

            return call

        await run_for(2, args.concurrency, lookup(static_token))  # warm-up: connections, caches, imports
        await run_for(2, args.concurrency, lookup(access_token))
        pid = server.process.pid if server.process else 0
        rounds: dict[str, list[Round]] = {"static bearer": [], "OAuth access token": []}
        for _ in range(args.rounds):
            rounds["static bearer"].append(await run_for(args.seconds, args.concurrency, lookup(static_token), pid))
            rounds["OAuth access token"].append(
                await run_for(args.seconds, args.concurrency, lookup(access_token), pid)
            )
        rate: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for mode, results in rounds.items():
            rates = [r.rate for r in results]
            rate[mode] = statistics.median(rates)
            cpu[mode] = statistics.median(r.cpu_ms for r in results)
            print(
                f"  {mode:<20} median {rate[mode]:7.1f} req/s   best {max(rates):7.1f} req/s   "
                f"server CPU {cpu[mode]:.2f} ms/request (median)"
            )
        print(f"  ratio access/static, throughput (medians): {rate['OAuth access token'] / rate['static bearer']:.3f}")
        print(f"  ratio static/access, server CPU per request: {cpu['static bearer'] / cpu['OAuth access token']:.3f}")

        async def token_request() -> bool:
            response = await http.post(
                f"{origin}/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
            )
            return response.status_code == 200

        tokens = await run_for(args.seconds, args.concurrency, token_request, pid)
        print(f"  token endpoint (client_secret_basic): {tokens.rate:7.1f} req/s, {tokens.cpu_ms:.2f} ms CPU/request")
        return str(access_token)


async def authentication_cost(
    connection_string: str, prefix: str, static_token: str, access_token: str, signing_key: str
) -> None:
    """The authentication step alone, in process: what one request pays to verify each kind of token (the stored
    credentials are read once, then served from the 30 s snapshot)."""
    store = TableStore.from_settings(connection_string, None, prefix)
    try:
        settings = Settings("unused", None, ((TENANT, static_token),), token_signing_keys=(signing_key,))
        authenticator = Authenticator.from_settings(settings, CredentialDirectory(CredentialStore(store)))
        costs = {}
        for kind, token in (("static bearer", static_token), ("OAuth access token", access_token)):
            header = f"Bearer {token}"
            assert await authenticator.authenticate(header) == TENANT
            count = 20_000
            started = time.perf_counter()
            for _ in range(count):
                await authenticator.authenticate(header)
            costs[kind] = (time.perf_counter() - started) / count * 1e6
            print(f"  authentication alone, {kind:<20} {costs[kind]:6.1f} µs/request (in process)")
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per token kind, alternating")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    print(f"$ {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"  {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, Python {platform.python_version()}")
    port = azurite.free_port()
    storage = azurite.start(port)
    prefix = f"bench{secrets.token_hex(4)}"
    try:
        connection_string = azurite.connection_string(port)
        client_id, secret = asyncio.run(oauth_client(connection_string, prefix))
        server = LocalServer(connection_string, prefix)
        server.env["SCIM_BEARER_TOKENS"] = f"{TENANT}={server.token}"
        server.env["SCIM_TOKEN_SIGNING_KEYS"] = signing_key = secrets.token_urlsafe(48)
        server.start()
        try:
            access_token = asyncio.run(measure(args, server, client_id, secret))
        finally:
            server.close()
        asyncio.run(authentication_cost(connection_string, prefix, server.token, access_token, signing_key))
    finally:
        azurite.stop(storage)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
