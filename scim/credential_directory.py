"""The request path's view of the stored credentials: one read of the credentials partition, cached for
:data:`CACHE_SECONDS`, so a credential added, rotated or revoked with ``python -m scim tenants`` takes effect on every
instance within that time, without a restart and without a storage read per request.

A presented secret costs one scrypt hash (in a worker thread, so other requests keep running) the first time this
process sees it; after that, its SHA-256 is remembered in memory and the request pays a dictionary lookup. Every use,
remembered or not, is checked against the current snapshot, so a revoked or expired credential stops working when
the snapshot that no longer holds it (or holds its expiry) is read.
"""

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from scim import errors
from scim.credentials import BEARER_PREFIX, CLIENT_SECRET_PREFIX, Credential, secret_id, utc_now, verify_secret
from scim.store import retries
from scim.store.contract import StoreUnavailable
from scim.store.credentials import CredentialStore

log = logging.getLogger("scim.auth")

CACHE_SECONDS = 30.0
"""How long a snapshot of the stored credentials is used: the longest a revocation takes to reach every instance."""
REFRESH_BUDGET_SECONDS = 5.0
RETRY_AFTER_FAILURE_SECONDS = 5.0
"""While storage fails, the previous snapshot keeps serving and a new read is tried at most this often."""
TOUCH_INTERVAL_SECONDS = 3600.0
"""``lastUsed`` of a bearer secret is written at most once an hour per instance: one write, not one per request."""
MAX_REMEMBERED = 10_000


@dataclass(frozen=True)
class _Snapshot:
    tenants: frozenset[str] = frozenset()
    credentials: dict[str, Credential] = field(default_factory=dict)


class CredentialDirectory:
    """Stored credentials by key, refreshed every :data:`CACHE_SECONDS`; one per process."""

    def __init__(
        self,
        store: CredentialStore,
        *,
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self._ttl = ttl
        self._clock = clock
        self._now = now
        self._snapshot: _Snapshot | None = None
        self._read_at = float("-inf")
        self._next_try = float("-inf")
        self._lock = asyncio.Lock()
        self._verified: dict[bytes, str] = {}
        self._touched: dict[str, float] = {}

    async def snapshot(self) -> _Snapshot:
        """The current snapshot; a 503 only if storage fails and this process has never read one."""
        if self._snapshot is not None and self._clock() - self._read_at < self._ttl:
            return self._snapshot
        async with self._lock:
            now = self._clock()
            fresh = self._snapshot is not None and now - self._read_at < self._ttl
            if not fresh and now >= self._next_try:
                await self._refresh(now)
        if self._snapshot is None:
            raise errors.unavailable()
        return self._snapshot

    async def _refresh(self, now: float) -> None:
        try:
            with retries.request_budget(REFRESH_BUDGET_SECONDS):
                tenants, credentials = await self.store.all_rows()
        except StoreUnavailable:
            self._next_try = now + RETRY_AFTER_FAILURE_SECONDS
            log.warning(
                "could not read the stored credentials; %s", "using the last snapshot" if self._snapshot else "none yet"
            )
            return
        self._snapshot = _Snapshot(frozenset(tenants), {credential.key: credential for credential in credentials})
        self._read_at = now

    def invalidate(self) -> None:
        """Read storage again on next use (tests, and the admin API when it shares the process)."""
        self._read_at = float("-inf")
        self._next_try = float("-inf")

    async def bearer_tenant(self, presented: str) -> str | None:
        """The tenant of a stored bearer secret, if ``presented`` is one that is neither revoked nor expired."""
        credential_id = secret_id(presented, BEARER_PREFIX)
        if credential_id is None:
            return None
        credential = await self._verified_credential(f"secret:{credential_id}", presented)
        if credential is None:
            return None
        await self._touch(credential)
        return credential.tenant

    async def client_with_secret(self, client_id: str, presented: str) -> Credential | None:
        """The OAuth client whose id is ``client_id``, if ``presented`` is one of its live secrets."""
        credential_id = secret_id(presented, CLIENT_SECRET_PREFIX)
        client = await self.client(client_id, "client")
        if credential_id is None or client is None:
            return None
        secret = await self._verified_credential(f"client_secret:{client_id}:{credential_id}", presented)
        if secret is None or secret.tenant != client.tenant:
            return None
        return client

    async def client(self, client_id: str, kind: str) -> Credential | None:
        """A live ``client`` or ``federation`` by client id."""
        credential = (await self.snapshot()).credentials.get(f"{kind}:{client_id}")
        if credential is None or credential.expired(self._now()):
            return None
        return credential

    async def grants(self, tenant: str, client_id: str) -> bool:
        """Whether an access token issued to ``client_id`` for ``tenant`` may still be used (not revoked since)."""
        for kind in ("client", "federation"):
            credential = await self.client(client_id, kind)
            if credential is not None:
                return credential.tenant == tenant
        return False

    async def _verified_credential(self, key: str, presented: str) -> Credential | None:
        credential = (await self.snapshot()).credentials.get(key)
        if credential is None or credential.expired(self._now()) or not credential.secret_hash:
            return None
        fingerprint = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        if self._verified.get(fingerprint) == key:
            return credential
        if not await asyncio.to_thread(verify_secret, presented, credential.secret_hash):
            return None
        if len(self._verified) >= MAX_REMEMBERED:
            self._verified.clear()
        self._verified[fingerprint] = key
        return credential

    async def _touch(self, credential: Credential) -> None:
        now = self._clock()
        if now - self._touched.get(credential.key, float("-inf")) < TOUCH_INTERVAL_SECONDS:
            return
        self._touched[credential.key] = now
        await self.record_use(credential)

    async def record_use(self, credential: Credential) -> None:
        """Best effort: a failed ``lastUsed`` write never fails the request."""
        try:
            with retries.request_budget(REFRESH_BUDGET_SECONDS):
                await self.store.touch(credential, self._now())
        except StoreUnavailable:
            log.info("could not record the last use of credential %s", credential.key)
