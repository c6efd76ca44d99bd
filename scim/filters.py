"""SCIM filter text → a bound :class:`ScimFilter` (the in-memory predicate) and an index plan for the store.

Every filter Entra uses to match a resource (``userName eq``, ``externalId eq``, ``id eq``,
``emails[type eq "work"].value eq``) is answered from keys: the plan names the index and the value, the store reads
the few candidate resources, and the full filter is still evaluated on each candidate, so the index only narrows and
never decides. Any other valid filter is a scan.
"""

import json
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Any

from scim2_models import SCIMException, ScimFilter
from scim2_models.path import AttrPath, CompareOperator, Comparison, FilterNode, LogicalExpr, Not, ValuePath
from scim2_models.path.expressions import LogicalOperator

from scim.errors import invalid_filter
from scim.schemas import ENTERPRISE_SCHEMA, USER_SCHEMA, ScimUser

MAX_FILTER_LENGTH = 2048
_CORE_URNS = {USER_SCHEMA.lower()}
_QUOTED = re.compile(r'("(?:[^"\\]|\\.)*")')
_BARE_VALUE = re.compile(r"(?i)\b(eq|ne|co|sw|ew|gt|ge|lt|le)(\s+)([^\s\"()\[\]]+)")
_LITERAL = re.compile(r"(?i)true|false|null|-?\d+(\.\d+)?([eE][-+]?\d+)?")


@dataclass(frozen=True)
class IndexLookup:
    """Candidates come from one index: ``index`` is ``id``, ``userName``, ``externalId`` or ``email``."""

    index: str
    value: str


@dataclass(frozen=True)
class ParsedFilter:
    """A filter ready to run: ``lookup`` is None when the store must scan."""

    predicate: ScimFilter[Any]
    lookup: IndexLookup | None


def fold(value: str) -> str:
    """The comparison form of a case-insensitive value; the same mapping scim2-models' filters use."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).lower())


def parse_filter(text: str) -> ParsedFilter:
    """Parse a filter for the User endpoint, or raise 400 ``invalidFilter``."""
    if len(text) > MAX_FILTER_LENGTH:
        raise invalid_filter(f"A filter may be at most {MAX_FILTER_LENGTH} characters long")
    try:
        node = ScimFilter(_quote_bare_values(text)).ast
        predicate = ScimFilter[ScimUser](_canonical(node))  # type: ignore[type-var]
    except (SCIMException, ValueError, TypeError, RecursionError) as exc:
        raise invalid_filter("The filter is not valid SCIM filter syntax for this resource type") from exc
    return ParsedFilter(predicate=predicate, lookup=_plan(predicate.ast))


def _quote_bare_values(text: str) -> str:
    """Quote unquoted values (``externalId eq jyoung``), as Entra's own tutorial sends them; RFC values stay."""
    parts = _QUOTED.split(text)
    for i in range(0, len(parts), 2):
        parts[i] = _BARE_VALUE.sub(_quote_match, parts[i])
    return "".join(parts)


def _quote_match(match: re.Match[str]) -> str:
    operator, space, value = match.groups()
    if _LITERAL.fullmatch(value):
        return match.group(0)
    return f"{operator}{space}{json.dumps(value)}"


def _canonical(node: FilterNode) -> FilterNode:
    """Rewrite ``manager eq "id"`` (Entra's 2020 reference check) into the enterprise manager's value."""
    if (
        isinstance(node, Comparison)
        and node.attr_path.uri is None
        and node.attr_path.attr.lower() == "manager"
        and node.attr_path.sub_attr in (None, "value")
    ):
        return replace(node, attr_path=AttrPath("manager", "value", ENTERPRISE_SCHEMA))
    if isinstance(node, LogicalExpr):
        return replace(node, terms=tuple(_canonical(term) for term in node.terms))
    if isinstance(node, Not):
        return replace(node, expr=_canonical(node.expr))
    return node


def _plan(node: FilterNode) -> IndexLookup | None:
    if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_:
        return next((lookup for term in node.terms if (lookup := _plan(term))), None)
    if isinstance(node, Comparison):
        return _comparison_lookup(node)
    if isinstance(node, ValuePath) and _is_core(node.attr_path) and node.attr_path.attr.lower() == "emails":
        return _email_lookup(node.val_filter)
    return None


def _comparison_lookup(node: Comparison) -> IndexLookup | None:
    if node.op != CompareOperator.eq or not isinstance(node.value, str) or not _is_core(node.attr_path):
        return None
    attr, sub = node.attr_path.attr.lower(), (node.attr_path.sub_attr or "").lower()
    if sub == "" and attr in ("id", "username", "externalid"):
        return IndexLookup({"id": "id", "username": "userName", "externalid": "externalId"}[attr], node.value)
    if attr == "emails" and sub == "value":
        return IndexLookup("email", node.value)
    return None


def _email_lookup(node: FilterNode) -> IndexLookup | None:
    terms = node.terms if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_ else (node,)
    for term in terms:
        if (
            isinstance(term, Comparison)
            and term.op == CompareOperator.eq
            and term.attr_path.attr.lower() == "value"
            and isinstance(term.value, str)
        ):
            return IndexLookup("email", term.value)
    return None


def _is_core(path: AttrPath) -> bool:
    return path.uri is None or path.uri.lower() in _CORE_URNS
