"""SCIM_INDEXED_ATTRIBUTES against real Azurite: index rows written with every write, filters answered from them
once the index is complete (and by a scan before), ``python -m scim reindex`` online, resumable and safe while
writes continue, ``check`` reporting missing and stale rows, and tenant isolation of the new rows."""

import asyncio
import os
import secrets
import sys
from pathlib import Path

import pytest

from scim import consistency, indexes, reindex
from scim.dispatch import ScimEndpoint
from scim.settings import ConfigurationError, Settings
from scim.store import keys, maintenance
from scim.store.contract import StoreUnavailable
from scim.store.tables import MembershipStore, TableStore
from tests.conftest import Client

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
GROUP_CUSTOM = "urn:ietf:params:scim:schemas:extension:acme:1.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
REPO_ROOT = Path(__file__).resolve().parents[2]
LISTED = f"{ENTERPRISE}:employeeNumber,{CUSTOM}:CustomAttribute,{GROUP_CUSTOM}:code"
INDEXED = indexes.parse(LISTED)


def client_for(store: TableStore, tenant: str, listed: str = LISTED) -> Client:
    token = secrets.token_urlsafe(24)
    settings = Settings(
        storage_connection_string="unused",
        storage_table_uri=None,
        bearer_tokens=((tenant, token),),
        indexed_attributes=listed,
    )
    return Client(ScimEndpoint(settings, store), token)


def new_tenant() -> str:
    return f"t{secrets.token_hex(6)}"


async def create(client: Client, user_name: str, number: str, custom: str) -> str:
    body = {"schemas": [USER], "userName": user_name, ENTERPRISE: {"employeeNumber": number}, CUSTOM: {}}
    body[CUSTOM]["CustomAttribute"] = custom
    response = await client.call("POST", "Users", body)
    assert response.status == 201, response.document
    return response.document["id"]


async def ids_matching(client: Client, text: str, collection: str = "Users") -> list[str]:
    response = await client.call("GET", collection, query={"filter": text})
    assert response.status == 200, response.document
    return sorted(resource["id"] for resource in response.document["Resources"])


def index_row_key(attribute_path: str, value: str, resource_id: str) -> str:
    attribute = next(a for a in INDEXED if a.path == attribute_path)
    return keys.shared_index_row_key(attribute.key_name, attribute.lookup_value(value), resource_id)


async def test_rows_are_written_with_every_write_and_filters_use_them_once_ready(store: TableStore):
    tenant = new_tenant()
    client = client_for(store, tenant)
    user_id = await create(client, "a@contoso.com", "42", "AbC")
    partition = keys.partition_key(tenant, "User")
    number_row = index_row_key(f"{ENTERPRISE}:employeeNumber", "42", user_id)
    custom_row = index_row_key(f"{CUSTOM}:CustomAttribute", "abc", user_id)
    assert await maintenance.read(store, partition, number_row) is not None
    assert await maintenance.read(store, partition, custom_row) is not None
    await reindex.reindex(store, INDEXED, [tenant])  # nothing to build: marks the indexes complete
    assert await ids_matching(client, f'{ENTERPRISE}:employeeNumber eq "42"') == [user_id]
    assert await ids_matching(client, f'{CUSTOM.lower()}:customattribute eq "ABC"') == [user_id]  # case-insensitive
    # The answer now comes from the rows: without its row, the user is not found (a scan would find it).
    row = await maintenance.read(store, partition, custom_row)
    assert row is not None and await maintenance.delete_unchanged(store, partition, [row])
    assert await ids_matching(client, f'{CUSTOM}:CustomAttribute eq "abc"') == []
    assert await ids_matching(client, f'{CUSTOM}:CustomAttribute co "b"') == [user_id]  # not eq: scanned
    # A change moves the row; a delete removes it.
    patch = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": f"{CUSTOM}:CustomAttribute", "value": "x"}]}
    assert (await client.call("PATCH", f"Users/{user_id}", patch)).status == 200
    assert await ids_matching(client, f'{CUSTOM}:CustomAttribute eq "X"') == [user_id]
    assert await ids_matching(client, f'{CUSTOM}:CustomAttribute eq "abc"') == []
    assert (await client.call("DELETE", f"Users/{user_id}")).status == 204
    report = await consistency.check(store, [tenant], indexed=INDEXED)
    assert report.clean, report.findings


