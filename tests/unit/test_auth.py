"""Bearer-token authentication: the tenant of the matching token, or a 401 that reveals nothing."""

import pytest

from scim.auth import authenticate
from scim.errors import ScimError
from scim.settings import ConfigurationError, parse_bearer_tokens

TOKENS = (("default", "first-token-0123456789"), ("acme", "second-token-0123456789"))


@pytest.mark.parametrize(
    ("header", "tenant"),
    [
        ("Bearer first-token-0123456789", "default"),
        ("bearer second-token-0123456789", "acme"),
        ("BEARER   first-token-0123456789  ", "default"),
    ],
)
def test_a_configured_token_authenticates_its_tenant(header, tenant):
    assert authenticate(header, TOKENS) == tenant


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic first-token-0123456789", "Bearer first-token-012345678", "Bearer x" * 2000],
)
def test_anything_else_is_401_with_www_authenticate(header):
    with pytest.raises(ScimError) as raised:
        authenticate(header, TOKENS)
    assert raised.value.status == 401
    assert raised.value.headers["WWW-Authenticate"].startswith("Bearer")
    assert raised.value.detail == "Authentication required"


def test_token_entries_parse_with_and_without_tenant():
    parsed = parse_bearer_tokens(" plain-token-0123456789 , acme=acme-token-0123456789,")
    assert parsed == (("default", "plain-token-0123456789"), ("acme", "acme-token-0123456789"))


@pytest.mark.parametrize("raw", ["short", "@Microsoft.KeyVault(SecretUri=https://v/secrets/s/)"])
def test_unsafe_token_settings_are_refused(raw):
    with pytest.raises(ConfigurationError):
        parse_bearer_tokens(raw)
