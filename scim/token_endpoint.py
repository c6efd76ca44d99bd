"""``POST /oauth2/token``: the OAuth 2.0 client credentials grant (RFC 6749 §4.4) that Entra's "OAuth 2.0 client
credentials" and "Workload Identity Federation" provisioning modes call before they send SCIM requests.

Client authentication, as Entra's "How credentials are sent" offers it:

- ``client_secret_basic``: ``Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`` (RFC 6749 §2.3.1);
- ``client_secret_post``: ``client_id`` and ``client_secret`` form parameters;
- both at once (Entra's "Both"): accepted when they name the same client and secret;
- a client assertion (RFC 7523, Workload Identity Federation): ``client_id``, ``client_assertion_type`` =
  :data:`scim.federation.ASSERTION_TYPE`, ``client_assertion`` = the JWT Entra signed.

Answers are RFC 6749 §5.1 (``access_token``, ``token_type`` Bearer, ``expires_in``, ``scope``; ``Cache-Control:
no-store``, ``Pragma: no-cache``) and §5.2 errors (``invalid_request``, ``invalid_client`` as 401 with
``WWW-Authenticate``, ``unsupported_grant_type``, ``invalid_scope``), plus 429 with
``Retry-After`` while a client id or source is over its failure limit (:mod:`scim.failure_limits`). Unrecognised
parameters are ignored, as §3.2 requires (the gallery test sends ``baseAddress``). No secret or assertion is ever
logged or echoed.
"""

import base64
import binascii
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from scim.access_tokens import AccessGrant, AccessTokens
from scim.credential_directory import CredentialDirectory
from scim.credentials import Credential
from scim.errors import ScimError
from scim.failure_limits import CLIENT_FAILURES, SOURCE_FAILURES, FailureLimiter
from scim.federation import ASSERTION_TYPE, AssertionRejected, FederationValidator
from scim.jwks import JwksCache
from scim.messages import ScimRequest, ScimResponse
from scim.settings import Settings
from scim.store.contract import StoreUnavailable

log = logging.getLogger("scim.token")

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
MAX_BODY_BYTES = 16 * 1024
MAX_CLIENT_ID_LENGTH = 128
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,128}")
_TOKEN_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache", "Content-Type": "application/json;charset=UTF-8"}
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="oauth2", charset="UTF-8"'}


@dataclass
class OAuthError(Exception):
    """An RFC 6749 §5.2 error answer; ``description`` is shown to the client, so it never holds what it sent."""

    status: int
    error: str
    description: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Attempt:
    """What the log line says about one request: never a secret, an assertion or a token."""

    method: str = "-"
    client_id: str = "-"
    tenant: str = "-"


