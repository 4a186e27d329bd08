"""A request cut off by the server's shutdown is answered 503 + ``Retry-After``, not 500.

At SIGTERM uvicorn stops accepting, waits ``timeout_graceful_shutdown`` seconds for the
requests in flight, then cancels the ones left (a read still queued for the thread pool
under load, say).  Left alone, uvicorn answers each of those with a plain-text 500 and logs
a traceback, so a restart of a loaded server looks like a bug to every agent in the
middle of a request.  This outermost wrapper catches that cancellation while nothing of
the response was sent and answers what it is: the server is going away, ask again
(another server, or this one once it is back).  A cancellation after the response started
is left to uvicorn (it closes the connection; the client sees it cut off).
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dvr.server.errors import ServiceUnavailable
from dvr.server.jsonbody import error_response

log = logging.getLogger("dvr.server")

RETRY_AFTER_SHUTDOWN = 2  # seconds: a restart takes about that; another server sooner


def shutting_down() -> ServiceUnavailable:
    return ServiceUnavailable("The server is shutting down; ask again.", RETRY_AFTER_SHUTDOWN)


class ShutdownGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except asyncio.CancelledError:
            if started:
                raise
            log.info("shutting down: %s %s answered 503", scope.get("method"), scope["path"])
            await error_response(shutting_down())(scope, receive, send)
