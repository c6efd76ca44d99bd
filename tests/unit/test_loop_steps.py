"""The walks over a 1,000-member body or member list never hold the event loop in one go (scim/cpu_share.py), and
read exactly what the whole walks read: the body checks skip what cannot fail, member lists are rendered in turns.

What is asserted is what ran between two steps of the loop (another task's ticks), or which work was done at all,
never a timing."""

import asyncio
import json
import random
import re

import pytest
from scim2_models import ScimFilter

from scim import cpu_share, dispatch, entra, filters, groups, membership, protocol
from scim.errors import ScimError
from scim.membership import member_entries, named_members
from scim.messages import ScimRequest
from scim.store.contract import Member, StoredResource

GROUP_ID = "0" * 32


def body_of(raw: bytes) -> object:
    return dispatch._json_body(
        ScimRequest("PATCH", "Groups", headers={"Content-Type": "application/scim+json"}, body=raw)
    )


def refusal_of(raw: bytes) -> tuple[int, str | None]:
    """The status and ``scimType`` of the error the body is refused with."""
    with pytest.raises(ScimError) as raised:
        body_of(raw)
    return raised.value.status, raised.value.scim_type


def members_body(count: int, extra: str = "") -> bytes:
    value = [{"value": f"{i:032x}", "display": f"m{i}{extra}"} for i in range(count)]
    return json.dumps({"Operations": [{"op": "add", "path": "members", "value": value}]}, ensure_ascii=False).encode()


def test_a_body_without_escaped_surrogates_has_no_string_walked(monkeypatch):
    """A lone surrogate can only come from a ``\\uD800``-style escape: without one, none of a 1,000-member body's
    strings is looked at (walking them was a millisecond of the loop), only its depth."""
    looked: list[str] = []
    monkeypatch.setattr(dispatch, "has_lone_surrogate", lambda text: looked.append(text) or False)
    body = body_of(members_body(1000, "é😀"))
    assert looked == []
    assert body["Operations"][0]["value"][999] == {"value": f"{999:032x}", "display": "m999é😀"}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": [{"b": "\\ud83d\\ude00"}, {"c": "\\uDFFF"}]}',
        b'{"a": "\\uD83D\\uDE00 x", "\\udbff": 1}',
        b'{"a": "\\ud83d"}',
    ],
)
def test_any_escaped_surrogate_left_alone_is_still_refused(raw):
    assert refusal_of(raw) == (400, "invalidValue")


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (b'{"a": "\\\\ud800"}', {"a": "\\ud800"}),  # an escaped backslash, then text: no surrogate
        (b'{"a": ["\\ud83d\\ude00", {"b": "\\uD83D\\uDE00"}]}', {"a": ["😀", {"b": "😀"}]}),
    ],
)
def test_text_that_only_looks_like_a_surrogate_escape_or_a_pair_is_read(raw, parsed):
    assert body_of(raw) == parsed


def test_depth_is_checked_on_bodies_with_and_without_surrogate_escapes():
    deep = b'{"a":' * dispatch.MAX_JSON_DEPTH + b'"x"' + b"}" * dispatch.MAX_JSON_DEPTH
    deeper = b'{"a":' * dispatch.MAX_JSON_DEPTH + b"[]" + b"}" * dispatch.MAX_JSON_DEPTH
    escaped = b'{"a":' * dispatch.MAX_JSON_DEPTH + b'"\\ud83d\\ude00"' + b"}" * dispatch.MAX_JSON_DEPTH
    assert body_of(deep) and body_of(escaped)
    assert refusal_of(deeper) == (400, "invalidSyntax")


@pytest.mark.parametrize(
    "raw",
    [b'{"value": "a", "value": "b"}', b'{"Value": "a", "value": "b"}', b'[{"a": 1}, {"b": 1, "B": 2, "c": 3}]'],
)
def test_an_object_naming_one_attribute_twice_is_still_refused(raw):
    assert refusal_of(raw) == (400, "invalidSyntax")


@pytest.mark.parametrize(
    ("resource_id", "safe"),
    [
        ("a" * 64, True),
        ("A-z_0", True),
        ("", False),
        ("a" * 65, False),
        ("abc\n", False),
        ("ab c", False),
        ("١٢٣", False),
        ("\uff41", False),  # a full-width a
        ("a.b", False),
    ],
)
def test_safe_ids_are_ascii_letters_digits_dashes_and_underscores_up_to_64(resource_id, safe):
    assert protocol.is_safe_id(resource_id) is safe


@pytest.mark.parametrize(
    ("item", "entry"),
    [
        ({"value": "a"}, ("a", None)),
        ({"$ref": None, "value": "a", "display": "A", "type": "User"}, ("a", "A")),
        ({"Value": "a", "Display": "A"}, ("a", "A")),
        ({"value": "a", "displayName": "A"}, ("a", "A")),
        ({"VALUE": "a", "display": 3}, ("a", None)),
    ],
)
def test_member_objects_are_read_case_insensitively_spelt_any_way(item, entry):
    assert member_entries([item]) == [entry]


