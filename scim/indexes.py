"""Extra index rows for the attributes an admin lists in ``SCIM_INDEXED_ATTRIBUTES``: Entra's matching attribute is
configurable (employeeId → ``enterprise:2.0:User:employeeNumber``, or a custom attribute), and without an index each
match it sends would scan the tenant.

Each listed attribute gets shared (non-unique) index rows ``ix:<key name>:<sha256(value)>:<id>``, written in the
resource's transaction like ``externalId``'s, so ``eq`` on it is a prefix read. Values compare as the schema says:
case-exact attributes keep their case, the others (and every undeclared extension attribute) are folded.

Rows of an attribute added to the list later are built by ``python -m scim reindex`` (:mod:`scim.reindex`); until
it has finished for a tenant, its *ready* row is absent and filters on that attribute keep scanning, so they are
never wrong in between.
"""

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scim2_models import Path, SCIMException

from scim.declarations import DeclaredExtension
from scim.filters import fold
from scim.schemas import (
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    USER_SCHEMA,
    ScimGroup,
    ScimUser,
    extension_resource_type,
    is_undeclared_extension,
)
from scim.settings import ConfigurationError
from scim.store.contract import IndexKey

if TYPE_CHECKING:
    from scim.store.tables import TableStore

READY_PREFIX = "state:index:"
"""RowKey prefix of the row saying an index is complete for the tenant (outside the ``id:`` and ``ix:`` ranges)."""
_CORE = {"User": USER_SCHEMA, "Group": GROUP_SCHEMA}
_MODELS = {"User": ScimUser, "Group": ScimGroup}


@dataclass(frozen=True)
class IndexedAttribute:
    """One listed attribute: where its value lives in a stored document, and its index's key name."""

    path: str
    """The full path, as the admin wrote it (``urn:…:User:employeeNumber``)."""
    resource_type: str
    block: str | None
    """The extension URN whose object holds the attribute in a stored document; None for a core attribute."""
    attribute: str
    sub_attribute: str | None
    case_exact: bool

    @property
    def key_name(self) -> str:
        """The index's name in row keys: short, and free of the ``:`` the path has (hence a digest)."""
        return "a" + hashlib.sha256(self.canonical.encode()).hexdigest()[:16]

    @property
    def canonical(self) -> str:
        """The path as filters name it: URN and names lower-cased."""
        urn = (self.block or _CORE[self.resource_type]).lower()
        name = self.attribute.lower() + (f".{self.sub_attribute.lower()}" if self.sub_attribute else "")
        return f"{urn}:{name}"

    def values(self, document: dict[str, Any]) -> list[str]:
        """The distinct index values of a stored document: the string value, or each string of a list of them."""
        holder = _get(document, self.block) if self.block else document
        value = _get(holder, self.attribute)
        if self.sub_attribute is not None:
            value = _get(value, self.sub_attribute)
        values = value if isinstance(value, list) else [value]
        folded = {item if self.case_exact else fold(item) for item in values if isinstance(item, str) and item}
        return sorted(folded)

    def keys(self, document: dict[str, Any]) -> list[IndexKey]:
        return [IndexKey(self.key_name, value, unique=False) for value in self.values(document)]

    def lookup_value(self, value: str) -> str:
        return value if self.case_exact else fold(value)


def parse(raw: str, declared: Sequence[DeclaredExtension] = ()) -> tuple[IndexedAttribute, ...]:
    """Parse ``SCIM_INDEXED_ATTRIBUTES``: comma-separated attribute paths. A bare name is a core User attribute;
    ``urn:…:core:2.0:Group:<name>`` a core Group one; an extension path names its resource type in its URN."""
    parsed: dict[str, IndexedAttribute] = {}
    for item in (part.strip() for part in raw.split(",")):
        if item:
            attribute = _parse_one(item, declared)
            parsed.setdefault(attribute.canonical, attribute)
    return tuple(parsed.values())


