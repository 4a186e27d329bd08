"""Load shedding: answer 503 + ``Retry-After`` rather than build answers nobody waits for.

A host's view is the costly answer (SQL and Python under the GIL): at most
``max_concurrent_views`` are built at once, at most ``max_queued_views`` wait for a turn,
and none waits longer than ``view_queue_timeout`` (the agents give up at 10 s).  Beyond
that the request is refused at once.  A view request whose client went away while it
waited is dropped without being built.  Every other request counts against
``max_pending_requests`` (long polls excepted: they wait without cost).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dvr.server.config import LoadLimits
from dvr.server.errors import ServiceUnavailable
from dvr.server.jsonbody import error_response

log = logging.getLogger("dvr.server.load")

COSTLY_PATHS = re.compile(r"^/dvr/v1/hosts/[^/]+/(view|delta|changes)$")
LONG_POLLS = re.compile(r"^/dvr/v1/(hosts/[^/]+/watch|events)$")


def overloaded(limits: LoadLimits, what: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"The server is overloaded ({what}); retry later.", retry_after=limits.retry_after
    )


@dataclass
class ViewGate:
    """At most ``max_concurrent_views`` holders, a bounded FIFO of waiters (event loop
    only: no locks)."""

    limits: LoadLimits
    running: int = 0
    waiting: collections.deque[asyncio.Future[None]] = field(default_factory=collections.deque)

    def try_enter(self) -> bool:
        """Take a turn if one is free and nobody waits for one (True), without waiting."""
        if self.running < self.limits.max_concurrent_views and not self.waiting:
            self.running += 1
            return True
        return False

    async def enter(self, gone: asyncio.Future[Any]) -> bool:
        """Wait for a turn: True with one held, False when the client left meanwhile;
        ``ServiceUnavailable`` when too many wait or the wait is too long."""
        if self.try_enter():
            return True
        if len(self.waiting) >= self.limits.max_queued_views:
            raise overloaded(self.limits, "too many views queued")
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(turn)
        await asyncio.wait({turn, gone}, timeout=self.limits.view_queue_timeout,
                           return_when=asyncio.FIRST_COMPLETED)
        if not turn.done():
            turn.cancel()
            self.waiting.remove(turn)
            if gone.done():
                return False
            raise overloaded(self.limits, "a view waited too long")
        if gone.done():  # handed a turn, but nobody waits for the answer any more
            self.leave()
            return False
        return True

    def leave(self) -> None:
        """Give the turn to the first waiter, or free it."""
        while self.waiting:
            turn = self.waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.running -= 1


class LoadSheddingMiddleware:
    """``views``: the gate of view builds, shared with the watch (a watch answer carries a
    view only when a turn is free); a gate of its own when not given."""

    def __init__(self, app: ASGIApp, limits: LoadLimits, views: ViewGate | None = None
                 ) -> None:
        self.app = app
        self.limits = limits
        self.views = views if views is not None else ViewGate(limits)
        self.pending = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or LONG_POLLS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.pending >= self.limits.max_pending_requests:
            await error_response(overloaded(self.limits, "too many requests"))(
                scope, receive, send
            )
            return
        self.pending += 1
        try:
            if scope["method"] == "GET" and COSTLY_PATHS.match(scope["path"]):
                await self._gated(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            self.pending -= 1

    async def _gated(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = await receive()  # a GET's (empty) body; the next message is the disconnect
        gone = asyncio.ensure_future(receive())
        try:
            try:
                admitted = await self.views.enter(gone)
            except ServiceUnavailable as error:
                await error_response(error)(scope, receive, send)
                return
            if not admitted:
                log.debug("dropped a view request of a client that left: %s", scope["path"])
                return
            try:
                await self.app(scope, _replay(request, gone), send)
            finally:
                self.views.leave()
        finally:
            gone.cancel()


def _replay(first: Message, gone: asyncio.Future[Any]) -> Receive:
    """A ``receive`` that gives the already-read request message, then the disconnect."""
    messages = [first]

    async def receive() -> Message:
        if messages:
            return messages.pop()
        return await asyncio.shield(gone)

    return receive
