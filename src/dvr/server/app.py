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
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dvr.db.migrate import upgrade_to_head
from dvr.db.session import Database
from dvr.server.api import (
    address_groups,
    address_scopes,
    agents,
    availability,
    credentials,
    default_security_group_rules,
    dvr_protocol,
    extensions,
    floatingips,
    networks,
    ports,
    root,
    routers,
    security_group_rules,
    security_groups,
    subnetpools,
    subnets,
    tags,
)
from dvr.server.api.common import collection_routes
from dvr.server.api.openapi import openapi_endpoint
from dvr.server.authn import AuthMiddleware
from dvr.server.config import ServerConfig
from dvr.server.context import ServerContext
from dvr.server.errors import NeutronError
from dvr.server.jsonbody import error_response
from dvr.server.loadshed import LoadSheddingMiddleware
from dvr.web.routes import web_routes

log = logging.getLogger("dvr.server")

COLLECTIONS = [
    networks.COLLECTION,
    subnets.COLLECTION,
    ports.COLLECTION,
    routers.COLLECTION,
    floatingips.COLLECTION,
    agents.COLLECTION,
    subnetpools.COLLECTION,
    address_scopes.COLLECTION,
    security_groups.COLLECTION,
    security_group_rules.COLLECTION,
    default_security_group_rules.COLLECTION,
    address_groups.COLLECTION,
]


async def _neutron_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NeutronError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    names = {
        404: ("HTTPNotFound", "The resource could not be found."),
        405: ("HTTPMethodNotAllowed", "The method is not allowed for this resource."),
    }
    type_name, message = names.get(exc.status_code, (f"HTTP{exc.status_code}", str(exc.detail)))
    return error_response(NeutronError(message, type_name=type_name, status=exc.status_code))


def _request_too_large(limit: int) -> NeutronError:
    return NeutronError(
        f"Request is too large: the body may hold at most {limit} bytes.",
        type_name="HTTPRequestEntityTooLarge",
        status=413,
    )


class RequestMiddleware:
    """The outer edge of every HTTP request.

    - adds ``x-openstack-request-id``;
    - caps the request body (413 before the handler reads past the limit);
    - turns any exception that escapes a handler into Neutron's 500 shape, logged with the
      request id.  Nothing re-raises it to the server, so the client's keep-alive connection
      survives, and the handler's transaction has already rolled back.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req-{uuid.uuid4()}"
        started = False

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message).append("x-openstack-request-id", request_id)
            await send(message)

        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and (
            not declared.isdigit() or int(declared) > self.max_body_bytes
        ):
            error = _request_too_large(self.max_body_bytes)
            await error_response(error)(scope, receive, send_with_id)
            return
        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _request_too_large(self.max_body_bytes)
            return message

        try:
            await self.app(scope, capped_receive, send_with_id)
        except NeutronError as error:  # raised by a middleware (e.g. the database is down)
            if not started:
                await error_response(error)(scope, receive, send_with_id)
        except Exception:
            log.exception(
                "%s: unexpected error on %s %s", request_id, scope.get("method"), scope["path"]
            )
            if not started:
                error = NeutronError(
                    "Request Failed: internal server error while processing your request."
                )
                await error_response(error)(scope, receive, send_with_id)


def build_routes(context: ServerContext) -> list[Route]:
    # the agents' protocol first: most requests are theirs, and a request is matched
    # against the routes in order (~1 µs each)
    result: list[Route] = dvr_protocol.routes(context)
    result += [*root.ROUTES, *extensions.ROUTES]
    result += routers.extra_routes(context)
    result += agents.extra_routes(context)
    result += subnetpools.extra_routes(context)
    result += address_groups.extra_routes(context)
    result += tags.routes(context)
    result += availability.routes(context)
    for collection in COLLECTIONS:
        result += collection_routes(context, collection)
    result += credentials.routes(context)
    document = openapi_endpoint(COLLECTIONS, context.config.limits)
    result.append(Route("/openapi.json", document, methods=["GET"]))
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
        context.hub.start_following()  # other processes' writes (PostgreSQL), from the start
        yield
        await context.keeper.close()
        await context.hub.close()

    app = Starlette(
        routes=build_routes(context),
        exception_handlers={
            NeutronError: _neutron_error,
            HTTPException: _http_error,
        },
        lifespan=lifespan,
    )
    app.state.context = context
    if not config.no_auth:
        app.add_middleware(AuthMiddleware, context=context)
    app.add_middleware(LoadSheddingMiddleware, limits=config.load, views=context.view_gate)
    app.add_middleware(RequestMiddleware, max_body_bytes=config.limits.max_request_body_bytes)
    return app
