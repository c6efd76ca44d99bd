"""The floor for a ``userName`` lookup: a bare aiohttp handler making the same storage calls with the same SDK.

``GET /scim/v2/Users?filter=userName eq "<name>"`` reads the userName index row, then the user row beside the user's
reverse-membership range, exactly the three calls our endpoint makes (bench/README.md), from the table our endpoint
wrote, and answers a ListResponse with the stored document, ``id``, ``meta`` and ``groups``. It does nothing else:
no filter grammar, no validation, no Functions adapter, no request log. No SCIM endpoint on this stack can spend less
CPU per lookup; ``bench/lookup_cpu.py`` compares ours with it.

    .venv/bin/python bench/floor_server.py --port 7099 --connection-string "<Azurite's>" --table scimResources \
        --tenant default --token <bearer>
"""

import argparse
import asyncio
import hashlib
import json
import re
import unicodedata
from typing import Any

from aiohttp import web
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient, TableServiceClient

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
_USER_NAME_EQ = re.compile(r'^\s*userName\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)
CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 0,
    "connection_timeout": 3,
    "read_timeout": 10,
    "use_env_settings": False,
}
"""The options our store gives the same SDK (scim/store/tables.py), so both pay for the same client."""


def fold(value: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).lower())


def build_app(table: TableClient, tenant: str, token: str) -> web.Application:
    partition, membership = f"{tenant}:User", f"{tenant}:Membership"

    async def groups_of(user_id: str) -> list[dict[str, str]]:
        query = table.query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
            parameters={"pk": membership, "lo": f"m:{user_id}:", "hi": f"m:{user_id};"},
            results_per_page=500,
            select=["groupId"],
        )
        return [{"value": row["groupId"], "type": "direct"} async for row in query]

    async def lookup(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return web.Response(status=401)
        match = _USER_NAME_EQ.match(request.query.get("filter", ""))
        if match is None:
            return web.Response(status=400)
        digest = hashlib.sha256(fold(json.loads(f'"{match.group(1)}"')).encode()).hexdigest()
        resources = []
        try:
            index = await table.get_entity(partition, f"ix:userName:{digest}")
            user_id = index["resourceId"]
            row, groups = await asyncio.gather(table.get_entity(partition, f"id:{user_id}"), groups_of(user_id))
            document = json.loads(row["doc"])
            document["id"] = user_id
            document["meta"] = {"resourceType": "User", "created": row["created"], "lastModified": row["lastModified"]}
            if groups:
                document["groups"] = groups
            resources.append(document)
        except ResourceNotFoundError:
            pass
        body = {"schemas": [LIST_RESPONSE], "totalResults": len(resources), "startIndex": 1}
        body.update(itemsPerPage=len(resources), Resources=resources)
        return web.json_response(body, content_type="application/scim+json")

    app = web.Application()
    app.router.add_get("/scim/v2/Users", lookup)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connection-string", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--tenant", default="default")
    parser.add_argument("--token", required=True)
    args = parser.parse_args()

    async def app() -> web.Application:
        service = TableServiceClient.from_connection_string(args.connection_string, **CLIENT_OPTIONS)
        application = build_app(service.get_table_client(args.table), args.tenant, args.token)

        async def close(_: web.Application) -> None:
            await service.close()

        application.on_cleanup.append(close)
        return application

    web.run_app(app(), host="127.0.0.1", port=args.port, access_log=None, print=lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
