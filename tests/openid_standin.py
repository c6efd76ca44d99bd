"""A stand-in for Entra's OpenID authority (``login.microsoftonline.com``) for tests that run the endpoint as a
separate process: v2 OpenID metadata and a JWKS per tenant, served from a thread on 127.0.0.1 so a test may block on
its own HTTP calls meanwhile. Every request is checked against the documented shape (GET, a JSON ``Accept``, one of
the two documented paths) and recorded; anything else is answered 400 and counted as a violation."""

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_METADATA = re.compile(r"/([0-9a-f-]{36})/v2\.0/\.well-known/openid-configuration")
_KEYS = re.compile(r"/([0-9a-f-]{36})/discovery/v2\.0/keys")


@dataclass
class OpenIdStandIn:
    keys: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    base_url: str = ""

    @property
    def metadata_url(self) -> str:
        """The ``SCIM_WIF_METADATA_URL`` to give the endpoint."""
        return f"{self.base_url}/{{tenant}}/v2.0/.well-known/openid-configuration"

    def start(self) -> None:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                standin.requests.append(self.path)
                if "json" not in (self.headers.get("Accept") or ""):
                    return self._refuse("no JSON Accept header")
                metadata, keys = _METADATA.fullmatch(self.path), _KEYS.fullmatch(self.path)
                if metadata:
                    tenant = metadata.group(1)
                    return self._json(
                        {
                            "issuer": f"https://login.microsoftonline.com/{tenant}/v2.0",
                            "jwks_uri": f"{standin.base_url}/{tenant}/discovery/v2.0/keys",
                            "id_token_signing_alg_values_supported": ["RS256"],
                        }
                    )
                if keys:
                    return self._json({"keys": standin.keys.get(keys.group(1), [])})
                return self._refuse(f"undocumented path {self.path}")

            def do_POST(self) -> None:
                standin.requests.append(self.path)
                self._refuse("POST is not part of key discovery")

            def _json(self, document: dict[str, Any]) -> None:
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _refuse(self, why: str) -> None:
                standin.violations.append(why)
                self.send_response(400)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
