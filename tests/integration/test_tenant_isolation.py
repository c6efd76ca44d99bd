"""Tenant isolation: tenant A, knowing every id and name of tenant B, can neither see nor touch anything of B's.

Both tenants share one table (as tenants of one deployment do). B holds a user, a second user, and a group with both
as members; A attacks with B's real ids and names through every read, filter, write and membership reference. After
every attack B's stored state, read by B, is exactly what it was.
"""

import secrets
from dataclasses import dataclass
from typing import Any

import pytest

from scim.dispatch import ScimEndpoint
from scim.settings import Settings
from scim.store.tables import TableStore
from tests.conftest import Client, make_client
from tests.integration.scim_checks import (
    ENTERPRISE,
    GROUP,
    USER,
    assert_scim_error,
    patch_body,
    referenced_ids,
    snapshot,
)

SHARED_NAME = "Shared@Example.com"
SHARED_GROUP = "Shared Group"
SHARED_EXTERNAL_ID = "ext-shared-1"
SHARED_EMAIL = "shared.mail@example.com"


@dataclass
class Tenants:
    a: Client
    b: Client
    b_user: dict[str, Any]
    b_other: dict[str, Any]
    b_group: dict[str, Any]
    b_before: dict[str, Any]

    @property
    def b_ids(self) -> set[str]:
        return {self.b_user["id"], self.b_other["id"], self.b_group["id"]}

    async def assert_b_unchanged(self) -> None:
        assert await snapshot(self.b) == self.b_before


async def _seed_b(b: Client) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    user = await b.create_user(
        SHARED_NAME,
        externalId=SHARED_EXTERNAL_ID,
        emails=[{"value": SHARED_EMAIL, "type": "work", "primary": True}],
        title="B's secret title",
    )
    other = await b.create_user("b-only@example.com", **{ENTERPRISE: {"manager": {"value": user["id"]}}})
    members = [{"value": user["id"]}, {"value": other["id"]}]
    response = await b.call(
        "POST", "Groups", {"schemas": [GROUP], "displayName": SHARED_GROUP, "externalId": "g-ext", "members": members}
    )
    assert response.status == 201, response.document
    return user, other, response.document


@pytest.fixture
async def tenants(store: TableStore) -> Tenants:
    a, b = make_client(store), make_client(store)
    b_user, b_other, b_group = await _seed_b(b)
    return Tenants(a, b, b_user, b_other, b_group, await snapshot(b))


def assert_none_of(tenants: Tenants, document: dict[str, Any] | None) -> None:
    """A's response names no resource of B's, and carries none of B's data."""
    assert not referenced_ids(document) & tenants.b_ids, document
    assert "B's secret title" not in str(document)


async def test_the_same_names_exist_in_both_tenants(tenants: Tenants):
    a = tenants.a
    user = await a.create_user(SHARED_NAME.lower(), externalId=SHARED_EXTERNAL_ID, emails=[{"value": SHARED_EMAIL}])
    group = await a.call("POST", "Groups", {"schemas": [GROUP], "displayName": SHARED_GROUP.upper()})
    assert group.status == 201, group.document
    assert user["id"] not in tenants.b_ids and group.document["id"] not in tenants.b_ids
    again = await a.call("POST", "Users", {"schemas": [USER], "userName": SHARED_NAME})
    assert_scim_error(again, 409, "uniqueness")  # unique within A, as it is within B
    renamed = await tenants.b.call(
        "PATCH", f"Users/{tenants.b_other['id']}", patch_body({"op": "replace", "path": "userName", "value": "x@y"})
    )
    assert renamed.status == 200  # B renames freely: A's names take nothing from B
    await tenants.b.call(
        "PATCH",
        f"Users/{tenants.b_other['id']}",
        patch_body({"op": "replace", "path": "userName", "value": "b-only@example.com"}),
    )


