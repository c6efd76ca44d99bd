"""Run the third-party SCIM suites against a fresh local endpoint and print the README's Conformance table.

``./scripts/conformance.sh`` sets up and calls this (``python -m conformance.run [--suite NAME ...]``). Each suite
gets its own ``python -m scim serve`` on a free port, with its own token and an empty table, on an in-memory Azurite
that this run starts and stops: the suites create, change and delete users and groups, and Microsoft's collection
expects an empty tenant. Exit status 1 when scim2-tester reports anything but SUCCESS (its checks are the ones CI
runs, ``tests/e2e/test_conformance.py``); the other suites' failures are printed for a person to judge against the
README, which says which of them we do not follow and why.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from scim.local import azurite
from tests.local_server import LocalServer

HERE = Path(__file__).resolve().parent
NEWMAN = HERE / "node_modules" / ".bin" / "newman"
POSTMAN_FOLDERS = (
    "Endpoint tests",
    "User tests",
    "Group tests",
    "ComplexAttribute tests",
    "User tests with garbage",
    "Group tests with garbage",
    "Teardown garbage",
)
"""Every folder but "Get Token" (it fetches a token from the reference code's own endpoint and overwrites ours) and
the two trailing "Get all" requests, which assert nothing."""


@dataclass
class Outcome:
    """One suite's line of the table, and the checks that did not pass (name, what the suite said)."""

    suite: str
    result: str
    passed: bool
    failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    port: int
    token: str


@contextmanager
def fresh_endpoints() -> Iterator[Callable[[str], Endpoint]]:
    """An in-memory Azurite for the run; each call starts another endpoint on an empty table of its own."""
    port = azurite.free_port()
    storage = azurite.start(port)
    servers: list[LocalServer] = []

    def start(name: str) -> Endpoint:
        server = LocalServer(azurite.connection_string(port), f"conformance{name}")
        servers.append(server)
        server.start()
        return Endpoint(server.base_url, server.port, server.token)

    try:
        yield start
    finally:
        for server in servers:
            server.close()
        azurite.stop(storage)


def run_scim2_tester(endpoint: Endpoint) -> Outcome:
    """scim2-tester's ``check_server``, as ``scim test`` (scim2-cli) runs it: only SUCCESS counts as a pass."""
    from httpx2 import Client
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_tester import Status, check_server

    headers = {"Authorization": f"Bearer {endpoint.token}"}
    with Client(base_url=endpoint.base_url, headers=headers, timeout=30) as http:
        results = check_server(SyncSCIMClient(http))
    failures = [(r.title or "?", f"{r.status.name}: {r.reason or ''}") for r in results if r.status != Status.SUCCESS]
    succeeded = len(results) - len(failures)
    return Outcome(
        f"scim2-tester {version('scim2-tester')}",
        f"**{succeeded} / {len(results)}** checks SUCCESS",
        passed=bool(results) and not failures,
        failures=failures,
    )


def run_scim_sanity(endpoint: Endpoint) -> Outcome:
    """``scim-sanity probe`` in its default strict mode."""
    executable = Path(sys.executable).parent / "scim-sanity"
    command = [str(executable), "probe", endpoint.base_url, "--token", endpoint.token]
    answer = subprocess.run(  # noqa: S603
        [*command, "--i-accept-side-effects", "--json-output"], capture_output=True, text=True, timeout=300
    )
    report = json.loads(answer.stdout)
    summary = report["summary"]
    failures = [(r["name"], r.get("message", "")) for r in report["results"] if r["status"] not in ("pass", "skip")]
    return Outcome(
        f"scim-sanity {report['scim_sanity_version']} (`probe`, strict)",
        f"{summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped",
        passed=summary["failed"] == 0 and summary["errors"] == 0,
        failures=failures,
    )


def run_newman(endpoint: Endpoint) -> Outcome:
    """Microsoft's Postman collection through newman; a failed assertion is reported with our answer to it."""
    if not NEWMAN.exists():
        raise SystemExit(f"{NEWMAN} is missing: run ./scripts/conformance.sh (it runs npm ci in conformance/)")
    newman_version = subprocess.run([str(NEWMAN), "--version"], capture_output=True, text=True).stdout.strip()  # noqa: S603
    with tempfile.TemporaryDirectory() as scratch:
        export = Path(scratch) / "newman.json"
        variables = {
            "Protocol": "http",
            "Server": "127.0.0.1",
            "Port": f":{endpoint.port}",
            "Api": "scim/v2",
            "token": endpoint.token,
        }
        command = [str(NEWMAN), "run", str(HERE / "PostmanCollection.json"), "--reporters", "json"]
        command += ["--reporter-json-export", str(export)]
        for name, value in variables.items():
            command += ["--env-var", f"{name}={value}"]
        for folder in POSTMAN_FOLDERS:
            command += ["--folder", folder]
        subprocess.run(command, capture_output=True, timeout=600, check=False)  # noqa: S603
        report = json.loads(export.read_text())["run"]
    answers = {e["item"]["name"]: e.get("response", {}) for e in report["executions"]}
    failures = []
    for failure in report["failures"]:
        request = failure["source"]["name"]
        answer = answers.get(request, {})
        body = bytes(answer.get("stream", {}).get("data", [])).decode(errors="replace")
        detail = json.loads(body).get("detail", "") if body.startswith("{") else ""
        said = f"{failure['error']['test']}: {failure['error']['message']}"
        failures.append((request, f"{said} (we answered {answer.get('code')}{': ' + detail if detail else ''})"))
    stats = report["stats"]
    return Outcome(
        f"Microsoft's Postman collection (newman {newman_version}, all folders but \"Get Token\")",
        f"{stats['requests']['total']} requests, {stats['assertions']['total']} assertions, "
        f"{stats['assertions']['failed']} failed",
        passed=stats["assertions"]["failed"] == 0,
        failures=failures,
    )


SUITES: dict[str, Callable[[Endpoint], Outcome]] = {
    "scim2-tester": run_scim2_tester,
    "scim-sanity": run_scim_sanity,
    "newman": run_newman,
}


def table(outcomes: list[Outcome]) -> str:
    lines = ["| Suite | Result |", "|---|---|"]
    lines += [f"| {outcome.suite} | {outcome.result} |" for outcome in outcomes]
    for outcome in outcomes:
        if outcome.failures:
            lines += ["", f"{outcome.suite}, not passed:"]
            lines += [f"- {name}: {said}" for name, said in outcome.failures]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m conformance.run", description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", choices=SUITES, help="run only this suite (repeatable)")
    chosen = parser.parse_args().suite or list(SUITES)
    outcomes = []
    with fresh_endpoints() as start:
        for name in chosen:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            outcomes.append(SUITES[name](start(name.replace("-", ""))))
    print(table(outcomes))
    tester = [o for name, o in zip(chosen, outcomes, strict=True) if name == "scim2-tester"]
    raise SystemExit(0 if all(o.passed for o in tester) else 1)


if __name__ == "__main__":
    main()
