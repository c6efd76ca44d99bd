"""The provisioning operations on Microsoft Graph's synchronization API (all v1.0): find or create the enterprise
app, its SCIM job and credentials, and drive the job. Each function is one documented request or a short,
idempotent sequence of them; printing is the CLI's business."""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from scim.admin.entra import permissions as ops
from scim.admin.entra.graph import GraphClient, GraphError

# Graph's template for "Integrate any other application you don't find in the gallery (Non-gallery)".
NON_GALLERY_TEMPLATE = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"
SCIM_TEMPLATE_TAGS = ("scim", "customscim")
DEFAULT_APP_ROLE = "00000000-0000-0000-0000-000000000000"
SP_VISIBLE_WITHIN = 120.0  # seconds a new service principal may take to replicate


class ProvisioningError(Exception):
    """A step that cannot go on; ``str()`` says what to do."""


@dataclass(frozen=True)
class App:
    service_principal_id: str
    app_id: str
    display_name: str
    created: bool = False


@dataclass(frozen=True)
class Credentials:
    tenant_url: str
    secret_token: str

    def pairs(self) -> list[dict[str, str]]:
        """synchronizationSecretKeyStringValuePair collection: the keys Entra's portal saves for a SCIM app."""
        return [{"key": "BaseAddress", "value": self.tenant_url}, {"key": "SecretToken", "value": self.secret_token}]


def odata_string(value: str) -> str:
    """An OData string literal: quotes doubled, so a display name is data, never filter syntax."""
    return "'" + value.replace("'", "''") + "'"


def find_app(graph: GraphClient, name: str) -> App | None:
    """The enterprise app with exactly this display name; two is ambiguous and refused rather than guessed."""
    found = graph.call(
        "GET",
        "servicePrincipals",
        ops.FIND_APP,
        params={"$filter": f"displayName eq {odata_string(name)}", "$select": "id,appId,displayName"},
    )["value"]
    if len(found) > 1:
        ids = ", ".join(sp["id"] for sp in found)
        raise ProvisioningError(f"{len(found)} enterprise apps are named {name!r} ({ids}); rename all but one.")
    if not found:
        return None
    return App(found[0]["id"], found[0]["appId"], found[0]["displayName"])


def require_app(graph: GraphClient, name: str) -> App:
    app = find_app(graph, name)
    if app is None:
        raise ProvisioningError(f"No enterprise app is named {name!r}: run python -m scim entra connect first.")
    return app


def create_app(graph: GraphClient, name: str, sleep: Callable[[float], None] = time.sleep) -> App:
    """Instantiate the non-gallery template, then wait until its service principal can be read: Graph creates it
    asynchronously and other calls 404 until it has replicated. Not retried on 5xx: a second instantiate would
    make a second app; re-running ``connect`` finds the first by name instead."""
    created = graph.call(
        "POST",
        f"applicationTemplates/{NON_GALLERY_TEMPLATE}/instantiate",
        ops.CREATE_APP,
        body={"displayName": name},
        retry_errors=False,
    )
    sp = created["servicePrincipal"]
    deadline = time.monotonic() + SP_VISIBLE_WITHIN
    wait = 1.0
    while True:
        try:
            graph.call("GET", f"servicePrincipals/{sp['id']}", ops.FIND_APP, params={"$select": "id"})
            return App(sp["id"], sp["appId"], sp["displayName"], created=True)
        except GraphError as failure:
            if failure.status != 404 or time.monotonic() > deadline:
                raise
        sleep(wait)
        wait = min(wait * 2, 10.0)


def find_job(graph: GraphClient, app: App) -> dict | None:
    jobs = graph.call("GET", f"servicePrincipals/{app.service_principal_id}/synchronization/jobs", ops.READ_SYNC)
    scim_jobs = [job for job in jobs["value"] if str(job.get("templateId", "")).lower() in SCIM_TEMPLATE_TAGS]
    return (scim_jobs or jobs["value"] or [None])[0]


def require_job(graph: GraphClient, app: App) -> dict:
    job = find_job(graph, app)
    if job is None:
        raise ProvisioningError(f"{app.display_name!r} has no provisioning job: run python -m scim entra connect.")
    return job


def create_job(graph: GraphClient, app: App) -> dict:
    """A job from the SCIM template Graph offers for this app (the non-gallery app's is ``scim``)."""
    sp = app.service_principal_id
    templates = graph.call("GET", f"servicePrincipals/{sp}/synchronization/templates", ops.READ_SYNC)["value"]
    chosen = [t for t in templates if str(t.get("factoryTag", "")).lower() in SCIM_TEMPLATE_TAGS] or templates
    if not chosen:
        raise ProvisioningError(f"Graph offers no synchronization template for {app.display_name!r}.")
    body = {"templateId": chosen[0]["id"]}
    return graph.call(
        "POST", f"servicePrincipals/{sp}/synchronization/jobs", ops.WRITE_SYNC, body=body, retry_errors=False
    )


def job_path(app: App, job: dict) -> str:
    return f"servicePrincipals/{app.service_principal_id}/synchronization/jobs/{quote(job['id'], safe='')}"


def validate(graph: GraphClient, app: App, job: dict, credentials: Credentials | None) -> str | None:
    """Entra's Test Connection. None when Entra accepts; otherwise Entra's verdict with what to do about it.
    ``credentials=None`` tests the saved ones."""
    body: dict[str, Any] = (
        {"useSavedCredentials": True, "credentials": []}
        if credentials is None
        else {"useSavedCredentials": False, "credentials": credentials.pairs()}
    )
    try:
        graph.call("POST", f"{job_path(app, job)}/validateCredentials", ops.WRITE_SYNC, body=body)
    except GraphError as failure:
        if failure.status != 400:
            raise
        return _verdict_hint(str(failure))
    return None


