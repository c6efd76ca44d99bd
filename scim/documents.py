"""Resource models to and from request payloads and stored documents, for every resource type.

Everything here runs under :data:`scim.schemas.ENTRA_POLICY` and turns scim2-models' and pydantic's failures into
SCIM errors, so the services only add their resource's own rules (a non-blank ``userName``, at most so many e-mails).
"""

from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import ValidationError
from scim2_models import Context, PatchOp, Resource, ResponseParameters, SCIMException

from scim import cpu_share, errors, extensions, protocol
from scim.parametrized import parametrized
from scim.schemas import ENTRA_POLICY
from scim.store.contract import StoredResource

ResourceT = TypeVar("ResourceT", bound=Resource[Any])
INLINE_PATCH_OPERATIONS = 10
"""PATCHes with up to this many operations (Entra's all are) are applied on the event loop: a thread costs more."""


def parse(model: type[ResourceT], payload: dict[str, Any], context: Context) -> ResourceT:
    """A payload validated as ``model`` in ``context``, or 400; values that cannot be stored are refused here."""
    try:
        with ENTRA_POLICY:
            resource = model.model_validate(payload, scim_ctx=context)
    except (SCIMException, ValidationError) as exc:
        raise errors.from_validation(exc) from exc
    protocol.require_unicode(resource.model_dump(scim_ctx=Context.DEFAULT))
    return resource


def parse_patch(model: type[ResourceT], payload: dict[str, Any]) -> "PatchOp[ResourceT]":
    try:
        with ENTRA_POLICY:
            patch_model = parametrized(PatchOp, model)
            return patch_model.model_validate(payload, scim_ctx=Context.RESOURCE_PATCH_REQUEST)
    except (SCIMException, ValidationError) as exc:
        raise errors.from_validation(exc) from exc


async def parse_patch_shared(model: type[ResourceT], payload: dict[str, Any]) -> "PatchOp[ResourceT]":
    """:func:`parse_patch`, one operation per turn at the CPU when the PATCH is long: validating 100 operations in
    one go held every other request on the instance for about 8 ms. Each is validated alone, exactly as in the whole
    (scim2-models checks operations one by one), and the first refusal refuses the PATCH."""
    steps = payload.get("Operations")
    if not isinstance(steps, list) or len(steps) <= INLINE_PATCH_OPERATIONS:
        return parse_patch(model, payload)
    parsed: list[PatchOp[ResourceT]] = []
    for step in steps:
        async with cpu_share.turn():
            parsed.append(parse_patch(model, {**payload, "Operations": [step]}))
    operations = [operation for one in parsed for operation in one.operations or []]
    return parsed[0].model_copy(update={"operations": operations})


def apply_patch(operations: "PatchOp[ResourceT]", resource: ResourceT) -> tuple[bool, dict[str, Any]]:
    """Apply the operations; whether anything changed, and the result as a payload to validate again as a whole."""
    with ENTRA_POLICY:
        try:
            changed = operations.patch(resource)
        except (SCIMException, ValidationError) as exc:
            raise errors.from_validation(exc) from exc
        return changed, resource.model_dump(scim_ctx=Context.DEFAULT)


async def apply_patch_shared(operations: "PatchOp[ResourceT]", resource: ResourceT) -> tuple[bool, dict[str, Any]]:
    """:func:`apply_patch`, one operation per turn at the CPU (:mod:`scim.cpu_share`) when the PATCH is long: each
    operation copies and revalidates the resource (about 2 ms), and 100 in one go would hold every other request on
    this instance for 200 ms. (A worker thread was tried: its fight for the GIL made others wait longer still.)
    Applied one by one, a failing operation still fails the whole PATCH, and nothing is stored."""
    steps = operations.operations or []
    if len(steps) <= INLINE_PATCH_OPERATIONS:
        return apply_patch(operations, resource)
    changed = False
    for step in steps:
        async with cpu_share.turn():
            changed |= apply_patch(operations.model_copy(update={"operations": [step]}), resource)[0]
    with ENTRA_POLICY:
        return changed, resource.model_dump(scim_ctx=Context.DEFAULT)


def stored_document(resource: Resource[Any], not_stored: Iterable[str]) -> dict[str, Any]:
    """What is stored: the validated resource without server-assigned or separately stored attributes."""
    document = resource.model_dump(scim_ctx=Context.DEFAULT)
    for name in not_stored:
        document.pop(name, None)
    return document


def from_stored(model: type[ResourceT], stored: StoredResource) -> ResourceT:
    with ENTRA_POLICY:
        return model.model_validate(stored.document, scim_ctx=Context.DEFAULT)


def project(
    model: type[Resource[Any]], document: dict[str, Any], parameters: ResponseParameters[Any] | None, resource_type: str
) -> dict[str, Any]:
    """A full document projected by ``attributes``/``excludedAttributes``: the models project what they declare,
    :func:`scim.extensions.project` the undeclared extensions; ``meta`` keeps the stored timestamps' text, so that a
    projected answer prints them exactly as a full one does."""
    blocks = extensions.stored_blocks(document, resource_type)
    if parameters is None:
        return extensions.with_blocks(document, extensions.shown(blocks, resource_type), resource_type)
    with ENTRA_POLICY:
        resource = model.model_validate(document, scim_ctx=Context.DEFAULT)
        projected = resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=parameters)
    if isinstance(projected.get("meta"), dict):
        projected["meta"] = {name: document["meta"].get(name, value) for name, value in projected["meta"].items()}
    shown = extensions.shown(blocks, resource_type, extensions.named_paths(parameters.attributes))
    selected = extensions.project(shown, parameters.attributes, parameters.excluded_attributes)
    return extensions.with_blocks(projected, selected, resource_type)
