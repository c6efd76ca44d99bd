"""The one entry point of the handler layer: authenticate, route a :class:`ScimRequest` to its operation, and turn
every outcome (including the unexpected) into a SCIM response with one structured log line.

A request body is read here, once, and only a body within these limits reaches a service: at most
:data:`~scim.schemas.MAX_PAYLOAD_BYTES` bytes (else 413), UTF-8, RFC 8259 JSON without ``NaN``/``Infinity``, at most
:data:`MAX_JSON_DEPTH` levels of nesting, no string with an unpaired surrogate, and no object that names one
attribute twice (SCIM attribute names are case-insensitive); anything else is a 400 that changes nothing.
"""

import gc
import json
import logging
import math
import re
import time
from typing import TYPE_CHECKING, Any

from scim import change_feed, cpu_share, declarations, errors, indexes, response_body
from scim.auth import Authenticator
from scim.changes import ChangeRecorder
from scim.credential_directory import CredentialDirectory
from scim.errors import ScimError
from scim.groups import GroupService
from scim.messages import ScimRequest, ScimResponse
from scim.protocol import (
    LIST_RESPONSE_SCHEMA,
    Rendered,
    check_attribute_lists,
    has_lone_surrogate,
    list_response,
    page_of,
    store_error,
)
from scim.schemas import MAX_PAYLOAD_BYTES, resource_type_documents, schema_documents, service_provider_config
from scim.settings import ConfigurationError, Settings, current_settings
from scim.store.contract import StoreError
from scim.store.credentials import CredentialStore
from scim.store.tables import WRITES, MembershipStore, TableStore
from scim.users import UserService

if TYPE_CHECKING:
    from scim.publisher import Publisher
    from scim.store.event_queue import EventQueue
    from scim.token_endpoint import TokenEndpoint

ResourceService = UserService | GroupService

log = logging.getLogger("scim.request")
_JSON_MEDIA_TYPES = ("application/scim+json", "application/json")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""The JSON escape of a surrogate code point (``\\ud800`` to ``\\udfff``), paired or not."""
_SEARCH_PARAMETERS = ("attributes", "excludedAttributes", "filter", "startIndex", "count")
_RESOURCE_METHODS = {"collection": ("GET", "POST"), "item": ("GET", "PUT", "PATCH", "DELETE")}
MAX_JSON_DEPTH = 64
"""The deepest nesting of arrays and objects a request body may have; Entra's deepest bodies need 5 (PatchOp, its
Operations, an operation, its value list, a member). Validation, normalisation and serialisation all recurse over
the body: bounded here, none of them can approach Python's recursion limit. A body deep enough to reach that limit
inside the JSON parser itself (about 1,000 levels) is stopped by the parser's own recursion guard, as invalid JSON."""


HEALTH_BUDGET_SECONDS = 5.0
HEALTH_CACHE_SECONDS = 5.0
"""``/health`` needs no credential, so one storage read answers every probe for this long: probing it in a loop
costs storage nothing more."""


