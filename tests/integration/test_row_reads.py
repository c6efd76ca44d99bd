"""Our range pages and point reads (scim/store/row_reads.py) against Azurite, with the SDK's ``query_entities`` and
``get_entity`` as the oracle: the same rows in the same order, every value of every type Table Storage holds with
the same Python type, the same ETags, continuation across pages, ``$select``, and the SDK's error for a missing
table, which the store still maps to an outage (never to "no rows" or "no such row"). A missing row is None without
leaving garbage in reference cycles (the SDK's exception did)."""

import gc
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import EntityProperty, TableEntity
from azure.data.tables.aio import TableClient

from scim.store import row_reads
from scim.store.contract import StoreUnavailable
from scim.store.tables import TableStore

pytestmark = pytest.mark.azurite

RANGE = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"


@pytest.fixture
async def table(store: TableStore) -> TableClient:
    return await store.table_client()


async def sdk_rows(
    table: TableClient, partition: str, low: str, high: str, select: list[str] | None = None
) -> list[TableEntity]:
    found = table.query_entities(RANGE, parameters={"pk": partition, "lo": low, "hi": high}, select=select)
    return [row async for row in found]


async def our_rows(
    table: TableClient, partition: str, low: str, high: str, select: list[str] | None = None, page_size: int = 100
) -> tuple[list[TableEntity], int]:
    """Every row of the range, following continuation tokens, and how many pages it took."""
    rows: list[TableEntity] = []
    token: row_reads.Token | None = None
    pages = 0
    while True:
        page, token = await row_reads.read_page(table, partition, low, high, select, page_size, token)
        rows += page
        pages += 1
        if token is None:
            return rows, pages


def typed(rows: list[TableEntity]) -> list[dict[str, Any]]:
    """Each row's values with their types and its ETag: what two decodings must agree on."""
    return [
        {"etag": row.metadata["etag"], **{name: (type(value), value) for name, value in row.items()}} for row in rows
    ]


async def test_every_value_type_and_etag_read_as_the_sdk_reads_them(table: TableClient):
    partition = f"rp:{secrets.token_hex(4)}:o'k é"
    rows: list[dict[str, Any]] = [
        {"RowKey": "a: strings", "d": '{"userName": "Zoë \\"q\\" 日本"}', "empty": "", "quote": "it's", "x": "y" * 999},
        {"RowKey": "b: numbers", "n": 5, "low": -(2**31), "high": 2**31 - 1, "f": 1.5, "whole": 2.0, "neg": -0.25},
        {"RowKey": "c: int64", "big": EntityProperty(2**40, "Edm.Int64"), "s": "with a string"},
        {"RowKey": "d: bools", "published": True, "other": False},
        {"RowKey": "e: typed", "when": datetime(2026, 11, 29, 12, 0, 1, 123456, UTC), "id": uuid.uuid4()},
        {"RowKey": "f: bytes", "blob": b"\x00\x01binary", "s": "x"},
        {"RowKey": "g: keys only"},
        {"RowKey": "h: it's \u00e9 %2F"},
    ]
    for row in rows:
        await table.upsert_entity({"PartitionKey": partition, **row})
    await table.upsert_entity({"PartitionKey": partition, "RowKey": "z: outside the range"})

    expected = await sdk_rows(table, partition, "a", "z")
    ours, pages = await our_rows(table, partition, "a", "z")

    assert [row["RowKey"] for row in ours] == [row["RowKey"] for row in rows]
    assert typed(ours) == typed(expected)
    assert pages == 1
    assert all(row.metadata["etag"].startswith('W/"') for row in ours)


async def test_a_long_range_is_read_page_by_page_without_repeating_or_skipping_a_row(table: TableClient):
    partition = f"rp:{secrets.token_hex(4)}"
    keys = [f"m:{i:04d}" for i in range(230)]
    for start in range(0, len(keys), 100):
        chunk = keys[start : start + 100]
        await table.submit_transaction([("upsert", {"PartitionKey": partition, "RowKey": k, "v": k}) for k in chunk])
    await table.upsert_entity({"PartitionKey": partition, "RowKey": "m;"})  # the upper bound itself: excluded

    ours, pages = await our_rows(table, partition, "m:", "m;", page_size=100)

    assert [row["RowKey"] for row in ours] == keys
    assert pages == 3
    assert typed(ours) == typed(await sdk_rows(table, partition, "m:", "m;"))


