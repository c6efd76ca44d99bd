"""``python -m scim check`` against real Azurite: each kind of damage is found, repaired only on request, and the
endpoint works again afterwards; a check running beside live traffic reports nothing and deletes nothing."""

import asyncio
import base64
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from scim.consistency import DANGLING, DUPLICATE_UNIQUE, HALF_EDGE, MISSING_INDEX, ORPHAN_INDEX, Report, check
from scim.filters import fold
from scim.local import azurite
from scim.local.host import REPO_ROOT
from scim.store import keys, maintenance
from scim.store.tables import TableStore
from tests.conftest import Client, make_client

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def tenant_client(store: TableStore) -> tuple[str, Client]:
    tenant = f"t{secrets.token_hex(6)}"
    return tenant, make_client(store, tenant)


def patch_body(*operations: dict) -> dict:
    return {"schemas": [PATCH], "Operations": list(operations)}


def user_name_key(user_name: str) -> str:
    return keys.unique_index_row_key("userName", fold(user_name))


def gone_id() -> str:
    """An id of the shape the service issues, that no resource has (ids are random and never reused)."""
    return secrets.token_hex(16)


async def create_group(client: Client, name: str, members: Sequence[str] = (), **attributes: Any) -> dict:
    body = {"schemas": [GROUP], "displayName": name, "members": [{"value": m} for m in members], **attributes}
    response = await client.call("POST", "Groups", body)
    assert response.status == 201, response.document
    return response.document


async def members_of(client: Client, group_id: str) -> dict[str, str]:
    response = await client.call("GET", f"Groups/{group_id}")
    assert response.status == 200
    return {member["value"]: member["type"] for member in response.document.get("members", [])}


async def groups_of(client: Client, user_id: str) -> list[str]:
    response = await client.call("GET", f"Users/{user_id}")
    assert response.status == 200
    return [group["value"] for group in response.document.get("groups", [])]


async def found_ids(client: Client, resource: str, filter_text: str) -> list[str]:
    response = await client.call("GET", resource, query={"filter": filter_text})
    assert response.status == 200
    return [found["id"] for found in response.document["Resources"]]


async def snapshot(store: TableStore, tenant: str) -> dict[tuple[str, str], str]:
    """Every row of a tenant with its ETag: equal snapshots mean nothing was written."""
    table = await store.table_client()
    rows = {}
    for resource_type in ("User", "Group", "Membership"):
        partition = keys.partition_key(tenant, resource_type)
        async for entity in table.query_entities("PartitionKey eq @pk", parameters={"pk": partition}):
            rows[(partition, entity["RowKey"])] = entity.metadata["etag"]
    return rows


async def plant(store: TableStore, partition: str, row_key: str, **properties: Any) -> None:
    table = await store.table_client()
    await table.upsert_entity({"PartitionKey": partition, "RowKey": row_key, **properties})


async def remove(store: TableStore, partition: str, row_key: str) -> None:
    table = await store.table_client()
    await table.delete_entity(partition, row_key)


def kinds(report: Report) -> list[tuple[str, str]]:
    return sorted((finding.kind, finding.row_key) for finding in report.findings)


async def found_then_repaired(store: TableStore, tenant: str, expected: list[tuple[str, str]]) -> Report:
    """Found without changing anything, then repaired, then gone; returns the repairing report."""
    before = await snapshot(store, tenant)
    found = await check(store, [tenant])
    assert kinds(found) == sorted(expected)
    assert {finding.tenant for finding in found.findings} == {tenant}
    assert not any(finding.repaired for finding in found.findings)
    assert await snapshot(store, tenant) == before
    repaired = await check(store, [tenant], repair=True)
    assert kinds(repaired) == sorted(expected)
    assert all(finding.repaired for finding in repaired.findings)
    assert (await check(store, [tenant])).clean
    return repaired


def write_first(monkeypatch, name: str, write: Callable[[], Awaitable[Any]]) -> None:
    """Run an endpoint write just before the check's first repair of that kind."""
    original = getattr(maintenance, name)
    fired: list[bool] = []

    async def racing(*args: Any, **kwargs: Any) -> bool:
        if not fired:
            fired.append(True)
            await write()
        return await original(*args, **kwargs)

    monkeypatch.setattr(maintenance, name, racing)