class ScimEndpoint:
    """Settings, the store and the service for one process; built once, on the first request."""

    def __init__(self, settings: Settings, store: TableStore, events: "EventQueue | None" = None) -> None:
        self.settings = settings
        self.store = store
        self._events = events if settings.change_feed else None
        """The change feed's queue (:mod:`scim.publisher`); None: no publisher in this process."""
        self._publisher: Publisher | None = None
        queued = settings.publishes_changes  # whether or not this process runs the publisher: its events are sent
        members = MembershipStore(store, settings.change_feed, queued)
        changes = ChangeRecorder(settings.change_feed, settings.change_feed_snapshots, queued)
        declared = declarations.load(settings.schema_extensions)
        declarations.use(declared)
        indexed = indexes.parse(settings.indexed_attributes, declared)
        self.users = UserService(store, members, settings.undeclared_extensions, indexed, changes)
        self.groups = GroupService(store, members, settings.undeclared_extensions, indexed, changes)
        self.credentials = CredentialDirectory(CredentialStore(store))
        self.authenticator = Authenticator.from_settings(settings, self.credentials)
        self._token_endpoint: TokenEndpoint | None = None
        self._health: tuple[float, bool] | None = None

    async def health(self) -> ScimResponse:
        """Whether storage answers, for load balancers and uptime probes; says nothing about data or settings."""
        now = time.monotonic()
        if self._health is None or now - self._health[0] > HEALTH_CACHE_SECONDS:
            self._health = (now, await self.store.reachable(HEALTH_BUDGET_SECONDS))
        return health_response(self._health[1])

    async def token(self, request: ScimRequest) -> ScimResponse:
        """``POST /oauth2/token``; built on first use (its modules load only where OAuth is used)."""
        if self._token_endpoint is None:
            if not self.settings.token_signing_keys:
                body = {"error": "invalid_request", "error_description": "The token endpoint is off"}
                return ScimResponse(404, body, {"Cache-Control": "no-store", "Content-Type": "application/json"})
            from scim.token_endpoint import build_token_endpoint

            self._token_endpoint = build_token_endpoint(self.settings, self.credentials)
        return await self._token_endpoint.handle(request)

    async def close_token_checks(self) -> None:
        """Close the HTTP sessions that token checks opened to fetch signing keys (the store has its own owner)."""
        await self.authenticator.close()
        if self._token_endpoint is not None:
            await self._token_endpoint.close()

    async def handle(self, request: ScimRequest) -> ScimResponse:
        started = time.perf_counter()
        writes = [0]
        WRITES.set(writes)
        tenant = "-"
        try:
            tenant = await self.authenticator.authenticate(request.header("Authorization"))
            async with cpu_share.request(tenant, lambda: writes[0] > 0):
                with self.store.request_scope():
                    response = await self._route(tenant, request)
                await response_body.encode_large(response)
        except ScimError as exc:
            response = error_response(exc)
        except StoreError as exc:  # a store failure no service translated is still never a 500
            response = error_response(store_error(exc))
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.endpoint)
            response = error_response(ScimError(500, "Internal error"))
        _log(request, response, tenant, started, writes[0])
        if writes[0] and self._events is not None:
            self._kick(tenant)
        return response

    @property
    def publisher(self) -> "Publisher | None":
        """The change feed's queue publisher, built on first use (its modules load only where the feed is on)."""
        if self._publisher is None and self._events is not None:
            from scim.publisher import Publisher

            delay, retention = self.settings.change_feed_publish_delay_seconds, self.settings.change_feed_retention_days
            self._publisher = Publisher(self.store, self._events, delay, retention)
        return self._publisher

    async def close_publisher(self) -> None:
        """Stop kicked passes (the sweep sends what they had not) and close the queue's HTTP session."""
        if self._publisher is not None:
            await self._publisher.close()

    def _kick(self, tenant: str) -> None:
        """A write may have recorded events: publish them in the background, after this answer. Nothing here may
        fail or slow the request; a lost kick only leaves the events for the timer sweep."""
        try:
            if self.publisher is not None:
                self.publisher.kick(tenant)
        except Exception:
            log.exception("could not start the change-feed publisher")

    async def sweep(self) -> None:
        """The timer's pass over every tenant (scim/publisher.py): publishes what kicks missed, then deletes events
        past ``SCIM_CHANGE_FEED_RETENTION_DAYS`` (only those already sent, when a queue is configured)."""
        if not self.settings.change_feed:
            return
        tenants = {tenant for tenant, _ in self.settings.bearer_tokens} | set(self.settings.entra_tenant_ids)
        try:
            stored = await self.credentials.snapshot()
            tenants |= stored.tenants | {credential.tenant for credential in stored.credentials.values()}
        except ScimError:
            log.warning("change-feed sweep: stored tenants unreadable; sweeping the others")
        from scim.publisher import SweepReport, expire

        publisher = self.publisher
        if publisher is not None:
            report = await publisher.sweep(tenants)
        else:
            report = SweepReport(expired=await expire(self.store, tenants, self.settings.change_feed_retention_days))
        if not (report.failed or report.expired or any(done.sent for done in report.passes)):
            return  # an idle sweep every minute is not worth a log line
        summary = {"tenants": len(report.passes), "sent": sum(done.sent for done in report.passes)}
        summary |= {"failed": len(report.failed), "expired": report.expired}
        log.info(json.dumps({"event": "scim.changes.sweep", **summary}))

    async def _route(self, tenant: str, request: ScimRequest) -> ScimResponse:
        check_attribute_lists(request.query)
        endpoint = request.endpoint.lower()
        if endpoint == "users":
            return await self._resources(self.users, tenant, request)
        if endpoint == "groups":
            return await self._resources(self.groups, tenant, request)
        if endpoint == ".search":
            if request.method.upper() != "POST":
                raise ScimError(405, "Search is a POST", headers={"Allow": "POST"})
            return ScimResponse(200, await self._search_all(tenant, _search_query(_json_body(request)), request))
        if endpoint in ("serviceproviderconfig", "schemas", "resourcetypes"):
            return self._discovery(endpoint, request)
        if endpoint == "changes" and not request.resource_id:
            return await self._changes(tenant, request)
        raise errors.not_found("Unknown endpoint")

    async def _changes(self, tenant: str, request: ScimRequest) -> ScimResponse:
        """The pull feed (scim/change_feed.py); it exists only while the feed is on."""
        if not self.settings.change_feed:
            raise errors.not_found("The change feed is off (SCIM_CHANGE_FEED)")
        if request.method.upper() != "GET":
            raise ScimError(405, "The change feed is read with GET", headers={"Allow": "GET"})
        after, limit = change_feed.parameters(request.query)
        settle, retention = self.settings.change_feed_settle_seconds, self.settings.change_feed_retention_days
        document = await change_feed.page(self.store, tenant, after, limit, settle, retention)
        return ScimResponse(200, document, {"Content-Type": "application/json; charset=utf-8"})

    async def _resources(self, service: ResourceService, tenant: str, request: ScimRequest) -> ScimResponse:
        """Users and Groups share one protocol; only a PATCH's answer differs, and the service decides it."""
        method, rid = request.method.upper(), request.resource_id
        allowed = ("POST",) if rid == ".search" else _RESOURCE_METHODS["item" if rid else "collection"]
        if method not in allowed:
            raise ScimError(405, f"{method} is not supported here", headers={"Allow": ", ".join(allowed)})
        base, if_match = request.base_url, request.header("If-Match")
        if method == "POST" and rid == ".search":
            return ScimResponse(200, await service.query(tenant, _search_query(_json_body(request)), base))
        if method == "GET" and rid:
            return _resource(200, await service.get(tenant, rid, request.query, base))
        if method == "GET":
            return ScimResponse(200, await service.query(tenant, request.query, base))
        if method == "POST":
            rendered = await service.create(tenant, _json_body(request), base)
            return _resource(201, rendered, {"Location": rendered.document["meta"]["location"]})
        assert rid is not None
        if method == "PUT":
            return _resource(200, await service.replace(tenant, rid, _json_body(request), if_match, base))
        if method == "PATCH":
            patched = await service.patch(tenant, rid, _json_body(request), if_match, request.query, base)
            return ScimResponse(204) if patched is None else _resource(200, patched)
        await service.delete(tenant, rid, if_match)
        return ScimResponse(204)

    async def _search_all(self, tenant: str, query: dict[str, str], request: ScimRequest) -> dict[str, Any]:
        """A search at the root (RFC 7644 §3.4.3) covers Users then Groups, paged as one list."""
        page = page_of(query)
        users = await self.users.query(tenant, {**query, "count": str(page.count)}, request.base_url)
        after_users = {"startIndex": str(max(page.start - users["totalResults"], 1))}
        after_users["count"] = str(page.count - len(users["Resources"]))
        groups = await self.groups.query(tenant, {**query, **after_users}, request.base_url)
        resources = users["Resources"] + groups["Resources"]
        return list_response(users["totalResults"] + groups["totalResults"], page, resources)

    def _discovery(self, endpoint: str, request: ScimRequest) -> ScimResponse:
        if request.method.upper() != "GET":
            raise ScimError(405, "Discovery endpoints are read-only", headers={"Allow": "GET"})
        base = request.base_url
        if endpoint == "serviceproviderconfig":
            return ScimResponse(200, service_provider_config(base))
        documents = schema_documents(base) if endpoint == "schemas" else resource_type_documents(base)
        if request.resource_id:
            wanted = request.resource_id.lower()
            match = next((doc for doc in documents if str(doc["id"]).lower() == wanted), None)
            if match is None:
                raise errors.not_found("No such schema or resource type")
            return ScimResponse(200, match)
        return ScimResponse(
            200,
            {
                "schemas": [LIST_RESPONSE_SCHEMA],
                "totalResults": len(documents),
                "startIndex": 1,
                "itemsPerPage": len(documents),
                "Resources": documents,
            },
        )


