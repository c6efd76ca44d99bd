"""``POST /oauth2/token``, client credentials (RFC 6749 §4.4) against stored OAuth clients on Azurite: every client
authentication form and error Entra and the gallery validation use, scopes, the access tokens on SCIM routes,
revocation, rate limiting, tenant isolation, and that no secret reaches an answer or a log line."""

import base64
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from scim.access_tokens import AccessGrant, AccessTokens
from scim.admin.tenants import IssuedSecret, TenantAdmin
from scim.credential_directory import CACHE_SECONDS, CredentialDirectory
from scim.credentials import utc_now
from scim.dispatch import ScimEndpoint
from scim.failure_limits import CLIENT_FAILURES, SOURCE_FAILURES
from scim.messages import ScimRequest, ScimResponse
from scim.settings import Settings
from scim.store.credentials import CredentialStore
from scim.store.tables import TableStore
from tests.conftest import Client

SIGNING_KEY = "k" * 40
FORM = "application/x-www-form-urlencoded"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"token_signing_keys": (SIGNING_KEY,)}
    values.update(overrides)
    configured = Settings("unused", None, **values)
    configured.check()
    return configured


@dataclass
class Oauth:
    endpoint: ScimEndpoint
    admin: TenantAdmin
    clock: Clock

    async def token(
        self, form: dict[str, str] | str, headers: dict[str, str] | None = None, method: str = "POST"
    ) -> ScimResponse:
        body = form if isinstance(form, str) else urlencode(form)
        request_headers = {"Content-Type": FORM, **(headers or {})}
        return await self.endpoint.token(
            ScimRequest(method, "oauth2/token", headers=request_headers, body=body.encode())
        )

    async def client(self, scopes: tuple[str, ...] = ("scim",)) -> IssuedSecret:
        name = f"oa{secrets.token_hex(5)}"
        await self.admin.add_tenant(name)
        issued = await self.admin.create_oauth_client(name, scopes)
        self.clock.now += CACHE_SECONDS  # the endpoint sees it on its next snapshot
        return issued

    async def scim(self, access_token: str, path: str = "Users", method: str = "GET", body: Any = None) -> ScimResponse:
        return await Client(self.endpoint, access_token).call(method, path, body)


@pytest.fixture
def oauth(store: TableStore) -> Oauth:
    clock = Clock()
    endpoint = ScimEndpoint(settings(), store)
    endpoint.credentials = CredentialDirectory(CredentialStore(store), clock=clock)
    endpoint.authenticator._directory = endpoint.credentials
    return Oauth(endpoint, TenantAdmin(store), clock)


def basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 §2.3.1: form-urlencode each part, then base64 ``id:secret``."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def assert_token_answer(response: ScimResponse, scope: str = "scim") -> str:
    assert response.status == 200, response.document
    headers = response.all_headers()
    assert headers["Cache-Control"] == "no-store" and headers["Pragma"] == "no-cache"
    assert headers["Content-Type"].startswith("application/json")
    body = response.document
    assert body is not None
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == scope
    assert 60 * 60 <= body["expires_in"] <= 360 * 60
    return str(body["access_token"])


def assert_oauth_error(response: ScimResponse, status: int, error: str) -> None:
    assert response.status == status, response.document
    assert response.document is not None and response.document["error"] == error
    assert response.all_headers()["Cache-Control"] == "no-store"
    if error == "invalid_client":
        assert response.headers["WWW-Authenticate"].startswith("Basic")


# --- client authentication forms ------------------------------------------------------------------------------------


async def test_client_secret_basic_issues_a_token_the_scim_routes_accept(oauth):
    issued = await oauth.client()
    token = assert_token_answer(
        await oauth.token({"grant_type": "client_credentials"}, basic(issued.client_id, issued.secret))
    )
    created = await oauth.scim(token, "Users", "POST", {"userName": "oauth@example.com"})
    assert created.status == 201
    listed = await oauth.scim(token)
    assert listed.document is not None and listed.document["totalResults"] == 1


