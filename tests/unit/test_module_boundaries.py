"""Which modules import which: the request path's authentication stays free of cycles and of cold-start weight.

Checked in a fresh interpreter, because this test session has long since imported everything.
"""

import subprocess
import sys

import pytest

from scim.local.host import REPO_ROOT


def loaded_after(statement: str) -> set[str]:
    probe = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return set(result.stdout.split())


@pytest.mark.parametrize("module", ["scim.jwks", "scim.entra_tokens"])
def test_token_verifiers_do_not_import_the_authenticator(module):
    """auth imports them (lazily); they must not import auth back."""
    assert "scim.auth" not in loaded_after(f"import {module}")


def test_the_authenticator_loads_no_jwt_library_until_jwt_mode_is_used():
    loaded = loaded_after("import scim.auth")
    assert "scim.bearer" in loaded
    assert not {"jwt", "aiohttp", "scim.jwks", "scim.entra_tokens"} & loaded


def test_the_app_loads_no_queue_client_or_publisher_until_the_feed_publishes():
    """The publisher and the queue SDK load on the first kick of a feed-on endpoint, never at cold start."""
    loaded = loaded_after("import function_app")
    assert not {"scim.publisher", "azure.storage.queue", "scim.admin"} & loaded