class UnconfiguredEndpoint:
    """Stands in when the settings are unsafe: every request is refused, the endpoint never runs open."""

    def __init__(self, problem: ConfigurationError) -> None:
        self.problem = problem

    async def handle(self, request: ScimRequest) -> ScimResponse:
        log.error("refusing %s %s: %s", request.method, request.endpoint, self.problem)
        return error_response(errors.ScimError(503, "The SCIM endpoint is not configured"))

    async def health(self) -> ScimResponse:
        return health_response(False)

    async def sweep(self) -> None:
        log.error("not sweeping the change feed: %s", self.problem)

    async def token(self, request: ScimRequest) -> ScimResponse:
        log.error("refusing a token request: %s", self.problem)
        body = {"error": "temporarily_unavailable", "error_description": "The endpoint is not configured"}
        return ScimResponse(503, body, {"Cache-Control": "no-store", "Content-Type": "application/json"})


_shared: ScimEndpoint | UnconfiguredEndpoint | None = None


YOUNG_COLLECTION_THRESHOLD = 20_000
"""Objects allocated and not yet freed after which the collector walks the youngest generation (CPython's default
is 700). Most of a request's objects are freed by reference counting within it, so 700 was met in the middle of
every large request: during bench/fairness.py's mix of costliest requests, 129 collections in 8 s, each a loop
step of up to 2 ms, and every tenth a walk of the older generation too (up to 1.5 ms), every hundredth of all live
objects (3.4 ms), whatever request was running. What is left over after reference counting is mostly objects still
in use: every storage call in flight is about 110 (a tenant may have 128 in flight,
:data:`scim.cpu_share.STORAGE_CALLS_PER_TENANT`). With 7,000, four of Entra's 100-member PATCHes at once crossed
it again and again while their calls went out: 61 collections in 20 s, 3.4 ms each on average, freeing nothing;
with 20,000, three. Garbage in reference cycles is not freed by counting, so it still counts: at most 20,000 such
objects (a few megabytes) wait for a collection."""


