"""Test session fixtures: a real Azurite (started on a free port, stopped at the end) and SCIM clients.

Each test gets its own tenant, so tests never see each other's data even though they share one table.
"""

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from scim.dispatch import ScimEndpoint
from scim.local import azurite
from scim.messages import ScimRequest, ScimResponse
from scim.settings import Settings
from scim.store.tables import TableStore

BASE_URL = "http://testserver/scim/v2"


@pytest.fixture(scope="session")
def azurite_connection_string() -> Iterator[str]:
    """Tables and queues (the change feed's publisher) of one Azurite account."""
    port, queue_port = azurite.free_port(), azurite.free_port()
    process = azurite.start(port)
    try:
        queues = azurite.start_queue(queue_port)
        try:
            yield azurite.connection_string(port, queue_port=queue_port)
        finally:
            azurite.stop(queues)
    finally:
        azurite.stop(process)


@pytest.fixture(scope="session")
async def store(azurite_connection_string: str) -> AsyncIterator[TableStore]:
    table_store = TableStore.from_settings(azurite_connection_string, None, "test")
    yield table_store
    await table_store.close()


@dataclass
class Client:
    """Calls the handler layer the way function_app.py does, with a bearer token."""

    endpoint: ScimEndpoint
    token: str

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> ScimResponse:
        endpoint, _, resource_id = path.strip("/").partition("/")
        request_headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/scim+json"}
        request_headers.update(headers or {})
        raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
        request = ScimRequest(method, endpoint, resource_id or None, query or {}, request_headers, raw, BASE_URL)
        return await self.endpoint.handle(request)

    async def create_user(self, user_name: str, **attributes: Any) -> dict[str, Any]:
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name, **attributes}
        response = await self.call("POST", "Users", body)
        assert response.status == 201, response.document
        assert response.document is not None
        return response.document


def make_client(store: TableStore, tenant: str | None = None) -> Client:
    tenant = tenant or f"t{secrets.token_hex(6)}"
    token = secrets.token_urlsafe(24)
    settings = Settings(storage_connection_string="unused", storage_table_uri=None, bearer_tokens=((tenant, token),))
    return Client(ScimEndpoint(settings, store), token)


@pytest.fixture
def client(store: TableStore) -> Client:
    return make_client(store)
