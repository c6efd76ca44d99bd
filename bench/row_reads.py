"""Client CPU per page of a RowKey range: the SDK's ``query_entities`` against ``scim/store/row_reads.py``.

Each page read is one step of the endpoint's event loop once its answer arrives (every other tenant's request on
the instance waits behind it), and a list, a scan, a group's members and every user's groups are such pages. This
reads the same rows of one Azurite both ways, one page at a time, and prints this process's CPU per page (request,
decoding and all; Azurite is another process): 100 user rows (a page of a list or scan), 100 member rows read with
``$select`` (a page of a group's members), and one reverse-membership row (a user's groups, read for every user of
a page).

    .venv/bin/python bench/row_reads.py                 # 200 pages of each (~30 s)
    .venv/bin/python bench/row_reads.py --repeat 50
"""

import argparse
import asyncio
import json
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from azure.data.tables.aio import TableClient, TableServiceClient

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from scim.local import azurite  # noqa: E402
from scim.store import row_reads  # noqa: E402
from scim.store.tables import CLIENT_OPTIONS, _transport  # noqa: E402

DOCUMENT = json.dumps(
    {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "bench.user@contoso.example",
        "name": {"givenName": "Bench", "familyName": "User"},
        "emails": [{"value": f"bench{i}@contoso.example", "type": "work"} for i in range(3)],
        "active": True,
        "title": "t1",
    }
)
RANGE = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"


async def sdk_page(table: TableClient, partition: str, low: str, high: str, select: list[str] | None) -> list[Any]:
    pages = table.query_entities(
        RANGE, parameters={"pk": partition, "lo": low, "hi": high}, results_per_page=100, select=select
    ).by_page()
    return [row async for row in await pages.__anext__()]


async def our_page(table: TableClient, partition: str, low: str, high: str, select: list[str] | None) -> list[Any]:
    return (await row_reads.read_page(table, partition, low, high, select, 100, None))[0]


async def cpu_per_page(repeat: int, call: Callable[[], Awaitable[list[Any]]], rows: int) -> float:
    assert len(await call()) == rows  # warm-up, and both ways read the same rows
    started = time.process_time()
    for _ in range(repeat):
        await call()
    return (time.process_time() - started) * 1000 / repeat


async def run(connection: str, repeat: int) -> None:
    service = TableServiceClient.from_connection_string(connection, transport=_transport(), **CLIENT_OPTIONS)
    async with service:
        table = await service.create_table_if_not_exists(f"pages{secrets.token_hex(3)}")
        users, members = "bench:User", "bench:Membership"
        stamp = "2026-11-29T12:00:00Z"
        for start in range(0, 100, 50):
            batch = range(start, start + 50)
            user_rows = [
                {"PartitionKey": users, "RowKey": f"id:{i:04d}", "doc": DOCUMENT, "created": stamp,
                 "lastModified": stamp, "userName": f"user{i}@contoso.example"}
                for i in batch
            ]  # fmt: skip
            member_rows = [
                {"PartitionKey": members, "RowKey": f"g:big:{i:04d}", "memberId": f"{i:04d}", "display": "x"}
                for i in batch
            ]
            await table.submit_transaction([("upsert", row) for row in user_rows])
            await table.submit_transaction([("upsert", row) for row in member_rows])
        await table.upsert_entity({"PartitionKey": members, "RowKey": "m:0001:big", "groupId": "big"})
        shapes = [
            ("100 user rows", users, "id:", "id;", None, 100),
            ("100 member rows, $select", members, "g:big:", "g:big;", ["memberId"], 100),
            ("a user's groups (1 row)", members, "m:0001:", "m:0001;", ["groupId"], 1),
        ]
        print(f"{'page':<28}{'SDK ms CPU':>12}{'ours ms CPU':>13}{'SDK / ours':>12}")
        for name, partition, low, high, select, rows in shapes:
            sdk = await cpu_per_page(repeat, lambda a=(table, partition, low, high, select): sdk_page(*a), rows)
            ours = await cpu_per_page(repeat, lambda a=(table, partition, low, high, select): our_page(*a), rows)
            print(f"{name:<28}{sdk:>12.2f}{ours:>13.2f}{sdk / ours:>12.1f}")
        await service.delete_table(table.table_name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    port = azurite.free_port()
    process = azurite.start(port)
    try:
        asyncio.run(run(azurite.connection_string(port), args.repeat))
    finally:
        azurite.stop(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
