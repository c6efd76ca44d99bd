"""Undeclared extension attributes as pure logic: recognising URNs, splitting bodies and PATCHes, applying
operations to blocks, projection, and filters on values kept as sent."""

import pytest

from scim import entra, extensions, indexes
from scim.errors import ScimError
from scim.filters import parse_filter
from scim.schemas import ScimGroup, ScimUser, extension_resource_type, is_undeclared_extension
from scim.settings import ConfigurationError, Settings

CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.mark.parametrize(
    "urn, resource_type",
    [
        (CUSTOM, "User"),
        ("urn:ietf:params:scim:schemas:extension:acme:hr:1.0:Group", "Group"),
        (CUSTOM.upper(), "User"),
        ("urn:ietf:params:scim:schemas:extension:acme:User", None),  # no version
        ("urn:ietf:params:scim:schemas:extension:enterprise:2.0User", None),  # Entra's misspelled example
        ("urn:ietf:params:scim:schemas:core:2.0:User", None),
        (f"{CUSTOM}:attr", None),
    ],
)
def test_extension_urns(urn: str, resource_type: str | None):
    assert extension_resource_type(urn) == resource_type


def test_the_enterprise_extension_is_declared():
    assert not is_undeclared_extension(ENTERPRISE, "User")
    assert is_undeclared_extension(CUSTOM, "User")
    assert not is_undeclared_extension(CUSTOM, "Group")


def test_split_body_takes_blocks_and_urn_keys_and_drops_only_nulls():
    body = {"userName": "a", ENTERPRISE: {"department": "x"}, CUSTOM: {"a": 1, "b": None, "c": []}, f"{CUSTOM}:d": "4"}
    rest, blocks = extensions.split_body(body, "User", extensions.KEEP)
    assert rest == {"userName": "a", ENTERPRISE: {"department": "x"}}
    assert blocks == {CUSTOM: {"a": 1, "d": "4"}}


def test_split_body_in_reject_mode_names_the_attribute():
    with pytest.raises(ScimError) as caught:
        extensions.split_body({f"{CUSTOM}:costCenter": "1"}, "User", extensions.REJECT)
    assert caught.value.status == 400
    assert f"{CUSTOM}:costCenter" in caught.value.detail


def test_a_block_must_be_an_object():
    with pytest.raises(ScimError):
        extensions.split_body({CUSTOM: "x"}, "User", extensions.KEEP)


def patched(blocks: dict, *operations: dict) -> dict:
    body = entra.normalise_patch({"Operations": list(operations)})
    others, mine = extensions.split_operations(body["Operations"], "User", extensions.KEEP)
    assert others == []
    return extensions.apply_operations(mine, blocks)[1]


def test_core_and_enterprise_operations_stay_with_the_models():
    body = entra.normalise_patch(
        {"Operations": [{"op": "replace", "value": {"displayName": "x", f"{ENTERPRISE}:department": "d"}}]}
    )
    others, mine = extensions.split_operations(body["Operations"], "User", extensions.KEEP)
    assert [o["path"] for o in others] == ["displayName", f"{ENTERPRISE}:department"]
    assert mine == []


def test_add_replace_remove_by_path():
    blocks = patched({}, {"op": "Add", "path": f"{CUSTOM}:costCenter", "value": "88"})
    assert blocks == {CUSTOM: {"costCenter": "88"}}
    blocks = patched(blocks, {"op": "Replace", "path": f"{CUSTOM}:COSTCENTER", "value": 89})
    assert blocks == {CUSTOM: {"costCenter": 89}}
    assert patched(blocks, {"op": "Remove", "path": f"{CUSTOM}:costcenter"}) == {}


def test_unchanged_blocks_report_no_change():
    body = entra.normalise_patch({"Operations": [{"op": "add", "path": f"{CUSTOM}:a", "value": "1"}]})
    _, mine = extensions.split_operations(body["Operations"], "User", extensions.KEEP)
    assert extensions.apply_operations(mine, {CUSTOM: {"a": "1"}}) == (False, {CUSTOM: {"a": "1"}})


def test_value_selection_that_matches_nothing_creates_the_entry():
    blocks = patched({}, {"op": "replace", "path": f'{CUSTOM}:phones[type eq "fax"].value', "value": "1"})
    assert blocks == {CUSTOM: {"phones": [{"type": "fax", "value": "1"}]}}


def test_value_selection_that_cannot_describe_an_entry_is_no_target():
    with pytest.raises(ScimError) as caught:
        patched({}, {"op": "replace", "path": f'{CUSTOM}:phones[type sw "f"].value', "value": "1"})
    assert caught.value.scim_type == "noTarget"