def settle_collector() -> None:
    """Once the endpoint is built: everything loaded so far (libraries, schemas, validators: about 75,000 objects)
    moved out of the garbage collector's sight (``gc.freeze``; none of it ever becomes garbage, yet every full
    collection walked it all, 90-170 ms during which no tenant's request ran), and the youngest generation collected
    at :data:`YOUNG_COLLECTION_THRESHOLD` objects."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, 10, 10)


def shared_endpoint() -> ScimEndpoint | UnconfiguredEndpoint:
    """The process-wide endpoint: one Table client (one HTTP session) reused by every invocation; once it is built,
    the garbage collector is settled (:func:`settle_collector`)."""
    global _shared
    if _shared is None:
        try:
            settings = current_settings()
        except ConfigurationError as problem:
            return UnconfiguredEndpoint(problem)
        store = TableStore.from_settings(
            settings.storage_connection_string, settings.storage_table_uri, settings.table_prefix
        )
        events = None
        if settings.publishes_changes:
            from scim.store.event_queue import EventQueue

            connection, name = settings.storage_connection_string, settings.change_feed_queue
            events = EventQueue.from_settings(connection, settings.queue_uri, name)
        _shared = ScimEndpoint(settings, store, events)
        settle_collector()
    return _shared


def health_response(healthy: bool) -> ScimResponse:
    json_type = {"Content-Type": "application/json; charset=utf-8"}
    if healthy:
        return ScimResponse(200, {"status": "healthy"}, json_type)
    return ScimResponse(503, {"status": "unhealthy"}, {**json_type, "Retry-After": "30"})


def error_response(exc: ScimError) -> ScimResponse:
    return ScimResponse(exc.status, exc.body(), dict(exc.headers))


def _resource(status: int, rendered: Rendered, headers: dict[str, str] | None = None) -> ScimResponse:
    response_headers = {"ETag": rendered.etag} if rendered.etag else {}
    response_headers.update(headers or {})
    return ScimResponse(status, rendered.document, response_headers)


def _json_body(request: ScimRequest) -> Any:
    content_type = (request.header("Content-Type") or "application/scim+json").split(";")[0].strip().lower()
    if content_type not in _JSON_MEDIA_TYPES:
        raise ScimError(415, "Send application/scim+json or application/json")
    if len(request.body) > MAX_PAYLOAD_BYTES:
        raise errors.too_large(f"The request body may be at most {MAX_PAYLOAD_BYTES} bytes")
    try:
        text = request.body.decode("utf-8")
        body = json.loads(text, parse_constant=_no_constant, parse_float=_finite, object_pairs_hook=_object)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, huge integers
        raise errors.invalid_syntax("The request body is not valid JSON") from exc
    _check_values(body, text)
    return body


def _no_constant(name: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity``: Python's parser accepts them, JSON does not."""
    raise ValueError(name)


