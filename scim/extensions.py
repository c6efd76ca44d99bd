"""Undeclared extension attributes: kept exactly as sent, returned, projected and patched, never silently dropped.

An admin adds a custom attribute in Entra's attribute-list editor as
``urn:ietf:params:scim:schemas:extension:<name>:<version>:User:<attribute>`` and Entra sends it under that URN, without
listing the URN in ``schemas[]`` (``shared/research/entra-client.md`` §20, §53). No schema here declares it, so
scim2-models cannot validate it; instead each such extension is a *block* (the JSON object under its URN), stored in
the resource's document beside the attributes the models validate, with every value keeping its JSON type.

- POST/PUT: the blocks are taken out of the body before the models read it (:func:`split_body`); PUT replaces them.
- PATCH: every operation whose path is in an undeclared extension (``<urn>:attr``, ``<urn>:attr.sub``,
  ``<urn>:attr[filter]``, ``<urn>:attr[filter].sub``, or ``<urn>`` itself with a block as value, which is what
  Entra's path-less form becomes after :func:`scim.entra.normalise_patch`) is applied here
  (:func:`apply_operations`); the others go to scim2-models as before.
- Responses: the URN of each block returned is added to ``schemas[]``, and ``attributes``/``excludedAttributes``
  select blocks and attributes inside them (:func:`project`).

``SCIM_UNDECLARED_EXTENSIONS=reject`` refuses them instead: a 400 naming the attribute.
"""

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from scim2_models import Path, SCIMException
from scim2_models.path import AttrPath, CompareOperator, Comparison, FilterNode, LogicalExpr, ValuePath
from scim2_models.path.expressions import LogicalOperator

from scim import declarations, errors, protocol
from scim.filters import value_matches
from scim.schemas import extension_resource_type, is_undeclared_extension

Blocks = dict[str, dict[str, Any]]
KEEP, REJECT = "keep", "reject"
MODES = (KEEP, REJECT)
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_$-]*")
"""RFC 7643 §2.1 ATTRNAME (with ``$`` for ``$ref``): a name that a PATCH path or a filter can address."""


@dataclass(frozen=True)
class Operation:
    """One PATCH operation on an undeclared extension; ``path`` is None when it targets the whole block."""

    op: str
    urn: str
    path: AttrPath | ValuePath | None
    value: Any
    text: str


def split_body(body: dict[str, Any], resource_type: str, mode: str) -> tuple[dict[str, Any], Blocks]:
    """The body without its undeclared extension blocks, and the blocks, checked.

    A top-level key ``<urn>:<attribute>`` is read as that attribute of the block, the way path-less PATCH values
    name it.
    """
    rest: dict[str, Any] = {}
    blocks: Blocks = {}
    for key, value in body.items():
        urn, attribute = _split_key(key)
        if not _is_extension_of_other_type(urn, resource_type) and not is_undeclared_extension(urn, resource_type):
            rest[key] = value
            continue
        _check_allowed(urn, key, resource_type, mode, errors.invalid_value)
        assert urn is not None
        if attribute:
            value = {attribute: value}
        elif value is None:
            continue
        elif not isinstance(value, dict):
            raise errors.invalid_value(f"{urn} must be a JSON object of attributes")
        block = blocks.setdefault(_existing_key(blocks, urn) or urn, {})
        for name, item in value.items():
            _check_name(urn, name)
            if _assigned(item):
                block[name] = item
    kept = {urn: block for urn, block in blocks.items() if block}
    protocol.require_unicode(kept)
    return rest, kept


def stored_blocks(document: dict[str, Any], resource_type: str) -> Blocks:
    """The undeclared extension blocks of a stored document."""
    return {key: value for key, value in document.items() if is_undeclared_extension(key, resource_type)}


