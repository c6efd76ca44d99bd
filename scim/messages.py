"""Framework-neutral request and response: what the handler layer takes and gives back.

``function_app.py`` and the tests build these, so nothing below them imports ``azure.functions``.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCIM_MEDIA_TYPE = "application/scim+json"

SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


@dataclass(frozen=True)
class ScimRequest:
    """One SCIM call: ``endpoint`` is the first path segment after the base URL (``Users``, ``Schemas``…)."""

    method: str
    endpoint: str
    resource_id: str | None = None
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    base_url: str = ""

    def header(self, name: str) -> str | None:
        """Header lookup, case-insensitive as HTTP requires."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@dataclass
class ScimResponse:
    """Status, headers and a JSON document (or none, for 204)."""

    status: int
    document: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    encoded: bytes | None = None
    """The document's body, when it was encoded ahead, a slice at a time (:mod:`scim.response_body`)."""

    def body_bytes(self) -> bytes:
        if self.encoded is not None:
            return self.encoded
        if self.document is None:
            return b""
        return json.dumps(self.document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def all_headers(self) -> dict[str, str]:
        """The response headers, with the security headers every response carries."""
        headers = dict(SECURITY_HEADERS)
        if self.document is not None:
            headers["Content-Type"] = f"{SCIM_MEDIA_TYPE}; charset=utf-8"
        headers.update(self.headers)
        return headers
