"""``entra connect --key-vault`` and ``entra rotate`` against a Key Vault stand-in (reached through the real
azure-keyvault-secrets client and its challenge authentication) and a real endpoint that reloads its tokens when the
secret changes, as the function app does on restart."""

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.admin.conftest import Entra
from tests.local_server import LocalServer
from tests.standins.key_vault import KeyVault

SECRET = "scim-bearer-tokens"


@pytest.fixture
def endpoint(azurite_connection_string: str) -> Iterator[LocalServer]:
    server = LocalServer(azurite_connection_string, f"rot{secrets.token_hex(4)}")
    server.start()
    yield server
    server.close()


def reload_on_change(vault: KeyVault, server: LocalServer, delay: float) -> list[threading.Thread]:
    """The function app re-reading its Key Vault reference a while after each new version: restarted with the
    secret's new value. The threads doing it are returned, to be joined."""
    lock, threads = threading.Lock(), []

    def restart(value: str) -> None:
        time.sleep(delay)
        with lock:
            server.env["SCIM_BEARER_TOKENS"] = value
            server.kill()
            server.start()

    def changed(_name: str, value: str) -> None:
        threads.append(threading.Thread(target=restart, args=(value,)))
        threads[-1].start()

    vault.on_change = changed
    return threads


def accepted(server: LocalServer, token: str) -> bool:
    response = httpx.get(f"{server.base_url}/Users", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return response.status_code == 200


def vault_args(vault: KeyVault) -> tuple[str, ...]:
    return ("--key-vault", vault.url, "--key-vault-auth", "signin")


def test_connect_takes_the_token_from_key_vault(entra: Entra, vault: KeyVault, endpoint: LocalServer):
    vault.versions[SECRET] = [f"sha256:{'0' * 64},{endpoint.token}"]
    result = entra.run("connect", "--tenant-url", endpoint.base_url, *vault_args(vault))
    assert result.code == 0, result.text
    assert entra.graph.app("SCIM endpoint").secrets["SecretToken"] == endpoint.token
    assert endpoint.token not in result.text
    assert vault.requests == [f"GET /secrets/{SECRET}/"] * 2  # the challenge, then with the token


def test_rotate_switches_entra_to_a_new_token_then_retires_the_old(
    entra: Entra, vault: KeyVault, endpoint: LocalServer
):
    old = endpoint.token
    vault.versions[SECRET] = [old]
    assert entra.run("connect", "--tenant-url", endpoint.base_url, *vault_args(vault)).code == 0
    reloads = reload_on_change(vault, endpoint, delay=1.0)

    result = entra.run("rotate", "--tenant-url", endpoint.base_url, *vault_args(vault), "--poll", "0.3")
    assert result.code == 0, result.text
    for reload in reloads:
        reload.join()
    assert "The endpoint does not accept the new token yet; asking Entra again in 0.3 s" in result.out
    new = entra.graph.app("SCIM endpoint").secrets["SecretToken"]
    assert new != old
    assert vault.versions[SECRET] == [old, f"{old},{new}", new]  # add beside, then retire
    assert accepted(endpoint, new) and not accepted(endpoint, old)
    assert "Added a new token to Key Vault" in result.out
    assert "Saved the new token in Entra; Test Connection with the saved credentials: OK" in result.out
    assert "Retired 1 old token(s)" in result.out
    assert old not in result.text and new not in result.text


def test_rotate_withdraws_the_new_token_when_the_endpoint_never_accepts_it(
    entra: Entra, vault: KeyVault, endpoint: LocalServer
):
    old = endpoint.token
    vault.versions[SECRET] = [old]
    assert entra.run("connect", "--tenant-url", endpoint.base_url, *vault_args(vault)).code == 0
    # The function app is not restarted: it keeps accepting only the old token.
    result = entra.run("rotate", "--tenant-url", endpoint.base_url, *vault_args(vault), "--wait", "1", "--poll", "0.3")
    assert result.code == 1
    assert "did not accept the new token within 1 s, so it was withdrawn and Entra keeps the old one" in result.err
    assert vault.value(SECRET) == old
    assert entra.graph.app("SCIM endpoint").secrets["SecretToken"] == old
    assert accepted(endpoint, old)


def test_rotate_needs_to_know_where_the_tokens_live(entra: Entra, endpoint: LocalServer):
    result = entra.run("rotate", "--tenant-url", endpoint.base_url)
    assert result.code == 1
    assert "rotate needs to know where the endpoint reads its tokens" in result.err


def test_rotate_a_stored_tenant_secret_without_restarting_the_endpoint(
    entra: Entra, endpoint: LocalServer, azurite_connection_string: str, monkeypatch
):
    """Credentials kept with python -m scim tenants: the endpoint takes a new secret within 30 s, with no restart."""
    from scim.admin.tenants import TenantAdmin

    monkeypatch.setenv("SCIM_STORAGE_CONNECTION_STRING", azurite_connection_string)
    monkeypatch.setenv("SCIM_TABLE_PREFIX", endpoint.env["SCIM_TABLE_PREFIX"])

    async def first_secret() -> str:
        async with TenantAdmin.from_environment() as admin:
            await admin.add_tenant("acme")
            return (await admin.create_secret("acme")).secret

    async def bearer_ids() -> list[str]:
        async with TenantAdmin.from_environment() as admin:
            (acme,) = [t for t in await admin.list_tenants() if t.name == "acme"]
            return [c.credential_id for c in acme.credentials if c.kind == "secret"]

    old = asyncio.run(first_secret())
    (old_id,) = asyncio.run(bearer_ids())
    deadline = time.monotonic() + 40
    while not accepted(endpoint, old):  # the endpoint reads stored credentials at most every 30 s
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert entra.connect(endpoint.base_url, old).code == 0

    result = entra.run("rotate", "--tenant-url", endpoint.base_url, "--stored-tenant", "acme", "--poll", "1")
    assert result.code == 0, result.text
    new = entra.graph.app("SCIM endpoint").secrets["SecretToken"]
    assert new != old and accepted(endpoint, new)
    (new_id,) = asyncio.run(bearer_ids())
    assert new_id != old_id
    assert (
        "Added a new token to the endpoint's stored credentials of tenant acme (1 old token(s) still accepted)"
        in result.out
    )
    assert "Retired 1 old token(s)" in result.out
    assert "The endpoint stops accepting the old secret within 30 s." in result.out
    assert old not in result.text and new not in result.text
