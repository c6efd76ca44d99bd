"""``python -m scim tenants …``: add tenants and create, rotate and revoke their stored credentials.

A secret is printed once, on stdout, when it is created; it is never written to a log or stored (only its scrypt
hash is). Exit codes: 0 done, 1 the request was refused (message on stderr), 2 storage or settings unusable.
"""

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from scim.admin.tenants import AdminError, IssuedSecret, TenantAdmin, TenantSummary
from scim.credentials import DEFAULT_SCOPES, Credential
from scim.settings import ConfigurationError
from scim.store.contract import StoreUnavailable

EXIT_REFUSED = 1
EXIT_UNUSABLE = 2
TOKEN_PATH = "/oauth2/token"  # noqa: S105 (a path)
_DURATION = re.compile(r"(\d{1,5})([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    tenants = commands.add_parser("tenants", help="manage tenants and their stored credentials")
    sub = tenants.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="register a tenant")
    add.add_argument("name")
    add.add_argument(
        "--share-entra-tenant-data",
        action="store_true",
        help="allow a name that is an Entra tenant id (its Entra-issued tokens then reach the same data)",
    )
    listing = sub.add_parser("list", help="tenants and their credentials (never a secret)")
    listing.add_argument("--json", action="store_true")
    secret = sub.add_parser("secret", help="create a bearer secret (Entra's Secret Token) for a tenant")
    secret.add_argument("name")
    secret.add_argument("--expires", help="30d, 12h, YYYY-MM-DD or never (default: never)")
    secret.add_argument("--rotate", action="store_true", help="retire the tenant's other bearer secrets")
    secret.add_argument("--grace", default="1h", help="with --rotate: how long the old secrets keep working")
    client = sub.add_parser("oauth-client", help="create an OAuth client (or, with --client-id, a new secret for it)")
    client.add_argument("name")
    client.add_argument("--scope", action="append", help=f"allowed scope (repeatable; default {DEFAULT_SCOPES[0]})")
    client.add_argument("--expires", help="secret expiry: 365d or YYYY-MM-DD (default 730d, at most 3 years)")
    client.add_argument("--client-id", help="an existing client of this tenant: add a secret (rotation)")
    federate = sub.add_parser("federate", help="trust Entra's Workload Identity Federation for a tenant")
    federate.add_argument("name")
    federate.add_argument("--entra-tenant", required=True, help="the Entra tenant id (GUID)")
    federate.add_argument("--subject", required=True, help="Subject (sub) as Entra's provisioning page shows it")
    federate.add_argument("--audience", required=True, help="Audience (aud) as Entra's provisioning page shows it")
    federate.add_argument("--scope", action="append", help=f"allowed scope (repeatable; default {DEFAULT_SCOPES[0]})")
    federate.add_argument("--client-id", help="the client id to give Entra (default: a new GUID)")
    revoke = sub.add_parser("revoke", help="delete a credential by id (a client id revokes all its secrets)")
    revoke.add_argument("id")
    remove = sub.add_parser("remove", help="revoke all of a tenant's credentials and forget it")
    remove.add_argument("name")
    remove.add_argument("--delete-data", action="store_true", help="also delete its Users, Groups and memberships")
    sub.add_parser("prune", help="delete the records of expired WIF client assertions (replay protection)")


def run(args: argparse.Namespace) -> int:
    try:
        admin = TenantAdmin.from_environment()
    except ConfigurationError as problem:
        return _fail(str(problem), EXIT_UNUSABLE)
    return asyncio.run(_run(admin, args))


async def _run(admin: TenantAdmin, args: argparse.Namespace) -> int:
    actions: dict[str, Callable[[TenantAdmin, argparse.Namespace], Awaitable[None]]] = {
        "add": _add,
        "list": _list,
        "secret": _secret,
        "oauth-client": _oauth_client,
        "federate": _federate,
        "revoke": _revoke,
        "remove": _remove,
        "prune": _prune,
    }
    async with admin:
        try:
            await actions[args.action](admin, args)
        except AdminError as problem:
            return _fail(str(problem), EXIT_REFUSED)
        except StoreUnavailable as failure:
            return _fail(f"Table Storage failed: {_first_line(failure.__cause__)}", EXIT_UNUSABLE)
    return 0


async def _add(admin: TenantAdmin, args: argparse.Namespace) -> None:
    added = await admin.add_tenant(args.name, args.share_entra_tenant_data)
    print(f"tenant {args.name} {'added' if added else 'exists already'}")


