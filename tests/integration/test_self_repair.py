"""The next write of a resource repairs what a bug or a hand edit broke, instead of failing on it for ever."""

from scim.store import keys
from scim.store.tables import TableStore
from tests.conftest import Client

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def rename(name: str) -> dict:
    return {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "userName", "value": name}]}


async def remove_index_row(store: TableStore, client: Client, name: str, value: str) -> None:
    tenant = client.endpoint.settings.bearer_tokens[0][0]
    table = await store.table_client()
    await table.delete_entity(keys.partition_key(tenant, "User"), keys.unique_index_row_key(name, value))


async def test_a_rename_succeeds_when_the_old_name_row_is_missing(client: Client, store: TableStore):
    user = await client.create_user("lost.row@example.com")
    await remove_index_row(store, client, "userName", "lost.row@example.com")
    response = await client.call("PATCH", f"Users/{user['id']}", rename("found.row@example.com"))
    assert response.status == 200, response.document
    found = await client.call("GET", "Users", query={"filter": 'userName eq "found.row@example.com"'})
    assert [u["id"] for u in found.document["Resources"]] == [user["id"]]


async def test_a_delete_succeeds_when_an_index_row_is_missing(client: Client, store: TableStore):
    user = await client.create_user("doomed.row@example.com")
    await remove_index_row(store, client, "userName", "doomed.row@example.com")
    assert (await client.call("DELETE", f"Users/{user['id']}")).status == 204
    assert (await client.call("GET", f"Users/{user['id']}")).status == 404
    assert (
        await client.call(
            "POST",
            "Users",
            {"userName": "doomed.row@example.com", "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]},
        )
    ).status == 201