def before_scan(monkeypatch, store: TableStore, partition_suffix: str, prefix: str, write: Callable) -> list[bool]:
    """Run endpoint writes when the check starts reading a row range: what it read before is stale from then on."""
    original = store.range
    fired: list[bool] = []

    async def racing(partition: str, low: str, high: str, *args: Any, **kwargs: Any) -> Any:
        if not fired and partition.endswith(partition_suffix) and low == prefix:
            fired.append(True)
            await write()
        async for entity in original(partition, low, high, *args, **kwargs):
            yield entity

    monkeypatch.setattr(store, "range", racing)
    return fired


def on_read(monkeypatch, row_key: str, write: Callable, nth: int = 1, after: bool = False) -> list[bool]:
    """Run an endpoint write just before (or after) the check's ``nth`` fresh read of one row."""
    original = maintenance.read
    reads: list[bool] = []

    async def racing(store: TableStore, partition: str, key: str) -> Any:
        if key == row_key:
            reads.append(True)
        if key == row_key and len(reads) == nth and not after:
            await write()
        row = await original(store, partition, key)
        if key == row_key and len(reads) == nth and after:
            await write()
        return row

    monkeypatch.setattr(maintenance, "read", racing)
    return reads


def renamer(client: Client, user_id: str, name: str) -> Callable[[], Awaitable[None]]:
    async def rename() -> None:
        body = patch_body({"op": "replace", "path": "userName", "value": name})
        assert (await client.call("PATCH", f"Users/{user_id}", body)).status == 200

    return rename


async def run_cli(*arguments: str, connection_string: str) -> tuple[int, str, str]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("SCIM_")}
    environment.update(SCIM_STORAGE_CONNECTION_STRING=connection_string, SCIM_TABLE_PREFIX="test")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scim",
        "check",
        *arguments,
        cwd=REPO_ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_a_clean_tenant_is_clean_and_repairing_it_writes_nothing(store: TableStore):
    tenant, client = tenant_client(store)
    alice = await client.create_user("alice@example.com", externalId="a-1", emails=[{"value": "A@example.com"}])
    bob = await client.create_user("bob@example.com", emails=[{"value": "b@example.com"}, {"value": "b2@x.org"}])
    carol = await client.create_user("carol@example.com")
    inner = await create_group(client, "Inner", [alice["id"], bob["id"]], externalId="g-1")
    await create_group(client, "Outer", [inner["id"], carol["id"]])
    before = await snapshot(store, tenant)

    report = await check(store, [tenant])

    assert report.clean
    assert report.tenants == [tenant]
    assert report.rows_scanned == len(before)  # every row read once: nothing suspect, nothing read twice
    assert (await check(store, [tenant], repair=True)).clean
    assert await snapshot(store, tenant) == before


async def test_orphan_unique_index_row_blocks_its_name_until_repaired(store: TableStore):
    tenant, client = tenant_client(store)
    await client.create_user("someone@example.com")
    orphan = user_name_key("ghost@example.com")
    await plant(store, f"{tenant}:User", orphan, resourceId=gone_id())
    blocked = await client.call("POST", "Users", {"schemas": [USER], "userName": "Ghost@example.com"})
    assert blocked.status == 409

    report = await found_then_repaired(store, tenant, [(ORPHAN_INDEX, orphan)])

    assert "does not exist" in report.findings[0].detail
    assert (await client.call("POST", "Users", {"schemas": [USER], "userName": "Ghost@example.com"})).status == 201


async def test_orphan_shared_index_row_of_an_existing_user_is_deleted_and_the_user_kept(store: TableStore):
    tenant, client = tenant_client(store)
    user = await client.create_user("kept@example.com", emails=[{"value": "now@example.com"}])
    stale = keys.shared_index_row_key("email", fold("old@example.com"), user["id"])
    await plant(store, f"{tenant}:User", stale, resourceId=user["id"])

    report = await found_then_repaired(store, tenant, [(ORPHAN_INDEX, stale)])

    assert report.findings[0].detail == f"points at User {user['id']}, which has no such email"
    assert await found_ids(client, "Users", 'emails.value eq "now@example.com"') == [user["id"]]
    assert await found_ids(client, "Users", 'userName eq "kept@example.com"') == [user["id"]]


