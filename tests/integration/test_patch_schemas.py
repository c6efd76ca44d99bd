"""``schemas`` follows one rule on every write: it names only the schemas the endpoint serves. A POST drops other
URNs; a PATCH that adds or replaces ``schemas`` is read the same way, so no stored resource claims a schema it does
not have."""

import pytest

from tests.conftest import Client

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def resource(client: Client, kind: str) -> str:
    if kind == "Users":
        return (await client.create_user("schemas@example.com"))["id"]
    return (await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": "Schemas"})).document["id"]


@pytest.mark.parametrize("kind", ["Users", "Groups"])
@pytest.mark.parametrize(
    "operation",
    [
        {"op": "add", "path": "schemas", "value": ["urn:evil"]},
        {"op": "Add", "path": "SCHEMAS", "value": ["urn:evil", "urn:other"]},
        {"op": "add", "value": {"schemas": ["urn:evil"]}},
    ],
)
async def test_a_patch_cannot_add_a_schema_the_endpoint_does_not_serve(client: Client, kind: str, operation: dict):
    resource_id = await resource(client, kind)
    before = (await client.call("GET", f"{kind}/{resource_id}")).document["schemas"]
    response = await client.call("PATCH", f"{kind}/{resource_id}", {"schemas": [PATCH], "Operations": [operation]})
    assert response.status in (200, 204)
    after = (await client.call("GET", f"{kind}/{resource_id}")).document["schemas"]
    assert after == before
    assert "urn:evil" not in after


async def test_a_post_drops_the_same_urns_a_patch_does(client: Client):
    created = await client.call("POST", "Users", {"schemas": [USER, "urn:evil"], "userName": "post@example.com"})
    assert created.status == 201
    assert created.document["schemas"] == [USER]


async def test_a_patch_may_still_add_a_served_schema(client: Client):
    user_id = await resource(client, "Users")
    body = {"schemas": [PATCH], "Operations": [{"op": "add", "path": "schemas", "value": ["urn:evil", ENTERPRISE]}]}
    assert (await client.call("PATCH", f"Users/{user_id}", body)).status == 200
    assert set((await client.call("GET", f"Users/{user_id}")).document["schemas"]) <= {USER, ENTERPRISE}


async def test_replacing_schemas_with_unknown_urns_only_is_refused(client: Client):
    user_id = await resource(client, "Users")
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "schemas", "value": ["urn:evil"]}]}
    response = await client.call("PATCH", f"Users/{user_id}", body)
    assert response.status == 400
    assert (await client.call("GET", f"Users/{user_id}")).document["schemas"] == [USER]
