"""Entra's request shapes that scim2-models does not read as Entra means them, rewritten into RFC 7644 form.

Every quirk lives here, in front of the library, instead of as special cases through the service. The shapes are
catalogued in ``docs/entra-client.md`` (§29-32 for PATCH, §20 for POST):

- the enterprise ``manager`` as a bare id string, a one-element list, ``{"Value": …}``, or ``""``/``null`` to clear it;
- a single-valued attribute sent as ``[{"$ref": null, "value": x}]``;
- ``"value": ""`` or ``null`` on ``add``/``replace``, meaning "clear this attribute" (never for ``members``, where
  reading it so would empty a group);
- path-less ``add``/``replace`` whose value keys are attribute paths (``name.givenName``, full extension URNs);
- ``remove`` of the manager through a ``manager[value eq "…"]`` filter;
- schema URNs no declared schema has (Tutorial example 2 sends a malformed enterprise URN, and every group create
  carries ``http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group``), which are dropped.

Case-insensitive ``op`` values, ``"True"``/``"False"`` strings, Entra's value-path filters and value-list removes
are already handled by scim2-models under :data:`scim.schemas.ENTRA_POLICY`.
"""

import re
from functools import lru_cache
from typing import Any

from scim.errors import invalid_path, invalid_syntax, invalid_value
from scim.filters import MAX_FILTER_DEPTH, MAX_FILTER_TERMS, comparison_count, nesting_depth
from scim.membership import MAX_MEMBERS_PER_OPERATION, is_members_path
from scim.schemas import ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA

_MANAGER_PATH = re.compile(
    rf"^(?:{re.escape(ENTERPRISE_SCHEMA)}:)?manager(?:\[[^\]]*\])?(?:\.value)?$",
    re.IGNORECASE,
)
_MULTI_VALUED = {
    "emails", "phonenumbers", "ims", "photos", "addresses", "groups", "entitlements", "roles",
    "x509certificates", "members",
}  # fmt: skip
_KNOWN_SCHEMAS = {urn.lower(): urn for urn in (USER_SCHEMA, ENTERPRISE_SCHEMA, GROUP_SCHEMA)}
MAX_OPERATIONS = 100
"""The most operations one PATCH may carry; Entra sends a handful. Each operation's path may nest at most
:data:`scim.filters.MAX_FILTER_DEPTH` levels deep (``emails[type eq "work"]`` is 1) and hold at most
:data:`scim.filters.MAX_FILTER_TERMS` comparisons."""
MAX_EXPANDED_OPERATIONS = 2 * MAX_OPERATIONS
"""Operations after normalisation: a path-less ``replace`` becomes one per attribute it names, a ``manager`` two."""
_path_terms = lru_cache(maxsize=1)(comparison_count)
"""The comparisons of the path counted last: each path is counted when its operation is read and again for the
PATCH's total (:func:`_check_path_terms`), and a path naming 1,000 members takes 0.7 ms a count."""


def normalise_resource(body: Any) -> dict[str, Any]:
    """Rewrite a POST/PUT body into the form the models validate."""
    if not isinstance(body, dict):
        raise invalid_syntax("The request body must be a JSON object")
    body = dict(body)
    schemas = body.get("schemas")
    if isinstance(schemas, list):
        body["schemas"] = [
            _KNOWN_SCHEMAS[s.lower()] for s in schemas if isinstance(s, str) and s.lower() in _KNOWN_SCHEMAS
        ]
    for key, block in list(body.items()):
        if key.lower() == ENTERPRISE_SCHEMA.lower() and isinstance(block, dict):
            body[key] = _normalise_enterprise(block)
    return body


def _normalise_enterprise(block: dict[str, Any]) -> dict[str, Any]:
    block = dict(block)
    for key in [k for k in block if k.lower() == "manager"]:
        manager = _manager_object(block.pop(key))
        if manager is not None:
            block["manager"] = manager
    return block


def _manager_object(value: Any) -> dict[str, Any] | None:
    """The manager in RFC object form, or None when the value means "no manager"."""
    if isinstance(value, list):
        if len(value) > 1:
            raise invalid_value("manager is single-valued")
        value = value[0] if value else None
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return {"value": value}
    if isinstance(value, dict):
        lowered = {k.lower(): v for k, v in value.items()}
        if lowered.get("value") in (None, ""):
            return None
        return value
    raise invalid_value("manager must be an id or an object with a value")


def normalise_patch(body: Any) -> dict[str, Any]:
    """Rewrite a PatchOp body so that each operation means what Entra meant by it."""
    if not isinstance(body, dict):
        raise invalid_syntax("The request body must be a JSON object")
    operations_key = next((k for k in body if k.lower() == "operations"), None)
    operations = body.get(operations_key) if operations_key else None
    if not isinstance(operations, list) or not operations:
        raise invalid_syntax("A PatchOp needs a non-empty Operations list")
    if len(operations) > MAX_OPERATIONS:
        raise invalid_value(f"A PATCH may carry at most {MAX_OPERATIONS} operations")
    rewritten: list[dict[str, Any]] = []
    for operation in operations:
        rewritten.extend(_normalise_operation(operation))
        if len(rewritten) > MAX_EXPANDED_OPERATIONS:
            raise invalid_value(
                f"A PATCH may carry at most {MAX_OPERATIONS} operations, and a path-less value's attributes count "
                f"as operations: at most {MAX_EXPANDED_OPERATIONS} in all"
            )
    _check_path_terms(rewritten)
    body = {k: v for k, v in body.items() if k != operations_key}
    body["Operations"] = rewritten
    return body


