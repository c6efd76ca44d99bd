"""Configuration, read once from the environment (Functions app settings, or local.settings.json Values locally)."""

import os
import re
from dataclasses import dataclass, field
from functools import cache

DEFAULT_TENANT = "default"
_TENANT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TABLE_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,39}")


class ConfigurationError(RuntimeError):
    """The app settings cannot describe a safe endpoint; the endpoint refuses to serve rather than run open."""


@dataclass(frozen=True)
class Settings:
    """Every setting the endpoint reads; ``local.settings.sample.json`` and the README document each one."""

    storage_connection_string: str | None
    storage_table_uri: str | None
    bearer_tokens: tuple[tuple[str, str], ...] = field(repr=False)
    table_prefix: str = "scim"

    @classmethod
    def from_environment(cls) -> "Settings":
        """Read and validate the settings, so that a misconfiguration is reported once, clearly."""
        env = os.environ
        settings = cls(
            storage_connection_string=env.get("SCIM_STORAGE_CONNECTION_STRING") or None,
            storage_table_uri=(env.get("SCIM_STORAGE_TABLE_URI") or "").rstrip("/") or None,
            bearer_tokens=parse_bearer_tokens(env.get("SCIM_BEARER_TOKENS", "")),
            table_prefix=env.get("SCIM_TABLE_PREFIX") or "scim",
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse settings that would leave the endpoint open or pointing nowhere."""
        if not self.bearer_tokens:
            raise ConfigurationError("SCIM_BEARER_TOKENS is empty: the endpoint refuses every request until it is set")
        if not (self.storage_connection_string or self.storage_table_uri):
            raise ConfigurationError("set SCIM_STORAGE_CONNECTION_STRING or SCIM_STORAGE_TABLE_URI")
        if not _TABLE_PREFIX.fullmatch(self.table_prefix):
            raise ConfigurationError("SCIM_TABLE_PREFIX must be a letter then up to 39 letters or digits")


def parse_bearer_tokens(raw: str) -> tuple[tuple[str, str], ...]:
    """Parse ``[tenant=]token`` entries, comma-separated; a bare token belongs to the default tenant.

    Several tokens at once let an admin rotate one without downtime.
    """
    entries: list[tuple[str, str]] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        tenant, sep, token = item.partition("=")
        if not sep or not _TENANT_NAME.fullmatch(tenant):
            tenant, token = DEFAULT_TENANT, item
        if item.startswith("@Microsoft.KeyVault("):
            raise ConfigurationError("SCIM_BEARER_TOKENS holds an unresolved Key Vault reference")
        if len(token) < 16:
            raise ConfigurationError("every bearer token must be at least 16 characters long")
        entries.append((tenant, token))
    return tuple(entries)


@cache
def current_settings() -> Settings:
    """The process's settings, read on first use rather than at import (import time is cold-start time)."""
    return Settings.from_environment()