async def _list(admin: TenantAdmin, args: argparse.Namespace) -> None:
    tenants = await admin.list_tenants()
    if args.json:
        print(json.dumps([_summary_json(tenant) for tenant in tenants], indent=2))
        return
    for tenant in tenants:
        print(tenant.name)
        for credential in tenant.credentials:
            print("  " + "  ".join(f"{name}={value}" for name, value in _credential_json(credential).items()))
    if not tenants:
        print("no tenants")


async def _secret(admin: TenantAdmin, args: argparse.Namespace) -> None:
    expires = _expiry(args.expires)
    grace = _duration(args.grace) if args.rotate else None
    issued = await admin.create_secret(args.name, expires, grace)
    _print_issued(issued, "Secret Token")
    if grace is not None:
        print(f"the tenant's other bearer secrets stop working in {args.grace}")


async def _oauth_client(admin: TenantAdmin, args: argparse.Namespace) -> None:
    issued = await admin.create_oauth_client(
        args.name, args.scope or DEFAULT_SCOPES, _expiry(args.expires), args.client_id
    )
    _print_issued(issued, "Client Secret")
    print(f"OAuth token endpoint: https://<your app>{TOKEN_PATH}   scopes: {' '.join(issued.scopes)}")


async def _federate(admin: TenantAdmin, args: argparse.Namespace) -> None:
    federation = await admin.federate(
        args.name, args.entra_tenant, args.subject, args.audience, args.scope or DEFAULT_SCOPES, args.client_id
    )
    print(f"tenant:           {federation.tenant}")
    print(f"Client Identifier {federation.credential_id}")
    print(f"Token Endpoint    https://<your app>{TOKEN_PATH}")
    print(f"trusts            iss=https://login.microsoftonline.com/{federation.entra_tenant}/v2.0")
    print(f"                  sub={federation.subject} aud={federation.audience}")


async def _revoke(admin: TenantAdmin, args: argparse.Namespace) -> None:
    revoked = await admin.revoke(args.id)
    if not revoked:
        raise AdminError(f"no credential has the id {args.id}")
    print(f"revoked {', '.join(revoked)} (effective within 30 s)")


async def _remove(admin: TenantAdmin, args: argparse.Namespace) -> None:
    credentials, rows = await admin.remove_tenant(args.name, args.delete_data)
    data = f", {rows} data rows deleted" if args.delete_data else " (its data is kept; --delete-data deletes it)"
    print(f"tenant {args.name} removed: {credentials} credentials revoked{data}")


async def _prune(admin: TenantAdmin, args: argparse.Namespace) -> None:
    print(f"deleted {await admin.prune_assertions()} expired client-assertion records")


def _print_issued(issued: IssuedSecret, field: str) -> None:
    print(f"tenant:     {issued.tenant}")
    if issued.client_id:
        print(f"Client ID:  {issued.client_id}")
    print(f"secret id:  {issued.credential_id}")
    print(f"expires:    {issued.expires.isoformat() if issued.expires else 'never'}")
    print(f"{field}: {issued.secret}")
    print("(shown once: only its hash is stored)", file=sys.stderr)


def _summary_json(tenant: TenantSummary) -> dict[str, Any]:
    return {"name": tenant.name, "credentials": [_credential_json(c) for c in tenant.credentials]}


def _credential_json(credential: Credential) -> dict[str, Any]:
    """What an operator needs to see; never the hash."""
    shown: dict[str, Any] = {"kind": credential.kind, "id": credential.credential_id}
    if credential.client_id:
        shown["client_id"] = credential.client_id
    if credential.scopes:
        shown["scopes"] = " ".join(credential.scopes)
    if credential.entra_tenant:
        shown.update(entra_tenant=credential.entra_tenant, subject=credential.subject, audience=credential.audience)
    shown["created"] = credential.created.isoformat(timespec="seconds")
    shown["expires"] = credential.expires.isoformat(timespec="seconds") if credential.expires else "never"
    shown["last_used"] = credential.last_used.isoformat(timespec="seconds") if credential.last_used else "never"
    return shown


def _expiry(text: str | None) -> datetime | None:
    if text is None or text == "never":
        return None
    if _DURATION.fullmatch(text):
        return datetime.now(UTC) + _duration(text)
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise AdminError(f"--expires {text!r}: use 365d, 12h, 90m, YYYY-MM-DD or never") from None


def _duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text)
    if match is None:
        raise AdminError(f"{text!r} is not a duration such as 30d, 12h or 90m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _fail(message: str, code: int) -> int:
    print(f"scim tenants: {message}", file=sys.stderr)
    return code


def _first_line(problem: BaseException | None) -> str:
    lines = str(problem or "").strip().splitlines()
    return lines[0] if lines else "no detail"
