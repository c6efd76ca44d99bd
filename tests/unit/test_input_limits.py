"""Hostile input to the pure parts of the handler layer: every case is a 4xx ScimError with the right scimType, or the
correct result; never another exception, however deep, long or malformed the input is."""

import json

import pytest
from pydantic import ValidationError

from scim import errors
from scim.auth import match_secret
from scim.dispatch import MAX_JSON_DEPTH, _json_body
from scim.entra import MAX_OPERATIONS, normalise_patch
from scim.errors import ScimError
from scim.filters import MAX_FILTER_DEPTH, MAX_FILTER_LENGTH, nesting_depth, parse_filter
from scim.membership import MAX_MEMBERS_PER_OPERATION, split_members
from scim.messages import ScimRequest
from scim.protocol import MAX_START_INDEX, has_lone_surrogate, page_of
from scim.schemas import MAX_PAYLOAD_BYTES, MAX_RESULTS, ScimGroup, ScimUser


def raises(call, status: int, scim_type: str | None) -> ScimError:
    with pytest.raises(ScimError) as raised:
        call()
    assert (raised.value.status, raised.value.scim_type) == (status, scim_type)
    return raised.value


# Filters ---------------------------------------------------------------------------------------------------------


def nested(depth: int, opening: str = "(", closing: str = ")", inner: str = 'userName eq "a"') -> str:
    return opening * depth + inner + closing * depth


@pytest.mark.parametrize(
    "text",
    [
        nested(MAX_FILTER_DEPTH + 1),
        nested(1000),
        nested(100_000),
        nested(MAX_FILTER_DEPTH + 1, "not (", ")"),
        nested(400, "not (", ")"),
        nested(3000, "not (not (", "))"),
        "emails[" * (MAX_FILTER_DEPTH + 1) + 'value eq "x"' + "]" * (MAX_FILTER_DEPTH + 1),
        "(" * 2000,
        ")" * 2000 + "(" * 40,
    ],
    ids=lambda text: f"{text[:12]}…{len(text)}",
)
@pytest.mark.parametrize("model", [ScimUser, ScimGroup])
def test_deep_filters_are_invalid_filter_before_parsing(text, model):
    raises(lambda: parse_filter(text, model), 400, "invalidFilter")


def test_nesting_at_the_limit_parses():
    assert parse_filter(nested(MAX_FILTER_DEPTH)).lookup is not None
    assert parse_filter(nested(MAX_FILTER_DEPTH // 2, "not (", ")")).lookup is None


def test_brackets_inside_quoted_values_do_not_count():
    text = 'displayName eq "' + "((([[[" * 50 + '\\"((("'
    assert nesting_depth(text) == 0
    assert parse_filter(text, ScimGroup).lookup is not None


@pytest.mark.parametrize(
    ("text", "depth"),
    [("", 0), ("a", 0), ("(a)", 1), ("((a) and (b))", 2), ('x[y eq "]"]', 1), ('"\\\\"(', 1), ("))((", 2)],
)
def test_nesting_depth(text, depth):
    assert nesting_depth(text) == depth


@pytest.mark.parametrize(
    "text",
    [
        "' or PartitionKey ne '",
        "$filter=userName eq 'x'",
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
        'emails[type eq "work" and value eq "\\udfff"]',
        'userName eq "a" \ud83d',
        "x" * (MAX_FILTER_LENGTH + 1),
        "x" * 1_000_000,
        'userName \x00 eq "a"',
        'userName eq "a"\n or \r\n userName eq "b" \x1b[31m',
    ],
    ids=repr,
)
def test_malformed_filters_are_invalid_filter(text):
    error = raises(lambda: parse_filter(text), 400, "invalidFilter")
    assert "Traceback" not in error.detail and "PartitionKey" not in error.detail


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('userName eq "\'"', "'"),
        ("userName eq \"' or PartitionKey ne '\"", "' or PartitionKey ne '"),
        ('userName eq "a\\u0000b"', "a\x00b"),
        ('userName eq "Zoë 😀 \\u00e9"', "Zoë 😀 é"),
        ('userName eq "a/b\\\\c#d?e"', "a/b\\c#d?e"),
        ('userName eq "eq and or not"', "eq and or not"),
        ("userName eq 'x'", "'x'"),  # an unquoted value, as Entra's tutorial sends them: the quotes are data
    ],
)
def test_odd_filter_values_are_data(text, value):
    assert parse_filter(text).lookup.value == value


def test_surrogates_are_detected_and_pairs_are_not():
    assert has_lone_surrogate("a\ud800") and has_lone_surrogate("\udfff")
    assert not has_lone_surrogate("😀 Zoë \x00")