def _check_path_terms(operations: list[dict[str, Any]]) -> None:
    """The comparisons of all paths in one PATCH, like one filter's, are bounded in total: each operation's own
    bound times 100 operations would still be seconds of parsing."""
    member_terms = other_terms = 0
    for operation in operations:
        path = operation.get("path")
        if isinstance(path, str) and "[" in path:
            if is_members_path(path):
                member_terms += _path_terms(path)
            else:
                other_terms += _path_terms(path)
    if member_terms > MAX_MEMBERS_PER_OPERATION:
        raise invalid_value(f"At most {MAX_MEMBERS_PER_OPERATION} members may be named in one PATCH's paths")
    if other_terms > MAX_FILTER_TERMS:
        raise invalid_path(f"A PATCH's paths may hold at most {MAX_FILTER_TERMS} comparisons in all")


def _normalise_operation(operation: Any) -> list[dict[str, Any]]:
    if not isinstance(operation, dict):
        raise invalid_syntax("Each PATCH operation must be a JSON object")
    lowered = {k.lower(): v for k, v in operation.items()}
    op = lowered.get("op")
    if not isinstance(op, str):
        raise invalid_syntax("Each PATCH operation needs an 'op'")
    op = op.lower()
    path = lowered.get("path")
    has_value = "value" in lowered
    value = lowered.get("value")
    if path is None and op in ("add", "replace") and isinstance(value, dict):
        return [
            rewritten for key, item in value.items() for rewritten in _normalise_path_operation(op, key, item, True)
        ]
    if path is not None and not isinstance(path, str):
        raise invalid_path("'path' must be a string")
    if path is None:
        return [_without_none({"op": op, "value": value} if has_value else {"op": op})]
    return _normalise_path_operation(op, path, value, has_value)


def _normalise_path_operation(op: str, path: str, value: Any, has_value: bool) -> list[dict[str, Any]]:
    if path.strip().lower() == "schemas" and op in ("add", "replace") and isinstance(value, list):
        return _schemas_operation(op, value)
    if nesting_depth(path) > MAX_FILTER_DEPTH:  # a path's value filter is parsed and walked like any filter
        raise invalid_path(f"A path may nest at most {MAX_FILTER_DEPTH} levels deep")
    if is_members_path(path) and _path_terms(path) > MAX_MEMBERS_PER_OPERATION:
        raise invalid_value(f"At most {MAX_MEMBERS_PER_OPERATION} members may be given at once")
    if not is_members_path(path) and _path_terms(path) > MAX_FILTER_TERMS:
        raise invalid_path(f"A path's filter may hold at most {MAX_FILTER_TERMS} comparisons")
    if _MANAGER_PATH.match(path):
        return _manager_operations(op, value)
    if op in ("add", "replace") and (value is None or value == "") and not is_members_path(path):
        return [{"op": "remove", "path": path}]
    if op in ("add", "replace") and _is_single_valued(path):
        value = _unwrap_value_list(value)
    operation: dict[str, Any] = {"op": op, "path": path}
    if has_value:
        operation["value"] = value
    return [operation]


def _manager_operations(op: str, value: Any) -> list[dict[str, Any]]:
    """Clearing is a remove; setting removes first, since an RFC replace of a complex value would keep an old $ref."""
    remove = {"op": "remove", "path": f"{ENTERPRISE_SCHEMA}:manager"}
    manager = None if op == "remove" else _manager_object(value)
    if manager is None:
        return [remove]
    return [remove, {"op": "add", "path": remove["path"], "value": manager}]


def _schemas_operation(op: str, value: list[Any]) -> list[dict[str, Any]]:
    """``schemas`` names the schemas a resource's attributes come from; a PATCH may only name those the endpoint
    serves, exactly as a POST or PUT may (others are dropped there too): an ``add`` of only unknown URNs adds
    nothing, and a ``replace`` keeps the known ones (and must still name the core schema)."""
    known = [_KNOWN_SCHEMAS[urn.lower()] for urn in value if isinstance(urn, str) and urn.lower() in _KNOWN_SCHEMAS]
    if op == "add" and not known:
        return []
    return [{"op": op, "path": "schemas", "value": known}]


def _is_single_valued(path: str) -> bool:
    if "[" in path:
        return True
    name = path.rsplit(":", 1)[-1].split(".", 1)[0].lower()
    return name not in _MULTI_VALUED


def _unwrap_value_list(value: Any) -> Any:
    """``[{"$ref": null, "value": x}]`` on a single-valued attribute is the legacy spelling of ``x``."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        keys = {k.lower() for k in value[0]}
        if "value" in keys and keys <= {"value", "$ref", "display"}:
            return next(v for k, v in value[0].items() if k.lower() == "value")
    return value


def _without_none(operation: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in operation.items() if v is not None}
