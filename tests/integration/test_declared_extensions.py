"""Declared extension schemas (SCIM_SCHEMA_EXTENSIONS) against real Azurite: published in /Schemas and
/ResourceTypes, values validated and coerced by type on POST, PUT and every PATCH form, a bad value refused with a
400 that changes nothing, returned/caseExact/required honoured, and a malformed file refusing to serve."""

import json
import secrets
from pathlib import Path

import pytest

from scim import declarations
from scim.dispatch import ScimEndpoint
from scim.settings import ConfigurationError, Settings
from scim.store.tables import TableStore
from tests.conftest import Client

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ACME = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
TEAM = "urn:ietf:params:scim:schemas:extension:acme:2.0:Group"
OTHER = "urn:ietf:params:scim:schemas:extension:Other:1.0:User"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "schema-extensions.json"
GROUP_DECLARATION = {
    "resourceType": "Group",
    "required": True,
    "schema": {
        "id": TEAM,
        "name": "AcmeGroup",
        "attributes": [{"name": "code", "type": "string", "required": True}, {"name": "budget", "type": "decimal"}],
    },
}


@pytest.fixture
def declared_file(tmp_path: Path) -> Path:
    path = tmp_path / f"extensions-{secrets.token_hex(4)}.json"
    user = json.loads(EXAMPLE.read_text())
    for attribute in user[0]["schema"]["attributes"]:
        if attribute["name"] == "skills":
            attribute["returned"] = "request"
    path.write_text(json.dumps([*user, GROUP_DECLARATION]))
    return path


def client_for(store: TableStore, path: Path, undeclared: str = "keep") -> Client:
    tenant, token = f"t{secrets.token_hex(6)}", secrets.token_urlsafe(24)
    settings = Settings(
        "unused", None, ((tenant, token),), undeclared_extensions=undeclared, schema_extensions=str(path)
    )
    settings.check()
    return Client(ScimEndpoint(settings, store), token)


@pytest.fixture
def client(store: TableStore, declared_file: Path) -> Client:
    return client_for(store, declared_file)


def patch_body(*operations: dict) -> dict:
    return {"schemas": [PATCH], "Operations": list(operations)}


async def test_declared_schemas_are_published(client: Client):
    listed = (await client.call("GET", "Schemas")).document
    ids = [schema["id"] for schema in listed["Resources"]]
    assert ACME in ids and TEAM in ids
    acme = (await client.call("GET", f"Schemas/{ACME}")).document
    attributes = {attribute["name"]: attribute for attribute in acme["attributes"]}
    assert attributes["isContractor"]["type"] == "boolean"
    assert attributes["badgeId"]["caseExact"] is True
    assert attributes["pinHash"]["returned"] == "never"
    assert acme["meta"]["location"].endswith(f"/Schemas/{ACME}")
    user_type = (await client.call("GET", "ResourceTypes/User")).document
    assert {"schema": ACME, "required": False} in user_type["schemaExtensions"]
    group_type = (await client.call("GET", "ResourceTypes/Group")).document
    assert group_type["schemaExtensions"] == [{"schema": TEAM, "required": True}]


async def test_values_are_coerced_by_type(client: Client):
    body = {
        "schemas": [USER],
        "userName": "typed@contoso.com",
        ACME: {"costCenter": "4130", "isContractor": "True", "level": "3", "hireDate": "2024-05-01T10:00:00Z"},
    }
    created = await client.call("POST", "Users", body)
    assert created.status == 201, created.document
    fetched = (await client.call("GET", f"Users/{created.document['id']}")).document
    assert fetched[ACME]["isContractor"] is True
    assert fetched[ACME]["level"] == 3
    assert fetched[ACME]["costCenter"] == "4130"
    assert fetched[ACME]["hireDate"].startswith("2024-05-01T10:00:00")
    assert ACME in fetched["schemas"]


