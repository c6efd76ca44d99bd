"""A stand-in for the Microsoft Graph requests ``python -m scim entra`` makes (v1.0), serving the documented
responses and checking every request against the documented shape: method, path, query parameters, required body
fields, headers (Bearer token from the authority stand-in, Content-Type on bodies) and the permission in the token.
Anything off-shape is answered 400 and recorded in ``violations``; tests assert it stays empty.

Its provisioning service is real enough to test against: ``validateCredentials`` runs Entra's Test Connection
query against the saved tenant URL with the saved token, and ``provisionOnDemand`` sends Entra's documented SCIM
request sequence for one user (match by userName, then create or update), so the user appears in the endpoint."""

import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import requests

from tests.standins.https_server import HttpsServer, Request, Response

CUSTOM_APP_TEMPLATE = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"
USER_ROLE_ID = "18d14569-c3bd-439b-9a66-3a2aee01d14f"  # a non-gallery app's "User" app role
# The keys Graph documents for synchronization secrets ("Supported key value pairs").
SECRET_KEYS = {"BaseAddress", "SecretToken", "SyncNotificationSettings", "SyncAll", "SkipOutOfScopeDeletions"}
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

# The permissions that suffice for each kind of call (least privileged first), from Graph's permission tables.
APP_READ = ("Application.Read.All", "Application.ReadWrite.All", "Application.ReadWrite.OwnedBy")
APP_WRITE = ("Application.ReadWrite.All", "Application.ReadWrite.OwnedBy")
SYNC_READ = ("Synchronization.Read.All", "Synchronization.ReadWrite.All", "Application.ReadWrite.OwnedBy")
SYNC_WRITE = ("Synchronization.ReadWrite.All", "Application.ReadWrite.OwnedBy")
LOGS_READ = ("AuditLog.Read.All",)
USER_READ = ("User.ReadBasic.All", "User.Read.All")
GROUP_READ = ("GroupMember.Read.All", "Group.Read.All")
ASSIGN = ("AppRoleAssignment.ReadWrite.All",)


@dataclass
class Job:
    id: str
    template_id: str
    state: str = "Disabled"
    code: str = "NotConfigured"
    quarantine: dict | None = None
    last_execution: dict | None = None
    progress: list = field(default_factory=list)


@dataclass
class App:
    display_name: str
    app_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    application_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    sp_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invisible_reads: int = 1  # GETs of the new service principal that 404 (replication), as Graph's docs warn
    jobs: dict[str, Job] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    assignments: list[dict] = field(default_factory=list)

    def service_principal(self) -> dict:
        return {
            "id": self.sp_id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "applicationTemplateId": CUSTOM_APP_TEMPLATE,
            "appRoles": [
                {"id": USER_ROLE_ID, "value": None, "displayName": "User", "allowedMemberTypes": ["User"]},
                {"id": str(uuid.uuid4()), "value": "msiam_access", "displayName": "msiam_access"},
            ],
            "servicePrincipalType": "Application",
            "tags": ["WindowsAzureActiveDirectoryCustomSingleSignOnApplication"],
        }


@dataclass
class Route:
    method: str
    pattern: str
    permissions: tuple[str, ...]
    handle: Callable[[Request, re.Match[str]], Response]
    query: frozenset[str] = frozenset()  # allowed parameters
    body: tuple[str, ...] | None = None  # required top-level fields; None: no body allowed


