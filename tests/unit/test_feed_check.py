"""The soak's judge of a change feed (bench/feed_check.py): it decides the soak's verdict, so each kind of violation
must be counted, and the cases a fault makes ambiguous must not be."""

from typing import Any

from bench.feed_check import Expected, judge, unique

USER = "Users/u1"
GROUP = "Groups/g1"


def event(event_id: str, subject: str, kind: str, **data: Any) -> dict[str, Any]:
    return {"id": event_id, "subject": subject, "type": kind, "data": data}


def user_history() -> list[Expected]:
    """Created, deactivated, renamed: three operations, each submitted after the previous one succeeded."""
    return [
        Expected(USER, ("scim.user.created", "t1"), 0.0, 1.0),
        Expected(USER, ("scim.user.deactivated", "t2"), 2.0, 3.0),
        Expected(USER, ("scim.user.updated", "t3"), 4.0, 5.0),
    ]


def user_events() -> list[dict[str, Any]]:
    return [
        event("1", USER, "scim.user.created", lastModified="t1"),
        event("2", USER, "scim.user.deactivated", lastModified="t2"),
        event("3", USER, "scim.user.updated", lastModified="t3"),
    ]


def test_a_feed_that_matches_the_belief_is_clean() -> None:
    verdict = judge(user_history(), user_events(), {USER: "t3"})
    assert verdict.clean(duplicates_allowed=False)
    assert (verdict.missing, verdict.invented, verdict.out_of_order, verdict.stale) == ([], [], [], [])


def test_a_missing_event_is_counted_and_so_is_the_stale_version() -> None:
    events = user_events()[:2]
    verdict = judge(user_history(), events, {USER: "t3"})
    assert verdict.missing == [f"{USER}: scim.user.updated t3"]
    assert len(verdict.stale) == 1
    assert not verdict.clean(duplicates_allowed=True)


def test_an_event_nobody_asked_for_is_invented() -> None:
    """A second event for a change, as a re-send that was not a no-op would record, or an event on a resource
    Entra never learnt of."""
    events = [*user_events(), event("4", USER, "scim.user.updated", lastModified="t9")]
    events.append(event("5", "Users/u2", "scim.user.created", lastModified="t1"))
    verdict = judge(user_history(), events)
    assert len(verdict.invented) == 2
    assert verdict.missing == []


def test_events_of_ordered_operations_in_the_wrong_order_are_out_of_order() -> None:
    first, second, third = user_events()
    verdict = judge(user_history(), [first, third, second])
    assert verdict.out_of_order == [f"{USER}: scim.user.deactivated t2 after a change Entra made later"]
    assert verdict.missing == verdict.invented == []


def test_overlapping_operations_may_arrive_in_either_order() -> None:
    """A user's delete removes it from a group while a member PATCH runs on that group: neither is before the other."""
    expected = [
        Expected(GROUP, ("scim.group.members.added", frozenset({"u7", "u8"})), 10.0, 12.0),
        Expected(GROUP, ("scim.group.members.removed", frozenset({"u1"})), 11.0, 13.0),
    ]
    events = [
        event("9", GROUP, "scim.group.members.removed", members=["u1"]),
        event("8", GROUP, "scim.group.members.added", members=["u8", "u7"]),
    ]
    verdict = judge(expected, events)
    assert verdict.clean(duplicates_allowed=False)


def test_member_events_are_matched_by_their_member_ids() -> None:
    expected = [Expected(GROUP, ("scim.group.members.added", frozenset({"u7", "u8"})), 10.0, 12.0)]
    verdict = judge(expected, [event("8", GROUP, "scim.group.members.added", members=["u7"])])
    assert len(verdict.missing) == 1
    assert len(verdict.invented) == 1


def test_duplicates_by_id_are_counted_and_allowed_only_where_the_channel_is_at_least_once() -> None:
    events = user_events()
    first, repeats = unique([events[0], events[1], events[0], events[2], events[1]])
    assert [e["id"] for e in first] == ["1", "2", "3"]
    assert repeats == 2
    verdict = judge(user_history(), first)
    verdict.duplicates = repeats
    assert verdict.clean(duplicates_allowed=True)
    assert not verdict.clean(duplicates_allowed=False)
