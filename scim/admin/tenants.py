"""Tenants and their stored credentials, as a Python API: what ``python -m scim tenants`` runs, and what other admin
tools (``python -m scim entra rotate``) call to add, rotate and revoke a tenant's credentials.

Example (a rotation with no failed request)::

    async with TenantAdmin.from_environment() as admin:
        new = await admin.create_secret("acme")           # new.secret is shown once, never stored
        ...                                               # give new.secret to Entra, Test Connection
        await admin.revoke(old_id)                        # the old secret stops working within 30 s

Every method returns what was created; secrets appear only in the returned :class:`IssuedSecret` and nowhere else
(no log line, no stored row: rows hold scrypt hashes). Changes reach the running endpoint within
:data:`scim.credential_directory.CACHE_SECONDS`.
"""

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import TracebackType

from scim.credentials import (
    BEARER_PREFIX,
    CLIENT_SECRET_PREFIX,
    DEFAULT_SCOPES,
    SCOPE_TOKEN,
    TENANT_NAME,
    Credential,
    hash_secret,
    new_secret,
    utc_now,
)
from scim.settings import ConfigurationError, StorageSettings
from scim.store.credentials import CredentialExists, CredentialStore
from scim.store.tables import TableStore
from scim.store.tenant_data import delete_tenant_data

DEFAULT_CLIENT_SECRET_DAYS = 730
"""Microsoft's gallery rules ask for client secrets that expire within one to three years."""
MAX_SECRET_DAYS = 3 * 366
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class AdminError(ValueError):
    """A request the admin can correct (unknown tenant, bad value); the message says what to change."""


@dataclass(frozen=True)
class IssuedSecret:
    """A secret just created: ``secret`` is its only copy."""

    credential_id: str
    tenant: str
    secret: str = field(repr=False)
    expires: datetime | None
    client_id: str = ""
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TenantSummary:
    name: str
    credentials: tuple[Credential, ...]