class Graph:
    """State of one tenant's directory and provisioning, behind Graph's documented requests."""

    def __init__(self, token_key: str, resource: str, cert: Path, key: Path) -> None:
        self.token_key = token_key
        self.resource = resource
        self.apps: dict[str, App] = {}
        self.users: dict[str, dict] = {}
        self.groups: dict[str, dict] = {}
        self.logs: list[dict] = []
        self.violations: list[str] = []
        self.requests: list[str] = []
        self.faults: list[tuple[int, str | None]] = []  # (status, Retry-After) for the next requests
        self.scim_requests: list[str] = []
        self._on_demand: list[float] = []
        self._lock = threading.RLock()
        self.routes = self._routes()
        self.server = HttpsServer(self.handle, cert, key)
        self.endpoint = self.server.base_url

    def close(self) -> None:
        self.server.close()

    # Test set-up helpers.
    def add_user(self, upn: str, given: str, family: str) -> dict:
        user = {
            "id": str(uuid.uuid4()),
            "userPrincipalName": upn,
            "displayName": f"{given} {family}",
            "givenName": given,
            "surname": family,
            "mail": upn,
            "mailNickname": upn.split("@")[0],
            "accountEnabled": True,
        }
        self.users[user["id"]] = user
        return user

    def app(self, display_name: str) -> App:
        (found,) = [app for app in self.apps.values() if app.display_name == display_name]
        return found

    def add_logs(self, service_principal_id: str, count: int, *, failed_every: int = 0) -> None:
        for index in range(count):
            failed = failed_every and index % failed_every == 0
            self.logs.append(_log_entry(service_principal_id, f"user{index}@contoso.example", failed, index))

    # Serving.
    def handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(f"{request.method} {request.path}")
            if self.faults:
                status, retry_after = self.faults.pop(0)
                headers = {"Retry-After": retry_after} if retry_after else {}
                code = "TooManyRequests" if status == 429 else "ServiceUnavailable"
                return Response(status, {"error": {"code": code, "message": "Please retry."}}, headers)
        for route in self.routes:
            match = re.fullmatch(route.pattern, request.path)
            if match and route.method == request.method:
                return self._serve(route, request, match)
        return self._violation(f"{request.method} {request.path}: no such documented request", 400)

    def _serve(self, route: Route, request: Request, match: re.Match[str]) -> Response:
        problem = self._check_shape(route, request)
        if problem:
            return self._violation(f"{request.method} {request.path}: {problem}", 400)
        claims = self._claims(request)
        if claims is None:
            return Response(401, _error("InvalidAuthenticationToken", "Access token validation failure."))
        granted = set(claims.get("roles", [])) | set(str(claims.get("scp", "")).split())
        if not granted & set(route.permissions):
            return Response(
                403, _error("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
            )
        with self._lock:
            return route.handle(request, match)

    def _check_shape(self, route: Route, request: Request) -> str | None:
        unknown = set(request.query) - route.query
        if unknown:
            return f"query parameters {sorted(unknown)} are not documented here"
        if request.headers.get("accept", "application/json") not in ("application/json", "*/*"):
            return f"Accept {request.headers['accept']!r}"
        if route.body is None:
            return "a body where none is documented" if request.body else None
        if not request.headers.get("content-type", "").startswith("application/json"):
            return "a body without Content-Type: application/json"
        try:
            body = request.json()
        except ValueError:
            return "a body that is not JSON"
        if not isinstance(body, dict):
            return "a body that is not a JSON object"
        missing = [name for name in route.body if name not in body]
        return f"body lacks required {missing}" if missing else None

    def _claims(self, request: Request) -> dict | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            return None
        try:
            return jwt.decode(token, self.token_key, algorithms=["HS256"], audience=self.resource)
        except jwt.PyJWTError:
            return None

    def _violation(self, problem: str, status: int) -> Response:
        self.violations.append(problem)
        return Response(status, _error("BadRequest", problem))

    def _routes(self) -> list[Route]:
        sp = r"/v1\.0/servicePrincipals/(?P<sp>[0-9a-f-]{36})"
        job = sp + r"/synchronization/jobs/(?P<job>[^/]+)"
        return [
            Route("GET", r"/v1\.0/servicePrincipals", APP_READ, self._find_sp, frozenset({"$filter", "$select"})),
            Route(
                "POST",
                r"/v1\.0/applicationTemplates/(?P<template>[^/]+)/instantiate",
                APP_WRITE,
                self._instantiate,
                body=("displayName",),
            ),
            Route("GET", sp, APP_READ, self._get_sp, frozenset({"$select"})),
            Route("GET", sp + "/synchronization/templates", SYNC_READ, self._templates),
            Route("GET", sp + "/synchronization/jobs", SYNC_READ, self._jobs),
            Route("POST", sp + "/synchronization/jobs", SYNC_WRITE, self._create_job, body=("templateId",)),
            Route("PUT", sp + "/synchronization/secrets", SYNC_WRITE, self._put_secrets, body=("value",)),
            Route("GET", job, SYNC_READ, self._get_job),
            Route("GET", job + "/schema", SYNC_READ, self._schema),
            Route("POST", job + "/validateCredentials", SYNC_WRITE, self._validate, body=("credentials",)),
            Route("POST", job + "/start", SYNC_WRITE, self._start),
            Route("POST", job + "/pause", SYNC_WRITE, self._pause),
            Route("POST", job + "/restart", SYNC_WRITE, self._restart, body=("criteria",)),
            Route("POST", job + "/provisionOnDemand", SYNC_WRITE, self._provision, body=("parameters",)),
            Route(
                "POST", sp + "/appRoleAssignedTo", ASSIGN, self._assign, body=("principalId", "resourceId", "appRoleId")
            ),
            Route("GET", r"/v1\.0/users/(?P<user>[^/]+)", USER_READ, self._get_user, frozenset({"$select"})),
            Route("GET", r"/v1\.0/groups/(?P<group>[^/]+)", GROUP_READ, self._get_group, frozenset({"$select"})),
            Route(
                "GET",
                r"/v1\.0/auditLogs/provisioning",
                LOGS_READ,
                self._logs,
                frozenset({"$filter", "$top", "$skiptoken", "$orderby"}),
            ),
        ]

    # Applications and service principals.
    def _find_sp(self, request: Request, _match: re.Match[str]) -> Response:
        found = re.fullmatch(r"displayName eq '((?:[^']|'')*)'", request.query.get("$filter", ""))
        if not found:
            return self._violation(f"$filter {request.query.get('$filter')!r}: expected displayName eq '…'", 400)
        name = found.group(1).replace("''", "'")
        matches = [app.service_principal() for app in self.apps.values() if app.display_name == name]
        return Response(200, {"@odata.context": f"{self.endpoint}/v1.0/$metadata#servicePrincipals", "value": matches})

    def _instantiate(self, request: Request, match: re.Match[str]) -> Response:
        if match["template"] != CUSTOM_APP_TEMPLATE:
            return self._violation(f"instantiate: template {match['template']} is not the non-gallery template", 400)
        app = App(request.json()["displayName"])
        self.apps[app.sp_id] = app
        application = {"id": app.application_id, "appId": app.app_id, "displayName": app.display_name}
        return Response(201, {"application": application, "servicePrincipal": app.service_principal()})

    def _get_sp(self, _request: Request, match: re.Match[str]) -> Response:
        app = self.apps.get(match["sp"])
        if app is not None and app.invisible_reads > 0:
            app.invisible_reads -= 1
            app = None
        if app is None:
            return Response(404, _error("Request_ResourceNotFound", f"Resource '{match['sp']}' does not exist."))
        return Response(200, app.service_principal())

    def _app(self, match: re.Match[str]) -> App | Response:
        app = self.apps.get(match["sp"])
        if app is None:
            return Response(404, _error("Request_ResourceNotFound", f"Resource '{match['sp']}' does not exist."))
        return app

    def _job(self, match: re.Match[str]) -> tuple[App, Job] | Response:
        app = self._app(match)
        if isinstance(app, Response):
            return app
        job = app.jobs.get(match["job"])
        if job is None:
            return Response(404, _error("ResourceNotFound", f"Job '{match['job']}' does not exist."))
        return app, job

    # Synchronization.
    def _templates(self, _request: Request, match: re.Match[str]) -> Response:
        app = self._app(match)
        if isinstance(app, Response):
            return app
        template = {"id": "scim", "factoryTag": "scim", "applicationId": app.app_id, "default": True, "metadata": []}
        return Response(200, {"value": [template]})

    def _jobs(self, _request: Request, match: re.Match[str]) -> Response:
        app = self._app(match)
        if isinstance(app, Response):
            return app
        return Response(200, {"value": [_job_json(job) for job in app.jobs.values()]})

    def _create_job(self, request: Request, match: re.Match[str]) -> Response:
        app = self._app(match)
        if isinstance(app, Response):
            return app
        template_id = request.json()["templateId"]
        if template_id != "scim":
            return Response(400, _error("BadRequest", f"Template '{template_id}' is not available for this app."))
        job = Job(f"scim.{secrets.token_hex(16)}.{secrets.token_hex(16)}", template_id)
        app.jobs[job.id] = job
        return Response(201, _job_json(job))

    def _put_secrets(self, request: Request, match: re.Match[str]) -> Response:
        app = self._app(match)
        if isinstance(app, Response):
            return app
        pairs = request.json()["value"]
        if not isinstance(pairs, list) or not all(isinstance(p, dict) and {"key", "value"} <= set(p) for p in pairs):
            return self._violation("secrets: value must be a list of {key, value}", 400)
        unknown = {pair["key"] for pair in pairs} - SECRET_KEYS
        if unknown:
            return self._violation(f"secrets: keys {sorted(unknown)} are not synchronizationSecret values", 400)
        app.secrets = {pair["key"]: pair["value"] for pair in pairs}
        return Response(204)

    def _get_job(self, _request: Request, match: re.Match[str]) -> Response:
        found = self._job(match)
        return found if isinstance(found, Response) else Response(200, _job_json(found[1]))

    def _schema(self, _request: Request, match: re.Match[str]) -> Response:
        found = self._job(match)
        if isinstance(found, Response):
            return found
        rule = {
            "id": "03f7d90d-bf71-41b1-bda6-aaf0ddbee5d8",
            "name": "USER_OUTBOUND_USER",
            "sourceDirectoryName": "Azure Active Directory",
            "targetDirectoryName": "customappsso",
            "objectMappings": [
                {
                    "enabled": True,
                    "name": "Provision Microsoft Entra ID Users",
                    "sourceObjectName": "User",
                    "targetObjectName": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                },
                {
                    "enabled": True,
                    "name": "Provision Microsoft Entra ID Groups",
                    "sourceObjectName": "Group",
                    "targetObjectName": "urn:ietf:params:scim:schemas:core:2.0:Group",
                },
            ],
        }
        return Response(200, {"directories": [], "synchronizationRules": [rule]})

    def _validate(self, request: Request, match: re.Match[str]) -> Response:
        found = self._job(match)
        if isinstance(found, Response):
            return found
        body = request.json()
        credentials = found[0].secrets if body.get("useSavedCredentials") else _pairs(body["credentials"])
        problem = self._test_connection(credentials)
        if problem:
            return Response(400, _error("BadRequest", problem))
        return Response(204)

    def _test_connection(self, credentials: dict[str, str]) -> str | None:
        """Entra's Test Connection: a filter on a random userName must give 200 and an empty ListResponse."""
        base = credentials.get("BaseAddress", "")
        try:
            answer = self._scim(credentials, "GET", "/Users", params={"filter": f'userName eq "{uuid.uuid4()}"'})
        except requests.RequestException:
            return (
                "Error code: SystemForCrossDomainIdentityManagementServiceIncompatible. You appear to have entered "
                f"a tenant URL that could not be reached: {base}"
            )
        if answer.status_code in (401, 403):
            return (
                "Error code: SystemForCrossDomainIdentityManagementCredentialValidationUnavailable. You appear to "
                f"have entered invalid credentials. Details: HTTP {answer.status_code} from {base}/Users"
            )
        if answer.status_code != 200 or answer.json().get("totalResults") != 0:
            return f"Error code: SystemForCrossDomainIdentityManagementServiceIncompatible. HTTP {answer.status_code}"
        return None

    def _start(self, request: Request, match: re.Match[str]) -> Response:
        found = self._job(match)
        if isinstance(found, Response):
            return found
        app, job = found
        if "BaseAddress" not in app.secrets:
            return Response(400, _error("BadRequest", "Credentials are not configured for this job."))
        job.state, job.quarantine = "Active", None
        job.code = "NotRun" if job.last_execution is None else "Active"
        return Response(204)

    def _pause(self, _request: Request, match: re.Match[str]) -> Response:
        found = self._job(match)
        if isinstance(found, Response):
            return found
        found[1].state, found[1].code = "Paused", "Paused"
        return Response(204)

    def _restart(self, request: Request, match: re.Match[str]) -> Response:
        found = self._job(match)
        if isinstance(found, Response):
            return found
        criteria = request.json()["criteria"]
        scopes = {part.strip() for part in str(criteria.get("resetScope", "")).split(",")}
        allowed = {"None", "ConnectorDataStore", "Escrows", "Watermark", "QuarantineState", "Full", "ForceDeletes"}
        if not scopes <= allowed:
            return self._violation(f"restart: resetScope {sorted(scopes - allowed)} not documented", 400)
        job = found[1]
        job.state, job.code, job.quarantine = "Active", "NotRun", None
        return Response(204)

    def _provision(self, request: Request, match: re.Match[str]) -> Response:
        found = self._job(match)
        if isinstance(found, Response):
            return found
        now = time.monotonic()
        self._on_demand = [moment for moment in self._on_demand if now - moment < 10]
        if len(self._on_demand) >= 5:  # documented: 5 requests per 10 seconds
            return Response(429, _error("TooManyRequests", "Rate limit exceeded."), {"Retry-After": "2"})
        self._on_demand.append(now)
        parameters = request.json()["parameters"]
        try:
            (parameter,) = parameters
            (subject,) = parameter["subjects"]
            rule_id, object_id, type_name = parameter["ruleId"], subject["objectId"], subject["objectTypeName"]
        except (ValueError, KeyError, TypeError):
            return self._violation("provisionOnDemand: parameters[0] needs ruleId and one subject", 400)
        if rule_id != "03f7d90d-bf71-41b1-bda6-aaf0ddbee5d8" or type_name != "User":
            return self._violation(f"provisionOnDemand: rule {rule_id} / {type_name} not in the job's schema", 400)
        user = self.users.get(object_id)
        if user is None:
            return Response(404, _error("Request_ResourceNotFound", f"Resource '{object_id}' does not exist."))
        app = found[0]
        result = self._provision_user(app, user)
        self.logs.append({**result["log"], "servicePrincipal": {"id": app.sp_id, "displayName": app.display_name}})
        return Response(200, {"key": json.dumps(result["key"]), "value": json.dumps(result["value"])})

    def _provision_user(self, app: App, user: dict) -> dict:
        """Entra's sequence for one assigned user (entra-client.md §C, §E): match on userName, then POST the
        tutorial's create body, or PATCH the attributes that differ."""
        steps = [
            _step(
                "EntryImport",
                "Import",
                "Success",
                f"Retrieved User '{user['userPrincipalName']}' from Azure Active Directory",
                {
                    "objectId": user["id"],
                    "accountEnabled": user["accountEnabled"],
                    "displayName": user["displayName"],
                    "mailNickname": user["mailNickname"],
                    "userPrincipalName": user["userPrincipalName"],
                },
            )
        ]
        steps.append(
            _step(
                "EntrySynchronizationScoping",
                "Scoping",
                "Success",
                "Determine if User in scope by evaluating against each scoping filter",
            )
        )
        upn = user["userPrincipalName"]
        try:
            found = self._scim(app.secrets, "GET", "/Users", params={"filter": f'userName eq "{upn}"'})
            if found.status_code != 200:
                return self._export_failed(steps, user, found, "EntryImport", "Matching")
            resources = found.json().get("Resources", [])
            if resources:
                target = resources[0]
                matched = {key: target.get(key) for key in ("active", "displayName", "externalId", "id", "userName")}
                steps.append(
                    _step("EntryImport", "Matching", "Success", f"Retrieved '{upn}' from customappsso", matched)
                )
                ops = [{"op": "Replace", "path": "displayName", "value": user["displayName"]}]
                answer = self._scim(
                    app.secrets, "PATCH", f"/Users/{target['id']}", body={"schemas": [PATCH_OP], "Operations": ops}
                )
                action = "Update"
            else:
                steps.append(
                    _step(
                        "EntryImport",
                        "Matching",
                        "Success",
                        f"User '{upn}' will be created in customappsso (no matching User was found)",
                    )
                )
                answer = self._scim(app.secrets, "POST", "/Users", body=_scim_user(user))
                action = "Create"
        except requests.RequestException as failure:
            return self._export_failed(steps, user, None, "EntryExportAdd", "Export", str(failure))
        if answer.status_code not in (200, 201, 204):
            return self._export_failed(steps, user, answer, "EntryExportAdd", "Export")
        target_id = (answer.json() if answer.content else target)["id"]
        steps.append(
            _step(
                f"EntryExport{action}",
                "Export",
                "Success",
                f"User '{upn}' was {action.lower()}d in customappsso",
                {"ReportableIdentifier": upn},
            )
        )
        value = _on_demand_value(user, steps, "Success", target_id, action)
        log = _log_entry(app.sp_id, upn, False, 0, action=action.lower(), source_id=user["id"], target_id=target_id)
        return {"key": {"result": "Success", "details": {}}, "value": value, "log": log}

    def _export_failed(
        self, steps: list, user: dict, answer: requests.Response | None, name: str, kind: str, reason: str = ""
    ) -> dict:
        status = answer.status_code if answer is not None else 0
        detail = reason or (answer.text[:300] if answer is not None else "")
        code = "SystemForCrossDomainIdentityManagementBadResponse"
        steps.append(_step(name, kind, "Failure", f"HTTP {status} from the SCIM endpoint: {detail}"))
        value = _on_demand_value(user, steps, "Failure", None, "Other", code)
        log = _log_entry("", user["userPrincipalName"], True, 0, source_id=user["id"])
        return {
            "key": {"result": "Failure", "details": {"errorCode": code, "errorMessage": detail}},
            "value": value,
            "log": log,
        }

    def _scim(
        self, credentials: dict[str, str], method: str, path: str, *, params: dict | None = None, body: Any = None
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {credentials.get('SecretToken', '')}", "Accept": "application/scim+json"}
        if body is not None:
            headers["Content-Type"] = "application/scim+json"
        self.scim_requests.append(f"{method} {path}")
        url = credentials.get("BaseAddress", "").rstrip("/") + path
        data = json.dumps(body) if body is not None else None
        return requests.request(method, url, params=params, data=data, headers=headers, timeout=15)

    # Directory.
    def _get_user(self, _request: Request, match: re.Match[str]) -> Response:
        key = match["user"]
        for user in self.users.values():
            if key in (user["id"], user["userPrincipalName"]):
                return Response(200, {k: user[k] for k in ("id", "userPrincipalName", "displayName")})
        return Response(404, _error("Request_ResourceNotFound", f"Resource '{key}' does not exist."))

    def _get_group(self, _request: Request, match: re.Match[str]) -> Response:
        group = self.groups.get(match["group"])
        if group is None:
            return Response(404, _error("Request_ResourceNotFound", f"Resource '{match['group']}' does not exist."))
        return Response(200, group)

    def _assign(self, request: Request, match: re.Match[str]) -> Response:
        app = self._app(match)
        if isinstance(app, Response):
            return app
        body = request.json()
        if body["resourceId"] != app.sp_id or body["appRoleId"] not in (
            USER_ROLE_ID,
            "00000000-0000-0000-0000-000000000000",
        ):
            return self._violation("appRoleAssignedTo: resourceId must be the app, appRoleId one of its roles", 400)
        if any(a["principalId"] == body["principalId"] for a in app.assignments):
            return Response(400, _error("Request_BadRequest", "Permission being assigned already exists on the object"))
        assignment = {"id": secrets.token_urlsafe(16), **body}
        app.assignments.append(assignment)
        return Response(201, assignment)

    # Logs.
    def _logs(self, request: Request, _match: re.Match[str]) -> Response:
        clauses = [c.strip() for c in request.query.get("$filter", "").split(" and ") if c.strip()]
        entries = list(self.logs)
        for clause in clauses:
            if found := re.fullmatch(r"servicePrincipal/id eq '([0-9a-f-]{36})'", clause):
                entries = [e for e in entries if e["servicePrincipal"]["id"] == found.group(1)]
            elif found := re.fullmatch(r"activityDateTime gt (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)", clause):
                entries = [e for e in entries if e["activityDateTime"] > found.group(1)]
            elif found := re.fullmatch(r"provisioningStatusInfo/status eq '(success|failure|skipped|warning)'", clause):
                entries = [e for e in entries if e["provisioningStatusInfo"]["status"] == found.group(1)]
            else:
                return self._violation(f"auditLogs/provisioning: $filter clause {clause!r} not supported", 400)
        top = int(request.query.get("$top", "100"))
        start = int(request.query.get("$skiptoken", "0"))
        page = entries[start : start + top]
        body: dict[str, Any] = {
            "@odata.context": f"{self.endpoint}/v1.0/$metadata#auditLogs/provisioning",
            "value": page,
        }
        if start + top < len(entries):
            query = {k: v for k, v in request.query.items() if k != "$skiptoken"} | {"$skiptoken": str(start + top)}
            body["@odata.nextLink"] = f"{self.endpoint}/v1.0/auditLogs/provisioning?{urlencode(query)}"
        return Response(200, body)


def _error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message, "innerError": {"request-id": str(uuid.uuid4())}}}


