"""A stand-in for one Azure Key Vault's secrets API (GET and PUT /secrets/{name}), with its challenge-based
authentication: an unauthenticated request gets 401 and a ``WWW-Authenticate`` naming the authority and the
resource, as Key Vault answers, and the SDK then asks its credential for a token for that resource.

The challenge's resource is ``https://0.1:<port>``: the SDK accepts a challenge only for a resource the vault's host
ends with, and ``127.0.0.1:<port>`` ends with ``.0.1:<port>``. ``on_change`` lets a test play App Service
re-reading the Key Vault reference when a new version is written."""

import secrets
import threading
from collections.abc import Callable
from pathlib import Path

import jwt

from tests.standins.https_server import HttpsServer, Request, Response

API_VERSIONS = ("7.4", "7.5", "7.6", "2025-07-01", "2026-04-01")


class KeyVault:
    def __init__(self, authority_url: str, token_key: str, cert: Path, key: Path) -> None:
        self.authority_url = authority_url
        self.token_key = token_key
        self.versions: dict[str, list[str]] = {}
        self.violations: list[str] = []
        self.requests: list[str] = []
        self.on_change: Callable[[str, str], None] = lambda _name, _value: None
        self._lock = threading.Lock()
        self.server = HttpsServer(self.handle, cert, key)
        self.url = self.server.base_url
        self.resource = f"https://0.1:{self.url.rsplit(':', 1)[1]}"

    def close(self) -> None:
        self.server.close()

    def value(self, name: str) -> str:
        return self.versions[name][-1]

    def handle(self, request: Request) -> Response:
        self.requests.append(f"{request.method} {request.path}")
        parts = request.path.strip("/").split("/")
        if len(parts) not in (2, 3) or parts[0] != "secrets":
            return self._violation(f"{request.method} {request.path}: not a secrets request")
        if request.query.get("api-version") not in API_VERSIONS:
            return self._violation(f"api-version {request.query.get('api-version')!r}")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer":
            challenge = f'Bearer authorization="{self.authority_url}", resource="{self.resource}"'
            return Response(401, {"error": {"code": "Unauthorized"}}, {"WWW-Authenticate": challenge})
        try:
            jwt.decode(token, self.token_key, algorithms=["HS256"], audience=self.resource)
        except jwt.PyJWTError as problem:
            return Response(401, {"error": {"code": "Unauthorized", "message": str(problem)}})
        name = parts[1]
        with self._lock:
            if request.method == "GET":
                if name not in self.versions:
                    return Response(404, {"error": {"code": "SecretNotFound", "message": f"{name} not found"}})
                return Response(200, self._bundle(name))
            if request.method == "PUT" and len(parts) == 2:
                body = request.json() or {}
                if not isinstance(body.get("value"), str):
                    return self._violation("PUT secret without a string value")
                self.versions.setdefault(name, []).append(body["value"])
                changed = body["value"]
            else:
                return self._violation(f"{request.method} {request.path}: not used by the CLI")
        self.on_change(name, changed)
        return Response(200, self._bundle(name))

    def _bundle(self, name: str) -> dict:
        version = f"{len(self.versions[name]):02d}{secrets.token_hex(15)}"
        return {
            "value": self.versions[name][-1],
            "id": f"{self.url}/secrets/{name}/{version}",
            "attributes": {
                "enabled": True,
                "created": 1764400000,
                "updated": 1764400000,
                "recoveryLevel": "Recoverable",
            },
        }

    def _violation(self, problem: str) -> Response:
        self.violations.append(problem)
        return Response(400, {"error": {"code": "BadParameter", "message": problem}})
