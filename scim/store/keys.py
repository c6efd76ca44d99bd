"""Table Storage keys: every key starts with the tenant, and no user value ever reaches a key unhashed.

Hashing the (already folded) value keeps Table Storage's forbidden key characters (``/ \\ # ?`` and control
characters) and its 1 KiB key limit away from anything a client sends.
"""

import hashlib
import re
from urllib.parse import quote

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


MEMBERSHIP_TYPE = "Membership"
MEMBER_PREFIX = "g:"
MEMBER_OF_PREFIX = "m:"


def member_row_key(group_id: str, member_id: str) -> str:
    """Forward edge: all of a group's members share the prefix ``g:<group>:``, read in id order."""
    return f"{MEMBER_PREFIX}{group_id}:{member_id}"


def member_of_row_key(member_id: str, group_id: str) -> str:
    """Reverse edge: all of a member's groups share the prefix ``m:<member>:``."""
    return f"{MEMBER_OF_PREFIX}{member_id}:{group_id}"


EVENT_PREFIX = "ev:"


def event_row_key(position: str) -> str:
    """Change-feed rows sort by position inside each partition, so a reader resumes with one range read."""
    return f"{EVENT_PREFIX}{position}"


PENDING_PREFIX = "pend:"


def pending_row_key(position: str) -> str:
    """The queue publisher's to-do list: an event that has yet to reach the queue has a row here beside its ``ev:``
    row, so a publisher reads only what it has to send, never the events it sent before."""
    return f"{PENDING_PREFIX}{position}"


def entity_address(partition: str, row_key: str) -> str:
    """A row's address in Table Storage's OData URLs, ``(PartitionKey='…',RowKey='…')``: quotes doubled, then
    URL-encoded, as the SDK writes it; shared by the store's own reads and transactions."""
    return f"(PartitionKey='{_quoted(partition)}',RowKey='{_quoted(row_key)}')"


def _quoted(value: str) -> str:
    """Our own keys (hex ids, prefixes and ``:``) hold only characters URL-encoding leaves alone, and ``:``: those
    are written straight, as ``quote`` writes them; ``quote`` itself walks a key character by character in Python,
    and 200 of them were half the CPU of encoding a 100-row membership transaction, in one step of the loop."""
    if _PLAIN.fullmatch(value):
        return value.replace(":", "%3A")
    return quote(value.replace("'", "''"), safe="")


_PLAIN = re.compile("[A-Za-z0-9_.~:-]*")
"""URL-encoding's unreserved characters (``quote`` never encodes them) and ``:`` (which it writes ``%3A``)."""
