"""Client CPU per write with the Azure Tables SDK: entity-group transactions against the single-entity calls the
SDK's public API offers instead.

Profiling the endpoint puts the SDK's encoding of entity-group transactions (a multipart/mixed body built and parsed
with the stdlib ``email`` package) among the largest costs of a write. The public API has exactly one way to write
several rows atomically, ``TableClient.submit_transaction``; the alternatives are single-entity calls
(``create_entity``, ``upsert_entity``, ``update_entity``), which are not atomic together. This measures, on the same
Azurite, the CPU this process spends per call and per row for each shape our endpoint writes:

- a user's create (the user row and 3 index rows): one transaction, or 4 ``create_entity`` calls;
- one row: a transaction of one, or one ``create_entity``; a conditional replace: a transaction of one ``update``,
  or one ``update_entity`` (what a PATCH that moves no index row uses);
- 50 memberships (100 rows): one transaction, or 100 ``upsert_entity`` calls.

The same shapes through ``scim.store.entity_group`` (our encoding of the transaction, which the store uses) are
measured beside them.

Azurite is a separate process, so ``time.process_time()`` here is the client's CPU alone (SDK, aiohttp, our loop).

    .venv/bin/python bench/transaction_encoding.py                 # 300 of each (~1 min)
    .venv/bin/python bench/transaction_encoding.py --repeat 100
"""

import argparse
import asyncio
import json
import secrets
import shlex
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from scim.local import azurite  # noqa: E402
from scim.store import entity_group  # noqa: E402
from scim.store.tables import CLIENT_OPTIONS  # noqa: E402

DOCUMENT = json.dumps(
    {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "bench.user@contoso.example",
        "name": {"givenName": "Bench", "familyName": "User"},
        "emails": [{"value": "bench.user@contoso.example", "type": "work", "primary": True}],
        "active": True,
    }
)


def user_rows(partition: str) -> list[dict[str, Any]]:
    uid = secrets.token_hex(16)
    rows = [{"PartitionKey": partition, "RowKey": f"id:{uid}", "doc": DOCUMENT, "created": "x", "lastModified": "x"}]
    rows += [{"PartitionKey": partition, "RowKey": f"ix:{n}:{secrets.token_hex(32)}", "resourceId": uid} for n in "abc"]
    return rows


def edge_rows(partition: str) -> list[dict[str, Any]]:
    group = secrets.token_hex(16)
    rows = []
    for _ in range(50):
        member = secrets.token_hex(16)
        rows.append({"PartitionKey": partition, "RowKey": f"g:{group}:{member}", "memberId": member, "display": "x"})
        rows.append({"PartitionKey": partition, "RowKey": f"m:{member}:{group}", "groupId": group})
    return rows


async def cpu_per_call(repeat: int, call: Callable[[], Awaitable[Any]]) -> float:
    """CPU ms of this process per ``call``, one at a time."""
    await call()  # warm-up: the connection and lazily built SDK objects
    started = time.process_time()
    for _ in range(repeat):
        await call()
    return (time.process_time() - started) * 1000 / repeat


async def measure(table: TableClient, repeat: int) -> list[tuple[str, int, float]]:
    users, edges = "bench:User", "bench:Membership"
    results = []

    async def user_transaction() -> None:
        await table.submit_transaction([("create", row) for row in user_rows(users)])

    async def user_singles() -> None:
        for row in user_rows(users):
            await table.create_entity(row)

    async def one_row_transaction() -> None:
        await table.submit_transaction([("create", user_rows(users)[0])])

    async def one_row_single() -> None:
        await table.create_entity(user_rows(users)[0])

    target = user_rows(users)[0]
    await table.create_entity(target)

    async def replace_transaction() -> None:
        etag = (await table.get_entity(target["PartitionKey"], target["RowKey"])).metadata["etag"]
        options = {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}
        await table.submit_transaction([("update", target, options)])

    async def replace_single() -> None:
        etag = (await table.get_entity(target["PartitionKey"], target["RowKey"])).metadata["etag"]
        await table.update_entity(
            target, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
        )

    async def read_only() -> None:
        await table.get_entity(target["PartitionKey"], target["RowKey"])

    async def edges_transaction() -> None:
        await table.submit_transaction([("upsert", row) for row in edge_rows(edges)])

    async def user_ours() -> None:
        await entity_group.submit(table, [("create", row) for row in user_rows(users)])

    async def one_row_ours() -> None:
        await entity_group.submit(table, [("create", user_rows(users)[0])])

    async def replace_ours() -> None:
        etag = (await table.get_entity(target["PartitionKey"], target["RowKey"])).metadata["etag"]
        options = {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}
        await entity_group.submit(table, [("update", target, options)])

    async def edges_ours() -> None:
        await entity_group.submit(table, [("upsert", row) for row in edge_rows(edges)])

    async def edges_singles() -> None:
        for row in edge_rows(edges):
            await table.upsert_entity(row)

    shapes: list[tuple[str, int, int, Callable[[], Awaitable[Any]]]] = [
        ("user create: 1 transaction of 4 rows", 4, repeat, user_transaction),
        ("user create: 4 create_entity", 4, repeat, user_singles),
        ("user create: 1 transaction of 4 rows, our encoding", 4, repeat, user_ours),
        ("1 row: transaction of 1 create", 1, repeat, one_row_transaction),
        ("1 row: create_entity", 1, repeat, one_row_single),
        ("1 row: transaction of 1 create, our encoding", 1, repeat, one_row_ours),
        ("conditional replace: read + transaction of 1 update", 1, repeat, replace_transaction),
        ("conditional replace: read + update_entity", 1, repeat, replace_single),
        ("conditional replace: read + transaction of 1 update, our encoding", 1, repeat, replace_ours),
        ("(the read alone: get_entity)", 1, repeat, read_only),
        ("100 membership rows: 1 transaction", 100, max(repeat // 10, 5), edges_transaction),
        ("100 membership rows: 100 upsert_entity", 100, max(repeat // 10, 5), edges_singles),
        ("100 membership rows: 1 transaction, our encoding", 100, max(repeat // 10, 5), edges_ours),
    ]
    for name, rows, n, call in shapes:
        print(f"[measure] {name}", flush=True)
        results.append((name, rows, await cpu_per_call(n, call)))
    return results


async def run(connection_string: str, repeat: int) -> list[tuple[str, int, float]]:
    async with TableServiceClient.from_connection_string(connection_string, **CLIENT_OPTIONS) as service:
        name = f"enc{secrets.token_hex(4)}"
        await service.create_table(name)
        return await measure(service.get_table_client(name), repeat)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    command = shlex.join([".venv/bin/python", "bench/transaction_encoding.py", *sys.argv[1:]])
    port = azurite.free_port()
    storage = azurite.start(port)
    try:
        results = asyncio.run(run(azurite.connection_string(port), args.repeat))
    finally:
        azurite.stop(storage)
    print()
    print(f"command: {command}")
    print()
    print("| write | rows | client CPU ms per write | per row |")
    print("|---|---|---|---|")
    for name, rows, ms in results:
        print(f"| {name} | {rows} | {ms:.2f} | {ms / rows:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
