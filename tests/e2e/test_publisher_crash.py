"""A crash between a write's commit and its publish only delays delivery: the local host (``python -m scim serve``,
serving what function_app.py registers, its timer included) is SIGKILLed after answering a write and before its
publish (held back with SCIM_CHANGE_FEED_PUBLISH_DELAY_SECONDS); after a restart, the timer sweep delivers the
event: once in the pull feed, at least once on the queue."""

import asyncio
import secrets
import time

import httpx

from scim.store.tables import TableStore
from tests.integration.test_publisher import first_occurrences, received
from tests.local_server import LocalServer

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
DELIVERY_TIMEOUT = 60.0


async def test_a_host_killed_between_commit_and_publish_delivers_after_restart(azurite_connection_string: str):
    prefix, queue = f"crash{secrets.token_hex(4)}", f"crash{secrets.token_hex(6)}"
    server = LocalServer(azurite_connection_string, prefix)
    feed = {"SCIM_CHANGE_FEED": "on", "SCIM_CHANGE_FEED_QUEUE": queue, "SCIM_CHANGE_FEED_SETTLE_SECONDS": "60"}
    server.env.update(feed, SCIM_CHANGE_FEED_PUBLISH_DELAY_SECONDS="600", SCIM_LOCAL_TIMER_SECONDS="3600")
    server.start()
    try:
        headers = {"Authorization": f"Bearer {server.token}"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
            created = await http.post("/Users", json={"schemas": [USER], "userName": "crash@example.com"})
            assert created.status_code == 201
            server.kill()  # the answer is out; its publish was still 600 s away
            assert await received(azurite_connection_string, queue) == []
            server.env.update(SCIM_CHANGE_FEED_PUBLISH_DELAY_SECONDS="0", SCIM_LOCAL_TIMER_SECONDS="1")
            server.start()  # no write after the restart: only the timer sweep can publish it
            messages = await wait_for_messages(azurite_connection_string, queue)
    finally:
        server.close()
    on_queue = first_occurrences(messages)
    assert [(e["type"], e["data"]["id"]) for e in on_queue] == [("scim.user.created", created.json()["id"])]
    store = TableStore.from_settings(azurite_connection_string, None, prefix)
    try:
        in_feed, _ = await store.changes("default", None, 10, 0.0)
    finally:
        await store.close()
    assert [change.position for change in in_feed] == [on_queue[0]["id"]]


async def wait_for_messages(connection_string: str, queue: str) -> list[list[dict]]:
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while time.monotonic() < deadline:
        messages = await received(connection_string, queue)
        if messages:
            return messages
        await asyncio.sleep(0.5)
    raise AssertionError("the sweep never delivered the event")
