"""Hostile input through the handler layer, against real Azurite.

Every case gets either the correct result or a 4xx SCIM error (Error schema, ``status`` as a string, the right
``scimType``) that shows no stack trace, exception text or storage key; never a 500. A refused request changes
nothing: the tenant's whole state (users, groups, members, versions) is compared before and after it.
"""

import json
from dataclasses import dataclass
from typing import Any

import pytest

from scim import protocol
from scim.entra import MAX_OPERATIONS
from scim.filters import MAX_FILTER_DEPTH, MAX_FILTER_LENGTH
from scim.membership import MAX_MEMBERS_PER_OPERATION
from scim.messages import ScimRequest, ScimResponse
from scim.protocol import MAX_START_INDEX
from scim.schemas import MAX_PAYLOAD_BYTES, MAX_RESULTS
from tests.conftest import Client
from tests.integration.scim_checks import (
    ENTERPRISE,
    GROUP,
    USER,
    assert_scim_error,
    assert_scim_response,
    patch_body,
    sent_text,
    snapshot,
)

ODD_NAMES = [
    'quote"d@example.com',
    "o'brien@example.com",
    "' or PartitionKey ne '",
    "x' eq 'x' and RowKey ge '",
    "$filter=eq and or not",
    "Zoë Ünïcødé 😀 日本語 \u200b\u202e",
    "nul\x00byte",
    "ctrl\x01\x07\x1b[31m\r\n\t",
    "slash/back\\hash#question?",
    "../../Users",
    "%00%2F",
    "x" * 1500,  # with the filter's quotes and operator, within MAX_FILTER_LENGTH
]


@dataclass
class Seeded:
    client: Client
    user: dict[str, Any]
    other: dict[str, Any]
    group: dict[str, Any]

    async def refused(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        status: int = 400,
        scim_type: str | None = None,
    ) -> dict[str, Any]:
        """The request is refused as stated, says nothing it should not, and leaves every stored byte as it was."""
        before = await snapshot(self.client)
        response = await self.client.call(method, path, body, query, headers)
        document = assert_scim_error(response, status, scim_type, sent=sent_text(path, body, query))
        assert await snapshot(self.client) == before
        return document


@pytest.fixture
async def seeded(client: Client) -> Seeded:
    user = await client.create_user(
        "alice@example.com", externalId="ext-alice", emails=[{"value": "alice@example.com", "type": "work"}]
    )
    other = await client.create_user("bob@example.com")
    response = await client.call(
        "POST", "Groups", {"schemas": [GROUP], "displayName": "Team", "members": [{"value": user["id"]}]}
    )
    assert response.status == 201
    return Seeded(client, user, other, response.document)


# Stored values ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ODD_NAMES, ids=lambda name: repr(name[:24]))
async def test_odd_user_names_are_data_stored_and_found_exactly(client: Client, name: str):
    created = await client.create_user(name, externalId=name, displayName=name)
    assert created["userName"] == name
    got = await client.call("GET", f"Users/{created['id']}")
    assert_scim_response(got)
    assert got.document["userName"] == name and got.document["externalId"] == name
    for text in (f"userName eq {json.dumps(name)}", f"externalId eq {json.dumps(name)}"):
        found = await client.call("GET", "Users", query={"filter": text})
        assert_scim_response(found)
        assert [user["id"] for user in found.document["Resources"]] == [created["id"]], text
    duplicate = await client.call("POST", "Users", {"schemas": [USER], "userName": name.upper()})
    assert_scim_error(duplicate, 409, "uniqueness", sent=sent_text(name))


@pytest.mark.parametrize("name", ODD_NAMES, ids=lambda name: repr(name[:24]))
async def test_odd_group_names_are_data_stored_and_found_exactly(client: Client, name: str):
    response = await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": name})
    assert response.status == 201, response.document
    found = await client.call("GET", "Groups", query={"filter": f"displayName eq {json.dumps(name)}"})
    assert [group["id"] for group in found.document["Resources"]] == [response.document["id"]]


