"""Declared and undeclared extensions over real HTTP, through ``python -m scim serve`` started with
SCIM_SCHEMA_EXTENSIONS (the repository's example) and SCIM_INDEXED_ATTRIBUTES: discovery, coercion, every PATCH form
on Users and Groups, a refused value that changes nothing, and a match on an indexed custom attribute."""

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.local_server import LocalServer

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ACME = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
TEAM = "urn:ietf:params:scim:schemas:extension:teams:1.0:Group"


@pytest.fixture(scope="module")
def http(azurite_connection_string: str) -> Iterator[httpx.Client]:
    server = LocalServer(azurite_connection_string, f"decl{secrets.token_hex(4)}")
    server.env["SCIM_SCHEMA_EXTENSIONS"] = "examples/schema-extensions.json"
    server.env["SCIM_INDEXED_ATTRIBUTES"] = f"{CUSTOM}:CustomAttribute,{ACME}:badgeId"
    server.start()
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/scim+json"}
    try:
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=20) as client:
            yield client
    finally:
        server.close()


def patch(http: httpx.Client, path: str, *operations: dict) -> httpx.Response:
    return http.patch(path, json={"schemas": [PATCH], "Operations": list(operations)})


def test_discovery_lists_the_declared_extension(http: httpx.Client):
    assert http.get(f"/Schemas/{ACME}").status_code == 200
    assert {"schema": ACME, "required": False} in http.get("/ResourceTypes/User").json()["schemaExtensions"]


def test_declared_user_extension_over_http(http: httpx.Client):
    body = {"schemas": [USER], "userName": f"d{secrets.token_hex(4)}@contoso.com", ACME: {"isContractor": "True"}}
    created = http.post("/Users", json=body)
    assert created.status_code == 201, created.text
    user = f"/Users/{created.json()['id']}"
    assert created.json()[ACME] == {"isContractor": True}
    assert patch(http, user, {"op": "Add", "path": f"{ACME}:level", "value": "4"}).status_code == 200
    assert patch(http, user, {"op": "replace", "value": {f"{ACME}:costCenter": "cc", "title": "T"}}).status_code == 200
    assert patch(http, user, {"op": "Replace", "path": f"{ACME}:badgeId", "value": "B-7"}).status_code == 200
    fetched = http.get(user).json()
    assert fetched[ACME] == {"isContractor": True, "level": 4, "costCenter": "cc", "badgeId": "B-7"}
    assert fetched["title"] == "T"
    refused = patch(http, user, {"op": "replace", "path": f"{ACME}:level", "value": "four"})
    assert refused.status_code == 400 and refused.json()["scimType"] == "invalidValue"
    assert http.get(user).json()["meta"]["version"] == fetched["meta"]["version"]
    found = http.get("/Users", params={"filter": f'{ACME}:badgeId eq "B-7"'}).json()
    assert [r["id"] for r in found["Resources"]] == [created.json()["id"]]
    assert http.get("/Users", params={"filter": f'{ACME}:badgeId eq "b-7"'}).json()["totalResults"] == 0  # caseExact


def test_undeclared_group_extension_over_http(http: httpx.Client):
    created = http.post("/Groups", json={"schemas": [GROUP], "displayName": f"G{secrets.token_hex(4)}", TEAM: {"a": 1}})
    assert created.status_code == 201, created.text
    group = f"/Groups/{created.json()['id']}"
    operations = (
        {"op": "Add", "path": f"{TEAM}:code", "value": "x"},
        {"op": "replace", "value": {f"{TEAM}:a": 2, TEAM: {"flag": True}}},
        {"op": "Remove", "path": f"{TEAM}:code"},
    )
    assert patch(http, group, *operations).status_code == 204
    assert http.get(group).json()[TEAM] == {"a": 2, "flag": True}


def test_match_on_an_indexed_custom_attribute(http: httpx.Client):
    value = secrets.token_hex(4)
    body = {"schemas": [USER], "userName": f"m{value}@contoso.com", CUSTOM: {"CustomAttribute": value}}
    user_id = http.post("/Users", json=body).json()["id"]
    found = http.get("/Users", params={"filter": f'{CUSTOM}:CustomAttribute eq "{value.upper()}"'}).json()
    assert [r["id"] for r in found["Resources"]] == [user_id]
