"""Entra-issued JWTs, validated against signing keys served by a loopback OpenID metadata + JWKS server.

The server counts every request, so the tests can assert not only the verdict but also that nothing was fetched for
an unconfigured tenant and that key refreshes are bounded.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from scim.auth import Authenticator
from scim.dispatch import ScimEndpoint
from scim.entra_tokens import EntraTokenValidator
from scim.errors import ScimError
from scim.messages import ScimRequest
from scim.settings import DEFAULT_ENTRA_APP_IDS, DEFAULT_ENTRA_AUDIENCES, Settings
from scim.store.tables import TableStore

TENANT_A = "aaaabbbb-0000-cccc-1111-dddd2222eeee"
TENANT_B = "cdee2f36-3ed4-421b-b2c1-bbbfdde3b438"
UNCONFIGURED = "99999999-8888-7777-6666-555555555555"
CUSTOM_APP_AUDIENCE = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"
LEGACY_AUDIENCE = "00000002-0000-0000-c000-000000000000"
SYNC_FABRIC = "00000014-0000-0000-c000-000000000000"


@cache
def private_key(name: str) -> rsa.RSAPrivateKey:
    """Keys by name, generated once per test session (RSA generation is the slow part)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(name: str, kid: str) -> dict[str, Any]:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private_key(name).public_key(), as_dict=True)
    return {**jwk, "kid": kid, "x5t": kid, "use": "sig"}


def public_pem(name: str) -> bytes:
    return (
        private_key(name)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def claims(tenant: str = TENANT_A, **overrides: Any) -> dict[str, Any]:
    """A provisioning token's claims as Entra sends them; an override of ``None`` removes the claim."""
    now = int(time.time())
    values: dict[str, Any] = {
        "aud": CUSTOM_APP_AUDIENCE,
        "iss": f"https://sts.windows.net/{tenant}/",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "appid": SYNC_FABRIC,
        "appidacr": "2",
        "idp": f"https://sts.windows.net/{tenant}/",
        "tid": tenant,
        "ver": "1.0",
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def token(key: str = "a", kid: str = "key-a", tenant: str = TENANT_A, **overrides: Any) -> str:
    return jwt.encode(claims(tenant, **overrides), private_key(key), algorithm="RS256", headers={"kid": kid})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], sign: Any = None) -> str:
    """A token built without PyJWT, for the shapes PyJWT refuses to produce (``alg: none``, HMAC over a PEM)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64url(signature)}"


@dataclass
class KeyServer:
    """What the loopback server serves (per tenant) and every path it was asked for."""

    base_url: str = ""
    keys: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    jwks_padding: int = 0

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}/{{tenant}}/.well-known/openid-configuration"

    def metadata_requests(self, tenant: str) -> int:
        return self.requests.count(f"/{tenant}/.well-known/openid-configuration")

    def jwks_requests(self, tenant: str) -> int:
        return self.requests.count(f"/{tenant}/discovery/keys")


@pytest.fixture
async def key_server() -> AsyncIterator[KeyServer]:
    server = KeyServer(keys={TENANT_A: [public_jwk("a", "key-a")], TENANT_B: [public_jwk("b", "key-b")]})
    server.keys[UNCONFIGURED] = [public_jwk("a", "key-a")]

    async def metadata(request: web.Request) -> web.Response:
        server.requests.append(request.path)
        await asyncio.sleep(server.delay)
        if server.status != 200:
            return web.Response(status=server.status)
        tenant = request.match_info["tenant"]
        return web.json_response(
            {
                "issuer": f"https://sts.windows.net/{tenant}/",
                "jwks_uri": f"{server.base_url}/{tenant}/discovery/keys",
            }
        )

    async def jwks(request: web.Request) -> web.Response:
        server.requests.append(request.path)
        body: dict[str, Any] = {"keys": server.keys.get(request.match_info["tenant"], [])}
        if server.jwks_padding:
            body["padding"] = "x" * server.jwks_padding
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/{tenant}/.well-known/openid-configuration", metadata)
    app.router.add_get("/{tenant}/discovery/keys", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.base_url = f"http://{host}:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


class FakeClock:
    """Monotonic time the tests can step past the refresh interval without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def validator(key_server: KeyServer, clock: FakeClock) -> AsyncIterator[EntraTokenValidator]:
    checker = EntraTokenValidator(
        (TENANT_A, TENANT_B), DEFAULT_ENTRA_AUDIENCES, key_server.metadata_url, DEFAULT_ENTRA_APP_IDS, clock=clock
    )
    try:
        yield checker
    finally:
        await checker.close()