async def test_reindex_builds_missing_rows_and_filters_stay_right_before_it(store: TableStore):
    tenant = new_tenant()
    before = client_for(store, tenant, listed="")
    ids = [await create(before, f"u{i}@contoso.com", str(i), f"c{i % 3}") for i in range(12)]
    after = client_for(store, tenant)
    expected = sorted(ids[i] for i in range(12) if i % 3 == 1)
    assert await ids_matching(after, f'{CUSTOM}:CustomAttribute eq "C1"') == expected  # scanned: not ready yet
    report = await consistency.check(store, [tenant], indexed=INDEXED)
    assert sum(f.kind == consistency.MISSING_INDEX for f in report.findings) == 24
    built = await reindex.reindex(store, INDEXED, [tenant])
    assert built.rows_inserted == 24
    assert built.completed == [
        f"{tenant} User {ENTERPRISE}:employeeNumber",
        f"{tenant} User {CUSTOM}:CustomAttribute",
        f"{tenant} Group {GROUP_CUSTOM}:code",
    ]
    assert (await consistency.check(store, [tenant], indexed=INDEXED)).clean
    assert await ids_matching(after, f'{CUSTOM}:CustomAttribute eq "C1"') == expected
    assert await ids_matching(after, f'{ENTERPRISE}:employeeNumber eq "7"') == [ids[7]]
    again = await reindex.reindex(store, INDEXED, [tenant])
    assert again.rows_inserted == 0
    assert len(again.already_ready) == 3


async def test_reindex_resumes_after_the_last_recorded_id(store: TableStore):
    tenant = new_tenant()
    before = client_for(store, tenant, listed="")
    ids = sorted([await create(before, f"r{i}@contoso.com", str(i), "v") for i in range(6)])
    only = indexes.parse(f"{CUSTOM}:CustomAttribute")
    partition = keys.partition_key(tenant, "User")
    await maintenance.upsert(store, partition, reindex.PROGRESS_PREFIX + only[0].key_name, {"after": ids[2]})
    built = await reindex.reindex(store, only, [tenant])
    assert built.resources_read == 3
    assert built.rows_inserted == 3
    report = await consistency.check(store, [tenant], indexed=only)
    assert sorted(f.detail.split()[1] for f in report.findings) == ids[:3]
    assert all(f"no {CUSTOM}:CustomAttribute (index {only[0].key_name}) row" in f.detail for f in report.findings)


async def test_check_reports_rows_of_an_attribute_no_longer_listed(store: TableStore):
    tenant = new_tenant()
    client = client_for(store, tenant)
    await create(client, "stale@contoso.com", "1", "s")
    report = await consistency.check(store, [tenant], indexed=indexes.parse(f"{ENTERPRISE}:employeeNumber"))
    assert [f.kind for f in report.findings] == [consistency.ORPHAN_INDEX]
    unlisted = indexes.parse(f"{CUSTOM}:CustomAttribute")[0].key_name
    assert f"no such index {unlisted} (of an attribute not in SCIM_INDEXED_ATTRIBUTES)" in report.findings[0].detail
    repaired = await consistency.check(store, [tenant], repair=True)
    assert all(f.repaired for f in repaired.findings) and len(repaired.findings) == 2
    assert (await consistency.check(store, [tenant])).clean


async def test_reindex_while_entra_writes(store: TableStore):
    """Creates, changes of the indexed value and deletes race the reindex: afterwards no row is missing or stale."""
    tenant = new_tenant()
    before = client_for(store, tenant, listed="")
    ids = [await create(before, f"w{i}@contoso.com", str(i), f"v{i}") for i in range(120)]
    writer = client_for(store, tenant)

    async def writes() -> None:
        for round_ in range(3):
            for i in range(round_, 120, 7):
                operation = {"op": "replace", "path": f"{CUSTOM}:CustomAttribute", "value": f"n{round_}-{i}"}
                await writer.call("PATCH", f"Users/{ids[i]}", {"schemas": [PATCH], "Operations": [operation]})
            await create(writer, f"new{round_}@contoso.com", f"new{round_}", f"new{round_}")
            await writer.call("DELETE", f"Users/{ids[100 + round_]}")

    built, _ = await asyncio.gather(reindex.reindex(store, INDEXED, [tenant]), writes())
    report = await consistency.check(store, [tenant], indexed=INDEXED)
    assert report.clean, (report.findings, built)
    listed = (await writer.call("GET", "Users", query={"count": "200"})).document["Resources"]
    for user in listed:
        value = user[CUSTOM]["CustomAttribute"]
        assert user["id"] in await ids_matching(writer, f'{CUSTOM}:CustomAttribute eq "{value}"')


async def test_index_rows_are_isolated_between_tenants(store: TableStore):
    first, second = new_tenant(), new_tenant()
    one, two = client_for(store, first), client_for(store, second)
    user_id = await create(one, "iso@contoso.com", "9", "same")
    await reindex.reindex(store, INDEXED, [first, second])
    assert await ids_matching(two, f'{CUSTOM}:CustomAttribute eq "same"') == []
    assert await ids_matching(two, f'{ENTERPRISE}:employeeNumber eq "9"') == []
    assert await ids_matching(one, f'{CUSTOM}:CustomAttribute eq "same"') == [user_id]


