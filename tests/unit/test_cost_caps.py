"""Every input whose cost grows with its size is capped before the costly work starts: attribute lists, the
comparisons of a filter and of PATCH paths (each and all together), and the operations a path-less PATCH expands
into. Each cap is a 400 with the right scimType; the largest accepted input is still accepted."""

import asyncio
import itertools
import secrets

import pytest

from scim import cpu_share
from scim.entra import MAX_EXPANDED_OPERATIONS, normalise_patch
from scim.errors import ScimError
from scim.filters import MAX_FILTER_TERMS, comparison_count, parse_filter
from scim.membership import MAX_MEMBERS_PER_OPERATION, split_members
from scim.protocol import MAX_ATTRIBUTE_PATHS, check_attribute_lists, render_each, response_parameters
from scim.schemas import ScimUser


def raises(call, status: int, scim_type: str | None) -> ScimError:
    with pytest.raises(ScimError) as raised:
        call()
    assert (raised.value.status, raised.value.scim_type) == (status, scim_type)
    return raised.value


def terms(count: int, template: str = 'title eq "t{}"') -> str:
    return " or ".join(template.format(i) for i in range(count))


def member_terms(ids: list[str]) -> str:
    return " or ".join(f'value eq "{member_id}"' for member_id in ids)


@pytest.mark.parametrize("name", ["attributes", "excludedAttributes"])
def test_an_attribute_list_is_capped_in_count_and_length(name):
    raises(lambda: check_attribute_lists({name: ",".join(["userName"] * 21_000)}), 400, "invalidValue")
    raises(
        lambda: check_attribute_lists({name: ",".join(["userName"] * (MAX_ATTRIBUTE_PATHS + 1))}), 400, "invalidValue"
    )
    raises(lambda: check_attribute_lists({name: "a" * 5000}), 400, "invalidValue")
    check_attribute_lists({name: ",".join(["userName"] * MAX_ATTRIBUTE_PATHS)})


def test_repeated_attribute_paths_are_applied_once():
    parameters = response_parameters({"attributes": "userName,USERNAME, userName ,emails"}, ScimUser)
    assert parameters is not None
    assert [str(path).lower() for path in parameters.attributes] == ["username", "emails"]


def test_comparisons_are_counted_outside_quoted_strings():
    assert comparison_count('userName eq "a eq b or c pr"') == 1
    assert comparison_count('emails[type eq "work" and value co "x"] or title pr') == 3
    assert comparison_count('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1"') == 1


def test_a_filter_of_more_comparisons_than_the_cap_is_refused_before_parsing():
    raises(lambda: parse_filter(terms(MAX_FILTER_TERMS + 1, "a eq {}")), 400, "invalidFilter")
    parse_filter(terms(MAX_FILTER_TERMS, "a eq {}"))


def test_a_patch_path_of_more_comparisons_than_the_cap_is_refused():
    path = f"emails[{terms(11_000, 'value eq {}')}].value"
    raises(lambda: normalise_patch({"Operations": [{"op": "replace", "path": path, "value": "x"}]}), 400, "invalidPath")
    at_cap = f"emails[{terms(MAX_FILTER_TERMS, 'value eq {}')}].value"
    normalise_patch({"Operations": [{"op": "replace", "path": at_cap, "value": "x"}]})


def test_the_comparisons_of_all_paths_of_one_patch_are_capped_together():
    half = f"emails[{terms(MAX_FILTER_TERMS // 2 + 1, 'value eq {}')}].value"
    operations = [{"op": "replace", "path": half, "value": "x"}] * 2
    raises(lambda: normalise_patch({"Operations": operations}), 400, "invalidPath")


def test_members_named_in_the_paths_of_one_patch_are_capped_together():
    ids = [secrets.token_hex(16) for _ in range(MAX_MEMBERS_PER_OPERATION)]
    first = f"members[{member_terms(ids[:600])}]"
    second = f"members[{member_terms(ids[400:])}]"
    operations = [{"op": "remove", "path": first}, {"op": "remove", "path": second}]
    raises(lambda: normalise_patch({"Operations": operations}), 400, "invalidValue")
    change, _ = split_members(normalise_patch({"Operations": operations[:1]})["Operations"])
    assert len(change.removed) == 600


def test_a_pathless_value_expands_into_operations_that_are_capped():
    value = {f"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName{i}": "x" for i in range(300)}
    raises(lambda: normalise_patch({"Operations": [{"op": "replace", "value": value}]}), 400, "invalidValue")
    small = {f"name.givenName{i}": "x" for i in range(MAX_EXPANDED_OPERATIONS)}
    assert len(normalise_patch({"Operations": [{"op": "replace", "value": small}]})["Operations"]) == len(small)


