"""Storage faults between the endpoint and Azurite: while Table Storage is unreachable, slow or throttling, every
request Entra makes answers 503 with ``Retry-After`` (never a 404, a 500 or an empty list, which Entra would act on)
and changes nothing; where storage did the work but the answer was lost, the change is whole, never half made.

The endpoint has its own TableStore, talking to the session's Azurite through a :class:`FaultProxy`; the data is
read back through a second store that talks to Azurite directly. All operations of one fault run concurrently, each
in its own tenant seeded while storage was healthy, so that a fault costs one request budget, not one per operation.
"""

import asyncio
import copy
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from scim.local import azurite
from scim.messages import ScimResponse
from scim.store.tables import TableStore
from tests.conftest import Client, make_client
from tests.fault_proxy import Fault, FaultProxy
from tests.integration.scim_checks import ERROR_SCHEMA, GROUP, USER, patch_body, snapshot

pytestmark = pytest.mark.azurite

BUDGET = 2.0
"""The storage time one request may spend (``request_budget``); short, so that the slow faults stay quick."""
ANSWER_WITHIN = BUDGET + 10.0
"""A request must answer within its budget; the margin is for a loaded machine, not for the product."""
HEAL_AFTER = 0.3
"""How long a transient fault lasts: well inside the budget, so that retrying within it must succeed."""
ALICE, BOB, CAROL, NEW = "alice@example.com", "bob@example.com", "carol@example.com", "new@example.com"
STAFF = "Staff"

Request = tuple[str, str, Any, dict[str, str]]
State = dict[str, dict[str, dict[str, Any]]]
"""A tenant's data by name, without ids or versions: ``{"Users": {userName: doc}, "Groups": {displayName: doc}}``,
a group's ``members`` as sorted userNames. Two states compare equal when the same changes were made."""


def user_document(user_name: str) -> dict[str, Any]:
    """A seeded user as posted, and as read back without ``id``, ``meta`` and ``groups``."""
    return {"schemas": [USER], "userName": user_name, "displayName": user_name.split("@")[0].title(), "active": True}


@dataclass(frozen=True)
class Operation:
    """One request Entra makes, its answer when storage is healthy, and the change it makes to a tenant's state."""

    name: str
    request: Callable[[dict[str, str]], Request]
    ok: int
    total: int | None = None
    """For a list: how many resources the healthy answer holds (an empty list would read as 'not found')."""
    effect: Callable[[State], None] = lambda state: None


def _disable(state: State) -> None:
    state["Users"][ALICE]["active"] = False


def _replace(state: State) -> None:
    state["Users"][ALICE]["displayName"] = "Alice Replaced"


def _create_new(state: State) -> None:
    state["Users"][NEW] = user_document(NEW)


def _delete_bob(state: State) -> None:
    del state["Users"][BOB]
    state["Groups"][STAFF]["members"].remove(BOB)


def _add_carol(state: State) -> None:
    state["Groups"][STAFF]["members"] = sorted([*state["Groups"][STAFF]["members"], CAROL])


def _remove_alice(state: State) -> None:
    state["Groups"][STAFF]["members"].remove(ALICE)


def _delete_staff(state: State) -> None:
    del state["Groups"][STAFF]


DISABLE = patch_body({"op": "Replace", "path": "active", "value": "False"})
"""Entra's shape: the boolean as a string."""


def _members(op: str, user_id: str) -> dict[str, Any]:
    return patch_body({"op": op, "path": "members", "value": [{"value": user_id}]})


