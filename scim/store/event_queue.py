"""The Azure Storage Queue the change feed's publisher sends to (Azurite's queue service locally), through the async
``azure-storage-queue`` client: one client (one HTTP session) per process, built on first use.

The queue lives in the same storage account as the table: from the same connection string locally, and in Azure
from ``SCIM_STORAGE_QUEUE_URI`` (or the table URI's account) with the app's managed identity, which needs only
*Storage Queue Data Message Sender*. The Bicep creates the queue; when it is missing (Azurite, a fresh account) the
publisher creates it, which only a connection string or a broader role allows.
"""

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError

from scim.store import retries
from scim.store.contract import StoreUnavailable
from scim.store.tables import CLIENT_OPTIONS, _transport

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient

API_VERSION = "2025-05-05"
"""Pinned: the SDK's newest API version is newer than what Azurite 3.35.0 accepts, and Azure serves older ones."""
SEND_BUDGET_SECONDS = retries.REQUEST_BUDGET_SECONDS


class EventQueue:
    """Sends message bodies (already encoded, :mod:`scim.change_messages`) to one queue, retrying transient faults."""

    def __init__(self, client: Callable[[], "QueueClient"], name: str) -> None:
        self._new_client = client
        self._client: QueueClient | None = None
        self.name = name

    @classmethod
    def from_settings(cls, connection_string: str | None, queue_uri: str | None, name: str) -> "EventQueue":
        """Connection string (Azurite) or the account's queue URI with DefaultAzureCredential (managed identity).
        The SDK is imported when the first message is sent (import time is cold-start time)."""
        options: dict[str, Any] = {**CLIENT_OPTIONS, "api_version": API_VERSION}
        if connection_string:

            def client() -> "QueueClient":
                from azure.storage.queue.aio import QueueClient

                return QueueClient.from_connection_string(connection_string, name, transport=_transport(), **options)

        else:

            def client() -> "QueueClient":
                from azure.identity.aio import DefaultAzureCredential
                from azure.storage.queue.aio import QueueClient

                credential = DefaultAzureCredential()
                return QueueClient(str(queue_uri), name, credential=credential, transport=_transport(), **options)

        return cls(client, name)

    @property
    def client(self) -> "QueueClient":
        if self._client is None:
            self._client = self._new_client()
        return self._client

    async def send(self, body: str) -> None:
        """Enqueue one message; a missing queue is created once and the send repeated. An attempt whose answer was
        lost is repeated too, so a message may be enqueued twice: delivery is at least once (consumers de-duplicate
        by event id)."""
        attempts = retries.Attempts(SEND_BUDGET_SECONDS)
        try:
            try:
                await attempts.run(lambda: self.client.send_message(body))
            except ResourceNotFoundError:
                await self._create()
                await attempts.run(lambda: self.client.send_message(body))
        except AzureError as exc:
            raise StoreUnavailable() from exc

    async def _create(self) -> None:
        with contextlib.suppress(ResourceExistsError):  # created meanwhile by another instance
            await retries.Attempts(SEND_BUDGET_SECONDS).run(self.client.create_queue)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