async def test_a_cannot_read_b_by_id(tenants: Tenants):
    for path in (f"Users/{tenants.b_user['id']}", f"Groups/{tenants.b_group['id']}"):
        for query in ({}, {"attributes": "members,groups,userName"}, {"excludedAttributes": "members"}):
            assert_scim_error(await tenants.a.call("GET", path, query=query), 404)
    # an id of the other resource type, and a group id at the users endpoint
    assert_scim_error(await tenants.a.call("GET", f"Users/{tenants.b_group['id']}"), 404)
    assert_scim_error(await tenants.a.call("GET", f"Groups/{tenants.b_user['id']}"), 404)


async def test_a_lists_only_its_own_resources(tenants: Tenants):
    own = await tenants.a.create_user("a-only@example.com")
    for endpoint in ("Users", "Groups"):
        for query in ({}, {"count": "1000"}, {"startIndex": "1", "count": "200"}, {"attributes": "members,groups"}):
            response = await tenants.a.call("GET", endpoint, query=query)
            assert response.status == 200
            assert_none_of(tenants, response.document)
    users = await tenants.a.call("GET", "Users")
    assert [user["id"] for user in users.document["Resources"]] == [own["id"]]
    assert (await tenants.a.call("GET", "Groups")).document["totalResults"] == 0


def _filters(t: Tenants) -> list[tuple[str, str]]:
    b_user, b_group = t.b_user["id"], t.b_group["id"]
    return [
        ("Users", f'userName eq "{SHARED_NAME}"'),
        ("Users", f'userName eq "{SHARED_NAME.upper()}"'),
        ("Users", f"userName eq {SHARED_NAME}"),
        ("Users", 'userName sw "shared"'),
        ("Users", 'userName co "@"'),
        ("Users", "userName pr"),
        ("Users", f'externalId eq "{SHARED_EXTERNAL_ID}"'),
        ("Users", f'id eq "{b_user}"'),
        ("Users", f'id eq "{b_user}" or id eq "{t.b_other["id"]}"'),
        ("Users", f'emails.value eq "{SHARED_EMAIL}"'),
        ("Users", f'emails[type eq "work"].value eq "{SHARED_EMAIL}"'),
        ("Users", f'emails[value eq "{SHARED_EMAIL}"]'),
        ("Users", f'manager eq "{b_user}"'),
        ("Users", f'id eq "{t.b_other["id"]}" and manager eq "{b_user}"'),
        ("Users", 'title eq "B\'s secret title"'),
        ("Users", f'not (id eq "{b_user}")'),
        ("Users", 'meta.created gt "2000-01-01T00:00:00Z"'),
        ("Groups", f'displayName eq "{SHARED_GROUP}"'),
        ("Groups", 'displayName sw "Shared"'),
        ("Groups", 'externalId eq "g-ext"'),
        ("Groups", f'id eq "{b_group}"'),
        ("Groups", f'members[value eq "{b_user}"]'),
        ("Groups", f'members.value eq "{b_user}"'),
        ("Groups", f'members eq "{b_user}"'),
        ("Groups", f'id eq "{b_group}" and members[value eq "{b_user}"]'),
        ("Groups", f'displayName eq "{SHARED_GROUP}" and members[value eq "{b_user}"]'),
        ("Groups", f'not (members[value eq "{b_user}"])'),
        ("Groups", "members pr"),
    ]


async def test_no_filter_of_a_finds_anything_of_b(tenants: Tenants):
    for endpoint, text in _filters(tenants):
        for method, path, body, query in (
            ("GET", endpoint, None, {"filter": text}),
            ("POST", f"{endpoint}/.search", {"filter": text}, None),
            ("POST", ".search", {"filter": text}, None),
        ):
            response = await tenants.a.call(method, path, body, query)
            assert response.status in (200, 400), (text, response.document)
            if response.status == 200:
                assert response.document["totalResults"] == 0, (text, response.document)
                assert_none_of(tenants, response.document)
            else:
                assert_scim_error(response, 400, "invalidFilter", sent=text)


