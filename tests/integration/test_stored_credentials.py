"""Per-tenant credentials in storage: bearer secrets created with the tenants API authenticate their tenant on the
running endpoint without a restart, are stored only as scrypt hashes, expire and are revoked within the cache TTL,
and never cross tenants."""

import functools
import json
import logging
import os
import secrets
import subprocess
import sys
from datetime import timedelta

import pytest

from scim.admin.tenants import AdminError, TenantAdmin
from scim.auth import Authenticator
from scim.credential_directory import CACHE_SECONDS, CredentialDirectory
from scim.credentials import utc_now
from scim.dispatch import ScimEndpoint
from scim.errors import ScimError
from scim.local import azurite
from scim.local.host import REPO_ROOT
from scim.settings import Settings
from scim.store.credentials import CREDENTIAL_PARTITION, CredentialStore
from scim.store.tables import TableStore
from tests.conftest import Client, make_client

UNRELATED = (("unrelated", "unrelated-token-0123456789"),)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tenant_name() -> str:
    return f"st{secrets.token_hex(5)}"


@pytest.fixture
def admin(store: TableStore) -> TenantAdmin:
    return TenantAdmin(store)


def endpoint_client(store: TableStore, secret: str) -> Client:
    """A fresh endpoint (as a new instance would be) whose caller presents a stored secret."""
    settings = Settings(storage_connection_string="unused", storage_table_uri=None, bearer_tokens=UNRELATED)
    return Client(ScimEndpoint(settings, store), secret)


def authenticator(store: TableStore, clock: Clock, now=utc_now) -> Authenticator:
    directory = CredentialDirectory(CredentialStore(store), clock=clock, now=now)
    return Authenticator.from_settings(Settings("unused", None, UNRELATED), directory)


async def assert_401(checker: Authenticator, secret: str) -> None:
    with pytest.raises(ScimError) as raised:
        await checker.authenticate(f"Bearer {secret}")
    assert raised.value.status == 401
    assert raised.value.detail == "Authentication required"


async def test_a_stored_secret_authenticates_its_tenant_and_sees_only_its_data(store, admin):
    name = tenant_name()
    await admin.add_tenant(name)
    issued = await admin.create_secret(name)
    stored_client = endpoint_client(store, issued.secret)
    created = await stored_client.create_user("stored@example.com")

    same_tenant = make_client(store, name)  # the tenant's data is the same whichever credential reaches it
    found = await same_tenant.call("GET", f"Users/{created['id']}")
    assert found.status == 200

    other = make_client(store)
    assert (await other.call("GET", f"Users/{created['id']}")).status == 404
    listed = await stored_client.call("GET", "Users")
    assert listed.document is not None and listed.document["totalResults"] == 1


async def test_only_a_salted_scrypt_hash_is_stored(store, admin):
    name = tenant_name()
    await admin.add_tenant(name)
    first = await admin.create_secret(name)
    second = await admin.create_secret(name)
    table = await store.companion_table("Credentials")
    rows = [
        dict(row) async for row in table.query_entities("PartitionKey eq @pk", parameters={"pk": CREDENTIAL_PARTITION})
    ]
    mine = [row for row in rows if row.get("tenant") == name and row.get("kind") == "secret"]
    assert len(mine) == 2
    text = repr(rows)
    assert first.secret not in text and second.secret not in text
    assert first.secret.split("_")[-1] not in text
    hashes = [row["secretHash"] for row in mine]
    assert all(value.startswith("scrypt$16384$8$1$") for value in hashes)
    assert hashes[0].split("$")[4] != hashes[1].split("$")[4]  # per-secret salt


async def test_a_new_secret_works_without_a_restart_and_a_revoked_one_stops_within_the_ttl(store, admin):
    clock = Clock()
    checker = authenticator(store, clock)
    name = tenant_name()
    await admin.add_tenant(name)
    await checker.authenticate(f"Bearer {UNRELATED[0][1]}")  # nothing stored is read for a settings token

    issued = await admin.create_secret(name)
    clock.now += CACHE_SECONDS  # the instance read the credentials before this secret existed
    assert await checker.authenticate(f"Bearer {issued.secret}") == name

    assert await admin.revoke(issued.credential_id) == [f"secret:{issued.credential_id}"]
    assert await checker.authenticate(f"Bearer {issued.secret}") == name  # cached snapshot: still valid...
    clock.now += CACHE_SECONDS
    await assert_401(checker, issued.secret)  # ...until the next read of storage


async def test_wrong_forged_and_foreign_shaped_secrets_are_refused(store, admin):
    checker = authenticator(store, Clock())
    name = tenant_name()
    await admin.add_tenant(name)
    issued = await admin.create_secret(name)
    assert await checker.authenticate(f"Bearer {issued.secret}") == name
    prefix, credential_id, random_part = issued.secret[:6], issued.secret[6:22], issued.secret[23:]
    other_random = secrets.token_urlsafe(32)
    for presented in (
        f"{prefix}{credential_id}_{other_random}",  # right id, wrong secret
        f"{prefix}{'0' * 16}_{random_part}",  # unknown id, right secret
        issued.secret[:-1],  # truncated
        issued.secret + "x",
        "scimc" + issued.secret[5:],  # a client-secret prefix is no bearer secret
    ):
        await assert_401(checker, presented)