# Paging ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "start", "count"),
    [
        ({}, 1, MAX_RESULTS),
        ({"count": "99999999999999999999999"}, 1, MAX_RESULTS),
        ({"count": "9" * 5000}, 1, MAX_RESULTS),
        ({"count": "-5"}, 1, 0),
        ({"count": "-" + "9" * 5000}, 1, 0),
        ({"count": " 7 "}, 1, 7),
        ({"count": "+7"}, 1, 7),
        ({"startIndex": "-5"}, 1, MAX_RESULTS),
        ({"startIndex": "0"}, 1, MAX_RESULTS),
        ({"startIndex": "99999999999999999999999999"}, MAX_START_INDEX, MAX_RESULTS),
        ({"startIndex": "0" * 40 + "3"}, 3, MAX_RESULTS),
    ],
)
def test_paging_is_clamped(query, start, count):
    page = page_of(query)
    assert (page.start, page.count) == (start, count)


@pytest.mark.parametrize("raw", ["1.5", "abc", "1e3", "1_000", "٣", "0x10", "--1", "1 2", "\x00", "\ud800", "∞"])
@pytest.mark.parametrize("name", ["startIndex", "count"])
def test_non_integer_paging_is_invalid_value(name, raw):
    raises(lambda: page_of({name: raw}), 400, "invalidValue")


# Bodies ----------------------------------------------------------------------------------------------------------


def body_of(raw: bytes, content_type: str | None = "application/scim+json") -> object:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    return _json_body(ScimRequest("POST", "Users", headers=headers, body=raw))


def deep(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"[]" + b"}" * (depth - 1)


def test_nesting_up_to_the_limit_is_accepted():
    body = body_of(deep(MAX_JSON_DEPTH))
    assert isinstance(body, dict)


@pytest.mark.parametrize(
    "raw",
    [
        deep(MAX_JSON_DEPTH + 1),
        b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
        b"[" * 900 + b"]" * 900,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 40_000 + b"1" + b"}" * 40_000,
        b"[" * 200_000,
    ],
    ids=lambda raw: f"{raw[:6]!r}…{len(raw)}",
)
def test_deep_bodies_are_invalid_syntax_without_recursion_error(raw):
    raises(lambda: body_of(raw), 400, "invalidSyntax")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b" ",
        b"{",
        b"\xff\xfe{}",
        '{"userName": "café"}'.encode("latin-1"),
        '{"userName": "x"}'.encode("utf-16"),
        b'\xef\xbb\xbf{"userName": "x"}',
        b'{"userName": NaN}',
        b'{"userName": Infinity}',
        b'{"n": -Infinity}',
        b'{"n": 1e999}',
        b'{"n": ' + b"9" * 5000 + b"}",
        b'{"userName": "a", "USERNAME": "b"}',
        b'{"Operations": [], "operations": []}',
        b'{"name": {"givenName": "a", "givenname": "b"}}',
        b'{"a": 1, "a": 2}',
        b"{'userName': 'x'}",
        b'{"userName": "x",}',
    ],
)
def test_malformed_json_is_invalid_syntax(raw):
    raises(lambda: body_of(raw), 400, "invalidSyntax")


@pytest.mark.parametrize(
    "raw", [b'{"userName": "\\ud800"}', b'{"\\udfff": 1}', b'{"a": [{"b": ["\\ud83d x"]}]}', b'"\\ud800"']
)
def test_unpaired_surrogates_are_invalid_value(raw):
    raises(lambda: body_of(raw), 400, "invalidValue")


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (b"[]", []),
        (b'"str"', "str"),
        (b"1", 1),
        (b"null", None),
        (b'{"userName": "\\ud83d\\ude00 \\u0000 \\u001b"}', {"userName": "😀 \x00 \x1b"}),
        (b'{"n": 1e308, "m": -0.0, "k": 12345678901234567890}', {"n": 1e308, "m": -0.0, "k": 12345678901234567890}),
    ],
)
def test_valid_json_is_read_as_is(raw, parsed):
    """Non-object bodies parse here; each service refuses them with 400 invalidSyntax (tested end to end)."""
    assert body_of(raw) == parsed


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "multipart/form-data", "application/x-www-form-urlencoded", "*/*"]
)
def test_other_media_types_are_415(content_type):
    raises(lambda: body_of(b"{}", content_type), 415, None)


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "APPLICATION/SCIM+JSON", "application/json; charset=utf-8"]
)
def test_json_media_types_are_accepted(content_type):
    assert body_of(b"{}", content_type) == {}