@pytest.mark.parametrize(
    ("body", "status", "scim_type"),
    [
        ({"schemas": [USER], "userName": "x\ud800"}, 400, "invalidValue"),
        ({"schemas": [USER], "userName": "x", "name": {"givenName": "\udfff"}}, 400, "invalidValue"),
        ({"schemas": [USER], "userName": ""}, 400, "invalidValue"),
        ({"schemas": [USER], "userName": "   "}, 400, "invalidValue"),
        ({"schemas": [USER]}, 400, "invalidValue"),
        ({"schemas": [USER], "userName": None}, 400, "invalidValue"),
        ({"schemas": [USER], "userName": ["a", "b"]}, 400, "invalidValue"),
        ({"schemas": [USER], "userName": {"$ne": ""}}, 400, "invalidValue"),
        ({"schemas": [USER], "userName": "x" * 40_000}, 413, None),
        ({"schemas": [USER], "userName": "x" * 1024 * 1024}, 413, None),
        ({"schemas": [USER], "userName": "e", "emails": [{"value": f"{i}@x"} for i in range(41)]}, 400, "invalidValue"),
        ({"schemas": [USER], "userName": "m", ENTERPRISE: {"manager": [1, 2]}}, 400, "invalidValue"),
        ({"schemas": [USER], "userName": "m", ENTERPRISE: {"manager": {"value": {"x": 1}}}}, 400, "invalidValue"),
        ({"schemas": [USER], "userName": "a", "active": "maybe"}, 400, "invalidValue"),
        ({"schemas": [USER], "userName": "a", "id": "../../evil", "meta": {"version": 'W/"1"'}}, None, None),
        ({"schemas": [USER], "userName": "g", "groups": [{"value": "whatever"}]}, None, None),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, dict) else str(value),
)
async def test_hostile_user_bodies(seeded: Seeded, body, status, scim_type):
    if status is None:  # read-only attributes are ignored: the id is the server's, groups come from membership rows
        response = await seeded.client.call("POST", "Users", body)
        assert response.status == 201
        assert response.document["id"] != "../../evil" and "groups" not in response.document
        return
    await seeded.refused("POST", "Users", body, status=status, scim_type=scim_type)
    await seeded.refused("PUT", f"Users/{seeded.user['id']}", body, status=status, scim_type=scim_type)


@pytest.mark.parametrize(
    ("body", "scim_type"),
    [
        ({"schemas": [GROUP], "displayName": ""}, "invalidValue"),
        ({"schemas": [GROUP], "displayName": "\ud800"}, "invalidValue"),
        ({"schemas": [GROUP], "displayName": "g", "members": "x"}, "invalidValue"),
        ({"schemas": [GROUP], "displayName": "g", "members": [None, 1, "x"]}, "invalidValue"),
        ({"schemas": [GROUP], "displayName": "g", "members": [{"value": "../x"}]}, "invalidValue"),
        ({"schemas": [GROUP], "displayName": "g", "members": [{"value": "a" * 1024}]}, "invalidValue"),
        ({"schemas": [GROUP], "displayName": "g", "members": [{"value": "0" * 32}]}, "invalidValue"),
        ({"schemas": [GROUP], "displayName": "g", "members": [], "Members": [{"value": "x"}]}, "invalidSyntax"),
        (
            {"schemas": [GROUP], "displayName": "g", "members": [{"value": f"{i:032x}"} for i in range(1001)]},
            "invalidValue",
        ),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, dict) else str(value),
)
async def test_hostile_group_bodies(seeded: Seeded, body, scim_type):
    await seeded.refused("POST", "Groups", body, scim_type=scim_type)
    await seeded.refused("PUT", f"Groups/{seeded.group['id']}", body, scim_type=scim_type)


# Bodies that are not SCIM documents ------------------------------------------------------------------------------


def writes(seeded: Seeded) -> list[tuple[str, str]]:
    user, group = seeded.user["id"], seeded.group["id"]
    return [
        ("POST", "Users"),
        ("PUT", f"Users/{user}"),
        ("PATCH", f"Users/{user}"),
        ("POST", "Groups"),
        ("PUT", f"Groups/{group}"),
        ("PATCH", f"Groups/{group}"),
        ("POST", "Users/.search"),
        ("POST", "Groups/.search"),
        ("POST", ".search"),
    ]