async def test_an_expired_secret_is_refused(store, admin):
    clock = Clock()
    name = tenant_name()
    await admin.add_tenant(name)
    issued = await admin.create_secret(name, expires=utc_now() + timedelta(hours=1))
    assert await authenticator(store, clock).authenticate(f"Bearer {issued.secret}") == name
    later = authenticator(store, clock, now=lambda: utc_now() + timedelta(hours=1, seconds=1))
    await assert_401(later, issued.secret)


async def test_rotation_keeps_the_old_secret_for_the_grace_period_only(store, admin):
    name = tenant_name()
    await admin.add_tenant(name)
    old = await admin.create_secret(name)
    new = await admin.create_secret(name, retire_others_after=timedelta(hours=1))
    now_checker = authenticator(store, Clock())
    assert await now_checker.authenticate(f"Bearer {old.secret}") == name
    assert await now_checker.authenticate(f"Bearer {new.secret}") == name
    after_grace = authenticator(store, Clock(), now=lambda: utc_now() + timedelta(hours=1, minutes=1))
    await assert_401(after_grace, old.secret)
    assert await after_grace.authenticate(f"Bearer {new.secret}") == name


async def test_a_secret_is_remembered_after_one_hash(store, admin, monkeypatch):
    name = tenant_name()
    await admin.add_tenant(name)
    issued = await admin.create_secret(name)
    checker = authenticator(store, Clock())
    hashed = []
    import scim.credential_directory as directory_module

    real = directory_module.verify_secret
    monkeypatch.setattr(directory_module, "verify_secret", lambda *args: hashed.append(1) or real(*args))
    for _ in range(5):
        assert await checker.authenticate(f"Bearer {issued.secret}") == name
    assert hashed == [1]


async def test_storage_down_before_any_read_is_503_and_a_read_snapshot_keeps_serving(store, admin):
    unreachable = TableStore.from_settings(azurite.connection_string(azurite.free_port()), None, "down", 0.5)
    try:
        directory = CredentialDirectory(CredentialStore(unreachable))
        checker = Authenticator.from_settings(Settings("unused", None, UNRELATED), directory)
        with pytest.raises(ScimError) as raised:
            await checker.authenticate("Bearer scimb_0123456789abcdef_" + "a" * 43)
        assert raised.value.status == 503
        assert await checker.authenticate(f"Bearer {UNRELATED[0][1]}") == "unrelated"  # settings need no storage
    finally:
        await unreachable.close()

    clock = Clock()
    name = tenant_name()
    await admin.add_tenant(name)
    issued = await admin.create_secret(name)
    directory = CredentialDirectory(CredentialStore(store), clock=clock)
    checker = Authenticator.from_settings(Settings("unused", None, UNRELATED), directory)
    assert await checker.authenticate(f"Bearer {issued.secret}") == name
    directory.store = CredentialStore(
        TableStore.from_settings(azurite.connection_string(azurite.free_port()), None, "down", 0.5)
    )
    clock.now += CACHE_SECONDS
    assert await checker.authenticate(f"Bearer {issued.secret}") == name  # the last snapshot serves


async def test_the_admin_api_refuses_what_it_cannot_do(admin):
    with pytest.raises(AdminError, match="add it first"):
        await admin.create_secret(tenant_name())
    with pytest.raises(AdminError):
        await admin.add_tenant("acme.corp")
    entra_tenant_id = f"ce5f061f-0000-4000-8000-{secrets.token_hex(6)}"
    with pytest.raises(AdminError, match="Entra tenant id"):
        await admin.add_tenant(entra_tenant_id)
    with pytest.raises(AdminError, match="Entra tenant id"):
        await admin.add_tenant(entra_tenant_id.upper())
    assert await admin.add_tenant(entra_tenant_id, share_entra_tenant_data=True)
    name = tenant_name()
    await admin.add_tenant(name)
    assert await admin.add_tenant(name) is False
    with pytest.raises(AdminError, match="future"):
        await admin.create_secret(name, expires=utc_now() - timedelta(seconds=1))
    with pytest.raises(AdminError, match="three years"):
        await admin.create_secret(name, expires=utc_now() + timedelta(days=1200))
    assert await admin.revoke("no-such-id") == []
    federation = await admin.federate(name, "ce5f061f-0000-4000-8000-000000000001", "sub", "api://x")
    with pytest.raises(AdminError, match="taken"):
        await admin.federate(
            name, "ce5f061f-0000-4000-8000-000000000001", "sub", "api://x", client_id=federation.credential_id
        )
    with pytest.raises(AdminError, match="GUID"):
        await admin.federate(name, "not-a-guid", "sub", "api://x")