async def test_missing_index_rows_are_inserted_and_lookups_find_the_resources_again(store: TableStore):
    tenant, client = tenant_client(store)
    user = await client.create_user("lost@example.com", externalId="ext-7")
    group = await create_group(client, "Lost Group")
    user_row = user_name_key("lost@example.com")
    external_row = keys.shared_index_row_key("externalId", "ext-7", user["id"])
    group_row = keys.unique_index_row_key("displayName", fold("Lost Group"))
    await remove(store, f"{tenant}:User", user_row)
    await remove(store, f"{tenant}:User", external_row)
    await remove(store, f"{tenant}:Group", group_row)
    assert await found_ids(client, "Users", 'userName eq "lost@example.com"') == []

    await found_then_repaired(
        store, tenant, [(MISSING_INDEX, user_row), (MISSING_INDEX, external_row), (MISSING_INDEX, group_row)]
    )

    assert await found_ids(client, "Users", 'userName eq "LOST@example.com"') == [user["id"]]
    assert await found_ids(client, "Users", 'externalId eq "ext-7"') == [user["id"]]
    assert await found_ids(client, "Groups", 'displayName eq "lost group"') == [group["id"]]
    taken = await client.call("POST", "Users", {"schemas": [USER], "userName": "lost@example.com"})
    assert taken.status == 409  # uniqueness is enforced again
    rename = patch_body({"op": "replace", "path": "userName", "value": "found@example.com"})
    assert (await client.call("PATCH", f"Users/{user['id']}", rename)).status == 200
    assert (await client.call("DELETE", f"Users/{user['id']}")).status == 204
    assert (await client.call("DELETE", f"Groups/{group['id']}")).status == 204
    assert (await check(store, [tenant])).clean


async def test_half_edge_without_its_reverse_row_gets_it_back(store: TableStore):
    tenant, client = tenant_client(store)
    user = await client.create_user("member@example.com")
    group = await create_group(client, "Team", [user["id"]])
    await remove(store, f"{tenant}:Membership", keys.member_of_row_key(user["id"], group["id"]))
    assert await groups_of(client, user["id"]) == []

    report = await found_then_repaired(store, tenant, [(HALF_EDGE, keys.member_row_key(group["id"], user["id"]))])

    assert report.findings[0].detail == "no reverse row"
    assert await groups_of(client, user["id"]) == [group["id"]]


async def test_half_edges_without_forward_rows_get_them_back_with_the_member_type(store: TableStore):
    tenant, client = tenant_client(store)
    user = await client.create_user("member@example.com")
    child = await create_group(client, "Child")
    parent = await create_group(client, "Parent", [user["id"], child["id"]])
    for member_id in (user["id"], child["id"]):
        await remove(store, f"{tenant}:Membership", keys.member_row_key(parent["id"], member_id))
    assert await members_of(client, parent["id"]) == {}

    await found_then_repaired(
        store,
        tenant,
        [(HALF_EDGE, keys.member_of_row_key(member_id, parent["id"])) for member_id in (user["id"], child["id"])],
    )

    assert await members_of(client, parent["id"]) == {user["id"]: "User", child["id"]: "Group"}
    member_filter = f'members[value eq "{child["id"]}"]'
    assert await found_ids(client, "Groups", member_filter) == [parent["id"]]
    full = (await client.call("GET", f"Groups/{parent['id']}")).document["members"]
    assert {member["display"] for member in full} == {"member@example.com", "Child"}