@pytest.mark.parametrize(
    ("raw", "status", "scim_type"),
    [
        (b"[]", 400, "invalidSyntax"),
        (b'[{"op": "add"}]', 400, "invalidSyntax"),
        (b'"a string"', 400, "invalidSyntax"),
        (b"42", 400, "invalidSyntax"),
        (b"null", 400, "invalidSyntax"),
        (b"true", 400, "invalidSyntax"),
        (b"", 400, "invalidSyntax"),
        (b"{", 400, "invalidSyntax"),
        (b"\xff\xfe\x00{", 400, "invalidSyntax"),
        ('{"userName": "café"}'.encode("latin-1"), 400, "invalidSyntax"),
        ('{"userName": "x"}'.encode("utf-16"), 400, "invalidSyntax"),
        (b'{"a": NaN}', 400, "invalidSyntax"),
        (b'{"a": 1e999}', 400, "invalidSyntax"),
        (b'{"a": ' + b"9" * 5000 + b"}", 400, "invalidSyntax"),
        (b'{"a":' * 65 + b"1" + b"}" * 65, 400, "invalidSyntax"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "invalidSyntax"),
        (b'{"userName": "a", "USERNAME": "b"}', 400, "invalidSyntax"),
        (b'{"schemas": ["\\ud800"]}', 400, "invalidValue"),
        (b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", 413, None),
        (b'{"a": "' + b"x" * 1024 * 1024 + b'"}', 413, None),
    ],
    ids=lambda value: f"{value[:10]!r}…{len(value)}" if isinstance(value, bytes) else str(value),
)
async def test_bodies_that_are_not_scim_documents(seeded: Seeded, raw, status, scim_type):
    for method, path in writes(seeded):
        await seeded.refused(method, path, raw, status=status, scim_type=scim_type)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "x"],
)
async def test_other_content_types_are_415(seeded: Seeded, content_type):
    body = {"schemas": [USER], "userName": "ct@example.com"}
    for method, path in writes(seeded):
        await seeded.refused(method, path, body, headers={"Content-Type": content_type}, status=415)


async def test_json_with_a_charset_is_accepted(client: Client):
    headers = {"Content-Type": "application/json; charset=utf-8"}
    response = await client.call("POST", "Users", {"schemas": [USER], "userName": "cs@example.com"}, headers=headers)
    assert response.status == 201


# Ids in URLs ------------------------------------------------------------------------------------------------------

ODD_IDS = [
    "..",
    "../Users",
    "%2e%2e%2f",
    "%00",
    "\x00",
    "a" * 1024,
    "a" * 65,
    "a/b",
    "a\\b",
    "a#b",
    "a?b=c",
    "' or PartitionKey ne '",
    "id:x",
    "*",
    " ",
    "\ud800",
    "😀",
    "\u202e",
]


@pytest.mark.parametrize("rid", ODD_IDS, ids=repr)
@pytest.mark.parametrize("endpoint", ["Users", "Groups"])
async def test_odd_ids_are_404_and_not_echoed(seeded: Seeded, endpoint, rid):
    bodies = {
        "GET": None,
        "DELETE": None,
        "PUT": {"schemas": [USER if endpoint == "Users" else GROUP], "userName": "x", "displayName": "x"},
        "PATCH": patch_body({"op": "replace", "path": "displayName", "value": "x"}),
    }
    for method, body in bodies.items():
        document = await seeded.refused(method, f"{endpoint}/{rid}", body, status=404)
        assert rid not in document["detail"] or rid in ("*", " ")


@pytest.mark.parametrize("rid", ["..", "\x00", "a" * 1024, "' or 1 eq 1", "\ud800"], ids=repr)
@pytest.mark.parametrize("endpoint", ["Schemas", "ResourceTypes"])
async def test_odd_ids_at_discovery_endpoints_are_404(client: Client, endpoint, rid):
    assert_scim_error(await client.call("GET", f"{endpoint}/{rid}"), 404)


async def test_ids_of_the_right_shape_that_do_not_exist_are_404(seeded: Seeded):
    for rid in (seeded.user["id"].upper(), "0" * 32, "f" * 64, seeded.group["id"]):
        await seeded.refused("GET", f"Users/{rid}", status=404)
        await seeded.refused("DELETE", f"Users/{rid}", status=404)


@pytest.mark.parametrize("endpoint", ["../Users", "Users/..", "", "users%00", "\x00", "Users\\", "Tables", "$metadata"])
async def test_unknown_endpoints_are_404(client: Client, endpoint):
    request = ScimRequest("GET", endpoint, headers={"Authorization": f"Bearer {client.token}"})
    assert_scim_error(await client.endpoint.handle(request), 404)


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "CONNECT", "HEAD", "FOO", ""])
async def test_unknown_methods_are_405(seeded: Seeded, method):
    for path in ("Users", f"Users/{seeded.user['id']}", "Groups", f"Groups/{seeded.group['id']}"):
        await seeded.refused(method, path, status=405)


