"""HTTP routes of the web view.

GET /ui, /ui/                 the page (index.html of the built front end)
GET /ui/assets/...            its built JS/CSS (package data under dvr/web/static)
GET /dvr/v1/topology          the whole cloud in one document (dvr.web.topology)
GET /dvr/v1/events            change stream: SSE or long poll (dvr.web.events)
GET /dvr/v1/trace?src=&dst=&proto=&dport=   a traced packet path (dvr.web.trace)
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from dvr.server.api.common import json_response
from dvr.server.context import ServerContext
from dvr.server.query_params import number_param, revision_param
from dvr.web.events import EventStreamLimits, revision_events, wait_for_revision_change
from dvr.web.topology import build_topology
from dvr.web.trace import parse_trace_request, run_trace

PREFIX = "/dvr/v1"
STATIC_DIR = Path(__file__).parent / "static"
NOT_BUILT = (
    "The web view is not built: run `npm ci && npm run build` in web/ "
    "(see web/README.md); the build writes src/dvr/web/static/.\n"
)


def _seconds(request: Request, key: str, default: float, low: float, high: float) -> float:
    return min(max(number_param(request, key, default), low), high)


def web_routes(
    context: ServerContext,
    static_dir: Path = STATIC_DIR,
    limits: EventStreamLimits | None = None,
) -> list[BaseRoute]:
    limits = limits or EventStreamLimits()
    config = context.config

    async def index(request: Request) -> Response:
        page = static_dir / "index.html"
        if not page.is_file():
            return PlainTextResponse(NOT_BUILT, status_code=503)
        return FileResponse(page, headers={"Cache-Control": "no-cache"})

    async def topology(request: Request) -> Response:
        return json_response(await context.read(build_topology))

    async def events(request: Request) -> Response:
        if "text/event-stream" in request.headers.get("accept", ""):
            duration = _seconds(
                request, "timeout", limits.default_duration, 0.0, limits.max_duration
            )
            keepalive = _seconds(
                request, "keepalive", limits.default_keepalive, limits.min_keepalive,
                limits.max_duration,
            )
            stream = revision_events(context, duration, keepalive, limits.reconnect_ms)
            return StreamingResponse(
                stream,
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        since = revision_param(request, "since")
        timeout = _seconds(
            request, "timeout", config.watch_default_timeout, 0.0, config.watch_max_timeout
        )
        if since is None:
            revision = await context.read_revision()
            return json_response({"revision": revision, "changed": False})
        revision = await wait_for_revision_change(context, since, timeout)
        return json_response({"revision": revision, "changed": revision != since})

    async def trace(request: Request) -> Response:
        trace_request = parse_trace_request(request.query_params)
        return json_response(await context.read(lambda tx: run_trace(tx, trace_request)))

    return [
        Route("/ui", index, methods=["GET"]),
        Route("/ui/", index, methods=["GET"]),
        Mount(
            "/ui/assets",
            app=StaticFiles(directory=static_dir / "assets", check_dir=False),
            name="ui-assets",
        ),
        Route(f"{PREFIX}/topology", topology, methods=["GET"]),
        Route(f"{PREFIX}/events", events, methods=["GET"]),
        Route(f"{PREFIX}/trace", trace, methods=["GET"]),
    ]
