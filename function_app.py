"""Azure Functions entry point (Python v2 model): one HTTP trigger per SCIM endpoint, routing only, and the change
feed's timer.

Each function adapts the Functions request into a :class:`scim.messages.ScimRequest`, lets the shared handler layer
answer, and adapts the answer back. ``host.json`` sets ``routePrefix`` to "", so the tenant URL an admin pastes into
Entra is ``https://<app>.azurewebsites.net/scim/v2``. Functions are anonymous: the app checks the bearer token itself,
because Entra sends ``Authorization: Bearer`` and no function key.
"""

from urllib.parse import urlsplit

import azure.functions as func

from scim.dispatch import shared_endpoint
from scim.messages import ScimRequest

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

BASE_PATH = "scim/v2"
SWEEP_SCHEDULE = "0 * * * * *"
"""Every minute: the longest a crash between a write's commit and its publish delays that event's delivery."""
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def _serve(req: func.HttpRequest, endpoint: str) -> func.HttpResponse:
    request = ScimRequest(
        method=req.method,
        endpoint=endpoint,
        resource_id=req.route_params.get("id"),
        query=dict(req.params),
        headers=dict(req.headers),
        body=req.get_body() or b"",
        base_url=_base_url(req.url),
    )
    response = await shared_endpoint().handle(request)
    return func.HttpResponse(body=response.body_bytes(), status_code=response.status, headers=response.all_headers())


def _base_url(url: str) -> str:
    """The SCIM base URL as the client addressed it, for ``meta.location`` and ``Location``."""
    parts = urlsplit(url)
    index = parts.path.lower().find(f"/{BASE_PATH.lower()}")
    path = parts.path[: index + len(BASE_PATH) + 1] if index >= 0 else f"/{BASE_PATH}"
    return f"{parts.scheme}://{parts.netloc}{path}"


@app.route(route="health", methods=["GET"])
async def health(req: func.HttpRequest) -> func.HttpResponse:
    """Unauthenticated: 200 when storage answers, 503 when not; no data, no settings."""
    response = await shared_endpoint().health()
    return func.HttpResponse(body=response.body_bytes(), status_code=response.status, headers=response.all_headers())


@app.route(route="oauth2/token", methods=ALL_METHODS)
async def oauth2_token(req: func.HttpRequest) -> func.HttpResponse:
    """OAuth 2.0 client credentials (and Workload Identity Federation) for Entra: the Token Endpoint it is given."""
    body = req.get_body() or b""
    request = ScimRequest(method=req.method, endpoint="oauth2/token", headers=dict(req.headers), body=body)
    response = await shared_endpoint().token(request)
    return func.HttpResponse(body=response.body_bytes(), status_code=response.status, headers=response.all_headers())


@app.route(route=f"{BASE_PATH}/Users", methods=ALL_METHODS)
async def users(req: func.HttpRequest) -> func.HttpResponse:
    return await _serve(req, "Users")


@app.route(route=f"{BASE_PATH}/Users/{{id}}", methods=ALL_METHODS)
async def user(req: func.HttpRequest) -> func.HttpResponse:
    return await _serve(req, "Users")


@app.route(route=f"{BASE_PATH}/Groups", methods=ALL_METHODS)
async def groups(req: func.HttpRequest) -> func.HttpResponse:
    return await _serve(req, "Groups")


@app.route(route=f"{BASE_PATH}/Groups/{{id}}", methods=ALL_METHODS)
async def group(req: func.HttpRequest) -> func.HttpResponse:
    return await _serve(req, "Groups")


@app.route(route=f"{BASE_PATH}/ServiceProviderConfig", methods=ALL_METHODS)
async def service_provider_config(req: func.HttpRequest) -> func.HttpResponse:
    return await _serve(req, "ServiceProviderConfig")


@app.route(route=f"{BASE_PATH}/Schemas", methods=ALL_METHODS)
async def schemas(req: func.HttpRequest) -> func.HttpResponse:
    return await _serve(req, "Schemas")


@app.route(route=f"{BASE_PATH}/Schemas/{{id}}", methods=ALL_METHODS)
async def schema(req: func.HttpRequest) -> func.HttpResponse:
    return await _serve(req, "Schemas")


@app.route(route=f"{BASE_PATH}/ResourceTypes", methods=ALL_METHODS)
async def resource_types(req: func.HttpRequest) -> func.HttpResponse:
    return await _serve(req, "ResourceTypes")


@app.route(route=f"{BASE_PATH}/ResourceTypes/{{id}}", methods=ALL_METHODS)
async def resource_type(req: func.HttpRequest) -> func.HttpResponse:
    return await _serve(req, "ResourceTypes")


@app.route(route=f"{BASE_PATH}/Changes", methods=ALL_METHODS)
async def changes(req: func.HttpRequest) -> func.HttpResponse:
    """The pull change feed (README, "Change feed"): the authenticated tenant's events as CloudEvents."""
    return await _serve(req, "Changes")


@app.timer_trigger(schedule=SWEEP_SCHEDULE, arg_name="timer", run_on_startup=False)
async def change_feed_sweep(timer: func.TimerRequest) -> None:
    """Publishes the change feed's events that no write's own publish sent (a crash between commit and publish)
    and deletes events past their retention (README, "Delivery to an Azure Storage Queue"); nothing while the feed
    or its queue is off."""
    await shared_endpoint().sweep()


@app.route(route=f"{BASE_PATH}/.search", methods=ALL_METHODS)
async def search(req: func.HttpRequest) -> func.HttpResponse:
    return await _serve(req, ".search")


@app.route(route=f"{BASE_PATH}/{{*path}}", methods=ALL_METHODS)
async def unknown_endpoint(req: func.HttpRequest) -> func.HttpResponse:
    """Anything else under the base URL gets a SCIM 404 body, not the host's empty one."""
    return await _serve(req, "")
