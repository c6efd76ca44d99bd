"""How many storage requests each Entra operation makes, and how many of them one after another, counted on the wire.

In Azure every storage request is a network round trip, and the sequential ones add up to what Entra waits for
(bench/round_trips.py measures the latency; bench/README.md derives the minimum of each operation). These tests pin
both numbers, so that a change that adds a request, or serialises requests that were concurrent, fails here.

The endpoint talks to Azurite through :class:`~tests.storage_traffic.TrafficProxy`, which records each storage
request and holds it :data:`DELAY` seconds: requests sent together overlap and count as one sequential step, a
request sent after another's answer cannot overlap it. The delay is long so that a busy machine cannot make two
requests sent together look sequential; nothing here asserts a duration.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from scim.local import azurite
from scim.messages import ScimResponse
from scim.store.tables import TableStore
from tests.conftest import Client, make_client
from tests.integration.scim_checks import GROUP, USER, patch_body
from tests.storage_traffic import TrafficProxy, sequential, summary

pytestmark = pytest.mark.azurite

DELAY = 0.25
GROUPS_OF_MEMBER = 50
BATCH = 100


@pytest.fixture(scope="module")
def proxy(azurite_connection_string: str) -> Iterator[TrafficProxy]:
    port = urlsplit(azurite_connection_string.split("TableEndpoint=")[1]).port
    assert port is not None
    with TrafficProxy(port) as traffic:
        yield traffic


@pytest.fixture(scope="module")
async def proxied_store(proxy: TrafficProxy) -> AsyncIterator[TableStore]:
    store = TableStore.from_settings(azurite.connection_string(proxy.port), None, "test")
    yield store
    await store.close()


@dataclass
class World:
    """A tenant seeded without delay: users in no group and in 50 groups, a 100-member group, empty groups."""

    client: Client
    loner: str
    joiner: str
    pool: list[str]
    big: str
    empty: str
    full: str
    doomed_alone: str
    doomed_member: str


async def _user(client: Client, name: str) -> str:
    return str((await client.create_user(name, displayName=name.split("@")[0]))["id"])


async def _group(client: Client, name: str, members: list[str]) -> str:
    body = {"schemas": [GROUP], "displayName": name, "members": [{"value": m} for m in members]}
    response = await client.call("POST", "Groups", body)
    assert response.status == 201, response.document
    assert response.document is not None
    return str(response.document["id"])


@pytest.fixture(scope="module")
async def world(proxied_store: TableStore, proxy: TrafficProxy) -> World:
    proxy.delay = 0
    client = make_client(proxied_store)
    loner, joiner, doomed_alone, doomed_member = [
        await _user(client, f"{name}@example.com") for name in ("loner", "joiner", "gone", "gone.member")
    ]
    pool = list(await asyncio.gather(*(_user(client, f"pool{i:03d}@example.com") for i in range(BATCH))))
    for i in range(GROUPS_OF_MEMBER):
        await _group(client, f"Many {i:02d}", [joiner, doomed_member])
    big = await _group(client, "Big", pool)
    empty = await _group(client, "Empty", [])
    full = await _group(client, "Full", pool)
    return World(client, loner, joiner, pool, big, empty, full, doomed_alone, doomed_member)


async def count(proxy: TrafficProxy, call: Awaitable[ScimResponse], status: int) -> dict[str, Any]:
    """The storage traffic of one request: how many requests, how many sequential, of which kinds."""
    proxy.delay = DELAY
    try:
        with proxy.recording() as calls:
            response = await call
    finally:
        proxy.delay = 0
    assert response.status == status, response.document
    return {**summary(calls), "sequential": sequential(calls)}


def _match(name: str) -> dict[str, str]:
    return {"filter": f'userName eq "{name}"'}


Case = tuple[str, Callable[[World], Awaitable[ScimResponse]], int, int, int]
CASES: list[Case] = [
    ("userName match, 0 groups", lambda w: w.client.call("GET", "Users", query=_match("loner@example.com")), 200, 3, 3),
    (
        "userName match, 50 groups",
        lambda w: w.client.call("GET", "Users", query=_match("joiner@example.com")),
        200,
        53,
        4,
    ),
    ("GET user, 0 groups", lambda w: w.client.call("GET", f"Users/{w.loner}"), 200, 2, 2),
    ("GET user, 50 groups", lambda w: w.client.call("GET", f"Users/{w.joiner}"), 200, 52, 3),
    (
        "POST user",
        lambda w: w.client.call("POST", "Users", {"schemas": [USER], "userName": "new@example.com"}),
        201,
        1,
        1,
    ),
    (
        "PATCH user active False",
        lambda w: w.client.call(
            "PATCH", f"Users/{w.loner}", patch_body({"op": "Replace", "path": "active", "value": "False"})
        ),
        200,
        3,
        3,
    ),
    (
        "PUT user",
        lambda w: w.client.call("PUT", f"Users/{w.loner}", {"schemas": [USER], "userName": "loner@example.com"}),
        200,
        3,
        3,
    ),
    ("DELETE user, 0 groups", lambda w: w.client.call("DELETE", f"Users/{w.doomed_alone}"), 204, 4, 4),
    ("DELETE user, 50 groups", lambda w: w.client.call("DELETE", f"Users/{w.doomed_member}"), 204, 5, 5),
    (
        "POST group, 100 members",
        lambda w: w.client.call(
            "POST", "Groups", {"schemas": [GROUP], "displayName": "New", "members": [{"value": m} for m in w.pool]}
        ),
        201,
        103,
        7,
    ),
    (
        "PATCH group adding 100",
        lambda w: w.client.call(
            "PATCH", f"Groups/{w.empty}", patch_body({"op": "Add", "path": "members", "value": _values(w.pool)})
        ),
        204,
        104,
        8,
    ),
    (
        "PATCH group removing 100",
        lambda w: w.client.call(
            "PATCH", f"Groups/{w.full}", patch_body({"op": "Remove", "path": "members", "value": _values(w.pool)})
        ),
        204,
        4,
        4,
    ),
    (
        "membership check",
        lambda w: w.client.call(
            "GET",
            "Groups",
            query={"filter": f'id eq "{w.big}" and members[value eq "{w.pool[0]}"]', "excludedAttributes": "members"},
        ),
        200,
        2,
        2,
    ),
    (
        "GET group without members",
        lambda w: w.client.call("GET", f"Groups/{w.big}", query={"excludedAttributes": "members"}),
        200,
        1,
        1,
    ),
]


def _values(ids: list[str]) -> list[dict[str, str]]:
    return [{"value": i} for i in ids]


@pytest.mark.parametrize(("name", "request_of", "status", "requests", "in_sequence"), CASES, ids=[c[0] for c in CASES])
async def test_storage_round_trips(
    proxy: TrafficProxy,
    world: World,
    name: str,
    request_of: Callable[[World], Awaitable[ScimResponse]],
    status: int,
    requests: int,
    in_sequence: int,
):
    traffic = await count(proxy, request_of(world), status)
    assert (traffic["requests"], traffic["sequential"]) == (requests, in_sequence), traffic
