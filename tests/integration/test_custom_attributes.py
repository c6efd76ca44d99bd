"""Undeclared extension attributes (Entra's custom attributes) on Users and Groups, against real Azurite: every
PATCH form Entra uses, JSON types kept, projection, filters, the reject mode, tenant isolation."""

import json
import secrets

import pytest

from scim.dispatch import ScimEndpoint
from scim.settings import Settings
from scim.store.tables import TableStore
from tests.conftest import Client, make_client

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
GROUP_CUSTOM = "urn:ietf:params:scim:schemas:extension:acme:1.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def patch_body(*operations: dict) -> dict:
    return {"schemas": [PATCH], "Operations": list(operations)}


def entra_user(user_name: str) -> dict:
    """The body "Customize Microsoft Entra attribute mappings" documents (§53), custom URN not in schemas[]."""
    return {
        "schemas": [USER, ENTERPRISE],
        "userName": user_name,
        "active": True,
        ENTERPRISE: {
            "employeeNumber": "701984",
            "costCenter": "4130",
            "organization": "Universal Studios",
            "division": "Theme Park",
            "department": "Tour Operations",
        },
        CUSTOM: {"CustomAttribute": "701984"},
    }


async def get_user(client: Client, user_id: str, **query: str) -> dict:
    response = await client.call("GET", f"Users/{user_id}", query=query)
    assert response.status == 200, response.document
    return response.document


async def test_entra_custom_attribute_body_is_kept_and_returned_with_its_urn(client: Client):
    created = await client.call("POST", "Users", entra_user("ext1@contoso.com"))
    assert created.status == 201
    assert created.document[CUSTOM] == {"CustomAttribute": "701984"}
    assert CUSTOM in created.document["schemas"]
    fetched = await get_user(client, created.document["id"])
    assert fetched[CUSTOM] == {"CustomAttribute": "701984"}
    assert fetched[ENTERPRISE]["employeeNumber"] == "701984"
    assert fetched["schemas"].count(CUSTOM) == 1
    listed = await client.call("GET", "Users", query={"filter": 'userName eq "ext1@contoso.com"'})
    assert listed.document["Resources"][0][CUSTOM] == {"CustomAttribute": "701984"}


async def test_issue_patch_add_by_full_urn_path_is_kept(client: Client):
    user = await client.create_user("p1@contoso.com")
    response = await client.call(
        "PATCH", f"Users/{user['id']}", patch_body({"op": "Add", "path": f"{CUSTOM}:costCenter", "value": "88"})
    )
    assert response.status == 200
    assert response.document[CUSTOM] == {"costCenter": "88"}
    fetched = await get_user(client, user["id"])
    assert fetched[CUSTOM] == {"costCenter": "88"}
    assert CUSTOM in fetched["schemas"]
    assert fetched["meta"]["version"] != user["meta"]["version"]


@pytest.mark.parametrize("add, replace, remove", [("Add", "Replace", "Remove"), ("add", "replace", "remove")])
async def test_full_urn_path_add_replace_remove_in_any_op_case(client: Client, add: str, replace: str, remove: str):
    user = await client.create_user(f"{secrets.token_hex(4)}@contoso.com")
    path = f"{CUSTOM}:CustomAttribute"
    await client.call("PATCH", f"Users/{user['id']}", patch_body({"op": add, "path": path, "value": "1"}))
    assert (await get_user(client, user["id"]))[CUSTOM] == {"CustomAttribute": "1"}
    await client.call("PATCH", f"Users/{user['id']}", patch_body({"op": replace, "path": path, "value": "2"}))
    assert (await get_user(client, user["id"]))[CUSTOM] == {"CustomAttribute": "2"}
    await client.call("PATCH", f"Users/{user['id']}", patch_body({"op": remove, "path": path}))
    fetched = await get_user(client, user["id"])
    assert CUSTOM not in fetched
    assert CUSTOM not in fetched["schemas"]


async def test_path_is_matched_case_insensitively_and_keeps_the_first_spelling(client: Client):
    created = await client.call("POST", "Users", entra_user("case@contoso.com"))
    user_id = created.document["id"]
    response = await client.call(
        "PATCH",
        f"Users/{user_id}",
        patch_body({"op": "replace", "path": f"{CUSTOM.lower()}:customattribute", "value": "9"}),
    )
    assert response.status == 200
    assert (await get_user(client, user_id))[CUSTOM] == {"CustomAttribute": "9"}


