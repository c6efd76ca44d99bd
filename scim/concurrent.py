"""Independent storage calls of one request run at once.

In Azure each storage call is a network round trip, and what Entra waits for is the calls made one after another
(bench/README.md, "round_trips.py"). Calls that do not need each other's answers are therefore started together.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")
R = TypeVar("R")


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Both results, once both have settled (no storage call outlives its request); if either failed, the failure
    of ``first`` wins over that of ``second``, so the answer does not depend on which finished first."""
    done = await asyncio.gather(first, second, return_exceptions=True)
    for result in done:
        if isinstance(result, BaseException):
            raise result
    return done[0], done[1]


async def all_of(awaitables: list[Awaitable[Any]]) -> list[Any]:
    """Every result, in order; the first failure is raised once all have settled, so none is left running."""
    done = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in done:
        if isinstance(result, BaseException):
            raise result
    return list(done)


async def map_bounded(function: Callable[[T], Awaitable[R]], items: Sequence[T], limit: int) -> list[R]:
    """``function`` of every item, in order, at most ``limit`` at a time, run by ``limit`` workers: up to ``limit``
    items all start at once, as ``gather`` would start them, but a thousand items make ``limit`` tasks, not a
    thousand waiting ones. Every waiting task, coroutine and waiter is an object each garbage collection walks: with
    four 1,000-member PATCHes in flight, collections of 10-19 ms that freed nothing held the whole instance
    (bench/fairness.py --stalls). After a failure no worker starts another item; the first failure is raised once
    every worker has stopped, so no call outlives its request."""
    results: list[Any] = [None] * len(items)
    pending = iter(enumerate(items))
    failures: list[Exception] = []

    async def worker() -> None:
        for index, item in pending:
            try:
                results[index] = await function(item)
            except Exception as exc:  # raised below, once every worker has stopped
                failures.append(exc)
            if failures:
                return

    await asyncio.gather(*(worker() for _ in range(min(limit, len(items)))))
    if failures:
        raise failures[0]
    return results
