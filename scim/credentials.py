"""Per-tenant credentials kept in storage: what each kind is, how its secret looks, and how the secret is hashed.

Kinds (one row each, see :mod:`scim.store.credentials` for the layout):

- ``secret``: a bearer secret (Entra's "Secret Token" field) that names its tenant without an app setting;
- ``client``: an OAuth 2.0 client (Entra's "OAuth 2.0 client credentials"), with ``client_secret`` rows of its own
  so a secret can be rotated while the client id stays;
- ``federation``: a Workload Identity Federation trust: a client id whose token requests carry an assertion Entra
  signed for one Entra tenant, subject and audience.

Secrets are 256 random bits and carry their row's id (``scimb_<id>_<random>``, ``scimc_<id>_<random>``), so a
presented secret is checked against exactly one stored hash, never against every tenant's. The hash is scrypt with a
per-secret salt: slow enough that a stolen table does not give the secrets up, and the request path pays it once per
secret per process (a verified secret is remembered by its SHA-256 in memory, never on disk).
"""

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

BEARER_PREFIX = "scimb_"
CLIENT_SECRET_PREFIX = "scimc_"  # noqa: S105 (a prefix, not a secret)
_ID_HEX = 16
_SECRET_BYTES = 32
_SECRET_SHAPE = re.compile(r"scim[bc]_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")
TENANT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,200}")
"""RFC 6749 §3.3 scope-token: printable ASCII except space, ``"`` and ``\\``."""
DEFAULT_SCOPES = ("scim",)

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
"""scrypt's interactive-login parameters (16 MiB, tens of milliseconds per hash)."""
_SCRYPT_SALT_BYTES = 16


@dataclass(frozen=True)
class Credential:
    """One stored credential row, as the request path and the admin CLI see it.

    ``key`` is the row's identity (``secret:<id>``, ``client:<client id>``, ``client_secret:<client id>:<id>``,
    ``federation:<client id>``); ``secret_hash`` is empty for kinds without a secret.
    """

    kind: str
    credential_id: str
    tenant: str
    created: datetime
    expires: datetime | None = None
    secret_hash: str = field(default="", repr=False)
    client_id: str = ""
    scopes: tuple[str, ...] = ()
    entra_tenant: str = ""
    subject: str = ""
    audience: str = ""
    last_used: datetime | None = None

    @property
    def key(self) -> str:
        if self.kind == "client_secret":
            return f"{self.kind}:{self.client_id}:{self.credential_id}"
        return f"{self.kind}:{self.credential_id}"

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires


def new_id() -> str:
    return secrets.token_hex(_ID_HEX // 2)


def new_secret(prefix: str) -> tuple[str, str]:
    """A fresh ``(id, secret)``; the secret embeds the id so it can be looked up without trying every hash."""
    credential_id = new_id()
    return credential_id, f"{prefix}{credential_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"


def secret_id(presented: str, prefix: str) -> str | None:
    """The row id a presented secret names, if it has the shape of one of ours with this prefix."""
    if not presented.startswith(prefix) or _SECRET_SHAPE.fullmatch(presented) is None:
        return None
    return presented[len(prefix) : len(prefix) + _ID_HEX]


def hash_secret(secret: str) -> str:
    """``scrypt$N$r$p$<salt>$<hash>``, parameters stored with the hash so they can be raised later."""
    salt = secrets.token_bytes(_SCRYPT_SALT_BYTES)
    digest = _scrypt(secret, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time comparison of the presented secret's scrypt hash with the stored one."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest + "==")
        actual = _scrypt(secret, base64.urlsafe_b64decode(salt + "=="), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def utc_now() -> datetime:
    return datetime.now(UTC)
