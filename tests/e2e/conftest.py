"""Runs ``python -m scim serve`` as a real process against the session's Azurite, and an HTTP client for it."""

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.local_server import LocalServer


@pytest.fixture(scope="session")
def server(azurite_connection_string: str) -> Iterator[tuple[str, str]]:
    running = LocalServer(azurite_connection_string, f"e2e{secrets.token_hex(4)}")
    running.start()
    try:
        yield running.base_url, running.token
    finally:
        running.close()


@pytest.fixture
def http(server: tuple[str, str]) -> Iterator[httpx.Client]:
    base_url, token = server
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        yield client