def _pairs(pairs: list[dict]) -> dict[str, str]:
    return {pair["key"]: pair["value"] for pair in pairs}


def _job_json(job: Job) -> dict:
    return {
        "id": job.id,
        "templateId": job.template_id,
        "schedule": {"expiration": None, "interval": "PT40M", "state": job.state},
        "status": {
            "code": job.code,
            "countSuccessiveCompleteFailures": 3 if job.quarantine else 0,
            "escrowsPruned": False,
            "lastExecution": job.last_execution,
            "lastSuccessfulExecution": None,
            "lastSuccessfulExecutionWithExports": None,
            "progress": job.progress,
            "quarantine": job.quarantine,
            "steadyStateFirstAchievedTime": "0001-01-01T00:00:00Z",
            "steadyStateLastAchievedTime": "0001-01-01T00:00:00Z",
            "synchronizedEntryCountByType": [{"key": "User", "value": 0}],
            "troubleshootingUrl": None,
        },
        "synchronizationJobSettings": [],
    }


def _step(name: str, kind: str, status: str, description: str, details: dict | None = None) -> dict:
    """One provisioningStep as provisionOnDemand reports it; ``details`` are string pairs (the documented example
    lists the source user's attributes on import, the matched target's on matching)."""
    return {
        "name": name,
        "type": kind,
        "status": status,
        "description": description,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "details": {key: str(value) for key, value in (details or {}).items()},
    }