def test_sub_attribute_of_a_simple_value_is_an_invalid_path():
    with pytest.raises(ScimError) as caught:
        patched({CUSTOM: {"a": "1"}}, {"op": "replace", "path": f"{CUSTOM}:a.b", "value": "1"})
    assert caught.value.scim_type == "invalidPath"


def test_projection():
    blocks = {CUSTOM: {"a": 1, "b": 2}}
    assert extensions.project(blocks, None, None) == blocks
    assert extensions.project(blocks, [f"{CUSTOM}:a"], None) == {CUSTOM: {"a": 1}}
    assert extensions.project(blocks, [CUSTOM.lower()], None) == blocks
    assert extensions.project(blocks, ["userName"], None) == {}
    assert extensions.project(blocks, None, [CUSTOM]) == {}
    assert extensions.project(blocks, None, [f"{CUSTOM}:b"]) == {CUSTOM: {"a": 1}}


@pytest.mark.parametrize(
    "text, expected",
    [
        (f'{CUSTOM}:s eq "ABC"', True),
        (f'{CUSTOM}:s co "b"', True),
        (f"{CUSTOM}:n gt 3", True),
        (f"{CUSTOM}:n eq 4", True),
        (f'{CUSTOM}:n eq "4"', False),
        (f"{CUSTOM}:flag eq true", True),
        (f'{CUSTOM}:flag eq "true"', False),
        (f'{CUSTOM}:list eq "y"', True),
        (f'{CUSTOM}:phones[type eq "fax" and value eq "1"]', True),
        (f'{CUSTOM}:phones.value eq "2"', False),
        (f"{CUSTOM}:missing pr", False),
        (f'{CUSTOM}:missing ne "x"', True),
        (f'not ({CUSTOM}:s eq "abc")', False),
    ],
)
def test_filters_on_values_kept_as_sent(text: str, expected: bool):
    phones = [{"type": "fax", "value": "1"}]
    document = {CUSTOM: {"s": "abc", "n": 4, "flag": True, "list": ["x", "y"], "phones": phones}}
    parsed = parse_filter(text, ScimUser)
    assert parsed.lookup is None
    assert parsed.matches(ScimUser(user_name="u"), document) is expected


def test_a_filter_on_another_types_extension_is_no_match_for_groups():
    parsed = parse_filter(f'{CUSTOM}:s eq "abc"', ScimGroup)
    assert parsed.matches(ScimGroup(display_name="g"), {CUSTOM: {"s": "abc"}}) is False


def test_the_setting_accepts_keep_and_reject_only():
    Settings("UseDevelopmentStorage=true", None, (("default", "x" * 16),), undeclared_extensions="reject").check()
    with pytest.raises(ConfigurationError):
        Settings("UseDevelopmentStorage=true", None, (("default", "x" * 16),), undeclared_extensions="drop").check()


def test_a_patch_on_the_whole_enterprise_extension_goes_to_the_models():
    """scim2-tester removes the declared enterprise extension by its bare URN: that is not an undeclared block."""
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    others, mine = extensions.split_operations([{"op": "remove", "path": enterprise}], "User", extensions.KEEP)
    assert (others, mine) == ([{"op": "remove", "path": enterprise}], [])


def test_configured_attributes_are_planned_as_index_lookups():
    listed = {a.canonical: a.key_name for a in indexes.parse(f"{ENTERPRISE}:employeeNumber,{CUSTOM}:x,nickName")}
    number = next(name for path, name in listed.items() if path.endswith("employeenumber"))
    parsed = parse_filter(f'{ENTERPRISE.upper()}:EMPLOYEENUMBER eq "42"', ScimUser, listed)
    assert parsed.lookup is not None and (parsed.lookup.index, parsed.lookup.value) == (number, "42")
    assert parse_filter(f'{CUSTOM}:x eq "1"', ScimUser, listed).lookup is not None
    assert parse_filter('nickName eq "b"', ScimUser, listed).lookup is not None
    assert parse_filter(f'{CUSTOM}:x eq "1" and userName eq "u"', ScimUser, listed).lookup.index == "userName"
    assert parse_filter(f'{CUSTOM}:x co "1"', ScimUser, listed).lookup is None
    assert parse_filter(f'{CUSTOM}:x eq "1" or nickName eq "b"', ScimUser, listed).lookup is None
    assert parse_filter(f'{CUSTOM}:x eq "1"', ScimUser).lookup is None
