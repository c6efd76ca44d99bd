"""SCIM filter text → a bound :class:`ScimFilter` (the in-memory predicate) and an index plan for the store.

Every filter Entra uses to match a resource (``userName eq``, ``externalId eq``, ``id eq``,
``emails[type eq "work"].value eq``, group ``displayName eq``, ``id eq "g" and members[value eq "u"]``) is answered
from keys: the plan names the index and the value, the store reads the few candidate resources, and the full filter
is still evaluated on each candidate, so the index only narrows and never decides. Any other valid filter is a scan.

Group members are not part of the stored group document, so a filter on ``members`` is evaluated against the
membership rows of the member ids it names (``member_ids``), read by point reads.

Limits, each a 400 ``invalidFilter``: :data:`MAX_FILTER_LENGTH` characters, :data:`MAX_FILTER_DEPTH` levels of
nesting and :data:`MAX_FILTER_TERMS` comparisons, all checked on the text before it is parsed; and no unpaired
surrogate, raw or written as a ``\ud800`` escape (such text has no UTF-8 form, so it could reach neither a key
nor a response).
"""

import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from scim2_models import SCIMException, ScimFilter
from scim2_models.path import AttrPath, CompareOperator, Comparison, FilterNode, LogicalExpr, Not, Present, ValuePath
from scim2_models.path.expressions import LogicalOperator

from scim import cpu_share
from scim.errors import invalid_filter
from scim.protocol import has_lone_surrogate
from scim.schemas import ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA, ScimGroup, ScimUser, is_undeclared_extension

MAX_FILTER_LENGTH = 2048
MAX_FILTER_DEPTH = 32
"""The deepest nesting of parentheses and value-path brackets a filter (or a PATCH path) may have; ``not`` always
opens a parenthesis, so it counts too. The parser, the planner and the predicate all recurse over the syntax tree:
without this bound, ``((((…))))`` or ``not (not (…))`` a thousand deep reaches Python's recursion limit in one of
them. Entra's filters are at most 2 deep."""
MAX_FILTER_TERMS = 100
"""The most comparisons (``eq``, ``pr``…) one filter or one PATCH path may hold; Entra's hold at most 2. Parsing and
evaluating cost grows with them (11,000 ``or``-joined terms in a PATCH path took 5.5 s of CPU), so they are counted
on the text, in one pass, before anything is parsed. A ``members[value eq …]`` path may name more (one per member,
:data:`scim.membership.MAX_MEMBERS_PER_OPERATION`)."""
_COMPARISON = re.compile(r"(?i)(?<![\w.:$-])(?:eq|ne|co|sw|ew|gt|ge|lt|le|pr)(?![\w.:$-])")
_CORE_URNS = {USER_SCHEMA.lower(), GROUP_SCHEMA.lower()}
_QUOTED = re.compile(r'("[^"\\]*(?:\\.[^"\\]*)*")')
_DEPTH_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)|[()\[\]]', re.DOTALL)
"""A quoted string (to its end when it is never closed), or a bracket outside one."""
_BARE_VALUE = re.compile(r"(?i)\b(eq|ne|co|sw|ew|gt|ge|lt|le)(\s+)([^\s\"()\[\]]+)")
_LITERAL = re.compile(r"(?i)true|false|null|-?\d+(\.\d+)?([eE][-+]?\d+)?")
_OR_TOKENS = re.compile(_DEPTH_TOKENS.pattern + r"|(?i: or )", re.DOTALL)
"""What :data:`_DEPTH_TOKENS` finds, and an `` or `` outside a quoted string."""
_NOT_SCIM_SYNTAX = "The filter is not valid SCIM filter syntax for this resource type"
TERMS_PER_TURN = 10
"""Comparisons parsed in one turn at the CPU (about a quarter of a millisecond); a filter of no more is parsed
inline (:func:`parse_filter_shared`)."""


@dataclass(frozen=True)
class IndexLookup:
    """Candidates come from one index: ``id``, ``userName``, ``externalId``, ``email``, ``displayName``, ``member``."""

    index: str
    value: str


