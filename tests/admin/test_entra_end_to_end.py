"""End to end: ``entra connect`` then ``entra provision`` through the Graph stand-in, whose provisioning service
sends Entra's documented SCIM sequence (Test Connection query; match by userName; create, later update) to a real
``python -m scim serve`` on Azurite; the user appears there."""

import httpx

from tests.admin.conftest import Entra
from tests.local_server import LocalServer


def scim_get(server: LocalServer, path: str, params: dict | None = None) -> dict:
    headers = {"Authorization": f"Bearer {server.token}"}
    response = httpx.get(f"{server.base_url}{path}", params=params, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_connect_then_provision_on_demand_creates_then_updates_the_user(entra: Entra, scim_server: LocalServer):
    user = entra.graph.add_user("grace.hopper@contoso.example", "Grace", "Hopper")
    connect = entra.connect(scim_server.base_url, scim_server.token, "--assign", "user:grace.hopper@contoso.example")
    assert connect.code == 0, connect.text

    first = entra.run("provision", "grace.hopper@contoso.example")
    assert first.code == 0, first.text
    assert f"Provision on demand: grace.hopper@contoso.example ({user['id']}) -> 'SCIM endpoint'" in first.out
    for step in ("Import    Success", "Scoping   Success", "Matching  Success", "Export    Success"):
        assert step in first.out
    assert "User 'grace.hopper@contoso.example' was created in customappsso" in first.out
    assert f"objectId={user['id']}; accountEnabled=True; displayName=Grace Hopper" in first.out
    assert "Result: Success (action Create, target id " in first.out

    found = scim_get(scim_server, "/Users", {"filter": 'userName eq "grace.hopper@contoso.example"'})
    assert found["totalResults"] == 1
    (stored,) = found["Resources"]
    assert stored["displayName"] == "Grace Hopper"
    assert stored["externalId"] == "grace.hopper"
    assert stored["name"]["familyName"] == "Hopper"
    assert stored["active"] is True
    assert stored["id"] in first.out

    user["displayName"] = "Rear Admiral Grace Hopper"
    second = entra.run("provision", user["id"])
    assert second.code == 0, second.text
    assert "Result: Success (action Update" in second.out
    assert f"id={stored['id']}; userName=grace.hopper@contoso.example" in second.out  # the matched target
    assert "ReportableIdentifier=grace.hopper@contoso.example" in second.out
    assert scim_get(scim_server, f"/Users/{stored['id']}")["displayName"] == "Rear Admiral Grace Hopper"
    assert entra.graph.scim_requests == [
        "GET /Users",
        "GET /Users",
        "POST /Users",
        "GET /Users",
        "PATCH /Users/" + stored["id"],
    ]

    logs = entra.run("logs")
    assert logs.code == 0, logs.text
    assert logs.out.count("success") == 2 and "create" in logs.out and "update" in logs.out


def test_provision_failure_is_reported_with_the_endpoints_answer(entra: Entra, scim_server: LocalServer):
    entra.graph.add_user("bad@contoso.example", "Bad", "Token")
    assert entra.connect(scim_server.base_url, scim_server.token).code == 0
    entra.graph.app("SCIM endpoint").secrets["SecretToken"] = "revoked-token-revoked-token-revoked"
    result = entra.run("provision", "bad@contoso.example")
    assert result.code == 1
    assert "Matching  Failure  HTTP 401 from the SCIM endpoint" in result.out
    assert "Result: Failure" in result.out


def test_provision_of_an_unknown_user_names_it(entra: Entra, scim_server: LocalServer):
    assert entra.connect(scim_server.base_url, scim_server.token).code == 0
    result = entra.run("provision", "nobody@contoso.example")
    assert result.code == 1
    assert "No user 'nobody@contoso.example' in this tenant" in result.err


def test_provision_on_demand_beyond_its_rate_limit_waits_as_graph_says(entra: Entra, scim_server: LocalServer):
    """Graph allows 5 provisionOnDemand calls per 10 seconds; the sixth is answered 429 with Retry-After."""
    entra.graph.add_user("rate@contoso.example", "Rate", "Limit")
    assert entra.connect(scim_server.base_url, scim_server.token).code == 0
    results = [entra.run("provision", "rate@contoso.example") for _ in range(6)]
    assert [r.code for r in results] == [0] * 6, [r.text for r in results]
    assert all("Graph answered 429" not in r.err for r in results[:5])
    assert "Graph answered 429 (TooManyRequests); retrying in 2 s" in results[5].err
    assert "Result: Success (action Update" in results[5].out