async def test_removing_a_tenant_revokes_its_credentials_and_optionally_deletes_only_its_data(store, admin):
    keep, drop = tenant_name(), tenant_name()
    for name in (keep, drop):
        await admin.add_tenant(name)
    kept_secret = await admin.create_secret(keep)
    dropped_secret = await admin.create_secret(drop)
    kept_client = endpoint_client(store, kept_secret.secret)
    dropped_client = endpoint_client(store, dropped_secret.secret)
    await kept_client.create_user("keep@example.com")
    user = await dropped_client.create_user("drop@example.com")
    group = await dropped_client.call("POST", "Groups", {"displayName": "dropped", "members": [{"value": user["id"]}]})
    assert group.status == 201

    revoked, rows = await admin.remove_tenant(drop, delete_data=True)
    assert revoked == 1 and rows >= 5  # user + index rows, group + index row, both membership edges
    assert drop not in [tenant.name for tenant in await admin.list_tenants()]
    await assert_401(authenticator(store, Clock()), dropped_secret.secret)
    assert (await make_client(store, drop).call("GET", "Users")).document["totalResults"] == 0
    assert (await endpoint_client(store, kept_secret.secret).call("GET", "Users")).document["totalResults"] == 1


async def test_no_secret_reaches_a_log_line(store, admin, caplog):
    name = tenant_name()
    await admin.add_tenant(name)
    issued = await admin.create_secret(name)
    with caplog.at_level(logging.DEBUG):
        client = endpoint_client(store, issued.secret)
        assert (await client.call("GET", "Users")).status == 200
        client.token = issued.secret[:-2] + "xx"
        assert (await client.call("GET", "Users")).status == 401
    assert name in caplog.text
    assert issued.secret[23:] not in caplog.text and issued.secret[23:-2] not in caplog.text


def tenants_cli(connection_string: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCIM_STORAGE_CONNECTION_STRING": connection_string, "SCIM_TABLE_PREFIX": "test"}
    env.pop("SCIM_STORAGE_TABLE_URI", None)
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "scim", "tenants", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_prints_a_secret_once_and_never_again(azurite_connection_string):
    name = tenant_name()
    run = functools.partial(tenants_cli, azurite_connection_string)
    assert run("add", name).returncode == 0
    created = run("secret", name, "--expires", "365d")
    assert created.returncode == 0, created.stderr
    secret = next(line.split()[-1] for line in created.stdout.splitlines() if line.startswith("Secret Token:"))
    assert secret.startswith("scimb_") and "shown once" in created.stderr
    client = run("oauth-client", name, "--scope", "scim", "--scope", "api://x/.default")
    assert client.returncode == 0, client.stderr
    client_id = next(line.split()[-1] for line in client.stdout.splitlines() if line.startswith("Client ID:"))
    federated = run(
        "federate", name, "--entra-tenant", "ce5f061f-0000-4000-8000-000000000001", "--subject", "s", "--audience", "a"
    )
    assert federated.returncode == 0, federated.stderr

    listed = run("list", "--json")
    assert listed.returncode == 0
    (mine,) = [tenant for tenant in json.loads(listed.stdout) if tenant["name"] == name]
    kinds = sorted(credential["kind"] for credential in mine["credentials"])
    assert kinds == ["client", "client_secret", "federation", "secret"]
    plain = run("list")
    for output in (listed.stdout, plain.stdout, plain.stderr):
        assert secret not in output and "scrypt" not in output and secret[23:] not in output

    secret_id = secret[6:22]
    assert run("revoke", secret_id).returncode == 0
    assert run("revoke", client_id).returncode == 0  # the client and its secret
    remaining = json.loads(run("list", "--json").stdout)
    (mine,) = [tenant for tenant in remaining if tenant["name"] == name]
    assert [credential["kind"] for credential in mine["credentials"]] == ["federation"]


def test_the_cli_says_what_is_wrong(azurite_connection_string):
    run = functools.partial(tenants_cli, azurite_connection_string)
    unknown = run("secret", tenant_name())
    assert unknown.returncode == 1 and "add it first" in unknown.stderr and "Traceback" not in unknown.stderr
    assert run("revoke", "nothing-has-this-id").returncode == 1
    bad_expiry = run("secret", "x", "--expires", "soon")
    assert bad_expiry.returncode == 1 and "--expires" in bad_expiry.stderr
    unusable = tenants_cli("DefaultEndpointsProtocol=http;AccountName=x", "list")
    assert unusable.returncode == 2 and "Traceback" not in unusable.stderr


async def test_prune_deletes_only_expired_assertion_records_and_a_live_one_stays_a_replay(
    store, admin, azurite_connection_string
):
    credentials = CredentialStore(store)
    entra_tenant = f"ce5f061f-0000-4000-8000-{secrets.token_hex(6)}"
    now = utc_now()
    assert await credentials.claim_assertion(entra_tenant, "expired-jti", now - timedelta(minutes=1))
    assert await credentials.claim_assertion(entra_tenant, "live-jti", now + timedelta(hours=1))
    assert await admin.prune_assertions() >= 1
    assert await credentials.claim_assertion(entra_tenant, "live-jti", now + timedelta(hours=1)) is False
    assert await credentials.claim_assertion(entra_tenant, "expired-jti", now - timedelta(minutes=1))  # forgotten
    pruned = tenants_cli(azurite_connection_string, "prune")
    assert pruned.returncode == 0 and "expired client-assertion records" in pruned.stdout
