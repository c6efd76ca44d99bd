"""Who is calling: a shared bearer secret from ``SCIM_BEARER_TOKENS`` (plain or stored as a SHA-256 digest), a bearer
secret stored with ``python -m scim tenants``, or an Entra-issued JWT from a tenant in ``SCIM_ENTRA_TENANT_IDS``;
whichever, the answer is the tenant the caller acts for."""

import hashlib
import hmac
from collections.abc import Sequence
from typing import TYPE_CHECKING

from scim.bearer import MAX_TOKEN_LENGTH, bearer_token, looks_like_jwt
from scim.credentials import BEARER_PREFIX
from scim.errors import unauthorized
from scim.settings import MIN_TOKEN_LENGTH, Settings

if TYPE_CHECKING:  # imported lazily: PyJWT, cryptography and aiohttp cost ~150 ms of cold start, for JWT mode only
    from scim.access_tokens import AccessTokens
    from scim.credential_directory import CredentialDirectory
    from scim.entra_tokens import EntraTokenValidator

__all__ = ["MAX_TOKEN_LENGTH", "Authenticator", "bearer_token", "looks_like_jwt", "match_secret"]


class Authenticator:
    """Combines both modes for one process: shared secrets first (constant time), then, for a JWT-shaped token and
    only if JWT mode is configured, Entra token validation (which may fetch signing keys, hence ``async``)."""

    def __init__(
        self,
        secret_digests: Sequence[tuple[str, bytes]],
        entra: "EntraTokenValidator | None" = None,
        directory: "CredentialDirectory | None" = None,
        access_tokens: "AccessTokens | None" = None,
    ) -> None:
        self._secret_digests = tuple(secret_digests)
        self._entra = entra
        self._directory = directory
        self._access_tokens = access_tokens

    @classmethod
    def from_settings(cls, settings: Settings, directory: "CredentialDirectory | None" = None) -> "Authenticator":
        """Build once per process; the JWT validator holds the key cache and (lazily) its HTTP session, the
        directory (absent in unit tests without storage) the cached stored credentials."""
        entra = None
        if settings.entra_enabled:
            from scim.entra_tokens import EntraTokenValidator

            entra = EntraTokenValidator(
                settings.entra_tenant_ids,
                settings.entra_audiences,
                settings.entra_metadata_url,
                settings.entra_app_ids,
            )
        access_tokens = None
        if settings.token_signing_keys:
            from scim.access_tokens import AccessTokens

            access_tokens = AccessTokens(settings.token_signing_keys, settings.access_token_minutes)
        return cls(settings.secret_digests, entra, directory, access_tokens)

    async def authenticate(self, authorization: str | None) -> str:
        """The tenant the request's bearer token belongs to, or a 401 that does not say which check failed.

        A JWT-shaped token is accepted by the shared-secret path only if it literally is a configured secret. An
        HS256 token whose ``kid`` is one of our signing keys is one of our access tokens (``/oauth2/token``) and
        never goes to Entra-token validation, which accepts RS256 only.
        """
        presented = bearer_token(authorization)
        if len(presented) < MIN_TOKEN_LENGTH:  # a sha256: entry may be the digest of a short token: never match one
            raise unauthorized()
        tenant = match_secret(presented, self._secret_digests)
        if tenant is not None:
            return tenant
        if self._directory is not None and presented.startswith(BEARER_PREFIX):
            tenant = await self._directory.bearer_tenant(presented)
            if tenant is not None:
                return tenant
            raise unauthorized()
        if self._access_tokens is not None and self._access_tokens.owns(presented):
            grant = self._access_tokens.verify(presented)
            if self._directory is not None and await self._directory.grants(grant.tenant, grant.client_id):
                return grant.tenant
            raise unauthorized()  # a revoked client's token, or no directory to tell whether it was revoked
        if self._entra is not None and looks_like_jwt(presented):
            return await self._entra.validate(presented)
        raise unauthorized()

    async def close(self) -> None:
        if self._entra is not None:
            await self._entra.close()


def match_secret(presented: str, secret_digests: Sequence[tuple[str, bytes]]) -> str | None:
    """The tenant of the configured secret the token is, if any.

    The presented token is hashed once and its digest compared, in constant time, with every configured digest,
    whatever matched first, so timing reveals neither the token nor which entry (or how many) matched.
    """
    # surrogatepass: a header may carry text no configured secret can hold; it must fail to match, not to encode
    candidate = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
    tenant: str | None = None
    for token_tenant, digest in secret_digests:
        if hmac.compare_digest(candidate, digest) and tenant is None:
            tenant = token_tenant
    return tenant
