"""Groups through the handler layer against real Azurite: every membership shape, cascades, all-or-nothing."""

from tests.conftest import Client

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def patch_body(*operations: dict) -> dict:
    return {"schemas": [PATCH], "Operations": list(operations)}


async def create_group(client: Client, name: str, members: list[str] | None = None) -> dict:
    body = {"schemas": [GROUP], "displayName": name}
    if members is not None:
        body["members"] = [{"value": member} for member in members]
    response = await client.call("POST", "Groups", body)
    assert response.status == 201, response.document
    return response.document


async def member_ids(client: Client, group_id: str) -> list[str]:
    response = await client.call("GET", f"Groups/{group_id}")
    assert response.status == 200
    return [member["value"] for member in response.document.get("members", [])]


async def users(client: Client, count: int) -> list[str]:
    return [(await client.create_user(f"member{i}@example.com"))["id"] for i in range(count)]


async def test_create_with_members_and_get(client: Client):
    ids = await users(client, 3)
    group = await create_group(client, "Engineering", ids)
    assert sorted(m["value"] for m in group["members"]) == sorted(ids)
    assert sorted(await member_ids(client, group["id"])) == sorted(ids)
    member = (await client.call("GET", f"Groups/{group['id']}")).document["members"][0]
    assert member["$ref"].endswith(f"/Users/{member['value']}")
    assert member["type"] == "User"


async def test_display_name_is_unique_case_insensitively(client: Client):
    await create_group(client, "Sales")
    response = await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": "SALES"})
    assert (response.status, response.document["scimType"]) == (409, "uniqueness")


async def test_add_and_remove_in_every_entra_shape(client: Client):
    u1, u2, u3, u4 = await users(client, 4)
    group = await create_group(client, "Shapes")
    url = f"Groups/{group['id']}"
    add = patch_body({"op": "Add", "path": "members", "value": [{"$ref": None, "value": u} for u in (u1, u2, u3, u4)]})
    response = await client.call("PATCH", url, add)
    assert (response.status, response.document) == (204, None)
    assert sorted(await member_ids(client, group["id"])) == sorted([u1, u2, u3, u4])
    await client.call(
        "PATCH", url, patch_body({"op": "Remove", "path": "members", "value": [{"$ref": None, "value": u1}]})
    )
    await client.call("PATCH", url, patch_body({"op": "remove", "path": f'members[value eq "{u2}"]'}))
    assert sorted(await member_ids(client, group["id"])) == sorted([u3, u4])
    await client.call("PATCH", url, patch_body({"op": "replace", "path": "members", "value": [{"value": u1}]}))
    assert await member_ids(client, group["id"]) == [u1]
    await client.call("PATCH", url, patch_body({"op": "remove", "path": "members"}))
    assert await member_ids(client, group["id"]) == []


async def test_adding_present_or_removing_absent_members_is_not_an_error(client: Client):
    u1, u2 = await users(client, 2)
    group = await create_group(client, "Idempotent", [u1])
    url = f"Groups/{group['id']}"
    assert (
        await client.call("PATCH", url, patch_body({"op": "add", "path": "members", "value": [{"value": u1}]}))
    ).status == 204
    assert (
        await client.call("PATCH", url, patch_body({"op": "remove", "path": f'members[value eq "{u2}"]'}))
    ).status == 204
    assert await member_ids(client, group["id"]) == [u1]


async def test_one_unknown_member_rejects_the_whole_patch(client: Client):
    u1, u2 = await users(client, 2)
    group = await create_group(client, "AllOrNothing", [u1])
    body = patch_body(
        {"op": "replace", "path": "displayName", "value": "Renamed"},
        {"op": "remove", "path": "members", "value": [{"value": u1}]},
        {"op": "add", "path": "members", "value": [{"value": u2}, {"value": "0123456789abcdef0123456789abcdef"}]},
    )
    response = await client.call("PATCH", f"Groups/{group['id']}", body)
    assert (response.status, response.document["scimType"]) == (400, "invalidValue")
    current = (await client.call("GET", f"Groups/{group['id']}")).document
    assert current["displayName"] == "AllOrNothing"
    assert [m["value"] for m in current["members"]] == [u1]
    assert current["meta"]["version"] == group["meta"]["version"]


async def test_members_of_another_tenant_are_unknown(store, client: Client):
    from tests.conftest import make_client

    other = make_client(store)
    foreign = (await other.create_user("foreign@example.com"))["id"]
    group = await create_group(client, "Isolated")
    body = patch_body({"op": "add", "path": "members", "value": [{"value": foreign}]})
    assert (await client.call("PATCH", f"Groups/{group['id']}", body)).status == 400


async def test_nested_group_member_is_accepted_but_not_itself(client: Client):
    inner = await create_group(client, "Inner")
    outer = await create_group(client, "Outer", [inner["id"]])
    assert outer["members"][0]["type"] == "Group"
    itself = patch_body({"op": "add", "path": "members", "value": [{"value": outer["id"]}]})
    assert (await client.call("PATCH", f"Groups/{outer['id']}", itself)).status == 400