@pytest.mark.parametrize(
    "block, named",
    [
        ({"level": "three"}, "level"),
        ({"isContractor": "maybe"}, "isContractor"),
        ({"hireDate": "yesterday"}, "hireDate"),
        ({"unknownThing": "x"}, "unknownThing"),
        ({"costCenter": ["a", "b"]}, "costCenter"),
    ],
)
async def test_a_bad_value_is_a_400_naming_it_and_nothing_is_stored(client: Client, block: dict, named: str):
    response = await client.call("POST", "Users", {"schemas": [USER], "userName": "bad@contoso.com", ACME: block})
    assert response.status == 400
    assert response.document["scimType"] == "invalidValue"
    assert ACME in response.document["detail"] and named in response.document["detail"]
    assert (await client.call("GET", "Users")).document["totalResults"] == 0


async def test_every_patch_form_is_validated_and_coerced(client: Client):
    user_id = (await client.call("POST", "Users", {"schemas": [USER], "userName": "p@contoso.com"})).document["id"]
    operations = patch_body(
        {"op": "Add", "path": f"{ACME}:isContractor", "value": "False"},
        {"op": "replace", "value": {f"{ACME}:level": "7", "displayName": "P"}},
        {"op": "Add", "value": {ACME: {"costCenter": "88"}}},
    )
    assert (await client.call("PATCH", f"Users/{user_id}", operations)).status == 200
    fetched = (await client.call("GET", f"Users/{user_id}")).document
    assert fetched[ACME] == {"costCenter": "88", "isContractor": False, "level": 7}
    bad = await client.call(
        "PATCH",
        f"Users/{user_id}",
        patch_body(
            {"op": "replace", "path": "active", "value": False},
            {"op": "replace", "path": f"{ACME}:level", "value": "high"},
        ),
    )
    assert bad.status == 400
    assert bad.document["scimType"] == "invalidValue"
    unchanged = (await client.call("GET", f"Users/{user_id}")).document
    assert unchanged["meta"]["version"] == fetched["meta"]["version"]
    assert (await client.call("PATCH", f"Users/{user_id}", patch_body({"op": "remove", "path": ACME}))).status == 200
    assert ACME not in (await client.call("GET", f"Users/{user_id}")).document


async def test_returned_never_and_request(client: Client):
    body = {"schemas": [USER], "userName": "r@contoso.com", ACME: {"costCenter": "1", "pinHash": "x", "skills": ["a"]}}
    created = await client.call("POST", "Users", body)
    assert created.document[ACME] == {"costCenter": "1"}
    user_id = created.document["id"]
    assert (await client.call("GET", f"Users/{user_id}")).document[ACME] == {"costCenter": "1"}
    asked = await client.call("GET", f"Users/{user_id}", query={"attributes": f"{ACME}:skills,{ACME}:pinHash"})
    assert asked.document[ACME] == {"skills": ["a"]}
    listed = await client.call("GET", "Users", query={"filter": f'{ACME}:pinHash eq "x"'})
    assert listed.document["totalResults"] == 1  # stored, only never returned


async def test_case_exact_attributes_compare_with_case(client: Client):
    body = {"schemas": [USER], "userName": "c@contoso.com", ACME: {"badgeId": "AbC", "costCenter": "AbC"}}
    user_id = (await client.call("POST", "Users", body)).document["id"]

    async def found(text: str) -> list[str]:
        return [r["id"] for r in (await client.call("GET", "Users", query={"filter": text})).document["Resources"]]

    assert await found(f'{ACME}:badgeId eq "AbC"') == [user_id]
    assert await found(f'{ACME}:badgeId eq "abc"') == []
    assert await found(f'{ACME}:costCenter eq "abc"') == [user_id]