async def test_clearing_with_empty_string_or_null_removes_the_attribute(client: Client):
    created = await client.call("POST", "Users", entra_user("clear@contoso.com"))
    user_id = created.document["id"]
    for value in ("", None):
        await client.call(
            "PATCH", f"Users/{user_id}", patch_body({"op": "Add", "path": f"{CUSTOM}:CustomAttribute", "value": "x"})
        )
        await client.call(
            "PATCH",
            f"Users/{user_id}",
            patch_body({"op": "Replace", "path": f"{CUSTOM}:CustomAttribute", "value": value}),
        )
        assert CUSTOM not in await get_user(client, user_id)


async def test_pathless_replace_with_dotted_urn_keys_mixed_with_core_attributes(client: Client):
    """The aadOptscim062020 form (§29): one path-less replace naming core, enterprise and custom attributes."""
    user = await client.create_user("pathless@contoso.com")
    body = patch_body(
        {
            "op": "replace",
            "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                f"{ENTERPRISE}:employeeNumber": "Aklq",
                f"{CUSTOM}:CustomAttribute": "701984",
                f"{CUSTOM}:costCenter": "12",
            },
        }
    )
    response = await client.call("PATCH", f"Users/{user['id']}", body)
    assert response.status == 200
    fetched = await get_user(client, user["id"])
    assert fetched["displayName"] == "Bjfe"
    assert fetched["name"]["givenName"] == "Kkom"
    assert fetched[ENTERPRISE]["employeeNumber"] == "Aklq"
    assert fetched[CUSTOM] == {"CustomAttribute": "701984", "costCenter": "12"}


async def test_pathless_add_with_a_urn_block_merges_into_the_block(client: Client):
    created = await client.call("POST", "Users", entra_user("block@contoso.com"))
    user_id = created.document["id"]
    body = patch_body({"op": "Add", "value": {CUSTOM: {"costCenter": "7", "CustomAttribute": None}}})
    assert (await client.call("PATCH", f"Users/{user_id}", body)).status == 200
    assert (await get_user(client, user_id))[CUSTOM] == {"costCenter": "7"}


async def test_remove_of_the_whole_block(client: Client):
    created = await client.call("POST", "Users", entra_user("rmblock@contoso.com"))
    user_id = created.document["id"]
    assert (await client.call("PATCH", f"Users/{user_id}", patch_body({"op": "remove", "path": CUSTOM}))).status == 200
    assert CUSTOM not in await get_user(client, user_id)


async def test_json_types_are_kept(client: Client):
    values = {
        "flag": False,
        "count": 42,
        "ratio": 0.5,
        "text": "007",
        "badge": {"number": "B-1", "issued": "2024-01-01"},
        "tags": ["a", "b"],
        "phones": [{"type": "desk", "value": "1"}],
    }
    body = {"schemas": [USER], "userName": "types@contoso.com", CUSTOM: values}
    created = await client.call("POST", "Users", body)
    assert created.status == 201
    fetched = await get_user(client, created.document["id"])
    assert json.dumps(fetched[CUSTOM], sort_keys=True) == json.dumps(values, sort_keys=True)


async def test_patch_of_complex_and_multi_valued_extension_attributes(client: Client):
    body = {
        "schemas": [USER],
        "userName": "multi@contoso.com",
        CUSTOM: {"phones": [{"type": "desk", "value": "1"}], "badge": {"number": "B-1"}},
    }
    user_id = (await client.call("POST", "Users", body)).document["id"]
    operations = patch_body(
        {"op": "Replace", "path": f'{CUSTOM}:phones[type eq "desk"].value', "value": "2"},
        {"op": "Add", "path": f'{CUSTOM}:phones[type eq "fax"].value', "value": "3"},
        {"op": "Replace", "path": f"{CUSTOM}:badge.number", "value": "B-2"},
        {"op": "Add", "path": f"{CUSTOM}:badge.floor", "value": 4},
        {"op": "Add", "path": f"{CUSTOM}:tags", "value": ["x"]},
        {"op": "Add", "path": f"{CUSTOM}:tags", "value": ["y", "x"]},
    )
    response = await client.call("PATCH", f"Users/{user_id}", operations)
    assert response.status == 200, response.document
    fetched = (await get_user(client, user_id))[CUSTOM]
    assert fetched["phones"] == [{"type": "desk", "value": "2"}, {"type": "fax", "value": "3"}]
    assert fetched["badge"] == {"number": "B-2", "floor": 4}
    assert fetched["tags"] == ["x", "y"]
    removal = patch_body(
        {"op": "remove", "path": f'{CUSTOM}:phones[type eq "desk"]'},
        {"op": "remove", "path": f"{CUSTOM}:badge.floor"},
        {"op": "Remove", "path": f"{CUSTOM}:tags", "value": ["x"]},
    )
    assert (await client.call("PATCH", f"Users/{user_id}", removal)).status == 200
    fetched = (await get_user(client, user_id))[CUSTOM]
    assert fetched == {"phones": [{"type": "fax", "value": "3"}], "badge": {"number": "B-2"}, "tags": ["y"]}


