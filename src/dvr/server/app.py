"""The ASGI application: ``create_app(config)``."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from dvr.db.migrate import upgrade_to_head
from dvr.db.session import Database
from dvr.server.api import (
    agents,
    dvr_protocol,
    extensions,
    floatingips,
    networks,
    ports,
    root,
    routers,
    subnets,
    tags,
)
from dvr.server.api.common import collection_routes
from dvr.server.api.openapi import openapi_endpoint
from dvr.server.config import ServerConfig
from dvr.server.context import ServerContext
from dvr.server.errors import NeutronError
from dvr.web.routes import web_routes

log = logging.getLogger("dvr.server")

COLLECTIONS = [
    networks.COLLECTION,
    subnets.COLLECTION,
    ports.COLLECTION,
    routers.COLLECTION,
    floatingips.COLLECTION,
    agents.COLLECTION,
]
TRANSPORT_KEY = "dvr.transport"


def _error_response(error: NeutronError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


async def _neutron_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NeutronError)
    return _error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    names = {
        404: ("HTTPNotFound", "The resource could not be found."),
        405: ("HTTPMethodNotAllowed", "The method is not allowed for this resource."),
    }
    type_name, message = names.get(exc.status_code, (f"HTTP{exc.status_code}", str(exc.detail)))
    return _error_response(NeutronError(message, type_name=type_name, status=exc.status_code))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return _error_response(
        NeutronError("Request Failed: internal server error while processing your request.")
    )


class RequestMiddleware:
    """Adds x-openstack-request-id; enforces the static token on TCP when configured."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req-{uuid.uuid4()}"

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("x-openstack-request-id", request_id)
            await send(message)

        if self.token and scope.get(TRANSPORT_KEY, "tcp") == "tcp" and scope["path"] != "/":
            if Headers(scope=scope).get("x-auth-token") != self.token:
                error = NeutronError(
                    "Authentication required: send the server token as X-Auth-Token.",
                    type_name="HTTPUnauthorized",
                    status=401,
                )
                await _error_response(error)(scope, receive, send_with_id)
                return
        await self.app(scope, receive, send_with_id)


class TransportTag:
    """Marks requests with the kind of listener they came through ("tcp" or "unix")."""

    def __init__(self, app: ASGIApp, transport: str) -> None:
        self.app = app
        self.transport = transport

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[TRANSPORT_KEY] = self.transport
        await self.app(scope, receive, send)


def build_routes(context: ServerContext) -> list[Route]:
    result: list[Route] = [*root.ROUTES, *extensions.ROUTES]
    result += routers.extra_routes(context)
    result += agents.extra_routes(context)
    result += tags.routes(context)
    for collection in COLLECTIONS:
        result += collection_routes(context, collection)
    result += dvr_protocol.routes(context)
    result.append(Route("/openapi.json", openapi_endpoint(COLLECTIONS), methods=["GET"]))
    result += web_routes(context)  # type: ignore[arg-type]  # the web view (dvr.web)
    return result


def create_app(config: ServerConfig, db: Database | None = None, migrate: bool = True) -> Starlette:
    """Build the app.  Applies migrations unless ``migrate`` is False (done by the caller)."""
    database = db or Database.from_url(config.db_url)
    if migrate:
        upgrade_to_head(database.engine)
    context = ServerContext.create(config, database)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await context.hub.close()

    app = Starlette(
        routes=build_routes(context),
        exception_handlers={
            NeutronError: _neutron_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
        lifespan=lifespan,
    )
    app.state.context = context
    app.add_middleware(RequestMiddleware, token=config.token)
    return app
