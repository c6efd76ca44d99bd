"""Credential rows in Table Storage: table ``<prefix>Credentials``, apart from every tenant's data.

Layout (the README's data-model section lists it):

- PartitionKey ``credential``: one row per tenant (RowKey ``tenant:<name>``) and per credential (RowKey
  ``secret:<id>``, ``client:<client id>``, ``client_secret:<client id>:<id>``, ``federation:<client id>``), with
  ``tenant``, ``created``, ``expires``, ``lastUsed`` and the kind's own properties; secrets only as scrypt hashes.
  The request path reads this whole partition at once (it is small: a few rows per tenant) and caches it.
- PartitionKey ``assertion``: one row per Workload Identity Federation client assertion used (RowKey
  ``<entra tenant>:<sha256 of its jti>``), inserted, never updated, so a second use of one assertion fails atomically
  however many instances serve.

No key holds a value a caller sent unhashed except tenant names and client ids, which the admin chose and this
module checks for Table Storage's forbidden key characters.
"""

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from scim.credentials import Credential
from scim.store import entity_group, retries
from scim.store.contract import StoreError, StoreUnavailable
from scim.store.tables import MAX_TRANSACTION_OPERATIONS, TableStore

TABLE_SUFFIX = "Credentials"
CREDENTIAL_PARTITION = "credential"
ASSERTION_PARTITION = "assertion"
TENANT_PREFIX = "tenant:"
_FORBIDDEN_KEY_CHARACTERS = set("/\\#?") | {chr(code) for code in range(0x20)} | {chr(0x7F)}


class CredentialExists(StoreError):
    """A credential with this id (a client id the admin chose) is stored already."""


