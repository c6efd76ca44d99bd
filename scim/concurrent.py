"""Independent storage calls of one request run at once.

In Azure each storage call is a network round trip, and what Entra waits for is the calls made one after another
(bench/README.md, "round_trips.py"). Calls that do not need each other's answers are therefore started together.
"""

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

A = TypeVar("A")
B = TypeVar("B")


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
