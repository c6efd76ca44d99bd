"""The publisher's pure rules: packing events into queue messages of at most 64 KiB, in order; which unsent rows a
pass may send (a prefix, foreign stamps held back for clock skew); the queue settings."""

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scim import change_messages
from scim.publisher import FOREIGN_HOLD_SECONDS, _sendable, _sendable_from, _stamp
from scim.settings import ConfigurationError, Settings, parse_queue_name
from scim.store import outbox
from scim.store.publishing import EventRow


def event(position: int, size: int = 10, text: str = "x", snapshot: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {"id": "a" * 32, "resourceType": "User", "lastModified": "2026-11-29T00:00:00Z"}
    if snapshot:
        data["snapshot"] = {"title": text * size}
    else:
        data["changedAttributes"] = [text * size]
    return {"id": f"{position:016d}abcdef01", "type": "scim.user.updated", "tenant": "t", "data": data}


def test_messages_hold_events_in_order_and_never_exceed_64_kib():
    events = [event(i, size) for i, size in enumerate([10, 30_000, 20_000, 5, 40_000, 100, 48_000])]
    messages = change_messages.encode(events)
    assert all(len(message) <= change_messages.MAX_MESSAGE_CHARS for message in messages)
    decoded = [change_messages.decode(message) for message in messages]
    assert [e["id"] for message in decoded for e in message] == [e["id"] for e in events]
    assert [len(message) for message in decoded] == [2, 2, 2, 1]  # greedy: each message as full as the next allows


def test_many_small_events_share_one_message():
    events = [event(i) for i in range(200)]
    assert len(change_messages.encode(events)) == 1


def test_a_message_is_base64_of_a_utf8_json_array():
    message = change_messages.encode([event(1, 3, "é")])[0]
    assert json.loads(base64.b64decode(message).decode("utf-8"))[0]["data"]["changedAttributes"] == ["ééé"]
    with pytest.raises(ValueError):
        change_messages.decode("not base64!")
    with pytest.raises(ValueError):
        change_messages.decode(base64.b64encode(b'{"not": "a list"}'))


def test_an_event_too_large_for_a_message_loses_its_snapshot_then_its_detail():
    (big,) = change_messages.decode(change_messages.encode([event(1, 25_000, "é", snapshot=True)])[0])
    assert big["data"]["snapshotOmitted"] is True and "snapshot" not in big["data"]
    (huge,) = change_messages.decode(change_messages.encode([event(2, 60_000)])[0])
    assert huge["data"] == {
        "id": "a" * 32,
        "resourceType": "User",
        "lastModified": "2026-11-29T00:00:00Z",
        "truncated": True,
    }


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=30_000), max_size=40))
def test_packing_keeps_every_event_once_in_order_within_the_limit(sizes: list[int]):
    events = [event(i, size) for i, size in enumerate(sizes)]
    messages = change_messages.encode(events)
    assert all(len(message) <= change_messages.MAX_MESSAGE_CHARS for message in messages)
    assert [e["id"] for m in messages for e in change_messages.decode(m)] == [e["id"] for e in events]


def row(micros: int, tag: str) -> EventRow:
    position = f"{micros:016d}{tag}"
    return EventRow("t:User", position, {"RowKey": f"pend:{position}"})


def test_a_pass_sends_the_prefix_stamped_before_it_began():
    own, other = outbox.PROCESS_TAG, "0badf00d" if outbox.PROCESS_TAG != "0badf00d" else "0badf00e"
    started = 1_000_000_000
    own_bound, foreign_bound = _stamp(started), _stamp(started - FOREIGN_HOLD_SECONDS)
    micros = started * 1_000_000
    rows = [
        row(micros - 10_000_000, other),  # another process, 10 s before: sendable
        row(micros - 1_000_000, own),  # ours, 1 s before: sendable
        row(micros - 1_000_000, other),  # another process, 1 s before: its clock may be ahead, held
        row(micros - 500_000, own),  # ours and sendable, but after a held row: held too (order per resource)
    ]
    sendable, held = _sendable(rows, own_bound, foreign_bound)
    assert sendable == rows[:2] and held == 2
    assert _sendable([row(micros + 1, own)], own_bound, foreign_bound) == ([], 1)


def test_a_held_row_is_retried_once_a_pass_may_send_it_ours_at_its_stamp_another_s_after_the_hold():
    own, other = outbox.PROCESS_TAG, "0badf00d" if outbox.PROCESS_TAG != "0badf00d" else "0badf00e"
    micros = 1_000_000_000 * 1_000_000 + 500_000
    assert _sendable_from(row(micros, own)) == 1_000_000_000.5
    assert _sendable_from(row(micros, other)) == 1_000_000_000.5 + FOREIGN_HOLD_SECONDS
    for started in (1_000_000_000.5, 1_000_000_000.5 + FOREIGN_HOLD_SECONDS):  # a pass starting then sends it
        bounds = _stamp(started), _stamp(started - FOREIGN_HOLD_SECONDS)
        assert _sendable([row(micros, own if started < 1_000_000_002 else other)], *bounds)[1] == 0


def test_queue_settings():
    assert parse_queue_name("") == "scim-changes"
    assert parse_queue_name("off") == ""
    assert parse_queue_name("hr-feed") == "hr-feed"
    for bad in ("Upper", "a--b", "-ab", "ab", "a" * 64, "ab_c"):
        with pytest.raises(ConfigurationError):
            parse_queue_name(bad)
    table = "https://acct.table.core.windows.net"
    settings = Settings(storage_connection_string=None, storage_table_uri=table, change_feed=True)
    assert settings.queue_uri == "https://acct.queue.core.windows.net" and settings.publishes_changes
    assert not Settings(None, table, change_feed=True, change_feed_queue="").publishes_changes


def test_retention_and_delay_settings_are_numbers(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SCIM_BEARER_TOKENS", "a-token-of-sixteen-characters")
    monkeypatch.setenv("SCIM_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")
    monkeypatch.setenv("SCIM_CHANGE_FEED_RETENTION_DAYS", "30")
    monkeypatch.setenv("SCIM_CHANGE_FEED_PUBLISH_DELAY_SECONDS", "0.5")
    settings = Settings.from_environment()
    assert (settings.change_feed_retention_days, settings.change_feed_publish_delay_seconds) == (30.0, 0.5)
    assert settings.change_feed_queue == "scim-changes"
    for name, bad in (("SCIM_CHANGE_FEED_RETENTION_DAYS", "-1"), ("SCIM_CHANGE_FEED_PUBLISH_DELAY_SECONDS", "soon")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ConfigurationError, match=name):
            Settings.from_environment()
        monkeypatch.delenv(name)
