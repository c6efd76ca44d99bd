"""A large response's JSON body, encoded a slice at a time so that one tenant's page never holds the others' requests.

``json.dumps`` of a 200-user page with every attribute, or of a group's 1,000 members, is one call of 2-4 ms on the
instance's only event loop: every other tenant's request waits behind it (bench/fairness.py's search and group-get
attacks). Here such a body is encoded piece by piece, each run of pieces in a turn at the CPU
(:func:`scim.cpu_share.turn`) of at most :data:`SLICE_SECONDS`. The bytes are exactly ``json.dumps``'s: lists and
objects are split only where ``json.dumps`` puts a comma, and each piece is encoded by ``json.dumps`` itself.
Small bodies (Entra's lookups and single resources) are left to :meth:`scim.messages.ScimResponse.body_bytes`,
with no turn and no ``await``.
"""

import json
import time
from collections.abc import Iterator
from typing import Any

from scim import cpu_share
from scim.messages import ScimResponse

LARGE_ITEMS = 100
"""Items in a document's lists (its own and its resources') from which its body is encoded in slices: below, the
whole body encodes in well under a millisecond."""
SPLIT_ITEMS = 16
"""Items of a list encoded in one piece: a piece of a page's users stays within a few tenths of a millisecond."""
SLICE_SECONDS = 0.0005
"""CPU time a turn encodes before it lets the other tenants' requests run."""


async def encode_large(response: ScimResponse) -> None:
    """Encode the body of a response whose document holds over :data:`LARGE_ITEMS` list items, in turns; the
    response then answers :meth:`~scim.messages.ScimResponse.body_bytes` with it."""
    if response.document is None or _items(response.document) <= LARGE_ITEMS:
        return
    pieces = _pieces(response.document)
    text: list[str] = []
    more = True
    while more:
        async with cpu_share.turn():
            more = _encode_slice(pieces, text, time.perf_counter() + SLICE_SECONDS)
    response.encoded = "".join(text).encode("utf-8")


def _encode_slice(pieces: Iterator[str], text: list[str], deadline: float) -> bool:
    """Append pieces until ``deadline``; whether any are left."""
    for piece in pieces:
        text.append(piece)
        if time.perf_counter() >= deadline:
            return True
    return False


def _items(document: dict[str, Any]) -> int:
    """The document's list items, and those of the resources it lists (a page of groups counts their members)."""
    count = 0
    for value in document.values():
        if isinstance(value, list):
            count += len(value)
            for item in value:
                if isinstance(item, dict):
                    count += sum(len(inner) for inner in item.values() if isinstance(inner, list))
    return count


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""``json.dumps``'s encoder with :meth:`~scim.messages.ScimResponse.body_bytes`'s options, built once: ``json.dumps``
builds one per call when given options, which would double the cost of a page's small pieces."""


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def _splits(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is encoded in pieces: a long list, or a list or object holding one within three levels (a
    group and its members; a page of a few groups)."""
    if isinstance(value, list):
        if len(value) > SPLIT_ITEMS:
            return True
        inner = value
    elif isinstance(value, dict):
        inner = list(value.values())
    else:
        return False
    return depth < 3 and any(isinstance(item, (list, dict)) and _splits(item, depth + 1) for item in inner)


def _pieces(value: Any) -> Iterator[str]:
    """``json.dumps(value)`` as consecutive pieces, none of them more than :data:`SPLIT_ITEMS` items of a list."""
    if isinstance(value, dict) and _splits(value):
        separator = "{"
        for key, inner in value.items():
            yield separator + _dumps(key) + ":"
            yield from _pieces(inner)
            separator = ","
        yield "}"
    elif isinstance(value, list) and _splits(value):
        yield "["
        yield from _list_pieces(value)
        yield "]"
    else:
        yield _dumps(value)


def _list_pieces(items: list[Any]) -> Iterator[str]:
    """A long list's items between its brackets: runs of up to :data:`SPLIT_ITEMS` plain items encoded together
    (``json.dumps`` of the run without its brackets), an item that itself splits in pieces of its own."""
    run: list[Any] = []
    first = True
    for item in items:
        if not _splits(item) and len(run) < SPLIT_ITEMS:
            run.append(item)
            continue
        if run:
            yield ("" if first else ",") + _dumps(run)[1:-1]
            first, run = False, []
        if _splits(item):
            if not first:
                yield ","
            yield from _pieces(item)
            first = False
        else:
            run.append(item)
    if run:
        yield ("" if first else ",") + _dumps(run)[1:-1]