async def assert_rejected(validator: EntraTokenValidator, presented: str) -> None:
    with pytest.raises(ScimError) as raised:
        await validator.validate(presented)
    assert raised.value.status == 401
    assert raised.value.detail == "Authentication required"
    assert raised.value.headers["WWW-Authenticate"].startswith("Bearer")


# --- what is accepted -----------------------------------------------------------------------------------------------


async def test_a_valid_token_authenticates_its_tenant(validator, key_server):
    assert await validator.validate(token()) == TENANT_A
    assert key_server.requests == [f"/{TENANT_A}/.well-known/openid-configuration", f"/{TENANT_A}/discovery/keys"]
    assert await validator.validate(token()) == TENANT_A
    assert len(key_server.requests) == 2  # served from the cache


async def test_each_configured_tenant_uses_its_own_keys(validator, key_server):
    assert await validator.validate(token("b", "key-b", TENANT_B)) == TENANT_B
    assert await validator.validate(token("a", "key-a", TENANT_A)) == TENANT_A
    # tenant B's key is not tenant A's: a token for A signed with B's key (and kid) fails
    await assert_rejected(validator, token("b", "key-b", TENANT_A))


async def test_the_legacy_azure_ad_graph_audience_is_accepted(validator):
    assert await validator.validate(token(aud=LEGACY_AUDIENCE)) == TENANT_A
    assert await validator.validate(token(aud=["api://other", CUSTOM_APP_AUDIENCE])) == TENANT_A


async def test_an_expiry_within_the_leeway_is_accepted(validator):
    now = int(time.time())
    assert await validator.validate(token(exp=now - 200, iat=now - 4000, nbf=now - 4000)) == TENANT_A
    assert await validator.validate(token(nbf=now + 200, iat=now)) == TENANT_A


# --- what is refused ------------------------------------------------------------------------------------------------


async def test_a_forged_signature_is_refused(validator):
    assert await validator.validate(token()) == TENANT_A  # the real key is cached
    await assert_rejected(validator, token("attacker", "key-a"))
    genuine, forged = token().rsplit(".", 1)[0], token("attacker").rsplit(".", 1)[1]
    await assert_rejected(validator, f"{genuine}.{forged}")


async def test_alg_none_is_refused(validator):
    assert await validator.validate(token()) == TENANT_A
    await assert_rejected(validator, hand_made({"alg": "none", "typ": "JWT", "kid": "key-a"}, claims()))
    await assert_rejected(validator, hand_made({"alg": "None", "typ": "JWT", "kid": "key-a"}, claims()))


async def test_hs256_keyed_with_the_public_key_is_refused(validator):
    """The algorithm-confusion attack: the attacker knows the public key and uses it as an HMAC secret."""
    assert await validator.validate(token()) == TENANT_A
    for pem in (public_pem("a"), public_pem("a").strip()):
        for alg in ("HS256", "HS512"):
            digest = hashlib.sha256 if alg == "HS256" else hashlib.sha512
            forged = hand_made(
                {"alg": alg, "typ": "JWT", "kid": "key-a"},
                claims(),
                lambda data, pem=pem, digest=digest: hmac.new(pem, data, digest).digest(),
            )
            await assert_rejected(validator, forged)


@pytest.mark.parametrize(
    "iss",
    [
        f"https://login.microsoftonline.com/{TENANT_A}/v2.0",
        f"https://sts.windows.net/{TENANT_A}",
        f"https://sts.windows.net/{TENANT_A.upper()}/",
        f"https://sts.windows.net/{TENANT_B}/",
        f"https://evil.example/{TENANT_A}/",
        None,
    ],
)
async def test_a_wrong_issuer_is_refused(validator, iss):
    await assert_rejected(validator, token(iss=iss))


async def test_tid_must_match_the_issuer(validator):
    # tid names configured tenant B, issuer is configured tenant A, the signature is A's
    await assert_rejected(validator, token(tid=TENANT_B))
    await assert_rejected(validator, token(tid=None))


