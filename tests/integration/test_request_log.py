"""The README's App Insights queries match what is logged (issue 14, item 2).

``host.json`` must let the host write the ``requests`` table (Host.Results at Information or more verbose), and every
field the README's KQL reads from the per-request line (``r.<field>``, after its ``message startswith`` prefix) must be
in the line a real request writes, with the type the query casts it to.
"""

import json
import logging
import re
from pathlib import Path

import pytest

from tests.conftest import Client

REPO_ROOT = Path(__file__).resolve().parents[2]
VERBOSE_ENOUGH = ("Trace", "Debug", "Information")
CASTS = {"tostring": str, "toint": int, "todouble": (int, float)}


def kusto_blocks() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    return re.findall(r"```kusto\n(.*?)```", readme, re.DOTALL)


def test_host_json_writes_the_requests_table() -> None:
    levels = json.loads((REPO_ROOT / "host.json").read_text())["logging"]["logLevel"]
    assert levels.get("Host.Results", levels.get("default")) in VERBOSE_ENOUGH
    assert any(re.search(r"^\s*requests\b", block, re.MULTILINE) for block in kusto_blocks())


async def test_the_readme_queries_read_fields_the_request_line_has(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="scim.request"):
        await client.create_user("logged@example.com")
        assert (await client.call("GET", "Users/does-not-exist")).status == 404
    lines = [record.getMessage() for record in caplog.records if record.name == "scim.request"]
    assert len(lines) == 2
    fields = json.loads(lines[-1])
    assert (fields["status"], fields["tenant"] != "-") == (404, True)

    queries = [block for block in kusto_blocks() if "parse_json(message)" in block]
    assert len(queries) >= 2, "the README shows the failed-requests-by-tenant and slowest-operations queries"
    for query in queries:
        prefix = re.search(r"message startswith '([^']*)'", query)
        assert prefix is not None and all(line.startswith(prefix.group(1)) for line in lines), query
        used = re.findall(r"(\w+)\(r\.(\w+)\)", query)
        assert used, query
        for cast, name in used:
            assert name in fields, f"the README's query reads r.{name}, which the request line does not have"
            assert isinstance(fields[name], CASTS[cast]), f"r.{name} is cast with {cast}: {fields[name]!r}"
