"""Replays every group example of Microsoft's SCIM provisioning tutorial and both member-removal shapes of the
compliance doc (docs/entra-client.md §42-49) over real HTTP, through ``python -m scim serve``."""

import secrets

import httpx

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ADSCIM = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def create_group(http: httpx.Client) -> dict:
    """Tutorial "Create Group", verbatim apart from fresh values."""
    body = {
        "schemas": [GROUP, ADSCIM],
        "externalId": secrets.token_hex(16),
        "displayName": f"displayName-{secrets.token_hex(6)}",
        "meta": {"resourceType": "Group"},
    }
    response = http.post("/Groups", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["schemas"] == [GROUP]
    assert created["meta"]["resourceType"] == "Group"
    assert created["members"] == []
    return created


def create_user(http: httpx.Client) -> str:
    response = http.post("/Users", json={"schemas": [USER], "userName": f"m-{secrets.token_hex(6)}@example.com"})
    assert response.status_code == 201
    return response.json()["id"]


def members(http: httpx.Client, group_id: str) -> list[str]:
    return [member["value"] for member in http.get(f"/Groups/{group_id}").json().get("members", [])]


def test_test_connection_probe_of_groups_is_an_empty_list(http: httpx.Client):
    response = http.get(
        "/Groups", params={"excludedAttributes": "members", "filter": f'displayName eq "{secrets.token_hex(8)}"'}
    )
    assert response.status_code == 200
    assert response.json()["totalResults"] == 0


def test_get_group_excluding_members(http: httpx.Client):
    group = create_group(http)
    http.patch(
        f"/Groups/{group['id']}",
        json={
            "schemas": [PATCH],
            "Operations": [{"op": "Add", "path": "members", "value": [{"$ref": None, "value": create_user(http)}]}],
        },
    )
    response = http.get(f"/Groups/{group['id']}", params={"excludedAttributes": "members"})
    assert response.status_code == 200
    document = response.json()
    assert "members" not in document
    assert document["displayName"] == group["displayName"]
    assert document["externalId"] == group["externalId"]


def test_get_group_by_display_name(http: httpx.Client):
    group = create_group(http)
    response = http.get(
        "/Groups",
        params={"excludedAttributes": "members", "filter": f'displayName eq "{group["displayName"].upper()}"'},
    )
    listed = response.json()
    assert listed["schemas"] == [LIST]
    assert listed["totalResults"] == 1
    assert "members" not in listed["Resources"][0]


def test_update_group_attributes_is_204(http: httpx.Client):
    group = create_group(http)
    new_name = f"{secrets.token_hex(4)}updatedDisplayName"
    response = http.patch(
        f"/Groups/{group['id']}",
        json={"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "displayName", "value": new_name}]},
    )
    assert response.status_code == 204
    assert response.content == b""
    assert http.get(f"/Groups/{group['id']}").json()["displayName"] == new_name


def test_add_members_then_remove_in_both_dialects(http: httpx.Client):
    group = create_group(http)
    first, second, third = create_user(http), create_user(http), create_user(http)
    url = f"/Groups/{group['id']}"
    add = {"op": "Add", "path": "members", "value": [{"$ref": None, "value": u} for u in (first, second, third)]}
    assert http.patch(url, json={"schemas": [PATCH], "Operations": [add]}).status_code == 204
    assert sorted(members(http, group["id"])) == sorted([first, second, third])
    legacy = {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": first}]}
    assert http.patch(url, json={"schemas": [PATCH], "Operations": [legacy]}).status_code == 204
    flagged = {"op": "remove", "path": f'members[value eq "{second}"]'}
    assert http.patch(url, json={"schemas": [PATCH], "Operations": [flagged]}).status_code == 204
    assert members(http, group["id"]) == [third]
    check = http.get(
        "/Groups",
        params={"filter": f'id eq "{group["id"]}" and members[value eq "{third}"]', "excludedAttributes": "members"},
    )
    assert check.json()["totalResults"] == 1


def test_delete_group_is_204(http: httpx.Client):
    group = create_group(http)
    assert http.delete(f"/Groups/{group['id']}").status_code == 204
    assert http.get(f"/Groups/{group['id']}").status_code == 404
