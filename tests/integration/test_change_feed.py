"""The change feed against real Azurite: every Entra operation records exactly the expected events, in order, in
the change's own transaction; nothing for a request that changes nothing; the pull feed pages, resumes, isolates
tenants, and a follower racing two writers sees every event exactly once, including one that commits late."""

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.data.tables import UpdateMode

from scim.dispatch import ScimEndpoint
from scim.local import azurite
from scim.settings import Settings
from scim.store import keys, outbox
from scim.store.event_queue import EventQueue
from scim.store.tables import TableStore
from tests.conftest import Client
from tests.fault_proxy import FaultProxy
from tests.storage_traffic import TrafficProxy, sequential

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def feed_client(
    store: TableStore,
    tenant: str | None = None,
    snapshots: bool = False,
    on: bool = True,
    queue: EventQueue | None = None,
    publish_delay: float = 0.0,
    queued: bool = True,
) -> Client:
    """A tenant of its own with the feed read at once (no settle time); with ``queue``, its publisher sends there.
    ``queued`` (a queue is configured, as by default): its events are written with pending rows, for a publisher
    here or in another instance."""
    tenant = tenant or f"t{secrets.token_hex(6)}"
    token = secrets.token_urlsafe(24)
    settings = Settings(
        storage_connection_string="unused",
        storage_table_uri=None,
        bearer_tokens=((tenant, token),),
        change_feed=on,
        change_feed_snapshots=snapshots,
        change_feed_settle_seconds=0.0,
        change_feed_publish_delay_seconds=publish_delay,
        change_feed_queue="scim-changes" if queued else "",
    )
    return Client(ScimEndpoint(settings, store, queue), token)


def tenant_of(client: Client) -> str:
    return client.endpoint.settings.bearer_tokens[0][0]


async def events(client: Client, after: str | None = None) -> list[dict[str, Any]]:
    """Every event after ``after``, through the HTTP feed, page by page."""
    found: list[dict[str, Any]] = []
    while True:
        query = {"limit": "7", **({"after": after} if after else {})}
        response = await client.call("GET", "Changes", query=query)
        assert response.status == 200, response.document
        found += response.document["events"]
        if after == response.document["next"] or not response.document["events"]:
            return found
        after = response.document["next"]


def summary(found: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (e["type"], e["subject"], tuple(e["data"].get("members", e["data"].get("changedAttributes", ()))))
        for e in found
    ]


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


@pytest.fixture
def client(store: TableStore) -> Client:
    return feed_client(store)


async def test_user_lifecycle_records_each_change_once(client: Client):
    user = await client.create_user("ada@example.com", displayName="Ada")
    url = f"Users/{user['id']}"
    assert (
        await client.call("PATCH", url, patch({"op": "replace", "path": "displayName", "value": "Ada L"}))
    ).status == 200
    assert (
        await client.call("PATCH", url, patch({"op": "replace", "path": "displayName", "value": "Ada L"}))
    ).status == 200
    await client.call("PATCH", url, patch({"op": "Replace", "path": "active", "value": "False"}))
    await client.call("PATCH", url, patch({"op": "Replace", "path": "active", "value": "False"}))
    await client.call("PATCH", url, patch({"op": "Replace", "path": "active", "value": "True"}))
    same = {"schemas": [USER], "userName": "ada@example.com", "displayName": "Ada L", "active": True}
    assert (await client.call("PUT", url, same)).status == 200
    assert (await client.call("DELETE", url)).status == 204
    assert (await client.call("DELETE", url)).status == 404
    subject = f"Users/{user['id']}"
    assert summary(await events(client)) == [
        ("scim.user.created", subject, ()),
        ("scim.user.updated", subject, ("displayName",)),
        ("scim.user.deactivated", subject, ("active",)),
        ("scim.user.reactivated", subject, ("active",)),
        ("scim.user.deleted", subject, ()),
    ]


