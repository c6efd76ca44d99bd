"""``If-Match`` on a membership-only group PATCH (RFC 7644 §3.14): of concurrent PATCHes naming one version,
exactly one applies; a stale version changes nothing. Entra sends no ``If-Match``; other clients do."""

import asyncio

from tests.conftest import Client

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def add(*members: str) -> dict:
    value = [{"value": member} for member in members]
    return {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": value}]}


async def members_of(client: Client, group_id: str) -> set[str]:
    document = (await client.call("GET", f"Groups/{group_id}")).document
    return {member["value"] for member in document.get("members", [])}


async def test_concurrent_member_adds_on_one_version_apply_exactly_once(client: Client):
    users = [(await client.create_user(f"c{i}@example.com"))["id"] for i in range(16)]
    created = await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": "Raced"})
    group_id, etag = created.document["id"], created.headers["ETag"]
    answers = await asyncio.gather(
        *(client.call("PATCH", f"Groups/{group_id}", add(user), headers={"If-Match": etag}) for user in users)
    )
    statuses = sorted(answer.status for answer in answers)
    assert statuses == [204] + [412] * 15
    winner = users[[answer.status for answer in answers].index(204)]
    assert await members_of(client, group_id) == {winner}


async def test_a_stale_if_match_changes_no_member_and_a_current_one_applies(client: Client):
    first, second = [(await client.create_user(f"s{i}@example.com"))["id"] for i in range(2)]
    created = await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": "Versioned"})
    group_id, stale = created.document["id"], created.headers["ETag"]
    assert (await client.call("PATCH", f"Groups/{group_id}", add(first))).status == 204
    refused = await client.call("PATCH", f"Groups/{group_id}", add(second), headers={"If-Match": stale})
    assert refused.status == 412
    assert await members_of(client, group_id) == {first}
    current = (await client.call("GET", f"Groups/{group_id}")).headers["ETag"]
    assert current != stale
    applied = await client.call("PATCH", f"Groups/{group_id}", add(second), headers={"If-Match": current})
    assert applied.status == 204
    assert await members_of(client, group_id) == {first, second}
    after = (await client.call("GET", f"Groups/{group_id}")).headers["ETag"]
    assert after != current


async def test_without_if_match_concurrent_member_adds_all_apply(client: Client):
    users = [(await client.create_user(f"n{i}@example.com"))["id"] for i in range(8)]
    group_id = (await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": "Open"})).document["id"]
    answers = await asyncio.gather(*(client.call("PATCH", f"Groups/{group_id}", add(user)) for user in users))
    assert [answer.status for answer in answers] == [204] * 8
    assert await members_of(client, group_id) == set(users)
