"""Our entity-group transactions against Azurite, with the SDK's ``submit_transaction`` as the oracle: the same
operations commit the same rows, and every refusal comes back with the SDK's status, index and error code."""

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.data.tables import EntityProperty, TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from scim.store import entity_group
from scim.store.tables import TableStore

Submit = Callable[[TableClient, list[Any]], Awaitable[list[dict[str, Any]]]]


async def sdk(table: TableClient, operations: list[Any]) -> list[dict[str, Any]]:
    return await table.submit_transaction(operations)


BOTH = pytest.mark.parametrize("submit", [entity_group.submit, sdk], ids=["ours", "sdk"])


@pytest.fixture
async def table(store: TableStore) -> TableClient:
    return await store.table_client()


async def rows(table: TableClient, partition: str) -> dict[str, dict[str, Any]]:
    found = table.query_entities("PartitionKey eq @p", parameters={"p": partition})
    return {row["RowKey"]: dict(row) async for row in found}


async def seeded(table: TableClient) -> tuple[str, str]:
    """A fresh partition holding rows ``a`` (whose ETag is returned), ``b`` and ``c``."""
    partition = f"eg:{secrets.token_hex(6)}"
    etag = (await table.create_entity({"PartitionKey": partition, "RowKey": "a", "v": "1"}))["etag"]
    for key in "bc":
        await table.create_entity({"PartitionKey": partition, "RowKey": key, "v": "1"})
    return partition, etag


@BOTH
async def test_every_kind_of_operation_commits_the_same_rows(table: TableClient, submit: Submit):
    partition, etag = await seeded(table)
    new = {
        "PartitionKey": partition,
        "RowKey": "n'é %",
        "s": 'Zoë "q" 日本',
        "n": 5,
        "big": EntityProperty(2**40, "Edm.Int64"),
        "f": 1.5,
        "t": True,
    }
    results = await submit(
        table,
        [
            ("create", new),
            ("upsert", {"PartitionKey": partition, "RowKey": "u", "v": "2"}),
            ("upsert", {"PartitionKey": partition, "RowKey": "b", "w": "2"}, {"mode": UpdateMode.REPLACE}),
            (
                "update",
                {"PartitionKey": partition, "RowKey": "a", "v": "2"},
                {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified},
            ),
            ("delete", {"PartitionKey": partition, "RowKey": "c"}),
        ],
    )
    stored = await rows(table, partition)
    assert sorted(stored) == ["a", "b", "n'é %", "u"]
    assert {name: stored["n'é %"][name] for name in ("s", "n", "f", "t")} == {
        "s": 'Zoë "q" 日本',
        "n": 5,
        "f": 1.5,
        "t": True,
    }
    assert stored["n'é %"]["big"].value == 2**40
    assert stored["b"] == {"PartitionKey": partition, "RowKey": "b", "w": "2"}
    assert stored["a"]["v"] == "2"
    assert len(results) == 5 and all(results[number]["etag"] for number in range(4))
    entity = await table.get_entity(partition, "a")
    assert results[3]["etag"] == entity.metadata["etag"]


REFUSALS: list[tuple[str, Callable[[str, str], list[Any]], tuple[int, int, str]]] = [
    (
        "insert of a row that exists",
        lambda p, _: [("create", {"PartitionKey": p, "RowKey": "x"}), ("create", {"PartitionKey": p, "RowKey": "a"})],
        (409, 1, "EntityAlreadyExists"),
    ),
    (
        "delete of a row that is not there",
        lambda p, _: [("delete", {"PartitionKey": p, "RowKey": "b"}), ("delete", {"PartitionKey": p, "RowKey": "z"})],
        (404, 1, "ResourceNotFound"),
    ),
    (
        "update on a stale ETag",
        lambda p, etag: [
            ("upsert", {"PartitionKey": p, "RowKey": "x"}),
            (
                "update",
                {"PartitionKey": p, "RowKey": "a"},
                {"etag": etag.replace("Z", "1Z"), "match_condition": MatchConditions.IfNotModified},
            ),
        ],
        (412, 1, "UpdateConditionNotSatisfied"),
    ),
]


@BOTH
@pytest.mark.parametrize(("operations", "expected"), [(r[1], r[2]) for r in REFUSALS], ids=[r[0] for r in REFUSALS])
async def test_a_refused_operation_names_itself_and_changes_nothing(
    table: TableClient, submit: Submit, operations: Callable[[str, str], list[Any]], expected: tuple[int, int, str]
):
    partition, etag = await seeded(table)
    before = await rows(table, partition)
    with pytest.raises(TableTransactionError) as refused:
        await submit(table, operations(partition, etag))
    assert (refused.value.status_code, refused.value.index, refused.value.error_code) == expected
    assert await rows(table, partition) == before


@BOTH
async def test_a_missing_table_is_table_not_found(store: TableStore, submit: Submit):
    await store.table_client()
    table = store._service.get_table_client(f"missing{secrets.token_hex(4)}")
    with pytest.raises(HttpResponseError) as refused:
        await submit(table, [("create", {"PartitionKey": "p", "RowKey": "r"})])
    assert (refused.value.status_code, refused.value.error_code) == (404, "TableNotFound")


async def test_rows_of_two_partitions_are_refused_before_sending(table: TableClient):
    with pytest.raises(ValueError, match="Partition Keys"):
        await entity_group.submit(
            table,
            [("create", {"PartitionKey": "p1", "RowKey": "r"}), ("create", {"PartitionKey": "p2", "RowKey": "r"})],
        )


async def test_a_full_transaction_of_a_hundred_rows_commits(table: TableClient):
    partition = f"eg:{secrets.token_hex(6)}"
    results = await entity_group.submit(
        table, [("upsert", {"PartitionKey": partition, "RowKey": f"r{n:03}", "v": "x" * 200}) for n in range(100)]
    )
    assert len(results) == 100
    assert len(await rows(table, partition)) == 100
