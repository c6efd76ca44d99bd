"""Judging a change feed against Entra's belief: what the simulated Entra knows it did and what the endpoint answered.

Why this is sound under faults. A request that failed (a 503, a broken connection) may or may not have committed,
so the events of one *attempt* are unknowable. The soak never gives up on an operation, though: it re-sends it
until a 2xx, and no other operation touches the same resource meanwhile. Each operation changes something (an
``active`` flip, a new name, members that were absent or present), so whichever attempt committed, the operation
yields exactly one event per resource it changed, and a later attempt that finds the change already made is a no-op
that records nothing. The expected event is keyed by what the endpoint *answered* to the attempt that succeeded:
the resource's ``meta.lastModified`` (its version; a re-send that found the change made answers the version the
earlier attempt committed) or, for member PATCHes, which answer 204 without a body, the member ids. Deletes carry
neither, and a resource is deleted once.

Order. Two operations on one resource are ordered only if one ended (its 2xx) before the other was submitted; a
position is stamped after the operation starts and before its commit, so the feed must keep that order. Operations
that overlapped (a user's delete removing it from a group while a member PATCH runs on that group) may appear in
either order and are not judged against each other.
"""

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str | frozenset[str] | None]
"""An event's identity within its resource: its type and the version (``lastModified``) or the member ids."""


@dataclass(frozen=True)
class Expected:
    """One event Entra's belief implies: on ``subject``, by an operation submitted at ``started`` that succeeded at
    ``ended`` (seconds on one monotonic clock)."""

    subject: str
    key: Key
    started: float
    ended: float


@dataclass
class Verdict:
    """The three counts the issue asks for, and the duplicates an at-least-once channel may deliver."""

    events: int = 0
    duplicates: int = 0
    missing: list[str] = field(default_factory=list)
    invented: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    """Live resources whose last event does not carry the version the endpoint holds."""

    def clean(self, duplicates_allowed: bool) -> bool:
        violations = self.missing or self.invented or self.out_of_order or self.stale
        return not violations and (duplicates_allowed or not self.duplicates)


def event_key(event: dict[str, Any]) -> Key:
    data = event.get("data") or {}
    if "members" in data:
        return event["type"], frozenset(data["members"])
    return event["type"], data.get("lastModified")


def unique(events: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The first delivery of each event id, in delivery order, and how many later deliveries repeated one."""
    seen: set[str] = set()
    first: list[dict[str, Any]] = []
    repeats = 0
    for event in events:
        if event["id"] in seen:
            repeats += 1
            continue
        seen.add(event["id"])
        first.append(event)
    return first, repeats


def judge(
    expected: Sequence[Expected], events: Sequence[dict[str, Any]], versions: dict[str, str] | None = None
) -> Verdict:
    """Compare delivered ``events`` (in delivery order, duplicates already removed) with ``expected``, resource by
    resource; ``versions`` maps each live user's subject to the ``meta.lastModified`` the endpoint holds."""
    verdict = Verdict(events=len(events))
    wanted: dict[str, list[Expected]] = defaultdict(list)
    for item in expected:
        wanted[item.subject].append(item)
    delivered: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        delivered[event["subject"]].append(event)
    for subject in sorted(wanted.keys() | delivered.keys()):
        _judge_resource(subject, wanted[subject], delivered[subject], verdict)
    for subject, version in sorted((versions or {}).items()):
        last = [event for event in delivered[subject] if "lastModified" in (event.get("data") or {})]
        if not last or last[-1]["data"]["lastModified"] != version:
            held = last[-1]["data"]["lastModified"] if last else None
            verdict.stale.append(f"{subject}: endpoint holds {version}, last event says {held}")
    return verdict


def _judge_resource(subject: str, wanted: list[Expected], delivered: list[dict[str, Any]], verdict: Verdict) -> None:
    unmatched = Counter(item.key for item in wanted)
    pools: dict[Key, list[Expected]] = defaultdict(list)
    for item in wanted:
        pools[item.key].append(item)
    latest_start = float("-inf")
    for event in delivered:
        key = event_key(event)
        if not unmatched[key]:
            verdict.invented.append(f"{subject}: {_describe(key)} (id {event['id']})")
            continue
        unmatched[key] -= 1
        item = pools[key].pop(0)
        if item.ended < latest_start:
            verdict.out_of_order.append(f"{subject}: {_describe(key)} after a change Entra made later")
        latest_start = max(latest_start, item.started)
    for key, count in unmatched.items():
        verdict.missing.extend(f"{subject}: {_describe(key)}" for _ in range(count))


def _describe(key: Key) -> str:
    kind, detail = key
    if isinstance(detail, frozenset):
        return f"{kind} {len(detail)} member(s)"
    return f"{kind} {detail}" if detail else kind