class TenantAdmin:
    """Manages the credentials table through one store; use as an async context manager to close it."""

    def __init__(self, store: TableStore, owns_store: bool = False) -> None:
        self._table_store = store
        self._owns_store = owns_store
        self.credentials = CredentialStore(store)

    @classmethod
    def from_environment(cls) -> "TenantAdmin":
        """The deployment's storage, from the same settings the endpoint reads (no token settings needed)."""
        storage = StorageSettings.read_environment()
        storage.check()
        try:
            store = TableStore.from_settings(storage.connection_string, storage.table_uri, storage.table_prefix)
        except ValueError as problem:
            raise ConfigurationError("SCIM_STORAGE_CONNECTION_STRING is not usable") from problem
        return cls(store, owns_store=True)

    async def __aenter__(self) -> "TenantAdmin":
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._owns_store:
            await self._table_store.close()

    async def add_tenant(self, name: str, share_entra_tenant_data: bool = False) -> bool:
        """Register a tenant (idempotent); True if it is new.

        A name that is an Entra tenant id is the tenant Entra-issued tokens of that Entra tenant act as (JWT mode), so
        its stored credentials would reach that data: refused unless ``share_entra_tenant_data`` says it is meant,
        as ``SCIM_SHARE_ENTRA_TENANT_DATA`` does for ``SCIM_BEARER_TOKENS``.
        """
        if not TENANT_NAME.fullmatch(name):
            raise AdminError("a tenant name is 1 to 64 letters, digits, '_' or '-'")
        if _GUID.fullmatch(name.lower()) and not share_entra_tenant_data:
            raise AdminError(
                f"{name} is named like an Entra tenant id, so Entra-issued tokens of that tenant would reach its data; "
                "choose another name, or pass --share-entra-tenant-data if sharing is intended"
            )
        return await self.credentials.add_tenant(name)

    async def list_tenants(self) -> list[TenantSummary]:
        tenants, credentials = await self.credentials.all_rows()
        names = sorted(set(tenants) | {credential.tenant for credential in credentials})
        return [
            TenantSummary(name, tuple(sorted((c for c in credentials if c.tenant == name), key=lambda c: c.key)))
            for name in names
        ]

    async def create_secret(
        self, tenant: str, expires: datetime | None = None, retire_others_after: timedelta | None = None
    ) -> IssuedSecret:
        """A new bearer secret (Entra's "Secret Token"). With ``retire_others_after``, the tenant's other bearer
        secrets expire that long from now: a rotation that leaves time to switch Entra over."""
        await self._known(tenant)
        now = utc_now()
        _check_expiry(expires, now)
        credential_id, secret = new_secret(BEARER_PREFIX)
        credential = Credential("secret", credential_id, tenant, now, expires, hash_secret(secret))
        await self.credentials.insert(credential)
        if retire_others_after is not None:
            retire_at = now + retire_others_after
            for other in await self._credentials(tenant, "secret"):
                if other.credential_id != credential_id and (other.expires is None or other.expires > retire_at):
                    await self.credentials.upsert(replace(other, expires=retire_at))
        return IssuedSecret(credential_id, tenant, secret, expires)

    async def create_oauth_client(
        self,
        tenant: str,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        expires: datetime | None = None,
        client_id: str | None = None,
    ) -> IssuedSecret:
        """A new OAuth client with its first secret, or (``client_id`` of an existing client) one more secret for
        it, so a secret can be rotated without changing the client id Entra holds."""
        await self._known(tenant)
        now = utc_now()
        expires = expires or now + timedelta(days=DEFAULT_CLIENT_SECRET_DAYS)
        _check_expiry(expires, now)
        if client_id is None:
            client_id = str(uuid.uuid4())
            scopes = _checked_scopes(scopes)
            await self.credentials.insert(Credential("client", client_id, tenant, now, scopes=scopes))
        else:
            existing = await self._find(f"client:{client_id}")
            if existing is None or existing.tenant != tenant:
                raise AdminError(f"tenant {tenant} has no OAuth client {client_id}")
            scopes = existing.scopes
        credential_id, secret = new_secret(CLIENT_SECRET_PREFIX)
        row = Credential("client_secret", credential_id, tenant, now, expires, hash_secret(secret), client_id=client_id)
        await self.credentials.insert(row)
        return IssuedSecret(credential_id, tenant, secret, expires, client_id, scopes)

    async def federate(
        self,
        tenant: str,
        entra_tenant: str,
        subject: str,
        audience: str,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        client_id: str | None = None,
    ) -> Credential:
        """A Workload Identity Federation trust: the client id to give Entra, bound to the Entra tenant, subject and
        audience Entra's provisioning page shows."""
        await self._known(tenant)
        entra_tenant = entra_tenant.lower()
        if not _GUID.fullmatch(entra_tenant):
            raise AdminError("--entra-tenant is the Entra tenant id (a GUID)")
        if not subject or not audience or len(subject) > 256 or len(audience) > 256:
            raise AdminError("--subject and --audience are required (as Entra shows them), at most 256 characters")
        client_id = client_id or str(uuid.uuid4())
        if not _CLIENT_ID.fullmatch(client_id):
            raise AdminError("a client id is 1 to 128 letters, digits, '.', '_', ':' or '-'")
        federation = Credential(
            "federation",
            client_id,
            tenant,
            utc_now(),
            scopes=_checked_scopes(scopes),
            entra_tenant=entra_tenant,
            subject=subject,
            audience=audience,
        )
        try:
            await self.credentials.insert(federation)
        except CredentialExists:
            raise AdminError(f"the client id {client_id} is taken; choose another or revoke it first") from None
        return federation

    async def revoke(self, credential_id: str) -> list[str]:
        """Delete a bearer secret, a client secret, a client (with its secrets) or a federation, by its id; returns
        the keys deleted (empty if nothing has that id)."""
        _, credentials = await self.credentials.all_rows()
        doomed = [
            c.key
            for c in credentials
            if c.credential_id == credential_id or (c.kind == "client_secret" and c.client_id == credential_id)
        ]
        await self.credentials.delete(doomed)
        return doomed

    async def remove_tenant(self, tenant: str, delete_data: bool = False) -> tuple[int, int]:
        """Revoke every credential of the tenant and forget it; with ``delete_data`` also delete its Users, Groups
        and memberships. Returns (credentials revoked, data rows deleted)."""
        if not TENANT_NAME.fullmatch(tenant):
            raise AdminError("a tenant name is 1 to 64 letters, digits, '_' or '-'")
        _, credentials = await self.credentials.all_rows()
        doomed = [c.key for c in credentials if c.tenant == tenant]
        await self.credentials.delete(doomed)
        await self.credentials.remove_tenant_row(tenant)
        rows = await delete_tenant_data(self._table_store, tenant) if delete_data else 0
        return len(doomed), rows

    async def prune_assertions(self) -> int:
        """Delete the records of used WIF client assertions that have expired; returns how many."""
        return await self.credentials.delete_expired_assertions(utc_now())

    async def _known(self, tenant: str) -> None:
        tenants, _ = await self.credentials.all_rows()
        if tenant not in tenants:
            raise AdminError(f"no tenant {tenant}: add it first with `python -m scim tenants add {tenant}`")

    async def _credentials(self, tenant: str, kind: str) -> list[Credential]:
        _, credentials = await self.credentials.all_rows()
        return [c for c in credentials if c.tenant == tenant and c.kind == kind]

    async def _find(self, key: str) -> Credential | None:
        _, credentials = await self.credentials.all_rows()
        return next((c for c in credentials if c.key == key), None)


def _check_expiry(expires: datetime | None, now: datetime) -> None:
    if expires is None:
        return
    if expires <= now:
        raise AdminError("the expiry must be in the future")
    if expires > now + timedelta(days=MAX_SECRET_DAYS):
        raise AdminError("a secret may live at most three years")


def _checked_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    checked = tuple(dict.fromkeys(scope for scope in scopes if scope))
    if not checked or not all(SCOPE_TOKEN.fullmatch(scope) for scope in checked):
        raise AdminError("scopes are one or more RFC 6749 scope tokens (printable ASCII, no spaces or quotes)")
    return checked
