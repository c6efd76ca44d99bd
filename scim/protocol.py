"""RFC 7644 rules every resource type shares: paging, preconditions, list responses, timestamps, safe ids."""

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError
from scim2_models import ResponseParameters, SCIMException

from scim import cpu_share, errors
from scim.errors import ScimError
from scim.parametrized import parametrized
from scim.schemas import MAX_RESULTS
from scim.store.contract import ResourceChanged, ResourceTooLarge, StoredResource, StoreError, UniqueKeyTaken
from scim.store.tables import TableStore

T = TypeVar("T")
R = TypeVar("R")
LIST_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
_SAFE_ID = re.compile("[a-zA-Z0-9_-]{1,64}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INTEGER = re.compile(r"[-+]?[0-9]+")
_MAX_DIGITS = 18
MAX_ATTRIBUTE_PATHS = 64
MAX_ATTRIBUTE_LIST_LENGTH = 4096
MAX_START_INDEX = 2**31 - 1
"""The largest ``startIndex`` a list response echoes; a larger one is clamped to it (no tenant holds that many
resources, and clients such as Entra's read the echoed value as a 32-bit integer)."""


@dataclass(frozen=True)
class Rendered:
    """A resource ready to send: its document and its ETag (for the ``ETag`` header)."""

    document: dict[str, Any]
    etag: str


@dataclass(frozen=True)
class Page:
    """``startIndex``/``count`` after clamping, as RFC 7644 §3.4.2.4 reads them."""

    start: int
    count: int

    def window(self, items: list[Any]) -> list[Any]:
        return items[self.start - 1 : self.start - 1 + self.count]

    def holds(self, position: int) -> bool:
        """Whether the 1-based ``position`` of a match falls on this page."""
        return self.start <= position < self.start + self.count


def page_of(query: Mapping[str, str]) -> Page:
    """``count`` clamped to ``0..MAX_RESULTS`` and ``startIndex`` to ``1..MAX_START_INDEX``, as the RFC clamps them."""
    start = _integer(query, "startIndex", 1)
    count = _integer(query, "count", MAX_RESULTS)
    return Page(start=min(max(start, 1), MAX_START_INDEX), count=min(max(count, 0), MAX_RESULTS))


def _integer(query: Mapping[str, str], name: str, default: int) -> int:
    """A decimal integer in ASCII digits; ``int()`` alone would also take ``1_000``, ``٣`` and 4,000-digit numbers."""
    digits = (query.get(name) or "").strip()
    if not digits:
        return default
    if not _INTEGER.fullmatch(digits):
        raise errors.invalid_value(f"{name} must be an integer")
    if len(digits.lstrip("+-").lstrip("0")) > _MAX_DIGITS:  # far beyond either clamp: saturate, do not convert
        return -(10**_MAX_DIGITS) if digits.startswith("-") else 10**_MAX_DIGITS
    return int(digits)


def list_response(total: int, page: Page, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": page.start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def check_precondition(current: StoredResource, if_match: str | None) -> None:
    """``If-Match`` (RFC 7232): ``*`` or one of the listed ETags, else 412."""
    if if_match is None:
        return
    tags = [tag.strip() for tag in if_match.split(",")]
    if "*" not in tags and current.etag not in tags:
        raise errors.precondition_failed()


def check_attribute_lists(query: Mapping[str, str]) -> None:
    """``attributes`` and ``excludedAttributes`` are applied to every resource of a response, so their cost grows
    with their size times the page: 21,000 names on a 200-resource search took 6 s of CPU. Each may name at most
    :data:`MAX_ATTRIBUTE_PATHS` paths in at most :data:`MAX_ATTRIBUTE_LIST_LENGTH` characters (the schemas hold
    fewer attributes than that, with their sub-attributes)."""
    for name in ("attributes", "excludedAttributes"):
        value = query.get(name) or ""
        if len(value) > MAX_ATTRIBUTE_LIST_LENGTH or value.count(",") >= MAX_ATTRIBUTE_PATHS:
            raise errors.invalid_value(
                f"{name} may name at most {MAX_ATTRIBUTE_PATHS} attribute paths, "
                f"in at most {MAX_ATTRIBUTE_LIST_LENGTH} characters"
            )


def response_parameters(query: Mapping[str, str], model: type[Any]) -> ResponseParameters[Any] | None:
    attributes = query.get("attributes")
    excluded = query.get("excludedAttributes")
    if not attributes and not excluded:
        return None
    try:
        return parametrized(ResponseParameters, model)(
            attributes=_distinct(_strip_filters(attributes)), excluded_attributes=_distinct(_strip_filters(excluded))
        )
    except (SCIMException, ValidationError, ValueError) as exc:
        raise errors.invalid_path("attributes and excludedAttributes must be attribute paths") from exc


async def render_each(items: Iterable[T], render: Callable[[T], R]) -> list[R]:
    """Render a page of resources one at a time, letting other requests run in between: with ``attributes`` a
    resource takes up to a few milliseconds of CPU, and a page of 200 rendered in one go would hold every other
    tenant's request on this instance for that long (:mod:`scim.cpu_share`)."""
    rendered = []
    for item in items:
        async with cpu_share.turn():
            rendered.append(render(item))
    return rendered


def returns(query: Mapping[str, str], attribute: str) -> bool:
    """Whether a response can contain ``attribute``: not excluded, and named when ``attributes`` is given.

    Attributes that cost extra reads (a group's members, a user's groups) are only read when this is true.
    """

    def named(parameter: str) -> set[str]:
        paths = (query.get(parameter) or "").split(",")
        return {path.strip().rsplit(":", 1)[-1].split(".")[0].split("[")[0].lower() for path in paths}

    if attribute.lower() in named("excludedAttributes"):
        return False
    return not query.get("attributes") or attribute.lower() in named("attributes")


def _distinct(paths: str | None) -> str | None:
    """Each path once (case-insensitively): a response is projected once per path named."""
    if not paths:
        return None
    unique: dict[str, str] = {}
    for path in paths.split(","):
        unique.setdefault(path.strip().lower(), path.strip())
    return ",".join(unique.values())


def _strip_filters(paths: str | None) -> str | None:
    """``attributes=emails[type eq "work"]`` (Microsoft's Postman suite) means the ``emails`` attribute."""
    if not paths:
        return None
    out, depth = [], 0
    for char in paths:
        depth += char == "["
        if depth == 0:
            out.append(char)
        depth -= char == "]" and depth > 0
    return "".join(out)


def is_safe_id(resource_id: str) -> bool:
    """Ids this service issues are hex; anything else cannot exist, so it never reaches a storage key. (One regular
    expression, not a loop over the characters: a 1,000-member PATCH checks 1,000 ids in one step of the loop.)"""
    return _SAFE_ID.fullmatch(resource_id) is not None


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a surrogate code point, which a JSON escape such as ``\\ud800`` can produce: such text
    has no UTF-8 form, so it could be neither hashed into a key nor sent back in a response."""
    return _SURROGATE.search(text) is not None


def require_unicode(document: dict[str, Any]) -> None:
    """400 if a resource about to be stored holds a surrogate: a PATCH path such as ``emails[value eq "\\ud800"]``
    can create one after the body was checked, and a stored one would make every later read of it unanswerable."""
    if has_lone_surrogate(json.dumps(document, ensure_ascii=False, default=str)):
        raise errors.invalid_value("Attribute values must be valid Unicode text")


@contextmanager
def store_errors(resource_type: str) -> Iterator[None]:
    """Translate the store's failures inside the block into SCIM errors, in one place for every resource type."""
    try:
        yield
    except UniqueKeyTaken as exc:
        raise errors.uniqueness(f"A {resource_type.lower()} with this {exc.index} already exists") from exc
    except StoreError as exc:
        raise store_error(exc) from exc


async def load(store: TableStore, tenant: str, resource_type: str, resource_id: str) -> StoredResource:
    """The resource, or 404; an id this service could never have issued is neither looked up nor echoed back."""
    if not is_safe_id(resource_id):
        raise errors.not_found(f"{resource_type} not found")
    with store_errors(resource_type):
        stored = await store.get(tenant, resource_type, resource_id)
    if stored is None:
        raise errors.not_found(f"{resource_type} {resource_id} not found")
    return stored


def store_error(exc: Exception) -> ScimError:
    if isinstance(exc, ResourceChanged):
        return errors.precondition_failed()
    if isinstance(exc, ResourceTooLarge):
        return errors.too_large("The resource is too large to store")
    return errors.unavailable()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def meta(resource_type: str, stored: StoredResource, location: str) -> dict[str, str]:
    return {
        "resourceType": resource_type,
        "created": stored.created,
        "lastModified": stored.last_modified,
        "location": location,
        "version": stored.etag,
    }