async def test_client_secret_post_and_both_forms(oauth):
    issued = await oauth.client()
    form = {"grant_type": "client_credentials", "client_id": issued.client_id, "client_secret": issued.secret}
    assert_token_answer(await oauth.token(form))
    assert_token_answer(await oauth.token(form, basic(issued.client_id, issued.secret)))  # Entra's "Both"
    other = await oauth.client()
    mixed = await oauth.token(form, basic(other.client_id, other.secret))
    assert_oauth_error(mixed, 400, "invalid_request")


async def test_basic_credentials_are_form_decoded(oauth):
    issued = await oauth.client()
    encoded_id = "".join(f"%{ord(c):02X}" for c in issued.client_id)  # every character percent-encoded
    raw = f"{encoded_id}:{issued.secret.replace('_', '%5F')}".encode()
    answer = await oauth.token(
        {"grant_type": "client_credentials"}, {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    )
    assert_token_answer(answer)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer something"},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    ],
)
async def test_missing_or_malformed_client_authentication_is_invalid_client(oauth, headers):
    assert_oauth_error(await oauth.token({"grant_type": "client_credentials"}, headers), 401, "invalid_client")


async def test_a_wrong_secret_an_unknown_client_or_an_expired_secret_is_invalid_client(oauth):
    issued = await oauth.client()
    wrong = issued.secret[:-4] + "AAAA"
    assert_oauth_error(
        await oauth.token({"grant_type": "client_credentials"}, basic(issued.client_id, wrong)), 401, "invalid_client"
    )
    unknown = await oauth.token({"grant_type": "client_credentials"}, basic("no-such-client", issued.secret))
    assert_oauth_error(unknown, 401, "invalid_client")
    other = await oauth.client()
    crossed = await oauth.token({"grant_type": "client_credentials"}, basic(other.client_id, issued.secret))
    assert_oauth_error(crossed, 401, "invalid_client")  # a secret works only for its own client

    name = issued.tenant
    short = await oauth.admin.create_oauth_client(name, expires=utc_now() + timedelta(hours=1))
    oauth.clock.now += CACHE_SECONDS
    assert_token_answer(await oauth.token({"grant_type": "client_credentials"}, basic(short.client_id, short.secret)))
    oauth.endpoint.credentials._now = lambda: utc_now() + timedelta(hours=2)
    expired = await oauth.token({"grant_type": "client_credentials"}, basic(short.client_id, short.secret))
    assert_oauth_error(expired, 401, "invalid_client")


async def test_a_client_may_hold_several_secrets_for_rotation(oauth):
    first = await oauth.client()
    second = await oauth.admin.create_oauth_client(first.tenant, client_id=first.client_id)
    oauth.clock.now += CACHE_SECONDS
    for issued in (first, second):
        assert_token_answer(
            await oauth.token({"grant_type": "client_credentials"}, basic(issued.client_id, issued.secret))
        )
    await oauth.admin.revoke(first.credential_id)
    oauth.clock.now += CACHE_SECONDS
    assert_oauth_error(
        await oauth.token({"grant_type": "client_credentials"}, basic(first.client_id, first.secret)),
        401,
        "invalid_client",
    )
    assert_token_answer(await oauth.token({"grant_type": "client_credentials"}, basic(second.client_id, second.secret)))


# --- request errors -------------------------------------------------------------------------------------------------


