"""Users through the handler layer against real Azurite: CRUD, uniqueness, ETags, all-or-nothing failures."""

import asyncio

from tests.conftest import Client

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def patch_body(*operations: dict) -> dict:
    return {"schemas": [PATCH], "Operations": list(operations)}


async def test_create_returns_201_with_location_and_meta(client: Client):
    response = await client.call("POST", "Users", {"schemas": [USER], "userName": "bjensen@example.com"})
    assert response.status == 201
    document = response.document
    assert document["id"]
    assert response.headers["Location"] == f"http://testserver/scim/v2/Users/{document['id']}"
    meta = document["meta"]
    assert meta["resourceType"] == "User"
    assert meta["location"] == response.headers["Location"]
    assert meta["created"] == meta["lastModified"]
    assert meta["version"] == response.headers["ETag"]


async def test_get_returns_what_was_created(client: Client):
    created = await client.create_user("a@example.com", name={"givenName": "A", "familyName": "B"})
    response = await client.call("GET", f"Users/{created['id']}")
    assert response.status == 200
    assert response.document["name"] == {"givenName": "A", "familyName": "B"}
    assert response.document["userName"] == "a@example.com"


async def test_get_unknown_user_is_404_scim_error(client: Client):
    response = await client.call("GET", "Users/doesnotexist")
    assert response.status == 404
    assert response.document["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert response.document["status"] == "404"


async def test_username_is_unique_case_insensitively(client: Client):
    await client.create_user("Alice@Example.com")
    response = await client.call("POST", "Users", {"schemas": [USER], "userName": "alice@example.COM"})
    assert response.status == 409
    assert response.document["scimType"] == "uniqueness"


async def test_rename_frees_the_old_name(client: Client):
    created = await client.create_user("old@example.com")
    renamed = await client.call(
        "PATCH", f"Users/{created['id']}", patch_body({"op": "Replace", "path": "userName", "value": "new@example.com"})
    )
    assert renamed.status == 200
    assert renamed.document["userName"] == "new@example.com"
    again = await client.call("POST", "Users", {"schemas": [USER], "userName": "OLD@example.com"})
    assert again.status == 201
    found = await client.call("GET", "Users", query={"filter": 'userName eq "new@example.com"'})
    assert found.document["totalResults"] == 1


async def test_rename_onto_a_taken_name_is_409_and_changes_nothing(client: Client):
    await client.create_user("taken@example.com")
    other = await client.create_user("other@example.com")
    response = await client.call(
        "PATCH", f"Users/{other['id']}", patch_body({"op": "replace", "path": "userName", "value": "TAKEN@example.com"})
    )
    assert response.status == 409
    assert response.document["scimType"] == "uniqueness"
    unchanged = await client.call("GET", f"Users/{other['id']}")
    assert unchanged.document["userName"] == "other@example.com"
    assert unchanged.document["meta"]["version"] == other["meta"]["version"]


async def test_concurrent_creates_of_one_username_yield_exactly_one_201(client: Client):
    body = {"schemas": [USER], "userName": "race@example.com"}
    responses = await asyncio.gather(*(client.call("POST", "Users", body) for _ in range(20)))
    statuses = sorted(response.status for response in responses)
    assert statuses.count(201) == 1
    assert statuses.count(409) == 19
    listed = await client.call("GET", "Users")
    assert listed.document["totalResults"] == 1


async def test_put_replaces_the_whole_resource(client: Client):
    created = await client.create_user("put@example.com", displayName="Before", title="Engineer")
    response = await client.call(
        "PUT", f"Users/{created['id']}", {"schemas": [USER], "userName": "put@example.com", "displayName": "After"}
    )
    assert response.status == 200
    assert response.document["displayName"] == "After"
    assert "title" not in response.document
    assert response.document["meta"]["created"] == created["meta"]["created"]


async def test_put_without_username_is_400_and_changes_nothing(client: Client):
    created = await client.create_user("keep@example.com")
    response = await client.call("PUT", f"Users/{created['id']}", {"schemas": [USER], "userame": "typo"})
    assert response.status == 400
    assert (await client.call("GET", f"Users/{created['id']}")).document["userName"] == "keep@example.com"


async def test_delete_then_get_is_404_and_the_name_is_free(client: Client):
    created = await client.create_user("gone@example.com")
    assert (await client.call("DELETE", f"Users/{created['id']}")).status == 204
    assert (await client.call("GET", f"Users/{created['id']}")).status == 404
    assert (await client.call("DELETE", f"Users/{created['id']}")).status == 404
    await client.create_user("gone@example.com")


async def test_if_match_mismatch_is_412_and_match_succeeds(client: Client):
    created = await client.create_user("etag@example.com")
    stale = {"If-Match": "W/\"datetime'2000-01-01T00%3A00%3A00Z'\""}
    operation = patch_body({"op": "replace", "path": "displayName", "value": "X"})
    assert (await client.call("PATCH", f"Users/{created['id']}", operation, headers=stale)).status == 412
    assert (await client.call("DELETE", f"Users/{created['id']}", headers=stale)).status == 412
    fresh = {"If-Match": created["meta"]["version"]}
    patched = await client.call("PATCH", f"Users/{created['id']}", operation, headers=fresh)
    assert patched.status == 200
    assert patched.document["meta"]["version"] != created["meta"]["version"]


async def test_failed_patch_changes_nothing(client: Client):
    created = await client.create_user("atomic@example.com", displayName="Same")
    response = await client.call(
        "PATCH",
        f"Users/{created['id']}",
        patch_body(
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "replace", "path": "userName", "value": None},
        ),
    )
    assert response.status == 400
    current = await client.call("GET", f"Users/{created['id']}")
    assert current.document["displayName"] == "Same"
    assert current.document["userName"] == "atomic@example.com"


async def test_tenants_do_not_see_each_other(store):
    from tests.conftest import make_client

    first, second = make_client(store), make_client(store)
    created = await first.create_user("shared-name@example.com")
    assert (await second.call("GET", f"Users/{created['id']}")).status == 404
    listed = await second.call("GET", "Users", query={"filter": 'userName eq "shared-name@example.com"'})
    assert listed.document["totalResults"] == 0
    await second.create_user("shared-name@example.com")


async def test_oversize_document_is_413_and_nothing_is_stored(client: Client):
    body = {"schemas": [USER], "userName": "big@example.com", "title": "x" * 40_000}
    response = await client.call("POST", "Users", body)
    assert response.status == 413
    listed = await client.call("GET", "Users", query={"filter": 'userName eq "big@example.com"'})
    assert listed.document["totalResults"] == 0


async def test_patch_response_honours_attributes(client: Client):
    created = await client.create_user("projected@example.com", displayName="Before")
    body = patch_body({"op": "replace", "path": "displayName", "value": "After"})
    response = await client.call("PATCH", f"Users/{created['id']}", body, query={"attributes": "displayName"})
    assert response.status == 200
    assert set(response.document) == {"schemas", "id", "displayName"}
    assert response.document["displayName"] == "After"
