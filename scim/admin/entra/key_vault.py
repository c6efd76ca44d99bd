"""The endpoint's bearer tokens in Key Vault (the ``SCIM_BEARER_TOKENS`` secret the Bicep deployment creates and the
function app reads through a Key Vault reference): read the one to give Entra, add a new one, retire old ones.

Signed in as ``DefaultAzureCredential`` (az login, managed identity, the AZURE_* variables of a CI job), or, with
``--key-vault-auth signin``, as the same app-only identity the command uses for Graph."""

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HASHED_PREFIX = "sha256:"
NEW_TOKEN_BYTES = 48
_TENANT = re.compile(r"[A-Za-z0-9_-]{1,64}")


def split_tokens(raw: str) -> list[tuple[str | None, str]]:
    """``[tenant=]token,…`` as the endpoint parses SCIM_BEARER_TOKENS: (tenant or None for the default, token)."""
    entries: list[tuple[str | None, str]] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        tenant, sep, token = item.partition("=")
        entries.append((tenant, token) if sep and _TENANT.fullmatch(tenant) else (None, item))
    return entries


def join_tokens(entries: list[tuple[str | None, str]]) -> str:
    return ",".join(token if tenant is None else f"{tenant}={token}" for tenant, token in entries)


def plain_tokens(raw: str, tenant: str | None) -> list[str]:
    """The tenant's tokens that can be given to Entra, oldest first; hashed entries (``sha256:``) cannot."""
    return [token for who, token in split_tokens(raw) if who == tenant and not token.lower().startswith(HASHED_PREFIX)]


@dataclass
class KeyVaultTokens:
    """One tenant's tokens in the secret; every write is a new secret version, which the app's unversioned
    reference picks up when it restarts (or within 24 hours)."""

    vault: str
    name: str
    tenant: str | None
    credential: Any = None  # an azure-core TokenCredential; DefaultAzureCredential when None
    _issued: str = field(default="", repr=False)
    _before: list[str] = field(default_factory=list, repr=False)

    @property
    def where(self) -> str:
        return f"Key Vault {self.vault} secret {self.name}"

    def tokens(self) -> list[str]:
        return plain_tokens(self._read(), self.tenant)

    def issue(self) -> tuple[str, int]:
        raw = self._read()
        self._before = plain_tokens(raw, self.tenant)
        self._issued = secrets.token_urlsafe(NEW_TOKEN_BYTES)
        self._write(join_tokens([*split_tokens(raw), (self.tenant, self._issued)]))
        return self._issued, len(self._before)

    def withdraw(self) -> None:
        self._retire([self._issued])

    def retire_others(self) -> int:
        self._retire(self._before)
        return len(self._before)

    def _retire(self, tokens: list[str]) -> None:
        gone = set(tokens)
        entries = [
            (who, token) for who, token in split_tokens(self._read()) if not (who == self.tenant and token in gone)
        ]
        self._write(join_tokens(entries))

    def _client(self) -> Any:
        from azure.keyvault.secrets import SecretClient

        credential = self.credential
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        url = self.vault if self.vault.startswith("https://") else f"https://{self.vault}.vault.azure.net"
        return SecretClient(url, credential)

    def _read(self) -> str:
        return str(self._client().get_secret(self.name).value or "")

    def _write(self, value: str) -> None:
        self._client().set_secret(self.name, value, content_type="SCIM bearer tokens")


class SignInCredential:
    """An azure-core TokenCredential over the command's own app-only msal sign-in, so that a CI job needs one
    identity (granted Key Vault Secrets Officer on the vault) for Graph and Key Vault alike."""

    def __init__(self, acquire: Callable[[str], tuple[str, int]]) -> None:
        self._acquire = acquire

    def get_token(self, *scopes: str, **_options: Any) -> Any:
        from azure.core.credentials import AccessToken

        token, expires_on = self._acquire(scopes[0])
        return AccessToken(token, expires_on)