def for_type(attributes: Iterable[IndexedAttribute], resource_type: str) -> tuple[IndexedAttribute, ...]:
    return tuple(attribute for attribute in attributes if attribute.resource_type == resource_type)


def index_keys(attributes: Sequence[IndexedAttribute], document: dict[str, Any]) -> list[IndexKey]:
    """The extra index keys of a stored document."""
    return [key for attribute in attributes for key in attribute.keys(document)]


def ready_row_key(attribute: IndexedAttribute) -> str:
    return f"{READY_PREFIX}{attribute.key_name}"


def _parse_one(path: str, declared: Sequence[DeclaredExtension]) -> IndexedAttribute:
    urn, _, name = path.rpartition(":")
    if urn and extension_resource_type(urn):
        resource_type = extension_resource_type(urn)
        assert resource_type is not None
        if is_undeclared_extension(urn, resource_type):
            attribute, _, sub = name.partition(".")
            if not attribute:
                raise ConfigurationError(f"SCIM_INDEXED_ATTRIBUTES: {path} names no attribute")
            extension = next((e for e in declared if e.urn.lower() == urn.lower()), None)
            declared_type = extension.attribute_type(attribute, sub or None) if extension is not None else None
            if extension is not None and declared_type not in ("string", "reference"):
                raise ConfigurationError(  # stored as numbers, booleans or objects: the rows hold strings only
                    f"SCIM_INDEXED_ATTRIBUTES: {path} is not a string attribute of {urn} (declared {declared_type})"
                )
            case_exact = extension is not None and extension.case_exact(attribute)
            return IndexedAttribute(path, resource_type, urn, attribute, sub or None, case_exact)
    resource_type = "Group" if urn.lower() == GROUP_SCHEMA.lower() else "User"
    return _declared(path, resource_type)


def _declared(path: str, resource_type: str) -> IndexedAttribute:
    """A core or enterprise attribute, resolved by scim2-models (which knows its caseExact and multiplicity)."""
    try:
        binding = Path[_MODELS[resource_type]](path).resolve()  # type: ignore[index]
    except (SCIMException, ValueError, TypeError):
        binding = None
    if binding is None:
        raise ConfigurationError(f"SCIM_INDEXED_ATTRIBUTES: {path} is not an attribute of {resource_type}")
    target = binding.sub_field_type if binding.sub_field_name else binding.field_type
    if binding.is_multivalued or target is not str:
        raise ConfigurationError(f"SCIM_INDEXED_ATTRIBUTES: {path} is not a single-valued string attribute")
    full = binding.urn
    urn, _, name = full.rpartition(":")
    block = ENTERPRISE_SCHEMA if urn.lower() == ENTERPRISE_SCHEMA.lower() else None
    attribute, _, sub = name.partition(".")
    return IndexedAttribute(path, resource_type, block, attribute, sub or None, binding.case_exact)


def _get(holder: Any, name: str) -> Any:
    if not isinstance(holder, dict):
        return None
    lowered = name.lower()
    return next((value for key, value in holder.items() if key.lower() == lowered), None)


class Readiness:
    """Whether an index may answer a filter for a tenant: a built-in one always, a configured one once its ready row
    exists. Remembered once seen per process, since every write keeps a complete index complete; Users and Groups
    share it so the rule lives in one place."""

    def __init__(self, store: "TableStore", resource_type: str, attributes: Sequence[IndexedAttribute]) -> None:
        self._store = store
        self._resource_type = resource_type
        self._attributes = {attribute.key_name: attribute for attribute in attributes}
        self._ready: set[tuple[str, str]] = set()

    async def answers(self, tenant: str, index: str) -> bool:
        attribute = self._attributes.get(index)
        if attribute is None or (tenant, index) in self._ready:
            return True
        if not await self._store.has_row(tenant, self._resource_type, ready_row_key(attribute)):
            return False
        self._ready.add((tenant, index))
        return True
