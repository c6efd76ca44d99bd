"""Bounded retries of storage calls within one request's time budget.

Entra reads a 404 or an empty list as "no such user" and a 5xx as "try again later", so a storage hiccup must
become either a success (retried in time) or a 503, and nothing in between. The SDK's own retry policy is off
(``retry_total=0``): it retries for minutes and cannot tell a write that may have been applied from one that was
not. Here every transient failure is retried with jittered exponential backoff while the request's budget lasts;
callers of writes that may have been applied by a failed attempt verify the outcome themselves
(:attr:`Attempts.uncertain`).
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import aiohttp
from azure.core.exceptions import (
    AzureError,
    DecodeError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from scim.store.contract import StoreUnavailable

T = TypeVar("T")

REQUEST_BUDGET_SECONDS = 20.0
"""No retry starts later than this after the request began. Entra does not document its HTTP timeout (it retries
timeouts and 5xx 40 minutes later); the Functions host cuts HTTP requests at 230 s. 20 s keeps a request against a
dead storage account well inside both."""
ATTEMPT_TIMEOUT_SECONDS = 10.0
"""One storage call's longest wait; Table Storage's own server timeout for a write is 30 s."""
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 2.0
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Timeouts, throttling (``ServerBusy`` is a 503) and server errors: the same call may succeed a moment later."""

_deadline: ContextVar[float | None] = ContextVar("scim_storage_deadline", default=None)


@contextmanager
def request_budget(seconds: float) -> Iterator[None]:
    """Bound the storage retries of everything run inside, including tasks it spawns, to ``seconds`` from now."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed call may succeed if repeated: connection trouble, a cut or timed-out response, throttling."""
    if isinstance(exc, HttpResponseError) and not isinstance(exc, DecodeError):
        return exc.status_code in TRANSIENT_STATUSES
    return isinstance(
        exc, ServiceRequestError | ServiceResponseError | DecodeError | TimeoutError | OSError | aiohttp.ClientError
    )


class Attempts:
    """Runs one storage call until it succeeds, fails for good, or the request's budget is spent."""

    def __init__(self, budget: float) -> None:
        self._budget = budget
        self.uncertain = False
        """A failed attempt may have been applied (its response was lost or cut): a later conflict with the
        resource's own earlier write is not a conflict with someone else."""

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        deadline = _deadline.get() or time.monotonic() + self._budget
        backoff = FIRST_BACKOFF_SECONDS
        while True:
            remaining = deadline - time.monotonic()
            last_chance = remaining <= 0
            limit = ATTEMPT_TIMEOUT_SECONDS if last_chance else min(remaining, ATTEMPT_TIMEOUT_SECONDS)
            try:
                async with asyncio.timeout(limit):
                    return await call()
            except (AzureError, TimeoutError, OSError, aiohttp.ClientError) as exc:
                if not is_transient(exc):
                    raise
                self.uncertain = True
                pause = backoff * random.uniform(0.5, 1.0)
                if last_chance or time.monotonic() + pause >= deadline:
                    raise StoreUnavailable() from exc
            await asyncio.sleep(pause)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