async def test_put_replaces_the_blocks(client: Client):
    created = await client.call("POST", "Users", entra_user("put@contoso.com"))
    user_id = created.document["id"]
    other = "urn:ietf:params:scim:schemas:extension:Other:1.0:User"
    body = {"schemas": [USER], "userName": "put@contoso.com", other: {"a": "1"}}
    assert (await client.call("PUT", f"Users/{user_id}", body)).status == 200
    fetched = await get_user(client, user_id)
    assert CUSTOM not in fetched
    assert fetched[other] == {"a": "1"}


async def test_attributes_and_excluded_attributes_select_extension_attributes(client: Client):
    body = entra_user("proj@contoso.com")
    body[CUSTOM]["costCenter"] = "5"
    user_id = (await client.call("POST", "Users", body)).document["id"]
    only = await get_user(client, user_id, attributes=f"{CUSTOM}:costCenter")
    assert only[CUSTOM] == {"costCenter": "5"}
    assert "userName" not in only
    assert CUSTOM in only["schemas"]
    whole = await get_user(client, user_id, attributes=f"userName,{CUSTOM}")
    assert whole[CUSTOM] == {"CustomAttribute": "701984", "costCenter": "5"}
    core_only = await get_user(client, user_id, attributes="userName")
    assert CUSTOM not in core_only
    assert CUSTOM not in core_only["schemas"]
    without = await get_user(client, user_id, excludedAttributes=CUSTOM)
    assert CUSTOM not in without
    assert without["userName"] == "proj@contoso.com"
    without_one = await get_user(client, user_id, excludedAttributes=f"{CUSTOM}:CustomAttribute")
    assert without_one[CUSTOM] == {"costCenter": "5"}
    listed = await client.call("GET", "Users", query={"attributes": f"{CUSTOM}:CustomAttribute"})
    assert listed.document["Resources"][0][CUSTOM] == {"CustomAttribute": "701984"}


async def test_filter_on_a_custom_attribute_finds_the_user(client: Client):
    """Entra matching on a custom attribute sends this filter; case-insensitive, as nothing declares it caseExact."""
    user_id = (await client.call("POST", "Users", entra_user("match@contoso.com"))).document["id"]
    await client.create_user("other@contoso.com", **{CUSTOM: {"CustomAttribute": "1"}})
    for text in (
        f'{CUSTOM}:CustomAttribute eq "701984"',
        f'{CUSTOM.lower()}:customattribute eq "701984" and userName sw "match"',
        f'{CUSTOM}:CustomAttribute eq "701984" or userName eq "nobody"',
        f'{CUSTOM}:CustomAttribute pr and not ({CUSTOM}:CustomAttribute eq "1")',
    ):
        found = await client.call("GET", "Users", query={"filter": text})
        assert found.status == 200, found.document
        assert [r["id"] for r in found.document["Resources"]] == [user_id], text
    none = await client.call("GET", "Users", query={"filter": f'{CUSTOM}:CustomAttribute eq "nope"'})
    assert none.document["totalResults"] == 0


async def test_groups_keep_their_extension_attributes(client: Client):
    body = {"schemas": [GROUP], "displayName": "Sales", GROUP_CUSTOM: {"costCenter": "4130", "budget": 10}}
    created = await client.call("POST", "Groups", body)
    assert created.status == 201
    group_id = created.document["id"]
    assert created.document[GROUP_CUSTOM] == {"costCenter": "4130", "budget": 10}
    operations = patch_body(
        {"op": "Replace", "path": f"{GROUP_CUSTOM}:costCenter", "value": "99"},
        {"op": "replace", "value": {f"{GROUP_CUSTOM}:region": "EU"}},
        {"op": "Remove", "path": f"{GROUP_CUSTOM}:budget"},
    )
    assert (await client.call("PATCH", f"Groups/{group_id}", operations)).status == 204
    fetched = (await client.call("GET", f"Groups/{group_id}")).document
    assert fetched[GROUP_CUSTOM] == {"costCenter": "99", "region": "EU"}
    assert GROUP_CUSTOM in fetched["schemas"]
    projected = await client.call("GET", f"Groups/{group_id}", query={"excludedAttributes": "members"})
    assert projected.document[GROUP_CUSTOM] == {"costCenter": "99", "region": "EU"}
    found = await client.call("GET", "Groups", query={"filter": f'{GROUP_CUSTOM}:region eq "eu"'})
    assert [g["id"] for g in found.document["Resources"]] == [group_id]