@pytest.mark.parametrize("size", [MAX_PAYLOAD_BYTES + 1, 1024 * 1024, 10 * 1024 * 1024])
def test_oversize_bodies_are_413_before_parsing(size):
    raw = b'{"userName": "' + b"x" * size + b'"}'
    raises(lambda: body_of(raw), 413, None)


# PATCH -----------------------------------------------------------------------------------------------------------


def test_too_many_operations_is_invalid_value():
    operations = [{"op": "add", "path": "title", "value": "t"}] * (MAX_OPERATIONS + 1)
    raises(lambda: normalise_patch({"Operations": operations}), 400, "invalidValue")
    assert len(normalise_patch({"Operations": operations[:MAX_OPERATIONS]})["Operations"]) == MAX_OPERATIONS


@pytest.mark.parametrize(
    "path",
    [
        "emails[" + "(" * (MAX_FILTER_DEPTH + 1) + 'value eq "x"' + ")" * (MAX_FILTER_DEPTH + 1) + "]",
        "members[" + "not (" * 1000 + 'value eq "x"' + ")" * 1000 + "]",
        "members[" * 5000,
    ],
    ids=lambda path: path[:12],
)
def test_deep_patch_paths_are_invalid_path(path):
    raises(lambda: normalise_patch({"Operations": [{"op": "remove", "path": path}]}), 400, "invalidPath")


def test_path_keys_of_a_pathless_operation_are_checked_too():
    value = {"emails[" + "(" * 40 + 'type eq "x"' + ")" * 40 + "].value": "v"}
    raises(lambda: normalise_patch({"Operations": [{"op": "replace", "value": value}]}), 400, "invalidPath")


@pytest.mark.parametrize(
    ("operations", "scim_type"),
    [
        ("x", "invalidSyntax"),
        ([], "invalidSyntax"),
        ([1], "invalidSyntax"),
        ([[]], "invalidSyntax"),
        ([{"op": None}], "invalidSyntax"),
        ([{"op": 5, "path": "title"}], "invalidSyntax"),
        ([{"op": "add", "path": 5, "value": "x"}], "invalidPath"),
        ([{"op": "add", "path": ["title"], "value": "x"}], "invalidPath"),
    ],
)
def test_malformed_operations(operations, scim_type):
    raises(lambda: normalise_patch({"Operations": operations}), 400, scim_type)


def member_ids(count: int) -> list[str]:
    return [f"{i:032x}" for i in range(count)]


@pytest.mark.parametrize("op", ["add", "replace", "remove"])
def test_too_many_members_in_a_value_list_is_invalid_value(op):
    value = [{"value": member} for member in member_ids(MAX_MEMBERS_PER_OPERATION + 1)]
    operations = normalise_patch({"Operations": [{"op": op, "path": "members", "value": value}]})["Operations"]
    raises(lambda: split_members(operations), 400, "invalidValue")


def test_too_many_members_in_a_filter_is_invalid_value():
    selected = " or ".join(f'value eq "{member}"' for member in member_ids(MAX_MEMBERS_PER_OPERATION + 1))
    body = {"Operations": [{"op": "remove", "path": f"members[{selected}]"}]}
    raises(lambda: split_members(normalise_patch(body)["Operations"]), 400, "invalidValue")  # counted before parsing
    at_limit = " or ".join(f'value eq "{member}"' for member in member_ids(MAX_MEMBERS_PER_OPERATION))
    change, _ = split_members([{"op": "remove", "path": f"members[{at_limit}]"}])
    assert len(change.removed) == MAX_MEMBERS_PER_OPERATION


@pytest.mark.parametrize(
    "path",
    [
        'members[value eq "x"].display',
        "members.value",
        'members[value eq "x" and value eq "y"]',
        'members[display eq "x"]',
        "members[]",
        'members[value eq "x"',
    ],
)
def test_member_paths_with_garbage_are_invalid_path(path):
    operations = normalise_patch({"Operations": [{"op": "remove", "path": path}]})["Operations"]
    raises(lambda: split_members(operations), 400, "invalidPath")


# Errors and authentication ---------------------------------------------------------------------------------------


def test_library_errors_wrapping_pydantic_name_the_attribute_not_the_model():
    from scim2_models import InvalidValueException

    try:
        ScimUser.model_validate({"userName": ["a", "b"]})
    except ValidationError as validation:
        try:
            raise InvalidValueException(detail=str(validation)) from validation
        except InvalidValueException as wrapped:
            error = errors.from_validation(wrapped)
    assert (error.status, error.scim_type) == (400, "invalidValue")
    assert error.detail == "Invalid value for 'userName'"
    assert "ScimUser" not in json.dumps(error.body())


def test_a_token_that_is_not_unicode_text_does_not_match():
    assert match_secret("\ud800" * 20, [("t", b"\x00" * 32)]) is None
