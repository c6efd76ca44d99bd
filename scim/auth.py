"""Who is calling: the shared bearer secrets from ``SCIM_BEARER_TOKENS``, each bound to a tenant."""

import hmac
from collections.abc import Sequence

from scim.errors import unauthorized

MAX_TOKEN_LENGTH = 4096


def authenticate(authorization: str | None, tokens: Sequence[tuple[str, str]]) -> str:
    """The tenant whose token the request carries, or a 401 that does not say which check failed.

    Every configured token is compared, in constant time, whatever matched first, so timing reveals neither
    the token nor how many are configured.
    """
    if not authorization:
        raise unauthorized()
    scheme, _, presented = authorization.strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented or len(presented) > MAX_TOKEN_LENGTH:
        raise unauthorized()
    candidate = presented.encode("utf-8")
    tenant: str | None = None
    for token_tenant, token in tokens:
        if hmac.compare_digest(candidate, token.encode("utf-8")) and tenant is None:
            tenant = token_tenant
    if tenant is None:
        raise unauthorized()
    return tenant
