"""``map_bounded``: every result in order, never more than ``limit`` calls at once nor more than ``limit`` tasks, all
of a small batch started together (Entra's 100 member reads stay one round trip), and a failure raised only once
every call has stopped (none outlives its request)."""

import asyncio

import pytest

from scim.concurrent import map_bounded


async def test_results_come_in_order_with_at_most_limit_calls_and_tasks_at_once():
    running, most, tasks = 0, 0, 0

    async def call(item: int) -> int:
        nonlocal running, most, tasks
        running += 1
        most = max(most, running)
        tasks = max(tasks, len(asyncio.all_tasks()))
        await asyncio.sleep(0.001 * (item % 3))
        running -= 1
        return item * 2

    assert await map_bounded(call, list(range(1000)), 16) == [i * 2 for i in range(1000)]
    assert most == 16
    assert tasks <= 16 + 1  # the workers and the test's own task, not a thousand waiting ones


async def test_a_batch_within_the_limit_starts_all_at_once():
    started: list[int] = []
    gate = asyncio.Event()

    async def call(item: int) -> int:
        started.append(item)
        await gate.wait()
        return item

    batch = asyncio.ensure_future(map_bounded(call, list(range(100)), 100))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sorted(started) == list(range(100))
    gate.set()
    assert await batch == list(range(100))


async def test_a_failure_is_raised_once_every_call_has_stopped_and_no_new_call_starts():
    finished: list[int] = []

    async def call(item: int) -> int:
        if item == 3:
            raise ValueError("boom")
        await asyncio.sleep(0.01)
        finished.append(item)
        return item

    with pytest.raises(ValueError, match="boom"):
        await map_bounded(call, list(range(50)), 4)
    assert sorted(finished) == [0, 1, 2]  # the calls already running finished; none of 4..49 started
    await asyncio.sleep(0.05)
    assert sorted(finished) == [0, 1, 2]
