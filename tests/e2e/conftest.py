"""Runs ``python -m scim serve`` as a real process against the session's Azurite, and an HTTP client for it."""

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scim.local import azurite

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def server(azurite_connection_string: str) -> Iterator[tuple[str, str]]:
    port = azurite.free_port()
    token = secrets.token_urlsafe(32)
    env = dict(os.environ)
    env.update(
        SCIM_STORAGE_CONNECTION_STRING=azurite_connection_string,
        SCIM_BEARER_TOKENS=token,
        SCIM_TABLE_PREFIX=f"e2e{secrets.token_hex(4)}",
    )
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed when the session's server stops)
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "scim", "serve", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log.seek(0)
                raise RuntimeError(log.read().decode(errors="replace")) from None
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}/scim/v2", token
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def http(server: tuple[str, str]) -> Iterator[httpx.Client]:
    base_url, token = server
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        yield client
