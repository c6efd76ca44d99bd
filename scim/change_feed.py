"""The pull feed: ``GET /scim/v2/Changes?after=<position>&limit=<n>`` and ``python -m scim changes`` read the
tenant's recorded changes as CloudEvents, each page ending with the position to resume from.

The caller's tenant is the one it authenticated as, exactly as for Users and Groups, so a tenant's credential never
reads another tenant's feed.
"""

from collections.abc import Mapping
from typing import Any

from scim import errors
from scim.changes import POSITION, cloud_event
from scim.store import outbox
from scim.store.tables import TableStore

DEFAULT_PAGE = 100
MAX_PAGE = 1000
EXPIRY_MARGIN_SECONDS = 3600.0
"""How much younger than the retention a resume position must be. A retention sweep deletes only events older than
the retention when it starts, so none that starts while a page is being read (a request's 20 s at most) can reach
past a position this much younger; half the retention when that is shorter."""


async def page(
    store: TableStore, tenant: str, after: str | None, limit: int, settle: float, retention_days: float
) -> dict[str, Any]:
    """One page of the feed: ``events`` in position order and ``next``, the position to pass as ``after``."""
    check_resumable(after, retention_days)
    found, resume = await store.changes(tenant, after, limit, settle)
    return {"events": [cloud_event(tenant, change) for change in found], "next": resume}


def check_resumable(after: str | None, retention_days: float, now: float | None = None) -> None:
    """A 410 for a position older than the retention: events after it may have been deleted, and answering with
    the events that are left would look like a complete feed to a consumer that has in fact missed changes."""
    if after is None:
        return
    retention = retention_days * 86_400
    oldest = outbox.horizon(retention - min(EXPIRY_MARGIN_SECONDS, retention / 2), now)
    if after[:16] < oldest:
        raise errors.ScimError(
            410,
            f"after is older than the change feed's retention (SCIM_CHANGE_FEED_RETENTION_DAYS = {retention_days:g}):"
            " events after it may have been deleted. Re-read Users and Groups, then follow the feed from its start"
            " (no after).",
        )


def parameters(query: Mapping[str, str]) -> tuple[str | None, int]:
    """``after`` and ``limit`` of a feed request, or a 400 that names the bad one."""
    after = query.get("after") or None
    if after is not None and not POSITION.fullmatch(after):
        raise errors.invalid_value("after must be a position the feed returned")
    raw = query.get("limit") or str(DEFAULT_PAGE)
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise errors.invalid_value(f"limit must be a whole number from 1 to {MAX_PAGE}")
    return after, int(raw)
