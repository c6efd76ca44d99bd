"""Signing keys of Entra tenants: discovered through each tenant's OpenID metadata, cached, refreshed within limits.

One cache serves every check of an Entra-signed JWT (provisioning tokens in "Secret Token blank" mode, and the
client assertions of Workload Identity Federation), each with its own metadata URL template. Callers decide which
tenants are trusted *before* asking for a key: the cache fetches whatever tenant it is asked about, so nothing an
unauthenticated caller sends may reach it unchecked. Per tenant, keys are fetched at most once per refresh interval
(an unknown ``kid`` waits for the next allowed refresh), concurrent misses share one fetch, a failed fetch backs off,
and keys are re-read once a day even when every ``kid`` is known, so a key Microsoft withdrew stops being trusted.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt

from scim.bearer import looks_like_jwt

log = logging.getLogger("scim.auth")

RS256 = ["RS256"]
"""The only algorithm Entra signs with: an allow-list of one, so neither ``none`` nor HMAC over a public key passes."""
REFRESH_INTERVAL_SECONDS = 300.0
FAILURE_BACKOFF_SECONDS = 30.0
MAX_KEY_AGE_SECONDS = 24 * 3600.0
FETCH_TIMEOUT_SECONDS = 5.0
MAX_METADATA_BYTES = 64 * 1024
MAX_JWKS_BYTES = 256 * 1024
MAX_KEYS_PER_TENANT = 64
MAX_KID_LENGTH = 256


class KeyFetchError(Exception):
    """The tenant's metadata or signing keys could not be fetched or understood; the message holds no token."""


