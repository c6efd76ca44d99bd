"""The endpoint's garbage-collector settings (scim.dispatch.settle_collector), through the handler layer on real
Azurite: a large request no longer stops for collections in the middle of its work, each a step of the one event
loop every tenant's requests wait behind."""

import asyncio
import gc
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest

from scim.dispatch import YOUNG_COLLECTION_THRESHOLD, settle_collector
from scim.messages import ScimResponse
from scim.store.tables import TableStore
from tests.conftest import make_client
from tests.integration.scim_checks import patch_body
from tests.integration.test_fair_share import create_users

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture
def collector_restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


async def collections_during(call: Awaitable[ScimResponse]) -> tuple[ScimResponse, list[int]]:
    """The call's answer, and the generation of each collection that ran while it did."""
    generations: list[int] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            generations.append(info["generation"])

    gc.collect()
    gc.callbacks.append(seen)
    try:
        response = await call
    finally:
        gc.callbacks.remove(seen)
    return response, generations


async def test_a_large_member_patch_runs_next_to_no_collections_once_the_collector_is_settled(
    store: TableStore, collector_restored: None
) -> None:
    client = make_client(store)
    members = [{"value": member} for member in await create_users(client, 300)]
    created = await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": "g"})
    group = f"Groups/{created.document['id']}"
    add, remove = (patch_body({"op": op, "path": "members", "value": members}) for op in ("add", "remove"))

    gc.set_threshold(700, 10, 10)  # CPython's default
    added, by_default = await collections_during(client.call("PATCH", group, add))
    assert added.status == 204, added.document
    assert (await client.call("PATCH", group, remove)).status == 204

    settle_collector()
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD and gc.get_freeze_count() > 0
    added, settled = await collections_during(client.call("PATCH", group, add))
    assert added.status == 204, added.document

    assert len(by_default) >= 5, by_default  # the same request met the default threshold again and again
    assert len(settled) <= 1, settled
    listed = await client.call("GET", group)
    assert len(listed.document["members"]) == 300


async def test_four_wide_member_patches_at_once_cross_the_young_threshold_far_less_often(
    store: TableStore, collector_restored: None
) -> None:
    """Four of Entra's 100-member PATCHes at once keep a tenant's 128 storage calls in flight, about 110 objects
    each, none of them garbage: a threshold under that many objects (7,000 was) is crossed again and again while
    their calls go out, and each of those collections frees nothing."""
    client = make_client(store)
    users = await create_users(client, 100)
    groups = []
    for index in range(4):
        created = await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": f"g{index}"})
        groups.append(f"Groups/{created.document['id']}")
    members = [{"value": member} for member in users]
    add, remove = (patch_body({"op": op, "path": "members", "value": members}) for op in ("add", "remove"))

    async def rounds() -> list[int]:
        """Statuses of three rounds of four adds at once, each followed by four removes at once."""
        statuses = []
        for _ in range(3):
            for body in (add, remove):
                answers = await asyncio.gather(*(client.call("PATCH", group, body) for group in groups))
                statuses += [answer.status for answer in answers]
        return statuses

    settle_collector()
    gc.set_threshold(7_000, 10, 10)
    statuses, at_7000 = await collections_during(rounds())
    assert statuses == [204] * 24

    settle_collector()
    statuses, settled = await collections_during(rounds())
    assert statuses == [204] * 24

    assert len(at_7000) >= 6, at_7000  # 9 in three runs
    assert len(settled) <= len(at_7000) // 2, settled  # 2-3