def with_blocks(document: dict[str, Any], blocks: Blocks, resource_type: str) -> dict[str, Any]:
    """The document with exactly these blocks, and their URNs (and no other undeclared one) in ``schemas[]``."""
    document = {key: value for key, value in document.items() if not is_undeclared_extension(key, resource_type)}
    document.update(blocks)
    schemas = [urn for urn in document.get("schemas") or [] if not is_undeclared_extension(urn, resource_type)]
    document["schemas"] = schemas + list(blocks)
    return document


def split_operations(
    operations: Iterable[dict[str, Any]], resource_type: str, mode: str
) -> tuple[list[dict[str, Any]], list[Operation]]:
    """Normalised PATCH operations (see :func:`scim.entra.normalise_patch`) split into those the models apply and
    those on undeclared extensions."""
    others: list[dict[str, Any]] = []
    mine: list[Operation] = []
    for operation in operations:
        target = _target(operation.get("path"), resource_type)
        if target is None:
            others.append(operation)
            continue
        urn, path = target
        text = operation["path"]
        _check_allowed(urn, text, resource_type, mode, errors.invalid_path)
        mine.append(Operation(operation["op"], urn, path, operation.get("value"), text))
    return others, mine


def apply_operations(operations: list[Operation], blocks: Blocks) -> tuple[bool, Blocks]:
    """Apply the operations in order; whether anything changed, and the blocks after."""
    after = copy.deepcopy(blocks)
    for operation in operations:
        key = _existing_key(after, operation.urn) or operation.urn
        block = after.setdefault(key, {})
        _apply(operation, block)
        if not block:
            del after[key]
    protocol.require_unicode(after)
    return after != blocks, after


def shown(blocks: Blocks, resource_type: str, named: set[str] | frozenset[str] = frozenset()) -> Blocks:
    """What responses show of the blocks: a declared attribute ``returned: never`` is never shown, one ``returned:
    request`` only when ``attributes`` names it (``named``: lower-cased ``<urn>:<attribute>``)."""
    result: Blocks = {}
    for urn, block in blocks.items():
        extension = declarations.get(urn, resource_type)
        hidden = extension.hidden(named) if extension is not None else set()
        kept = {name: value for name, value in block.items() if f"{urn}:{name}".lower() not in hidden}
        if kept:
            result[urn] = kept
    return result


def named_paths(attributes: list[str] | None) -> set[str]:
    """``<urn>:<attribute>`` (lower-cased) of each path in ``attributes``, without filter or sub-attribute."""
    named = set()
    for path in attributes or ():
        head, separator, tail = str(path).split("[", 1)[0].rpartition(":")
        named.add(f"{head}{separator}{tail.split('.', 1)[0]}".lower())
    return named


def project(blocks: Blocks, attributes: list[str] | None, excluded: list[str] | None) -> Blocks:
    """The blocks (and attributes inside them) that ``attributes``/``excludedAttributes`` let through.

    As for declared attributes: a block is returned when ``attributes`` is absent or names it (or one of its
    attributes), and loses whatever ``excludedAttributes`` names.
    """
    named = _named(attributes or [])
    dropped = _named(excluded or [])
    selected: Blocks = {}
    for urn, block in blocks.items():
        wanted = named.get(urn.lower()) if attributes else set()
        if attributes and wanted is None:
            continue
        gone = dropped.get(urn.lower())
        if gone is not None and not gone:
            continue
        kept = {
            name: value
            for name, value in block.items()
            if (not wanted or name.lower() in wanted) and name.lower() not in (gone or set())
        }
        if kept:
            selected[urn] = kept
    return selected


def _named(paths: list[str]) -> dict[str, set[str]]:
    """Extension URN → the attribute names the paths name in it (empty: the whole block)."""
    named: dict[str, set[str]] = {}
    for path in paths:
        urn, attribute = _split_key(str(path).split("[", 1)[0])
        if urn is None or extension_resource_type(urn) is None:
            continue
        names = named.setdefault(urn.lower(), set())
        if attribute:
            names.add(attribute.split(".", 1)[0].lower())
        else:
            named[urn.lower()] = set()
    return {urn: names for urn, names in named.items()}