OPERATIONS = {
    operation.name: operation
    for operation in (
        Operation("find user", lambda ids: ("GET", "Users", None, {"filter": f'userName eq "{ALICE}"'}), 200, 1),
        Operation("find missing user", lambda ids: ("GET", "Users", None, {"filter": f'userName eq "{NEW}"'}), 200, 0),
        Operation("get user", lambda ids: ("GET", f"Users/{ids[ALICE]}", None, {}), 200),
        Operation("create user", lambda ids: ("POST", "Users", user_document(NEW), {}), 201, effect=_create_new),
        Operation("disable user", lambda ids: ("PATCH", f"Users/{ids[ALICE]}", DISABLE, {}), 200, effect=_disable),
        Operation(
            "replace user",
            lambda ids: ("PUT", f"Users/{ids[ALICE]}", {**user_document(ALICE), "displayName": "Alice Replaced"}, {}),
            200,
            effect=_replace,
        ),
        Operation("delete user", lambda ids: ("DELETE", f"Users/{ids[BOB]}", None, {}), 204, effect=_delete_bob),
        Operation("find group", lambda ids: ("GET", "Groups", None, {"filter": f'displayName eq "{STAFF}"'}), 200, 1),
        Operation(
            "get group without members",
            lambda ids: ("GET", f"Groups/{ids[STAFF]}", None, {"excludedAttributes": "members"}),
            200,
        ),
        Operation(
            "add member", lambda ids: ("PATCH", f"Groups/{ids[STAFF]}", _members("Add", ids[CAROL]), {}), 204,
            effect=_add_carol,
        ),
        Operation(
            "remove member", lambda ids: ("PATCH", f"Groups/{ids[STAFF]}", _members("Remove", ids[ALICE]), {}), 204,
            effect=_remove_alice,
        ),
        Operation("delete group", lambda ids: ("DELETE", f"Groups/{ids[STAFF]}", None, {}), 204, effect=_delete_staff),
        Operation("list users", lambda ids: ("GET", "Users", None, {}), 200, 3),
    )
}  # fmt: skip

FAULTS = {
    "refuse": Fault("refuse"),
    "drop": Fault("drop"),
    "reset": Fault("reset"),
    "delay beyond the budget": Fault("delay", seconds=BUDGET + 3),
    "blackhole": Fault("blackhole"),
    "cut before the answer": Fault("cut", after_bytes=0),
    "cut in the answer's head": Fault("cut", after_bytes=60),
    "cut in the answer's body": Fault("cut", after_bytes=450),
    "storage 503 ServerBusy": Fault("respond", status=503),
    "storage 500 InternalError": Fault("respond", status=500),
    "storage 429 TooManyRequests": Fault("respond", status=429),
}
"""Azurite's answer heads are 340-420 bytes: 60 bytes cuts every head, 450 the body of every answer that has one."""
ANSWER_LOST = ("delay", "cut")
"""Faults under which storage may have done work the endpoint never heard of (a request held past the budget may
still arrive; a cut answer follows the work): the change may be there, but then whole."""

REPEATABLE = ("get user", "find user", "disable user", "add member")
TRANSIENT = {
    "refused": (Fault("refuse"), (*REPEATABLE, "create user")),
    "storage busy": (Fault("respond", status=503), (*REPEATABLE, "create user")),
    "dropped": (Fault("drop"), REPEATABLE),
    "reset": (Fault("reset"), REPEATABLE),
}
"""Faults that last ``HEAL_AFTER`` seconds, with the operations a retry may repeat: a refused connect and a ServerBusy
answer say the request was not carried out, so even a create may be sent again; after a dropped or reset connection
only requests that are safe to repeat are."""


@dataclass
class Tenant:
    """A tenant seeded while storage was healthy: its client (through the proxy) and a checker (straight to Azurite)."""

    name: str
    client: Client
    checker: Client
    ids: dict[str, str]
    """userName or displayName → id."""


@pytest.fixture(scope="module")
def module_proxy(azurite_connection_string: str) -> Iterator[FaultProxy]:
    table_endpoint = dict(part.split("=", 1) for part in azurite_connection_string.split(";") if part)["TableEndpoint"]
    port = urlsplit(table_endpoint).port
    assert port is not None
    with FaultProxy(port) as proxy:
        yield proxy


