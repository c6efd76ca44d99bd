"""A large response body encoded a slice at a time (scim/response_body.py): the same bytes as ``json.dumps``, other
requests running between the slices, and small bodies left alone."""

import asyncio
import json
import random
from typing import Any

import pytest

from scim import cpu_share, response_body
from scim.messages import ScimResponse


def dumped(document: dict[str, Any]) -> bytes:
    return ScimResponse(200, document).body_bytes()


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 2 or roll < 0.3:
        return rng.choice([0, -7, 2.5, True, False, None, "", 'quote " and \\ slash', "é ü 漢 \u2028", "\U0001f600"])
    if roll < 0.65:
        length = rng.choice([0, 1, 16, 17] if depth else [0, 17, 120])
        return [random_value(rng, depth + 1) for _ in range(length)]
    return {f"key{i} é": random_value(rng, depth + 1) for i in range(rng.choice([0, 1, 2, 6]))}


def test_the_pieces_are_json_dumps_byte_for_byte() -> None:
    rng = random.Random(15)
    for _ in range(300):
        document = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "Resources": [random_value(rng) for _ in range(rng.choice([0, 3, 16, 17, 200]))],
            "members": random_value(rng),
        }
        assert "".join(response_body._pieces(document)).encode() == dumped(document)


def group_page(groups: int, members: int) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": groups,
        "Resources": [
            {
                "id": f"g{g}",
                "displayName": f"Group {g}",
                "members": [{"value": f"u{m}", "display": f"User {m}", "type": "User"} for m in range(members)],
                "meta": {"resourceType": "Group", "version": 'W/"1"'},
            }
            for g in range(groups)
        ],
    }


def test_a_group_with_many_members_is_split_inside_a_page() -> None:
    pieces = list(response_body._pieces(group_page(2, 1000)))
    assert len(pieces) > 2 * 1000 // response_body.SPLIT_ITEMS
    assert max(piece.count('"value"') for piece in pieces) == response_body.SPLIT_ITEMS
    assert "".join(pieces).encode() == dumped(group_page(2, 1000))


async def encode_beside_another_task(document: dict[str, Any]) -> tuple[ScimResponse, list[bool]]:
    """Encode ``document`` for one tenant while another tenant's task keeps asking for the loop; what the other
    task saw each time it ran: whether the body was encoded yet."""
    response = ScimResponse(200, document)
    seen: list[bool] = []

    async def other_tenant() -> None:
        while response.encoded is None:
            seen.append(response.encoded is not None)
            await asyncio.sleep(0)

    async def encode() -> None:
        async with cpu_share.request("one", lambda: False):
            await response_body.encode_large(response)

    await asyncio.gather(other_tenant(), encode())
    return response, seen


async def test_another_request_runs_between_the_slices_of_a_large_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(response_body, "SLICE_SECONDS", 0.0)  # a piece per turn, whatever the machine's speed
    document = group_page(1, 1000)
    response, seen = await encode_beside_another_task(document)
    assert response.body_bytes() == dumped(document)
    assert len(seen) > 1000 // response_body.SPLIT_ITEMS  # it ran between the slices, not only before and after


async def test_a_slice_lasts_its_time_not_a_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(response_body, "SLICE_SECONDS", 10.0)
    document = group_page(1, 1000)
    response, seen = await encode_beside_another_task(document)
    assert response.body_bytes() == dumped(document)
    assert len(seen) <= 2  # one turn: the other task ran before it and at most once beside it


def test_a_small_body_is_left_to_body_bytes_without_an_await() -> None:
    document = group_page(1, response_body.LARGE_ITEMS - 2)  # schemas, Resources and members: LARGE_ITEMS items
    response = ScimResponse(200, document)
    step = response_body.encode_large(response)
    with pytest.raises(StopIteration):
        step.send(None)  # finished on its first step: it never waited for a turn
    assert response.encoded is None
    assert response.body_bytes() == dumped(document)


def test_the_items_of_a_pages_resources_count_towards_large() -> None:
    assert response_body._items(group_page(3, 40)) == 1 + 3 + 3 * 40
    assert response_body._items({"id": "u", "emails": [{"value": "a"}] * 2}) == 2
    assert json.loads(dumped(group_page(3, 40))) == group_page(3, 40)
