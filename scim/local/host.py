"""A local stand-in for the Azure Functions host: it serves the functions ``function_app.py`` registers.

Core Tools cannot be installed everywhere (its installer downloads a binary). This host reads each function's own
binding (route, methods), prefixes routes with ``host.json``'s ``routePrefix``, builds real
``azure.functions.HttpRequest`` objects and returns the functions' ``HttpResponse``s, so what runs locally is what
Azure runs. Routes match case-insensitively, as the Functions host's ASP.NET routing does. Timer-triggered functions
run on their NCRONTAB schedule (:mod:`scim.local.schedule`), or every ``SCIM_LOCAL_TIMER_SECONDS`` seconds when that
is set (tests and demos that cannot wait for the next minute).
"""

import asyncio
import contextlib
import importlib
import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import azure.functions as func
from aiohttp import web
from azure.functions.timer import TimerRequest

from scim.local.schedule import Schedule

REPO_ROOT = Path(__file__).resolve().parents[2]
_PARAMETER = re.compile(r"\{(\*?)(\w+)(?::[^}?]+)?(\?)?\}")

Handler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


@dataclass(frozen=True)
class Route:
    """One HTTP function: the compiled route template, its methods and the user function."""

    name: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    handler: Handler
    catch_all: bool
    """Like the Functions host, a catch-all route (``{*rest}``) only gets what no other route matches."""


@dataclass(frozen=True)
class Timer:
    """One timer-triggered function: its schedule and the user function with the name of its timer argument."""

    name: str
    schedule: Schedule
    handler: Callable[..., Awaitable[None]]
    argument: str


def load_local_settings(root: Path = REPO_ROOT) -> None:
    """Like ``func start``: ``local.settings.json`` Values become environment variables unless already set."""
    path = root / "local.settings.json"
    if path.exists():
        for name, value in json.loads(path.read_text()).get("Values", {}).items():
            os.environ.setdefault(name, str(value))


def route_prefix(root: Path = REPO_ROOT) -> str:
    host = json.loads((root / "host.json").read_text())
    return str(host.get("extensions", {}).get("http", {}).get("routePrefix", "api")).strip("/")


def discover(app_module: str = "function_app", root: Path = REPO_ROOT) -> tuple[list[Route], list[Timer]]:
    """Every HTTP-triggered function the app registers, with the route the Functions host would give it, and every
    timer-triggered one with its schedule. (The app lists its functions once: a second listing fails.)"""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    app = importlib.import_module(app_module).app
    prefix = route_prefix(root)
    routes, timers = [], []
    for function in app.get_functions():
        bindings = {b["type"]: b for b in json.loads(function.get_function_json())["bindings"]}
        name, handler = function.get_function_name(), function.get_user_function()
        if "timerTrigger" in bindings:
            timer = bindings["timerTrigger"]
            timers.append(Timer(name, Schedule.parse(timer["schedule"]), handler, timer["name"]))
            continue
        binding = bindings["httpTrigger"]
        template = "/".join(part for part in (prefix, binding.get("route") or name) if part)
        methods = frozenset(m.upper() for m in binding.get("methods") or ("GET", "POST", "PUT", "PATCH", "DELETE"))
        routes.append(Route(name, _compile(template), methods, handler, "{*" in template))
    return sorted(routes, key=lambda route: route.catch_all), timers


async def run_timer(timer: Timer, period: float | None = None) -> None:
    """Call a timer function at each time its schedule names (or every ``period`` seconds), until cancelled; a
    failing run is logged and the next one comes on time, as in the Functions host."""
    while True:
        now = datetime.now(UTC)
        wait = period if period else (timer.schedule.next_after(now) - now).total_seconds()
        await asyncio.sleep(wait)
        try:
            await timer.handler(**{timer.argument: TimerRequest(past_due=False)})
        except Exception:
            log.exception("timer function %s failed", timer.name)


