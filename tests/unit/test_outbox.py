"""Change-feed positions, the event row built from a transaction's operations, and packing removals with events."""

import json
import time
from typing import cast

import pytest

from scim.changes import POSITION, ChangeRecorder, changed_attributes
from scim.store import keys, outbox
from scim.store.contract import Change, StoredResource
from scim.store.tables import MAX_TRANSACTION_OPERATIONS, MembershipStore, TableStore


def test_positions_strictly_increase_and_match_what_the_feed_accepts():
    positions = [outbox.next_position()[0] for _ in range(10_000)]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert all(POSITION.fullmatch(position) for position in positions)


def test_the_horizon_sorts_before_every_position_stamped_after_it():
    now = time.time()
    horizon = outbox.horizon(0.0, now)
    assert POSITION.fullmatch(horizon)
    assert horizon < outbox.next_position()[0]
    assert outbox.horizon(60.0, now) < horizon


def test_the_settle_minimum_covers_window_attempt_server_and_skew():
    assert outbox.MIN_SETTLE_SECONDS == 15 + 10 + 30 + 5 <= outbox.DEFAULT_SETTLE_SECONDS


def _edge(verb: str, group: str, member: str) -> tuple[str, dict[str, str]]:
    return (verb, {"PartitionKey": "t:Membership", "RowKey": keys.member_row_key(group, member)})


def test_a_member_event_names_only_its_groups_rows_still_inserted_or_deleted():
    row = outbox.Outbox(Change("scim.group.members.added", "Group", "g1", {"members": []}), 15.0, first=True)
    operations = [_edge("create", "g1", "a"), _edge("upsert", "g1", "b"), _edge("create", "g2", "c")]
    operations.append(("upsert", {"PartitionKey": "t:Membership", "RowKey": keys.member_of_row_key("a", "g1")}))
    (built,) = row.operations("t:Membership", operations)
    assert json.loads(built[1]["data"]) == {"members": ["a"]}
    assert built[0] == "create" and built[1]["RowKey"] == keys.event_row_key(row.position)
    assert row.operations("t:Membership", [_edge("upsert", "g1", "b")]) == []


def test_a_queued_event_is_written_with_its_pending_copy_the_event_row_first():
    change = Change("scim.user.updated", "User", "u", {"lastModified": "t"}, queued=True)
    row = outbox.Outbox(change, 15.0, first=False)
    (verb, event), (pending_verb, pending) = row.operations("p", [])
    assert (verb, pending_verb) == ("create", "create") and row.rows == 2
    assert event["RowKey"] == keys.event_row_key(row.position) and event[outbox.QUEUED] is True
    assert pending["RowKey"] == keys.pending_row_key(row.position) and outbox.QUEUED not in pending
    assert {k: v for k, v in event.items() if k not in ("RowKey", outbox.QUEUED)} == {
        k: v for k, v in pending.items() if k != "RowKey"
    }
    assert outbox.recorded(pending) == outbox.recorded(event)


def test_a_snapshot_too_large_for_a_property_is_left_out_and_said_so():
    big = {"snapshot": {"x": "y" * 40_000}, "lastModified": "t"}
    (built,) = outbox.Outbox(Change("scim.user.updated", "User", "u", big), 15.0, first=False).operations("p", [])
    assert "snapshot" not in built[1]
    assert json.loads(built[1]["data"]) == {"lastModified": "t", "snapshotOmitted": True}


def test_removals_pack_edges_and_one_event_per_group_into_each_transaction():
    store = MembershipStore(cast(TableStore, None), record_changes=True)  # packing reads no storage
    one_group = store._remove_chunks([("g", f"m{i:03d}") for i in range(100)])
    assert [len(chunk) for chunk in one_group] == [49, 49, 2]
    many_groups = store._remove_chunks([(f"g{i:02d}", "u") for i in range(50)])
    assert [len(chunk) for chunk in many_groups] == [33, 17]
    for chunk in one_group + many_groups:
        assert 2 * len(chunk) + len({group for group, _ in chunk}) <= MAX_TRANSACTION_OPERATIONS


def test_queued_removals_pack_edges_and_two_rows_per_group_into_each_transaction():
    """With a queue, each group's event also has its pending row: still 3 transactions for one group's 100
    members, and 2 for a user leaving 50 groups."""
    store = MembershipStore(cast(TableStore, None), record_changes=True, queued=True)
    one_group = store._remove_chunks([("g", f"m{i:03d}") for i in range(100)])
    assert [len(chunk) for chunk in one_group] == [49, 49, 2]
    many_groups = store._remove_chunks([(f"g{i:02d}", "u") for i in range(50)])
    assert [len(chunk) for chunk in many_groups] == [25, 25]
    for chunk in one_group + many_groups:
        assert 2 * len(chunk) + 2 * len({group for group, _ in chunk}) <= MAX_TRANSACTION_OPERATIONS
    assert 2 * MembershipStore.EDGES_PER_RECORDED_TRANSACTION + 2 <= MAX_TRANSACTION_OPERATIONS


def test_an_update_names_changed_attributes_and_active_flips():
    recorder = ChangeRecorder(enabled=True)
    before = StoredResource("u", {"userName": "a", "active": True}, "c", "m1", "e")
    after = StoredResource("u", {"userName": "a", "active": False, "title": "x"}, "c", "m2", "e")
    change = recorder.updated("User", before, after)
    assert change is not None and change.type == "scim.user.deactivated"
    assert change.data == {"lastModified": "m2", "changedAttributes": ["active", "title"]}
    assert recorder.updated("User", before, before) is None
    assert ChangeRecorder().created("User", after) is None
    assert changed_attributes({"a": 1}, {"b": 1}) == ["a", "b"]


def test_a_position_comes_after_the_resource_s_previous_event_whatever_the_clock(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(outbox, "_last_stamp", outbox._last_stamp)  # later tests read feeds with no settle time
    ahead = f"{int((time.time() + 5) * 1_000_000):016d}0badc0de"
    position, stamped = outbox.next_position(ahead)
    assert position > ahead and POSITION.fullmatch(position)
    assert stamped <= time.time()  # the commit window counts from the real moment, not the position
    assert outbox.next_position()[0] > position  # the process's own positions stay strictly increasing