@pytest.mark.parametrize("aud", ["api://someone-else", SYNC_FABRIC, ["api://a", "api://b"], None])
async def test_a_wrong_audience_is_refused(validator, aud):
    await assert_rejected(validator, token(aud=aud))


@pytest.mark.parametrize("appid", ["04b07795-8ddb-461a-bbee-02f9e1bf7b46", None])
async def test_a_token_another_client_app_requested_is_refused(validator, appid):
    """The legacy audience is Azure AD Graph, which anyone in the tenant can get a token for (e.g. the Azure CLI's
    app id above); only the provisioning service's own app id may act as the tenant."""
    await assert_rejected(validator, token(aud=LEGACY_AUDIENCE, appid=appid))


async def test_a_token_without_exp_is_refused(validator):
    await assert_rejected(validator, token(exp=None))


async def test_an_expired_token_is_refused(validator):
    now = int(time.time())
    await assert_rejected(validator, token(exp=now - 400, iat=now - 4000, nbf=now - 4000))


async def test_a_token_not_yet_valid_is_refused(validator):
    now = int(time.time())
    await assert_rejected(validator, token(nbf=now + 400))


async def test_a_token_from_an_unconfigured_tenant_fetches_nothing(validator, key_server):
    # well-formed, correctly signed with a key the server would serve for that tenant: only the pin refuses it
    await assert_rejected(validator, token(tenant=UNCONFIGURED))
    await assert_rejected(validator, token(tenant=UNCONFIGURED, iss=f"https://sts.windows.net/{TENANT_A}/"))
    assert key_server.metadata_requests(UNCONFIGURED) == 0
    assert key_server.jwks_requests(UNCONFIGURED) == 0
    assert not any(UNCONFIGURED in path for path in key_server.requests)


@pytest.mark.parametrize("presented", ["not-a-jwt", "a.b.c", "....", "e30.e30.", "bm90IGpzb24.e30.c2ln"])
async def test_garbage_is_refused_without_any_fetch(validator, key_server, presented):
    await assert_rejected(validator, presented)
    assert key_server.requests == []


def segment(value: Any) -> str:
    return b64url(value if isinstance(value, bytes) else json.dumps(value).encode())


def unsigned(header: Any, payload: Any, signature: str = "c2ln") -> str:
    return f"{segment(header)}.{segment(payload)}.{signature}"


RS256_KEY_A = {"alg": "RS256", "kid": "key-a"}


@pytest.mark.parametrize(
    "presented",
    [
        unsigned([1], claims()),
        unsigned(RS256_KEY_A, [claims()]),
        unsigned({"alg": "RS256", "kid": 7}, claims()),
        unsigned({"alg": "RS256", "kid": "k" * 300}, claims()),
        unsigned({"alg": "RS256"}, claims()),
        unsigned(RS256_KEY_A, claims(tid=[TENANT_A])),
        unsigned(RS256_KEY_A, b"\xff\xfe"),
        unsigned(RS256_KEY_A, b"[" * 5000),
        unsigned(RS256_KEY_A, claims(), "%%%"),
        unsigned(RS256_KEY_A, claims()),
        unsigned({**RS256_KEY_A, "crit": ["exp"]}, claims()),
    ],
)
async def test_malformed_tokens_are_401_never_500(validator, presented):
    await assert_rejected(validator, presented)


async def test_claims_of_the_wrong_type_are_401(validator):
    for bad in (
        {"exp": "tomorrow"},
        {"nbf": "now"},
        {"iat": "now"},
        {"aud": [7]},
        {"sub": 7},
        {"appid": [SYNC_FABRIC]},
    ):
        await assert_rejected(validator, token(**bad))
    assert await validator.validate(token()) == TENANT_A


# --- key cache and refresh ------------------------------------------------------------------------------------------