@dataclass(frozen=True)
class ParsedFilter:
    """A filter ready to run: ``lookup`` is None when the store must scan."""

    predicate: ScimFilter[Any]
    lookup: IndexLookup | None
    member_ids: frozenset[str] = frozenset()
    """The member ids the filter compares ``members.value`` with; only their membership rows matter to it."""
    extension_terms: "_ExtensionTerms | None" = None
    """Set when the filter names an undeclared extension attribute, which the models cannot see."""
    exact: bool = False
    """The filter is one ``eq`` on a key the index holds whole (``id``, ``userName``, ``externalId``,
    ``displayName``): a candidate matches when its own value compares equal, so Entra's match needs no model
    validation of the candidate (:meth:`key_matches`; bench/lookup_cpu.py)."""

    def key_matches(self, value: Any) -> bool:
        """For an :attr:`exact` filter: whether a candidate holding ``value`` matches, compared as the attribute
        compares (``userName`` and ``displayName`` case-insensitively, ``id`` and ``externalId`` exactly)."""
        assert self.lookup is not None
        if not isinstance(value, str):
            return False
        if self.lookup.index in _CASE_EXACT_KEYS:
            return value == self.lookup.value
        return fold(value) == fold(self.lookup.value)

    def matches(self, resource: Any, document: dict[str, Any]) -> bool:
        """Whether the resource (its model, and the stored ``document`` holding its undeclared extensions) matches."""
        if self.extension_terms is None:
            return bool(self.predicate.match(resource))
        return self.extension_terms.matches(self.predicate.ast, resource, document)


def fold(value: str) -> str:
    """The comparison form of a case-insensitive value; the same mapping scim2-models' filters use."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).lower())


def parse_filter(text: str, model: type[Any] = ScimUser, extra: Mapping[str, str] | None = None) -> ParsedFilter:
    """Parse a filter for the endpoint of ``model`` (User or Group), or raise 400 ``invalidFilter``.

    ``extra`` maps the canonical paths of configured indexed attributes (:mod:`scim.indexes`) to their index names.
    """
    _check_text(text)
    return _bound(_parsed(_quote_bare_values(text)), model, extra)


async def parse_filter_shared(
    text: str, model: type[Any] = ScimUser, extra: Mapping[str, str] | None = None
) -> ParsedFilter:
    """:func:`parse_filter`, a long filter's top-level ``or`` terms parsed :data:`TERMS_PER_TURN` per turn at the
    CPU (:mod:`scim.cpu_share`): the parser took 2.5-5 ms for 100 comparisons in one go, the longest single step a
    scan left on the instance's loop. ``or`` binds loosest, so the terms between top-level ``or`` operators are filters
    of their own, and the filter is their ``or``: the same tree as the whole parse (a unit test compares them), the
    same refusals. A filter of few comparisons, as every one Entra sends, is parsed inline, with no turn."""
    if _check_text(text) <= TERMS_PER_TURN:
        return _bound(_parsed(_quote_bare_values(text)), model, extra)
    terms = or_terms(_quote_bare_values(text))
    nodes: list[FilterNode] = []
    for start in range(0, len(terms), TERMS_PER_TURN):
        async with cpu_share.turn():
            nodes.extend(_parsed(term) for term in terms[start : start + TERMS_PER_TURN])
    node = nodes[0] if len(nodes) == 1 else LogicalExpr(LogicalOperator.or_, tuple(nodes))
    async with cpu_share.turn():
        return _bound(node, model, extra)


def or_terms(text: str) -> list[str]:
    """The text between the top-level `` or `` operators (outside quoted strings, parentheses and brackets)."""
    terms: list[str] = []
    start = depth = 0
    for match in _OR_TOKENS.finditer(text):
        token = match.group()
        if token in ("(", "["):
            depth += 1
        elif token in (")", "]"):
            depth = max(depth - 1, 0)
        elif depth == 0 and not token.startswith('"'):
            terms.append(text[start : match.start()])
            start = match.end()
    terms.append(text[start:])
    return terms


def _check_text(text: str) -> int:
    """The limits checked on the text, before any parsing; the comparisons it holds."""
    if len(text) > MAX_FILTER_LENGTH:
        raise invalid_filter(f"A filter may be at most {MAX_FILTER_LENGTH} characters long")
    if nesting_depth(text) > MAX_FILTER_DEPTH:
        raise invalid_filter(f"A filter may nest at most {MAX_FILTER_DEPTH} levels deep")
    comparisons = comparison_count(text)
    if comparisons > MAX_FILTER_TERMS:
        raise invalid_filter(f"A filter may hold at most {MAX_FILTER_TERMS} comparisons")
    if has_lone_surrogate(text):
        raise invalid_filter("The filter is not valid Unicode text")
    return comparisons


def _parsed(text: str) -> FilterNode:
    try:
        return ScimFilter(text).ast
    except (SCIMException, ValueError, TypeError, RecursionError) as exc:
        raise invalid_filter(_NOT_SCIM_SYNTAX) from exc


def _bound(node: FilterNode, model: type[Any], extra: Mapping[str, str] | None) -> ParsedFilter:
    """The parsed tree bound to ``model``'s attributes, with its index plan."""
    try:
        predicate = ScimFilter[model](_canonical(node))  # type: ignore[valid-type]
    except (SCIMException, ValueError, TypeError, RecursionError) as exc:
        raise invalid_filter(_NOT_SCIM_SYNTAX) from exc
    if any(isinstance(value, str) and has_lone_surrogate(value) for value in _values(predicate.ast)):
        raise invalid_filter("The filter is not valid Unicode text")  # written as an escape: "\\ud800"
    indexed = _GROUP_INDEXES if model is ScimGroup else _USER_INDEXES
    member_ids = frozenset(_member_values(predicate.ast)) if model is ScimGroup else frozenset()
    resource_type = "Group" if model is ScimGroup else "User"
    terms = _ExtensionTerms(model, resource_type) if _names_extension(predicate.ast, resource_type) else None
    core = (GROUP_SCHEMA if model is ScimGroup else USER_SCHEMA).lower()
    lookup = _plan(predicate.ast, indexed, _Extra(core, extra or {}))
    exact = lookup is not None and lookup.index in _WHOLE_KEYS and isinstance(predicate.ast, Comparison)
    return ParsedFilter(predicate, lookup, member_ids, extension_terms=terms, exact=exact)


