"""Entra-issued bearer tokens: the JWT Entra's provisioning service sends when the admin leaves "Secret Token" blank.

The token's signature is checked against the tenant's published signing keys (:mod:`scim.jwks`, from the
``jwks_uri`` in that tenant's OpenID metadata). The tenant is pinned: only the tenants in ``SCIM_ENTRA_TENANT_IDS``
are trusted, because the audience is the same for every custom app in every tenant (research/entra-client.md,
section c2), so the issuer/``tid`` pin is the only thing that binds a token to a customer.

Nothing an unauthenticated caller sends can make the process fetch a URL other than the configured tenants' metadata,
or fetch it more often than once per refresh interval per tenant.
"""

import logging
import math
import time
from collections.abc import Callable, Collection
from typing import Any

import jwt

from scim.errors import ScimError, unauthorized
from scim.jwks import (
    FAILURE_BACKOFF_SECONDS,
    FETCH_TIMEOUT_SECONDS,
    MAX_KEY_AGE_SECONDS,
    REFRESH_INTERVAL_SECONDS,
    RS256,
    JwksCache,
    UnusableToken,
    unverified_kid_and_claims,
)

log = logging.getLogger("scim.auth")

ALGORITHMS = RS256
LEEWAY_SECONDS = 300
MAX_TOKEN_LIFETIME_SECONDS = 24 * 3600
"""Entra's access tokens live 60 to 90 minutes; a day leaves room for any clock skew without accepting "never"."""


def expected_issuer(tenant_id: str) -> str:
    """The v1 issuer Entra puts in provisioning tokens: exact, with the trailing slash."""
    return f"https://sts.windows.net/{tenant_id}/"


class EntraTokenValidator:
    """Validates Entra-issued JWTs for a fixed set of tenants; one per process, its key cache shared by all requests.

    ``clock`` is monotonic time, injectable so tests can step past the refresh interval without sleeping.
    """

    def __init__(
        self,
        tenant_ids: Collection[str],
        audiences: Collection[str],
        metadata_url: str,
        app_ids: Collection[str],
        *,
        refresh_interval: float = REFRESH_INTERVAL_SECONDS,
        failure_backoff: float = FAILURE_BACKOFF_SECONDS,
        max_key_age: float = MAX_KEY_AGE_SECONDS,
        timeout: float = FETCH_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenants = frozenset(tenant_ids)
        self._audiences = list(audiences)
        self._app_ids = frozenset(app_ids)
        self._keys = JwksCache(
            metadata_url,
            refresh_interval=refresh_interval,
            failure_backoff=failure_backoff,
            max_key_age=max_key_age,
            timeout=timeout,
            clock=clock,
        )

    async def validate(self, token: str) -> str:
        """The tenant id (the token's ``tid``) of a valid token, or the 401 that says nothing about which check failed.

        The unverified ``tid``/``iss`` only choose whose keys to check the signature with, and only among the
        configured tenants; every claim is then checked again on the verified payload.
        """
        tenant_id, key_id = self._unverified_tenant_and_kid(token)
        key = await self._keys.signing_key(tenant_id, key_id)
        if key is None:
            raise _rejected("no signing key with this kid")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=self._audiences,
                issuer=expected_issuer(tenant_id),
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"], "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as exc:
            raise _rejected(type(exc).__name__) from None
        problem = _unusable_dates(claims, time.time())
        if problem is not None:
            raise _rejected(problem)
        if claims.get("tid") != tenant_id:
            raise _rejected("tid does not match the issuer's tenant")
        app_id = claims.get("appid")
        if not isinstance(app_id, str) or app_id not in self._app_ids:
            raise _rejected("appid is not an allowed client application")
        return tenant_id

    def _unverified_tenant_and_kid(self, token: str) -> tuple[str, str]:
        """Read just enough of the unverified token to pick a configured tenant's key; reject everything else early."""
        try:
            key_id, payload = unverified_kid_and_claims(token)
        except UnusableToken as exc:
            raise _rejected(str(exc)) from None
        tenant_id = payload.get("tid")
        if not isinstance(tenant_id, str) or tenant_id not in self._tenants:
            raise _rejected("tenant not configured")
        if payload.get("iss") != expected_issuer(tenant_id):
            raise _rejected("issuer does not match tid")
        return tenant_id, key_id

    async def close(self) -> None:
        await self._keys.close()


def _unusable_dates(claims: dict[str, Any], now: float) -> str | None:
    """PyJWT reads ``exp`` ``"99999999999"`` (a string) and ``1e300`` as dates; RFC 7519 dates are JSON numbers,
    and a token Entra issues lives about an hour, so one valid for longer than :data:`MAX_TOKEN_LIFETIME_SECONDS`
    from now is not one of Entra's."""
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if value is None and name != "exp":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            return f"{name} is not a NumericDate"
    if claims["exp"] > now + MAX_TOKEN_LIFETIME_SECONDS:
        return "exp is further ahead than any Entra token lives"
    return None


def _rejected(reason: str) -> ScimError:
    """The client sees only ``unauthorized()``; the reason, a fixed phrase, is for the operator's log (no token)."""
    log.info("Entra token rejected: %s", reason)
    return unauthorized()