def _verdict_hint(verdict: str) -> str:
    if "invalid credentials" in verdict.lower() or "CredentialValidation" in verdict:
        return (
            f"{verdict}\n  The endpoint refused the token: it must be one of the endpoint's SCIM_BEARER_TOKENS "
            "(Key Vault secret scim-bearer-tokens), and the app must have reloaded it."
        )
    if "could not be reached" in verdict or "ServiceIncompatible" in verdict:
        return (
            f"{verdict}\n  Entra could not use the tenant URL. Check it ends in /scim/v2, that the app is running "
            "(GET /health), and that the IP allow-list admits the AzureActiveDirectory service tag."
        )
    return verdict


def save_credentials(graph: GraphClient, app: App, credentials: Credentials, sync_all: bool | None = None) -> None:
    """``sync_all`` sets the scope (True: all users and groups; False: only those assigned); None leaves it out."""
    pairs = credentials.pairs()
    if sync_all is not None:
        pairs.append({"key": "SyncAll", "value": "true" if sync_all else "false"})
    path = f"servicePrincipals/{app.service_principal_id}/synchronization/secrets"
    graph.call("PUT", path, ops.WRITE_SYNC, body={"value": pairs})


def start(graph: GraphClient, app: App, job: dict) -> None:
    graph.call("POST", f"{job_path(app, job)}/start", ops.WRITE_SYNC)


def pause(graph: GraphClient, app: App, job: dict) -> None:
    graph.call("POST", f"{job_path(app, job)}/pause", ops.WRITE_SYNC)


# Restart re-processes every object and clears errors and quarantine; --reset also forgets what the job has
# provisioned (its connector data store), so every user is matched afresh (synchronizationJobRestartCriteria).
RESTART_SCOPE = "Watermark, Escrows, QuarantineState"
RESET_SCOPE = "Full"


def restart(graph: GraphClient, app: App, job: dict, reset: bool) -> None:
    body = {"criteria": {"resetScope": RESET_SCOPE if reset else RESTART_SCOPE}}
    graph.call("POST", f"{job_path(app, job)}/restart", ops.WRITE_SYNC, body=body)


def get_job(graph: GraphClient, app: App, job: dict) -> dict:
    return graph.call("GET", job_path(app, job), ops.READ_SYNC)


def find_user(graph: GraphClient, user: str) -> dict:
    """A user by object id or userPrincipalName (Graph accepts either in the path)."""
    try:
        return graph.call(
            "GET",
            f"users/{quote(user, safe='@')}",
            ops.FIND_USER,
            params={"$select": "id,userPrincipalName,displayName"},
        )
    except GraphError as failure:
        if failure.status == 404:
            raise ProvisioningError(
                f"No user {user!r} in this tenant (give a userPrincipalName or object id)."
            ) from None
        raise


def find_group(graph: GraphClient, group_id: str) -> dict:
    try:
        return graph.call(
            "GET", f"groups/{quote(group_id, safe='')}", ops.FIND_GROUP, params={"$select": "id,displayName"}
        )
    except GraphError as failure:
        if failure.status == 404:
            raise ProvisioningError(f"No group with object id {group_id!r} in this tenant.") from None
        raise


def assign(graph: GraphClient, app: App, principal_id: str) -> bool:
    """Assign a user or group to the app in its "User" role (the default role where the app has none). False when
    it was already assigned, so that re-running connect is harmless."""
    sp = graph.call(
        "GET", f"servicePrincipals/{app.service_principal_id}", ops.FIND_APP, params={"$select": "id,appRoles"}
    )
    roles = [role for role in sp.get("appRoles", []) if role.get("displayName") == "User"]
    body = {
        "principalId": principal_id,
        "resourceId": app.service_principal_id,
        "appRoleId": roles[0]["id"] if roles else DEFAULT_APP_ROLE,
    }
    try:
        graph.call("POST", f"servicePrincipals/{app.service_principal_id}/appRoleAssignedTo", ops.ASSIGN, body=body)
    except GraphError as failure:
        if failure.status == 400 and "already exists" in str(failure):
            return False
        raise
    return True


def user_rule_id(graph: GraphClient, app: App, job: dict) -> str:
    """The job schema's rule that provisions Entra users: provision-on-demand names it."""
    schema = graph.call("GET", f"{job_path(app, job)}/schema", ops.READ_SYNC)
    for rule in schema.get("synchronizationRules", []):
        if any(m.get("sourceObjectName") == "User" for m in rule.get("objectMappings", [])):
            return str(rule["id"])
    raise ProvisioningError("The job's schema has no rule for users; check the app's attribute mappings.")


def provision_on_demand(graph: GraphClient, app: App, job: dict, user_id: str, rule_id: str) -> dict:
    """Graph answers a stringKeyStringValuePair whose key and value are JSON documents: the result, and the steps."""
    body = {"parameters": [{"ruleId": rule_id, "subjects": [{"objectId": user_id, "objectTypeName": "User"}]}]}
    return graph.call("POST", f"{job_path(app, job)}/provisionOnDemand", ops.WRITE_SYNC, body=body)


def provisioning_logs(
    graph: GraphClient, app: App, since: str | None, failed: bool, page_size: int = 100
) -> Iterator[dict]:
    """The app's provisioning events, newest first, every page (``@odata.nextLink``)."""
    clauses = [f"servicePrincipal/id eq '{app.service_principal_id}'"]
    if since:
        clauses.append(f"activityDateTime gt {since}")
    if failed:
        clauses.append("provisioningStatusInfo/status eq 'failure'")
    params = {"$filter": " and ".join(clauses), "$top": str(page_size)}
    return graph.pages("auditLogs/provisioning", ops.READ_LOGS, params)