async def test_request_errors(oauth):
    issued = await oauth.client()
    auth = basic(issued.client_id, issued.secret)
    assert_oauth_error(await oauth.token({}, auth), 400, "invalid_request")
    assert_oauth_error(await oauth.token({"grant_type": "password"}, auth), 400, "unsupported_grant_type")
    assert_oauth_error(await oauth.token({"grant_type": "authorization_code"}, auth), 400, "unsupported_grant_type")
    twice = await oauth.token("grant_type=client_credentials&grant_type=client_credentials", auth)
    assert_oauth_error(twice, 400, "invalid_request")
    json_body = await oauth.token("{}", {**auth, "Content-Type": "application/json"})
    assert_oauth_error(json_body, 400, "invalid_request")
    not_utf8 = await oauth.endpoint.token(
        ScimRequest("POST", "oauth2/token", headers={"Content-Type": FORM, **auth}, body=b"grant_type=\xff")
    )
    assert_oauth_error(not_utf8, 400, "invalid_request")
    get = await oauth.token({"grant_type": "client_credentials"}, auth, method="GET")
    assert get.status == 405 and get.headers["Allow"] == "POST"
    huge = await oauth.token({"grant_type": "client_credentials", "pad": "x" * 20_000}, auth)
    assert huge.status == 413
    # unknown parameters are ignored (RFC 6749 §3.2; the gallery test sends baseAddress)
    assert_token_answer(await oauth.token({"grant_type": "client_credentials", "baseAddress": "https://x"}, auth))


async def test_scopes(oauth):
    issued = await oauth.client(("scim", "api://app/.default"))
    auth = basic(issued.client_id, issued.secret)
    grant = {"grant_type": "client_credentials"}
    assert_token_answer(await oauth.token(grant, auth), "scim api://app/.default")
    assert_token_answer(await oauth.token({**grant, "scope": "scim"}, auth), "scim")
    assert_token_answer(
        await oauth.token({**grant, "scope": "api://app/.default scim"}, auth), "api://app/.default scim"
    )
    assert_oauth_error(await oauth.token({**grant, "scope": "admin"}, auth), 400, "invalid_scope")
    assert_oauth_error(await oauth.token({**grant, "scope": "scim admin"}, auth), 400, "invalid_scope")
    assert_oauth_error(await oauth.token({**grant, "scope": "scim  scim"}, auth), 400, "invalid_scope")


# --- the access tokens on the SCIM routes ---------------------------------------------------------------------------


async def test_a_revoked_clients_tokens_stop_working_within_the_cache_ttl(oauth):
    issued = await oauth.client()
    token = assert_token_answer(
        await oauth.token({"grant_type": "client_credentials"}, basic(issued.client_id, issued.secret))
    )
    assert (await oauth.scim(token)).status == 200
    await oauth.admin.revoke(issued.client_id)
    assert (await oauth.scim(token)).status == 200  # the snapshot this instance holds
    oauth.clock.now += CACHE_SECONDS
    assert (await oauth.scim(token)).status == 401
    refused = await oauth.token({"grant_type": "client_credentials"}, basic(issued.client_id, issued.secret))
    assert_oauth_error(refused, 401, "invalid_client")


async def test_tenant_isolation_across_oauth_clients(oauth):
    a, b = await oauth.client(), await oauth.client()
    token_a = assert_token_answer(await oauth.token({"grant_type": "client_credentials"}, basic(a.client_id, a.secret)))
    token_b = assert_token_answer(await oauth.token({"grant_type": "client_credentials"}, basic(b.client_id, b.secret)))
    created = await oauth.scim(token_b, "Users", "POST", {"userName": "b-only@example.com"})
    assert created.status == 201
    assert (await oauth.scim(token_a, f"Users/{created.document['id']}")).status == 404
    assert (await oauth.scim(token_a)).document["totalResults"] == 0
    # a token signed with the real key that names client A but tenant B (as a leaked key could forge) is refused:
    # the client's stored tenant decides, not the token's claim alone
    forged = AccessTokens((SIGNING_KEY,), 60).issue(AccessGrant(b.tenant, a.client_id, ("scim",)))
    assert (await oauth.scim(forged)).status == 401


