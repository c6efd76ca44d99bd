"""Every member PATCH shape Entra sends folds into the right add/remove/clear delta, in order."""

import pytest

from scim.entra import normalise_patch
from scim.errors import ScimError
from scim.membership import split_members


def change_of(*operations: dict):
    return split_members(normalise_patch({"Operations": list(operations)})["Operations"])


def test_add_with_a_value_list():
    change, others = change_of(
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": "u1"}, {"value": "u2"}]}
    )
    assert list(change.added) == ["u1", "u2"]
    assert not change.clear and not change.removed and others == []


def test_legacy_remove_with_a_value_list_removes_only_those():
    change, _ = change_of({"op": "Remove", "path": "members", "value": [{"$ref": None, "value": "u1"}]})
    assert change.removed == {"u1"}
    assert not change.clear


def test_remove_by_value_filter_including_or():
    change, _ = change_of({"op": "remove", "path": 'members[value eq "u1" or value eq "u2"]'})
    assert change.removed == {"u1", "u2"}


@pytest.mark.parametrize(
    "operation", [{"op": "remove", "path": "members"}, {"op": "Remove", "path": "members", "value": None}]
)
def test_remove_without_value_clears(operation):
    change, _ = change_of(operation)
    assert change.clear


def test_replace_is_clear_then_add():
    change, _ = change_of({"op": "replace", "path": "members", "value": [{"value": "u3"}]})
    assert change.clear and list(change.added) == ["u3"]


def test_operations_apply_in_order():
    change, others = change_of(
        {"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]},
        {"op": "remove", "path": 'members[value eq "u1"]'},
        {"op": "Replace", "path": "displayName", "value": "New"},
        {"op": "add", "path": "members", "value": [{"value": "u1"}]},
        {"op": "remove", "path": "members", "value": [{"value": "u2"}]},
    )
    assert list(change.added) == ["u1"]
    assert change.removed == {"u2"}
    assert others == [{"op": "replace", "path": "displayName", "value": "New"}]


def test_pathless_replace_with_members_is_a_member_replace():
    change, others = change_of({"op": "replace", "value": {"displayName": "X", "members": [{"value": "u9"}]}})
    assert change.clear and list(change.added) == ["u9"]
    assert others == [{"op": "replace", "path": "displayName", "value": "X"}]


@pytest.mark.parametrize(
    ("operation", "scim_type"),
    [
        ({"op": "remove", "path": "members", "value": []}, "invalidValue"),
        ({"op": "add", "path": "members", "value": [{"display": "no id"}]}, "invalidValue"),
        ({"op": "add", "path": "members", "value": None}, "invalidValue"),
        ({"op": "add", "path": "members", "value": "bare-string"}, "invalidValue"),
        ({"op": "replace", "path": 'members[value eq "u1"]', "value": {"value": "u2"}}, "invalidPath"),
        ({"op": "remove", "path": 'members[display eq "x"]'}, "invalidPath"),
        ({"op": "replace", "path": "members.display", "value": "x"}, "invalidPath"),
    ],
)
def test_malformed_member_operations_are_refused(operation, scim_type):
    with pytest.raises(ScimError) as raised:
        change_of(operation)
    assert raised.value.scim_type == scim_type
