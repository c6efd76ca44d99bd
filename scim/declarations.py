"""Declared extension schemas (``SCIM_SCHEMA_EXTENSIONS``): RFC 7643 §7 Schema resources an operator publishes for
the extensions their app expects, so that values are validated and coerced by type instead of kept as sent.

The file, in the app package (a path relative to the app's root, beside ``function_app.py``), is a JSON array of
``{"resourceType": "User"|"Group", "required": false, "schema": {<RFC 7643 §7 Schema>}}``. Each schema is read by
scim2-models (:class:`scim2_models.Schema`) and turned into a model by :meth:`scim2_models.Extension.from_schema`, so
types, ``multiValued``, ``required``, ``caseExact``, ``mutability`` and ``returned`` mean what the library makes
them mean; nothing here re-implements validation. A declared extension's block is stored and patched like an
undeclared one (:mod:`scim.extensions`), then validated as a whole by its model before anything is written, so a
bad value is a 400 ``invalidValue`` that changes nothing; an attribute the schema does not declare is refused.

The declarations are the deployment's, like the built-in models: loaded once per process (:func:`use`), read by
:mod:`scim.schemas` for ``/Schemas`` and ``/ResourceTypes`` and by the services.
"""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from scim2_models import Context, Extension, Schema, SCIMException, ScimPolicy

from scim import errors
from scim.schemas import DECLARED_EXTENSIONS, extension_resource_type
from scim.settings import ConfigurationError

APP_ROOT = Path(__file__).resolve().parent.parent
STRICT_POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.forbid,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)
"""A declared extension refuses what it does not declare: keeping it silently would be the drop this avoids."""


@dataclass(frozen=True)
class DeclaredExtension:
    urn: str
    resource_type: str
    required: bool
    schema: Schema
    model: type[Extension]

    def validate(self, block: dict[str, Any], creating: bool) -> dict[str, Any]:
        """The block as stored: validated and coerced by the schema (``"True"`` → true, ``"3"`` → 3), JSON types."""
        context = Context.RESOURCE_CREATION_REQUEST if creating else Context.RESOURCE_REPLACEMENT_REQUEST
        try:
            with STRICT_POLICY:
                value = self.model.model_validate(block, scim_ctx=context)
        except (SCIMException, ValidationError) as exc:
            error = errors.from_validation(exc)
            raise errors.ScimError(error.status, f"{self.urn}: {error.detail}", error.scim_type) from exc
        dumped = value.model_dump(scim_ctx=Context.DEFAULT, mode="json")
        dumped.pop("schemas", None)
        return dumped

    def hidden(self, named: set[str] | frozenset[str]) -> set[str]:
        """``<urn>:<attribute>`` (lower-cased) of the attributes a response leaves out: ``returned: never``, and
        ``returned: request`` unless the request's ``attributes`` names it."""
        hidden = set()
        for attribute in self.schema.attributes or ():
            path = f"{self.urn}:{attribute.name}".lower()
            returned = str(attribute.returned.value if attribute.returned else "default")
            if returned == "never" or (returned == "request" and path not in named):
                hidden.add(path)
        return hidden

    def case_exact(self, attribute: str) -> bool:
        lowered = attribute.lower()
        return any(a.name and a.name.lower() == lowered and a.case_exact for a in self.schema.attributes or ())

    def attribute_type(self, attribute: str, sub_attribute: str | None = None) -> str | None:
        """The declared type (``"integer"``, ``"boolean"``…) of an attribute or sub-attribute, None if undeclared:
        filters compare their values as that type, as the stored values were coerced to it."""
        found = _named(self.schema.attributes, attribute)
        if found is not None and sub_attribute is not None:
            found = _named(found.sub_attributes, sub_attribute)
        return None if found is None or found.type is None else str(found.type.value)


def _named(attributes: list[Any] | None, name: str) -> Any:
    lowered = name.lower()
    return next((a for a in attributes or () if a.name and a.name.lower() == lowered), None)


