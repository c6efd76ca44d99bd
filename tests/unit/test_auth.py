"""Bearer-token authentication: the tenant of the matching shared secret (plain or SHA-256), or a 401 that reveals
nothing; and the settings that must refuse to describe an open endpoint."""

import hashlib
import hmac

import pytest

from scim import auth
from scim.auth import Authenticator, looks_like_jwt
from scim.errors import ScimError
from scim.settings import (
    DEFAULT_ENTRA_AUDIENCES,
    DEFAULT_ENTRA_METADATA_URL,
    ConfigurationError,
    Settings,
    parse_bearer_tokens,
)

TOKENS = (("default", "first-token-0123456789"), ("acme", "second-token-0123456789"))
TENANT_ID = "0b5f4f36-3ed4-421b-b2c1-bbbfdde3b438"


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authenticator(tokens: tuple[tuple[str, str], ...] = TOKENS) -> Authenticator:
    return Authenticator.from_settings(Settings("unused", None, tokens))


@pytest.mark.parametrize(
    ("header", "tenant"),
    [
        ("Bearer first-token-0123456789", "default"),
        ("bearer second-token-0123456789", "acme"),
        ("BEARER   first-token-0123456789  ", "default"),
    ],
)
async def test_a_configured_token_authenticates_its_tenant(header, tenant):
    assert await authenticator().authenticate(header) == tenant


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic first-token-0123456789",
        "Bearer first-token-012345678",
        "Bearer first-token-01234567890",
        "Bearer x" * 2000,
        f"Bearer {sha256_hex('first-token-0123456789')}",
        f"Bearer sha256:{sha256_hex('first-token-0123456789')}",
    ],
)
async def test_anything_else_is_401_with_www_authenticate(header):
    with pytest.raises(ScimError) as raised:
        await authenticator().authenticate(header)
    assert raised.value.status == 401
    assert raised.value.headers["WWW-Authenticate"].startswith("Bearer")
    assert raised.value.detail == "Authentication required"


def test_token_entries_parse_with_and_without_tenant():
    parsed = parse_bearer_tokens(" plain-token-0123456789 , acme=acme-token-0123456789,")
    assert parsed == (("default", "plain-token-0123456789"), ("acme", "acme-token-0123456789"))


@pytest.mark.parametrize(
    "raw",
    [
        "short",
        "acme=short",
        "@Microsoft.KeyVault(SecretUri=https://v/secrets/s/)",
        "acme=@Microsoft.KeyVault(VaultName=v;SecretName=s)",
        "good-token-0123456789,@microsoft.keyvault(SecretUri=https://v/secrets/s/)",
    ],
)
def test_unsafe_token_settings_are_refused(raw):
    with pytest.raises(ConfigurationError):
        parse_bearer_tokens(raw)


# --- hashed secrets -------------------------------------------------------------------------------------------------


async def test_a_hashed_secret_accepts_the_token_it_is_the_digest_of():
    tokens = parse_bearer_tokens(f"sha256:{sha256_hex('hashed-token-0123456789')}")
    assert await authenticator(tokens).authenticate("Bearer hashed-token-0123456789") == "default"


async def test_a_hashed_secret_rejects_any_other_token():
    tokens = parse_bearer_tokens(f"sha256:{sha256_hex('hashed-token-0123456789')}")
    with pytest.raises(ScimError) as raised:
        await authenticator(tokens).authenticate("Bearer hashed-token-0123456780")
    assert raised.value.status == 401


async def test_hashed_secrets_map_to_their_tenant_and_mix_with_plain_ones():
    raw = (
        f"acme=sha256:{sha256_hex('acme-token-0123456789')},"
        " globex=globex-plain-0123456789 ,"
        f"initech=SHA256:{sha256_hex('initech-token-0123456789').upper()},"
        "bare-plain-token-0123456789"
    )
    tokens = parse_bearer_tokens(raw)
    assert tokens[0] == ("acme", f"sha256:{sha256_hex('acme-token-0123456789')}")
    assert tokens[2] == ("initech", f"sha256:{sha256_hex('initech-token-0123456789')}")  # normalised
    checker = authenticator(tokens)
    assert await checker.authenticate("Bearer acme-token-0123456789") == "acme"
    assert await checker.authenticate("Bearer globex-plain-0123456789") == "globex"
    assert await checker.authenticate("Bearer initech-token-0123456789") == "initech"
    assert await checker.authenticate("Bearer bare-plain-token-0123456789") == "default"
    with pytest.raises(ScimError):
        # the digest text itself is not a credential
        await checker.authenticate(f"Bearer sha256:{sha256_hex('acme-token-0123456789')}")


@pytest.mark.parametrize(
    "raw",
    [
        "sha256:",
        f"sha256:{'a' * 63}",
        f"sha256:{'a' * 65}",
        f"acme=sha256:{'g' * 64}",
        f"acme=sha256: {'a' * 64}",
        f"acme=sha256:{'a' * 62}==",
    ],
)
def test_a_malformed_hashed_secret_is_refused(raw):
    with pytest.raises(ConfigurationError):
        parse_bearer_tokens(raw)


def test_settings_hold_only_digests_of_equal_length():
    settings = Settings("unused", None, parse_bearer_tokens(f"a=sha256:{'ab' * 32},b=plain-token-0123456789"))
    assert settings.secret_digests == (
        ("a", bytes.fromhex("ab" * 32)),
        ("b", hashlib.sha256(b"plain-token-0123456789").digest()),
    )
    assert "plain-token" not in repr(settings)