async def test_rendering_a_page_lets_other_requests_run_between_resources():
    """Another task gets the loop between every two resources rendered, however many heavy tasks render at once."""
    ticks: list[int] = []
    rendering = asyncio.Event()

    async def other_request() -> None:
        while not rendering.is_set():
            ticks.append(len(rendered))
            await asyncio.sleep(0)

    rendered: list[int] = []

    def render(item: int) -> int:
        rendered.append(item)
        return item

    other = asyncio.create_task(other_request())
    await asyncio.sleep(0)
    heavy = [render_each(range(i * 50, (i + 1) * 50), render) for i in range(4)]
    await asyncio.gather(*heavy)
    rendering.set()
    await other
    seen = sorted(set(ticks))
    assert len(rendered) == 200
    # between two of the other task's turns, at most one heavy slice ran
    assert all(later - earlier <= 1 for earlier, later in itertools.pairwise(seen))
    assert seen[-1] >= 199


async def test_turns_are_given_in_order_one_at_a_time():
    order: list[str] = []

    async def heavy(name: str) -> None:
        for _ in range(3):
            async with cpu_share.turn():
                order.append(name)

    await asyncio.gather(heavy("a"), heavy("b"), heavy("c"))
    assert order == ["a", "b", "c"] * 3


async def test_a_long_patch_is_applied_one_operation_per_turn_with_the_same_result():
    from scim2_models import Context

    from scim import documents, entra
    from scim.users import _validate

    def user():
        emails = [{"value": f"a{i}@x.org", "type": "work"} for i in range(3)]
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "emails": emails}
        return _validate(body, Context.RESOURCE_CREATION_REQUEST)

    steps = [
        {"op": "replace", "path": f'emails[value eq "a{i % 3}@x.org"].display', "value": f"d{i}"} for i in range(60)
    ]
    operations = documents.parse_patch(ScimUser, entra.normalise_patch({"Operations": steps}))
    ticks: list[int] = []
    done = asyncio.Event()

    async def other_request() -> None:
        while not done.is_set():
            ticks.append(1)
            await asyncio.sleep(0)

    other = asyncio.create_task(other_request())
    shared = await documents.apply_patch_shared(operations, user())
    done.set()
    await other
    assert shared == documents.apply_patch(operations, user())
    assert len(ticks) >= len(steps)  # the other request ran between operations


async def test_turns_go_round_the_tenants_not_first_come_first_served():
    """Three requests of tenant a ask for turns before tenant b's one: b still gets every other turn, so its work
    is done after at most one slice of a's per slice of its own (first come, first served, b came last)."""
    order: list[str] = []

    async def slices(tenant: str, name: str, count: int) -> None:
        async with cpu_share.request(tenant, lambda: False):
            for _ in range(count):
                async with cpu_share.turn():
                    order.append(name)

    tasks = [asyncio.create_task(slices("tenant-a", f"a{i}", 4)) for i in range(3)]
    tasks.append(asyncio.create_task(slices("tenant-b", "b", 4)))
    await asyncio.gather(*tasks)
    b_turns = [index for index, name in enumerate(order) if name == "b"]
    assert len(order) == 16
    assert b_turns == [1, 3, 5, 7], order  # first come, first served: b last of every round, [3, 7, 11, 15]


async def test_a_request_becomes_heavy_after_its_light_turns_and_waits_for_its_tenants_heavy_slot():
    """Only the tenant's second heavy request waits; a light one of the same tenant and another tenant's heavy one
    do not."""
    tenant = f"t-{secrets.token_hex(4)}"
    release, holding = asyncio.Event(), asyncio.Event()
    progress: dict[str, int] = {}

    async def request(name: str, owner: str, turns: int, hold: bool = False) -> None:
        async with cpu_share.request(owner, lambda: False):
            for _ in range(turns):
                async with cpu_share.turn():
                    progress[name] = progress.get(name, 0) + 1
            if hold:
                holding.set()
                await release.wait()

    first = asyncio.create_task(request("first", tenant, cpu_share.LIGHT_TURNS + 1, hold=True))
    await holding.wait()
    second = asyncio.create_task(request("second", tenant, cpu_share.LIGHT_TURNS + 5))
    light = asyncio.create_task(request("light", tenant, cpu_share.LIGHT_TURNS))
    other = asyncio.create_task(request("other", f"o-{secrets.token_hex(4)}", cpu_share.LIGHT_TURNS + 5))
    await asyncio.wait_for(asyncio.gather(light, other), 5)
    for _ in range(50):
        await asyncio.sleep(0)
    assert progress["second"] == cpu_share.LIGHT_TURNS  # stopped at its first heavy turn
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert progress["second"] == cpu_share.LIGHT_TURNS + 5


