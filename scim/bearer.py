"""What a presented credential looks like on the wire: the token of an ``Authorization: Bearer`` header, and whether
that token has a JWT's shape.

Kept apart from the checks themselves so that every way of verifying a token (shared secrets, Entra-issued JWTs,
our own access tokens, WIF client assertions) reads the header the same way, and none imports another to do so.
"""

import re

from scim.errors import unauthorized

MAX_TOKEN_LENGTH = 4096
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def looks_like_jwt(token: str) -> bool:
    """Three base64url segments separated by dots (the signature may be empty, as in ``alg: none``)."""
    return _JWT_SHAPE.fullmatch(token) is not None


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive), or a 401."""
    if not authorization:
        raise unauthorized()
    scheme, _, presented = authorization.strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented or len(presented) > MAX_TOKEN_LENGTH:
        raise unauthorized()
    return presented
