"""Group PATCH operations on ``members``, in every shape Entra sends, reduced to one membership change.

The member list of a large group is never loaded to apply a PATCH: the operations are folded, in order, into the
set of ids to add, the set to remove and whether the whole list is cleared first, and the store applies that delta
row by row. Shapes (``docs/entra-client.md`` §47-48):

- ``Add``/``add`` ``members`` with ``[{"$ref": null, "value": "<id>"}]`` (any number of values);
- ``Remove`` ``members`` with a value list (Entra's legacy dialect) — removes only those ids;
- ``remove`` ``members[value eq "<id>"]`` (the ``aadOptscim062020`` dialect), also ``or``-joined ids;
- ``replace`` ``members`` with a list (the whole membership), ``remove`` ``members`` with no value (all).

An empty value list on ``remove`` is refused rather than read as "remove all": reading it so is how other servers
have emptied whole groups.
"""

import re
from dataclasses import dataclass, field
from typing import Any

from scim2_models import SCIMException, ScimFilter
from scim2_models.path import CompareOperator, Comparison, FilterNode, LogicalExpr
from scim2_models.path.expressions import LogicalOperator

from scim.errors import invalid_path, invalid_value

MAX_MEMBERS_PER_OPERATION = 1000
"""The most members one operation may name, in a value list or in a ``members[value eq …]`` filter; Entra sends
batches far smaller than this. Each named member costs store reads or writes, so this bounds what one request costs."""
_LOWER_CASE_MEMBER_KEYS = frozenset({"value", "display", "$ref", "type"})
"""A member object already spelt this way (Entra's ``{"$ref": null, "value": id}`` is) is read as it is: copying
each of 1,000 members into a lower-cased dict was a third of a millisecond of the loop."""


@dataclass
class MembershipChange:
    """The net effect of a PATCH on a group's members, operations applied in order."""

    clear: bool = False
    added: dict[str, str | None] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return not (self.clear or self.added or self.removed)

    def add(self, member_id: str, display: str | None) -> None:
        self.added[member_id] = display
        self.removed.discard(member_id)

    def remove(self, member_id: str) -> None:
        self.removed.add(member_id)
        self.added.pop(member_id, None)

    def remove_all(self) -> None:
        self.clear = True
        self.added.clear()
        self.removed.clear()


def is_members_path(path: Any) -> bool:
    return isinstance(path, str) and _attribute(path) == "members"


def split_members(operations: list[dict[str, Any]]) -> tuple[MembershipChange, list[dict[str, Any]]]:
    """Separate normalised PATCH operations into a membership change and the operations on other attributes."""
    change = MembershipChange()
    others: list[dict[str, Any]] = []
    for operation in operations:
        path = operation.get("path")
        if not is_members_path(path):
            others.append(operation)
            continue
        _apply(change, operation["op"], path, operation.get("value"), "value" in operation)
    return change, others


def named_members(operations: list[dict[str, Any]]) -> int:
    """About how many members ``members`` operations name (each value list's length, each quoted id of a
    ``members[value eq "…" or …]`` path), counted without reading them: whether reading them is a slice of CPU worth
    a turn of its own (:func:`scim.cpu_share.turn_if`)."""
    return sum(_named(operation.get("path"), operation.get("value")) for operation in operations)


def _named(path: Any, value: Any) -> int:
    if not is_members_path(path):
        return 0
    return len(value) if isinstance(value, list) else path.count('"') // 2