async def test_events_are_cloudevents_with_increasing_positions(client: Client):
    user = await client.create_user("grace@example.com")
    await client.call("PATCH", f"Users/{user['id']}", patch({"op": "add", "path": "title", "value": "Admiral"}))
    created, updated = await events(client)
    tenant = tenant_of(client)
    assert created["specversion"] == "1.0" and created["datacontenttype"] == "application/json"
    assert created["source"] == f"/scim/v2/tenants/{tenant}" and created["tenant"] == tenant
    assert created["id"] == created["position"] < updated["position"]
    assert created["data"] == {"id": user["id"], "resourceType": "User", "lastModified": user["meta"]["lastModified"]}
    assert "snapshot" not in updated["data"] and updated["data"]["lastModified"] >= created["data"]["lastModified"]
    assert created["time"].endswith("Z")


async def test_snapshots_carry_the_resource_after_the_change(store: TableStore):
    client = feed_client(store, snapshots=True)
    user = await client.create_user("linus@example.com", displayName="Linus")
    await client.call("PATCH", f"Users/{user['id']}", patch({"op": "replace", "path": "displayName", "value": "L"}))
    created, updated = await events(client)
    assert created["data"]["snapshot"]["displayName"] == "Linus"
    assert updated["data"]["snapshot"]["displayName"] == "L" and updated["data"]["snapshot"]["id"] == user["id"]


async def test_group_membership_events_name_exactly_the_rows_written(client: Client):
    u1, u2, u3 = [(await client.create_user(f"m{i}@example.com"))["id"] for i in range(3)]
    body = {"schemas": [GROUP], "displayName": "Ops", "members": [{"value": u1}, {"value": u2}]}
    group = (await client.call("POST", "Groups", body)).document
    url, subject = f"Groups/{group['id']}", f"Groups/{group['id']}"
    start = (await events(client))[2]["position"]  # after the three user.created
    add = patch({"op": "Add", "path": "members", "value": [{"value": u2}, {"value": u3}]})
    assert (await client.call("PATCH", url, add)).status == 204
    assert (await client.call("PATCH", url, add)).status == 204  # Entra's re-send
    remove = patch({"op": "remove", "path": f'members[value eq "{u1}"]'})
    assert (await client.call("PATCH", url, remove)).status == 204
    assert (await client.call("PATCH", url, remove)).status == 204
    rename = patch({"op": "Replace", "path": "displayName", "value": "Operations"})
    await client.call("PATCH", url, rename)
    await client.call("PATCH", url, rename)
    await client.call("DELETE", f"Users/{u3}")
    await client.call("DELETE", url)
    found = summary(await events(client, start))
    assert found[0] == ("scim.group.created", subject, ())
    assert sorted(found[1][2]) == sorted([u1, u2]) and found[1][:2] == ("scim.group.members.added", subject)
    assert found[2:] == [
        ("scim.group.members.added", subject, (u3,)),
        ("scim.group.members.removed", subject, (u1,)),
        ("scim.group.updated", subject, ("displayName",)),
        ("scim.group.members.removed", subject, (u3,)),
        ("scim.user.deleted", f"Users/{u3}", ()),
        ("scim.group.members.removed", subject, (u2,)),
        ("scim.group.deleted", subject, ()),
    ]