def _split_key(key: str) -> tuple[str | None, str | None]:
    """``<urn>`` → (urn, None); ``<urn>:<attribute>`` → (urn, attribute); anything else → (None, None)."""
    if extension_resource_type(key):
        return key, None
    urn, _, attribute = key.rpartition(":")
    if urn and extension_resource_type(urn) and attribute:
        return urn, attribute
    return None, None


def _is_extension_of_other_type(urn: str | None, resource_type: str) -> bool:
    other = extension_resource_type(urn) if urn else None
    return other is not None and other != resource_type


def _check_allowed(urn: str | None, named: str, resource_type: str, mode: str, error: Any) -> None:
    if _is_extension_of_other_type(urn, resource_type):
        raise error(f"{named} extends another resource type than {resource_type}")
    if mode == REJECT and declarations.get(urn, resource_type) is None:
        raise error(f"{named} is not a declared extension attribute (SCIM_UNDECLARED_EXTENSIONS=reject)")


def _check_name(urn: str, name: Any) -> None:
    if not isinstance(name, str) or not _ATTRIBUTE_NAME.fullmatch(name):
        raise errors.invalid_value(f"{urn} has an attribute name that is not a SCIM attribute name: {name!r}")


def _assigned(value: Any) -> bool:
    """RFC 7643 §2.5: null and an empty list mean unassigned."""
    return value is not None and value != []


def _existing_key(mapping: dict[str, Any], name: str) -> str | None:
    lowered = name.lower()
    return next((key for key in mapping if key.lower() == lowered), None)


def _target(path: Any, resource_type: str) -> tuple[str, AttrPath | ValuePath | None] | None:
    """The extension URN and the path inside it, when ``path`` is in an undeclared extension (or another
    resource type's extension, which is refused)."""
    if not isinstance(path, str):
        return None
    if extension_resource_type(path):
        handled_here = is_undeclared_extension(path, resource_type) or _is_extension_of_other_type(path, resource_type)
        return (path, None) if handled_here else None
    if not path.lower().startswith("urn:"):
        return None
    try:
        parsed = Path(path).ast
    except (SCIMException, ValueError, TypeError):
        return None
    if not isinstance(parsed, AttrPath | ValuePath):
        return None
    uri = parsed.attr_path.uri if isinstance(parsed, ValuePath) else parsed.uri
    if uri is None or extension_resource_type(uri) is None:
        return None
    if not (is_undeclared_extension(uri, resource_type) or _is_extension_of_other_type(uri, resource_type)):
        return None
    return uri, parsed


def _apply(operation: Operation, block: dict[str, Any]) -> None:
    path, op, value = operation.path, operation.op, operation.value
    if path is None:
        _apply_block(operation, block)
    elif isinstance(path, ValuePath):
        _apply_selection(operation, path, block)
    elif path.sub_attr is not None:
        _apply_sub_attribute(operation, path, block)
    elif op == "remove":
        _remove(block, path.attr, value)
    else:
        _check_name(operation.urn, path.attr)
        _set(block, path.attr, value, op)


def _apply_block(operation: Operation, block: dict[str, Any]) -> None:
    if operation.op == "remove":
        block.clear()
        return
    if not isinstance(operation.value, dict):
        raise errors.invalid_value(f"The value for {operation.urn} must be a JSON object of attributes")
    for name, item in operation.value.items():
        _check_name(operation.urn, name)
        if _assigned(item) and item != "":
            _set(block, name, item, operation.op)
        else:
            _remove(block, name, None)