async def test_an_unknown_kid_triggers_one_refresh_per_interval(validator, key_server, clock):
    assert await validator.validate(token()) == TENANT_A
    assert key_server.metadata_requests(TENANT_A) == 1
    await assert_rejected(validator, token(kid="unknown-0"))
    assert key_server.metadata_requests(TENANT_A) == 1  # within the interval of the initial fetch: no refresh

    clock.advance(301)
    await assert_rejected(validator, token(kid="unknown-1"))
    assert key_server.metadata_requests(TENANT_A) == 2
    assert key_server.jwks_requests(TENANT_A) == 2

    clock.advance(10)
    await assert_rejected(validator, token(kid="unknown-2"))
    assert key_server.metadata_requests(TENANT_A) == 2
    assert key_server.jwks_requests(TENANT_A) == 2
    assert await validator.validate(token()) == TENANT_A  # the cached key is still good


async def test_concurrent_requests_share_one_fetch(validator, key_server, clock):
    results = await asyncio.gather(*(validator.validate(token()) for _ in range(20)))
    assert results == [TENANT_A] * 20
    assert key_server.metadata_requests(TENANT_A) == 1

    clock.advance(301)
    outcomes = await asyncio.gather(
        *(validator.validate(token(kid=f"unknown-{n}")) for n in range(20)), return_exceptions=True
    )
    assert all(isinstance(outcome, ScimError) and outcome.status == 401 for outcome in outcomes)
    assert key_server.metadata_requests(TENANT_A) == 2


async def test_a_rotated_key_is_picked_up_after_one_refresh(validator, key_server, clock):
    assert await validator.validate(token()) == TENANT_A
    key_server.keys[TENANT_A] = [public_jwk("a", "key-a"), public_jwk("a2", "key-a2")]
    clock.advance(301)
    assert await validator.validate(token("a2", "key-a2")) == TENANT_A
    assert key_server.metadata_requests(TENANT_A) == 2
    assert await validator.validate(token("a2", "key-a2")) == TENANT_A
    assert await validator.validate(token()) == TENANT_A
    assert key_server.metadata_requests(TENANT_A) == 2


async def test_a_withdrawn_key_stops_working_once_the_cache_expires(validator, key_server, clock):
    assert await validator.validate(token()) == TENANT_A
    key_server.keys[TENANT_A] = [public_jwk("a2", "key-a2")]
    clock.advance(3600)
    assert await validator.validate(token()) == TENANT_A  # cached, and known kids do not trigger refreshes
    clock.advance(24 * 3600)
    await assert_rejected(validator, token())
    assert key_server.metadata_requests(TENANT_A) == 2