def _finite(text: str) -> float:
    """A number too large for a float (``1e999``) would become infinity, which no JSON response can carry."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose attribute names differ from each other case-insensitively, as SCIM reads them; otherwise one
    of two spellings (``members`` and ``Members``) would silently win and the other be ignored. Called once per
    object of the body: a one-name object (each ``{"value": id}`` of a 1,000-member PATCH) cannot repeat a name, and
    an exact repeat already shows as a shorter dict, so only the rest build the set of lower-cased names."""
    document = dict(pairs)
    if len(pairs) > 1 and (len(document) != len(pairs) or len(set(map(str.lower, document))) != len(pairs)):
        raise errors.invalid_syntax("An object in the request body names the same attribute twice")
    return document


def _check_values(body: Any, text: str) -> None:
    """Depth and text checks over the parsed body ``text``, iteratively, so that the check itself cannot recurse too
    deep. A string of the body can only hold a surrogate that its text escaped (``\\ud800``): the text was decoded
    from strict UTF-8, which has none, and the parser joins an escaped pair into one character. So a body without
    such an escape (every body Entra sends bar an escaped emoji) needs only its depth checked, container by
    container: walking each string of a 1,000-member PATCH took 1 ms of the loop, a step that held every tenant."""
    if _SURROGATE_ESCAPE.search(text) is None:
        _check_depth(body)
        return
    pending: list[tuple[Any, int]] = [(body, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if has_lone_surrogate(value):
                raise errors.invalid_value("The request body holds a string that is not valid Unicode text")
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise _too_deep()
            items = [*value, *value.values()] if isinstance(value, dict) else value
            pending.extend((item, depth + 1) for item in items)


def _check_depth(body: Any) -> None:
    """No array or object deeper than :data:`MAX_JSON_DEPTH`, walked one level at a time over containers only."""
    level = [body] if isinstance(body, dict | list) else []
    depth = 1
    while level:
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        level = [
            item
            for value in level
            for item in (value.values() if isinstance(value, dict) else value)
            if isinstance(item, dict | list)
        ]
        depth += 1


def _too_deep() -> ScimError:
    return errors.invalid_syntax(f"The request body may nest at most {MAX_JSON_DEPTH} levels deep")


def _search_query(body: Any) -> dict[str, str]:
    """A SearchRequest (RFC 7644 §3.4.3) read as the query parameters of the equivalent GET."""
    if not isinstance(body, dict):
        raise errors.invalid_syntax("A SearchRequest must be a JSON object")
    query: dict[str, str] = {}
    for key, value in body.items():
        name = next((n for n in _SEARCH_PARAMETERS if n.lower() == key.lower()), None)
        if name is None or value is None:
            continue
        query[name] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    check_attribute_lists(query)
    return query


def _log(request: ScimRequest, response: ScimResponse, tenant: str, started: float, writes: int) -> None:
    resource = "item" if request.resource_id else "collection"
    log.info(
        json.dumps(
            {
                "event": "scim.request",
                "method": request.method.upper(),
                "endpoint": request.endpoint,
                "target": resource,
                "tenant": tenant,
                "status": response.status,
                "ms": round((time.perf_counter() - started) * 1000, 2),
                "writes": writes,
            }
        )
    )


async def close_shared_endpoint() -> None:
    """Close the process-wide endpoint's HTTP sessions (storage, signing-key fetches). The local host calls this on
    shutdown, so aiohttp has no unclosed session to warn about; a Functions worker simply ends."""
    global _shared
    if isinstance(_shared, ScimEndpoint):
        await _shared.close_token_checks()
        await _shared.close_publisher()
        await _shared.store.close()
    _shared = None
