"""The change feed's queue publisher against real Azurite (tables and queues): every committed event reaches the
queue at least once, none is invented, each resource's events are enqueued in position order, through kicks,
racing writers and publishers, a commit that lands late, and storage faults on the table and the queue."""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue.aio import QueueClient

from scim import change_messages
from scim.local import azurite
from scim.publisher import Publisher
from scim.store import keys, outbox, publishing
from scim.store.contract import StoreUnavailable
from scim.store.event_queue import API_VERSION, EventQueue
from scim.store.tables import TableStore
from tests.conftest import Client
from tests.fault_proxy import FaultProxy
from tests.integration.test_change_feed import GROUP, USER, events, feed_client, patch, proxied_store, tenant_of

pytestmark = pytest.mark.azurite


def endpoint_ports(connection_string: str) -> tuple[int, int]:
    parts = dict(part.split("=", 1) for part in connection_string.split(";") if part)
    table, queue = urlsplit(parts["TableEndpoint"]).port, urlsplit(parts["QueueEndpoint"]).port
    assert table and queue
    return table, queue


@pytest.fixture
def queue_name() -> str:
    return f"q{secrets.token_hex(8)}"


@pytest.fixture
async def event_queue(azurite_connection_string: str, queue_name: str) -> AsyncIterator[EventQueue]:
    queue = EventQueue.from_settings(azurite_connection_string, None, queue_name)
    yield queue
    await queue.close()


def publishing_client(
    store: TableStore, queue: EventQueue, tenant: str | None = None, snapshots: bool = False, delay: float = 0.0
) -> Client:
    return feed_client(store, tenant, snapshots, queue=queue, publish_delay=delay)


async def bodies(connection_string: str, name: str) -> list[str]:
    """Every message body on the queue as stored, in the order the queue hands them out (each taken off it)."""
    client = QueueClient.from_connection_string(connection_string, name, api_version=API_VERSION)
    try:
        return [
            message.content async for message in client.receive_messages(messages_per_page=32, visibility_timeout=600)
        ]
    except ResourceNotFoundError:  # a queue never created: nothing was sent
        return []
    finally:
        await client.close()


async def received(connection_string: str, name: str) -> list[list[dict[str, Any]]]:
    """Every message on the queue, each decoded to its events."""
    return [change_messages.decode(body) for body in await bodies(connection_string, name)]