async def test_membership_check_and_display_name_filter(client: Client):
    u1, u2 = await users(client, 2)
    group = await create_group(client, "Checked", [u1])
    check = await client.call(
        "GET",
        "Groups",
        query={"filter": f'id eq "{group["id"]}" and members[value eq "{u1}"]', "excludedAttributes": "members"},
    )
    assert check.document["totalResults"] == 1
    assert "members" not in check.document["Resources"][0]
    miss = await client.call("GET", "Groups", query={"filter": f'id eq "{group["id"]}" and members[value eq "{u2}"]'})
    assert miss.document["totalResults"] == 0
    by_name = await client.call(
        "GET", "Groups", query={"filter": 'displayName eq "checked"', "excludedAttributes": "members"}
    )
    assert [g["id"] for g in by_name.document["Resources"]] == [group["id"]]
    by_member = await client.call("GET", "Groups", query={"filter": f'members.value eq "{u1}"'})
    assert by_member.document["totalResults"] == 1


async def test_user_groups_attribute_and_cascade_on_user_delete(client: Client):
    u1, u2 = await users(client, 2)
    first = await create_group(client, "First", [u1, u2])
    second = await create_group(client, "Second", [u1])
    user = (await client.call("GET", f"Users/{u1}")).document
    assert sorted(g["value"] for g in user["groups"]) == sorted([first["id"], second["id"]])
    assert all(g["type"] == "direct" and "display" not in g for g in user["groups"])  # README, Design notes
    assert (await client.call("DELETE", f"Users/{u1}")).status == 204
    assert await member_ids(client, first["id"]) == [u2]
    assert await member_ids(client, second["id"]) == []
    rows = [row async for row in client.endpoint.store.range(f"{_tenant(client)}:Membership", "", "\uffff", None)]
    assert all(u1 not in row["RowKey"] for row in rows)


async def test_group_delete_removes_every_member_row(client: Client):
    ids = await users(client, 3)
    group = await create_group(client, "Doomed", ids)
    parent = await create_group(client, "Parent", [group["id"]])
    assert (await client.call("DELETE", f"Groups/{group['id']}")).status == 204
    assert (await client.call("GET", f"Groups/{group['id']}")).status == 404
    assert await member_ids(client, parent["id"]) == []
    rows = [row async for row in client.endpoint.store.range(f"{_tenant(client)}:Membership", "", "\uffff", None)]
    assert all(group["id"] not in row["RowKey"] for row in rows)
    assert "groups" not in (await client.call("GET", f"Users/{ids[0]}")).document


async def test_patch_returns_the_group_when_attributes_are_requested(client: Client):
    group = await create_group(client, "Returned")
    body = patch_body({"op": "Replace", "path": "displayName", "value": "Returned2"})
    response = await client.call("PATCH", f"Groups/{group['id']}", body, query={"excludedAttributes": "members"})
    assert response.status == 200
    assert response.document["displayName"] == "Returned2"


async def test_large_membership_pages_by_members_after(client: Client):
    from scim.schemas import MAX_MEMBERS_PER_GET

    ids = await users(client, 5)
    group = await create_group(client, "Paged", ids)
    first = await client.call("GET", f"Groups/{group['id']}")
    assert len(first.document["members"]) == min(5, MAX_MEMBERS_PER_GET)
    after = sorted(ids)[1]
    rest = await client.call("GET", f"Groups/{group['id']}", query={"membersAfter": after})
    assert [m["value"] for m in rest.document["members"]] == sorted(ids)[2:]


def _tenant(client: Client) -> str:
    return client.endpoint.settings.bearer_tokens[0][0]


async def test_adding_a_hundred_members_is_two_table_transactions(client: Client, caplog):
    import json
    import logging

    ids = await users(client, 100)
    group = await create_group(client, "Counted")
    body = patch_body({"op": "Add", "path": "members", "value": [{"value": member} for member in ids]})
    with caplog.at_level(logging.INFO, logger="scim.request"):
        assert (await client.call("PATCH", f"Groups/{group['id']}", body)).status == 204
    line = json.loads(caplog.records[-1].getMessage())
    assert line["status"] == 204
    assert line["writes"] == 3  # 100 memberships in 2 transactions of 50, and meta.version on the group row


async def test_user_patch_and_put_responses_list_the_users_groups(client: Client):
    [user_id] = await users(client, 1)
    listed = await create_group(client, "Listed", [user_id])
    patched = await client.call(
        "PATCH", f"Users/{user_id}", patch_body({"op": "replace", "path": "title", "value": "T"})
    )
    assert [g["value"] for g in patched.document["groups"]] == [listed["id"]]
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "member0@example.com"}
    replaced = await client.call("PUT", f"Users/{user_id}", body)
    assert [g["value"] for g in replaced.document["groups"]] == [listed["id"]]


async def test_concurrent_membership_patches_on_one_group_all_apply(client: Client):
    import asyncio

    ids = await users(client, 20)
    group = await create_group(client, "Concurrent")
    bodies = [
        patch_body({"op": "Add", "path": "members", "value": [{"value": ids[i]}, {"value": ids[i + 10]}]})
        for i in range(10)
    ]
    responses = await asyncio.gather(*(client.call("PATCH", f"Groups/{group['id']}", body) for body in bodies))
    assert [response.status for response in responses] == [204] * 10
    assert sorted(await member_ids(client, group["id"])) == sorted(ids)
    assert (await client.call("GET", f"Groups/{group['id']}")).document["meta"]["version"] != group["meta"]["version"]