async def test_tokens_signed_with_another_key_or_altered_are_refused(oauth):
    issued = await oauth.client()
    grant = AccessGrant(issued.tenant, issued.client_id, ("scim",))
    assert (await oauth.scim(AccessTokens((SIGNING_KEY,), 60).issue(grant))).status == 200
    assert (await oauth.scim(AccessTokens(("z" * 40,), 60).issue(grant))).status == 401
    header, payload, signature = AccessTokens((SIGNING_KEY,), 60).issue(grant).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["tenant"] = "someone-else"
    altered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert (await oauth.scim(f"{header}.{altered}.{signature}")).status == 401


# --- rate limiting --------------------------------------------------------------------------------------------------


async def test_failures_per_client_id_are_limited_then_forgiven(oauth):
    issued = await oauth.client()
    right, wrong = basic(issued.client_id, issued.secret), basic(issued.client_id, issued.secret[:-4] + "AAAA")
    grant = {"grant_type": "client_credentials"}
    for _ in range(CLIENT_FAILURES):
        assert_oauth_error(await oauth.token(grant, wrong), 401, "invalid_client")
    limited = await oauth.token(grant, right)  # even the right secret waits: nothing is checked while limited
    assert limited.status == 429 and int(limited.headers["Retry-After"]) > 0
    limiter = oauth.endpoint._token_endpoint._by_client
    limiter._clock = lambda: 1e12  # the window has passed
    assert_token_answer(await oauth.token(grant, right))


async def test_failures_per_source_are_limited(oauth):
    issued = await oauth.client()
    grant = {"grant_type": "client_credentials"}
    attacker = {"X-Forwarded-For": "203.0.113.9:50000"}
    for n in range(SOURCE_FAILURES):
        guess = basic(f"guess-{n}", "scimc_0123456789abcdef_" + "A" * 43)
        assert_oauth_error(await oauth.token(grant, {**guess, **attacker}), 401, "invalid_client")
    limited = await oauth.token(grant, {**basic(issued.client_id, issued.secret), **attacker})
    assert limited.status == 429 and "Retry-After" in limited.headers
    other_source = {"X-Forwarded-For": "198.51.100.7:40000"}
    assert_token_answer(await oauth.token(grant, {**basic(issued.client_id, issued.secret), **other_source}))


# --- nothing secret leaks -------------------------------------------------------------------------------------------


async def test_no_secret_or_token_in_answers_or_logs(oauth, caplog):
    issued = await oauth.client()
    grant = {"grant_type": "client_credentials"}
    with caplog.at_level(logging.DEBUG):
        ok = await oauth.token(grant, basic(issued.client_id, issued.secret))
        token = assert_token_answer(ok)
        bad = await oauth.token({**grant, "client_id": issued.client_id, "client_secret": issued.secret + "x"})
        assert (await oauth.scim(token)).status == 200
    assert issued.secret[23:] not in caplog.text and token.split(".")[2] not in caplog.text
    assert issued.secret[23:] not in json.dumps(bad.document)
    assert '"event": "oauth.token"' in caplog.text and issued.client_id in caplog.text


async def test_the_token_endpoint_is_off_without_signing_keys(store):
    endpoint = ScimEndpoint(Settings("unused", None, (("t", "x" * 32),)), store)
    answer = await endpoint.token(
        ScimRequest("POST", "oauth2/token", headers={"Content-Type": FORM}, body=b"grant_type=client_credentials")
    )
    assert answer.status == 404


async def test_the_lifetime_setting_is_what_expires_in_says(store):
    endpoint = ScimEndpoint(settings(access_token_minutes=360), store)
    admin = TenantAdmin(store)
    name = f"oa{secrets.token_hex(5)}"
    await admin.add_tenant(name)
    issued = await admin.create_oauth_client(name)
    answer = await endpoint.token(
        ScimRequest(
            "POST",
            "oauth2/token",
            headers={"Content-Type": FORM, **basic(issued.client_id, issued.secret)},
            body=b"grant_type=client_credentials",
        )
    )
    assert answer.status == 200 and answer.document["expires_in"] == 360 * 60