def first_occurrences(messages: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The queue's events with re-sends dropped (what a consumer that de-duplicates by id keeps), in queue order."""
    seen: set[str] = set()
    kept = []
    for event in (event for message in messages for event in message):
        if event["id"] not in seen:
            seen.add(event["id"])
            kept.append(event)
    return kept


def assert_in_order_per_resource(found: list[dict[str, Any]]) -> None:
    by_subject: dict[str, list[str]] = {}
    for event in found:
        by_subject.setdefault(event["subject"], []).append(event["position"])
    for subject, positions in by_subject.items():
        assert positions == sorted(positions), subject


async def entra_sequence(client: Client) -> None:
    """Every kind of Entra write, and the re-sends and no-ops that must publish nothing."""
    ada = await client.create_user("ada@example.com", displayName="Ada")
    bob = await client.create_user("bob@example.com")
    url = f"Users/{ada['id']}"
    rename = patch({"op": "replace", "path": "displayName", "value": "Ada L"})
    await client.call("PATCH", url, rename)
    await client.call("PATCH", url, rename)
    await client.call("PATCH", url, patch({"op": "Replace", "path": "active", "value": "False"}))
    await client.call("PATCH", url, patch({"op": "Replace", "path": "active", "value": "True"}))
    body = {"schemas": [GROUP], "displayName": "Ops", "members": [{"value": ada["id"]}]}
    group = (await client.call("POST", "Groups", body)).document
    add = patch({"op": "Add", "path": "members", "value": [{"value": bob["id"]}]})
    await client.call("PATCH", f"Groups/{group['id']}", add)
    await client.call("PATCH", f"Groups/{group['id']}", add)
    await client.call("PATCH", f"Groups/{group['id']}", patch({"op": "Replace", "path": "displayName", "value": "Op"}))
    put = {"schemas": [USER], "userName": "bob@example.com", "title": "Dr"}
    await client.call("PUT", f"Users/{bob['id']}", put)
    await client.call("PUT", f"Users/{bob['id']}", put)
    await client.call("DELETE", f"Users/{bob['id']}")
    await client.call("DELETE", f"Users/{bob['id']}")
    await client.call("DELETE", f"Groups/{group['id']}")


async def test_every_entra_operation_reaches_the_queue_in_order(
    store: TableStore, event_queue: EventQueue, azurite_connection_string: str, queue_name: str
):
    client = publishing_client(store, event_queue)
    await entra_sequence(client)
    assert client.endpoint.publisher is not None
    await client.endpoint.publisher.idle()
    feed = await events(client)
    messages = await received(azurite_connection_string, queue_name)
    on_queue = first_occurrences(messages)
    assert sorted(e["id"] for e in on_queue) == sorted(e["id"] for e in feed)  # none missing, none invented
    assert {e["id"]: e for e in on_queue} == {e["id"]: e for e in feed}  # the very events the pull feed returns
    assert_in_order_per_resource(on_queue)
    assert [e["type"].removeprefix("scim.") for e in on_queue] == [
        "user.created",
        "user.created",
        "user.updated",
        "user.deactivated",
        "user.reactivated",
        "group.created",
        "group.members.added",
        "group.members.added",
        "group.updated",
        "user.updated",
        "group.members.removed",
        "user.deleted",
        "group.members.removed",
        "group.deleted",
    ]


async def test_requests_that_change_nothing_publish_nothing(
    store: TableStore, event_queue: EventQueue, azurite_connection_string: str, queue_name: str
):
    client = publishing_client(store, event_queue)
    user = await client.create_user("same@example.com", displayName="Same")
    assert client.endpoint.publisher is not None
    await client.endpoint.publisher.idle()
    assert len(first_occurrences(await received(azurite_connection_string, queue_name))) == 1
    url = f"Users/{user['id']}"
    await client.call("PATCH", url, patch({"op": "replace", "path": "displayName", "value": "Same"}))
    await client.call("PUT", url, {"schemas": [USER], "userName": "same@example.com", "displayName": "Same"})
    assert (await client.call("POST", "Users", {"schemas": [USER], "userName": "same@example.com"})).status == 409
    await client.endpoint.publisher.idle()
    report = await client.endpoint.publisher.publish(tenant_of(client))
    assert report.sent == 0 and await received(azurite_connection_string, queue_name) == []


async def test_a_pass_batches_events_into_messages_of_at_most_64_kib(
    store: TableStore, event_queue: EventQueue, azurite_connection_string: str, queue_name: str
):
    """Snapshots of 20,000 characters make each event about 20 KB: two to a message; a non-ASCII one (50 KB of
    UTF-8, more than a message holds) travels without its snapshot, and says so."""
    from tests.integration.test_change_feed import feed_client

    client = feed_client(store, snapshots=True)  # no publisher of its own: only the explicit pass sends
    for i in range(5):
        await client.create_user(f"big{i}@example.com", title="x" * 20_000)
    await client.create_user("wide@example.com", title="é" * 25_000)
    report = await Publisher(store, event_queue).publish(tenant_of(client))
    raw = await bodies(azurite_connection_string, queue_name)
    assert all(len(body) <= change_messages.MAX_MESSAGE_CHARS for body in raw)
    messages = [change_messages.decode(body) for body in raw]
    assert report.sent == 6 and report.messages == len(messages) == 3
    assert [len(message) for message in messages] == [2, 2, 2]
    flat = [event for message in messages for event in message]
    assert [e["position"] for e in flat] == sorted(e["position"] for e in flat)
    assert flat[-1]["data"].get("snapshotOmitted") is True and "snapshot" not in flat[-1]["data"]
    assert all("snapshot" in event["data"] for event in flat[:-1])


async def test_tenants_publish_only_their_own_events(
    store: TableStore, event_queue: EventQueue, azurite_connection_string: str, queue_name: str
):
    alice, bob = publishing_client(store, event_queue), publishing_client(store, event_queue)
    await alice.create_user("a@example.com")
    await bob.create_user("b@example.com")
    await bob.create_user("c@example.com")
    for client in (alice, bob):
        assert client.endpoint.publisher is not None
        await client.endpoint.publisher.idle()
    messages = await received(azurite_connection_string, queue_name)
    assert all(len({event["tenant"] for event in message}) == 1 for message in messages)
    found = first_occurrences(messages)
    assert sorted(e["tenant"] for e in found) == sorted([tenant_of(alice), tenant_of(bob), tenant_of(bob)])
    assert all(e["source"] == f"/scim/v2/tenants/{e['tenant']}" for e in found)


# Faults, late commits, racing writers and publishers ----------------------------------------------------------------

FAULT_BUDGET = 1.5
"""A pass's retry budget under faults: long enough for a retry, short enough for many failing passes."""


@pytest.fixture(scope="module")
def proxies(azurite_connection_string: str) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    """The session's Azurite tables and queues, each behind a proxy that breaks them on demand."""
    table_port, queue_port = endpoint_ports(azurite_connection_string)
    with FaultProxy(table_port) as tables, FaultProxy(queue_port) as queues:
        yield tables, queues


@pytest.fixture
async def faulty(
    proxies: tuple[FaultProxy, FaultProxy], queue_name: str
) -> AsyncIterator[tuple[TableStore, EventQueue]]:
    """A second instance's store and queue client, reaching storage through the proxies."""
    tables, queues = proxies
    tables.heal()
    queues.heal()
    connection_string = azurite.connection_string(tables.port, queue_port=queues.port)
    store = TableStore.from_settings(connection_string, None, "test")
    queue = EventQueue.from_settings(connection_string, None, queue_name)
    yield store, queue
    tables.heal()
    queues.heal()
    await queue.close()
    await store.close()


def writer(store: TableStore, tenant: str | None = None) -> Client:
    """A writing instance without a publisher: its events wait for a pass the test runs."""
    from tests.integration.test_change_feed import feed_client

    return feed_client(store, tenant)


async def publish_until_done(publisher: Publisher, tenant: str, attempts: int = 40) -> int:
    """Passes until one succeeds with nothing held back; how many failed (storage or queue unavailable)."""
    failures = 0
    for _ in range(attempts):
        try:
            report = await publisher.publish(tenant)
        except StoreUnavailable:
            failures += 1
            continue
        if not report.busy and not report.held:
            return failures
    raise AssertionError("the publisher never completed a pass")


async def assert_queue_matches_feed(client: Client, connection_string: str, queue_name: str) -> list[dict[str, Any]]:
    feed = await events(client)
    tenant = tenant_of(client)
    on_queue = [e for e in first_occurrences(await received(connection_string, queue_name)) if e["tenant"] == tenant]
    assert sorted(e["id"] for e in on_queue) == sorted(e["id"] for e in feed)
    assert_in_order_per_resource(on_queue)
    return feed


@pytest.mark.parametrize("target", ["table", "queue"])
@pytest.mark.parametrize(
    "fault",
    [
        {"mode": "drop"},
        {"mode": "reset"},
        {"mode": "cut", "after_bytes": 0},
        {"mode": "respond", "status": 503},
        {"mode": "flaky", "probability": 0.5, "seed": 7},
    ],
    ids=["drop", "reset", "cut", "503", "flaky"],
)
async def test_storage_faults_while_publishing_lose_and_invent_nothing(
    store: TableStore,
    faulty: tuple[TableStore, EventQueue],
    proxies: tuple[FaultProxy, FaultProxy],
    azurite_connection_string: str,
    queue_name: str,
    target: str,
    fault: dict[str, Any],
):
    client = writer(store)
    tenant = tenant_of(client)
    publisher = Publisher(*faulty, budget=FAULT_BUDGET)
    user = await client.create_user("f0@example.com")
    await publish_until_done(publisher, tenant)  # the table and the queue exist: the fault meets the real work
    for i in range(1, 6):
        await client.create_user(f"f{i}@example.com")
    url = f"Users/{user['id']}"
    await client.call("PATCH", url, patch({"op": "replace", "path": "displayName", "value": "F"}))
    proxy = proxies[0] if target == "table" else proxies[1]
    proxy.set_mode(**fault)
    for _ in range(3):
        with pytest.raises(StoreUnavailable) if fault["mode"] != "flaky" else _maybe_failing():
            await publisher.publish(tenant)
    await client.call("DELETE", url)  # a change committed while the publisher was failing
    proxy.heal()
    await publish_until_done(publisher, tenant)
    feed = await assert_queue_matches_feed(client, azurite_connection_string, queue_name)
    assert len(feed) == 8


class _maybe_failing:
    """A flaky pass may fail or succeed; either is fine, what it leaves behind is checked afterwards."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is None or issubclass(kind, StoreUnavailable)


async def test_a_crash_between_send_and_mark_sends_again_and_the_consumer_deduplicates(
    store: TableStore, event_queue: EventQueue, azurite_connection_string: str, queue_name: str
):
    """The state such a crash leaves: messages on the queue, pending rows not deleted. The next pass sends them
    again."""
    client = writer(store)
    tenant = tenant_of(client)
    for i in range(3):
        await client.create_user(f"c{i}@example.com")
    rows, _ = await publishing.pending(store, tenant, "", 100)
    from scim.changes import cloud_event

    for message in change_messages.encode([cloud_event(tenant, row.change) for row in rows]):
        await event_queue.send(message)  # sent; the process "dies" before marking
    report = await Publisher(store, event_queue).publish(tenant)
    assert report.sent == 3
    everything = [e for message in await received(azurite_connection_string, queue_name) for e in message]
    assert len(everything) == 6 and len(first_occurrences([everything])) == 3
    again = await Publisher(store, event_queue).publish(tenant)
    assert again.sent == 0  # their pending rows are gone now: never sent a third time
    assert await rows_of(store, tenant, keys.PENDING_PREFIX) == []


async def test_two_publishers_racing_send_each_event_once(
    store: TableStore,
    faulty: tuple[TableStore, EventQueue],
    event_queue: EventQueue,
    azurite_connection_string: str,
    queue_name: str,
):
    client = writer(store)
    tenant = tenant_of(client)
    for i in range(30):
        await client.create_user(f"r{i}@example.com")
    first, second = Publisher(store, event_queue), Publisher(*faulty)
    reports = await asyncio.gather(first.publish(tenant), second.publish(tenant))
    assert sum(report.sent for report in reports) == 30
    everything = [e for message in await received(azurite_connection_string, queue_name) for e in message]
    assert len(everything) == 30 == len({e["id"] for e in everything})


async def test_two_writers_racing_with_their_publishers_put_every_event_on_the_queue(
    store: TableStore,
    faulty: tuple[TableStore, EventQueue],
    event_queue: EventQueue,
    azurite_connection_string: str,
    queue_name: str,
):
    tenant = f"t{secrets.token_hex(6)}"
    writers = [publishing_client(store, event_queue, tenant), publishing_client(faulty[0], faulty[1], tenant)]

    async def write(client: Client, name: str) -> None:
        for i in range(15):
            user = await client.create_user(f"{name}{i}@example.com")
            patched = patch({"op": "replace", "path": "displayName", "value": name})
            await client.call("PATCH", f"Users/{user['id']}", patched)

    await asyncio.gather(write(writers[0], "a"), write(writers[1], "b"))
    for client in writers:
        assert client.endpoint.publisher is not None
        await client.endpoint.publisher.idle()
    feed = await assert_queue_matches_feed(writers[0], azurite_connection_string, queue_name)
    assert len(feed) == 60


async def test_an_event_that_commits_late_is_still_published(
    store: TableStore,
    faulty: tuple[TableStore, EventQueue],
    proxies: tuple[FaultProxy, FaultProxy],
    event_queue: EventQueue,
    azurite_connection_string: str,
    queue_name: str,
):
    """Writer B stamps its event and is held 2 s on the wire; writer A commits a later position and a pass
    publishes it. B's event commits below what was published, and the next pass still finds and sends it."""
    tenant = f"t{secrets.token_hex(6)}"
    fast, slow = writer(store, tenant), writer(faulty[0], tenant)
    warm = await slow.create_user("warm@example.com")
    publisher = Publisher(store, event_queue)
    await publisher.publish(tenant)
    proxies[0].set_mode("delay", seconds=2.0)
    late = asyncio.create_task(slow.create_user("late@example.com"))
    await asyncio.sleep(0.5)
    early = await fast.create_user("early@example.com")
    before = await publisher.publish(tenant)
    assert before.sent == 1
    held = await late
    proxies[0].heal()
    after = await publisher.publish(tenant)
    assert after.sent == 1
    on_queue = first_occurrences(await received(azurite_connection_string, queue_name))
    assert [e["data"]["id"] for e in on_queue] == [warm["id"], early["id"], held["id"]]
    assert on_queue[2]["position"] < on_queue[1]["position"]  # it really committed below what was published


# The sweep, retention and check -------------------------------------------------------------------------------------


async def test_the_sweep_publishes_what_no_kick_sent_for_every_configured_tenant(
    store: TableStore, event_queue: EventQueue, azurite_connection_string: str, queue_name: str
):
    """The tenant has no publisher row yet (its writer's kick was lost): the sweep finds it in the settings."""
    client = writer(store)
    for i in range(3):
        await client.create_user(f"s{i}@example.com")
    sweeper = publishing_client(store, event_queue, tenant_of(client))
    await sweeper.endpoint.sweep()
    await assert_queue_matches_feed(client, azurite_connection_string, queue_name)
    await sweeper.endpoint.sweep()  # (it also sweeps other tests' tenants of this table: their events are left out)
    again = first_occurrences(await received(azurite_connection_string, queue_name))
    assert [e for e in again if e["tenant"] == tenant_of(client)] == []  # nothing sent twice


async def test_retention_deletes_only_events_that_were_sent(
    event_queue: EventQueue,
    proxies: tuple[FaultProxy, FaultProxy],
    azurite_connection_string: str,
    queue_name: str,
):
    """Two minutes later (a clock ahead), with retention 0: what was sent goes; what the queue refused stays. A
    table of its own: the sweep covers every tenant of its table."""
    prefix = f"ret{secrets.token_hex(4)}"
    store = TableStore.from_settings(azurite_connection_string, None, prefix)
    proxied = azurite.connection_string(proxies[0].port, queue_port=proxies[1].port)
    refusing = EventQueue.from_settings(proxied, None, queue_name)
    try:
        client = writer(store)
        tenant = tenant_of(client)
        await client.create_user("old@example.com")
        await Publisher(store, event_queue).publish(tenant)
        await client.create_user("unsent@example.com")
        later = time.time() + 120
        proxies[1].set_mode("respond", status=503)
        refused = await Publisher(store, refusing, retention_days=0, clock=lambda: later, budget=0.5).sweep()
        assert refused.failed == [tenant] and refused.expired == 0
        assert len(await events(client)) == 2
        proxies[1].heal()
        swept = await Publisher(store, event_queue, retention_days=0, clock=lambda: later).sweep()
        assert swept.expired == 2 and [done.sent for done in swept.passes] == [1]
        assert await events(client) == []  # both sent now, both past retention
    finally:
        proxies[1].heal()
        await refusing.close()
        await store.close()


async def test_retention_without_a_queue_deletes_old_events(store: TableStore):
    client = writer(store)
    await client.create_user("pull@example.com")
    from scim.publisher import expire

    assert await expire(store, [tenant_of(client)], retention_days=1) == 0
    assert await expire(store, [tenant_of(client)], retention_days=-1) == 1  # "retention ended a day from now"
    assert await events(client) == []


async def test_check_reports_a_publisher_that_left_an_event_unsent(store: TableStore, event_queue: EventQueue):
    from scim.consistency import STUCK_PUBLISHER, check
    from scim.publisher import stuck

    client = writer(store)
    tenant = tenant_of(client)
    await client.create_user("stuck@example.com")
    assert await stuck(store, tenant, 10) is None  # a minute-old event is not stuck
    problem = await stuck(store, tenant, 10, now=time.time() + 3600)
    assert problem is not None and "scim.user.created" in problem and "60 minutes" in problem
    await asyncio.sleep(0.05)
    report = await check(store, [tenant], stuck_minutes=0)
    assert [(f.kind, f.repaired) for f in report.findings] == [(STUCK_PUBLISHER, False)]
    await Publisher(store, event_queue).publish(tenant)
    assert (await check(store, [tenant], stuck_minutes=0)).findings == []


async def test_a_pass_with_nothing_to_send_writes_nothing(store: TableStore, event_queue: EventQueue):
    """An idle tenant costs the sweep reads only: the state row is not rewritten while nothing is to be sent."""
    client = writer(store)
    tenant = tenant_of(client)
    await client.create_user("idle@example.com")
    publisher = Publisher(store, event_queue)
    assert (await publisher.publish(tenant)).sent == 1
    before = await publishing.read_state(store, tenant)
    assert (await publisher.publish(tenant)).sent == 0
    assert (await publishing.read_state(store, tenant)).etag == before.etag


# Pending rows ------------------------------------------------------------------------------------------------------


async def rows_of(store: TableStore, tenant: str, prefix: str) -> list[dict[str, Any]]:
    """Every row of the tenant's three feed partitions whose key starts with ``prefix``, in key order."""
    found: list[dict[str, Any]] = []
    for resource_type in outbox.FEED_TYPES:
        partition = keys.partition_key(tenant, resource_type)
        found += [row async for row in store.range(partition, prefix, keys.prefix_upper_bound(prefix), None)]
    return sorted(found, key=lambda row: row["RowKey"])


async def test_a_pass_reads_only_the_events_it_sends(azurite_connection_string: str, event_queue: EventQueue):
    """Thirty events sent, one more written: the next pass reads the state row and that one pending row, counted
    in the answers storage gave it, not the 31 event rows after any cursor."""
    async with proxied_store(azurite_connection_string) as (traffic, store):
        client = writer(store)
        tenant = tenant_of(client)
        for i in range(30):
            await client.create_user(f"o{i}@example.com")
        publisher = Publisher(store, event_queue)
        assert (await publisher.publish(tenant)).sent == 30
        latest = await client.create_user("latest@example.com")
        with traffic.recording() as calls:
            report = await publisher.publish(tenant)
        assert report.sent == 1
        reads = [call for call in calls if call.kind in ("query", "point-read")]
        assert sum(call.rows for call in reads) == 2, [(call.path, call.rows) for call in reads]
        queries = [unquote(call.path) for call in reads if call.kind == "query"]
        assert len(queries) == len(outbox.FEED_TYPES) and all("'pend:" in query for query in queries)
        assert [call.operations for call in calls if call.kind == "batch"] == [1]  # the one pending row deleted
        assert await rows_of(store, tenant, keys.PENDING_PREFIX) == []
        assert [row["resourceId"] for row in await rows_of(store, tenant, keys.EVENT_PREFIX)][-1] == latest["id"]


async def test_a_pending_row_commits_with_its_change_or_not_at_all(
    store: TableStore, faulty: tuple[TableStore, EventQueue], proxies: tuple[FaultProxy, FaultProxy]
):
    """A failed write leaves neither row; a write whose every answer was cut after storage applied it (the request
    answered 503) left exactly one event row and one pending row, the same event."""
    client = writer(store)
    tenant = tenant_of(client)
    await client.create_user("taken@example.com")
    assert (await client.call("POST", "Users", {"schemas": [USER], "userName": "TAKEN@example.com"})).status == 409
    pending = await rows_of(store, tenant, keys.PENDING_PREFIX)
    assert [row["type"] for row in pending] == ["scim.user.created"]
    faulty[0]._budget = FAULT_BUDGET
    cut = writer(faulty[0], tenant)
    await faulty[0].table_client()  # the table is known: the cut meets the write's transaction
    proxies[0].set_mode("cut", after_bytes=0)
    response = await cut.call("POST", "Users", {"schemas": [USER], "userName": "cut@example.com"})
    proxies[0].heal()
    assert response.status == 503
    event_rows = await rows_of(store, tenant, keys.EVENT_PREFIX)
    pending = await rows_of(store, tenant, keys.PENDING_PREFIX)
    assert len(event_rows) == len(pending) == 2
    assert [row["RowKey"].split(":", 1)[1] for row in event_rows] == [row["RowKey"].split(":", 1)[1] for row in pending]
    assert all(row[outbox.QUEUED] is True for row in event_rows)


async def test_without_a_queue_events_have_no_pending_rows(store: TableStore):
    client = feed_client(store, queued=False)
    await client.create_user("pull@example.com")
    tenant = tenant_of(client)
    assert len(await events(client)) == 1
    assert await rows_of(store, tenant, keys.PENDING_PREFIX) == []
    assert not (await rows_of(store, tenant, keys.EVENT_PREFIX))[0].get(outbox.QUEUED)


async def test_events_the_previous_version_left_unsent_are_published_in_order_after_the_upgrade(
    store: TableStore, event_queue: EventQueue, azurite_connection_string: str, queue_name: str
):
    """The version before pending rows wrote event rows alone, marked the sent ones ``published`` and kept a cursor
    in a state row without ``pendingRows``. After the upgrade, the first pass gives the unsent ones a pending row
    and sends them before the later events of the same resource; the sent one is not sent again."""
    tenant = f"t{secrets.token_hex(6)}"
    old = feed_client(store, tenant, queued=False)  # writes event rows as that version did
    sent_before = await old.create_user("sent@example.com")
    unsent = await old.create_user("unsent@example.com")
    partition = keys.partition_key(tenant, "User")
    first, second = await rows_of(store, tenant, keys.EVENT_PREFIX)
    table = await store.table_client()
    await table.update_entity({"PartitionKey": partition, "RowKey": first["RowKey"], "published": "2026-11-29T08:00Z"})
    before = first["RowKey"][len(keys.EVENT_PREFIX) :][:16]
    await table.create_entity(
        {"PartitionKey": "publisher", "RowKey": f"tenant:{tenant}", "tenant": tenant, "cursor": before, "owner": ""}
    )
    new = feed_client(store, tenant)
    await new.call("PATCH", f"Users/{unsent['id']}", patch({"op": "replace", "path": "title", "value": "x"}))
    publisher = Publisher(store, event_queue)
    assert (await publisher.publish(tenant)).sent == 2
    on_queue = first_occurrences(await received(azurite_connection_string, queue_name))
    assert [(e["type"], e["data"]["id"]) for e in on_queue] == [
        ("scim.user.created", unsent["id"]),
        ("scim.user.updated", unsent["id"]),
    ]
    assert sent_before["id"] not in {e["data"]["id"] for e in on_queue}
    state = await publishing.read_state(store, tenant)
    assert not state.legacy and state.cursor == before  # (settled: a minute ago, before these events)
    assert (await store.point_read(partition, second["RowKey"]))[outbox.QUEUED] is True
    assert await rows_of(store, tenant, keys.PENDING_PREFIX) == []
    assert (await publisher.publish(tenant)).sent == 0


async def test_passes_of_one_publisher_for_one_tenant_run_one_at_a_time(store: TableStore, event_queue: EventQueue):
    """A kicked pass and the timer's sweep of the same process share its lease owner, so the lease alone cannot keep
    them apart: they must not both send the tenant's events."""
    client = writer(store)
    tenant = tenant_of(client)
    for i in range(30):
        await client.create_user(f"p{i}@example.com")
    publisher = Publisher(store, SlowQueue(event_queue))  # the first pass is still sending when the second begins
    first = asyncio.create_task(publisher.publish(tenant))
    await asyncio.sleep(0.2)
    second = await publisher.publish(tenant)
    assert ((await first).sent, second.sent) == (30, 0)


class SlowQueue:
    """A queue whose sends take half a second: the pass that makes them holds its lease meanwhile."""

    def __init__(self, queue: EventQueue) -> None:
        self._queue = queue

    async def send(self, message: str) -> None:
        await asyncio.sleep(0.5)
        await self._queue.send(message)

    async def close(self) -> None:
        await self._queue.close()


async def test_retention_keeps_an_unsent_event_and_the_later_ones_of_its_partition(store: TableStore):
    """Three events past the retention; the first and the third were sent (their pending rows gone), the second was
    not: only the first goes. The third waits for the second (retention reads one pending row per partition)."""
    client = writer(store)
    tenant = tenant_of(client)
    for i in range(3):
        await client.create_user(f"k{i}@example.com")
    pending, _ = await publishing.pending(store, tenant, "", 100)
    await publishing.sent(store, [pending[0], pending[2]])
    later = outbox.horizon(-60.0)  # a minute from now: all three are "past the retention"
    assert await publishing.delete_sent_before(store, tenant, later, 100) == 1
    left = [row["RowKey"].split(":", 1)[1] for row in await rows_of(store, tenant, keys.EVENT_PREFIX)]
    assert left == [pending[1].position, pending[2].position]
    await publishing.sent(store, [pending[1]])
    assert await publishing.delete_sent_before(store, tenant, later, 100) == 2
    assert await rows_of(store, tenant, keys.EVENT_PREFIX) == []