# Filters ----------------------------------------------------------------------------------------------------------

REFUSED_FILTERS = [
    "' or PartitionKey ne '",
    "$filter",
    "eq",
    "and",
    "userName eq",
    'userName eq "a" and',
    '"',
    "\\",
    'userName eq "\\"',
    'userName eq "a\x00b"',
    'userName eq "\ud800"',
    'userName eq "\\ud800"',
    'emails[value eq "\\udfff"]',
    "(" * (MAX_FILTER_DEPTH + 1) + 'userName eq "a"' + ")" * (MAX_FILTER_DEPTH + 1),
    "not (" * (MAX_FILTER_DEPTH + 1) + 'userName eq "a"' + ")" * (MAX_FILTER_DEPTH + 1),
    "(" * 5000 + 'userName eq "a"' + ")" * 5000,
    "not (" * 3000 + 'userName eq "a"' + ")" * 3000,
    "emails[" * 40 + 'value eq "a"' + "]" * 40,
    "x" * (MAX_FILTER_LENGTH + 1),
    'userName eq "' + "x" * 1024 * 1024 + '"',
    " or ".join(['userName eq "a"'] * 200),
]


@pytest.mark.parametrize("text", REFUSED_FILTERS, ids=lambda text: repr(text[:20]) + f"…{len(text)}")
@pytest.mark.parametrize("endpoint", ["Users", "Groups"])
async def test_refused_filters_are_invalid_filter(seeded: Seeded, endpoint, text):
    await seeded.refused("GET", endpoint, query={"filter": text}, scim_type="invalidFilter")
    search = {"filter": text}
    if len(text) > MAX_PAYLOAD_BYTES:
        await seeded.refused("POST", f"{endpoint}/.search", search, status=413)
    elif "\ud800" in text:  # the body check sees the text first
        await seeded.refused("POST", f"{endpoint}/.search", search, scim_type="invalidValue")
    else:
        await seeded.refused("POST", f"{endpoint}/.search", search, scim_type="invalidFilter")


@pytest.mark.parametrize(
    "text",
    [
        'userName eq "\'"',
        "userName eq \"' or PartitionKey ne '\"",
        "userName eq \"alice@example.com' or '1' eq '1\"",
        'userName eq "alice@example.com\\" or userName pr or userName eq \\""',
        'userName eq "nobody" or PartitionKey ne ""',
        "PartitionKey ne ''",
        'RowKey ge "" or Timestamp pr or doc co "alice"',
        'userName eq "a\\u0000b"',
        'userName eq "\x01\x1b"',
        'userName eq "😀"',
        'userName eq "/\\\\#?"',
        'id eq "../x"',
        "id eq \"' or RowKey ne '\"",
        "externalId eq \"' or ''='\"",
        'displayName eq "eq and or not pr"',
        'emails[type eq "work" and value eq "\'"]',
        'members[value eq "\' or 1 eq 1"]',
        "(" * MAX_FILTER_DEPTH + 'userName eq "nobody"' + ")" * MAX_FILTER_DEPTH,
        'displayName eq "' + "(" * 500 + '"',
    ],
    ids=repr,
)
@pytest.mark.parametrize("endpoint", ["Users", "Groups"])
async def test_injection_shaped_filters_match_nothing(seeded: Seeded, endpoint, text):
    """Quotes and OData keywords in a value are data: the filter matches no seeded resource (or is refused)."""
    for method, path, body, query in (
        ("GET", endpoint, None, {"filter": text}),
        ("POST", f"{endpoint}/.search", {"filter": text}, None),
        ("POST", ".search", {"filter": text}, None),
    ):
        response = await seeded.client.call(method, path, body, query)
        assert_scim_response(response, sent=sent_text(text))
        if response.status == 200:
            assert response.document["Resources"] == [], (text, response.document)
        else:
            assert_scim_error(response, 400, "invalidFilter", sent=sent_text(text))