@pytest.fixture
def proxy(module_proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The module's proxy, forwarding at the start of a test and again at its end, whatever the test left it in."""
    module_proxy.heal()
    yield module_proxy
    module_proxy.heal()


@pytest.fixture(scope="module")
async def faulty_store(module_proxy: FaultProxy) -> AsyncIterator[TableStore]:
    store = TableStore.from_settings(
        azurite.connection_string(module_proxy.port), None, "faults", request_budget=BUDGET
    )
    yield store
    await store.close()


@pytest.fixture(scope="module")
async def direct_store(azurite_connection_string: str) -> AsyncIterator[TableStore]:
    store = TableStore.from_settings(azurite_connection_string, None, "faults")
    yield store
    await store.close()


async def seed(faulty_store: TableStore, direct_store: TableStore) -> Tenant:
    """Alice, Bob and Carol; group Staff with Alice and Bob."""
    name = f"t{secrets.token_hex(6)}"
    tenant = Tenant(name, make_client(faulty_store, name), make_client(direct_store, name), {})
    for user_name in (ALICE, BOB, CAROL):
        user = await tenant.client.call("POST", "Users", user_document(user_name))
        assert user.status == 201, user.document
        tenant.ids[user_name] = user.document["id"]
    members = [{"value": tenant.ids[ALICE]}, {"value": tenant.ids[BOB]}]
    group = await tenant.client.call("POST", "Groups", {"schemas": [GROUP], "displayName": STAFF, "members": members})
    assert group.status == 201, group.document
    tenant.ids[STAFF] = group.document["id"]
    return tenant


async def seed_many(count: int, faulty_store: TableStore, direct_store: TableStore) -> list[Tenant]:
    return list(await asyncio.gather(*(seed(faulty_store, direct_store) for _ in range(count))))


async def send(client: Client, request: Request) -> ScimResponse | None:
    """The endpoint's answer, or None if it gave none in ``ANSWER_WITHIN`` seconds."""
    method, path, body, query = request
    try:
        return await asyncio.wait_for(client.call(method, path, body, query), ANSWER_WITHIN)
    except TimeoutError:
        return None


def state_of(snapshot: dict[str, Any]) -> State:
    """A :func:`snapshot` without ids and versions, so that it can be compared with a change made elsewhere."""
    names = {user["id"]: user["userName"] for user in snapshot["Users"]}
    users = {user["userName"]: _without(user, "id", "meta", "groups") for user in snapshot["Users"]}
    groups = {
        group["displayName"]: {
            **_without(group, "id", "meta", "members"),
            "members": sorted(names.get(member["value"], member["value"]) for member in group.get("members", [])),
        }
        for group in snapshot["Groups"]
    }
    return {"Users": users, "Groups": groups}


def _without(document: dict[str, Any], *names: str) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key not in names}


def applied(operation: Operation, state: State) -> State:
    changed = copy.deepcopy(state)
    operation.effect(changed)
    return changed


def retry_after(response: ScimResponse) -> str:
    return next((value for key, value in response.headers.items() if key.lower() == "retry-after"), "")


def describe(response: ScimResponse | None) -> str:
    if response is None:
        return f"no answer within {ANSWER_WITHIN:g} s"
    return f"{response.status} Retry-After={retry_after(response) or '-'} {json.dumps(response.document)[:400]}"


def is_unavailable(response: ScimResponse | None) -> bool:
    """503, a SCIM error body, and a ``Retry-After`` in whole seconds that tells Entra to come back later."""
    if response is None or response.status != 503 or not response.document:
        return False
    seconds = retry_after(response)
    document = response.document
    return (
        seconds.isdigit() and int(seconds) > 0 and (document["schemas"], document["status"]) == ([ERROR_SCHEMA], "503")
    )


def is_ok(operation: Operation, response: ScimResponse | None) -> bool:
    if response is None or response.status != operation.ok:
        return False
    return operation.total is None or (response.document or {}).get("totalResults") == operation.total


async def state_problem(tenant: Tenant, operation: Operation, before: dict[str, Any], answer_lost: bool) -> str | None:
    """What is wrong with a tenant's data after a failed request: any change at all, or, where the answer may have
    been lost after the work was done, any change other than the whole of the operation's."""
    after = await snapshot(tenant.checker)
    if after == before:
        return None
    if answer_lost and state_of(after) == applied(operation, state_of(before)):
        return None
    changes = difference(state_of(before), state_of(after)) or ["only meta.version or lastModified"]
    return "data changed: " + "; ".join(changes)


