"""A stand-in for Entra's sign-in service (an OpenID authority): tenant discovery, the device authorization grant,
refresh tokens and the client credentials grant (secret or certificate assertion), as Microsoft identity platform
v2.0 documents them. msal talks to it unchanged; anything off the documented shape is recorded in ``violations``.

Access tokens are JWTs signed with ``token_key`` (HS256): the Graph stand-in verifies them with the same key and
reads ``roles`` (app-only) or ``scp`` (delegated), as Graph does."""

import base64
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography import x509

from tests.standins.https_server import HttpsServer, Request, Response

TENANT_ID = "11111111-2222-3333-4444-555555555555"
ADMIN_OBJECT_ID = "aaaaaaaa-0000-0000-0000-000000000001"
ADMIN_UPN = "admin@contoso.example"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class ConfidentialApp:
    """An app registration with application permissions (``roles``) and a secret or a certificate."""

    roles: list[str]
    secret: str | None = None
    certificate_pem: bytes | None = None


@dataclass
class Authority:
    graph_resource: str
    cert: Path
    key: Path
    token_key: str = field(default_factory=lambda: secrets.token_hex(32))
    confidential: dict[str, ConfidentialApp] = field(default_factory=dict)
    public_clients: set[str] = field(default_factory=set)
    pending_polls: int = 1  # the device flow answers authorization_pending this many times first
    token_lifetime: int = 3600
    violations: list[str] = field(default_factory=list)
    grants: Counter[str] = field(default_factory=Counter)
    scopes_requested: list[list[str]] = field(default_factory=list)
    other_resources: set[str] = field(default_factory=set)  # besides Graph, e.g. a Key Vault stand-in

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._device_codes: dict[str, dict] = {}
        self._refresh_tokens: dict[str, dict] = {}
        self.server = HttpsServer(self.handle, self.cert, self.key)
        self.host = self.server.base_url

    @property
    def issuer(self) -> str:
        return f"{self.host}/{TENANT_ID}/v2.0"

    def handle(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if len(parts) < 2:
            return self._violation(f"{request.method} {request.path}: no tenant in the path", 400)
        if parts[0] not in (TENANT_ID, "contoso.example", "organizations"):
            return self._error(400, "invalid_tenant", f"AADSTS90002: Tenant '{parts[0]}' not found.")
        route = "/".join(parts[1:])
        if request.method == "GET" and route == "v2.0/.well-known/openid-configuration":
            return Response(200, self._discovery())
        if request.method == "POST" and route == "oauth2/v2.0/devicecode":
            return self._device_code(request.form())
        if request.method == "POST" and route == "oauth2/v2.0/token":
            return self._token(request)
        return self._violation(f"{request.method} {request.path}: not an endpoint of the authority", 404)

    def close(self) -> None:
        self.server.close()

    def _discovery(self) -> dict:
        base = f"{self.host}/{TENANT_ID}"
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{self.host}/{TENANT_ID}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "tenant_region_scope": "EU",
        }

    def _device_code(self, form: dict[str, str]) -> Response:
        client_id = form.get("client_id", "")
        if client_id not in self.public_clients:
            return self._error(400, "unauthorized_client", f"AADSTS700016: Application '{client_id}' not found.")
        scopes = form.get("scope", "").split()
        problem = self._check_delegated_scopes(scopes)
        if problem:
            return self._violation(f"devicecode: {problem}", 400)
        self.scopes_requested.append(scopes)
        device_code = secrets.token_urlsafe(24)
        with self._lock:
            self._device_codes[device_code] = {"client_id": client_id, "scopes": scopes, "polls": 0}
        self.grants["devicecode"] += 1
        user_code = secrets.token_hex(4).upper()
        return Response(
            200,
            {
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": "https://microsoft.com/devicelogin",
                "expires_in": 900,
                "interval": 1,
                "message": f"To sign in, use a web browser to open the page https://microsoft.com/devicelogin and "
                f"enter the code {user_code} to authenticate.",
            },
        )

    def _token(self, request: Request) -> Response:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self._violation("token: body is not form-encoded", 400)
        form = request.form()
        grant = form.get("grant_type", "")
        self.grants[grant] += 1
        if grant == DEVICE_CODE_GRANT:
            return self._device_code_token(form)
        if grant == "refresh_token":
            return self._refresh(form)
        if grant == "client_credentials":
            return self._client_credentials(form)
        return self._violation(f"token: grant_type {grant!r} is not one msal should send here", 400)

    def _device_code_token(self, form: dict[str, str]) -> Response:
        with self._lock:
            flow = self._device_codes.get(form.get("device_code", ""))
            if flow is None or flow["client_id"] != form.get("client_id"):
                return self._error(400, "invalid_grant", "AADSTS70000: unknown device code")
            flow["polls"] += 1
            if flow["polls"] <= self.pending_polls:
                return self._error(400, "authorization_pending", "AADSTS70016: pending end-user authorization")
            del self._device_codes[form["device_code"]]
        return Response(200, self._user_tokens(flow["client_id"], flow["scopes"]))

    def _refresh(self, form: dict[str, str]) -> Response:
        with self._lock:
            grant = self._refresh_tokens.get(form.get("refresh_token", ""))
        if grant is None or grant["client_id"] != form.get("client_id"):
            return self._error(400, "invalid_grant", "AADSTS9002313: invalid refresh token")
        return Response(200, self._user_tokens(grant["client_id"], form.get("scope", "").split()))

    def _client_credentials(self, form: dict[str, str]) -> Response:
        client_id = form.get("client_id", "")
        app = self.confidential.get(client_id)
        if app is None:
            return self._error(400, "unauthorized_client", f"AADSTS700016: Application '{client_id}' not found.")
        resources = {self.graph_resource, *self.other_resources}
        resource = form.get("scope", "").removesuffix("/.default")
        if not form.get("scope", "").endswith("/.default") or resource not in resources:
            return self._violation(f"client_credentials: scope {form.get('scope')!r} is not <resource>/.default", 400)
        if "client_secret" in form:
            if app.secret is None or not secrets.compare_digest(form["client_secret"], app.secret):
                return self._error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        elif form.get("client_assertion_type") == JWT_BEARER:
            problem = self._check_assertion(client_id, app, form.get("client_assertion", ""))
            if problem:
                return self._error(401, "invalid_client", f"AADSTS700027: {problem}")
        else:
            return self._violation("client_credentials: neither client_secret nor a jwt-bearer assertion", 400)
        claims = {"roles": app.roles, "appid": client_id, "idtyp": "app", "oid": secrets.token_hex(8), "aud": resource}
        return Response(200, {"token_type": "Bearer", "expires_in": self.token_lifetime, **self._access(claims)})

    def _check_assertion(self, client_id: str, app: ConfidentialApp, assertion: str) -> str | None:
        if app.certificate_pem is None:
            return "no certificate registered for this app"
        public_key = x509.load_pem_x509_certificate(app.certificate_pem).public_key()
        token_endpoint = f"{self.host}/{TENANT_ID}/oauth2/v2.0/token"
        try:
            claims = jwt.decode(assertion, public_key, algorithms=["RS256", "PS256"], audience=token_endpoint)  # type: ignore[arg-type]
        except jwt.PyJWTError as problem:
            return f"client assertion rejected: {problem}"
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            return "client assertion iss/sub is not the client id"
        header = jwt.get_unverified_header(assertion)
        if "x5t" not in header and "x5t#S256" not in header:
            return "client assertion has no certificate thumbprint"
        return None

    def _check_delegated_scopes(self, scopes: list[str]) -> str | None:
        resource = [scope for scope in scopes if "/" in scope]
        if not resource:
            return f"no Graph scope among {scopes}"
        foreign = [scope for scope in resource if not scope.startswith(self.graph_resource + "/")]
        if foreign:
            return f"scopes {foreign} are not for the Graph resource {self.graph_resource}"
        return None

    def _user_tokens(self, client_id: str, scopes: list[str]) -> dict:
        now = int(time.time())
        permissions = sorted(scope.rsplit("/", 1)[1] for scope in scopes if scope.startswith(self.graph_resource))
        refresh_token = secrets.token_urlsafe(32)
        with self._lock:
            self._refresh_tokens[refresh_token] = {"client_id": client_id}
        id_claims = {
            "iss": self.issuer,
            "aud": client_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime,
            "sub": secrets.token_hex(8),
            "oid": ADMIN_OBJECT_ID,
            "tid": TENANT_ID,
            "preferred_username": ADMIN_UPN,
            "name": "Contoso Admin",
            "ver": "2.0",
        }
        client_info = base64.urlsafe_b64encode(json.dumps({"uid": ADMIN_OBJECT_ID, "utid": TENANT_ID}).encode())
        access = self._access({"scp": " ".join(permissions), "oid": ADMIN_OBJECT_ID, "upn": ADMIN_UPN})
        return {
            "token_type": "Bearer",
            "scope": " ".join(scope for scope in scopes if "/" in scope),
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "refresh_token": refresh_token,
            "id_token": jwt.encode(id_claims, self.token_key, algorithm="HS256"),
            "client_info": client_info.decode().rstrip("="),
            **access,
        }

    def _access(self, claims: dict) -> dict:
        now = int(time.time())
        body = {
            "aud": self.graph_resource,
            "iss": f"https://sts.windows.net/{TENANT_ID}/",
            "tid": TENANT_ID,
            "iat": now,
            "exp": now + self.token_lifetime,
            **claims,
        }
        return {"access_token": jwt.encode(body, self.token_key, algorithm="HS256")}

    def _error(self, status: int, error: str, description: str) -> Response:
        return Response(status, {"error": error, "error_description": description, "error_codes": [0]})

    def _violation(self, problem: str, status: int) -> Response:
        self.violations.append(problem)
        return self._error(status, "invalid_request", problem)