def nesting_depth(text: str) -> int:
    """How deep ``(`` and ``[`` nest outside quoted strings: one pass, no recursion, whatever the text is. The pass
    is over brackets and quoted strings (a string left open runs to the end), found by one regular expression, not
    over every character: a PATCH path naming 1,000 members is 50 KB, 1.6 ms of the loop walked in Python."""
    depth = deepest = 0
    for token in _DEPTH_TOKENS.findall(text):
        if token in ("(", "["):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (")", "]"):
            depth = max(depth - 1, 0)
    return deepest


def comparison_count(text: str) -> int:
    """How many comparison operators a filter (or a PATCH path) holds outside quoted strings, before parsing. The
    unquoted parts are searched as one text, each quoted string replaced by a space (an operator never spans two
    parts, and a space bounds it as the part's end did): one search, not one per quoted value."""
    return len(_COMPARISON.findall(_QUOTED.sub(" ", text)))


def _values(node: FilterNode) -> Iterator[object]:
    """Every value the filter compares with, as parsed (JSON escapes in the text are decoded by then)."""
    if isinstance(node, LogicalExpr):
        for term in node.terms:
            yield from _values(term)
    elif isinstance(node, Not):
        yield from _values(node.expr)
    elif isinstance(node, ValuePath):
        yield from _values(node.val_filter)
    elif isinstance(node, Comparison):
        yield node.value


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
    """Rewrite ``manager eq "id"`` (Entra's 2020 reference check) into the enterprise manager's value, and
    ``members eq "id"`` (the form other providers document) into ``members.value``."""
    if isinstance(node, Comparison) and node.attr_path.attr.lower() == "members" and node.attr_path.sub_attr is None:
        return replace(node, attr_path=AttrPath("members", "value", node.attr_path.uri))
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


_USER_INDEXES = {"id": "id", "username": "userName", "externalid": "externalId", "emails.value": "email"}
_GROUP_INDEXES = {"id": "id", "displayname": "displayName", "externalid": "externalId", "members.value": "member"}
_WHOLE_KEYS = frozenset({"id", "userName", "externalId", "displayName"})
_CASE_EXACT_KEYS = frozenset({"id", "externalId"})
_PLAN_PREFERENCE = ("id", "userName", "displayName", "externalId", "email", "member")


@dataclass(frozen=True)
class _Extra:
    """Configured indexed attributes: canonical path (``<urn>:<name>`` lower-cased) → index name."""

    core_urn: str
    names: Mapping[str, str]

    def lookup(self, node: Comparison) -> IndexLookup | None:
        if not self.names or node.op != CompareOperator.eq or not isinstance(node.value, str):
            return None
        path = node.attr_path
        name = path.attr.lower() + (f".{path.sub_attr.lower()}" if path.sub_attr else "")
        index = self.names.get(f"{(path.uri or self.core_urn).lower()}:{name}")
        return IndexLookup(index, node.value) if index else None


def _preference(lookup: IndexLookup) -> int:
    """Built-in indexes first (unique ones are a point read); configured ones after them."""
    return _PLAN_PREFERENCE.index(lookup.index) if lookup.index in _PLAN_PREFERENCE else len(_PLAN_PREFERENCE)