_ACTIVE: dict[str, DeclaredExtension] = {}


def use(declared: tuple[DeclaredExtension, ...]) -> None:
    """Make these the process's declared extensions (the endpoint does, when it is built from its settings)."""
    _ACTIVE.clear()
    _ACTIVE.update({extension.urn.lower(): extension for extension in declared})


def get(urn: str | None, resource_type: str) -> DeclaredExtension | None:
    extension = _ACTIVE.get((urn or "").lower())
    return extension if extension is not None and extension.resource_type == resource_type else None


def active(resource_type: str) -> list[DeclaredExtension]:
    return [extension for extension in _ACTIVE.values() if extension.resource_type == resource_type]


def validate_blocks(blocks: dict[str, dict[str, Any]], resource_type: str, creating: bool) -> dict[str, Any]:
    """Every declared block validated (and a required extension present); undeclared blocks as they are."""
    checked: dict[str, Any] = {}
    for urn, block in blocks.items():
        extension = get(urn, resource_type)
        checked[extension.urn if extension else urn] = extension.validate(block, creating) if extension else block
    for extension in active(resource_type):
        if extension.required and extension.urn not in checked:
            raise errors.invalid_value(f"{extension.urn} is a required extension of {resource_type}")
    return {urn: block for urn, block in checked.items() if block}


@cache
def load(setting: str) -> tuple[DeclaredExtension, ...]:
    """Read and check ``SCIM_SCHEMA_EXTENSIONS``; any problem is a :class:`ConfigurationError` naming it."""
    if not setting.strip():
        return ()
    path = Path(setting.strip())
    path = path if path.is_absolute() else APP_ROOT / path
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"SCIM_SCHEMA_EXTENSIONS: cannot read {setting} as JSON ({exc})") from exc
    if not isinstance(entries, list):
        raise ConfigurationError("SCIM_SCHEMA_EXTENSIONS: the file must hold a JSON array of declarations")
    declared: dict[str, DeclaredExtension] = {}
    for position, entry in enumerate(entries):
        extension = _declaration(entry, f"SCIM_SCHEMA_EXTENSIONS entry {position + 1}")
        if extension.urn.lower() in declared:
            raise ConfigurationError(f"SCIM_SCHEMA_EXTENSIONS declares {extension.urn} twice")
        declared[extension.urn.lower()] = extension
    return tuple(declared.values())


def _declaration(entry: Any, where: str) -> DeclaredExtension:
    if not isinstance(entry, dict) or not isinstance(entry.get("schema"), dict):
        raise ConfigurationError(f'{where}: expected {{"resourceType": …, "required": …, "schema": {{…}}}}')
    resource_type = entry.get("resourceType")
    required = entry.get("required", False)
    if resource_type not in ("User", "Group") or not isinstance(required, bool):
        raise ConfigurationError(f"{where}: resourceType must be User or Group, required true or false")
    urn = entry["schema"].get("id")
    if not isinstance(urn, str) or extension_resource_type(urn) != resource_type:
        raise ConfigurationError(
            f"{where}: schema id must be urn:ietf:params:scim:schemas:extension:<name>:<version>:{resource_type}"
        )
    if urn.lower() in DECLARED_EXTENSIONS[resource_type]:
        raise ConfigurationError(f"{where}: {urn} is built in")
    try:
        schema = Schema.model_validate({**entry["schema"], "schemas": [str(Schema.__schema__)]})
        if not schema.attributes:
            raise ValueError("it declares no attributes")
        model = Extension.from_schema(schema)
    except (SCIMException, ValidationError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"{where} ({urn}): not a valid RFC 7643 schema: {_first_line(exc)}") from exc
    return DeclaredExtension(urn, resource_type, required, schema, model)


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return " ".join(lines[:3])[:300] if lines else type(exc).__name__
