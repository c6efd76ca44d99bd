"""A re-sent member removal (Entra's retry after a timeout or a 503) names members that are already gone. Over HTTP,
through a proxy that records what the endpoint sends to storage: the re-send answers 204 well within the request
budget, its storage requests are proportional to the members named, and the request log's ``writes`` equals the
write requests seen on the wire."""

import json
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from scim.local import azurite
from scim.store.retries import REQUEST_BUDGET_SECONDS
from tests.local_server import LocalServer
from tests.storage_traffic import StorageCall, TrafficProxy

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MEMBERS = 1000
EDGES_PER_TRANSACTION = 50


class Recorded:
    def __init__(self, server: LocalServer, traffic: TrafficProxy) -> None:
        self.server = server
        self.traffic = traffic
        headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/scim+json"}
        self.http = httpx.Client(base_url=server.base_url, headers=headers, timeout=60)

    def logged_writes(self) -> list[int]:
        """The ``writes`` of every PATCH line in the server's request log, in order."""
        self.server.log.seek(0)
        text = self.server.log.read().decode(errors="replace")
        lines = [json.loads(match) for match in re.findall(r"\{\"event\": \"scim.request\"[^\n]*\}", text)]
        return [line["writes"] for line in lines if line["method"] == "PATCH"]


@pytest.fixture(scope="module")
def recorded(azurite_connection_string: str) -> Iterator[Recorded]:
    port = int(re.search(r"TableEndpoint=http://127.0.0.1:(\d+)/", azurite_connection_string).group(1))
    with TrafficProxy(port) as traffic:
        server = LocalServer(azurite.connection_string(traffic.port), f"cost{secrets.token_hex(4)}")
        server.start()
        try:
            recorded = Recorded(server, traffic)
            with recorded.http:
                yield recorded
        finally:
            server.close()


def patch(recorded: Recorded, group_id: str, operation: dict[str, Any]) -> tuple[httpx.Response, float, list]:
    """Send one PATCH; its answer, its seconds, and the storage calls made while it was in flight."""
    mark = recorded.traffic.mark()
    started = time.monotonic()
    response = recorded.http.patch(f"/Groups/{group_id}", json={"schemas": [PATCH], "Operations": [operation]})
    return response, time.monotonic() - started, recorded.traffic.since(mark)


def transactions(calls: list[StorageCall]) -> list[StorageCall]:
    return [call for call in calls if call.kind == "batch"]


def writes(calls: list[StorageCall]) -> list[StorageCall]:
    return [call for call in calls if call.kind in ("batch", "write")]


def chunks(calls: list[StorageCall]) -> int:
    """Transactions that got a definite answer: an attempt whose answer was lost or was a transient failure is sent
    again, and on this shared, loaded machine that happens; counted once, by its final attempt."""
    return sum(1 for call in transactions(calls) if call.status not in (0, 408, 429, 500, 502, 503, 504))


def rows_read(calls: list[StorageCall]) -> set[str]:
    """The membership rows read by key (a retried read counts once)."""
    return {call.path for call in calls if call.kind == "point-read" and "Membership" in call.path}


def new_users(recorded: Recorded, count: int) -> list[str]:
    def create(index: int) -> str:
        body = {"schemas": [USER], "userName": f"r{index}-{secrets.token_hex(4)}@example.com"}
        response = recorded.http.post("/Users", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(create, range(count)))


def new_group(recorded: Recorded) -> str:
    response = recorded.http.post("/Groups", json={"schemas": [GROUP], "displayName": f"g-{secrets.token_hex(4)}"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_a_resent_removal_of_a_thousand_members_answers_204_within_the_budget(recorded: Recorded):
    users, group = new_users(recorded, MEMBERS), new_group(recorded)
    named = [{"value": user} for user in users]
    assert patch(recorded, group, {"op": "add", "path": "members", "value": named})[0].status_code == 204
    remove = {"op": "remove", "path": "members", "value": named}

    first, _, calls = patch(recorded, group, remove)
    assert first.status_code == 204
    assert not rows_read(calls)  # every edge was there: no member row is read
    assert chunks(calls) == MEMBERS // EDGES_PER_TRANSACTION

    again, seconds, calls = patch(recorded, group, remove)
    assert again.status_code == 204
    assert seconds < REQUEST_BUDGET_SECONDS
    assert chunks(calls) == MEMBERS // EDGES_PER_TRANSACTION  # one failed transaction per 50 named, no more
    assert len(rows_read(calls)) == 2 * MEMBERS  # a point read per row of each edge named, once
    assert sum(call.operations for call in transactions(calls)) <= 2 * 2 * MEMBERS  # never re-sent row by row
    assert recorded.http.get(f"/Groups/{group}").json().get("members", []) == []


def test_removing_made_up_members_costs_two_reads_each_and_a_failed_transaction_per_fifty(recorded: Recorded):
    group = new_group(recorded)
    made_up = [{"value": secrets.token_hex(16)} for _ in range(500)]
    response, seconds, calls = patch(recorded, group, {"op": "remove", "path": "members", "value": made_up})
    assert response.status_code == 204
    assert seconds < REQUEST_BUDGET_SECONDS
    assert chunks(calls) == 500 // EDGES_PER_TRANSACTION
    assert len(rows_read(calls)) == 2 * 500


def test_a_removal_mixing_present_and_absent_members_removes_the_present_ones(recorded: Recorded):
    users, group = new_users(recorded, 60), new_group(recorded)
    present = users[::2]
    add = {"op": "add", "path": "members", "value": [{"value": user} for user in present]}
    assert patch(recorded, group, add)[0].status_code == 204
    remove = {"op": "remove", "path": "members", "value": [{"value": user} for user in users]}
    response, _, calls = patch(recorded, group, remove)
    assert response.status_code == 204
    # each chunk named (50, then 10): one failed transaction, reads of its rows, one transaction of those present
    assert chunks(calls) == 4
    assert len(rows_read(calls)) == 2 * 60
    assert recorded.http.get(f"/Groups/{group}").json().get("members", []) == []
    for user in present:
        assert recorded.http.get(f"/Users/{user}").json().get("groups", []) == []


def test_the_logged_writes_are_the_write_requests_seen_on_the_wire(recorded: Recorded):
    users, group = new_users(recorded, 120), new_group(recorded)
    before = len(recorded.logged_writes())
    operations = [
        {"op": "add", "path": "members", "value": [{"value": user} for user in users]},
        {"op": "remove", "path": "members", "value": [{"value": user} for user in users[:70]]},
        {"op": "remove", "path": "members", "value": [{"value": user} for user in users[:70]]},
        {"op": "replace", "path": "displayName", "value": f"renamed-{secrets.token_hex(3)}"},
    ]
    seen = []
    for operation in operations:
        response, _, calls = patch(recorded, group, operation)
        assert response.status_code in (200, 204), response.text
        seen.append(len(writes(calls)))
    time.sleep(0.2)  # the log line is written after the answer
    assert recorded.logged_writes()[before:] == seen
    assert seen[2] >= 2  # the re-sent removal's failed transactions are counted too
