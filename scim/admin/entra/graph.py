"""A small Microsoft Graph client: JSON over HTTPS with a bearer token from msal, retries where Graph asks for
them, every failure turned into a sentence an admin can act on.

Why not the Graph SDK: it is large, async-only in Python, and still needs this retry and error wording; the dozen
documented requests this CLI makes are plain REST."""

import email.utils
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests

from scim.admin.entra.permissions import Operation

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
TIMEOUT_SECONDS = 60


class GraphError(Exception):
    """A Graph call that failed for good; ``str()`` is the message for the admin, free of tokens and secrets."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class GraphClient:
    """Talks to one Graph endpoint (``https://graph.microsoft.com`` or a sovereign cloud's) with tokens from
    ``token()``; ``app_only`` says whether those carry application permissions (``roles``) or delegated ones."""

    endpoint: str
    token: Callable[[], str]
    app_only: bool
    session: requests.Session = field(default_factory=requests.Session)
    attempts: int = 6
    longest_wait: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    on_wait: Callable[[str], None] = lambda _message: None

    def call(
        self,
        method: str,
        path: str,
        operation: Operation,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        version: str = "v1.0",
        retry_errors: bool = True,
    ) -> Any:
        """One documented request; its JSON answer, or None for 204. ``path`` is relative to the version, or a
        full ``@odata.nextLink``. ``retry_errors=False`` retries only 429 (nothing was done), for creates that
        must not run twice."""
        url = path if path.startswith("https://") else f"{self.endpoint}/{version}/{path.lstrip('/')}"
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._send(method, url, params, body)
            except requests.RequestException as failure:
                if attempt == self.attempts or not retry_errors or isinstance(failure, requests.exceptions.SSLError):
                    hint = (
                        " (behind a TLS-inspecting proxy, point REQUESTS_CA_BUNDLE at its CA)"
                        if isinstance(failure, requests.exceptions.SSLError)
                        else ""
                    )
                    raise GraphError(
                        f"Could not reach Microsoft Graph at {self.endpoint}: {_brief(failure)}{hint}"
                    ) from None
                self._wait(self._backoff(attempt), f"Graph unreachable ({type(failure).__name__})")
                continue
            if response.status_code < 400:
                return response.json() if response.content else None
            retry = response.status_code == 429 or (retry_errors and response.status_code in RETRIED_STATUSES)
            if not retry or attempt == self.attempts:
                raise self._failure(response, operation)
            wait = _retry_after(response.headers.get("Retry-After")) or self._backoff(attempt)
            self._wait(wait, f"Graph answered {response.status_code} ({_error(response)[0] or 'no code'})")
        raise AssertionError("unreachable")

    def pages(self, path: str, operation: Operation, params: dict[str, str] | None = None) -> Iterator[dict]:
        """Every item of a collection, following ``@odata.nextLink`` until Graph gives none."""
        page = self.call("GET", path, operation, params=params)
        while True:
            yield from page.get("value", [])
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return
            page = self.call("GET", next_link, operation)

    def _send(self, method: str, url: str, params: dict[str, str] | None, body: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        return self.session.request(method, url, params=params, data=data, headers=headers, timeout=TIMEOUT_SECONDS)

    def _wait(self, seconds: float, why: str) -> None:
        seconds = min(seconds, self.longest_wait)
        self.on_wait(f"{why}; retrying in {seconds:g} s")
        self.sleep(seconds)

    @staticmethod
    def _backoff(attempt: int) -> float:
        return float(min(2 ** (attempt - 1), 32))

    def _failure(self, response: requests.Response, operation: Operation) -> GraphError:
        code, message = _error(response)
        status = response.status_code
        said = f"Graph answered {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        if status == 403:
            return GraphError(f"Cannot {operation.does}: {self._missing(operation)} ({said})", status, code)
        if status == 401:
            return GraphError(
                f"Cannot {operation.does}: the sign-in was refused ({said}). Sign in again "
                "(python -m scim entra login) or check the app's client secret or certificate.",
                status,
                code,
            )
        return GraphError(f"Cannot {operation.does}: {said}", status, code)

    def _missing(self, operation: Operation) -> str:
        """Which permission to grant, said in the terms of the sign-in in use, with what the token does carry."""
        held = self._granted()
        if self.app_only:
            return (
                f"the app needs the Microsoft Graph application permission {operation.application} with admin "
                f"consent (its token carries: {', '.join(held) or 'none'})"
            )
        roles = f", and you need one of the roles {', '.join(operation.roles)}" if operation.roles else ""
        return (
            f"the sign-in needs the delegated permission {operation.delegated}{roles} "
            f"(the token carries: {', '.join(held) or 'none'})"
        )

    def _granted(self) -> list[str]:
        """The permissions the current token claims; read without verifying (only Graph can), for the message."""
        try:
            claims = jwt.decode(self.token(), options={"verify_signature": False})
        except jwt.PyJWTError:
            return []
        if self.app_only:
            return sorted(claims.get("roles", []))
        return sorted(str(claims.get("scp", "")).split())


def _error(response: requests.Response) -> tuple[str, str]:
    """Graph's ``{"error": {"code", "message"}}``, or the start of whatever else came back."""
    try:
        error = response.json().get("error", {})
        return str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, AttributeError):
        return "", response.text[:200]


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` is seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _brief(failure: BaseException) -> str:
    return str(failure).splitlines()[0][:200] if str(failure) else type(failure).__name__