async def test_edges_to_a_deleted_user_are_deleted(store: TableStore):
    tenant, client = tenant_client(store)
    kept = await client.create_user("kept@example.com")
    group = await create_group(client, "Team", [kept["id"]])
    gone = await client.create_user("gone@example.com")
    assert (await client.call("DELETE", f"Users/{gone['id']}")).status == 204
    forward = keys.member_row_key(group["id"], gone["id"])
    partition = f"{tenant}:Membership"
    await plant(store, partition, forward, memberId=gone["id"], memberType="User", display="gone")
    await plant(store, partition, keys.member_of_row_key(gone["id"], group["id"]), groupId=group["id"])
    assert gone["id"] in await members_of(client, group["id"])

    report = await found_then_repaired(store, tenant, [(DANGLING, forward)])

    assert report.findings[0].detail == f"member {gone['id']} is not an existing User"
    assert await members_of(client, group["id"]) == {kept["id"]: "User"}


async def test_edges_of_a_deleted_group_are_deleted_whole_or_half(store: TableStore):
    tenant, client = tenant_client(store)
    user = await client.create_user("member@example.com")
    partition = f"{tenant}:Membership"
    whole, half = gone_id(), gone_id()
    await plant(store, partition, keys.member_row_key(whole, user["id"]), memberId=user["id"], memberType="User")
    await plant(store, partition, keys.member_of_row_key(user["id"], whole), groupId=whole)
    await plant(store, partition, keys.member_of_row_key(user["id"], half), groupId=half)

    report = await found_then_repaired(
        store,
        tenant,
        [(DANGLING, keys.member_row_key(whole, user["id"])), (HALF_EDGE, keys.member_of_row_key(user["id"], half))],
    )

    details = sorted(finding.detail for finding in report.findings)
    assert details == [f"group {whole} does not exist", f"no forward row; group {half} does not exist"]
    assert [row_key for _, row_key in await snapshot(store, tenant) if row_key.startswith(("g:", "m:"))] == []


async def test_duplicate_unique_value_is_reported_and_never_repaired(store: TableStore):
    tenant, client = tenant_client(store)
    first = await client.create_user("same@example.com")
    second = await client.create_user("other@example.com")
    table = await store.table_client()
    row = await table.get_entity(f"{tenant}:User", keys.resource_row_key(second["id"]))
    await table.update_entity({**row, "doc": row["doc"].replace("other@example.com", "SAME@example.com")})
    await remove(store, f"{tenant}:User", user_name_key("other@example.com"))
    shared = user_name_key("same@example.com")
    before = await snapshot(store, tenant)

    for repair in (False, True):
        report = await check(store, [tenant], repair=repair)
        assert kinds(report) == [(DUPLICATE_UNIQUE, shared)]
        assert not report.findings[0].repaired
    assert second["id"] in report.findings[0].detail
    assert first["id"] in report.findings[0].detail
    assert await snapshot(store, tenant) == before
    assert await found_ids(client, "Users", 'userName eq "same@example.com"') == [first["id"]]


async def test_rows_of_a_document_that_no_longer_validates_are_left_alone(store: TableStore):
    """Nobody can say which index rows such a document needs (an older version wrote it, or a hand), so none of
    them is an orphan and none is deleted."""
    tenant, client = tenant_client(store)
    user = await client.create_user("odd@example.com", externalId="o-1", emails=[{"value": "odd@example.com"}])
    table = await store.table_client()
    row = await table.get_entity(f"{tenant}:User", keys.resource_row_key(user["id"]))
    await table.update_entity({**row, "doc": json.dumps({"userName": "odd@example.com", "active": "maybe"})})
    before = await snapshot(store, tenant)

    report = await check(store, [tenant], repair=True)

    assert report.clean
    assert await snapshot(store, tenant) == before


async def test_a_concurrent_write_wins_over_deleting_an_orphan(store: TableStore, monkeypatch):
    """The endpoint makes the orphan row needed (a PATCH adds the e-mail it indexes) just before the repair."""
    tenant, client = tenant_client(store)
    user = await client.create_user("u@example.com")
    row_key = keys.shared_index_row_key("email", fold("late@example.com"), user["id"])
    await plant(store, f"{tenant}:User", row_key, resourceId=user["id"])
    add_email = patch_body({"op": "add", "path": "emails", "value": [{"value": "late@example.com"}]})
    write_first(monkeypatch, "delete_unchanged", lambda: client.call("PATCH", f"Users/{user['id']}", add_email))

    report = await check(store, [tenant], repair=True)

    assert kinds(report) == [(ORPHAN_INDEX, row_key)]
    assert not report.findings[0].repaired
    assert await found_ids(client, "Users", 'emails.value eq "late@example.com"') == [user["id"]]
    assert (await check(store, [tenant])).clean