def test_a_malformed_entry_given_directly_to_settings_is_refused():
    with pytest.raises(ConfigurationError):
        Settings("unused", None, (("acme", "sha256:not-hex"),))
    with pytest.raises(ConfigurationError):
        Settings("unused", None, (("acme", "too-short"),))


async def test_every_configured_secret_is_compared_even_after_a_match(monkeypatch):
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(len(b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    tokens = parse_bearer_tokens(f"a=first-token-0123456789,b=sha256:{'0' * 64},c=third-token-0123456789")
    assert await authenticator(tokens).authenticate("Bearer first-token-0123456789") == "a"
    assert calls == [32, 32, 32]


# --- JWT-shaped tokens without JWT mode -----------------------------------------------------------------------------


async def test_a_jwt_shaped_token_is_accepted_only_if_it_literally_is_a_configured_secret():
    jwt_shaped = "eyJhbGciOiJub25lIn0.eyJ0aWQiOiJ4In0.c2lnbmF0dXJl"
    assert looks_like_jwt(jwt_shaped)
    checker = authenticator((("acme", jwt_shaped), ("other", "other-token-0123456789")))
    assert await checker.authenticate(f"Bearer {jwt_shaped}") == "acme"
    with pytest.raises(ScimError) as raised:
        await checker.authenticate(f"Bearer {jwt_shaped}x")
    assert raised.value.status == 401


@pytest.mark.parametrize(
    ("token", "shaped"),
    [
        ("a.b.c", True),
        ("a.b.", True),
        ("eyJh-_.eyJ0.sig_-", True),
        ("a.b", False),
        ("a.b.c.d", False),
        ("a..c", False),
        ("a.b.c d", False),
        ("a+b.c.d", False),
        ("plain-token-0123456789", False),
    ],
)
def test_jwt_shape(token, shaped):
    assert looks_like_jwt(token) is shaped


# --- settings ----------------------------------------------------------------------------------------------------


def test_settings_with_no_credentials_at_all_are_refused():
    with pytest.raises(ConfigurationError, match="SCIM_ENTRA_TENANT_IDS"):
        Settings("unused", None, ()).check()


def test_settings_with_only_entra_tenants_are_accepted():
    settings = Settings("unused", None, (), entra_tenant_ids=(TENANT_ID,))
    settings.check()
    assert settings.entra_enabled
    assert Authenticator.from_settings(settings)._entra is not None


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("SCIM_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")
    monkeypatch.setenv("SCIM_BEARER_TOKENS", "")
    monkeypatch.setenv("SCIM_ENTRA_TENANT_IDS", f" {TENANT_ID.upper()} ,{TENANT_ID}")
    monkeypatch.delenv("SCIM_ENTRA_AUDIENCES", raising=False)
    monkeypatch.delenv("SCIM_ENTRA_METADATA_URL", raising=False)
    monkeypatch.delenv("SCIM_ENTRA_APP_IDS", raising=False)
    settings = Settings.from_environment()
    assert settings.entra_tenant_ids == (TENANT_ID,)
    assert settings.entra_audiences == DEFAULT_ENTRA_AUDIENCES
    assert settings.entra_metadata_url == DEFAULT_ENTRA_METADATA_URL
    assert settings.bearer_tokens == ()

    monkeypatch.setenv("SCIM_ENTRA_TENANT_IDS", "")
    with pytest.raises(ConfigurationError):
        Settings.from_environment()

    monkeypatch.setenv("SCIM_ENTRA_TENANT_IDS", TENANT_ID)
    monkeypatch.setenv("SCIM_ENTRA_AUDIENCES", "api://one, api://two")
    monkeypatch.setenv("SCIM_ENTRA_METADATA_URL", "http://127.0.0.1:8080/{tenant}/meta")
    settings = Settings.from_environment()
    assert settings.entra_audiences == ("api://one", "api://two")
    assert settings.entra_metadata_url == "http://127.0.0.1:8080/{tenant}/meta"


@pytest.mark.parametrize("raw", ["contoso", "0b5f4f36-3ed4-421b-b2c1-bbbfdde3b43", "{0b5f4f36-3ed4-421b-b2c1}"])
def test_entra_tenant_ids_must_be_guids(monkeypatch, raw):
    monkeypatch.setenv("SCIM_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")
    monkeypatch.setenv("SCIM_ENTRA_TENANT_IDS", raw)
    with pytest.raises(ConfigurationError, match="GUID"):
        Settings.from_environment()
    with pytest.raises(ConfigurationError):
        Settings("unused", None, (), entra_tenant_ids=(raw,)).check()


@pytest.mark.parametrize(
    "url",
    [
        "https://login.microsoftonline.com/common/.well-known/openid-configuration",
        "http://login.microsoftonline.com/{tenant}/.well-known/openid-configuration",
        "file:///etc/{tenant}",
        "https:///{tenant}",
    ],
)
def test_an_unsafe_metadata_url_is_refused(url):
    with pytest.raises(ConfigurationError, match="SCIM_ENTRA_METADATA_URL"):
        Settings("unused", None, (), entra_tenant_ids=(TENANT_ID,), entra_metadata_url=url).check()
