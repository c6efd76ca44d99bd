"""Workload Identity Federation at ``POST /oauth2/token``: client assertions Entra signs, checked against stored
federations, with signing keys from a loopback OpenID metadata + JWKS stand-in (the one the Entra-token tests use),
which counts every request so the tests can assert when keys were (and were not) fetched."""

# ruff: noqa: F811 (the key_server fixture is imported from the Entra-token tests and named by the tests below)

import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest

from scim.admin.tenants import TenantAdmin
from scim.credentials import Credential
from scim.dispatch import ScimEndpoint
from scim.federation import ASSERTION_TYPE
from scim.messages import ScimRequest, ScimResponse
from scim.settings import Settings
from scim.store.tables import TableStore
from tests.conftest import Client
from tests.unit.test_entra_tokens import (  # noqa: F401 (key_server is a fixture)
    TENANT_A,
    TENANT_B,
    UNCONFIGURED,
    KeyServer,
    key_server,
    private_key,
    public_jwk,
)

SUBJECT = "a1b2c3d4-0000-4000-8000-5e5e5e5e5e5e"  # the Sync Fabric workload identity's object id
APP = "b5ba7a93-4452-4522-aeb4-a2b5da870c16"
AUDIENCE_SHOWN = f"api://{APP}/.default"  # what Entra's page shows; the token carries it without /.default
FORM = "application/x-www-form-urlencoded"


def assertion(key: str = "a", kid: str = "key-a", tenant: str = TENANT_A, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": f"api://{APP}",
        "iss": f"https://login.microsoftonline.com/{tenant}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + 65 * 60,
        "appid": "00000014-0000-0000-c000-000000000000",
        "appidacr": "2",
        "idp": f"https://sts.windows.net/{tenant}/",
        "oid": SUBJECT,
        "sub": SUBJECT,
        "tid": tenant,
        "uti": secrets.token_urlsafe(16),
        "ver": "2.0",
    }
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, private_key(key), algorithm="RS256", headers={"kid": kid})


class Wif:
    def __init__(self, endpoint: ScimEndpoint, federation: Credential) -> None:
        self.endpoint = endpoint
        self.federation = federation

    async def token(self, presented: str, client_id: str | None = None, **extra: str) -> ScimResponse:
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id or self.federation.credential_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": presented,
            "scope": "scim",
            **extra,
        }
        request = ScimRequest("POST", "oauth2/token", headers={"Content-Type": FORM}, body=urlencode(form).encode())
        return await self.endpoint.token(request)


async def federate(store: TableStore, entra_tenant: str = TENANT_A) -> Credential:
    admin = TenantAdmin(store)
    name = f"wf{secrets.token_hex(5)}"
    await admin.add_tenant(name)
    return await admin.federate(name, entra_tenant, SUBJECT, AUDIENCE_SHOWN)


@pytest.fixture
async def wif(store: TableStore, key_server: KeyServer) -> AsyncIterator[Wif]:
    settings = Settings("unused", None, token_signing_keys=("k" * 40,), wif_metadata_url=key_server.metadata_url)
    settings.check()
    federation = await federate(store)
    endpoint = ScimEndpoint(settings, store)
    try:
        yield Wif(endpoint, federation)
    finally:
        await endpoint.close_token_checks()


def assert_invalid_client(response: ScimResponse) -> None:
    assert response.status == 401, response.document
    assert response.document == {"error": "invalid_client", "error_description": "Client authentication failed"}
    assert response.headers["WWW-Authenticate"].startswith("Basic")


async def test_a_valid_assertion_gets_a_token_for_the_federated_tenant(wif, key_server):
    answer = await wif.token(assertion())
    assert answer.status == 200, answer.document
    body = answer.document
    assert (
        body is not None and body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "scim"
    )
    client = Client(wif.endpoint, body["access_token"])
    assert (await client.call("POST", "Users", {"userName": "wif@example.com"})).status == 201
    assert (await client.call("GET", "Users")).document["totalResults"] == 1
    assert key_server.metadata_requests(TENANT_A) == 1 and key_server.jwks_requests(TENANT_A) == 1


async def test_the_audience_may_be_configured_as_entra_shows_it_or_as_the_token_carries_it(wif):
    assert (await wif.token(assertion(aud=AUDIENCE_SHOWN))).status == 200
    assert (await wif.token(assertion(aud=f"api://{APP}"))).status == 200


async def test_a_replayed_assertion_is_refused(wif):
    presented = assertion()
    assert (await wif.token(presented)).status == 200
    assert_invalid_client(await wif.token(presented))
    same_uti = assertion(uti="fixed-uti")
    assert (await wif.token(same_uti)).status == 200
    assert_invalid_client(await wif.token(assertion(uti="fixed-uti")))  # another token, same id: also a replay
    assert (await wif.token(assertion(uti=None, jti="fresh-jti"))).status == 200
    assert_invalid_client(await wif.token(assertion(uti=None, jti="fresh-jti")))