def _plan(node: FilterNode, indexed: dict[str, str], extra: _Extra) -> IndexLookup | None:
    """The most selective index lookup the filter allows: any one term of a top-level ``and`` narrows enough."""
    if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_:
        lookups = [lookup for term in node.terms if (lookup := _plan(term, indexed, extra))]
        return min(lookups, key=_preference, default=None)
    if isinstance(node, Comparison):
        return _comparison_lookup(node, indexed) or extra.lookup(node)
    if isinstance(node, ValuePath) and _is_core(node.attr_path):
        index = indexed.get(f"{node.attr_path.attr.lower()}.value")
        value = _value_eq(node.val_filter)
        return IndexLookup(index, value) if index and value is not None else None
    return None


def _comparison_lookup(node: Comparison, indexed: dict[str, str]) -> IndexLookup | None:
    if node.op != CompareOperator.eq or not isinstance(node.value, str) or not _is_core(node.attr_path):
        return None
    name = node.attr_path.attr.lower()
    if node.attr_path.sub_attr:
        name = f"{name}.{node.attr_path.sub_attr.lower()}"
    index = indexed.get(name)
    return IndexLookup(index, node.value) if index else None


def _member_values(node: FilterNode, inside_members: bool = False) -> list[str]:
    """Every value ``members.value`` (or ``value`` inside a ``members[...]`` path) is compared ``eq`` with."""
    if isinstance(node, LogicalExpr):
        return [value for term in node.terms for value in _member_values(term, inside_members)]
    if isinstance(node, Not):
        return _member_values(node.expr, inside_members)
    if isinstance(node, ValuePath):
        return _member_values(node.val_filter, True) if node.attr_path.attr.lower() == "members" else []
    if not isinstance(node, Comparison) or node.op != CompareOperator.eq or not isinstance(node.value, str):
        return []
    path = node.attr_path
    if inside_members:
        return [node.value] if path.attr.lower() == "value" and path.sub_attr is None else []
    return [node.value] if path.attr.lower() == "members" and (path.sub_attr or "").lower() == "value" else []


def _value_eq(node: FilterNode) -> str | None:
    """The value of a ``value eq "x"`` term inside a value-path filter (``emails[type eq "work" and value eq "x"]``)."""
    terms = node.terms if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_ else (node,)
    for term in terms:
        if (
            isinstance(term, Comparison)
            and term.op == CompareOperator.eq
            and term.attr_path.attr.lower() == "value"
            and isinstance(term.value, str)
        ):
            return term.value
    return None


def _is_core(path: AttrPath) -> bool:
    return path.uri is None or path.uri.lower() in _CORE_URNS


def _names_extension(node: FilterNode, resource_type: str) -> bool:
    if isinstance(node, LogicalExpr):
        return any(_names_extension(term, resource_type) for term in node.terms)
    if isinstance(node, Not):
        return _names_extension(node.expr, resource_type)
    if isinstance(node, Comparison | Present | ValuePath):
        return is_undeclared_extension(node.attr_path.uri, resource_type)
    return False


class _ExtensionTerms:
    """Evaluates a filter that mixes model attributes and undeclared extension attributes: each term on the model
    is a bound :class:`ScimFilter` of its own (so the library's rules apply to it unchanged); each term on an
    extension attribute is compared with the stored value, case-insensitively (nothing declares it case-exact)."""

    def __init__(self, model: type[Any], resource_type: str) -> None:
        self._model = model
        self._resource_type = resource_type
        self._bound: dict[int, ScimFilter[Any]] = {}

    def matches(self, node: FilterNode, resource: Any, document: dict[str, Any]) -> bool:
        if isinstance(node, LogicalExpr):
            results = (self.matches(term, resource, document) for term in node.terms)
            return all(results) if node.op == LogicalOperator.and_ else any(results)
        if isinstance(node, Not):
            return not self.matches(node.expr, resource, document)
        if isinstance(node, Comparison | Present | ValuePath) and is_undeclared_extension(
            node.attr_path.uri, self._resource_type
        ):
            from scim import declarations  # loads after this module

            block = _find_key(document, node.attr_path.uri or "")
            extension = declarations.get(node.attr_path.uri, self._resource_type)
            case_exact = extension is not None and extension.case_exact(node.attr_path.attr)
            if extension is not None and isinstance(node, Comparison):
                node = typed_comparison(node, extension.attribute_type(node.attr_path.attr, node.attr_path.sub_attr))
            return value_matches(_without_uri(node), document.get(block) if block else None, case_exact)
        bound = self._bound.get(id(node))
        if bound is None:
            bound = self._bound[id(node)] = ScimFilter[self._model](node)  # type: ignore[name-defined]
        return bool(bound.match(resource))