async def test_select_returns_the_named_properties_as_the_sdk_does(table: TableClient):
    partition = f"rp:{secrets.token_hex(4)}"
    for i in range(3):
        await table.upsert_entity({"PartitionKey": partition, "RowKey": f"r{i}", "memberId": f"u{i}", "display": "d"})

    ours, _ = await our_rows(table, partition, "r", "s", select=["memberId"])

    assert [dict(row) for row in ours] == [{"memberId": f"u{i}"} for i in range(3)]
    assert typed(ours) == typed(await sdk_rows(table, partition, "r", "s", select=["memberId"]))


async def test_a_missing_table_is_the_sdks_table_not_found(azurite_connection_string: str):
    missing = TableClient.from_connection_string(azurite_connection_string, f"missing{secrets.token_hex(4)}")
    async with missing:
        with pytest.raises(ResourceNotFoundError) as sdk_error:
            await sdk_rows(missing, "p", "a", "b")
        with pytest.raises(ResourceNotFoundError) as our_error:
            await row_reads.read_page(missing, "p", "a", "b", None, 100, None)
    assert our_error.value.error_code == sdk_error.value.error_code == "TableNotFound"
    assert our_error.value.status_code == 404


async def test_the_store_reads_a_table_deleted_under_it_as_an_outage_then_recreates_it(azurite_connection_string: str):
    """Not as an empty range: an empty member list or user list is something Entra would act on."""
    store = TableStore.from_settings(azurite_connection_string, None, f"gone{secrets.token_hex(3)}", request_budget=2)
    try:
        table = await store.table_client()
        await table.upsert_entity({"PartitionKey": "p", "RowKey": "r1"})
        assert [row["RowKey"] async for row in store.range("p", "r", "s", None)] == ["r1"]
        await table.delete_table()
        with pytest.raises(StoreUnavailable):
            _ = [row async for row in store.range("p", "r", "s", None)]
        assert await store.point_read("p", "r1") is None  # the next call recreated the table

        await (await store.table_client()).delete_table()
        with pytest.raises(StoreUnavailable):
            await store.point_read("p", "r1")
        assert [row async for row in store.range("p", "r", "s", None)] == []
    finally:
        await store.close()


async def test_a_point_read_reads_every_value_type_and_etag_as_the_sdk_does(table: TableClient):
    partition = f"rp:{secrets.token_hex(4)}:o'k é"
    row = {
        "PartitionKey": partition,
        "RowKey": "it's \u00e9 %2F+",
        "doc": '{"userName": "Zoë"}',
        "n": 5,
        "f": 1.5,
        "published": True,
        "big": EntityProperty(2**40, "Edm.Int64"),
        "when": datetime(2026, 11, 29, 12, 0, 1, 123456, UTC),
    }
    await table.upsert_entity(row)
    plain = {"PartitionKey": partition, "RowKey": "plain", "doc": "{}", "lastModified": "2026-11-29T12:00:00Z"}
    await table.upsert_entity(plain)

    for key in (row["RowKey"], "plain"):
        ours = await row_reads.read_row(table, partition, key)
        assert ours is not None
        assert typed([ours]) == typed([await table.get_entity(partition, key)])
    selected = await row_reads.read_row(table, partition, "plain", ["RowKey"])
    assert typed([selected]) == typed([await table.get_entity(partition, "plain", select=["RowKey"])])
    assert dict(selected) == {"RowKey": "plain"}


async def test_a_point_read_of_a_missing_row_is_none_and_leaves_no_garbage_for_the_collector(table: TableClient):
    """The SDK raised, and each raise left about 80 objects in reference cycles that only a (long) full collection
    frees; a missing row is the common case of Entra's lookups and of a re-sent member removal."""
    await row_reads.read_row(table, "p", "warm-up")
    gc.collect()
    gc.disable()
    try:
        for i in range(20):
            assert await row_reads.read_row(table, f"p{i}", "missing") is None
        garbage = gc.collect()
        assert garbage < 20, f"{garbage} objects in reference cycles after 20 reads (the SDK's: about 1,600)"
    finally:
        gc.enable()


async def test_a_point_read_in_a_missing_table_is_the_sdks_table_not_found(azurite_connection_string: str):
    missing = TableClient.from_connection_string(azurite_connection_string, f"missing{secrets.token_hex(4)}")
    async with missing:
        with pytest.raises(ResourceNotFoundError) as sdk_error:
            await missing.get_entity("p", "r")
        with pytest.raises(ResourceNotFoundError) as our_error:
            await row_reads.read_row(missing, "p", "r")
    assert our_error.value.error_code == sdk_error.value.error_code == "TableNotFound"
