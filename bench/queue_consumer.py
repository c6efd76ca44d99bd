"""A consumer of the change feed's queue, as a customer's app would be, for the benchmarks: receive, decode
(scim/change_messages.py), delete, and keep every delivery with the moment it arrived.

Every delivery is kept, duplicates included, in arrival order: the queue is at least once, so a benchmark counts
repeats by event id and judges order on first deliveries (bench/feed_check.py). The consumer talks to the queue
service directly, never through a fault proxy: the customer's app is not where the endpoint's storage fails.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.queue.aio import QueueClient

from scim import change_messages
from scim.store.event_queue import API_VERSION

POLL_PAUSE_SECONDS = 0.01
"""How long the consumer waits after an empty receive: part of any delay measured through it, at most this much."""
BATCH = 32
"""The most messages one receive returns (the service's limit)."""


@dataclass(frozen=True)
class Delivery:
    event: dict[str, Any]
    at: float
    """``time.monotonic()`` when the message holding it was received."""


@dataclass
class QueueConsumer:
    queue: QueueClient
    deliveries: list[Delivery] = field(default_factory=list)
    first: dict[str, float] = field(default_factory=dict)
    """Event id → when it was first delivered."""
    messages: int = 0
    failed_receives: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever an event arrives for the first time."""

    @property
    def duplicates(self) -> int:
        return len(self.deliveries) - len(self.first)

    async def poll(self, stop: asyncio.Event) -> None:
        """Receive until ``stop``; a message is deleted once its events are kept, as a consumer that has processed
        it would."""
        while not stop.is_set():
            try:
                received = await self._receive()
            except AzureError:
                self.failed_receives += 1
                received = 0
            if not received:
                await asyncio.sleep(POLL_PAUSE_SECONDS)

    async def _receive(self) -> int:
        received = 0
        async for message in self.queue.receive_messages(messages_per_page=BATCH, visibility_timeout=60):
            now = time.monotonic()
            received += 1
            self.messages += 1
            for event in change_messages.decode(message.content):
                self.deliveries.append(Delivery(event, now))
                if event["id"] not in self.first:
                    self.first[event["id"]] = now
                    self.progress.set()
            await self.queue.delete_message(message)
        return received

    async def until(self, done: Callable[[], bool], seconds: float) -> bool:
        """Wait until ``done()`` holds, re-checked as events arrive, for at most ``seconds``; whether it held."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not done():
                    self.progress.clear()
                    await self.progress.wait()
        return done()


async def open_queue(connection_string: str, name: str) -> QueueClient:
    """The queue, created if the publisher has not created it yet (so that the first receive finds it)."""
    queue = QueueClient.from_connection_string(connection_string, name, api_version=API_VERSION)
    with contextlib.suppress(ResourceExistsError):
        await queue.create_queue()
    return queue