class TokenEndpoint:
    """One per process, sharing the credentials snapshot with the SCIM routes' authenticator."""

    def __init__(
        self,
        directory: CredentialDirectory,
        tokens: AccessTokens,
        federation: FederationValidator,
        client_limiter: FailureLimiter | None = None,
        source_limiter: FailureLimiter | None = None,
    ) -> None:
        self._directory = directory
        self._tokens = tokens
        self._federation = federation
        self._by_client = client_limiter or FailureLimiter(CLIENT_FAILURES)
        self._by_source = source_limiter or FailureLimiter(SOURCE_FAILURES)

    async def handle(self, request: ScimRequest) -> ScimResponse:
        started = time.perf_counter()
        attempt = _Attempt()
        try:
            response = await self._grant(request, attempt)
        except OAuthError as failure:
            response = _error_response(failure)
        except ScimError as failure:  # the credentials snapshot could not be read: 503, retry later
            response = _error_response(OAuthError(failure.status, "temporarily_unavailable", failure.detail))
            response.headers.update(failure.headers)
        except StoreUnavailable:
            response = _error_response(
                OAuthError(503, "temporarily_unavailable", "Storage is unavailable", {"Retry-After": "30"})
            )
        except Exception:
            log.exception("unhandled error in the token endpoint")
            response = _error_response(OAuthError(500, "server_error", "Internal error"))
        _log(attempt, response, started)
        return response

    async def _grant(self, request: ScimRequest, attempt: _Attempt) -> ScimResponse:
        if request.method.upper() != "POST":
            raise OAuthError(405, "invalid_request", "The token endpoint accepts POST only", {"Allow": "POST"})
        form = _form(request)
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise OAuthError(400, "invalid_request", "grant_type is required")
        if grant_type != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "Only grant_type=client_credentials is supported")
        source = _source(request)
        if "client_assertion" in form or "client_assertion_type" in form:
            client = await self._assertion_client(request, form, source, attempt)
        else:
            client = await self._secret_client(request, form, source, attempt)
        attempt.tenant = client.tenant
        scopes = _granted_scopes(form.get("scope"), client.scopes)
        token = self._tokens.issue(AccessGrant(client.tenant, attempt.client_id, scopes))
        await self._directory.record_use(client)
        body = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self._tokens.lifetime_seconds,
            "scope": " ".join(scopes),
        }
        return ScimResponse(200, body, dict(_TOKEN_HEADERS))

    async def _secret_client(
        self, request: ScimRequest, form: dict[str, str], source: str, attempt: _Attempt
    ) -> Credential:
        basic = _basic_credentials(request.header("Authorization"))
        posted = (form.get("client_id"), form.get("client_secret"))
        if basic is not None and posted[1] is not None and basic != posted:
            raise OAuthError(400, "invalid_request", "The Authorization header and the form name different clients")
        if basic is not None:
            attempt.method = "client_secret_basic" if posted[1] is None else "client_secret_basic+post"
            client_id, secret = basic
        elif posted[0] is not None and posted[1] is not None:
            attempt.method = "client_secret_post"
            client_id, secret = posted
        else:
            raise OAuthError(401, "invalid_client", "Client authentication is required", dict(_CHALLENGE))
        if basic is not None and posted[0] is not None and posted[0] != basic[0]:
            raise OAuthError(400, "invalid_request", "The Authorization header and the form name different clients")
        client_id = _checked_client_id(client_id)
        attempt.client_id = client_id
        self._check_limits(client_id, source)
        client = await self._directory.client_with_secret(client_id, secret)
        if client is None:
            self._failed(client_id, source)
            raise OAuthError(401, "invalid_client", "Client authentication failed", dict(_CHALLENGE))
        return client

    async def _assertion_client(
        self, request: ScimRequest, form: dict[str, str], source: str, attempt: _Attempt
    ) -> Credential:
        attempt.method = "client_assertion"
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError(400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion")
        if not assertion:
            raise OAuthError(400, "invalid_request", "client_assertion is required with client_assertion_type")
        if "client_secret" in form or request.header("Authorization"):
            raise OAuthError(400, "invalid_request", "Use one client authentication method, not several")
        if form.get("client_id") is None:
            raise OAuthError(401, "invalid_client", "client_id is required with a client assertion", dict(_CHALLENGE))
        client_id = _checked_client_id(form["client_id"])
        attempt.client_id = client_id
        self._check_limits(client_id, source)
        federation = await self._directory.client(client_id, "federation")
        if federation is None:
            self._failed(client_id, source)
            raise OAuthError(401, "invalid_client", "Client authentication failed", dict(_CHALLENGE))
        try:
            await self._federation.validate(assertion, federation)
        except AssertionRejected as rejected:
            log.info("client assertion rejected for client %s: %s", client_id, rejected)
            self._failed(client_id, source)
            raise OAuthError(401, "invalid_client", "Client authentication failed", dict(_CHALLENGE)) from None
        return federation

    def _check_limits(self, client_id: str, source: str) -> None:
        wait = max(self._by_client.retry_after(client_id) or 0, self._by_source.retry_after(source) or 0)
        if wait:
            raise OAuthError(
                429, "temporarily_unavailable", "Too many failed attempts; retry later", {"Retry-After": str(wait)}
            )

    def _failed(self, client_id: str, source: str) -> None:
        self._by_client.failed(client_id)
        self._by_source.failed(source)

    async def close(self) -> None:
        await self._federation.close()


def _form(request: ScimRequest) -> dict[str, str]:
    """The form body (RFC 6749 §3.2: form-encoded, UTF-8); a parameter sent twice is an error (§3.1)."""
    media_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise OAuthError(400, "invalid_request", f"Send the token request as {FORM_MEDIA_TYPE}")
    if len(request.body) > MAX_BODY_BYTES:
        raise OAuthError(413, "invalid_request", f"The token request may be at most {MAX_BODY_BYTES} bytes")
    try:
        pairs = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise OAuthError(400, "invalid_request", "The token request is not UTF-8 form data") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError(400, "invalid_request", f"The parameter {_printable(name)} is sent more than once")
        form[name] = value
    return {name: value for name, value in form.items() if value != "" or name == "client_secret"}


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1: the id and secret are form-urlencoded, then joined by ``:`` and base64-encoded."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError(401, "invalid_client", "Use HTTP Basic or form parameters to authenticate", dict(_CHALLENGE))
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise OAuthError(401, "invalid_client", "The Basic credentials are malformed", dict(_CHALLENGE)) from None
    client_id, separator, secret = decoded.partition(":")
    if not separator:
        raise OAuthError(401, "invalid_client", "The Basic credentials are malformed", dict(_CHALLENGE))
    return unquote_plus(client_id), unquote_plus(secret)


def _checked_client_id(client_id: str) -> str:
    if not _CLIENT_ID.fullmatch(client_id):
        raise OAuthError(401, "invalid_client", "Client authentication failed", dict(_CHALLENGE))
    return client_id


def _granted_scopes(requested: str | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """All the client's scopes when none is asked for; otherwise exactly those asked, each of which it must have."""
    if requested is None:
        return allowed
    asked = tuple(dict.fromkeys(requested.split(" ")))
    if any(not scope for scope in asked) or any(scope not in allowed for scope in asked):
        raise OAuthError(400, "invalid_scope", "The requested scope is not granted to this client")
    return asked


def _source(request: ScimRequest) -> str:
    """The caller's address as Azure's front end reports it (the last ``X-Forwarded-For`` entry, which the caller
    cannot forge), without its port; locally there is none and every caller shares one budget."""
    forwarded = (request.header("X-Forwarded-For") or "").split(",")[-1].strip()
    if forwarded.startswith("["):
        return forwarded[1:].split("]")[0]
    return forwarded.rsplit(":", 1)[0] if forwarded.count(":") == 1 else forwarded or "local"


def _printable(name: str) -> str:
    return json.dumps(name[:40])


def _error_response(failure: OAuthError) -> ScimResponse:
    body: dict[str, Any] = {"error": failure.error, "error_description": failure.description}
    return ScimResponse(failure.status, body, {**_TOKEN_HEADERS, **failure.headers})


def _log(attempt: _Attempt, response: ScimResponse, started: float) -> None:
    error = response.document.get("error") if response.document and response.status != 200 else None
    log.info(
        json.dumps(
            {
                "event": "oauth.token",
                "auth": attempt.method,
                "client_id": attempt.client_id,
                "tenant": attempt.tenant,
                "status": response.status,
                "error": error,
                "ms": round((time.perf_counter() - started) * 1000, 2),
            }
        )
    )


def build_token_endpoint(settings: Settings, directory: CredentialDirectory) -> TokenEndpoint:
    """The process's token endpoint: access tokens from the settings' keys, WIF keys from the v2 metadata."""
    tokens = AccessTokens(settings.token_signing_keys, settings.access_token_minutes)
    federation = FederationValidator(JwksCache(settings.wif_metadata_url), directory.store)
    return TokenEndpoint(directory, tokens, federation)
