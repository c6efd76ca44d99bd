"""Turns at the CPU for request work that takes long, so that one tenant's costly requests cannot stall the rest.

One process serves every tenant on one event loop, and asyncio runs ready tasks in turn: with four requests each
rendering a 200-resource page and yielding after every resource, every step of a small request waits behind four
slices of someone else's work (a filter-GET took 17x its usual time in bench/fairness.py). Costly loops therefore
take a turn per slice (:func:`turn`); turns are handed out one at a time, in order, so a small request's step waits
behind at most one slice, however many costly requests are running.
"""

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

_turns: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = weakref.WeakKeyDictionary()


@asynccontextmanager
async def turn() -> AsyncIterator[None]:
    """Hold this event loop's single turn for one slice of CPU work (a few milliseconds at most); a task that
    leaves the block and asks again queues behind every task already waiting."""
    loop = asyncio.get_running_loop()
    lock = _turns.get(loop)
    if lock is None:
        lock = _turns[loop] = asyncio.Lock()
    async with lock:
        yield
        await asyncio.sleep(0)  # still holding the turn: every task already ready runs before the next slice
