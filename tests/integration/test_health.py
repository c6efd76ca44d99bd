"""``/health``: unauthenticated, says only whether storage answers, and cannot be used to hammer storage."""

from scim.dispatch import ScimEndpoint, UnconfiguredEndpoint
from scim.local import azurite
from scim.settings import ConfigurationError, Settings
from scim.store.tables import TableStore
from tests.conftest import Client


async def test_healthy_when_storage_answers(client: Client):
    response = await client.endpoint.health()
    assert response.status == 200
    assert response.document == {"status": "healthy"}
    assert response.all_headers()["Content-Type"].startswith("application/json")


async def test_unhealthy_when_storage_does_not_answer():
    unreachable = TableStore.from_settings(azurite.connection_string(azurite.free_port()), None, "down", 0.5)
    settings = Settings(storage_connection_string="unused", storage_table_uri=None, bearer_tokens=(("t", "x" * 32),))
    try:
        response = await ScimEndpoint(settings, unreachable).health()
    finally:
        await unreachable.close()
    assert response.status == 503
    assert response.document == {"status": "unhealthy"}
    assert int(response.headers["Retry-After"]) > 0


async def test_one_storage_read_answers_every_probe_for_a_while(client: Client, monkeypatch):
    reads = []
    original = client.endpoint.store.reachable

    async def counting(budget: float) -> bool:
        reads.append(budget)
        return await original(budget)

    monkeypatch.setattr(client.endpoint.store, "reachable", counting)
    for _ in range(20):
        assert (await client.endpoint.health()).status == 200
    assert len(reads) == 1


async def test_an_unconfigured_endpoint_is_unhealthy_without_saying_why():
    response = await UnconfiguredEndpoint(ConfigurationError("SCIM_BEARER_TOKENS is not set")).health()
    assert response.status == 503
    assert response.document == {"status": "unhealthy"}
