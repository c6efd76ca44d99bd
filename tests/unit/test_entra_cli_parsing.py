"""Pure parts of python -m scim entra: Retry-After forms, OData string literals, --since, the token secret's
entries, and that the endpoint never loads the admin side."""

import email.utils
import subprocess
import sys
import time

from scim.admin.entra.cli import parse_since
from scim.admin.entra.graph import _retry_after
from scim.admin.entra.key_vault import plain_tokens, split_tokens
from scim.admin.entra.provisioning import odata_string
from scim.local.host import REPO_ROOT


def test_retry_after_in_seconds_or_as_an_http_date():
    assert _retry_after("7") == 7.0
    assert _retry_after(None) is None
    assert _retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= _retry_after(later) <= 31
    assert _retry_after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0


def test_a_display_name_is_an_odata_literal_not_filter_syntax():
    assert odata_string("O'Brien's app") == "'O''Brien''s app'"
    assert odata_string("x' or displayName eq 'y") == "'x'' or displayName eq ''y'"


def test_since_takes_an_age_or_an_iso_time():
    assert parse_since("2026-11-29T06:00:00+01:00") == "2026-11-29T05:00:00Z"
    assert parse_since("2026-11-29T06:00:00") == "2026-11-29T06:00:00Z"
    assert parse_since("30m") < parse_since("1m")


def test_token_secret_entries_with_and_without_tenant():
    assert split_tokens("aaa, acme=bbb,,sha256:cc") == [(None, "aaa"), ("acme", "bbb"), (None, "sha256:cc")]


def test_the_endpoint_never_imports_the_admin_side():
    code = "import sys, function_app; print(sorted(m for m in sys.modules if m.startswith(('scim.admin', 'msal'))))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)  # noqa: S603
    assert done.stdout.strip() == "[]"


def test_only_the_tenants_unhashed_tokens_can_be_given_to_entra():
    raw = "old,acme=a1,sha256:" + "0" * 64 + ",new,acme=a2"
    assert plain_tokens(raw, None) == ["old", "new"]
    assert plain_tokens(raw, "acme") == ["a1", "a2"]