async def test_a_concurrent_write_wins_over_inserting_a_missing_row(store: TableStore, monkeypatch):
    """Another user takes the name whose row is missing just before the repair: the check must not overwrite it."""
    tenant, client = tenant_client(store)
    first = await client.create_user("wanted@example.com")
    await remove(store, f"{tenant}:User", user_name_key("wanted@example.com"))
    taken: list[dict] = []

    async def take_the_name() -> None:
        taken.append(await client.create_user("wanted@example.com"))

    write_first(monkeypatch, "create", take_the_name)

    report = await check(store, [tenant], repair=True)

    assert kinds(report) == [(MISSING_INDEX, user_name_key("wanted@example.com"))]
    assert not report.findings[0].repaired
    assert await found_ids(client, "Users", 'userName eq "wanted@example.com"') == [taken[0]["id"]]
    after = await check(store, [tenant], repair=True)
    assert kinds(after) == [(DUPLICATE_UNIQUE, user_name_key("wanted@example.com"))]
    assert first["id"] in after.findings[0].detail


async def test_a_member_removed_while_its_half_edge_is_completed_stays_removed(store: TableStore, monkeypatch):
    tenant, client = tenant_client(store)
    user = await client.create_user("u@example.com")
    group = await create_group(client, "Team", [user["id"]])
    await remove(store, f"{tenant}:Membership", keys.member_row_key(group["id"], user["id"]))
    leave = patch_body({"op": "remove", "path": f'members[value eq "{user["id"]}"]'})
    write_first(monkeypatch, "create", lambda: client.call("PATCH", f"Groups/{group['id']}", leave))

    report = await check(store, [tenant], repair=True)

    assert kinds(report) == [(HALF_EDGE, keys.member_of_row_key(user["id"], group["id"]))]
    assert not report.findings[0].repaired
    assert await groups_of(client, user["id"]) == []
    assert await members_of(client, group["id"]) == {}
    assert (await check(store, [tenant])).clean


async def test_a_group_deleted_while_its_half_edge_is_completed_leaves_no_edge(store: TableStore, monkeypatch):
    """The group is deleted after the check saw it exist and before the missing half is written: the group's delete
    cannot see that edge, so the check looks again after writing and removes the edge it completed."""
    tenant, client = tenant_client(store)
    user = await client.create_user("u@example.com")
    group = await create_group(client, "Team", [user["id"]])
    await remove(store, f"{tenant}:Membership", keys.member_row_key(group["id"], user["id"]))
    write_first(monkeypatch, "create", lambda: client.call("DELETE", f"Groups/{group['id']}"))

    report = await check(store, [tenant], repair=True)

    assert kinds(report) == [(HALF_EDGE, keys.member_of_row_key(user["id"], group["id"]))]
    assert report.findings[0].repaired
    assert (await client.call("GET", f"Groups/{group['id']}")).status == 404
    assert [row_key for _, row_key in await snapshot(store, tenant) if row_key.startswith(("g:", "m:"))] == []
    assert (await check(store, [tenant])).clean


async def test_a_row_inserted_for_a_value_dropped_meanwhile_is_deleted_again(store: TableStore, monkeypatch):
    """The user's e-mail changes (written raw here: the endpoint itself cannot drop a value whose row is missing)
    between the judgement and the insert: the inserted row would be an orphan, so the check removes it."""
    tenant, client = tenant_client(store)
    user = await client.create_user("u@example.com", emails=[{"value": "old@example.com"}])
    row_key = keys.shared_index_row_key("email", fold("old@example.com"), user["id"])
    await remove(store, f"{tenant}:User", row_key)

    async def drop_the_email() -> None:
        table = await store.table_client()
        row = await table.get_entity(f"{tenant}:User", keys.resource_row_key(user["id"]))
        await table.update_entity({**row, "doc": json.dumps({"userName": "u@example.com"})})

    write_first(monkeypatch, "create", drop_the_email)

    report = await check(store, [tenant], repair=True)

    assert kinds(report) == [(MISSING_INDEX, row_key)]
    assert row_key not in {key for _, key in await snapshot(store, tenant)}
    assert (await check(store, [tenant])).clean