async def test_filter_values_are_read_as_the_declared_type(client: Client):
    """The stored value was coerced ("3" → 3, "True" → true), so the same text in a filter must find it."""
    body = {"schemas": [USER], "userName": "f@contoso.com", ACME: {"level": "3", "isContractor": "True"}}
    user_id = (await client.call("POST", "Users", body)).document["id"]
    other = {"schemas": [USER], "userName": "g@contoso.com", ACME: {"level": 30, "isContractor": False}}
    other_id = (await client.call("POST", "Users", other)).document["id"]

    async def found(text: str) -> list[str]:
        listed = await client.call("GET", "Users", query={"filter": text})
        assert listed.status == 200, listed.document
        return sorted(r["id"] for r in listed.document["Resources"])

    assert await found(f'{ACME}:level eq "3"') == [user_id]
    assert await found(f"{ACME}:level eq 3") == [user_id]
    assert await found(f'{ACME}:level gt "4"') == [other_id]  # numerically: "30" > "4" would be false as text
    assert await found(f'{ACME}:isContractor eq "True"') == [user_id]
    assert await found(f'{ACME}:isContractor eq "false"') == [other_id]
    assert await found(f'{ACME}:level eq "three"') == []


async def test_a_required_extension_and_its_required_attribute(client: Client):
    missing = await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": "G"})
    assert missing.status == 400 and TEAM in missing.document["detail"]
    no_code = await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": "G", TEAM: {"budget": 1}})
    assert no_code.status == 400 and "code" in no_code.document["detail"]
    created = await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": "G", TEAM: {"code": "c"}})
    assert created.status == 201, created.document
    removed = await client.call("PATCH", f"Groups/{created.document['id']}", patch_body({"op": "remove", "path": TEAM}))
    assert removed.status == 400
    budget = patch_body({"op": "add", "path": f"{TEAM}:budget", "value": "12.5"})
    assert (await client.call("PATCH", f"Groups/{created.document['id']}", budget)).status == 204
    assert (await client.call("GET", f"Groups/{created.document['id']}")).document[TEAM] == {
        "code": "c",
        "budget": 12.5,
    }


async def test_reject_mode_still_accepts_declared_extensions(store: TableStore, declared_file: Path):
    client = client_for(store, declared_file, undeclared="reject")
    ok = await client.call("POST", "Users", {"schemas": [USER], "userName": "ok@contoso.com", ACME: {"level": 1}})
    assert ok.status == 201
    refused = await client.call("POST", "Users", {"schemas": [USER], "userName": "no@contoso.com", OTHER: {"a": 1}})
    assert refused.status == 400 and OTHER in refused.document["detail"]


def declaration_with(**changes: object) -> list[dict]:
    entry = json.loads(json.dumps(GROUP_DECLARATION))
    entry.update(changes)
    return [entry]


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"schema": {}}),
        json.dumps(declaration_with(resourceType="Device")),
        json.dumps(declaration_with(required="yes")),
        json.dumps(declaration_with(schema={"id": TEAM.replace("Group", "User"), "name": "X", "attributes": []})),
        json.dumps(declaration_with(schema={"id": TEAM, "name": "X", "attributes": [{"name": "a", "type": "colour"}]})),
        json.dumps(declaration_with(schema={"id": TEAM, "name": "X", "attributes": []})),
        json.dumps(declaration_with() + declaration_with()),
        json.dumps(
            declaration_with(
                resourceType="User",
                schema={"id": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "attributes": []},
            )
        ),
    ],
)
def test_a_malformed_declaration_file_stops_the_app_with_a_clear_message(tmp_path: Path, content: str):
    path = tmp_path / f"bad-{secrets.token_hex(4)}.json"
    path.write_text(content)
    settings = Settings("UseDevelopmentStorage=true", None, (("d", "x" * 16),), schema_extensions=str(path))
    with pytest.raises(ConfigurationError, match="SCIM_SCHEMA_EXTENSIONS"):
        settings.check()


def test_a_missing_file_stops_the_app():
    settings = Settings("x", None, (("d", "x" * 16),), schema_extensions=f"missing-{secrets.token_hex(4)}.json")
    with pytest.raises(ConfigurationError, match="SCIM_SCHEMA_EXTENSIONS"):
        settings.check()


def test_the_example_in_the_repository_loads():
    assert [extension.urn for extension in declarations.load("examples/schema-extensions.json")] == [ACME]
