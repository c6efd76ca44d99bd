"""scim2-tester's 135 RFC checks against ``python -m scim serve``, so a conformance regression fails the build.

The same run as ``./scripts/conformance.sh`` (``conformance/run.py``), on its own endpoint and empty table.
"""

import re
import secrets

from conformance.run import Endpoint, run_scim2_tester
from tests.local_server import LocalServer


def test_scim2_tester_reports_success_on_every_check(azurite_connection_string: str) -> None:
    server = LocalServer(azurite_connection_string, f"tester{secrets.token_hex(4)}")
    server.start()
    try:
        outcome = run_scim2_tester(Endpoint(server.base_url, server.port, server.token))
    finally:
        server.close()
    assert outcome.failures == []
    assert outcome.passed
    succeeded, total = map(int, re.findall(r"\d+", outcome.result)[:2])
    assert succeeded == total >= 135, outcome.result  # fewer checks than scim2-tester 0.5.2 ran on release is news