async def test_writes_between_the_resource_scan_and_the_index_scan_are_not_findings(store: TableStore, monkeypatch):
    tenant, client = tenant_client(store)
    renamed = await client.create_user("before@example.com", emails=[{"value": "before@example.com"}])
    deleted = await client.create_user("deleted@example.com", externalId="d-1")
    group = await create_group(client, "Old Name")
    created: list[dict] = []

    async def user_writes() -> None:
        rename = patch_body({"op": "replace", "path": "userName", "value": "after@example.com"})
        assert (await client.call("PATCH", f"Users/{renamed['id']}", rename)).status == 200
        assert (await client.call("DELETE", f"Users/{deleted['id']}")).status == 204
        created.append(await client.create_user("new@example.com", externalId="n-1"))

    async def group_writes() -> None:
        created.append(await create_group(client, "New Group"))
        retitle = patch_body({"op": "replace", "path": "displayName", "value": "New Name"})
        assert (await client.call("PATCH", f"Groups/{group['id']}", retitle)).status == 204

    users_raced = before_scan(monkeypatch, store, ":User", keys.INDEX_PREFIX, user_writes)
    groups_raced = before_scan(monkeypatch, store, ":Group", keys.INDEX_PREFIX, group_writes)
    report = await check(store, [tenant], repair=True)

    assert users_raced and groups_raced and report.clean
    assert await found_ids(client, "Users", 'userName eq "after@example.com"') == [renamed["id"]]
    assert await found_ids(client, "Users", 'emails.value eq "before@example.com"') == [renamed["id"]]
    assert await found_ids(client, "Users", 'externalId eq "n-1"') == [created[0]["id"]]
    assert await found_ids(client, "Groups", 'displayName eq "New Group"') == [created[1]["id"]]
    assert await found_ids(client, "Groups", 'displayName eq "New Name"') == [group["id"]]
    assert (await client.call("POST", "Users", {"schemas": [USER], "userName": "before@example.com"})).status == 201
    assert (await check(store, [tenant])).clean


async def test_membership_changes_during_the_membership_scans_are_not_findings(store: TableStore, monkeypatch):
    tenant, client = tenant_client(store)
    stays, leaves, deleted = [(await client.create_user(f"{name}@example.com"))["id"] for name in "abc"]
    group = await create_group(client, "Team", [stays, leaves, deleted])
    joined: list[str] = []

    async def during_forward_scan() -> None:
        joined.append((await client.create_user("joined@example.com"))["id"])
        nested = await create_group(client, "Nested", [joined[0]])
        joined.append(nested["id"])
        add = {"op": "add", "path": "members", "value": [{"value": member} for member in joined]}
        leave = {"op": "remove", "path": f'members[value eq "{leaves}"]'}
        assert (await client.call("PATCH", f"Groups/{group['id']}", patch_body(add, leave))).status == 204
        assert (await client.call("DELETE", f"Users/{deleted}")).status == 204

    async def during_reverse_scan() -> None:
        add = {"op": "add", "path": "members", "value": [{"value": leaves}]}
        assert (await client.call("PATCH", f"Groups/{group['id']}", patch_body(add))).status == 204

    forward = before_scan(monkeypatch, store, ":Membership", keys.MEMBER_PREFIX, during_forward_scan)
    first = await check(store, [tenant], repair=True)
    monkeypatch.undo()
    reverse = before_scan(monkeypatch, store, ":Membership", keys.MEMBER_OF_PREFIX, during_reverse_scan)
    second = await check(store, [tenant], repair=True)

    assert forward and reverse and first.clean and second.clean
    expected = {stays: "User", leaves: "User", joined[0]: "User", joined[1]: "Group"}
    assert await members_of(client, group["id"]) == expected
    assert await groups_of(client, joined[0]) == sorted([group["id"], joined[1]])


