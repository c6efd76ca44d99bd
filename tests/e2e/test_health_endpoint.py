"""``GET /health`` over HTTP: outside the SCIM base URL, no credential needed, nothing revealed."""

import httpx


def test_health_needs_no_token_and_reveals_nothing(server: tuple[str, str]):
    base_url, _ = server
    root = base_url.removesuffix("/scim/v2")
    response = httpx.get(f"{root}/health", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}
    assert response.headers["Cache-Control"] == "no-store"


def test_health_is_read_only(server: tuple[str, str]):
    base_url, _ = server
    response = httpx.post(f"{base_url.removesuffix('/scim/v2')}/health", timeout=10)
    assert response.status_code in (404, 405)
