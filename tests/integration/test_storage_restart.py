"""Table Storage goes away in the middle of a provisioning run and comes back: a dedicated Azurite persisting to
disk is stopped with :func:`scim.local.azurite.stop` and started again on the same port and directory.

While it is down every answer is 503 with ``Retry-After``, never a 404, a 500 or an empty list (Entra would take
the last for "no such user" and create a duplicate). Once it is back, every request that was answered 2xx, before,
during or after the outage, is in the data, and the consistency check finds nothing to repair.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

import pytest

from scim.local import azurite
from scim.messages import ScimResponse
from scim.store.tables import TableStore
from tests.conftest import Client, make_client
from tests.integration.scim_checks import GROUP, USER, patch_body
from tests.integration.test_storage_faults import ANSWER_WITHIN, BUDGET, assert_consistent, describe, is_unavailable

pytestmark = pytest.mark.azurite

TENANT = "trestart"
"""The only tenant on the dedicated Azurite."""
USERS = 24
GROUPS = ("Engineering", "Sales", "Support")
PACE = 0.02
"""Between two steps of the run, so that the outage falls in its middle rather than after its end."""
RETRY_PAUSE = 0.2
"""Before a 503 is sent again; Entra waits far longer, the test need not."""
PATIENCE = 60.0
"""How long one step is retried on 503 before the run gives up on it: a step that never succeeds is a failure."""


class Storage:
    """A dedicated Azurite persisting to ``data_dir``, that a test stops and starts again on the same port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = azurite.free_port()
        self.process: Popen[bytes] | None = None

    def start(self) -> None:
        self.process = azurite.start(self.port, data_dir=self.data_dir)

    def stop(self) -> None:
        if self.process is not None:
            azurite.stop(self.process)
            self.process = None


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    storage = Storage(tmp_path / "azurite")
    storage.start()
    try:
        yield storage
    finally:
        storage.stop()


@pytest.fixture
async def client(storage: Storage) -> AsyncIterator[Client]:
    store = TableStore.from_settings(azurite.connection_string(storage.port), None, "restart", request_budget=BUDGET)
    yield make_client(store, TENANT)
    await store.close()


class RunStopped(Exception):
    """The run met an answer Entra would act on wrongly, or a step that never succeeded."""


@dataclass
class Exchange:
    step: str
    started: float
    ended: float
    response: ScimResponse | None


@dataclass
class Provisioning:
    """Entra's side of a run: users found or created, some renamed, groups created, members added and removed.

    A request answered 503 is sent again after a pause, as Entra does, so that a run that survives the outage ends
    with every step done; what every 2xx answer said is kept, to be checked against the data at the end."""

    client: Client
    exchanges: list[Exchange] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)
    """User id → its userName, as last acknowledged."""
    former_names: list[str] = field(default_factory=list)
    """userNames and displayNames given up by a rename: a lookup must no longer find them."""
    groups: dict[str, str] = field(default_factory=dict)
    """Group id → displayName."""
    members: dict[str, set[str]] = field(default_factory=dict)
    """Group id → member ids, as acknowledged."""

    async def run(self) -> None:
        for number in range(USERS):
            await self.provision_user(f"user{number}@example.com")
            ids = list(self.users)
            if number % 4 == 3:
                await self.rename(ids[number - 2])
            if number % 3 == 2:
                await self.confirm(ids[number - 1])
            await asyncio.sleep(PACE)
        for index, name in enumerate(GROUPS):
            group_id = await self.provision_group(name)
            members = list(self.users)[index :: len(GROUPS)]
            await self.change_members(group_id, "Add", members)
            await self.change_members(group_id, "Remove", members[:1])
            if index == 0:
                await self.rename_group(group_id)

    async def provision_user(self, user_name: str) -> None:
        """Entra's create: look for the user first; a 409 means an earlier attempt was stored unanswered."""
        found = await self.find("Users", "userName", user_name)
        if not found:
            body = {"schemas": [USER], "userName": user_name, "active": True}
            response = await self.send(f"create {user_name}", "POST", "Users", body, expected=(201, 409))
            found = await self.find("Users", "userName", user_name) if response.status == 409 else [_id(response)]
        if len(found) != 1:
            raise RunStopped(f"{user_name} is there {len(found)} times")
        self.users[found[0]] = user_name

    async def rename(self, user_id: str) -> None:
        current = await self.send(f"read {user_id}", "GET", f"Users/{user_id}", expected=(200,))
        old = current.document["userName"] if current.document else ""
        new = f"renamed-{old}"
        body = patch_body({"op": "Replace", "path": "userName", "value": new})
        await self.send(f"rename {old}", "PATCH", f"Users/{user_id}", body, expected=(200,))
        self.users[user_id] = new
        self.former_names.append(old)

    async def rename_group(self, group_id: str) -> None:
        old = self.groups[group_id]
        body = patch_body({"op": "Replace", "path": "displayName", "value": f"{old} renamed"})
        await self.send(f"rename group {old}", "PATCH", f"Groups/{group_id}", body, expected=(204,))
        self.groups[group_id] = f"{old} renamed"
        self.former_names.append(old)

    async def confirm(self, user_id: str) -> None:
        """Entra's periodic sync of a user it provisioned: not finding it would make Entra create it again."""
        found = await self.find("Users", "userName", self.users[user_id])
        if found != [user_id]:
            raise RunStopped(f"looking up {self.users[user_id]} found {found}, not {user_id}")

    async def provision_group(self, name: str) -> str:
        found = await self.find("Groups", "displayName", name)
        if not found:
            body = {"schemas": [GROUP], "displayName": name}
            response = await self.send(f"create group {name}", "POST", "Groups", body, expected=(201, 409))
            found = await self.find("Groups", "displayName", name) if response.status == 409 else [_id(response)]
        if len(found) != 1:
            raise RunStopped(f"group {name} is there {len(found)} times")
        self.groups[found[0]] = name
        self.members[found[0]] = set()
        return found[0]

    async def change_members(self, group_id: str, op: str, member_ids: list[str]) -> None:
        body = patch_body({"op": op, "path": "members", "value": [{"value": member} for member in member_ids]})
        await self.send(f"{op} members", "PATCH", f"Groups/{group_id}", body, expected=(204,))
        change = self.members[group_id].update if op == "Add" else self.members[group_id].difference_update
        change(member_ids)

    async def find(self, endpoint: str, attribute: str, value: str) -> list[str]:
        query = {"filter": f'{attribute} eq "{value}"'}
        response = await self.send(f"find {value}", "GET", endpoint, query=query, expected=(200,))
        return [resource["id"] for resource in (response.document or {}).get("Resources", [])]

    async def send(
        self,
        step: str,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        expected: tuple[int, ...] = (),
    ) -> ScimResponse:
        """Send until the answer is not 503; any answer but ``expected`` ends the run."""
        give_up = time.monotonic() + PATIENCE
        while True:
            started = time.monotonic()
            try:
                response = await asyncio.wait_for(self.client.call(method, path, body, query), ANSWER_WITHIN)
            except TimeoutError:
                response = None
            self.exchanges.append(Exchange(step, started, time.monotonic(), response))
            if response is not None and response.status in expected:
                return response
            if response is None or response.status != 503 or time.monotonic() > give_up:
                raise RunStopped(f"{step}: {describe(response)}")
            await asyncio.sleep(RETRY_PAUSE)