def difference(before: State, after: State) -> list[str]:
    return [
        f"{kind} {name}: {json.dumps(before[kind].get(name))} -> {json.dumps(after[kind].get(name))}"
        for kind in before
        for name in sorted(before[kind].keys() | after[kind].keys())
        if before[kind].get(name) != after[kind].get(name)
    ]


async def assert_consistent(store: TableStore, tenants: Sequence[str]) -> None:
    """The invariants of the stored rows (index rows, both rows of each membership) hold for these tenants."""
    from scim.consistency import check

    report = await check(store, tenants=list(tenants))
    assert report.clean, report.findings


async def test_every_operation_answers_and_changes_as_expected_while_storage_is_healthy(
    proxy: FaultProxy, faulty_store: TableStore, direct_store: TableStore
):
    """The yardstick of the fault tests: the requests are well formed and their effects are the ones expected."""
    tenants = await seed_many(len(OPERATIONS), faulty_store, direct_store)
    problems = []
    for tenant, operation in zip(tenants, OPERATIONS.values(), strict=True):
        before = state_of(await snapshot(tenant.checker))
        response = await send(tenant.client, operation.request(tenant.ids))
        if not is_ok(operation, response):
            problems.append(f"{operation.name}: {describe(response)}")
        elif changes := difference(applied(operation, before), state_of(await snapshot(tenant.checker))):
            problems.append(f"{operation.name}: expected -> found: {'; '.join(changes)}")
    assert not problems, "\n".join(problems)
    await assert_consistent(direct_store, [tenant.name for tenant in tenants])


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_every_operation_answers_503_and_changes_nothing_while_storage_fails(
    proxy: FaultProxy, faulty_store: TableStore, direct_store: TableStore, fault: Fault
):
    tenants = await seed_many(len(OPERATIONS), faulty_store, direct_store)
    before = await asyncio.gather(*(snapshot(tenant.checker) for tenant in tenants))
    pairs = list(zip(tenants, OPERATIONS.values(), strict=True))
    proxy.set_fault(fault)
    try:
        responses = await asyncio.gather(*(send(tenant.client, op.request(tenant.ids)) for tenant, op in pairs))
    finally:
        proxy.heal()
    problems = [
        f"{op.name}: {describe(response)}"
        for (_, op), response in zip(pairs, responses, strict=True)
        if not is_unavailable(response)
    ]
    for (tenant, op), earlier in zip(pairs, before, strict=True):
        if problem := await state_problem(tenant, op, earlier, fault.mode in ANSWER_LOST):
            problems.append(f"{op.name} (after healing): {problem}")
    assert not problems, "\n".join(problems)
    await assert_consistent(direct_store, [tenant.name for tenant in tenants])


@pytest.mark.parametrize(("fault", "names"), TRANSIENT.values(), ids=TRANSIENT.keys())
async def test_a_fault_that_heals_within_the_budget_is_retried_to_success(
    proxy: FaultProxy, faulty_store: TableStore, direct_store: TableStore, fault: Fault, names: tuple[str, ...]
):
    operations = [OPERATIONS[name] for name in names]
    tenants = await seed_many(len(operations), faulty_store, direct_store)
    before = [state_of(await snapshot(tenant.checker)) for tenant in tenants]
    faulted = proxy.faulted
    proxy.set_fault(fault)
    requests = [
        asyncio.ensure_future(send(tenant.client, op.request(tenant.ids)))
        for tenant, op in zip(tenants, operations, strict=True)
    ]
    await asyncio.sleep(HEAL_AFTER)
    proxy.heal()
    responses = await asyncio.gather(*requests)
    assert proxy.faulted > faulted or fault.mode == "refuse", "no request met the fault"
    problems = [
        f"{op.name}: {describe(response)}"
        for op, response in zip(operations, responses, strict=True)
        if not is_ok(op, response)
    ]
    for tenant, op, earlier in zip(tenants, operations, before, strict=True):
        if changes := difference(applied(op, earlier), state_of(await snapshot(tenant.checker))):
            problems.append(f"{op.name}: expected -> found: {'; '.join(changes)}")
    assert not problems, "\n".join(problems)
    await assert_consistent(direct_store, [tenant.name for tenant in tenants])
