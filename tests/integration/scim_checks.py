"""Checks the security tests share: what a SCIM error must (and must never) say, and a tenant's stored state.

A request that is refused must change nothing: the tests compare :func:`snapshot` before and after it. Every list
page is read, members included, so any write (even one that only bumps ``meta.version``) shows up.
"""

import json
from typing import Any

from scim.messages import ScimResponse
from tests.conftest import Client

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_TYPES = {
    "invalidFilter", "tooMany", "uniqueness", "mutability", "invalidSyntax", "invalidPath", "noTarget",
    "invalidValue", "invalidVers", "sensitive",
}  # fmt: skip
"""RFC 7644 §3.12, Table 9."""
NEVER_SHOWN = (
    "partitionkey", "rowkey", "traceback", "azure", "exception", 'file "', "validation error", "pydantic",
    "scimuser", "scimgroup", "managerreference", "devstoreaccount", "table storage",
)  # fmt: skip
"""Words an error body never contains unless the client sent them: storage keys, stack traces, exception text."""


def patch_body(*operations: Any) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


def sent_text(*parts: Any) -> str:
    """Everything a request carried, lower-cased, so that an echo of the client's own input is not taken for a leak."""
    return " ".join(part.decode("utf-8", "replace") if isinstance(part, bytes) else json.dumps(part) for part in parts)


def assert_scim_error(
    response: ScimResponse, status: int | None = None, scim_type: str | None = None, sent: str = ""
) -> dict[str, Any]:
    """A SCIM error body (RFC 7644 §3.12) that says nothing about the implementation."""
    document = response.document
    assert document is not None, response.status
    if status is not None:
        assert response.status == status, document
    assert 400 <= response.status < 500, document
    assert document["schemas"] == [ERROR_SCHEMA], document
    assert document["status"] == str(response.status), document
    assert isinstance(document.get("detail"), str), document
    assert document.get("scimType") in SCIM_TYPES | {None}, document
    if scim_type is not None:
        assert document.get("scimType") == scim_type, document
    body = response.body_bytes().decode("utf-8").lower()
    echoed = sent.lower()
    for word in NEVER_SHOWN:
        assert word not in body or word in echoed, f"{word!r} in {document}"
    return document


def assert_scim_response(response: ScimResponse, sent: str = "") -> None:
    """Any answer the endpoint gives: 2xx with a SCIM document (or none, for 204), or a clean 4xx SCIM error."""
    assert response.status < 500, response.document
    if response.status >= 400:
        assert_scim_error(response, sent=sent)
        return
    assert 200 <= response.status < 300, response.document
    if response.status == 204:
        assert response.document is None
        return
    json.loads(response.body_bytes())  # encodable as UTF-8 JSON: what the HTTP adapter will send
    document = response.document
    assert document is not None
    schemas = document["schemas"]
    assert isinstance(schemas, list) and schemas, document
    if schemas == [LIST_SCHEMA]:
        assert isinstance(document["totalResults"], int) and document["totalResults"] >= 0
        assert document["itemsPerPage"] == len(document["Resources"])
        for resource in document["Resources"]:
            _assert_resource(resource)
    else:
        _assert_resource(document)


def _assert_resource(resource: dict[str, Any]) -> None:
    """``id`` and ``schemas`` are always returned; ``meta`` unless ``attributes`` left it out."""
    assert isinstance(resource["id"], str) and resource["id"], resource
    assert set(resource["schemas"]) & {USER, GROUP}, resource
    if "meta" in resource:
        assert resource["meta"]["resourceType"] in ("User", "Group"), resource


def referenced_ids(document: dict[str, Any] | None) -> set[str]:
    """Every resource id a response names: resources, their members and their groups."""
    if not document:
        return set()
    resources = document.get("Resources", [document]) if isinstance(document.get("Resources"), list) else [document]
    ids: set[str] = set()
    for resource in resources:
        if isinstance(resource.get("id"), str):
            ids.add(resource["id"])
        for attribute in ("members", "groups"):
            ids.update(item["value"] for item in resource.get(attribute) or () if isinstance(item, dict))
    return ids


async def list_all(client: Client, endpoint: str, query: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every resource of an endpoint, page by page (group pages with members hold at most 20)."""
    found: list[dict[str, Any]] = []
    start = 1
    while True:
        response = await client.call("GET", endpoint, query={**(query or {}), "startIndex": str(start)})
        assert response.status == 200, response.document
        json.loads(response.body_bytes())
        page = response.document["Resources"]
        found += page
        start += len(page)
        if not page or start > response.document["totalResults"]:
            return found


async def snapshot(client: Client) -> dict[str, Any]:
    """A tenant's whole stored state as its own client sees it: users, groups and their members, with versions."""
    users = sorted(await list_all(client, "Users"), key=lambda user: user["id"])
    groups = sorted(await list_all(client, "Groups"), key=lambda group: group["id"])
    for group in groups:
        group["members"] = sorted(group.get("members", []), key=lambda member: member["value"])
    return {"Users": users, "Groups": groups}