async def test_a_filter_finds_only_a_s_resource_of_the_same_name(tenants: Tenants):
    a = tenants.a
    mine = await a.create_user(SHARED_NAME, externalId=SHARED_EXTERNAL_ID, emails=[{"value": SHARED_EMAIL}])
    group = await a.call(
        "POST", "Groups", {"schemas": [GROUP], "displayName": SHARED_GROUP, "members": [{"value": mine["id"]}]}
    )
    for endpoint, text in (
        ("Users", f'userName eq "{SHARED_NAME}"'),
        ("Users", f'externalId eq "{SHARED_EXTERNAL_ID}"'),
        ("Users", f'emails.value eq "{SHARED_EMAIL}"'),
        ("Users", 'userName sw "shared"'),
        ("Groups", f'displayName eq "{SHARED_GROUP}"'),
        ("Groups", f'members[value eq "{mine["id"]}"]'),
    ):
        response = await a.call("GET", endpoint, query={"filter": text})
        assert response.document["totalResults"] == 1, (text, response.document)
        assert response.document["Resources"][0]["id"] in (mine["id"], group.document["id"])
        assert_none_of(tenants, response.document)
    user = await a.call("GET", f"Users/{mine['id']}")
    assert [g["value"] for g in user.document["groups"]] == [group.document["id"]]
    await tenants.assert_b_unchanged()


async def test_a_cannot_write_b_s_resources(tenants: Tenants):
    a, b_user, b_group = tenants.a, tenants.b_user["id"], tenants.b_group["id"]
    attempts = [
        ("PUT", f"Users/{b_user}", {"schemas": [USER], "userName": "hijacked@example.com"}),
        ("PATCH", f"Users/{b_user}", patch_body({"op": "replace", "path": "userName", "value": "hijacked"})),
        ("PATCH", f"Users/{b_user}", patch_body({"op": "replace", "path": "active", "value": False})),
        ("PATCH", f"Users/{b_user}", patch_body({"op": "remove", "path": "emails"})),
        ("PUT", f"Groups/{b_group}", {"schemas": [GROUP], "displayName": "hijacked", "members": []}),
        ("PATCH", f"Groups/{b_group}", patch_body({"op": "remove", "path": "members"})),
        ("PATCH", f"Groups/{b_group}", patch_body({"op": "remove", "path": f'members[value eq "{b_user}"]'})),
        ("PATCH", f"Groups/{b_group}", patch_body({"op": "replace", "path": "members", "value": []})),
        ("PATCH", f"Groups/{b_group}", patch_body({"op": "replace", "path": "displayName", "value": "hijacked"})),
        ("DELETE", f"Users/{b_user}", None),
        ("DELETE", f"Groups/{b_group}", None),
    ]
    for method, path, body in attempts:
        for headers in ({}, {"If-Match": "*"}, {"If-Match": tenants.b_user["meta"]["version"]}):
            assert_scim_error(await a.call(method, path, body, headers=headers), 404)
    await tenants.assert_b_unchanged()