async def test_a_tenants_storage_calls_hold_at_most_their_share_of_the_connections():
    """A tenant with STORAGE_CALLS_PER_TENANT calls in flight waits for one of them before the next; another
    tenant's call goes straight out."""
    busy, other = f"busy-{secrets.token_hex(4)}", f"other-{secrets.token_hex(4)}"
    answer = asyncio.Event()
    started: list[str] = []

    async def call(tenant: str, name: str, wait: bool = True) -> None:
        async with cpu_share.request(tenant, lambda: False), cpu_share.storage_call():
            started.append(name)
            if wait:
                await answer.wait()

    held = [asyncio.create_task(call(busy, "held")) for _ in range(cpu_share.STORAGE_CALLS_PER_TENANT)]
    extra = asyncio.create_task(call(busy, "extra"))
    await asyncio.wait_for(call(other, "other", wait=False), 5)
    assert started.count("held") == cpu_share.STORAGE_CALLS_PER_TENANT
    assert "extra" not in started
    answer.set()
    await asyncio.wait_for(asyncio.gather(*held, extra), 5)
    assert started[-1] == "extra"


async def test_a_wide_requests_calls_past_the_first_few_go_out_and_come_back_a_turn_each():
    """Entra's 100-member PATCH reads its members at once. Its first UNPACED_CALLS calls go out in one step and
    their answers are decoded at once; each later one goes out, and is decoded, in a step of its own, so that
    another task runs between two of them rather than after all of them."""
    ticks = 0
    sent: list[int] = []
    """The ticker's count when each call went out."""
    waited: dict[int, int] = {}
    """Ticks each call's answer waited before it could be decoded."""
    answered = asyncio.Event()
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async def call(index: int) -> None:
        async with cpu_share.storage_call():
            sent.append(ticks)
            await answered.wait()
            before = ticks
            await cpu_share.answer_turn()
            waited[index] = ticks - before

    calls = 40
    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    async with cpu_share.request(f"wide-{secrets.token_hex(4)}", lambda: False):
        tasks = [asyncio.create_task(call(index)) for index in range(calls)]
        for _ in range(1000):
            if len(sent) == calls:
                break
            await asyncio.sleep(0)
        answered.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
    stop.set()
    await ticking
    unpaced = cpu_share.UNPACED_CALLS
    assert len(sent) == calls
    assert len(set(sent[:unpaced])) == 1  # one step
    assert all(later > earlier for earlier, later in itertools.pairwise(sent[unpaced - 1 :]))
    assert [waited[index] for index in range(unpaced)] == [0] * unpaced  # decoded straight away
    assert all(waited[index] >= 1 for index in range(unpaced, calls))


async def test_a_single_call_of_a_light_request_never_waits_for_a_turn():
    """Entra's lookups make one to three calls: they neither go out nor come back in a turn, even while another
    tenant holds it."""
    held, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with cpu_share.request(f"busy-{secrets.token_hex(4)}", lambda: False), cpu_share.turn():
            held.set()
            await release.wait()

    async def lookup() -> None:
        async with cpu_share.request(f"light-{secrets.token_hex(4)}", lambda: False):
            for _ in range(3):
                async with cpu_share.storage_call():
                    await cpu_share.answer_turn()

    holding = asyncio.create_task(holder())
    await held.wait()
    await asyncio.wait_for(lookup(), 1)
    release.set()
    await holding


async def test_reads_get_the_heavy_requests_few_workers_once_they_must_be_heavy():
    assert cpu_share.read_workers(100, 100) == 100  # Entra's 100-member batch: one round trip
    assert cpu_share.read_workers(cpu_share.LIGHT_STORAGE_CALLS, 100) == 100
    heavy = cpu_share.HEAVY_STORAGE_CALLS_PER_TENANT
    assert cpu_share.read_workers(cpu_share.LIGHT_STORAGE_CALLS + 1, 100) == heavy  # will be heavy
    assert cpu_share.read_workers(1000, 8) == 8  # never more than asked for
    async with cpu_share.request(f"t{secrets.token_hex(4)}", lambda: False):
        assert cpu_share.read_workers(60, 60) == 60
        for _ in range(cpu_share.LIGHT_TURNS + 1):
            async with cpu_share.turn():
                pass
        assert cpu_share.read_workers(60, 60) == heavy  # heavy already