async def test_an_index_row_deleted_while_judged_as_orphan_is_not_a_finding(store: TableStore, monkeypatch):
    """The scan saw the user as "a"; it is "b" when the index scan starts, so the "b" row is suspect, and it becomes
    "c" right after that row's fresh read: only the re-read of the row shows that the first read is stale."""
    tenant, client = tenant_client(store)
    user = await client.create_user("a@example.com")
    before_scan(monkeypatch, store, ":User", keys.INDEX_PREFIX, renamer(client, user["id"], "b@example.com"))
    reads = on_read(
        monkeypatch, user_name_key("b@example.com"), renamer(client, user["id"], "c@example.com"), after=True
    )

    report = await check(store, [tenant], repair=True)

    assert reads and report.clean
    assert await found_ids(client, "Users", 'userName eq "c@example.com"') == [user["id"]]
    assert (await check(store, [tenant])).clean


async def test_a_user_renamed_while_its_rows_are_judged_gets_no_row_inserted(store: TableStore, monkeypatch):
    """Seen as "a" by the scan, "b" when its rows are verified, "c" before the "b" row is read (the first read of
    that row is its own verification as a suspect): the "b" row is absent, but the user no longer needs it."""
    tenant, client = tenant_client(store)
    user = await client.create_user("a@example.com")
    before_scan(monkeypatch, store, ":User", keys.INDEX_PREFIX, renamer(client, user["id"], "b@example.com"))
    reads = on_read(monkeypatch, user_name_key("b@example.com"), renamer(client, user["id"], "c@example.com"), nth=2)

    report = await check(store, [tenant], repair=True)

    assert len(reads) >= 2 and report.clean
    assert (await client.call("POST", "Users", {"schemas": [USER], "userName": "b@example.com"})).status == 201
    assert (await check(store, [tenant])).clean


async def test_an_edge_removed_while_judged_as_a_half_edge_is_not_a_finding(store: TableStore, monkeypatch):
    tenant, client = tenant_client(store)
    user = await client.create_user("u@example.com")
    group = await create_group(client, "Team")
    url = f"Groups/{group['id']}"

    async def join() -> None:
        add = {"op": "add", "path": "members", "value": [{"value": user["id"]}]}
        assert (await client.call("PATCH", url, patch_body(add))).status == 204

    async def leave() -> None:
        assert (await client.call("PATCH", url, patch_body({"op": "remove", "path": "members"}))).status == 204

    before_scan(monkeypatch, store, ":Membership", keys.MEMBER_OF_PREFIX, join)
    reads = on_read(monkeypatch, keys.member_row_key(group["id"], user["id"]), leave, after=True)

    report = await check(store, [tenant], repair=True)

    assert reads and report.clean
    assert await members_of(client, group["id"]) == {}
    assert await groups_of(client, user["id"]) == []
    assert (await check(store, [tenant])).clean


async def test_repairing_checks_beside_live_traffic_report_and_delete_nothing(store: TableStore):
    """Creates, renames, e-mail changes, member adds and removes, nested groups and deletes, while checks that
    repair run back to back: no finding, and everything the endpoint wrote is there and findable afterwards."""
    tenant, client = tenant_client(store)
    group = await create_group(client, "Live")
    users: dict[str, str] = {}
    members: dict[str, str] = {}
    done = asyncio.Event()

    async def change(method: str, path: str, *operations: dict) -> None:
        response = await client.call(method, path, patch_body(*operations) if operations else None)
        assert response.status in (200, 204), response.document

    async def traffic() -> None:
        for i in range(24):
            user = await client.create_user(f"user{i}@example.com", emails=[{"value": f"u{i}@example.com"}])
            users[user["id"]] = f"user{i}@example.com"
            nested = await create_group(client, f"Nested {i}", [user["id"]])
            added = [{"value": user["id"]}, {"value": nested["id"]}]
            await change("PATCH", f"Groups/{group['id']}", {"op": "add", "path": "members", "value": added})
            members.update({user["id"]: "User", nested["id"]: "Group"})
            if i % 3 == 2:
                first = min(user_id for user_id in members if user_id in users)
                await change("PATCH", f"Groups/{group['id']}", {"op": "remove", "path": f'members[value eq "{first}"]'})
                del members[first]
                users[first] = f"renamed{i}@example.com"
                emails = [{"value": f"r{i}@example.com"}]
                await change(
                    "PATCH",
                    f"Users/{first}",
                    {"op": "replace", "path": "userName", "value": users[first]},
                    {"op": "replace", "path": "emails", "value": emails},
                )
            if i % 4 == 3:
                await change("DELETE", f"Users/{user['id']}")
                del users[user["id"]]
                members.pop(user["id"], None)
        done.set()

    async def checks() -> list[Report]:
        reports = []
        while not done.is_set() or not reports:
            reports.append(await check(store, [tenant], repair=True))
        return reports

    _, reports = await asyncio.gather(traffic(), checks())

    assert [finding for report in reports for finding in report.findings] == []
    for user_id, name in users.items():
        assert await found_ids(client, "Users", f'userName eq "{name}"') == [user_id]
    assert await members_of(client, group["id"]) == members
    nested = await client.call("GET", "Groups", query={"filter": 'displayName sw "Nested"', "count": "0"})
    assert nested.document["totalResults"] == 24
    assert (await check(store, [tenant])).clean