def _id(response: ScimResponse) -> str:
    assert response.document is not None
    return str(response.document["id"])


async def until(condition: Callable[[], bool], what: str, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {within:g} s for {what}")
        await asyncio.sleep(0.01)


async def data_problems(client: Client, run: Provisioning) -> list[str]:
    """Every acknowledged change that the data does not show: users by id and by (current, not former) userName,
    groups by id and displayName with exactly their members, and no resource Entra never got an id for."""
    problems = []
    for user_id, user_name in run.users.items():
        response = await client.call("GET", f"Users/{user_id}")
        if response.status != 200 or response.document is None or response.document["userName"] != user_name:
            problems.append(f"user {user_name} by id: {describe(response)}")
        if (found := await run.find("Users", "userName", user_name)) != [user_id]:
            problems.append(f"user {user_name} by userName: {found}")
    for former in run.former_names:
        endpoint, attribute = ("Users", "userName") if "@" in former else ("Groups", "displayName")
        if found := await run.find(endpoint, attribute, former):
            problems.append(f"former {attribute} {former} still finds {found}")
    for group_id, name in run.groups.items():
        response = await client.call("GET", f"Groups/{group_id}")
        members = {member["value"] for member in (response.document or {}).get("members", [])}
        if response.status != 200 or members != run.members[group_id]:
            problems.append(f"group {name}: {describe(response)}, expected members {sorted(run.members[group_id])}")
        if (found := await run.find("Groups", "displayName", name)) != [group_id]:
            problems.append(f"group {name} by displayName: {found}")
    for endpoint, acknowledged in (("Users", run.users), ("Groups", run.groups)):
        listed = await client.call("GET", endpoint, query={"count": "1"})
        if (listed.document or {}).get("totalResults") != len(acknowledged):
            problems.append(f"{endpoint}: {describe(listed)}, expected {len(acknowledged)} in all")
    return problems


async def test_acknowledged_writes_survive_a_stop_and_restart(storage: Storage, client: Client):
    """The ground the outage test stands on: what Azurite acknowledged before a stop is there after a restart."""
    created = [(await client.create_user(f"durable{number}@example.com"))["id"] for number in range(5)]
    await asyncio.to_thread(storage.stop)
    await asyncio.to_thread(storage.start)
    answers = {user_id: await client.call("GET", f"Users/{user_id}") for user_id in created}
    lost = [f"{user_id}: {describe(response)}" for user_id, response in answers.items() if response.status != 200]
    assert not lost, (
        f"{len(lost)} of {len(created)} users answered 201 are not readable after a restart:\n" + "\n".join(lost)
    )


async def test_a_provisioning_run_through_a_storage_restart(storage: Storage, client: Client):
    run = Provisioning(client)
    task = asyncio.ensure_future(run.run())
    await until(lambda: len(run.users) >= USERS // 4 or task.done(), "the run to get going")
    assert not task.done(), "the run ended before storage was stopped"
    await asyncio.to_thread(storage.stop)
    down_since = time.monotonic()
    await until(lambda: sum(x.started >= down_since for x in run.exchanges) >= 3, "answers during the outage")
    down_until = time.monotonic()
    await asyncio.to_thread(storage.start)
    stopped = (await asyncio.gather(task, return_exceptions=True))[0]

    during = [x for x in run.exchanges if down_since <= x.started and x.ended <= down_until]
    wrong = [f"{x.step}: {describe(x.response)}" for x in during if not is_unavailable(x.response)]
    assert during and not wrong, "answers while storage was down:\n" + "\n".join(wrong)
    misleading = [
        f"{x.step}: {describe(x.response)}"
        for x in run.exchanges
        if x.response is None or x.response.status == 404 or (x.response.status >= 500 and x.response.status != 503)
    ]
    assert not misleading, "answers Entra would act on wrongly:\n" + "\n".join(misleading)
    assert stopped is None, f"the run did not finish: {stopped}"
    problems = await data_problems(client, run)
    assert not problems, "acknowledged but not in the data after the restart:\n" + "\n".join(problems)
    await assert_consistent(client.endpoint.store, [TENANT])