async def test_a_replay_is_refused_by_another_instance_too(wif, store):
    presented = assertion()
    assert (await wif.token(presented)).status == 200
    other_instance = ScimEndpoint(wif.endpoint.settings, store)
    try:
        assert_invalid_client(await Wif(other_instance, wif.federation).token(presented))
    finally:
        await other_instance.close_token_checks()


def expired(now: int) -> dict[str, int]:
    return {"exp": now - 120, "iat": now - 4000, "nbf": now - 4000}


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": f"https://sts.windows.net/{TENANT_A}/"},  # the v1 issuer
        {"iss": f"https://login.microsoftonline.com/{TENANT_B}/v2.0"},
        {"tid": TENANT_B},
        {"sub": "someone-else"},
        {"aud": "api://another-app"},
        {"aud": None},
        expired,
        lambda now: {"nbf": now + 120},
        {"exp": None},
        {"exp": "tomorrow"},
    ],
)
async def test_a_wrong_claim_is_refused(wif, overrides):
    """Times are computed when the test runs (relative to now), not when the suite is collected."""
    claims = overrides(int(time.time())) if callable(overrides) else overrides
    assert_invalid_client(await wif.token(assertion(**claims)))


async def test_expiry_within_the_leeway_is_accepted(wif):
    now = int(time.time())
    assert (await wif.token(assertion(exp=now - 30, iat=now - 3900, nbf=now - 3900))).status == 200


async def test_a_forged_signature_is_refused(wif):
    assert_invalid_client(await wif.token(assertion(key="attacker")))
    genuine, forged = assertion().rsplit(".", 1)[0], assertion(key="attacker").rsplit(".", 1)[1]
    assert_invalid_client(await wif.token(f"{genuine}.{forged}"))


async def test_an_unknown_kid_triggers_one_refresh_and_a_rotated_key_is_then_accepted(wif, key_server):
    assert (await wif.token(assertion())).status == 200
    assert key_server.jwks_requests(TENANT_A) == 1
    assert_invalid_client(await wif.token(assertion(kid="unknown")))
    assert key_server.jwks_requests(TENANT_A) == 1  # within the refresh interval: no fetch

    validator_keys = wif.endpoint._token_endpoint._federation._keys
    validator_keys._clock = lambda: time.monotonic() + 301
    key_server.keys[TENANT_A] = [public_jwk("a", "key-a"), public_jwk("a2", "key-a2")]
    assert (await wif.token(assertion(key="a2", kid="key-a2"))).status == 200
    assert key_server.jwks_requests(TENANT_A) == 2
    assert_invalid_client(await wif.token(assertion(kid="still-unknown")))
    assert key_server.jwks_requests(TENANT_A) == 2


async def test_no_key_is_fetched_for_an_unknown_client_or_a_tenant_no_federation_names(wif, key_server):
    assert_invalid_client(await wif.token(assertion(tenant=UNCONFIGURED)))
    assert_invalid_client(await wif.token(assertion(), client_id=str(uuid.uuid4())))
    assert key_server.requests == []


async def test_tenant_isolation_between_federations(wif, store):
    """Two customers federate their own Entra tenants; an assertion from B's Entra with A's client id gets nothing."""
    other = await federate(store, TENANT_B)
    assert_invalid_client(await wif.token(assertion(key="b", kid="key-b", tenant=TENANT_B)))
    answer = await wif.token(assertion(key="b", kid="key-b", tenant=TENANT_B), client_id=other.credential_id)
    assert answer.status == 200
    token_b = answer.document["access_token"]
    token_a = (await wif.token(assertion())).document["access_token"]
    created = await Client(wif.endpoint, token_b).call("POST", "Users", {"userName": "b@example.com"})
    assert (await Client(wif.endpoint, token_a).call("GET", f"Users/{created.document['id']}")).status == 404


async def test_assertion_request_errors(wif):
    presented = assertion()
    wrong_type = await wif.token(
        presented, client_assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
    )
    assert wrong_type.status == 400 and wrong_type.document["error"] == "invalid_request"
    with_secret = await wif.token(presented, client_secret="scimc_0123456789abcdef_" + "A" * 43)
    assert with_secret.status == 400 and with_secret.document["error"] == "invalid_request"
    for garbage in ("not-a-jwt", "a.b.c", "x" * 9000):
        assert_invalid_client(await wif.token(garbage))


async def test_no_assertion_or_token_reaches_a_log_line(wif, caplog):
    presented = assertion()
    with caplog.at_level(logging.DEBUG):
        token = (await wif.token(presented)).document["access_token"]
        await wif.token(presented)  # the replay, logged with its reason
    assert "replay" in caplog.text
    for secret_part in (presented.split(".")[1], presented.split(".")[2], token.split(".")[2]):
        assert secret_part not in caplog.text