def _scim_user(user: dict) -> dict:
    return {
        "schemas": [CORE_USER, ENTERPRISE_USER],
        "externalId": user["mailNickname"],
        "userName": user["userPrincipalName"],
        "active": user["accountEnabled"],
        "displayName": user["displayName"],
        "emails": [{"primary": True, "type": "work", "value": user["mail"]}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": user["displayName"], "familyName": user["surname"], "givenName": user["givenName"]},
        "roles": [],
    }


def _on_demand_value(
    user: dict, steps: list, status: str, target_id: str | None, action: str, code: str | None = None
) -> dict:
    return {
        "action": action,
        "changeId": str(uuid.uuid4()),
        "provisioningSteps": steps,
        "reportableIdentifier": user["userPrincipalName"],
        "statusInfo": {"status": status, "errorCode": code, "reason": None},
        "sourceIdentity": {"id": user["id"], "type": "User"},
        "targetIdentity": {"id": target_id, "type": ENTERPRISE_USER},
        "targetSystem": {"name": "customappsso"},
    }


def _log_entry(
    sp_id: str, upn: str, failed: bool, index: int, *, action: str = "create", source_id: str = "", target_id: str = ""
) -> dict:
    moment = datetime.now(UTC).replace(microsecond=0)
    when = moment.replace(second=index % 60) if index else moment
    error = (
        {"errorCode": "SystemForCrossDomainIdentityManagementBadResponse", "reason": f"HTTP 409 for {upn}"}
        if failed
        else None
    )
    return {
        "id": str(uuid.uuid4()),
        "activityDateTime": when.isoformat().replace("+00:00", "Z"),
        "jobId": "scim.job",
        "cycleId": str(uuid.uuid4()),
        "changeId": str(uuid.uuid4()),
        "provisioningAction": action,
        "provisioningStatusInfo": {"status": "failure" if failed else "success", "errorInformation": error},
        "servicePrincipal": {"id": sp_id, "displayName": "app"},
        "sourceIdentity": {"id": source_id or str(uuid.uuid4()), "displayName": upn, "identityType": "User"},
        "targetIdentity": {
            "id": target_id,
            "displayName": upn,
            "identityType": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        },
        "provisioningSteps": [],
        "modifiedProperties": [],
    }