async def test_replacing_the_member_list_records_only_the_difference(client: Client):
    u1, u2, u3 = [(await client.create_user(f"r{i}@example.com"))["id"] for i in range(3)]
    body = {"schemas": [GROUP], "displayName": "Team", "members": [{"value": u1}, {"value": u2}]}
    group = (await client.call("POST", "Groups", body)).document
    url, subject = f"Groups/{group['id']}", f"Groups/{group['id']}"
    start = (await events(client))[-1]["position"]
    replace = patch({"op": "replace", "path": "members", "value": [{"value": u2}, {"value": u3}]})
    assert (await client.call("PATCH", url, replace)).status == 204
    assert (await client.call("PATCH", url, replace)).status == 204  # re-sent: the same list, nothing changes
    legacy = patch({"op": "Remove", "path": "members", "value": [{"$ref": None, "value": u2}]})
    assert (await client.call("PATCH", url, legacy)).status == 204
    put = {"schemas": [GROUP], "displayName": "Team", "members": [{"value": u1}, {"value": u3}]}
    assert (await client.call("PUT", url, put)).status == 200
    assert summary(await events(client, start)) == [
        ("scim.group.members.removed", subject, (u1,)),
        ("scim.group.members.added", subject, (u3,)),
        ("scim.group.members.removed", subject, (u2,)),
        ("scim.group.members.added", subject, (u1,)),
    ]