def _set(block: dict[str, Any], name: str, value: Any, op: str) -> None:
    """``add`` appends to a multi-valued attribute and merges into a complex one; ``replace`` overwrites, except
    that a complex value keeps the sub-attributes it does not name (RFC 7644 §3.5.2.1, §3.5.2.3)."""
    key = _existing_key(block, name) or name
    current = block.get(key)
    if op == "add" and isinstance(current, list):
        block[key] = current + [item for item in (value if isinstance(value, list) else [value]) if item not in current]
    elif isinstance(current, dict) and isinstance(value, dict):
        block[key] = {**current, **value}
    else:
        block[key] = value


def _remove(block: dict[str, Any], name: str, value: Any) -> None:
    """Remove the attribute; with a value list (Entra's legacy remove), only those values of a multi-valued one."""
    key = _existing_key(block, name)
    if key is None:
        return
    current = block[key]
    if isinstance(current, list) and isinstance(value, list) and value:
        remaining = [item for item in current if item not in value]
        if remaining:
            block[key] = remaining
            return
    del block[key]


def _apply_sub_attribute(operation: Operation, path: AttrPath, block: dict[str, Any]) -> None:
    assert path.sub_attr is not None
    key = _existing_key(block, path.attr)
    current = block.get(key) if key else None
    if current is not None and not isinstance(current, dict):
        raise errors.invalid_path(f"{operation.text}: {path.attr} is not a complex attribute")
    if operation.op == "remove":
        if current is not None:
            _remove(current, path.sub_attr, operation.value)
            if not current:
                del block[key]  # type: ignore[arg-type]
        return
    _check_name(operation.urn, path.attr)
    _check_name(operation.urn, path.sub_attr)
    updated = dict(current or {})
    _set(updated, path.sub_attr, operation.value, operation.op)
    block[key or path.attr] = updated


def _apply_selection(operation: Operation, path: ValuePath, block: dict[str, Any]) -> None:
    """``attr[filter]`` and ``attr[filter].sub``: the entries the filter selects; add/replace of a filter that selects
    nothing creates the entry it describes, as Entra expects of ``emails[type eq "work"].value``."""
    name = path.attr_path.attr
    key = _existing_key(block, name)
    entries = block.get(key) if key else None
    if entries is not None and not isinstance(entries, list):
        raise errors.invalid_path(f"{operation.text}: {name} is not multi-valued")
    entries = list(entries or [])
    selected = [i for i, item in enumerate(entries) if isinstance(item, dict) and value_matches(path.val_filter, item)]
    if operation.op == "remove":
        if path.sub_attr is None:
            entries = [entry for i, entry in enumerate(entries) if i not in selected]
        else:
            for i in selected:
                entries[i] = {k: v for k, v in entries[i].items() if k.lower() != path.sub_attr.lower()}
    else:
        if not selected:
            entries.append(_entry_described_by(operation, path.val_filter))
            selected = [len(entries) - 1]
        for i in selected:
            entries[i] = _updated_entry(operation, path, dict(entries[i]))
    if entries:
        block[key or name] = entries
    elif key:
        del block[key]


def _updated_entry(operation: Operation, path: ValuePath, entry: dict[str, Any]) -> dict[str, Any]:
    if path.sub_attr is not None:
        _check_name(operation.urn, path.sub_attr)
        _set(entry, path.sub_attr, operation.value, "replace")
        return entry
    if not isinstance(operation.value, dict):
        raise errors.invalid_value(f"{operation.text}: the value must be a JSON object")
    return {**entry, **operation.value}


def _entry_described_by(operation: Operation, node: FilterNode) -> dict[str, Any]:
    """The entry a filter of ``eq`` terms joined by ``and`` describes (``type eq "work"`` → ``{"type": "work"}``)."""
    terms = node.terms if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_ else (node,)
    entry: dict[str, Any] = {}
    for term in terms:
        if not (isinstance(term, Comparison) and term.op == CompareOperator.eq and term.attr_path.sub_attr is None):
            raise errors.ScimError(400, f"{operation.text} selects nothing", "noTarget")
        entry[term.attr_path.attr] = term.value
    return entry