@dataclass
class _TenantKeys:
    """One tenant's cached signing keys and the bookkeeping that bounds how often they are fetched."""

    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched_at: float | None = None
    next_fetch_allowed: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class JwksCache:
    """RS256 signing keys by tenant and ``kid``; one per process and metadata URL, shared by all requests.

    ``metadata_url`` contains ``{tenant}``. ``clock`` is monotonic time, injectable so tests can step past the
    refresh interval without sleeping.
    """

    def __init__(
        self,
        metadata_url: str,
        *,
        refresh_interval: float = REFRESH_INTERVAL_SECONDS,
        failure_backoff: float = FAILURE_BACKOFF_SECONDS,
        max_key_age: float = MAX_KEY_AGE_SECONDS,
        timeout: float = FETCH_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenants: dict[str, _TenantKeys] = {}
        self._metadata_url = metadata_url
        self._refresh_interval = refresh_interval
        self._failure_backoff = failure_backoff
        self._max_key_age = max_key_age
        self._timeout = timeout
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    async def signing_key(self, tenant_id: str, key_id: str) -> jwt.PyJWK | None:
        """The cached key, or the key after one (rate-limited, coalesced) refresh of the tenant's key set."""
        state = self._tenants.setdefault(tenant_id, _TenantKeys())
        key = state.keys.get(key_id)
        if key is not None and not self._stale(state):
            return key
        async with state.lock:
            # Another request may have refreshed while this one waited for the lock.
            key = state.keys.get(key_id)
            if key is not None and not self._stale(state):
                return key
            now = self._clock()
            if now < state.next_fetch_allowed:
                return key  # a stale key still beats none; an unknown kid waits for the next allowed refresh
            await self._refresh(tenant_id, state, now)
            return state.keys.get(key_id)

    def _stale(self, state: _TenantKeys) -> bool:
        return state.fetched_at is not None and self._clock() - state.fetched_at > self._max_key_age

    async def _refresh(self, tenant_id: str, state: _TenantKeys, now: float) -> None:
        """Replace the tenant's key set; on failure keep the old one and back off, logging why (never a token).

        Any failure here is the key source's, not the caller's: the request gets the 401 of a token that cannot be
        verified rather than a 500, and Entra retries it later.
        """
        try:
            keys = await self._fetch_keys(tenant_id)
        except KeyFetchError as exc:
            state.next_fetch_allowed = now + self._failure_backoff
            log.warning("could not fetch Entra signing keys for tenant %s: %s", tenant_id, exc)
            return
        except Exception as exc:
            state.next_fetch_allowed = now + self._failure_backoff
            log.warning("could not fetch Entra signing keys for tenant %s: %s", tenant_id, type(exc).__name__)
            return
        state.keys = keys
        state.fetched_at = now
        state.next_fetch_allowed = now + self._refresh_interval

    async def _fetch_keys(self, tenant_id: str) -> dict[str, jwt.PyJWK]:
        metadata_url = self._metadata_url.replace("{tenant}", tenant_id)
        try:
            async with asyncio.timeout(self._timeout):
                metadata = await self._get_json(metadata_url, MAX_METADATA_BYTES)
                jwks_uri = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
                if not isinstance(jwks_uri, str) or not _allowed_jwks_uri(jwks_uri, metadata_url):
                    raise KeyFetchError("the OpenID metadata has no usable jwks_uri")
                jwks = await self._get_json(jwks_uri, MAX_JWKS_BYTES)
        except TimeoutError:
            raise KeyFetchError("timed out") from None
        except aiohttp.ClientError as exc:
            raise KeyFetchError(f"HTTP client error ({type(exc).__name__})") from None
        keys = _signing_keys(jwks)
        if not keys:
            raise KeyFetchError("the key set holds no usable RSA signing key")
        return keys

    async def _get_json(self, url: str, max_bytes: int) -> Any:
        """GET a small JSON document; redirects are not followed and the body is cut off at ``max_bytes``."""
        session = self._client_session()
        async with session.get(url, allow_redirects=False, headers={"Accept": "application/json"}) as response:
            if response.status != 200:
                raise KeyFetchError(f"HTTP {response.status} from {_origin(url)}")
            if response.content_length is not None and response.content_length > max_bytes:
                raise KeyFetchError(f"response from {_origin(url)} is larger than {max_bytes} bytes")
            body = bytearray()
            async for chunk in response.content.iter_chunked(16 * 1024):
                body.extend(chunk)
                if len(body) > max_bytes:
                    raise KeyFetchError(f"response from {_origin(url)} is larger than {max_bytes} bytes")
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise KeyFetchError(f"response from {_origin(url)} is not JSON") from None

    def _client_session(self) -> aiohttp.ClientSession:
        """One session per process, created inside the running loop on first use (aiohttp binds it to that loop)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                raise_for_status=False,
            )
            self._session_loop = loop
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _signing_keys(jwks: Any) -> dict[str, jwt.PyJWK]:
    """The RSA signing keys of a JWKS by ``kid``, each bound to RS256; anything else in the set is skipped."""
    entries = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(entries, list):
        raise KeyFetchError("the key set has no 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        if len(keys) >= MAX_KEYS_PER_TENANT:
            break
        if not isinstance(entry, Mapping) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        key_id = entry.get("kid")
        if not isinstance(key_id, str) or not key_id or len(key_id) > MAX_KID_LENGTH:
            continue
        try:
            keys[key_id] = jwt.PyJWK(dict(entry), algorithm="RS256")
        except jwt.PyJWTError:
            continue
    return keys


def _allowed_jwks_uri(jwks_uri: str, metadata_url: str) -> bool:
    """HTTPS, or the metadata's own origin (a loopback test server); never another scheme such as file:."""
    parts = urlsplit(jwks_uri)
    return bool(parts.hostname) and (parts.scheme == "https" or _origin(jwks_uri) == _origin(metadata_url))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class UnusableToken(Exception):
    """A token that cannot be one of Entra's RS256 JWTs; the message is a fixed phrase for the log, never the token."""


def unverified_kid_and_claims(token: str) -> tuple[str, dict[str, Any]]:
    """The ``kid`` and the (unverified) claims of an RS256 JWT: just enough to pick whose keys to check it with.

    Nothing read here is trusted: every claim is checked again on the verified payload.
    """
    if not looks_like_jwt(token):
        raise UnusableToken("not a JWT")
    try:
        header = jwt.get_unverified_header(token)
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise UnusableToken("malformed JWT") from None
    if header.get("alg") not in RS256:
        raise UnusableToken("algorithm not allowed")
    key_id = header.get("kid")
    if not isinstance(key_id, str) or not key_id or len(key_id) > MAX_KID_LENGTH:
        raise UnusableToken("no usable kid")
    return key_id, payload
