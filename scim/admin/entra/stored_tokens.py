"""One tenant's bearer secrets in the endpoint's own credentials table (``python -m scim tenants``), as a token store
for ``entra rotate``: the endpoint sees a change within 30 s, with no restart, so rotation needs no app restart."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from scim.admin.entra.provisioning import ProvisioningError

if TYPE_CHECKING:
    from scim.admin.tenants import TenantAdmin

T = TypeVar("T")


class StoredTokens:
    """Talks to storage through :class:`scim.admin.tenants.TenantAdmin`, with the same settings as
    ``python -m scim tenants`` (SCIM_STORAGE_CONNECTION_STRING or SCIM_STORAGE_TABLE_URI, SCIM_TABLE_PREFIX)."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self._issued = ""
        self._before: list[str] = []

    @property
    def where(self) -> str:
        return f"the endpoint's stored credentials of tenant {self.tenant}"

    def issue(self) -> tuple[str, int]:
        async def issue(admin: "TenantAdmin") -> tuple[str, int]:
            self._before = await self._bearer_ids(admin)
            issued = await admin.create_secret(self.tenant)
            self._issued = issued.credential_id
            return issued.secret, len(self._before)

        return self._run(issue)

    def withdraw(self) -> None:
        async def withdraw(admin: "TenantAdmin") -> None:
            await admin.revoke(self._issued)

        self._run(withdraw)

    def retire_others(self) -> int:
        async def retire(admin: "TenantAdmin") -> int:
            for credential_id in self._before:
                await admin.revoke(credential_id)
            return len(self._before)

        return self._run(retire)

    async def _bearer_ids(self, admin: "TenantAdmin") -> list[str]:
        for summary in await admin.list_tenants():
            if summary.name == self.tenant:
                return [c.credential_id for c in summary.credentials if c.kind == "secret"]
        return []

    def _run(self, work: Callable[["TenantAdmin"], Awaitable[T]]) -> T:
        from scim.admin.tenants import AdminError, TenantAdmin
        from scim.settings import ConfigurationError

        async def run() -> T:
            async with TenantAdmin.from_environment() as admin:
                return await work(admin)

        try:
            return asyncio.run(run())
        except (AdminError, ConfigurationError) as problem:
            raise ProvisioningError(str(problem)) from None