def typed_comparison(node: Comparison, declared_type: str | None) -> Comparison:
    """The comparison with its value read as the declared attribute's type: a declared value is stored coerced
    (``"3"`` → 3, Entra's ``"True"`` → true), so ``level eq "3"`` must find the stored 3, as the same text sent in a
    body would have been stored. A value that does not read as the type stays as written (and matches nothing)."""
    value = node.value
    if not isinstance(value, str):
        return node
    coerced: Any = value
    if declared_type == "boolean" and value.lower() in ("true", "false"):
        coerced = value.lower() == "true"
    elif declared_type in ("integer", "decimal"):
        try:
            coerced = int(value) if declared_type == "integer" else float(value)
        except ValueError:
            return node
    return node if coerced is value else replace(node, value=coerced)


def _without_uri(node: Comparison | Present | ValuePath) -> FilterNode:
    return replace(node, attr_path=replace(node.attr_path, uri=None))


def _find_key(mapping: dict[str, Any], name: str) -> str | None:
    """The key of ``mapping`` that names ``name`` case-insensitively (SCIM names are case-insensitive)."""
    lowered = name.lower()
    return next((key for key in mapping if key.lower() == lowered), None)


def value_matches(node: FilterNode, item: Any, case_exact: bool = False) -> bool:
    """Evaluate ``node`` (attribute paths without a URN) against a JSON object kept as sent: an undeclared
    extension block, or one entry of a multi-valued attribute inside it. Strings compare case-insensitively."""
    if isinstance(node, LogicalExpr):
        results = (value_matches(term, item, case_exact) for term in node.terms)
        return all(results) if node.op == LogicalOperator.and_ else any(results)
    if isinstance(node, Not):
        return not value_matches(node.expr, item, case_exact)
    if isinstance(node, ValuePath):
        values = _read(item, node.attr_path.attr, None)
        entries = values if isinstance(values, list) else [values] if values is not None else []
        return any(isinstance(entry, dict) and value_matches(node.val_filter, entry, case_exact) for entry in entries)
    if isinstance(node, Present):
        return _present(_read(item, node.attr_path.attr, node.attr_path.sub_attr))
    if isinstance(node, Comparison):
        actual = _read(item, node.attr_path.attr, node.attr_path.sub_attr)
        if isinstance(actual, list):
            if node.op == CompareOperator.ne:
                return all(_compare(value, node.value, node.op, case_exact) for value in actual)
            return any(_compare(value, node.value, node.op, case_exact) for value in actual)
        return _compare(actual, node.value, node.op, case_exact)
    return False


def _read(item: Any, attr: str, sub_attr: str | None) -> Any:
    if not isinstance(item, dict):
        return None
    key = _find_key(item, attr)
    value = item.get(key) if key else None
    if sub_attr is None:
        return value
    if isinstance(value, list):
        return [_read(entry, sub_attr, None) for entry in value if isinstance(entry, dict)]
    return _read(value, sub_attr, None)


def _present(value: Any) -> bool:
    if isinstance(value, list):
        return any(_present(entry) for entry in value)
    return value not in (None, "", {}, [])


def _compare(actual: Any, expected: Any, op: CompareOperator, case_exact: bool = False) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        if not case_exact:
            actual, expected = fold(actual), fold(expected)
    elif isinstance(actual, bool) != isinstance(expected, bool):
        return op == CompareOperator.ne
    elif not (_is_number(actual) and _is_number(expected)) and not isinstance(actual, bool):
        return op == CompareOperator.ne and actual != expected
    if op == CompareOperator.eq:
        return actual == expected
    if op == CompareOperator.ne:
        return actual != expected
    if isinstance(actual, str):
        if op == CompareOperator.co:
            return expected in actual
        if op == CompareOperator.sw:
            return actual.startswith(expected)
        if op == CompareOperator.ew:
            return actual.endswith(expected)
    if isinstance(actual, bool) or op in (CompareOperator.co, CompareOperator.sw, CompareOperator.ew):
        return False
    if op == CompareOperator.gt:
        return actual > expected
    if op == CompareOperator.ge:
        return actual >= expected
    if op == CompareOperator.lt:
        return actual < expected
    return actual <= expected


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
