"""Writes whose answer is lost: the retry must recognise its own earlier write instead of reporting a conflict.

A transaction or conditional update can be applied by Table Storage while the connection drops before the answer
arrives. The store retries; the retry then collides with the row its first attempt wrote (409 on create, 412 on
update, 404 on delete). These tests make the first attempt's answer go missing after it was applied, on real Azurite.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from azure.core.exceptions import ServiceResponseError

from scim.store import entity_group
from scim.store.tables import TableStore
from tests.conftest import Client

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class LoseAnswers:
    """Wraps one TableClient method: the first ``times`` calls are applied, then their answer is 'lost'."""

    def __init__(self, method: Callable[..., Awaitable[Any]], times: int = 1, applied: bool = True) -> None:
        self.method = method
        self.times = times
        self.applied = applied
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls > self.times:
            return await self.method(*args, **kwargs)
        if self.applied:
            await self.method(*args, **kwargs)
        raise ServiceResponseError("connection reset before the answer arrived")


@pytest.fixture
async def lose(store: TableStore, monkeypatch: pytest.MonkeyPatch) -> Callable[..., LoseAnswers]:
    """``"transaction"`` wraps the store's entity-group transactions (:func:`scim.store.entity_group.submit`),
    anything else the table client's method of that name."""
    table = await store.table_client()

    def install(method: str, times: int = 1, applied: bool = True) -> LoseAnswers:
        owner: Any = entity_group if method == "transaction" else table
        name = "submit" if method == "transaction" else method
        wrapper = LoseAnswers(getattr(owner, name), times, applied)
        monkeypatch.setattr(owner, name, wrapper)
        return wrapper

    return install


def rename(name: str) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "userName", "value": name}]}


async def find(client: Client, user_name: str) -> list[dict[str, Any]]:
    response = await client.call("GET", "Users", query={"filter": f'userName eq "{user_name}"'})
    assert response.status == 200
    return response.document["Resources"]


async def test_create_applied_but_unanswered_is_201_not_a_conflict(client: Client, lose: Callable[..., LoseAnswers]):
    wrapper = lose("transaction")
    response = await client.call("POST", "Users", {"schemas": [USER], "userName": "lost@example.com"})
    assert response.status == 201, response.document
    assert wrapper.calls == 2
    found = await find(client, "lost@example.com")
    assert [user["id"] for user in found] == [response.document["id"]]
    assert found[0]["meta"]["version"] == response.headers["ETag"]


async def test_create_not_applied_is_retried(client: Client, lose: Callable[..., LoseAnswers]):
    wrapper = lose("transaction", times=2, applied=False)
    response = await client.call("POST", "Users", {"schemas": [USER], "userName": "refused@example.com"})
    assert response.status == 201, response.document
    assert wrapper.calls == 3
    assert len(await find(client, "refused@example.com")) == 1


async def test_a_real_conflict_after_a_lost_answer_is_still_409(client: Client, lose: Callable[..., LoseAnswers]):
    await client.create_user("taken@example.com")
    lose("transaction", applied=False)
    response = await client.call("POST", "Users", {"schemas": [USER], "userName": "TAKEN@example.com"})
    assert response.status == 409
    assert response.document["scimType"] == "uniqueness"


async def test_rename_applied_but_unanswered_succeeds(client: Client, lose: Callable[..., LoseAnswers]):
    user = await client.create_user("before@example.com")
    lose("transaction")
    response = await client.call("PATCH", f"Users/{user['id']}", rename("after@example.com"))
    assert response.status == 200, response.document
    assert response.document["userName"] == "after@example.com"
    assert await find(client, "before@example.com") == []
    assert [found["id"] for found in await find(client, "after@example.com")] == [user["id"]]


async def test_update_applied_but_unanswered_succeeds(client: Client, lose: Callable[..., LoseAnswers]):
    user = await client.create_user("quiet@example.com")
    wrapper = lose("update_entity")
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    response = await client.call("PATCH", f"Users/{user['id']}", body)
    assert response.status == 200, response.document
    assert wrapper.calls == 2
    stored = await client.call("GET", f"Users/{user['id']}")
    assert stored.document["active"] is False
    assert stored.headers["ETag"] == response.headers["ETag"]


async def test_delete_applied_but_unanswered_is_204(client: Client, lose: Callable[..., LoseAnswers]):
    user = await client.create_user("gone@example.com")
    lose("transaction")
    response = await client.call("DELETE", f"Users/{user['id']}")
    assert response.status == 204, response.document
    assert (await client.call("GET", f"Users/{user['id']}")).status == 404
    assert await find(client, "gone@example.com") == []


async def test_a_concurrent_change_after_a_lost_answer_is_still_412(
    client: Client, store: TableStore, lose: Callable[..., LoseAnswers]
):
    """The lost write was NOT applied and someone else changed the user: the retry must not claim success."""
    user = await client.create_user("raced@example.com")
    table = await store.table_client()
    original = table.update_entity
    calls = 0

    async def interfere(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # another writer gets in first, then this attempt's connection drops
            row = await table.get_entity(args[0]["PartitionKey"], args[0]["RowKey"])
            await original(row, mode=kwargs["mode"])
            raise ServiceResponseError("reset")
        return await original(*args, **kwargs)

    table.update_entity = interfere  # type: ignore[method-assign]
    try:
        body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": "X"}]}
        if_match = {"If-Match": user["meta"]["version"]}
        response = await client.call("PATCH", f"Users/{user['id']}", body, headers=if_match)
    finally:
        table.update_entity = original  # type: ignore[method-assign]
    assert response.status == 412
