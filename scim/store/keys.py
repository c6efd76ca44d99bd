"""Table Storage keys: every key starts with the tenant, and no user value ever reaches a key unhashed.

Hashing the (already folded) value keeps Table Storage's forbidden key characters (``/ \\ # ?`` and control
characters) and its 1 KiB key limit away from anything a client sends.
"""

import hashlib

RESOURCE_PREFIX = "id:"
INDEX_PREFIX = "ix:"


def partition_key(tenant: str, resource_type: str) -> str:
    """One partition per tenant and resource type, so a resource and its index rows share entity-group transactions."""
    return f"{tenant}:{resource_type}"


def resource_row_key(resource_id: str) -> str:
    return f"{RESOURCE_PREFIX}{resource_id}"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def unique_index_row_key(index: str, value: str) -> str:
    return f"{INDEX_PREFIX}{index}:{digest(value)}"


def shared_index_row_key(index: str, value: str, resource_id: str) -> str:
    return f"{shared_index_prefix(index, value)}{resource_id}"


def shared_index_prefix(index: str, value: str) -> str:
    return f"{INDEX_PREFIX}{index}:{digest(value)}:"


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``, for a RowKey range query."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