def _compile(template: str) -> re.Pattern[str]:
    pattern, position = "", 0
    for match in _PARAMETER.finditer(template):
        pattern += re.escape(template[position : match.start()])
        catch_all, name, optional = match.groups()
        pattern += f"(?P<{name}>{'.*' if catch_all else '[^/]+'})" + ("?" if optional else "")
        position = match.end()
    pattern += re.escape(template[position:])
    return re.compile(f"^/{pattern}/?$", re.IGNORECASE)


MAX_BODY_BYTES = 8 * 1024 * 1024
"""Bodies up to this size reach the functions (which answer a SCIM 413 above their own limit); larger ones get a
bare 413 here, as the Functions host's own request size limit would give."""
log = logging.getLogger("scim.local")


class QuietRequestHandler(web.RequestHandler):
    """aiohttp answers a request it cannot parse (a header with a NUL or a bare CR, a line too long) with a 400 whose
    body quotes the offending line, and logs a traceback quoting it again: for an ``Authorization`` header, the
    token. Here the answer carries only its status, and the log only the kind of error."""

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if status >= 500:  # an error in a handler, not in the client's bytes: aiohttp's own answer names nothing
            return super().handle_error(request, status, exc, None)
        log.warning("refused a malformed HTTP request: %s %s", status, type(exc).__name__ if exc else "")
        response = web.Response(status=status, text=f"{status} {HTTPStatus(status).phrase}\n")
        response.force_close()
        return response


class QuietServer(web.Server):
    """aiohttp's low-level server, making :class:`QuietRequestHandler` connections."""

    def __call__(self) -> web.RequestHandler:
        return QuietRequestHandler(self, loop=self._loop, **self._kwargs)


def build_handler(routes: list[Route]) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """A handler that gives each request to the function whose route and method it matches."""

    async def dispatch(request: web.BaseRequest) -> web.StreamResponse:
        for route in routes:
            match = route.pattern.match(request.path)
            if match and request.method.upper() in route.methods:
                body = await _read_body(request)
                if body is None:
                    return web.Response(status=413)
                response = await route.handler(_functions_request(request, match.groupdict(), body))
                return _aiohttp_response(response)
        return web.Response(status=404)

    return dispatch


async def _read_body(request: web.BaseRequest) -> bytes | None:
    """The whole body, or None if it is larger than :data:`MAX_BODY_BYTES`."""
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _functions_request(request: web.BaseRequest, route_params: dict[str, Any], body: bytes) -> func.HttpRequest:
    params: dict[str, str] = {}
    for name, value in request.query.items():
        params.setdefault(name, value)
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=dict(request.headers),
        params=params,
        route_params={k: v for k, v in route_params.items() if v is not None},
        body=body,
    )


def _aiohttp_response(response: func.HttpResponse) -> web.Response:
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return web.Response(status=response.status_code, body=response.get_body(), headers=headers)


def serve(host: str, port: int) -> None:
    """Serve until interrupted."""
    routes, timers = discover()
    for route in routes:
        print(f"  {route.name}: [{','.join(sorted(route.methods))}] {route.pattern.pattern}")
    period = float(os.environ.get("SCIM_LOCAL_TIMER_SECONDS") or 0) or None
    for timer in timers:
        print(f"  {timer.name}: timer, {f'every {period:g} s (SCIM_LOCAL_TIMER_SECONDS)' if period else 'scheduled'}")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(build_handler(routes), host, port, timers, period))


async def _serve(
    handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
    host: str,
    port: int,
    timers: Sequence[Timer] = (),
    period: float | None = None,
) -> None:
    runner = web.ServerRunner(QuietServer(handler, access_log=None))
    await runner.setup()
    running = [asyncio.create_task(run_timer(timer, period)) for timer in timers]
    try:
        await web.TCPSite(runner, host, port).start()
        print(f"======== Running on http://{host}:{port} ========", flush=True)
        await asyncio.Event().wait()
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await runner.cleanup()
        from scim.dispatch import close_shared_endpoint  # the functions' own endpoint, created on first request

        await close_shared_endpoint()
