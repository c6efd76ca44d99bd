"""Microsoft's gallery validation of credentials, replayed over real HTTP against ``python -m scim serve``:
Validate_Credentials_Test (#21: client credentials at the token endpoint, then ``GET /Users?startIndex=1&count=1``),
Federated_Identity_Test (#22: a client assertion Entra signed, with the Logic App's extra ``baseAddress``), and
Entra's Test Connection made with an OAuth access token (research/entra-client.md, sections b4, c4, c5, C.12).

The operator's side is the real CLI (``python -m scim tenants``); Entra's OpenID authority is a stand-in HTTP server
on 127.0.0.1 that checks each key-discovery request."""

import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import jwt
import pytest

from scim.local.host import REPO_ROOT
from tests.local_server import LocalServer
from tests.openid_standin import OpenIdStandIn
from tests.unit.test_entra_tokens import private_key, public_jwk

ENTRA_TENANT = "ce5f061f-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
SYNC_FABRIC_WI = "7f6e5d4c-3b2a-4190-8877-665544332211"  # the Sync Fabric workload identity object id (sub)
WI_APP = "b5ba7a93-4452-4522-aeb4-a2b5da870c16"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Gallery:
    base_url: str
    token_endpoint: str
    client_id: str
    client_secret: str
    federated_client_id: str
    standin: OpenIdStandIn


def tenants(server: LocalServer, *args: str) -> str:
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "scim", "tenants", *args],
        cwd=REPO_ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def field(output: str, label: str) -> str:
    return next(line.split()[-1] for line in output.splitlines() if line.startswith(label))


@pytest.fixture(scope="module")
def gallery(azurite_connection_string: str) -> Iterator[Gallery]:
    standin = OpenIdStandIn(keys={ENTRA_TENANT: [public_jwk("entra", "entra-key-1")]})
    standin.start()
    server = LocalServer(azurite_connection_string, f"gal{secrets.token_hex(4)}")
    server.env.update(
        SCIM_TOKEN_SIGNING_KEYS=secrets.token_urlsafe(48),
        SCIM_WIF_METADATA_URL=standin.metadata_url,
    )
    tenant = f"isv{secrets.token_hex(4)}"
    tenants(server, "add", tenant)
    oauth = tenants(server, "oauth-client", tenant, "--scope", "scim")
    federated = tenants(
        server, "federate", tenant, "--entra-tenant", ENTRA_TENANT, "--subject", SYNC_FABRIC_WI,
        "--audience", f"api://{WI_APP}/.default",
    )  # fmt: skip
    server.start()
    try:
        origin = server.base_url.removesuffix("/scim/v2")
        yield Gallery(
            server.base_url,
            f"{origin}/oauth2/token",
            field(oauth, "Client ID:"),
            field(oauth, "Client Secret:"),
            field(federated, "Client Identifier"),
            standin,
        )
    finally:
        server.close()
        standin.stop()


def entra_assertion() -> str:
    """The client assertion Entra signs for WIF, with the claims the WIF doc's example shows."""
    now = int(time.time())
    claims = {
        "aud": f"api://{WI_APP}",
        "iss": f"https://login.microsoftonline.com/{ENTRA_TENANT}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + 65 * 60,
        "appid": "00000014-0000-0000-c000-000000000000",
        "appidacr": "2",
        "idp": f"https://sts.windows.net/{ENTRA_TENANT}/",
        "oid": SYNC_FABRIC_WI,
        "sub": SYNC_FABRIC_WI,
        "tid": ENTRA_TENANT,
        "uti": secrets.token_urlsafe(16),
        "ver": "2.0",
    }
    return jwt.encode(claims, private_key("entra"), algorithm="RS256", headers={"kid": "entra-key-1", "typ": "JWT"})


def first_user_page(gallery: Gallery, access_token: str) -> httpx.Response:
    """The gallery's check that the token works: ``GET /Users?startIndex=1&count=1``."""
    return httpx.get(
        f"{gallery.base_url}/Users",
        params={"startIndex": "1", "count": "1"},
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )


def assert_token(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store" and response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["access_token"]
    assert 60 * 60 <= body["expires_in"] <= 360 * 60  # "token validity between 60-360 minutes"
    return str(body["access_token"])


def test_validate_credentials_test(gallery: Gallery):
    """#21 as the Logic App sends it: the form body, client_secret_post, with a scope."""
    body = urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": gallery.client_id,
            "client_secret": gallery.client_secret,
            "scope": "scim",
        }
    )
    token = assert_token(httpx.post(gallery.token_endpoint, content=body, headers=FORM, timeout=10))
    page = first_user_page(gallery, token)
    assert page.status_code == 200, page.text
    assert page.json()["schemas"] == [LIST]


def test_entra_test_connection_with_oauth(gallery: Gallery):
    """Entra's provisioning page with "Header" (client_secret_basic), then Test Connection's queries."""
    token = assert_token(
        httpx.post(
            gallery.token_endpoint,
            content="grant_type=client_credentials&scope=scim",
            headers=FORM,
            auth=(gallery.client_id, gallery.client_secret),
            timeout=10,
        )
    )
    headers = {"Authorization": f"Bearer {token}"}
    users = httpx.get(
        f"{gallery.base_url}/Users", params={"filter": f'userName eq "{uuid.uuid4()}"'}, headers=headers, timeout=10
    )
    assert users.status_code == 200 and users.json()["totalResults"] == 0 and users.json()["Resources"] == []
    groups = httpx.get(
        f"{gallery.base_url}/Groups",
        params={"excludedAttributes": "members", "filter": f'displayName eq "{uuid.uuid4()}"'},
        headers=headers,
        timeout=10,
    )
    assert groups.status_code == 200 and groups.json()["totalResults"] == 0
    wrong = httpx.post(
        gallery.token_endpoint,
        content="grant_type=client_credentials",
        headers=FORM,
        auth=(gallery.client_id, gallery.client_secret[:-3] + "abc"),
        timeout=10,
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")


def test_federated_identity_test(gallery: Gallery):
    """#22, the generic WIF flow: client_id, the Entra-signed assertion, its type, and the Logic App's baseAddress."""
    presented = entra_assertion()
    body = urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": gallery.federated_client_id,
            "client_assertion": presented,
            "client_assertion_type": ASSERTION_TYPE,
            "baseAddress": gallery.base_url,
            "scope": "scim",
        }
    )
    token = assert_token(httpx.post(gallery.token_endpoint, content=body, headers=FORM, timeout=10))
    assert first_user_page(gallery, token).status_code == 200
    replay = httpx.post(gallery.token_endpoint, content=body, headers=FORM, timeout=10)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
    assert gallery.standin.violations == []
    assert f"/{ENTRA_TENANT}/v2.0/.well-known/openid-configuration" in gallery.standin.requests
    assert f"/{ENTRA_TENANT}/discovery/v2.0/keys" in gallery.standin.requests


def test_scim_refuses_anything_but_a_valid_access_token(gallery: Gallery):
    assert first_user_page(gallery, gallery.client_secret).status_code == 401  # a client secret is not a bearer
    assert first_user_page(gallery, entra_assertion()).status_code == 401  # nor is Entra's assertion
