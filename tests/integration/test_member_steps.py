"""A 1,000-member PATCH never holds the event loop for its whole body or all its rows in one step, on real Azurite,
and still answers and stores exactly what it did: what is asserted is what ran between two steps of the loop (another
task's ticks) or what had been built when a transaction was sent, never a timing.

- The members a large body names are read in a step of their own, not in the one that parsed the body; Entra's
  100-member batch stays in one step.
- A membership transaction's rows are built when it is sent (four at a time), not all 20 transactions' up front.
"""

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from scim import dispatch, groups
from scim.store import keys
from scim.store.contract import Member
from scim.store.tables import TRANSACTIONS_AT_ONCE, MembershipStore, TableStore
from tests.conftest import Client
from tests.integration.scim_checks import GROUP, assert_scim_error, patch_body


class Ticker:
    """Another request's task, counting the steps of the loop it gets while the request runs."""

    def __init__(self) -> None:
        self.ticks = 0

    async def run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0)


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Ticker, dict[str, int]]]:
    """Where the other task's count stood when the body was parsed and when its members began to be read."""
    ticker, seen = Ticker(), {}
    parse, split = dispatch._json_body, groups.split_members

    def parsed(*args: Any) -> Any:
        body = parse(*args)
        seen["parsed"] = ticker.ticks
        return body

    def read(*args: Any) -> Any:
        seen["read"] = ticker.ticks
        return split(*args)

    monkeypatch.setattr(dispatch, "_json_body", parsed)
    monkeypatch.setattr(groups, "split_members", read)
    yield ticker, seen


@pytest.mark.parametrize(("count", "own_step"), [(1000, True), (groups.INLINE_MEMBERS, False)])
async def test_a_large_bodys_members_are_read_in_a_step_after_its_parsing(client: Client, steps, count, own_step):
    """Made-up members: the answer is the same 400 either way, after the members were read (every member is
    checked before anything is written)."""
    ticker, seen = steps
    group = await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": f"g{secrets.token_hex(4)}"})
    value = [{"value": secrets.token_hex(16)} for _ in range(count)]
    other = asyncio.create_task(ticker.run())
    try:
        response = await client.call(
            "PATCH", f"Groups/{group.document['id']}", patch_body({"op": "add", "path": "members", "value": value})
        )
    finally:
        other.cancel()
    assert_scim_error(response, 400, "invalidValue")
    assert "not found" in response.document["detail"]
    assert (seen["read"] > seen["parsed"]) is own_step, seen


@pytest.mark.parametrize(("count", "own_step"), [(150, True), (groups.INLINE_MEMBERS, False)])
async def test_a_long_members_filters_ids_are_read_in_a_step_after_its_parsing(client: Client, steps, count, own_step):
    """``members[value eq "…" or …]``: removing members that were never there changes nothing and answers 204."""
    ticker, seen = steps
    group = await client.call("POST", "Groups", {"schemas": [GROUP], "displayName": f"g{secrets.token_hex(4)}"})
    path = "members[" + " or ".join(f'value eq "{secrets.token_hex(16)}"' for _ in range(count)) + "]"
    body = patch_body({"op": "remove", "path": path})
    other = asyncio.create_task(ticker.run())
    try:
        response = await client.call("PATCH", f"Groups/{group.document['id']}", body)
    finally:
        other.cancel()
    assert response.status == 204, response.document
    assert (seen["read"] > seen["parsed"]) is own_step, seen


@dataclass
class Sending:
    """Forward row keys built so far, and for each transaction or batch delete sent, how many had been built."""

    built: int = 0
    sent: list[tuple[str, int]] = field(default_factory=list)

    def of(self, kind: str) -> list[int]:
        return [built for sent_kind, built in self.sent if sent_kind == kind]


@pytest.fixture
def sending(store: TableStore, monkeypatch: pytest.MonkeyPatch) -> Sending:
    recorded = Sending()
    row_key, transact, delete_rows = keys.member_row_key, store.transact, store.delete_rows

    def counted(group_id: str, member_id: str) -> str:
        recorded.built += 1
        return row_key(group_id, member_id)

    async def transacting(*args: Any, **kwargs: Any) -> str:
        recorded.sent.append(("transact", recorded.built))
        return await transact(*args, **kwargs)

    async def deleting(*args: Any, **kwargs: Any) -> None:
        recorded.sent.append(("delete", recorded.built))
        await delete_rows(*args, **kwargs)

    monkeypatch.setattr(keys, "member_row_key", counted)
    monkeypatch.setattr(store, "transact", transacting)
    monkeypatch.setattr(store, "delete_rows", deleting)
    return recorded


async def test_membership_rows_are_built_as_their_transactions_are_sent(store: TableStore, sending: Sending):
    """Still 20 transactions for 1,000 members, each of 50 edges, all applied; but when the first is sent, at most
    the four that are sent at once have their rows."""
    members = MembershipStore(store)
    tenant, group_id = f"t{secrets.token_hex(5)}", secrets.token_hex(16)
    added = [Member(secrets.token_hex(16), "User", None) for _ in range(1000)]
    in_flight = MembershipStore.EDGES_PER_TRANSACTION * TRANSACTIONS_AT_ONCE

    await members.add(tenant, group_id, added)
    assert len(sending.of("transact")) == 1000 // MembershipStore.EDGES_PER_TRANSACTION
    assert sending.of("transact")[0] <= in_flight
    stored = await members.members(tenant, group_id, None, 2000)
    assert [member.member_id for member in stored] == sorted(member.member_id for member in added)

    sending.sent.clear()
    before = sending.built
    await members.remove(tenant, [(group_id, member.member_id) for member in added])
    assert len(sending.of("delete")) == len(sending.of("transact")) == 1000 // MembershipStore.EDGES_PER_TRANSACTION
    assert sending.of("delete")[0] - before <= in_flight
    assert await members.members(tenant, group_id, None, 2000) == []
