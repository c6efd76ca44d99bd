"""Entra re-sends a request whose answer it did not get (a timeout, a 5xx). The second copy must be harmless:
a re-sent create is a 409 ``uniqueness`` and the resource is then found by Entra's matching filter; a re-sent
PATCH leaves the same state as one copy."""

from typing import Any

from tests.conftest import Client

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


async def test_a_resent_user_create_is_409_and_the_user_is_then_matched(client: Client):
    body = {"schemas": [USER], "userName": "twice@example.com", "externalId": "ext-twice"}
    first = await client.call("POST", "Users", body)
    second = await client.call("POST", "Users", body)
    assert first.status == 201
    assert second.status == 409
    assert second.document["scimType"] == "uniqueness"
    matched = await client.call("GET", "Users", query={"filter": 'userName eq "twice@example.com"'})
    assert [user["id"] for user in matched.document["Resources"]] == [first.document["id"]]
    by_external = await client.call("GET", "Users", query={"filter": 'externalId eq "ext-twice"'})
    assert by_external.document["totalResults"] == 1


async def test_a_resent_group_create_is_409_and_the_group_is_then_matched(client: Client):
    body = {"schemas": [GROUP], "displayName": "Twice", "members": []}
    first = await client.call("POST", "Groups", body)
    second = await client.call("POST", "Groups", body)
    assert (first.status, second.status) == (201, 409)
    assert second.document["scimType"] == "uniqueness"
    matched = await client.call("GET", "Groups", query={"filter": 'displayName eq "Twice"'})
    assert [group["id"] for group in matched.document["Resources"]] == [first.document["id"]]


async def test_resent_member_patches_leave_the_state_of_one_copy(client: Client):
    users = [(await client.create_user(f"m{index}@example.com"))["id"] for index in range(4)]
    group = (await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": "Resent"})).document
    add = patch({"op": "Add", "path": "members", "value": [{"value": user} for user in users]})
    legacy_remove = patch({"op": "Remove", "path": "members", "value": [{"value": users[0]}]})
    filtered_remove = patch({"op": "remove", "path": f'members[value eq "{users[1]}"]'})
    for body in (add, add, legacy_remove, legacy_remove, filtered_remove, filtered_remove):
        assert (await client.call("PATCH", f"Groups/{group['id']}", body)).status == 204
    members = (await client.call("GET", f"Groups/{group['id']}")).document["members"]
    assert sorted(member["value"] for member in members) == sorted(users[2:])
    for user in users:
        groups = (await client.call("GET", f"Users/{user}")).document.get("groups", [])
        assert [g["value"] for g in groups] == ([group["id"]] if user in users[2:] else [])


async def test_a_resent_user_patch_leaves_the_state_of_one_copy(client: Client):
    user = await client.create_user("p@example.com")
    body = patch(
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "p.work@example.com"},
    )
    first = await client.call("PATCH", f"Users/{user['id']}", body)
    second = await client.call("PATCH", f"Users/{user['id']}", body)
    assert (first.status, second.status) == (200, 200)
    assert second.document["active"] is False
    assert second.document["emails"] == first.document["emails"]
    assert len(second.document["emails"]) == 1
