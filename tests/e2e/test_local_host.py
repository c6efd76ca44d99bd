"""The local host's rough edges (issue 14, item 5): a clash is one line, not a traceback; shutdown is clean."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile

import httpx

from scim.local import azurite
from scim.local.host import REPO_ROOT
from tests.local_server import LocalServer


def serve(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "scim", "serve", *arguments],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_second_server_on_a_taken_port_says_so_in_one_line(azurite_connection_string: str) -> None:
    first = LocalServer(azurite_connection_string, f"clash{secrets.token_hex(4)}")
    first.start()
    try:
        second = serve("--port", str(first.port), env=first.env)
    finally:
        first.close()
    assert second.returncode != 0
    assert "Traceback" not in second.stderr + second.stdout
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, second.stderr
    assert f"Port {first.port} on 127.0.0.1 is already in use" in lines[0]
    assert "--port" in lines[0]


def test_a_second_azurite_on_a_taken_port_is_refused_before_anything_starts() -> None:
    env = {**os.environ, "SCIM_BEARER_TOKENS": secrets.token_urlsafe(24), "SCIM_TABLE_PREFIX": "clash"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        answer = serve("--azurite", "--azurite-port", str(port), "--port", str(azurite.free_port()), env=env)
    assert answer.returncode != 0
    assert "Traceback" not in answer.stderr + answer.stdout
    lines = [line for line in answer.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, answer.stderr
    assert f"Refusing to start a second Azurite: port {port} is in use" in lines[0]
    assert "SCIM endpoint" not in answer.stdout  # refused before serving, not after


def test_shutdown_closes_every_client_session(azurite_connection_string: str) -> None:
    with tempfile.TemporaryFile() as log:
        server = LocalServer(azurite_connection_string, f"shutdown{secrets.token_hex(4)}", log=log)
        server.start()
        headers = {"Authorization": f"Bearer {server.token}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=10) as http:
            assert http.get("/Users").status_code == 200  # the storage session now exists
        assert server.process is not None
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=20) == 0
        log.seek(0)
        output = log.read().decode(errors="replace")
    assert '"event": "scim.request"' in output
    assert "Unclosed" not in output, output
    assert "Traceback" not in output, output