async def test_filters_still_find_what_they_should(seeded: Seeded):
    client, alice = seeded.client, seeded.user["id"]
    for endpoint, text, expected in (
        ("Users", 'userName eq "ALICE@example.com"', [alice]),
        ("Users", "(" * MAX_FILTER_DEPTH + 'userName eq "alice@example.com"' + ")" * MAX_FILTER_DEPTH, [alice]),
        ("Users", 'emails[type eq "work"].value eq "alice@example.com"', [alice]),
        ("Users", 'not (userName eq "alice@example.com") and userName sw "b"', [seeded.other["id"]]),
        ("Groups", f'members[value eq "{alice}"]', [seeded.group["id"]]),
    ):
        response = await client.call("GET", endpoint, query={"filter": text})
        assert [resource["id"] for resource in response.document["Resources"]] == expected, text


# Paging -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "start", "items"),
    [
        ({"count": "99999999999999999999999"}, 1, 2),
        ({"count": "9" * 5000}, 1, 2),
        ({"count": "-5"}, 1, 0),
        ({"count": "0"}, 1, 0),
        ({"startIndex": "-5", "count": "1"}, 1, 1),
        ({"startIndex": "0"}, 1, 2),
        ({"startIndex": "2"}, 2, 1),
        ({"startIndex": "99999999999999999999999999"}, MAX_START_INDEX, 0),
        ({"startIndex": str(MAX_START_INDEX + 1)}, MAX_START_INDEX, 0),
    ],
)
async def test_paging_parameters_are_clamped(seeded: Seeded, query, start, items):
    for method, path, body, parameters in (
        ("GET", "Users", None, query),
        ("POST", "Users/.search", dict(query), None),
    ):
        response = await seeded.client.call(method, path, body, parameters)
        assert_scim_response(response)
        document = response.document
        assert (document["startIndex"], document["itemsPerPage"], document["totalResults"]) == (start, items, 2)


@pytest.mark.parametrize("raw", ["1.5", "abc", "1e3", "1_000", "٣", "0x10", "", " ", "\x00", "\ud800"])
@pytest.mark.parametrize("name", ["startIndex", "count"])
async def test_non_integer_paging_is_invalid_value(seeded: Seeded, name, raw):
    if not raw.strip():  # an empty parameter is an absent one
        assert (await seeded.client.call("GET", "Users", query={name: raw})).status == 200
        return
    for endpoint in ("Users", "Groups"):
        await seeded.refused("GET", endpoint, query={name: raw}, scim_type="invalidValue")
    await seeded.refused("POST", "Users/.search", {name: raw}, scim_type="invalidValue")


@pytest.mark.parametrize("value", [1.5, True, [1, 2], {"a": 1}, "ten"])
async def test_non_integer_paging_in_a_search_request_is_invalid_value(seeded: Seeded, value):
    await seeded.refused("POST", ".search", {"count": value}, scim_type="invalidValue")


