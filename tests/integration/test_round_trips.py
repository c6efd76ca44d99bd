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
FAN_OUT_DELAY = 1.0
"""For requests that send 100 calls at once: issuing them costs the client ~1 ms of CPU each, several times that on
a loaded machine, and the last must still start before the first returns."""
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


async def count(
    proxy: TrafficProxy, call: Awaitable[ScimResponse], status: int, delay: float = DELAY
) -> dict[str, Any]:
    """The storage traffic of one request: how many requests, how many sequential, of which kinds."""
    proxy.delay = delay
    try:
        with proxy.recording() as calls:
            response = await call
    finally:
        proxy.delay = 0
    assert response.status == status, response.document
    return {**summary(calls), "sequential": sequential(calls)}


def _match(name: str) -> dict[str, str]:
    return {"filter": f'userName eq "{name}"'}


def _members(op: str, ids: list[str]) -> dict[str, Any]:
    return patch_body({"op": op, "path": "members", "value": [{"value": i} for i in ids]})


REQUESTS: dict[str, Callable[[World], tuple[str, str, Any, dict[str, str]]]] = {
    "userName match, 0 groups": lambda w: ("GET", "Users", None, _match("loner@example.com")),
    "userName match, 50 groups": lambda w: ("GET", "Users", None, _match("joiner@example.com")),
    "GET user, 0 groups": lambda w: ("GET", f"Users/{w.loner}", None, {}),
    "GET user, 50 groups": lambda w: ("GET", f"Users/{w.joiner}", None, {}),
    "POST user": lambda w: ("POST", "Users", {"schemas": [USER], "userName": "new@example.com"}, {}),
    "PATCH user active False": lambda w: (
        "PATCH",
        f"Users/{w.loner}",
        patch_body({"op": "Replace", "path": "active", "value": "False"}),
        {},
    ),
    "PUT user": lambda w: ("PUT", f"Users/{w.loner}", {"schemas": [USER], "userName": "loner@example.com"}, {}),
    "DELETE user, 0 groups": lambda w: ("DELETE", f"Users/{w.doomed_alone}", None, {}),
    "DELETE user, 50 groups": lambda w: ("DELETE", f"Users/{w.doomed_member}", None, {}),
    "POST group, 100 members": lambda w: (
        "POST",
        "Groups",
        {"schemas": [GROUP], "displayName": "New", "members": [{"value": m} for m in w.pool]},
        {},
    ),
    "PATCH group adding 100": lambda w: ("PATCH", f"Groups/{w.empty}", _members("Add", w.pool), {}),
    "PATCH group removing 100": lambda w: ("PATCH", f"Groups/{w.full}", _members("Remove", w.pool), {}),
    "membership check": lambda w: (
        "GET",
        "Groups",
        None,
        {"filter": f'id eq "{w.big}" and members[value eq "{w.pool[0]}"]', "excludedAttributes": "members"},
    ),
    "GET group without members": lambda w: ("GET", f"Groups/{w.big}", None, {"excludedAttributes": "members"}),
}

EXPECTED: dict[str, tuple[int, int, int]] = {
    # operation: (status, storage requests, sequential round trips); bench/README.md derives each minimum
    "userName match, 0 groups": (200, 3, 2),  # index row, then the user row beside its membership range
    "userName match, 50 groups": (200, 3, 2),  # the same: groups come from one range read, without display
    "GET user, 0 groups": (200, 2, 1),
    "GET user, 50 groups": (200, 2, 1),
    "POST user": (201, 1, 1),
    "PATCH user active False": (200, 3, 2),  # read beside the membership range, then the write
    "PUT user": (200, 3, 2),
    "DELETE user, 0 groups": (204, 4, 3),  # read + range, delete, range again (a membership that raced in)
    "DELETE user, 50 groups": (204, 5, 4),  # ... and the 50 memberships (100 rows) removed before the user
    "POST group, 100 members": (201, 103, 3),  # 100 member reads at once, the group, 2 membership transactions
    # the group read and 100 member reads at once (101 calls: the store's pool holds more than aiohttp's 100), then
    # 2 membership transactions beside the group's lastModified
    "PATCH group adding 100": (204, 104, 2),
    "PATCH group removing 100": (204, 4, 2),
    "membership check": (200, 2, 1),  # the group row beside the membership row
    "GET group without members": (200, 1, 1),
}


@pytest.mark.parametrize("name", list(EXPECTED))
async def test_storage_round_trips(proxy: TrafficProxy, proxied_store: TableStore, world: World, name: str):
    method, path, body, query = REQUESTS[name](world)
    status, requests, in_sequence = EXPECTED[name]
    await warm_connections(proxy, proxied_store)
    delay = FAN_OUT_DELAY if requests > BATCH else DELAY
    traffic = await count(proxy, world.client.call(method, path, body, query), status, delay)
    assert (traffic["requests"], traffic["sequential"]) == (requests, in_sequence), traffic


async def test_requests_per_lookup_do_not_grow_with_the_users_groups(proxy: TrafficProxy, world: World):
    alone = await count(proxy, world.client.call("GET", "Users", query=_match("loner@example.com")), 200)
    member = await count(proxy, world.client.call("GET", "Users", query=_match("joiner@example.com")), 200)
    assert alone["requests"] == member["requests"], (alone, member)
    response = await world.client.call("GET", f"Users/{world.joiner}")
    assert response.document is not None
    assert len(response.document["groups"]) == GROUPS_OF_MEMBER


async def warm_connections(proxy: TrafficProxy, store: TableStore) -> None:
    """Open the client's pool of connections (100), as a warm instance has it: opening a connection is not a storage
    request, but 100 opened at once can take longer than the delay on a busy machine."""
    proxy.delay = DELAY / 5
    try:
        await asyncio.gather(*(store.point_read("warm", "warm") for _ in range(100)))
    finally:
        proxy.delay = 0
