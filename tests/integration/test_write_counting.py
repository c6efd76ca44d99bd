"""The request log's ``writes`` counts every write request sent to storage, retries included, as seen on the wire:
the endpoint talks to a recording proxy, which talks to a fault proxy, which talks to Azurite."""

import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest

from scim.local import azurite
from scim.store.tables import TableStore
from tests.conftest import Client, make_client
from tests.fault_proxy import FaultProxy
from tests.storage_traffic import StorageCall, TrafficProxy


@pytest.fixture(scope="module")
def wire(azurite_connection_string: str) -> Iterator[tuple[TrafficProxy, FaultProxy]]:
    port = int(re.search(r"TableEndpoint=http://127.0.0.1:(\d+)/", azurite_connection_string).group(1))
    with FaultProxy(port) as proxy, TrafficProxy(proxy.port) as traffic:
        yield traffic, proxy


@pytest.fixture
async def recorded_client(wire: tuple[TrafficProxy, FaultProxy]) -> AsyncIterator[Client]:
    traffic, _ = wire
    store = TableStore.from_settings(azurite.connection_string(traffic.port), None, "wirecount")
    try:
        yield make_client(store)
    finally:
        await store.close()


def writes(calls: list[StorageCall]) -> list[StorageCall]:
    return [call for call in calls if call.kind in ("batch", "write")]


def logged_writes(caplog: pytest.LogCaptureFixture) -> int:
    return json.loads(caplog.records[-1].getMessage())["writes"]


async def test_writes_retried_after_storage_errors_are_each_counted(
    wire: tuple[TrafficProxy, FaultProxy], caplog: pytest.LogCaptureFixture
):
    """Storage answers every call 503 until the request's (short) budget is spent: each retry is a write request."""
    traffic, proxy = wire
    store = TableStore.from_settings(azurite.connection_string(traffic.port), None, "wirecount", request_budget=2.0)
    try:
        client = make_client(store)
        await client.create_user(f"warm-{secrets.token_hex(4)}@example.com")  # the table exists
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": f"w-{secrets.token_hex(4)}@x.org",
        }
        proxy.set_mode("respond", status=503)
        mark = traffic.mark()
        try:
            with caplog.at_level(logging.INFO, logger="scim.request"):
                response = await client.call("POST", "Users", body)  # a create reads nothing first
        finally:
            proxy.heal()
    finally:
        await store.close()
    assert response.status == 503
    sent = writes(traffic.since(mark))
    assert len(sent) >= 3  # retried within the budget
    assert {call.status for call in sent} <= {0, 503}  # 0: sent on a pooled connection the fault had closed
    # Every request that reached the wire was counted; one more attempt may have died on a pooled connection that
    # switching the fault closed, before any byte left the process.
    assert len(sent) <= logged_writes(caplog) <= len(sent) + 1


async def test_a_read_only_request_counts_no_write(recorded_client: Client, wire, caplog):
    traffic, _ = wire
    user = await recorded_client.create_user(f"r-{secrets.token_hex(4)}@example.com")
    mark = traffic.mark()
    with caplog.at_level(logging.INFO, logger="scim.request"):
        assert (await recorded_client.call("GET", f"Users/{user['id']}")).status == 200
    calls = traffic.since(mark)
    assert logged_writes(caplog) == len(writes(calls)) == 0
    assert any(call.kind == "point-read" for call in calls)
