"""A long filter parsed a few ``or`` terms per turn (scim.filters.parse_filter_shared): the same tree, plan and
refusals as the whole parse, other requests running between its slices, and Entra's short filters untouched."""

import asyncio
import random

import pytest

from scim import filters
from scim.errors import ScimError
from scim.filters import ParsedFilter, parse_filter, parse_filter_shared
from scim.schemas import ScimGroup, ScimUser

TERMS = [
    'title eq "t{n}"',
    'title eq "a or b {n}"',
    'title eq "quote \\" or {n}"',
    "title eq bare{n}",
    "title pr",
    'userName sw "u{n}"',
    'emails[type eq "work" or value co "{n}"]',
    'not (title eq "{n}" or title pr)',
    '(title eq "x" OR title eq "{n}")',
    'title eq "{n}" and userName pr',
    'userName eq "user{n}"',
    'externalId eq "e{n}"',
    'title gt "m{n}"',
]
BROKEN = ['title eq "unterminated', "title eq", "title zz 1", "(title pr", "title pr)", 'emails[type eq "w"']


def long_filter(rng: random.Random, terms: int, broken: bool = False) -> str:
    chosen = [rng.choice(TERMS).format(n=rng.randrange(1000)) for _ in range(terms)]
    if broken:
        chosen[rng.randrange(terms)] = rng.choice(BROKEN)
    return rng.choice([" or ", " OR ", " Or "]).join(chosen)


def outcome(text: str, model: type) -> tuple[object, ...]:
    try:
        parsed = parse_filter(text, model)
    except ScimError as exc:
        return ("refused", exc.status, exc.scim_type, str(exc))
    assert isinstance(parsed, ParsedFilter)
    return (parsed.predicate.ast, parsed.lookup, parsed.member_ids, parsed.exact, parsed.extension_terms is None)


@pytest.mark.parametrize("model", [ScimUser, ScimGroup])
async def test_a_long_filter_parsed_in_slices_is_the_same_filter(model: type) -> None:
    rng = random.Random(7)
    for trial in range(150):
        text = long_filter(rng, rng.choice([11, 25, 45]), broken=trial % 5 == 0)
        whole = outcome(text, model)
        sliced = await asyncio.create_task(_outcome_async(text, model))
        assert sliced == whole, text


async def _outcome_async(text: str, model: type) -> tuple[object, ...]:
    try:
        parsed = await parse_filter_shared(text, model)
    except ScimError as exc:
        return ("refused", exc.status, exc.scim_type, str(exc))
    return (parsed.predicate.ast, parsed.lookup, parsed.member_ids, parsed.exact, parsed.extension_terms is None)


async def test_the_limits_refuse_as_before() -> None:
    too_many = " or ".join(f'title eq "{n}"' for n in range(filters.MAX_FILTER_TERMS + 1))
    with pytest.raises(ScimError) as refused:
        await parse_filter_shared(too_many)
    assert (refused.value.status, refused.value.scim_type) == (400, "invalidFilter")
    assert "comparisons" in str(refused.value)


def test_or_terms_split_only_at_top_level_operators() -> None:
    text = 'a eq "x or y" or (b pr or c pr) or d[e eq "f" or g pr] or not (h pr) OR i pr'
    assert filters.or_terms(text) == ['a eq "x or y"', "(b pr or c pr)", 'd[e eq "f" or g pr]', "not (h pr)", "i pr"]


async def test_other_requests_run_between_the_slices_of_a_long_filter() -> None:
    text = " or ".join(f'title eq "t{n}"' for n in range(99)) + " or title pr"
    ran_between: list[bool] = []
    finished = asyncio.Event()

    async def other_request() -> None:
        while not finished.is_set():
            ran_between.append(True)
            await asyncio.sleep(0)

    async def scan() -> ParsedFilter:
        try:
            return await parse_filter_shared(text)
        finally:
            finished.set()

    parsed, _ = await asyncio.gather(scan(), other_request())
    assert parsed.predicate.ast == parse_filter(text).predicate.ast
    assert len(ran_between) > 100 // filters.TERMS_PER_TURN  # once per slice at least, not only before and after


def test_a_short_filter_is_parsed_without_an_await() -> None:
    step = parse_filter_shared('userName eq "a" or externalId eq "b"')
    with pytest.raises(StopIteration) as done:
        step.send(None)  # finished on its first step: no turn taken
    assert done.value.value.predicate.ast == parse_filter('userName eq "a" or externalId eq "b"').predicate.ast
