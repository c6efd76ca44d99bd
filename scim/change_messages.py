"""The change feed's queue messages: a batch of CloudEvents per Azure Storage Queue message.

Format (stable; the README's "Delivery" section is the consumer's copy): a message body is the base64 of the UTF-8
JSON text of an array of CloudEvents 1.0 — the same event objects the pull feed returns — in position order, all of
one tenant. Base64 because a queue-triggered Azure Function (``messageEncoding`` base64, the default) decodes it so;
a batch because one message per event would cost one queue transaction per event. A message is at most
:data:`MAX_MESSAGE_CHARS` characters, the queue's limit, so its JSON is at most :data:`MAX_BATCH_BYTES` bytes.

An event too large for a message alone (a snapshot of 30,000 non-ASCII characters is up to 90 KB of UTF-8) is sent
without its snapshot and says so (``data.snapshotOmitted: true``), as the feed does for snapshots too large to store:
the consumer reads the resource, or the pull feed, instead.
"""

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Any

MAX_MESSAGE_CHARS = 64 * 1024
"""Azure Storage Queues (and Azurite) refuse a message longer than 64 KiB."""
MAX_BATCH_BYTES = MAX_MESSAGE_CHARS // 4 * 3
"""Base64 turns every 3 bytes into 4 characters."""
_KEPT_WHEN_TRUNCATED = ("id", "resourceType", "lastModified")


def encode(events: Iterable[dict[str, Any]]) -> list[str]:
    """Events (in position order) packed greedily into as few messages as fit, order kept across messages."""
    messages: list[str] = []
    batch: list[bytes] = []
    size = 2  # the brackets
    for event in events:
        text = _fitting(event)
        if batch and size + 1 + len(text) > MAX_BATCH_BYTES:
            messages.append(_message(batch))
            batch, size = [], 2
        size += len(text) + (1 if batch else 0)
        batch.append(text)
    if batch:
        messages.append(_message(batch))
    return messages


def decode(body: str | bytes) -> list[dict[str, Any]]:
    """A message's events, for consumers and tests; a body that is not this format is a ValueError."""
    try:
        events = json.loads(base64.b64decode(body, validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not a change-feed message") from exc
    if not isinstance(events, list) or not all(isinstance(event, dict) for event in events):
        raise ValueError("not a change-feed message")
    return events


def _fitting(event: dict[str, Any]) -> bytes:
    """The event's JSON, shrunk until it fits a message alone: first without its snapshot, then (a pathological
    ``changedAttributes``) with only the resource's id, type and version, marked ``truncated``."""
    text = _json(event)
    if len(text) + 2 <= MAX_BATCH_BYTES:
        return text
    data = {name: value for name, value in event["data"].items() if name != "snapshot"}
    if "snapshot" in event["data"]:
        data["snapshotOmitted"] = True
    text = _json({**event, "data": data})
    if len(text) + 2 <= MAX_BATCH_BYTES:
        return text
    kept = {name: data[name] for name in _KEPT_WHEN_TRUNCATED if name in data}
    return _json({**event, "data": {**kept, "truncated": True}})


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _message(batch: list[bytes]) -> str:
    return base64.b64encode(b"[" + b",".join(batch) + b"]").decode("ascii")
