"""The pull feed: ``GET /scim/v2/Changes?after=<position>&limit=<n>`` and ``python -m scim changes`` read the
tenant's recorded changes as CloudEvents, each page ending with the position to resume from.

The caller's tenant is the one it authenticated as, exactly as for Users and Groups, so a tenant's credential never
reads another tenant's feed.
"""

from collections.abc import Mapping
from typing import Any

from scim import errors
from scim.changes import POSITION, cloud_event
from scim.store.tables import TableStore

DEFAULT_PAGE = 100
MAX_PAGE = 1000


async def page(store: TableStore, tenant: str, after: str | None, limit: int, settle: float) -> dict[str, Any]:
    """One page of the feed: ``events`` in position order and ``next``, the position to pass as ``after``."""
    found, resume = await store.changes(tenant, after, limit, settle)
    return {"events": [cloud_event(tenant, change) for change in found], "next": resume}


def parameters(query: Mapping[str, str]) -> tuple[str | None, int]:
    """``after`` and ``limit`` of a feed request, or a 400 that names the bad one."""
    after = query.get("after") or None
    if after is not None and not POSITION.fullmatch(after):
        raise errors.invalid_value("after must be a position the feed returned")
    raw = query.get("limit") or str(DEFAULT_PAGE)
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise errors.invalid_value(f"limit must be a whole number from 1 to {MAX_PAGE}")
    return after, int(raw)
