"""The access tokens ``/oauth2/token`` issues: expiry with its leeway, key rotation, and the shapes that must fail;
and the settings that configure them."""

import base64
import hashlib
import hmac
import json

import pytest

from scim.access_tokens import LEEWAY_SECONDS, AccessGrant, AccessTokens, key_id
from scim.errors import ScimError
from scim.settings import ConfigurationError, Settings, parse_minutes, parse_signing_keys

OLD, NEW = "o" * 40, "n" * 40
GRANT = AccessGrant("acme", "client-1", ("scim",))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def refused(tokens: AccessTokens, token: str) -> bool:
    try:
        tokens.verify(token)
    except ScimError as error:
        assert error.status == 401 and error.detail == "Authentication required"
        return True
    return False


def test_a_token_is_valid_for_its_lifetime_plus_the_leeway_only():
    clock = Clock()
    tokens = AccessTokens((NEW,), 60, clock)
    token = tokens.issue(GRANT)
    assert tokens.verify(token) == GRANT
    clock.now += 3600 + LEEWAY_SECONDS - 1
    assert tokens.verify(token) == GRANT
    clock.now += 2
    assert refused(tokens, token)


def test_a_token_from_the_future_beyond_the_leeway_is_refused():
    clock = Clock()
    issuer = AccessTokens((NEW,), 60, clock)
    clock.now += LEEWAY_SECONDS + 5
    future = issuer.issue(GRANT)
    clock.now -= LEEWAY_SECONDS + 5
    assert refused(AccessTokens((NEW,), 60, clock), future)


def test_key_rotation_old_tokens_stay_valid_new_ones_use_the_new_key():
    before = AccessTokens((OLD,), 60)
    old_token = before.issue(GRANT)
    during = AccessTokens((NEW, OLD), 60)
    assert during.verify(old_token) == GRANT
    new_token = during.issue(GRANT)
    header = json.loads(base64.urlsafe_b64decode(new_token.split(".")[0] + "=="))
    assert header["kid"] == key_id(NEW) and header["alg"] == "HS256"
    after = AccessTokens((NEW,), 60)
    assert after.verify(new_token) == GRANT
    assert not after.owns(old_token)  # the old key is gone: the token is no longer ours at all
    assert refused(after, old_token)


def test_the_kid_does_not_reveal_the_key():
    assert NEW not in key_id(NEW) and len(key_id(NEW)) == 16


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none_and_other_algorithms_are_not_ours():
    tokens = AccessTokens((NEW,), 60)
    payload = tokens.issue(GRANT).split(".")[1]
    for alg in ("none", "HS512", "RS256"):
        forged = f"{b64({'alg': alg, 'kid': key_id(NEW)})}.{payload}."
        assert not tokens.owns(forged)


def test_claims_that_do_not_hold_are_refused():
    clock = Clock()
    tokens = AccessTokens((NEW,), 60, clock)

    def signed(claims: dict) -> str:
        head = f"{b64({'alg': 'HS256', 'kid': key_id(NEW), 'typ': 'at+jwt'})}.{b64(claims)}"
        signature = hmac.new(NEW.encode(), head.encode(), hashlib.sha256).digest()
        return f"{head}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    now = int(clock.now)
    good = {
        "iss": "urn:scim-entra-functions:token-endpoint",
        "aud": "urn:scim-entra-functions:scim",
        "sub": "client-1",
        "client_id": "client-1",
        "tenant": "acme",
        "scope": "scim",
        "iat": now,
        "exp": now + 3600,
    }
    assert tokens.verify(signed(good)) == GRANT
    for change in (
        {"iss": "https://sts.windows.net/x/"},
        {"aud": "scim"},
        {"tenant": "acme.corp"},
        {"tenant": 7},
        {"client_id": "client-2"},
        {"exp": now + 361 * 60},  # longer than any lifetime we issue
        {"exp": "tomorrow"},
        {"exp": None},
        {"iat": None},
        {"scope": ["scim"]},
    ):
        claims = {**good, **change}
        assert refused(tokens, signed({k: v for k, v in claims.items() if v is not None})), change


def test_signing_key_and_lifetime_settings():
    assert parse_signing_keys(f" {NEW} , {OLD} ") == (NEW, OLD)
    with pytest.raises(ConfigurationError, match="32"):
        parse_signing_keys("short")
    with pytest.raises(ConfigurationError, match="Key Vault"):
        parse_signing_keys("@Microsoft.KeyVault(SecretUri=https://v/secrets/s)")
    assert parse_minutes("") == 60 and parse_minutes("360") == 360
    with pytest.raises(ConfigurationError):
        parse_minutes("1h")
    for minutes in (59, 361):
        with pytest.raises(ConfigurationError, match="SCIM_ACCESS_TOKEN_MINUTES"):
            Settings("unused", None, token_signing_keys=(NEW,), access_token_minutes=minutes).check()
    Settings("unused", None, token_signing_keys=(NEW,)).check()  # signing keys alone are a configured endpoint
    with pytest.raises(ConfigurationError, match="SCIM_TOKEN_SIGNING_KEYS"):
        Settings("unused", None).check()
    with pytest.raises(ConfigurationError, match="SCIM_WIF_METADATA_URL"):
        Settings("unused", None, token_signing_keys=(NEW,), wif_metadata_url="http://evil.example/{tenant}").check()


def test_a_token_is_checked_once_per_process_then_remembered_within_its_window(monkeypatch):
    import scim.access_tokens as module

    clock = Clock()
    tokens = AccessTokens((NEW,), 60, clock)
    token = tokens.issue(GRANT)
    decoded = []
    real = module.jwt.decode
    monkeypatch.setattr(module.jwt, "decode", lambda *a, **k: decoded.append(1) or real(*a, **k))
    for _ in range(3):
        assert tokens.owns(token) and tokens.verify(token) == GRANT
    assert decoded == [1]
    clock.now += 3600 + LEEWAY_SECONDS + 1
    assert refused(tokens, token)  # remembered tokens still expire
