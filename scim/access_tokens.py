"""Access tokens this endpoint issues at ``POST /oauth2/token`` and accepts on every SCIM request.

Entra sends its access token with every SCIM request, so checking one must not cost a storage read: they are JWTs
signed with HMAC-SHA256 under a key from ``SCIM_TOKEN_SIGNING_KEYS`` (a Key Vault reference in Azure), carrying the
tenant and the client id. Several keys are accepted and the first one signs, so a key is rotated by putting a new
one first, waiting one token lifetime, then dropping the old one. Each key is named in the token's ``kid`` by a
fingerprint (never the key). Only HS256 with one of these keys is accepted: an Entra RS256 token never reaches this
check, and a token of ours never reaches Entra's.

Revocation is not in the token: the caller checks, against the cached credentials snapshot, that the client is still
live (:meth:`scim.credential_directory.CredentialDirectory.grants`), so a revoked client's tokens stop working within
the snapshot's TTL, not at their expiry.
"""

import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jwt

from scim.bearer import looks_like_jwt
from scim.credentials import TENANT_NAME
from scim.errors import ScimError, unauthorized

ALGORITHM = "HS256"
ISSUER = "urn:scim-entra-functions:token-endpoint"
AUDIENCE = "urn:scim-entra-functions:scim"
LEEWAY_SECONDS = 30
"""Tokens are checked by the instances of one app, whose clocks agree closely; Entra renews well before expiry."""
MIN_KEY_LENGTH = 32
MIN_LIFETIME_MINUTES = 60
MAX_LIFETIME_MINUTES = 360
"""Microsoft's gallery rules: access tokens expire between 60 minutes and six hours."""
MAX_LIFETIME_SECONDS = MAX_LIFETIME_MINUTES * 60
MAX_REMEMBERED = 10_000


@dataclass(frozen=True)
class AccessGrant:
    """What a verified access token says: who (client id) acts for which tenant, with which scopes."""

    tenant: str
    client_id: str
    scopes: tuple[str, ...]


def key_id(key: str) -> str:
    """A fingerprint of a signing key for the ``kid`` header: names the key without revealing it."""
    return hashlib.sha256(b"scim-access-token-kid:" + key.encode("utf-8")).hexdigest()[:16]


class AccessTokens:
    """Issues and verifies access tokens; ``clock`` is wall-clock seconds, injectable for expiry tests."""

    def __init__(
        self, signing_keys: Sequence[str], lifetime_minutes: int, clock: Callable[[], float] = time.time
    ) -> None:
        if not signing_keys:
            raise ValueError("at least one signing key")
        self._keys = {key_id(key): key.encode("utf-8") for key in signing_keys}
        self._signing_kid = key_id(signing_keys[0])
        self.lifetime_seconds = lifetime_minutes * 60
        self._clock = clock
        self._verified: dict[str, tuple[AccessGrant, int, int]] = {}
        """Tokens whose signature and claims were checked, with their ``iat`` and ``exp``: Entra presents the same
        token on every request for an hour, so the signature is checked once per process and token, and each later
        use costs a dictionary lookup and the time window check (revocation is the caller's, on every use)."""

    def issue(self, grant: AccessGrant) -> str:
        now = int(self._clock())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": grant.client_id,
            "client_id": grant.client_id,
            "tenant": grant.tenant,
            "scope": " ".join(grant.scopes),
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime_seconds,
            "jti": secrets.token_hex(8),
        }
        key = self._keys[self._signing_kid]
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": self._signing_kid, "typ": "at+jwt"})

    def owns(self, token: str) -> bool:
        """Whether the token claims to be one of ours (HS256, a known ``kid``); says nothing about its validity."""
        if token in self._verified:
            return True
        if not looks_like_jwt(token):
            return False
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return False
        return header.get("alg") == ALGORITHM and header.get("kid") in self._keys

    def verify(self, token: str) -> AccessGrant:
        """The grant of a token signed by one of our keys, unexpired, for our audience; else a plain 401.

        The times are checked here rather than by PyJWT, against the injectable clock, and only as integers
        within our own lifetimes (a string or ``1e300`` is no date).
        """
        remembered = self._verified.get(token)
        if remembered is not None:
            grant, issued, expires = remembered
            if not issued - LEEWAY_SECONDS <= self._clock() <= expires + LEEWAY_SECONDS:
                raise _rejected()
            return grant
        try:
            key = self._keys[jwt.get_unverified_header(token)["kid"]]
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={
                    "require": ["exp", "iat", "iss", "aud", "sub"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except (jwt.PyJWTError, KeyError, TypeError):
            raise _rejected() from None
        issued, expires, now = claims["iat"], claims["exp"], self._clock()
        if type(issued) is not int or type(expires) is not int or not 0 < expires - issued <= MAX_LIFETIME_SECONDS:
            raise _rejected()
        if not issued - LEEWAY_SECONDS <= now <= expires + LEEWAY_SECONDS:
            raise _rejected()
        tenant, client_id, scope = claims.get("tenant"), claims.get("client_id"), claims.get("scope", "")
        if not isinstance(tenant, str) or not TENANT_NAME.fullmatch(tenant) or not isinstance(scope, str):
            raise _rejected()
        if not isinstance(client_id, str) or client_id != claims["sub"]:
            raise _rejected()
        grant = AccessGrant(tenant, client_id, tuple(scope.split()))
        if len(self._verified) >= MAX_REMEMBERED:
            self._verified.clear()
        self._verified[token] = (grant, issued, expires)
        return grant


def _rejected() -> ScimError:
    return unauthorized()