def test_named_members_counts_the_members_of_members_operations_only():
    operations = [
        {"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}]},
        {"op": "remove", "path": "Members", "value": [{"value": "c"}]},
        {"op": "remove", "path": 'members[value eq "d" or value eq "e"]'},
        {"op": "add", "path": "emails", "value": [{"value": "e@x.org"}]},
        {"op": "remove", "path": 'emails[value eq "f"]'},
    ]
    assert named_members(operations) == 5


class Ticker:
    """Another request's task, counting the steps of the loop it gets while something else runs."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> "Ticker":
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


def a_group() -> StoredResource:
    document = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g"}
    return StoredResource(GROUP_ID, document, "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z", 'W/"1"')


def members(count: int) -> list[Member]:
    return [Member(f"{i:032x}", "User" if i % 2 else "Group", f"m{i}" if i % 3 else None) for i in range(count)]


async def test_a_long_member_list_is_rendered_in_turns_letting_other_tasks_run_in_between(monkeypatch):
    listed = members(1000)
    ticks: list[int] = []
    original = groups._member_document

    def document(member: Member, base_url: str) -> dict[str, str]:
        if member.member_id in (listed[0].member_id, listed[-1].member_id):
            ticks.append(ticker.ticks)
        return original(member, base_url)

    monkeypatch.setattr(groups, "_member_document", document)
    async with Ticker() as ticker:
        rendered = await groups._render_shared(a_group(), "https://x/scim", listed, None)
    monkeypatch.undo()
    assert ticks[1] - ticks[0] >= 1000 // groups.MEMBERS_PER_TURN - 1
    assert rendered == groups._render(a_group(), "https://x/scim", listed, None)
    assert len(rendered.document["members"]) == 1000


@pytest.mark.parametrize("count", [0, 1, groups.INLINE_MEMBERS])
async def test_a_short_member_list_is_rendered_inline_without_a_turn(monkeypatch, count):
    taken: list[int] = []
    original = cpu_share.turn
    monkeypatch.setattr(cpu_share, "turn", lambda: taken.append(1) or original())
    listed = members(count)
    rendered = await groups._render_shared(a_group(), "https://x/scim", listed, None)
    assert taken == []
    assert rendered == groups._render(a_group(), "https://x/scim", listed, None)


async def test_a_costly_slice_runs_in_a_step_of_its_own_and_a_cheap_one_inline():
    async with Ticker() as ticker:
        before = ticker.ticks
        async with cpu_share.turn_if(False):
            inline = ticker.ticks
        async with cpu_share.turn_if(True):
            own_step = ticker.ticks
        after = ticker.ticks
    assert inline == before
    assert own_step > inline
    assert after > own_step


def depth_char_by_char(text: str) -> int:
    """The nesting depth as one walk over every character computes it (what filters.nesting_depth did)."""
    depth = deepest = 0
    quoted = escaped = False
    for char in text:
        if quoted:
            escaped, quoted = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            quoted = True
        elif char in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]":
            depth = max(depth - 1, 0)
    return deepest


def comparisons_part_by_part(text: str) -> int:
    """The comparison count as a search of each unquoted part computes it (what filters.comparison_count did)."""
    quoted = re.compile(r'("(?:[^"\\]|\\.)*")')
    return sum(len(filters._COMPARISON.findall(unquoted)) for unquoted in quoted.split(text)[::2])


def test_path_depth_and_comparisons_are_counted_as_a_walk_of_every_character_counts_them():
    """Quoted strings (closed, left open, with escapes and newlines) hide brackets and operators; 100,000 random
    texts of those pieces count the same either way."""
    pieces = ['"', "\\", "(", ")", "[", "]", "a", " ", "e", "q", "\n", "eq", " eq ", "x.", ":", "pr", "-", "$", "or"]
    rng = random.Random(15)
    for _ in range(100_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 24)))
        assert filters.nesting_depth(text) == depth_char_by_char(text), text
        assert filters.comparison_count(text) == comparisons_part_by_part(text), text


@pytest.mark.parametrize(
    "inner",
    [
        'value eq "a"',
        ' value eq "a" or value eq "b-c_d.e@f:g h" ',
        'value eq "" or value eq "x or value eq y"',
        " or ".join(f'value eq "{i:032x}"' for i in range(50)),
        'value eq "é" or value eq "a"',
    ],
)
def test_a_plain_members_filter_is_read_as_the_filter_parser_reads_it(inner):
    assert membership._plain_value_terms(inner) == membership._value_eq_terms(ScimFilter(inner).ast)


@pytest.mark.parametrize(
    "inner",
    [
        'Value eq "a"',
        'value EQ "a"',
        'value eq "a"  or value eq "b"',
        'value eq "a\\"b"',
        'value eq "a]"',
        'value eq "a" and value eq "b"',
        '(value eq "a")',
        'display eq "a"',
        'value eq "a" or',
    ],
)
def test_any_other_members_filter_goes_to_the_filter_parser(inner):
    assert membership._plain_value_terms(inner) is None


def test_a_thousand_member_filter_is_not_parsed_by_the_filter_parser(monkeypatch):
    """30 ms of the loop in one step: a remove naming 1,000 members through ``members[value eq … or …]``."""
    ids = [f"{i:032x}" for i in range(1000)]
    monkeypatch.setattr(membership, "ScimFilter", lambda _: pytest.fail("parsed"))
    path = "members[" + " or ".join(f'value eq "{member_id}"' for member_id in ids) + "]"
    change, _ = membership.split_members(
        entra.normalise_patch({"Operations": [{"op": "remove", "path": path}]})["Operations"]
    )
    assert change.removed == set(ids)