async def test_a_check_of_one_tenant_leaves_the_others_alone(store: TableStore):
    damaged = []
    for _ in range(2):
        tenant, client = tenant_client(store)
        await client.create_user("someone@example.com")
        await plant(store, f"{tenant}:User", user_name_key("ghost@example.com"), resourceId=gone_id())
        damaged.append(tenant)
    checked, other = damaged
    other_before = await snapshot(store, other)

    report = await check(store, [checked], repair=True)

    assert report.tenants == [checked]
    assert [(finding.tenant, finding.repaired) for finding in report.findings] == [(checked, True)]
    assert await snapshot(store, other) == other_before
    everyone = await check(store)
    assert {checked, other} <= set(everyone.tenants)
    assert [finding.tenant for finding in everyone.findings if finding.tenant in damaged] == [other]


async def test_cli_exits_1_on_findings_then_repairs_them_and_exits_0(store: TableStore, azurite_connection_string: str):
    tenant, client = tenant_client(store)
    await client.create_user("someone@example.com")
    orphan = user_name_key("ghost@example.com")
    await plant(store, f"{tenant}:User", orphan, resourceId=gone_id())
    line = f"{tenant}: {ORPHAN_INDEX} {tenant}:User {orphan}: points at User"

    code, out, _ = await run_cli("--tenant", tenant, connection_string=azurite_connection_string)
    assert code == 1
    assert line in out
    assert out.splitlines()[-1].endswith("1 finding(s), 0 repaired")
    code, out, _ = await run_cli("--tenant", tenant, "--json", connection_string=azurite_connection_string)
    assert code == 1
    document = json.loads(out)
    assert document["clean"] is False
    assert [(f["kind"], f["row_key"], f["repaired"]) for f in document["findings"]] == [(ORPHAN_INDEX, orphan, False)]

    code, out, _ = await run_cli("--tenant", tenant, "--repair", connection_string=azurite_connection_string)
    assert code == 0
    assert line in out and out.splitlines()[0].endswith("[repaired]")
    code, out, _ = await run_cli("--tenant", tenant, connection_string=azurite_connection_string)
    assert (code, out.splitlines()) == (0, ["1 tenant(s), 2 rows scanned, 0 finding(s), 0 repaired"])


async def test_cli_exits_2_with_one_line_when_storage_refuses_it(azurite_connection_string: str):
    wrong_key = base64.b64encode(secrets.token_bytes(64)).decode()
    refused = azurite_connection_string.replace(azurite.ACCOUNT_KEY, wrong_key)

    code, out, err = await run_cli("--tenant", "t1", connection_string=refused)

    assert (code, out) == (2, "")
    assert err.startswith("scim check: Table Storage failed (testResources): ")
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


async def test_cli_exits_2_on_a_malformed_connection_string():
    code, out, err = await run_cli(connection_string="AccountName=nothing-else")

    assert (code, out) == (2, "")
    assert err.startswith("scim check: SCIM_STORAGE_CONNECTION_STRING is not usable: ")
    assert len(err.strip().splitlines()) == 1
