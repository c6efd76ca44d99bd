"""The endpoint's bearer-token secret in Key Vault, read and written with the signed-in Azure identity
(``DefaultAzureCredential``: az login, managed identity, or the AZURE_* environment of a CI job)."""


def _client(vault: str):  # noqa: ANN202 (the SDK type is imported lazily, only when Key Vault is used)
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient

    url = vault if vault.startswith("https://") else f"https://{vault}.vault.azure.net"
    return SecretClient(url, DefaultAzureCredential())


def read_secret(vault: str, name: str) -> str:
    return str(_client(vault).get_secret(name).value or "")


def write_secret(vault: str, name: str, value: str) -> None:
    """A new version of the secret; the app's unversioned Key Vault reference picks it up on restart."""
    _client(vault).set_secret(name, value, content_type="SCIM bearer tokens")