def member_entries(value: Any) -> list[tuple[str, str | None]]:
    """``(id, display)`` of each member in a value list, as sent on POST, PUT and PATCH."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise invalid_value("members must be a list of objects with a value")
    if len(value) > MAX_MEMBERS_PER_OPERATION:
        raise invalid_value(f"At most {MAX_MEMBERS_PER_OPERATION} members may be given at once")
    entries: list[tuple[str, str | None]] = []
    for item in value:
        if isinstance(item, dict):
            lowered = item if item.keys() <= _LOWER_CASE_MEMBER_KEYS else {k.lower(): v for k, v in item.items()}
        else:
            lowered = {}
        member_id = lowered.get("value")
        if not isinstance(member_id, str) or not member_id:
            raise invalid_value("Each member needs a string value (the member's id)")
        display = lowered.get("display") or lowered.get("displayname")
        entries.append((member_id, display if isinstance(display, str) else None))
    return entries


def _apply(change: MembershipChange, op: str, path: str, value: Any, has_value: bool) -> None:
    selected = _selected_ids(path)
    if selected is not None:
        if op != "remove":
            raise invalid_path("Only remove may target members through a filter")
        for member_id in selected:
            change.remove(member_id)
        return
    if path.strip().lower().rsplit(":", 1)[-1] != "members":
        raise invalid_path("Sub-attributes of members cannot be patched")
    if op == "remove" and (not has_value or value is None):
        change.remove_all()
    elif op == "remove":
        entries = member_entries(value)
        if not entries:
            raise invalid_value("A remove with an empty value list would remove nothing; send no value to remove all")
        for member_id, _ in entries:
            change.remove(member_id)
    elif op == "replace":
        entries = member_entries(value if value is not None else [])
        change.remove_all()
        for member_id, display in entries:
            change.add(member_id, display)
    elif op == "add":
        if value is None:
            raise invalid_value("An add of members needs a value list")
        for member_id, display in member_entries(value):
            change.add(member_id, display)
    else:
        raise invalid_value(f"Unknown operation {op!r}")


def _selected_ids(path: str) -> list[str] | None:
    """The ids a ``members[value eq "a" or value eq "b"]`` path selects; None when the path has no filter."""
    if "[" not in path:
        return None
    inner = path[path.index("[") + 1 : path.rindex("]")] if path.rstrip().endswith("]") else None
    if inner is None:
        raise invalid_path("Sub-attributes of members cannot be patched")
    selected = _plain_value_terms(inner)
    if selected is None:
        try:
            node = ScimFilter(inner).ast
        except (SCIMException, ValueError) as exc:
            raise invalid_path("The members filter is not valid") from exc
        selected = _value_eq_terms(node)
    if len(selected) > MAX_MEMBERS_PER_OPERATION:
        raise invalid_value(f"At most {MAX_MEMBERS_PER_OPERATION} members may be given at once")
    return selected


def _plain_value_terms(inner: str) -> list[str] | None:
    """The ids of a filter written the way clients write it, ``value eq "a" or value eq "b"`` (lower case, single
    spaces, ids without quotes, backslashes or brackets), read without the filter parser: parsing 1,000 such terms
    took 30 ms of the loop in one step. None for any other filter, which the parser reads as before."""
    if not _PLAIN_VALUE_TERMS.fullmatch(inner):
        return None
    return _PLAIN_VALUE.findall(inner)


_PLAIN_ID = r'"([^"\\\[\]]*)"'
_PLAIN_VALUE = re.compile(_PLAIN_ID)
_PLAIN_VALUE_TERMS = re.compile(rf" *value eq {_PLAIN_ID}(?: or value eq {_PLAIN_ID})* *")


def _value_eq_terms(node: FilterNode) -> list[str]:
    if isinstance(node, LogicalExpr) and node.op == LogicalOperator.or_:
        return [value for term in node.terms for value in _value_eq_terms(term)]
    if (
        isinstance(node, Comparison)
        and node.op == CompareOperator.eq
        and node.attr_path.attr.lower() == "value"
        and node.attr_path.sub_attr is None
        and isinstance(node.value, str)
    ):
        return [node.value]
    raise invalid_path('A members filter may only select by value: members[value eq "<id>"]')


def _attribute(path: str) -> str:
    """The top-level attribute a path names, without URN prefix, filter or sub-attribute."""
    name = path.split("[", 1)[0].strip()
    name = name.rsplit(":", 1)[-1] if name.lower().startswith("urn:") else name
    return name.split(".", 1)[0].lower()