async def test_a_cannot_reference_b_s_resources_as_members(tenants: Tenants):
    a, b_user, b_group = tenants.a, tenants.b_user["id"], tenants.b_group["id"]
    own_user = await a.create_user("member@example.com")
    group = await a.call(
        "POST", "Groups", {"schemas": [GROUP], "displayName": "A group", "members": [{"value": own_user["id"]}]}
    )
    group_id = group.document["id"]
    before = await snapshot(a)
    for foreign in (b_user, b_group):
        refused = [
            ("POST", "Groups", {"schemas": [GROUP], "displayName": "with B", "members": [{"value": foreign}]}),
            (
                "PUT",
                f"Groups/{group_id}",
                {"schemas": [GROUP], "displayName": "A group", "members": [{"value": foreign}]},
            ),
            (
                "PATCH",
                f"Groups/{group_id}",
                patch_body({"op": "add", "path": "members", "value": [{"value": foreign}]}),
            ),
            (
                "PATCH",
                f"Groups/{group_id}",
                patch_body({"op": "Add", "path": "members", "value": [{"$ref": None, "value": foreign}]}),
            ),
            (
                "PATCH",
                f"Groups/{group_id}",
                patch_body({"op": "replace", "path": "members", "value": [{"value": foreign}]}),
            ),
            ("PATCH", f"Groups/{group_id}", patch_body({"op": "replace", "value": {"members": [{"value": foreign}]}})),
            # one valid member and one foreign: all or nothing
            (
                "PATCH",
                f"Groups/{group_id}",
                patch_body({"op": "add", "path": "members", "value": [{"value": own_user["id"]}, {"value": foreign}]}),
            ),
        ]
        for method, path, body in refused:
            response = await a.call(method, path, body)
            assert_scim_error(response, 400, "invalidValue")
            assert_none_of(tenants, response.document)
    assert await snapshot(a) == before
    # Removing B's ids from A's group is a no-op for A and, above all, for B.
    for foreign in (b_user, tenants.b_other["id"]):
        for operation in (
            {"op": "remove", "path": f'members[value eq "{foreign}"]'},
            {"op": "remove", "path": "members", "value": [{"value": foreign}]},
        ):
            assert (await a.call("PATCH", f"Groups/{group_id}", patch_body(operation))).status == 204
    after = await snapshot(a)
    assert [g["members"] for g in after["Groups"]] == [g["members"] for g in before["Groups"]]
    # A's group read with B's member id as the paging cursor still shows only A's members.
    page = await a.call("GET", f"Groups/{group_id}", query={"membersAfter": b_user})
    assert_none_of(tenants, page.document)
    await tenants.assert_b_unchanged()


async def test_a_user_s_groups_and_manager_never_reveal_b(tenants: Tenants):
    a = tenants.a
    user = await a.create_user("managed@example.com", **{ENTERPRISE: {"manager": tenants.b_user["id"]}})
    response = await a.call("GET", f"Users/{user['id']}")
    assert "groups" not in response.document  # B's group has B's users, never A's
    # The manager is an opaque reference A sent; it resolves nothing of B's, and B's user still has no reports in A.
    found = await a.call("GET", "Users", query={"filter": f'manager eq "{tenants.b_user["id"]}"'})
    assert [u["id"] for u in found.document["Resources"]] == [user["id"]]
    await tenants.assert_b_unchanged()


async def test_one_deployment_serving_both_tenants_keeps_them_apart(store: TableStore):
    """The realistic setup: one endpoint configured with both tenants' tokens; the token decides the tenant."""
    token_a, token_b = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    tenant_a, tenant_b = f"ta{secrets.token_hex(6)}", f"tb{secrets.token_hex(6)}"
    settings = Settings(
        storage_connection_string="unused",
        storage_table_uri=None,
        bearer_tokens=((tenant_a, token_a), (tenant_b, token_b)),
    )
    endpoint = ScimEndpoint(settings, store)
    as_a, as_b = Client(endpoint, token_a), Client(endpoint, token_b)
    b_user = await as_b.create_user(SHARED_NAME)
    a_user = await as_a.create_user(SHARED_NAME)
    assert a_user["id"] != b_user["id"]
    assert_scim_error(await as_a.call("GET", f"Users/{b_user['id']}"), 404)
    listed = await as_a.call("GET", "Users", query={"filter": f'userName eq "{SHARED_NAME}"'})
    assert [user["id"] for user in listed.document["Resources"]] == [a_user["id"]]
    assert_scim_error(await as_a.call("DELETE", f"Users/{b_user['id']}"), 404)
    assert (await as_b.call("GET", f"Users/{b_user['id']}")).status == 200
    assert_scim_error(await Client(endpoint, "not-a-token-of-either").call("GET", "Users"), 401)