async def test_group_membership_patch_with_an_extension_operation(client: Client):
    user = await client.create_user("member@contoso.com")
    group_id = (await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": "G2"})).document["id"]
    operations = patch_body(
        {"op": "Add", "path": "members", "value": [{"value": user["id"]}]},
        {"op": "Add", "path": f"{GROUP_CUSTOM}:code", "value": "c"},
    )
    assert (await client.call("PATCH", f"Groups/{group_id}", operations)).status == 204
    fetched = (await client.call("GET", f"Groups/{group_id}")).document
    assert fetched[GROUP_CUSTOM] == {"code": "c"}
    assert [m["value"] for m in fetched["members"]] == [user["id"]]


async def test_an_extension_of_another_resource_type_is_refused_by_name(client: Client):
    response = await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": "G", CUSTOM: {"a": "1"}})
    assert response.status == 400
    assert CUSTOM in response.document["detail"]
    user = await client.create_user("wrongtype@contoso.com")
    patched = await client.call(
        "PATCH", f"Users/{user['id']}", patch_body({"op": "add", "path": f"{GROUP_CUSTOM}:a", "value": "1"})
    )
    assert patched.status == 400
    assert f"{GROUP_CUSTOM}:a" in patched.document["detail"]


async def test_an_attribute_name_no_path_can_address_is_refused(client: Client):
    body = {"schemas": [USER], "userName": "badname@contoso.com", CUSTOM: {"a.b": "1"}}
    response = await client.call("POST", "Users", body)
    assert response.status == 400
    assert response.document["scimType"] == "invalidValue"


async def test_extension_data_is_isolated_between_tenants(store: TableStore):
    first, second = make_client(store), make_client(store)
    user_id = (await first.call("POST", "Users", entra_user("iso@contoso.com"))).document["id"]
    assert (await second.call("GET", f"Users/{user_id}")).status == 404
    found = await second.call("GET", "Users", query={"filter": f'{CUSTOM}:CustomAttribute eq "701984"'})
    assert found.document["totalResults"] == 0
    patched = await second.call(
        "PATCH", f"Users/{user_id}", patch_body({"op": "add", "path": f"{CUSTOM}:x", "value": "1"})
    )
    assert patched.status == 404
    assert (await get_user(first, user_id))[CUSTOM] == {"CustomAttribute": "701984"}


def rejecting_client(store: TableStore) -> Client:
    tenant, token = f"t{secrets.token_hex(6)}", secrets.token_urlsafe(24)
    settings = Settings(
        storage_connection_string="unused",
        storage_table_uri=None,
        bearer_tokens=((tenant, token),),
        undeclared_extensions="reject",
    )
    return Client(ScimEndpoint(settings, store), token)


async def test_reject_mode_refuses_with_a_400_naming_the_attribute_and_changes_nothing(store: TableStore):
    client = rejecting_client(store)
    created = await client.call("POST", "Users", entra_user("reject@contoso.com"))
    assert created.status == 400
    assert created.document["scimType"] == "invalidValue"
    assert CUSTOM in created.document["detail"]
    assert (await client.call("GET", "Users")).document["totalResults"] == 0
    user = await client.create_user("reject@contoso.com", active=True, **{ENTERPRISE: {"employeeNumber": "1"}})
    response = await client.call(
        "PATCH",
        f"Users/{user['id']}",
        patch_body(
            {"op": "replace", "path": "active", "value": False},
            {"op": "Add", "path": f"{CUSTOM}:costCenter", "value": "88"},
        ),
    )
    assert response.status == 400
    assert response.document["scimType"] == "invalidPath"
    assert f"{CUSTOM}:costCenter" in response.document["detail"]
    unchanged = await get_user(client, user["id"])
    assert unchanged["meta"]["version"] == user["meta"]["version"]
    assert unchanged["active"] is True
    group = await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": "R", GROUP_CUSTOM: {"a": 1}})
    assert group.status == 400
    assert GROUP_CUSTOM in group.document["detail"]
