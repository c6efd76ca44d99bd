"""Entra's request shapes (docs/entra-client.md §20, §28-32) become RFC 7644 operations."""

import pytest

from scim.entra import MAX_OPERATIONS, normalise_patch, normalise_resource
from scim.errors import ScimError

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MANAGER_PATH = f"{ENTERPRISE}:manager"


def operations(*ops: dict) -> list[dict]:
    return normalise_patch({"schemas": [], "Operations": list(ops)})["Operations"]


def test_manager_string_on_post_becomes_an_object():
    body = normalise_resource({"userName": "u", ENTERPRISE: {"manager": "m-1"}})
    assert body[ENTERPRISE]["manager"] == {"value": "m-1"}


@pytest.mark.parametrize("value", ["", None, []])
def test_empty_manager_on_post_is_dropped(value):
    body = normalise_resource({"userName": "u", ENTERPRISE: {"Manager": value, "department": "d"}})
    assert body[ENTERPRISE] == {"department": "d"}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("manager", [{"$ref": "http://x/Users/m-1", "value": "m-1"}]),
        (MANAGER_PATH, "m-1"),
        (f"{MANAGER_PATH}.value", "m-1"),
        ("manager", {"Value": "m-1"}),
    ],
)
def test_every_manager_set_shape_becomes_a_remove_then_add_of_the_object(path, value):
    remove, operation = operations({"op": "Add", "path": path, "value": value})
    assert remove == {"op": "remove", "path": MANAGER_PATH}
    assert operation["op"] == "add"
    assert operation["path"] == MANAGER_PATH
    assert operation["value"] in ({"value": "m-1"}, {"Value": "m-1"}, {"$ref": "http://x/Users/m-1", "value": "m-1"})


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "Remove", "path": "manager"},
        {"op": "remove", "path": 'manager[value eq "m-1"]'},
        {"op": "Replace", "path": MANAGER_PATH, "value": ""},
        {"op": "replace", "path": "manager", "value": None},
    ],
)
def test_every_manager_clear_shape_becomes_a_remove(operation):
    assert operations(operation) == [{"op": "remove", "path": MANAGER_PATH}]


@pytest.mark.parametrize("value", ["", None])
def test_null_update_becomes_a_remove(value):
    assert operations({"op": "replace", "path": "title", "value": value}) == [{"op": "remove", "path": "title"}]


def test_value_list_on_a_single_valued_attribute_is_unwrapped():
    [operation] = operations({"op": "Replace", "path": "displayName", "value": [{"$ref": None, "value": "User x"}]})
    assert operation["value"] == "User x"


def test_value_list_on_a_multi_valued_attribute_is_kept():
    value = [{"value": '{"id":"1","value":"25","displayName":"Role"}'}]
    [operation] = operations({"op": "Add", "path": "roles", "value": value})
    assert operation["value"] == value


def test_pathless_replace_is_split_into_one_operation_per_path():
    ops = operations(
        {
            "op": "replace",
            "value": {"displayName": "B", "name.givenName": "K", f"{ENTERPRISE}:employeeNumber": "A", "title": ""},
        }
    )
    assert ops == [
        {"op": "replace", "path": "displayName", "value": "B"},
        {"op": "replace", "path": "name.givenName", "value": "K"},
        {"op": "replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "A"},
        {"op": "remove", "path": "title"},
    ]


def test_op_case_and_key_case_are_normalised():
    assert operations({"OP": "Replace", "Path": "active", "Value": "False"}) == [
        {"op": "replace", "path": "active", "value": "False"}
    ]


@pytest.mark.parametrize(
    "body",
    [[], {"Operations": []}, {"Operations": "x"}, {"Operations": [1]}, {"Operations": [{"path": "x"}]}],
)
def test_malformed_patch_documents_are_invalid_syntax(body):
    with pytest.raises(ScimError) as raised:
        normalise_patch(body)
    assert raised.value.status == 400
    assert raised.value.scim_type == "invalidSyntax"


def test_too_many_operations_are_refused():
    with pytest.raises(ScimError) as raised:
        normalise_patch({"Operations": [{"op": "add", "path": "title", "value": "x"}] * (MAX_OPERATIONS + 1)})
    assert raised.value.status == 400
