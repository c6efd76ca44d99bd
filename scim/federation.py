"""Workload Identity Federation: the client assertion Entra signs and sends to ``POST /oauth2/token``.

Entra's provisioning page shows the admin an issuer (``https://login.microsoftonline.com/<tenant>/v2.0``), a subject
(the Sync Fabric workload identity's object id) and an audience (``api://<app id>/.default``; the token itself
carries it without ``/.default``). ``python -m scim tenants federate`` stores those three against a client id; here
an assertion presented with that client id must be RS256, signed by a key from that Entra tenant's JWKS (the same
cache and refresh limits as Entra-token mode, :mod:`scim.jwks`), with exactly that issuer, ``tid``, subject and
audience, inside its ``exp``/``nbf``/``iat`` window with :data:`LEEWAY_SECONDS`, and unused: each assertion's
``jti`` (Entra's tokens call it ``uti``) is recorded in storage for its lifetime, so a captured assertion cannot be
replayed on any instance.

Keys are fetched only for an Entra tenant a stored federation names, and only after the client id was found.
"""

import hashlib
import logging
from datetime import UTC, datetime

import jwt

from scim.credentials import Credential
from scim.jwks import RS256, JwksCache, UnusableToken, unverified_kid_and_claims
from scim.store.credentials import CredentialStore

log = logging.getLogger("scim.auth")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
LEEWAY_SECONDS = 60
MAX_ASSERTION_LENGTH = 8192


class AssertionRejected(Exception):
    """The assertion does not prove the federation; the message is a fixed phrase for the log, never the token."""


def v2_issuer(entra_tenant: str) -> str:
    return f"https://login.microsoftonline.com/{entra_tenant}/v2.0"


class FederationValidator:
    """Checks client assertions against stored federations; one per process, its key cache shared."""

    def __init__(self, keys: JwksCache, store: CredentialStore) -> None:
        self._keys = keys
        self._store = store

    async def validate(self, assertion: str, federation: Credential) -> None:
        if len(assertion) > MAX_ASSERTION_LENGTH:
            raise AssertionRejected("assertion too long")
        tenant = federation.entra_tenant
        try:
            key_id, unverified = unverified_kid_and_claims(assertion)
        except UnusableToken as exc:
            raise AssertionRejected(str(exc)) from None
        if unverified.get("iss") != v2_issuer(tenant):
            raise AssertionRejected("issuer is not the federated Entra tenant")
        key = await self._keys.signing_key(tenant, key_id)
        if key is None:
            raise AssertionRejected("no signing key with this kid")
        try:
            claims = jwt.decode(
                assertion,
                key=key,
                algorithms=RS256,
                audience=_audiences(federation.audience),
                issuer=v2_issuer(tenant),
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"], "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as exc:
            raise AssertionRejected(type(exc).__name__) from None
        if claims.get("tid", tenant) != tenant:
            raise AssertionRejected("tid is not the federated Entra tenant")
        if claims["sub"] != federation.subject:
            raise AssertionRejected("subject is not the federated one")
        expires = datetime.fromtimestamp(int(claims["exp"]) + LEEWAY_SECONDS, UTC)
        if not await self._store.claim_assertion(tenant, _assertion_id(claims, assertion), expires):
            raise AssertionRejected("assertion already used (replay)")

    async def close(self) -> None:
        await self._keys.close()


def _audiences(configured: str) -> list[str]:
    """Entra shows ``api://<app>/.default`` and puts ``api://<app>`` in the token: either form configured works."""
    base = configured.removesuffix("/.default")
    return [base, f"{base}/.default"]


def _assertion_id(claims: dict[str, object], assertion: str) -> str:
    """``jti`` (RFC 7523), else Entra's ``uti``, else the assertion's own digest: one use per assertion regardless."""
    for name in ("jti", "uti"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return f"{name}:{value}"
    return "sha256:" + hashlib.sha256(assertion.encode()).hexdigest()