async def test_count_never_exceeds_max_results(client: Client, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(protocol, "MAX_RESULTS", 2)
    for i in range(3):
        await client.create_user(f"u{i}@example.com")
    for query in ({}, {"count": "1000"}, {"count": str(10**30)}):
        response = await client.call("GET", "Users", query=query)
        assert (response.document["itemsPerPage"], response.document["totalResults"]) == (2, 3)


async def test_a_root_search_pages_users_then_groups_past_max_results(client: Client, monkeypatch):
    """startIndex beyond MAX_RESULTS still reaches every user before the first group, each exactly once."""
    monkeypatch.setattr(protocol, "MAX_RESULTS", 2)
    users = [(await client.create_user(f"u{i}@example.com"))["id"] for i in range(3)]
    groups = []
    for name in ("g1", "g2"):
        groups.append((await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": name})).document["id"])
    seen = []
    for start in range(1, 7, 2):
        response = await client.call("POST", ".search", {"startIndex": start, "count": 2})
        assert response.document["totalResults"] == 5
        seen += [resource["id"] for resource in response.document["Resources"]]
    assert seen == sorted(users) + sorted(groups)


async def test_service_provider_config_advertises_the_enforced_limits(client: Client):
    config = (await client.call("GET", "ServiceProviderConfig")).document
    assert config["filter"] == {"supported": True, "maxResults": MAX_RESULTS}
    assert config["bulk"]["maxPayloadSize"] == MAX_PAYLOAD_BYTES
    over = b'{"a": "' + b"x" * (config["bulk"]["maxPayloadSize"] - 8) + b'"}'
    assert len(over) == MAX_PAYLOAD_BYTES + 1
    assert_scim_error(await client.call("POST", "Users", over), 413)


# PATCH ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operations", "scim_type"),
    [
        ([{"op": "frobnicate", "path": "title", "value": "x"}], "invalidValue"),
        ([{"op": "", "path": "title", "value": "x"}], "invalidValue"),
        ([{"op": "copy", "from": "title", "path": "nickName"}], "invalidValue"),
        ([{"op": "test", "path": "title", "value": "x"}], "invalidValue"),
        ([{"op": None, "path": "title"}], "invalidSyntax"),
        ([{"op": 1, "path": "title"}], "invalidSyntax"),
        ([{"path": "title", "value": "x"}], "invalidSyntax"),
        ([{"op": "add", "path": 7, "value": "x"}], "invalidPath"),
        ([{"op": "add", "path": "[[[", "value": "x"}], "invalidPath"),
        ([{"op": "add", "path": "title[", "value": "x"}], "invalidPath"),
        ([{"op": "add", "path": 'emails[value eq "x"', "value": "x"}], "invalidPath"),
        ([{"op": "add", "path": "a.b.c.d.e", "value": "x"}], "invalidPath"),
        ([{"op": "add", "path": "\x00", "value": "x"}], "invalidPath"),
        ([{"op": "add", "path": "title\ud800", "value": "x"}], "invalidValue"),
        ([{"op": "add", "path": "emails[" * 5000, "value": "x"}], "invalidPath"),
        (
            [{"op": "add", "path": "emails[" + "(" * 100 + 'type eq "w"' + ")" * 100 + "].value", "value": "x"}],
            "invalidPath",
        ),
        ([{"op": "remove", "path": "members[" + "not (" * 1000 + 'value eq "x"' + ")" * 1000 + "]"}], "invalidPath"),
        ([{"op": "replace", "path": "id", "value": "hijack"}], "mutability"),
        ([{"op": "replace", "value": {"id": "hijack"}}], "mutability"),
        ([{"op": "replace", "path": "meta.created", "value": "x"}], "mutability"),
        ([{"op": "replace", "value": "not an object"}], "invalidValue"),
        ([{"op": "add", "path": "displayName", "value": "\ud800"}], "invalidValue"),
        ([{"op": "add", "path": "title", "value": "t"}] * (MAX_OPERATIONS + 1), "invalidValue"),
    ],
    ids=lambda value: json.dumps(value)[:60] if isinstance(value, list) else str(value),
)
@pytest.mark.parametrize("endpoint", ["Users", "Groups"])
async def test_hostile_patch_operations(seeded: Seeded, endpoint, operations, scim_type):
    target = seeded.user if endpoint == "Users" else seeded.group
    await seeded.refused("PATCH", f"{endpoint}/{target['id']}", patch_body(*operations), scim_type=scim_type)


@pytest.mark.parametrize(
    "path",
    ['emails[value eq "\\ud800"].type', 'emails[type eq "\\udfff"].value', 'addresses[type eq "\\ud800"].locality'],
)
async def test_escaped_surrogates_in_patch_paths_never_reach_a_resource(seeded: Seeded, path):
    """The body check cannot see ``\\ud800`` inside a path: the filter decodes it, and a value-path filter that
    matches nothing creates the entry it describes. The resource about to be stored is checked instead."""
    body = patch_body({"op": "add", "path": path, "value": "v"})
    document = await seeded.refused("PATCH", f"Users/{seeded.user['id']}", body)
    assert document["scimType"] in ("invalidValue", "invalidFilter")


@pytest.mark.parametrize(
    "body",
    [
        {"schemas": [USER], "Operations": [{"op": "add", "path": "title", "value": "x"}]},
        {"Operations": "x"},
        {"Operations": []},
        {"Operations": [1, 2]},
        {"Operations": [[]]},
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]},
        {"schemas": "x", "Operations": [{"op": "add", "path": "title", "value": "x"}]},
        {"Operations": [{"op": "add", "path": "title", "value": "x"}], "operations": [{"op": "bad"}]},
    ],
    ids=lambda body: json.dumps(body)[:50],
)
@pytest.mark.parametrize("endpoint", ["Users", "Groups"])
async def test_malformed_patch_documents(seeded: Seeded, endpoint, body):
    target = seeded.user if endpoint == "Users" else seeded.group
    await seeded.refused("PATCH", f"{endpoint}/{target['id']}", body)


