"""Sign-in with msal: device code for an admin at a terminal, client secret or certificate for automation.

Device code works over SSH and in Cloud Shell (no browser on this machine). Its tokens are kept in msal's token cache
in the user's profile, readable only by the user, so the next command signs in silently from the refresh token.
App-only tokens are not written anywhere: a CI job asks again each run."""

import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msal
import requests

from scim.admin.entra.clouds import Cloud

# Microsoft Graph Command Line Tools: Microsoft's public client for admin scripts (as used by Graph PowerShell).
# It may request any delegated Graph permission, which the admin consents to once; --client-id picks your own.
DEFAULT_PUBLIC_CLIENT_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"


class SignInError(Exception):
    """Sign-in failed; ``str()`` is the message for the admin, with msal's error code and never a token."""


@dataclass(frozen=True)
class SignInOptions:
    cloud: Cloud
    tenant: str
    client_id: str | None = None
    client_secret: str | None = None
    certificate: Path | None = None
    certificate_password: str | None = None
    token_cache: Path | None = None

    @property
    def app_only(self) -> bool:
        return self.client_secret is not None or self.certificate is not None

    @property
    def authority(self) -> str:
        return f"{self.cloud.authority_host}/{self.tenant}"


def default_token_cache() -> Path:
    """In the user's profile, next to other per-user caches: ``$XDG_CACHE_HOME`` or ``~/.cache`` (``%LOCALAPPDATA%``
    on Windows)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA") or str(Path.home() / ".cache")
    return Path(root) / "scim" / "entra-token-cache.json"


class TokenSource:
    """Hands out a valid access token for Graph on each call; msal refreshes it when it is about to expire."""

    def __init__(
        self,
        options: SignInOptions,
        permissions: list[str],
        session: requests.Session,
        prompt: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True),
    ) -> None:
        self.options = options
        self.permissions = permissions
        self.prompt = prompt
        self._cache = msal.SerializableTokenCache()
        common: dict[str, Any] = {
            "authority": options.authority,
            "http_client": session,
            # Entra's own clouds are known to msal; any other host (a private cloud, a local stand-in) is taken as
            # given rather than checked against login.microsoftonline.com's instance list.
            "instance_discovery": options.cloud.authority_host.startswith("https://login."),
            "token_cache": self._cache,
        }
        if options.app_only and not options.client_id:
            raise SignInError("App-only sign-in needs --client-id (the app registration's application id).")
        try:  # msal reads the authority's OpenID configuration here
            if options.app_only:
                self._app: msal.ClientApplication = msal.ConfidentialClientApplication(
                    options.client_id, client_credential=self._credential(), **common
                )
            else:
                self._load_cache()
                self._app = msal.PublicClientApplication(options.client_id or DEFAULT_PUBLIC_CLIENT_ID, **common)
        except (requests.RequestException, ValueError) as problem:
            raise SignInError(self._unusable(problem)) from None

    def __call__(self) -> str:
        try:
            result = self._acquire()
        except requests.RequestException as problem:
            raise SignInError(self._unusable(problem)) from None
        if "access_token" not in result:
            raise SignInError(_describe(result))
        self._save_cache()
        return str(result["access_token"])

    def _unusable(self, problem: BaseException) -> str:
        detail = str(problem).splitlines()[0][:300] if str(problem) else type(problem).__name__
        return (
            f"Could not use the sign-in service {self.options.authority}: {detail}. Check --tenant (a tenant id or "
            "domain), --cloud or --authority-host, and the network (behind a TLS-inspecting proxy, point "
            "REQUESTS_CA_BUNDLE at its CA)."
        )

    def app_token(self, scope: str) -> tuple[str, int]:
        """An app-only token for another resource (Key Vault), with its expiry as a Unix time."""
        if not self.options.app_only:
            raise SignInError("--key-vault-auth signin needs an app-only sign-in (client secret or certificate).")
        app: msal.ConfidentialClientApplication = self._app  # type: ignore[assignment]
        result = app.acquire_token_for_client([scope]) or {}
        if "access_token" not in result:
            raise SignInError(_describe(result))
        return str(result["access_token"]), int(time.time()) + int(result.get("expires_in", 0))

    def account(self) -> str | None:
        """Who the delegated sign-in is (``user@tenant``), or None for app-only."""
        accounts = [] if self.options.app_only else self._app.get_accounts()
        return accounts[0].get("username") if accounts else None

    def _acquire(self) -> dict[str, Any]:
        if self.options.app_only:
            app: msal.ConfidentialClientApplication = self._app  # type: ignore[assignment]
            return app.acquire_token_for_client([self.options.cloud.app_only_scope]) or {}
        scopes = [self.options.cloud.graph_scope(name) for name in self.permissions]
        public: msal.PublicClientApplication = self._app  # type: ignore[assignment]
        for account in public.get_accounts():
            result = public.acquire_token_silent(scopes, account=account)
            if result and "access_token" in result:
                return result
        flow = public.initiate_device_flow(scopes=scopes)
        if "user_code" not in flow:
            return flow
        self.prompt(str(flow["message"]))
        return public.acquire_token_by_device_flow(flow)

    def _credential(self) -> str | dict[str, str]:
        if self.options.client_secret is not None:
            return self.options.client_secret
        assert self.options.certificate is not None
        return certificate_credential(self.options.certificate, self.options.certificate_password)

    def _load_cache(self) -> None:
        path = self.options.token_cache
        if path and path.exists():
            self._cache.deserialize(path.read_text(encoding="utf-8"))

    def _save_cache(self) -> None:
        """Written only when msal changed it, created owner-only (0600) so other users cannot read the refresh
        token."""
        path = self.options.token_cache
        if self.options.app_only or not path or not self._cache.has_state_changed:
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(self._cache.serialize())
        self._cache.has_state_changed = False


def certificate_credential(path: Path, password: str | None) -> dict[str, Any]:
    """msal's certificate credential from one PEM file holding the private key and its certificate. msal derives
    the thumbprint Entra looks the registered certificate up by, and signs the client assertion with the key."""
    try:
        pem = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as problem:
        raise SignInError(f"Cannot read the certificate {path}: {problem}") from None
    certificate = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.DOTALL)
    key = re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", pem, re.DOTALL)
    if not certificate or not key:
        raise SignInError(f"{path} must be a PEM file holding both the private key and its certificate.")
    credential: dict[str, Any] = {"private_key": key.group(0), "public_certificate": certificate.group(0)}
    if password:
        credential["passphrase"] = password
    return credential


def _describe(result: dict[str, Any]) -> str:
    """msal's error and the first line of its description (which has a trace id, never a secret)."""
    error = result.get("error", "no token")
    description = str(result.get("error_description", "")).splitlines()
    detail = f": {description[0]}" if description else ""
    hints = {
        "invalid_client": " Check the client secret or certificate registered for --client-id.",
        "unauthorized_client": " The app is not enabled for this sign-in flow in this tenant.",
        "expired_token": " The device code expired before sign-in finished; run the command again.",
        "authorization_declined": " The sign-in was declined in the browser.",
    }
    return f"Sign-in failed ({error}){detail}.{hints.get(str(error), '')}"