async def test_group_extension_attribute_index(store: TableStore):
    tenant = new_tenant()
    client = client_for(store, tenant)
    body = {"schemas": [GROUP], "displayName": "Idx", GROUP_CUSTOM: {"code": "G-1"}}
    group_id = (await client.call("POST", "Groups", body)).document["id"]
    await reindex.reindex(store, INDEXED, [tenant])
    assert await ids_matching(client, f'{GROUP_CUSTOM}:code eq "g-1"', "Groups") == [group_id]
    assert (await consistency.check(store, [tenant], indexed=INDEXED)).clean


@pytest.mark.parametrize("listed", ["emails", "name", "foo", f"{ENTERPRISE}:manager", f"{CUSTOM}:"])
def test_a_listed_attribute_that_cannot_be_indexed_is_refused(listed: str):
    settings = Settings("UseDevelopmentStorage=true", None, (("d", "x" * 16),), indexed_attributes=listed)
    with pytest.raises(ConfigurationError, match="SCIM_INDEXED_ATTRIBUTES"):
        settings.check()


@pytest.mark.parametrize("attribute", ["level", "isContractor", "hireDate", "notDeclared"])
def test_a_declared_attribute_that_is_not_a_string_is_refused(attribute: str):
    """Its values are stored as numbers, booleans or dates, and index rows hold strings: its filters would find
    nothing once the index is ready. An attribute the declaration does not have is refused too."""
    example = REPO_ROOT / "examples" / "schema-extensions.json"
    listed = f"urn:ietf:params:scim:schemas:extension:acme:2.0:User:{attribute}"
    tokens = (("d", "x" * 16),)
    settings = Settings(
        "UseDevelopmentStorage=true", None, tokens, indexed_attributes=listed, schema_extensions=str(example)
    )
    with pytest.raises(ConfigurationError, match="not a string attribute"):
        settings.check()
    settings = Settings(
        "UseDevelopmentStorage=true",
        None,
        tokens,
        indexed_attributes="urn:ietf:params:scim:schemas:extension:acme:2.0:User:costCenter",
        schema_extensions=str(example),
    )
    settings.check()


def test_case_rule_comes_from_the_schema():
    parsed = {
        a.path: a
        for a in indexes.parse(f"externalId,nickName,{CUSTOM}:x,urn:ietf:params:scim:schemas:core:2.0:Group:externalId")
    }
    assert parsed["externalId"].case_exact is True
    assert parsed["nickName"].case_exact is False
    assert parsed[f"{CUSTOM}:x"].case_exact is False
    assert parsed["urn:ietf:params:scim:schemas:core:2.0:Group:externalId"].resource_type == "Group"


async def cli(*arguments: str, connection_string: str, listed: str) -> tuple[int, str]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("SCIM_")}
    environment.update(
        SCIM_STORAGE_CONNECTION_STRING=connection_string, SCIM_TABLE_PREFIX="test", SCIM_INDEXED_ATTRIBUTES=listed
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scim", *arguments, cwd=REPO_ROOT, env=environment, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode()


async def test_reindex_and_check_commands(store: TableStore, azurite_connection_string: str):
    tenant = new_tenant()
    await create(client_for(store, tenant, listed=""), "cli@contoso.com", "5", "c")
    listed = f"{CUSTOM}:CustomAttribute"
    code, output = await cli("check", "--tenant", tenant, connection_string=azurite_connection_string, listed=listed)
    assert code == 1 and "missing index row" in output
    code, output = await cli("reindex", "--tenant", tenant, connection_string=azurite_connection_string, listed=listed)
    assert code == 0, output
    assert f"{tenant} User {listed}: complete" in output
    assert "1 rows inserted" in output
    code, output = await cli("check", "--tenant", tenant, connection_string=azurite_connection_string, listed=listed)
    assert code == 0, output
    code, _ = await cli("reindex", connection_string=azurite_connection_string, listed="emails")
    assert code == 2


async def test_a_group_post_undone_after_its_member_rows_failed_leaves_no_index_row(
    store: TableStore, monkeypatch: pytest.MonkeyPatch
):
    """The undo deletes the configured index rows too: otherwise Entra's retry of the POST would leave an orphan row
    that a filter on the attribute finds."""
    tenant = new_tenant()
    client = client_for(store, tenant)
    member = (await client.create_user("undo-member@contoso.com"))["id"]

    async def failing_add(*_: object) -> None:
        raise StoreUnavailable()

    monkeypatch.setattr(MembershipStore, "add", failing_add)
    body = {"schemas": [GROUP], "displayName": "Undone", GROUP_CUSTOM: {"code": "U-1"}, "members": [{"value": member}]}
    response = await client.call("POST", "Groups", body)
    assert response.status == 503, response.document
    partition = keys.partition_key(tenant, "Group")
    left = [row["RowKey"] async for row in store.range(partition, "", "~", ["RowKey"])]
    assert left == [], left