@pytest.mark.parametrize(
    ("value", "scim_type"),
    [(["a", "b"], "invalidValue"), ({"a": 1}, "invalidValue"), (5, "invalidValue"), ("   ", "invalidValue")],
)
async def test_a_wrongly_typed_user_name_names_the_attribute_and_not_the_model(seeded: Seeded, value, scim_type):
    body = patch_body({"op": "replace", "path": "userName", "value": value})
    document = await seeded.refused("PATCH", f"Users/{seeded.user['id']}", body, scim_type=scim_type)
    assert "userName" in document["detail"]


async def test_max_operations_is_accepted(seeded: Seeded):
    operations = [{"op": "replace", "path": "title", "value": f"t{i}"} for i in range(MAX_OPERATIONS)]
    response = await seeded.client.call("PATCH", f"Users/{seeded.user['id']}", patch_body(*operations))
    assert response.status == 200 and response.document["title"] == f"t{MAX_OPERATIONS - 1}"


@pytest.mark.parametrize("op", ["add", "replace", "remove"])
async def test_too_many_members_in_one_operation(seeded: Seeded, op):
    value = [{"value": f"{i:032x}"} for i in range(MAX_MEMBERS_PER_OPERATION + 1)]
    body = patch_body({"op": op, "path": "members", "value": value})
    await seeded.refused("PATCH", f"Groups/{seeded.group['id']}", body, scim_type="invalidValue")


async def test_too_many_members_in_one_filter(seeded: Seeded):
    selected = " or ".join(f'value eq "{i:032x}"' for i in range(MAX_MEMBERS_PER_OPERATION + 1))
    body = patch_body({"op": "remove", "path": f"members[{selected}]"})
    await seeded.refused("PATCH", f"Groups/{seeded.group['id']}", body, scim_type="invalidValue")


@pytest.mark.parametrize(
    "path",
    [
        'members[value eq "x"].display',
        "members.value",
        'members[value eq "x" and value eq "y"]',
        'members[display eq "Alice"]',
        "members[]",
        "members][",
    ],
)
async def test_member_paths_with_garbage_are_invalid_path(seeded: Seeded, path):
    body = patch_body({"op": "remove", "path": path})
    await seeded.refused("PATCH", f"Groups/{seeded.group['id']}", body, scim_type="invalidPath")


@pytest.mark.parametrize(
    "member_id", ["a/b", "x#?\\", "\x01", "' or PartitionKey ne '", "y" * 2000, "../../x", "g:x:m:y"], ids=repr
)
async def test_removing_ids_no_member_can_have_changes_no_member(seeded: Seeded, member_id):
    """Such ids never reach a storage key (Table Storage forbids / \\ # ? and control characters in keys)."""
    client, group_id = seeded.client, seeded.group["id"]
    for operation in (
        {"op": "remove", "path": f"members[value eq {json.dumps(member_id)}]"},
        {"op": "remove", "path": "members", "value": [{"value": member_id}]},
    ):
        response = await client.call("PATCH", f"Groups/{group_id}", patch_body(operation))
        assert response.status == 204, response.document
    members = (await client.call("GET", f"Groups/{group_id}")).document["members"]
    assert [member["value"] for member in members] == [seeded.user["id"]]


# Headers ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic YTpi", "Bearer " + "a" * 100_000, "Bearer \ud800" * 3, "Bearer ' or 1=1"],
    ids=lambda value: repr(value)[:20],
)
async def test_hostile_authorization_headers_are_401(seeded: Seeded, authorization):
    headers = {"Content-Type": "application/scim+json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    before = await snapshot(seeded.client)
    for method, path in (("GET", "Users"), ("DELETE", f"Users/{seeded.user['id']}")):
        endpoint, _, resource_id = path.partition("/")
        request = ScimRequest(method, endpoint, resource_id or None, headers=headers)
        response: ScimResponse = await seeded.client.endpoint.handle(request)
        assert_scim_error(response, 401)
    assert await snapshot(seeded.client) == before


@pytest.mark.parametrize("if_match", ['W/"nope"', "\x00", "\ud800", "a" * 10_000, '"", ,,,'], ids=repr)
async def test_hostile_if_match_is_412_and_changes_nothing(seeded: Seeded, if_match):
    body = patch_body({"op": "replace", "path": "title", "value": "x"})
    await seeded.refused("PATCH", f"Users/{seeded.user['id']}", body, headers={"If-Match": if_match}, status=412)
    await seeded.refused("DELETE", f"Groups/{seeded.group['id']}", headers={"If-Match": if_match}, status=412)
