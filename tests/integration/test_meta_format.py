"""``meta.created``/``lastModified`` print in one RFC 3339 form (milliseconds, ``Z``) in every answer shape of Users
and Groups: full and projected reads, lists, searches, and write answers."""

import re
from typing import Any

from tests.conftest import Client

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def assert_meta_form(document: dict[str, Any], shape: str) -> None:
    meta = document["meta"]
    for name in ("created", "lastModified"):
        if name in meta:
            assert TIMESTAMP.fullmatch(meta[name]), (shape, name, meta[name])
    assert "created" in meta or "lastModified" in meta, shape


async def answers(client: Client, collection: str, resource_id: str, body: dict) -> list[tuple[str, dict]]:
    """Every answer shape that carries ``meta`` for one resource."""
    shapes: list[tuple[str, dict]] = []
    item = f"{collection}/{resource_id}"
    for label, query in (
        ("get", {}),
        ("get excluded members", {"excludedAttributes": "members"}),
        ("get excluded displayName", {"excludedAttributes": "displayName"}),
        ("get attributes meta", {"attributes": "meta"}),
        ("get attributes meta.lastModified", {"attributes": "meta.lastModified"}),
    ):
        shapes.append((label, (await client.call("GET", item, query=query)).document))
    for label, query in (
        ("list", {}),
        ("list excluded members", {"excludedAttributes": "members"}),
        ("list attributes meta", {"attributes": "meta"}),
        ("list filtered", {"filter": f'id eq "{resource_id}"', "excludedAttributes": "members"}),
    ):
        listed = (await client.call("GET", collection, query=query)).document
        shapes.append((label, listed["Resources"][0]))
    search = {"schemas": [SEARCH], "filter": f'id eq "{resource_id}"', "excludedAttributes": ["members"]}
    shapes.append(("search", (await client.call("POST", f"{collection}/.search", search)).document["Resources"][0]))
    shapes.append(("put", (await client.call("PUT", item, body)).document))
    patch = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "externalId", "value": "x"}]}
    shapes.append(
        ("patch", (await client.call("PATCH", item, patch, query={"excludedAttributes": "members"})).document)
    )
    return shapes


async def test_user_meta_has_one_form_everywhere(client: Client):
    body = {"schemas": [USER], "userName": "meta@example.com", "displayName": "M"}
    created = await client.call("POST", "Users", body)
    assert_meta_form(created.document, "post")
    for shape, document in await answers(client, "Users", created.document["id"], body):
        assert_meta_form(document, shape)


async def test_group_meta_has_one_form_everywhere(client: Client):
    user = await client.create_user("member@example.com")
    body = {"schemas": [GROUP], "displayName": "Meta", "members": [{"value": user["id"]}]}
    created = await client.call("POST", "Groups", body)
    assert_meta_form(created.document, "post")
    full = (await client.call("GET", f"Groups/{created.document['id']}")).document
    for shape, document in await answers(client, "Groups", created.document["id"], body):
        assert_meta_form(document, shape)
        if shape.startswith("get"):
            assert {k: v for k, v in document["meta"].items() if k in full["meta"]} == {
                k: full["meta"][k] for k in document["meta"]
            }, shape
