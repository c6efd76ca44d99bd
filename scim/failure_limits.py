"""Failed-authentication limits for the token endpoint, so it cannot be used to guess secrets or to burn CPU on
scrypt hashes: per client id and per source address, a sliding window of recent failures.

Per instance and in memory (an instance that starts afresh starts with clean counts; with N instances an attacker
gets N times the budget, still nowhere near guessing a 256-bit secret). While a key is over its limit, requests for
it are answered 429 with ``Retry-After`` before any secret is checked, whether or not they would have succeeded.
"""

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

CLIENT_FAILURES = 5
SOURCE_FAILURES = 20
WINDOW_SECONDS = 60.0
MAX_TRACKED_KEYS = 10_000
"""The oldest keys are forgotten beyond this, so a flood of made-up client ids cannot exhaust memory."""


class FailureLimiter:
    """At most ``limit`` failures per key within ``window`` seconds."""

    def __init__(
        self,
        limit: int,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_TRACKED_KEYS,
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` may try again, or None if it may try now."""
        failures = self._failures.get(key)
        if failures is None or len(failures) < self._limit:
            return None
        wait = failures[0] + self._window - self._clock()
        return math.ceil(wait) if wait > 0 else None

    def failed(self, key: str) -> None:
        now = self._clock()
        failures = self._failures.pop(key, None) or deque(maxlen=self._limit)
        failures.append(now)
        self._failures[key] = failures
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)
