"""The request log's ``writes`` counts every write request sent to storage, retries included, as seen on the wire:
the endpoint talks to a recording proxy, which talks to a fault proxy, which talks to Azurite."""

import json
import logging
import re
import secrets
import threading
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
    recorded_client: Client, wire: tuple[TrafficProxy, FaultProxy], caplog: pytest.LogCaptureFixture
):
    traffic, proxy = wire
    await recorded_client.create_user(f"warm-{secrets.token_hex(4)}@example.com")  # the table exists
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"w-{secrets.token_hex(4)}@x.org"}
    mark = traffic.mark()
    proxy.set_mode("respond", status=503)
    healer = threading.Timer(0.8, proxy.heal)
    healer.start()
    with caplog.at_level(logging.INFO, logger="scim.request"):
        response = await recorded_client.call("POST", "Users", body)  # a create reads nothing first
    healer.join()
    assert response.status == 201
    sent = writes(traffic.since(mark))
    assert len(sent) >= 2  # at least one refused attempt and the one that succeeded
    assert logged_writes(caplog) == len(sent)


async def test_a_read_only_request_counts_no_write(recorded_client: Client, wire, caplog):
    traffic, _ = wire
    user = await recorded_client.create_user(f"r-{secrets.token_hex(4)}@example.com")
    mark = traffic.mark()
    with caplog.at_level(logging.INFO, logger="scim.request"):
        assert (await recorded_client.call("GET", f"Users/{user['id']}")).status == 200
    calls = traffic.since(mark)
    assert logged_writes(caplog) == len(writes(calls)) == 0
    assert any(call.kind == "point-read" for call in calls)