async def test_a_hundred_members_are_three_transactions_each_with_its_event(client: Client):
    ids = [(await client.create_user(f"h{i}@example.com"))["id"] for i in range(100)]
    group = (await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": "Big"})).document
    start = (await events(client))[-1]["position"]
    add = patch({"op": "Add", "path": "members", "value": [{"value": i} for i in ids]})
    assert (await client.call("PATCH", f"Groups/{group['id']}", add)).status == 204
    found = await events(client, start)
    assert [e["type"] for e in found] == ["scim.group.members.added"] * 3
    assert sorted(m for e in found for m in e["data"]["members"]) == sorted(ids)
    assert [len(e["data"]["members"]) for e in found] == [49, 49, 2]  # 49 edges and the event fill 99 of 100


async def test_a_failed_write_records_nothing(client: Client):
    await client.create_user("taken@example.com")
    before = await events(client)
    response = await client.call("POST", "Users", {"schemas": [USER], "userName": "TAKEN@example.com"})
    assert response.status == 409
    body = {"schemas": [GROUP], "displayName": "G", "members": [{"value": "f" * 32}]}
    assert (await client.call("POST", "Groups", body)).status == 400
    assert await events(client) == before


async def test_a_change_is_stamped_after_one_an_instance_with_a_fast_clock_recorded(
    client: Client, store: TableStore, monkeypatch: pytest.MonkeyPatch
):
    """Another instance, its clock 3 s ahead of ours, recorded the user's last change: our clock alone would stamp
    the next change before it and a consumer ordering by position would undo the deactivation. (The process's
    stamps are put back afterwards: later tests read the feed with no settle time.)"""
    monkeypatch.setattr(outbox, "_last_stamp", outbox._last_stamp)
    user = await client.create_user("fast@example.com")
    partition = keys.partition_key(tenant_of(client), "User")
    row_key = keys.resource_row_key(user["id"])
    table = await store.table_client()
    ahead = f"{int((time.time() + 3) * 1_000_000):016d}0badc0de"
    await table.update_entity({"PartitionKey": partition, "RowKey": row_key, "event": ahead}, mode=UpdateMode.MERGE)
    url = f"Users/{user['id']}"
    assert (await client.call("PATCH", url, patch({"op": "replace", "path": "active", "value": False}))).status == 200
    assert (await client.call("PATCH", url, patch({"op": "replace", "path": "title", "value": "x"}))).status == 200
    rows = [
        r async for r in store.range(partition, keys.EVENT_PREFIX, keys.prefix_upper_bound(keys.EVENT_PREFIX), None)
    ]
    positions = [row["RowKey"][len(keys.EVENT_PREFIX) :] for row in rows]
    stamped_after = [position for position in positions if position > ahead]
    assert [row["type"] for row in rows][-2:] == ["scim.user.deactivated", "scim.user.updated"]
    assert len(stamped_after) == 2
    assert (await store.point_read(partition, row_key))["event"] == positions[-1]


async def test_feed_off_writes_no_event_rows_and_has_no_endpoint(store: TableStore):
    client = feed_client(store, on=False)
    user = await client.create_user("off@example.com")
    await client.call("PATCH", f"Users/{user['id']}", patch({"op": "replace", "path": "displayName", "value": "x"}))
    assert (await client.call("GET", "Changes")).status == 404
    partition = keys.partition_key(tenant_of(client), "User")
    rows = [
        r async for r in store.range(partition, keys.EVENT_PREFIX, keys.prefix_upper_bound(keys.EVENT_PREFIX), None)
    ]
    assert rows == []


async def test_tenants_see_only_their_own_feed(store: TableStore):
    alice, bob = feed_client(store), feed_client(store)
    await alice.create_user("a@example.com")
    await bob.create_user("b@example.com")
    await bob.create_user("c@example.com")
    assert [e["tenant"] for e in await events(alice)] == [tenant_of(alice)]
    assert len(await events(bob)) == 2 and all(e["tenant"] == tenant_of(bob) for e in await events(bob))


async def test_feed_parameters_are_checked(client: Client):
    for query in ({"after": "'; drop"}, {"limit": "0"}, {"limit": "1001"}, {"limit": "x"}):
        response = await client.call("GET", "Changes", query=query)
        assert (response.status, response.document["scimType"]) == (400, "invalidValue"), query
    assert (await client.call("POST", "Changes", {})).status == 405


async def test_pages_resume_without_repeating_or_skipping(client: Client):
    for i in range(10):
        await client.create_user(f"p{i}@example.com")
    tenant = tenant_of(client)
    store = client.endpoint.store
    seen: list[str] = []
    after = None
    for _ in range(5):
        found, after = await store.changes(tenant, after, 3, 0.0)
        seen += [change.position for change in found]
    assert len(seen) == 10 == len(set(seen)) and seen == sorted(seen)


def aged_position(days: float) -> str:
    return outbox.horizon(days * 86_400) + "0a1b2c3d"


async def test_a_position_older_than_the_retention_is_gone_not_a_shorter_feed(client: Client):
    await client.create_user("kept@example.com")
    recent = await client.call("GET", "Changes", query={"after": aged_position(6)})
    assert recent.status == 200 and [e["type"] for e in recent.document["events"]] == ["scim.user.created"]
    gone = await client.call("GET", "Changes", query={"after": aged_position(8)})
    assert gone.status == 410, gone.document
    assert gone.document["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert gone.document["status"] == "410" and "SCIM_CHANGE_FEED_RETENTION_DAYS = 7" in gone.document["detail"]


# Racing writers and a late commit ---------------------------------------------------------------------------------

SETTLE = 4.0
"""The race's reader lag: the writers' commit window (1 s) plus far more than an Azurite attempt takes here."""


@pytest.fixture(scope="module")
def module_proxy(azurite_connection_string: str) -> Iterator[FaultProxy]:
    table_endpoint = dict(part.split("=", 1) for part in azurite_connection_string.split(";") if part)["TableEndpoint"]
    port = urlsplit(table_endpoint).port
    assert port is not None
    with FaultProxy(port) as proxy:
        yield proxy


@pytest.fixture
async def slow_store(module_proxy: FaultProxy) -> AsyncIterator[TableStore]:
    """The session's table reached through the proxy: a second instance whose writes can be held in flight."""
    module_proxy.heal()
    store = TableStore.from_settings(azurite.connection_string(module_proxy.port), None, "test")
    yield store
    module_proxy.heal()
    await store.close()


async def follow(store: TableStore, tenant: str, settle: float, until: asyncio.Event) -> list[str]:
    """Follow the feed the way a consumer does: resume from each page's position, until told to stop and caught up."""
    seen: list[str] = []
    after: str | None = None
    while True:
        done = until.is_set()
        found, after = await store.changes(tenant, after, 50, settle)
        seen += [change.resource_id for change in found]
        if done and not found:
            return seen
        if not found:
            await asyncio.sleep(0.2)


async def test_a_follower_racing_two_writers_sees_every_event_once(store: TableStore, slow_store: TableStore):
    tenant = f"t{secrets.token_hex(6)}"
    store.commit_window = slow_store.commit_window = 1.0
    try:
        writers = [feed_client(store, tenant), feed_client(slow_store, tenant)]
        stop = asyncio.Event()
        reader = asyncio.create_task(follow(store, tenant, SETTLE, stop))

        async def write(client: Client, name: str) -> list[str]:
            return [(await client.create_user(f"{name}{i}@example.com"))["id"] for i in range(25)]

        created = await asyncio.gather(write(writers[0], "a"), write(writers[1], "b"))
        await asyncio.sleep(SETTLE)
        stop.set()
        seen = await reader
    finally:
        store.commit_window = slow_store.commit_window = 15.0
    assert sorted(seen) == sorted(created[0] + created[1])
    assert len(seen) == len(set(seen)) == 50


async def test_an_event_that_commits_late_is_not_skipped(
    store: TableStore, slow_store: TableStore, module_proxy: FaultProxy
):
    """Writer B stamps its event, then its request is held 2 s on the wire; writer A commits a later position
    meanwhile. A reader without a horizon passes B's position and never sees it; the feed's reader does."""
    tenant = f"t{secrets.token_hex(6)}"
    fast, slow = feed_client(store, tenant), feed_client(slow_store, tenant)
    await slow.create_user("warm@example.com")  # the slow instance's table is known before the hold
    start = (await store.changes(tenant, None, 10, 0.0))[1]
    module_proxy.set_mode("delay", seconds=2.0)
    late = asyncio.create_task(slow.create_user("late@example.com"))
    await asyncio.sleep(0.5)
    early = await fast.create_user("early@example.com")
    naive, naive_next = await store.changes(tenant, start, 10, 0.0)  # no horizon: what a naive reader does
    assert [c.resource_id for c in naive] == [early["id"]]
    held = await late
    missed, _ = await store.changes(tenant, naive_next, 10, 0.0)
    assert missed == []  # the naive reader skipped the late event for good
    await asyncio.sleep(3.0)
    settled, _ = await store.changes(tenant, start, 10, 2.5)
    assert [c.resource_id for c in settled] == [held["id"], early["id"]]


async def test_a_write_past_its_commit_window_answers_503_and_records_nothing(
    store: TableStore, slow_store: TableStore, module_proxy: FaultProxy
):
    tenant = f"t{secrets.token_hex(6)}"
    slow = feed_client(slow_store, tenant)
    await slow.create_user("warm2@example.com")
    slow_store.commit_window = 0.3
    try:
        module_proxy.set_mode("drop")  # every attempt fails until the window has closed
        response = await slow.call("POST", "Users", {"schemas": [USER], "userName": "never@example.com"})
    finally:
        slow_store.commit_window = 15.0
        module_proxy.heal()
    assert response.status == 503
    found, _ = await store.changes(tenant, None, 10, 0.0)
    assert [c.type for c in found] == ["scim.user.created"]
    listed = await feed_client(store, tenant).call("GET", "Users", query={"filter": 'userName eq "never@example.com"'})
    assert listed.document["totalResults"] == 0


def run_cli(connection_string: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCIM_STORAGE_CONNECTION_STRING": connection_string, "SCIM_TABLE_PREFIX": "test"}
    command = [sys.executable, "-m", "scim", "changes", *arguments]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603


async def test_the_changes_command_prints_and_resumes(client: Client, azurite_connection_string: str):
    first = await client.create_user("cli1@example.com")
    tenant = tenant_of(client)
    done = await asyncio.to_thread(run_cli, azurite_connection_string, "--tenant", tenant, "--json", "--settle", "0")
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(e["type"], e["data"]["id"]) for e in printed] == [("scim.user.created", first["id"])]
    resume = done.stderr.strip().removeprefix("next: ")
    second = await client.create_user("cli2@example.com")
    again = await asyncio.to_thread(
        run_cli, azurite_connection_string, "--tenant", tenant, "--after", resume, "--settle", "0"
    )
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert len(lines) == 2 and f"scim.user.created Users/{second['id']}" in lines[0] and lines[1].startswith("next: ")
    settled = await asyncio.to_thread(run_cli, azurite_connection_string, "--tenant", tenant)
    assert settled.stdout.splitlines()[0].startswith("next: ")  # nothing older than the default settle yet
    bad = await asyncio.to_thread(run_cli, azurite_connection_string, "--tenant", tenant, "--after", "x'")
    assert bad.returncode == 2 and "--after" in bad.stderr
    expired = await asyncio.to_thread(
        run_cli, azurite_connection_string, "--tenant", tenant, "--after", aged_position(8), "--settle", "0"
    )
    assert expired.returncode == 3 and "retention" in expired.stderr and not expired.stdout


# Cost: the feed adds no sequential storage round trip --------------------------------------------------------------

DELAY, FAN_OUT_DELAY = 0.25, 1.0
"""As in tests/integration/test_round_trips.py: long enough that requests sent together overlap on a loaded machine,
longer for requests that send 100 calls at once."""


@asynccontextmanager
async def proxied_store(azurite_connection_string: str) -> AsyncIterator[tuple[TrafficProxy, TableStore]]:
    """A store of its own behind a fresh proxy, its pool of connections opened, as a warm instance has it."""
    port = urlsplit(azurite_connection_string.split("TableEndpoint=")[1]).port
    assert port is not None
    with TrafficProxy(port) as proxy:
        store = TableStore.from_settings(azurite.connection_string(proxy.port), None, "test")
        try:
            await asyncio.gather(*(store.point_read("warm", "warm") for _ in range(100)))
            yield proxy, store
        finally:
            await store.close()


async def round_trips(
    traffic: TrafficProxy, client: Client, method: str, path: str, body: Any = None, delay: float = DELAY
) -> int:
    traffic.delay = delay
    try:
        with traffic.recording() as calls:
            response = await client.call(method, path, body)
    finally:
        traffic.delay = 0
    assert response.status < 300, (method, path, response.document)
    return sequential(calls)


async def test_the_feed_adds_no_sequential_round_trip(azurite_connection_string: str):
    """Each Entra operation, once with the feed off and once on, on the same shape of data."""
    found: dict[bool, list[int]] = {}
    for on in (False, True):
        async with proxied_store(azurite_connection_string) as (traffic, store):
            client = feed_client(store, on=on)
            pool = [(await client.create_user(f"pool{i}@example.com"))["id"] for i in range(100)]
            leaver = (await client.create_user("leaver@example.com"))["id"]
            groups = []
            for i in range(50):
                body = {"schemas": [GROUP], "displayName": f"G{i}", "members": [{"value": leaver}]}
                groups.append((await client.call("POST", "Groups", body)).document["id"])
            members = [{"value": m} for m in pool]
            add, remove = ({"op": op, "path": "members", "value": members} for op in ("Add", "Remove"))
            steps = [
                ("POST", "Users", {"schemas": [USER], "userName": "new@example.com"}),
                ("PATCH", f"Users/{pool[0]}", patch({"op": "Replace", "path": "active", "value": "False"})),
                ("PUT", f"Users/{pool[1]}", {"schemas": [USER], "userName": "pool1@example.com", "title": "x"}),
                ("POST", "Groups", {"schemas": [GROUP], "displayName": "Big", "members": members}, FAN_OUT_DELAY),
                ("PATCH", f"Groups/{groups[0]}", patch(add), FAN_OUT_DELAY),
                ("PATCH", f"Groups/{groups[0]}", patch(remove), FAN_OUT_DELAY),
                ("DELETE", f"Users/{leaver}", None),
            ]
            found[on] = [await round_trips(traffic, client, *step) for step in steps]
    assert found[True] == found[False], found