async def test_an_unreachable_metadata_server_is_401_not_500(clock, caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before use: nothing listens there
    checker = EntraTokenValidator(
        (TENANT_A,), DEFAULT_ENTRA_AUDIENCES, f"http://127.0.0.1:{port}/{{tenant}}/meta", (SYNC_FABRIC,), clock=clock
    )
    presented = token()
    try:
        with caplog.at_level(logging.INFO, logger="scim.auth"):
            await assert_rejected(checker, presented)
    finally:
        await checker.close()
    assert "could not fetch Entra signing keys" in caplog.text
    assert presented.split(".")[2] not in caplog.text
    assert presented.split(".")[1] not in caplog.text


@pytest.mark.parametrize("status", [404, 500, 503])
async def test_a_failing_metadata_server_is_401_and_retried_after_a_backoff(validator, key_server, clock, status):
    key_server.status = status
    await assert_rejected(validator, token())
    await assert_rejected(validator, token())
    assert key_server.metadata_requests(TENANT_A) == 1  # no hammering while it is down

    key_server.status = 200
    clock.advance(31)
    assert await validator.validate(token()) == TENANT_A
    assert key_server.metadata_requests(TENANT_A) == 2


async def test_a_slow_metadata_server_times_out_as_401(key_server, clock):
    key_server.delay = 2.0
    checker = EntraTokenValidator(
        (TENANT_A,), DEFAULT_ENTRA_AUDIENCES, key_server.metadata_url, DEFAULT_ENTRA_APP_IDS, clock=clock, timeout=0.2
    )
    started = time.monotonic()
    try:
        await assert_rejected(checker, token())
    finally:
        await checker.close()
    assert time.monotonic() - started < 1.5


async def test_an_oversized_key_set_is_refused(validator, key_server):
    key_server.jwks_padding = 300 * 1024
    await assert_rejected(validator, token())
    assert key_server.jwks_requests(TENANT_A) == 1


async def test_a_key_set_with_only_unusable_keys_is_refused(validator, key_server):
    rsa_key = public_jwk("a", "key-a")
    key_server.keys[TENANT_A] = [
        {**rsa_key, "use": "enc"},
        {"kty": "oct", "kid": "key-a", "k": b64url(public_pem("a"))},
        {**rsa_key, "kid": 7},
        {"kty": "RSA", "kid": "key-a", "n": "AQAB"},
        "not a key",
    ]
    await assert_rejected(validator, token())


async def test_a_short_rsa_key_is_refused(validator, key_server):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point of the test
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(weak.public_key(), as_dict=True)
    key_server.keys[TENANT_A] = [{**jwk, "kid": "weak"}]
    with pytest.warns(jwt.warnings.InsecureKeyLengthWarning):  # PyJWT warns when signing; the validator refuses
        presented = jwt.encode(claims(), weak, algorithm="RS256", headers={"kid": "weak"})
    await assert_rejected(validator, presented)


# --- the two modes together, and through the endpoint ---------------------------------------------------------------


def jwt_settings(key_server: KeyServer, tokens: tuple[tuple[str, str], ...] = ()) -> Settings:
    settings = Settings(
        "unused", None, tokens, entra_tenant_ids=(TENANT_A,), entra_metadata_url=key_server.metadata_url
    )
    settings.check()
    return settings


async def test_the_authenticator_tries_secrets_then_jwts(key_server):
    checker = Authenticator.from_settings(jwt_settings(key_server, (("acme", "acme-token-0123456789"),)))
    try:
        assert await checker.authenticate("Bearer acme-token-0123456789") == "acme"
        assert key_server.requests == []
        assert await checker.authenticate(f"bearer {token()}") == TENANT_A
        with pytest.raises(ScimError) as raised:
            await checker.authenticate("Bearer acme-token-0123456780")
        assert raised.value.status == 401
        with pytest.raises(ScimError) as raised:
            await checker.authenticate(f"Basic {token()}")
        assert raised.value.status == 401
    finally:
        await checker.close()


async def test_without_jwt_mode_a_valid_entra_token_is_refused_and_nothing_is_fetched(key_server):
    checker = Authenticator.from_settings(Settings("unused", None, (("acme", "acme-token-0123456789"),)))
    with pytest.raises(ScimError) as raised:
        await checker.authenticate(f"Bearer {token()}")
    assert raised.value.status == 401
    assert key_server.requests == []


async def test_the_endpoint_authenticates_entra_tokens(key_server, caplog):
    # a real store object, never used: discovery documents need no storage, and the client connects lazily
    store = TableStore.from_settings("UseDevelopmentStorage=true", None, "unit")
    endpoint = ScimEndpoint(jwt_settings(key_server), store)
    presented = token()
    try:
        with caplog.at_level(logging.DEBUG):
            ok = await endpoint.handle(
                ScimRequest("GET", "ServiceProviderConfig", headers={"Authorization": f"Bearer {presented}"})
            )
            refused = await endpoint.handle(
                ScimRequest("GET", "ServiceProviderConfig", headers={"Authorization": f"Bearer {token('attacker')}"})
            )
    finally:
        await endpoint.authenticator.close()
        await store.close()
    assert ok.status == 200
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert refused.document is not None and refused.document["detail"] == "Authentication required"
    assert TENANT_A in caplog.text  # the request log names the tenant...
    assert presented not in caplog.text and presented.split(".")[2] not in caplog.text  # ...never the token


@pytest.mark.parametrize(
    "dates",
    [
        {"exp": str(int(time.time()) + 3600)},  # a string PyJWT would read as a date
        {"exp": 1e300},  # "never expires"
        {"exp": int(time.time()) + 3 * 24 * 3600},  # longer than any Entra token lives
        {"exp": True},
        {"nbf": "0"},
        {"iat": -5},
    ],
)
async def test_only_numeric_dates_within_an_entra_tokens_lifetime_are_accepted(validator, dates):
    await assert_rejected(validator, token(**dates))


async def test_a_token_valid_for_a_few_hours_is_accepted(validator):
    now = int(time.time())
    assert await validator.validate(token(exp=now + 6 * 3600, iat=now, nbf=now)) == TENANT_A