class CredentialStore:
    """Reads and writes credential rows; one per process, sharing the resource store's HTTP session."""

    def __init__(self, store: TableStore) -> None:
        self._store = store
        self._table: TableClient | None = None

    async def _client(self) -> TableClient:
        if self._table is None:
            self._table = await self._store.companion_table(TABLE_SUFFIX)
        return self._table

    async def _run(self, call: Any) -> Any:
        try:
            return await retries.Attempts(retries.REQUEST_BUDGET_SECONDS).run(call)
        except (ResourceExistsError, ResourceNotFoundError):
            raise
        except AzureError as exc:
            raise StoreUnavailable() from exc

    async def all_rows(self) -> tuple[list[str], list[Credential]]:
        """Every tenant name and every credential, in one partition query."""
        table = await self._client()

        async def read() -> list[dict[str, Any]]:
            rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": CREDENTIAL_PARTITION})
            return [dict(row) async for row in rows]

        tenants: list[str] = []
        credentials: list[Credential] = []
        for row in await self._run(read):
            row_key = str(row["RowKey"])
            if row_key.startswith(TENANT_PREFIX):
                tenants.append(row_key[len(TENANT_PREFIX) :])
            else:
                credentials.append(_credential(row))
        return tenants, credentials

    async def add_tenant(self, name: str) -> bool:
        """Whether the tenant is new (adding an existing one is harmless)."""
        table = await self._client()
        entity = {"PartitionKey": CREDENTIAL_PARTITION, "RowKey": TENANT_PREFIX + _key_part(name), "tenant": name}
        try:
            await self._run(lambda: table.create_entity(entity))
        except ResourceExistsError:
            return False
        return True

    async def insert(self, credential: Credential) -> None:
        """A new row; an id that exists already fails (ids are random, client ids the admin's choice)."""
        table = await self._client()
        entity = _entity(credential)
        try:
            await self._run(lambda: table.create_entity(entity))
        except ResourceExistsError:
            raise CredentialExists(credential.key) from None

    async def upsert(self, credential: Credential) -> None:
        table = await self._client()
        entity = _entity(credential)
        await self._run(lambda: table.upsert_entity(entity, mode=UpdateMode.REPLACE))

    async def touch(self, credential: Credential, when: datetime) -> None:
        """Record ``lastUsed``: a merge, which fails on a missing row, so a concurrent revocation is not undone."""
        table = await self._client()
        entity = {"PartitionKey": CREDENTIAL_PARTITION, "RowKey": credential.key, "lastUsed": when}
        try:
            await self._run(lambda: table.update_entity(entity, mode=UpdateMode.MERGE))
        except (ResourceNotFoundError, ResourceExistsError):
            return

    async def delete(self, keys: Iterable[str]) -> None:
        table = await self._client()
        for row_key in keys:
            await self._run(lambda row_key=row_key: table.delete_entity(CREDENTIAL_PARTITION, row_key))

    async def remove_tenant_row(self, name: str) -> None:
        await self.delete([TENANT_PREFIX + _key_part(name)])

    async def delete_expired_assertions(self, now: datetime) -> int:
        """Delete the used-assertion rows whose assertion has expired (it fails its ``exp`` check anyway, so
        forgetting it re-opens no replay); returns how many."""
        table = await self._client()

        async def expired() -> list[str]:
            rows = table.query_entities(
                "PartitionKey eq @pk and expires lt @now",
                parameters={"pk": ASSERTION_PARTITION, "now": now},
                select=["RowKey"],
            )
            return [str(row["RowKey"]) async for row in rows]

        row_keys = await self._run(expired)
        for start in range(0, len(row_keys), MAX_TRANSACTION_OPERATIONS):
            batch = [
                ("delete", {"PartitionKey": ASSERTION_PARTITION, "RowKey": row_key})
                for row_key in row_keys[start : start + MAX_TRANSACTION_OPERATIONS]
            ]
            await self._run(lambda batch=batch: entity_group.submit(table, batch))
        return len(row_keys)

    async def claim_assertion(self, issuer_tenant: str, assertion_id: str, expires: datetime) -> bool:
        """Record one use of an assertion; False if it was used before (a replay), whichever instance saw it."""
        table = await self._client()
        digest = hashlib.sha256(assertion_id.encode("utf-8", "surrogatepass")).hexdigest()
        entity = {
            "PartitionKey": ASSERTION_PARTITION,
            "RowKey": f"{_key_part(issuer_tenant)}:{digest}",
            "expires": expires,
        }
        try:
            await self._run(lambda: table.create_entity(entity))
        except ResourceExistsError:
            return False
        return True


def _key_part(value: str) -> str:
    if not value or set(value) & _FORBIDDEN_KEY_CHARACTERS or len(value) > 256:
        raise ValueError("not usable in a Table Storage key")
    return value


def _entity(credential: Credential) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": CREDENTIAL_PARTITION,
        "RowKey": _key_part(credential.key),
        "kind": credential.kind,
        "credentialId": credential.credential_id,
        "tenant": credential.tenant,
        "created": credential.created,
    }
    optional = {
        "expires": credential.expires,
        "secretHash": credential.secret_hash,
        "clientId": credential.client_id,
        "scopes": " ".join(credential.scopes),
        "entraTenant": credential.entra_tenant,
        "subject": credential.subject,
        "audience": credential.audience,
        "lastUsed": credential.last_used,
    }
    entity.update({name: value for name, value in optional.items() if value})
    return entity


def _credential(row: dict[str, Any]) -> Credential:
    return Credential(
        kind=str(row["kind"]),
        credential_id=str(row["credentialId"]),
        tenant=str(row["tenant"]),
        created=row["created"],
        expires=row.get("expires"),
        secret_hash=str(row.get("secretHash", "")),
        client_id=str(row.get("clientId", "")),
        scopes=tuple(str(row.get("scopes", "")).split()),
        entra_tenant=str(row.get("entraTenant", "")),
        subject=str(row.get("subject", "")),
        audience=str(row.get("audience", "")),
        last_used=row.get("lastUsed"),
    )
