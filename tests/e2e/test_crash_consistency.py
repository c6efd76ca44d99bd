"""Crash consistency: the server process is killed (SIGKILL) in the middle of large writes, restarted, and the same
requests are sent again, as Entra would after a timeout. The data must then be complete and every invariant hold.

Each test runs its own ``python -m scim serve`` on the session's Azurite, with its own table, so that killing it
disturbs no other test.
"""

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from azure.data.tables import TableClient

from scim.consistency import check
from scim.settings import DEFAULT_TENANT
from scim.store.tables import TableStore
from tests.local_server import LocalServer

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MEMBERS = 1000


class Server(LocalServer):
    """A local host that a test may kill and start again on the same port and table, and reads of its data."""

    def __init__(self, connection_string: str) -> None:
        self.connection_string = connection_string
        self.prefix = f"crash{secrets.token_hex(4)}"
        super().__init__(connection_string, self.prefix)

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/scim+json"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60)

    def table(self) -> TableClient:
        return TableClient.from_connection_string(self.connection_string, f"{self.prefix}Resources")

    def rows(self, low: str, high: str) -> int:
        """Rows of the membership partition with ``low <= RowKey < high``, read directly from the table."""
        with self.table() as table:
            query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
            parameters = {"pk": f"{DEFAULT_TENANT}:Membership", "lo": low, "hi": high}
            return sum(1 for _ in table.query_entities(query, parameters=parameters, select=["RowKey"]))

    def invariants_hold(self) -> bool:
        async def run() -> bool:
            store = TableStore.from_settings(self.connection_string, None, self.prefix)
            try:
                report = await check(store, [DEFAULT_TENANT])
            finally:
                await store.close()
            return report.clean

        return asyncio.run(run())


@pytest.fixture
def server(azurite_connection_string: str) -> Iterator[Server]:
    running = Server(azurite_connection_string)
    running.start()
    try:
        yield running
    finally:
        running.close()


def create_users(server: Server, count: int, prefix: str) -> list[str]:
    async def create_all() -> list[str]:
        headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/scim+json"}
        limit = asyncio.Semaphore(16)
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as http:

            async def create(index: int) -> str:
                async with limit:
                    body = {"schemas": [USER], "userName": f"{prefix}{index}@example.com"}
                    response = await http.post("/Users", json=body)
                    assert response.status_code == 201, response.text
                    return str(response.json()["id"])

            return list(await asyncio.gather(*(create(index) for index in range(count))))

    return asyncio.run(create_all())


def kill_when(server: Server, send: Callable[[], Any], started: Callable[[], bool]) -> None:
    """Send a request in the background and kill the server as soon as ``started()`` sees its first writes."""
    sender = threading.Thread(target=lambda: _ignore_disconnect(send), daemon=True)
    sender.start()
    deadline = time.monotonic() + 120
    while not started():
        assert sender.is_alive(), "the request finished before any write was seen"
        assert time.monotonic() < deadline, "no write seen"
        time.sleep(0.005)
    server.kill()
    sender.join(timeout=30)


def _ignore_disconnect(send: Callable[[], Any]) -> None:
    """The server is killed under this request: that is the point, not a failure."""
    with contextlib.suppress(httpx.HTTPError):
        send()


def add_members(member_ids: list[str]) -> dict[str, Any]:
    value = [{"value": member_id} for member_id in member_ids]
    return {"schemas": [PATCH], "Operations": [{"op": "Add", "path": "members", "value": value}]}


def member_ids(http: httpx.Client, group_id: str) -> set[str]:
    response = http.get(f"/Groups/{group_id}")
    assert response.status_code == 200
    return {member["value"] for member in response.json().get("members", [])}


def test_killed_during_a_1000_member_patch_a_resend_completes_it(server: Server):
    users = create_users(server, MEMBERS, "member")
    with server.client() as http:
        group = http.post("/Groups", json={"schemas": [GROUP], "displayName": "Everyone"}).json()
    forward = f"g:{group['id']}:"

    def send() -> None:
        with server.client() as http:
            http.patch(f"/Groups/{group['id']}", json=add_members(users))

    kill_when(server, send, lambda: server.rows(forward, forward[:-1] + ";") > 0)
    applied = server.rows(forward, forward[:-1] + ";")
    assert 0 < applied < MEMBERS, "the kill was meant to land mid-PATCH"

    server.start()
    with server.client() as http:
        assert http.patch(f"/Groups/{group['id']}", json=add_members(users)).status_code == 204
        assert member_ids(http, group["id"]) == set(users)
    assert server.invariants_hold()


def test_killed_during_a_large_group_delete_a_resend_finishes_it(server: Server):
    users = create_users(server, MEMBERS, "leaver")
    with server.client() as http:
        group = http.post("/Groups", json={"schemas": [GROUP], "displayName": "Leaving"}).json()
        assert http.patch(f"/Groups/{group['id']}", json=add_members(users)).status_code == 204
    forward = f"g:{group['id']}:"

    def send() -> None:
        with server.client() as http:
            http.delete(f"/Groups/{group['id']}")

    kill_when(server, send, lambda: server.rows(forward, forward[:-1] + ";") < MEMBERS)
    server.start()
    with server.client() as http:
        assert http.delete(f"/Groups/{group['id']}").status_code in (204, 404)
        assert http.get(f"/Groups/{group['id']}").status_code == 404
        found = http.get("/Groups", params={"filter": 'displayName eq "Leaving"'}).json()
        assert found["totalResults"] == 0
        assert http.post("/Groups", json={"schemas": [GROUP], "displayName": "Leaving"}).status_code == 201
    assert server.rows(forward, forward[:-1] + ";") == 0
    assert server.invariants_hold()


def test_killed_during_renames_every_user_has_one_name(server: Server):
    users = create_users(server, 200, "before")
    renames = [(user_id, f"after{index}@example.com") for index, user_id in enumerate(users)]

    def rename_all() -> None:
        async def run() -> None:
            headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/scim+json"}
            limit = asyncio.Semaphore(8)
            async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as http:

                async def rename(user_id: str, name: str) -> None:
                    async with limit:
                        operation = {"op": "replace", "path": "userName", "value": name}
                        body = {"schemas": [PATCH], "Operations": [operation]}
                        response = await http.patch(f"/Users/{user_id}", json=body)
                        assert response.status_code == 200, response.text

                await asyncio.gather(*(rename(user_id, name) for user_id, name in renames))

        asyncio.run(run())

    renamed: list[int] = []

    def some_renamed() -> bool:
        with server.client() as http:
            response = http.get("/Users", params={"filter": f'userName eq "{renames[0][1]}"'})
            renamed.append(response.json()["totalResults"])
        return renamed[-1] > 0

    kill_when(server, rename_all, some_renamed)
    server.start()
    rename_all()
    with server.client() as http:
        for index, (user_id, name) in enumerate(renames):
            found = http.get("/Users", params={"filter": f'userName eq "{name}"'}).json()["Resources"]
            assert [user["id"] for user in found] == [user_id]
            old = http.get("/Users", params={"filter": f'userName eq "before{index}@example.com"'}).json()
            assert old["totalResults"] == 0
        again = http.post("/Users", json={"schemas": [USER], "userName": "before0@example.com"})
        assert again.status_code == 201
    assert server.invariants_hold()
