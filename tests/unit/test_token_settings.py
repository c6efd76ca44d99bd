"""``SCIM_BEARER_TOKENS`` is read exactly or refused at start, naming the entry and never quoting its secret: a
misread entry would be a working token of the wrong tenant, or no token at all, and nobody would notice."""

import base64
import hashlib
import secrets
import subprocess
import sys

import pytest

from scim.auth import Authenticator
from scim.errors import ScimError
from scim.local.host import REPO_ROOT
from scim.settings import ConfigurationError, Settings, parse_bearer_tokens

SECRET = "s3cret-token-0123456789"
TENANT_GUID = "0b5f4f36-3ed4-421b-b2c1-bbbfdde3b438"


def refusal(raw: str) -> str:
    with pytest.raises(ConfigurationError) as raised:
        parse_bearer_tokens(raw)
    message = str(raised.value)
    assert SECRET not in message
    return message


def test_base64_tokens_with_padding_are_accepted_whole():
    padded = [base64.b64encode(secrets.token_bytes(n)).decode() for n in (31, 32, 16, 17)]
    assert padded[0].endswith("=") and padded[2].endswith("==")
    for token in padded:
        assert parse_bearer_tokens(token) == (("default", token),)
        assert parse_bearer_tokens(f"acme={token}") == (("acme", token),)
    no_symbols = "Abcdefgh12345678=="  # its first part even looks like a tenant name
    assert parse_bearer_tokens(no_symbols) == (("default", no_symbols),)


async def test_a_padded_token_authenticates():
    token = base64.b64encode(secrets.token_bytes(32)).decode()
    checker = Authenticator.from_settings(Settings("unused", None, parse_bearer_tokens(f"acme={token}")))
    assert await checker.authenticate(f"Bearer {token}") == "acme"


def test_an_invalid_tenant_name_is_refused_not_read_as_a_default_token():
    message = refusal(f"good-token-0123456789, acme.corp={SECRET}")
    assert "entry 2" in message
    assert "tenant name" in message


def test_a_comma_inside_a_token_is_refused_not_split_into_two_tokens():
    message = refusal("first-part-of-a-token,xyz")
    assert "entry 2" in message
    assert "at least 16" in message


@pytest.mark.parametrize("character", [" ", "!", '"', "\\", ";", "\x00", "é", ":"])
def test_a_token_holding_what_no_bearer_header_can_carry_is_refused(character):
    message = refusal(f"acme={SECRET}{character}{SECRET}")
    assert "entry 1:" in message
    assert "RFC 6750" in message


@pytest.mark.parametrize(
    ("raw", "entry", "why"),
    [
        ("acme=short", "entry 1:", "at least 16"),
        (f"{SECRET},acme=sha256:{'a' * 63}", "entry 2:", "64 hex"),
        (f"{SECRET},,{SECRET}=x==", "entry 3:", "at least 16"),  # read as tenant=token, and never quoted
        (f"{'t' * 65}={SECRET}", "entry 1", "tenant name"),
    ],
)
def test_every_refusal_names_the_entry_and_why(raw, entry, why):
    message = refusal(raw)
    assert entry in message
    assert why in message


async def test_a_hashed_entry_of_a_short_token_never_authenticates_it():
    digest = hashlib.sha256(b"a").hexdigest()
    checker = Authenticator.from_settings(Settings("unused", None, parse_bearer_tokens(f"sha256:{digest}")))
    with pytest.raises(ScimError) as raised:
        await checker.authenticate("Bearer a")
    assert raised.value.status == 401


def test_a_tenant_named_like_an_entra_tenant_id_is_refused_unless_sharing_is_wanted():
    tokens = parse_bearer_tokens(f"{TENANT_GUID}={SECRET}")
    with pytest.raises(ConfigurationError, match="SCIM_SHARE_ENTRA_TENANT_DATA") as raised:
        Settings("unused", None, tokens).check()
    assert TENANT_GUID in str(raised.value)
    Settings("unused", None, tokens, share_entra_tenant_data=True).check()
    Settings("unused", None, parse_bearer_tokens(f"contoso={SECRET}")).check()


def test_the_sharing_flag_is_read_strictly(monkeypatch):
    monkeypatch.setenv("SCIM_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")
    monkeypatch.setenv("SCIM_BEARER_TOKENS", f"{TENANT_GUID.upper()}={SECRET}")
    monkeypatch.setenv("SCIM_SHARE_ENTRA_TENANT_DATA", "TRUE")
    assert Settings.from_environment().share_entra_tenant_data
    monkeypatch.setenv("SCIM_SHARE_ENTRA_TENANT_DATA", "yes please")
    with pytest.raises(ConfigurationError, match="true or false"):
        Settings.from_environment()
    monkeypatch.delenv("SCIM_SHARE_ENTRA_TENANT_DATA")
    with pytest.raises(ConfigurationError, match="named like an Entra tenant id"):
        Settings.from_environment()


def test_the_local_host_refuses_to_start_and_says_which_entry(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "SCIM_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
        "SCIM_BEARER_TOKENS": f"{SECRET}, acme.corp={SECRET}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "scim", "serve", "--port", "1"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Refusing to serve: SCIM_BEARER_TOKENS entry 2" in result.stderr
    assert SECRET not in result.stdout + result.stderr
