"""Load shedding: answer 503 + ``Retry-After`` rather than build answers nobody waits for.

A host's view is the costly answer (SQL and Python under the GIL): at most
``max_concurrent_views`` are built at once, and none waits longer than its patience:
``view_queue_timeout`` (the agents' default timeout is 10 s), or what the request asks for
with ``wait=S`` (up to ``max_view_patience``; an agent that holds its request open that long
rather than being refused and coming back: 1,000 agents starting at once then queue in
order and the server never idles between their retries).  ``max_queued_views`` view
requests may always wait for a turn; more may while the backlog would drain within half
that timeout at the server's recent pace (the turns waited for, times the running mean of
the time between two turns): a fast server queues more, a slow one fewer.  A request that
asked to wait longer than the default always may, up to ``max_waiting_views`` waiting: it is
refused only when its turn has not come by the end of its patience.  Beyond that the
request is refused at once, with a ``Retry-After`` that grows with the backlog (half the
turns waited for, times the recent time between two turns), so that refused agents come
back while the queue is draining rather than all together two seconds later.  A view
request whose client went away while it waited is dropped without being built.  A watch woken by a
change waits for a turn without counting against that bound (``wait_turn``), behind every
view request: its agent holds a view and works, while a view request may come from an agent
that holds none (one starting); and the longer a woken watch waits, the more changes its one
delta covers (a burst of registrations at the start of 1,000 agents wakes every host again
and again).  Every other
request counts against ``max_pending_requests`` (long polls excepted: they wait without
cost; view requests are bounded by their queue).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dvr.server.config import LoadLimits
from dvr.server.errors import NeutronError, ServiceUnavailable
from dvr.server.jsonbody import error_response
from dvr.server.query_params import number_param
from dvr.server.shutdown_guard import shutting_down

log = logging.getLogger("dvr.server.load")

COSTLY_PATHS = re.compile(r"^/dvr/v1/hosts/[^/]+/(view|delta|changes)$")
LONG_POLLS = re.compile(r"^/dvr/v1/(hosts/[^/]+/watch|events)$")


MAX_RETRY_AFTER = 10  # seconds: the longest wait a shed request is asked for
TURN_GAP_WEIGHT = 0.1  # weight of the newest time between two turns in the running mean
LONGEST_TURN_GAP = 1.0  # seconds: a longer gap (an idle server) counts as this much


def overloaded(limits: LoadLimits, what: str, retry_after: int | None = None
               ) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"The server is overloaded ({what}); retry later.",
        retry_after=limits.retry_after if retry_after is None else retry_after,
    )


def backlog_retry_after(limits: LoadLimits, waiting: int, turn_gap: float) -> int:
    """The Retry-After for a view refused while ``waiting`` turns are waited for and a turn
    ends every ``turn_gap`` seconds: half the time the backlog takes to drain (agents add
    up to half again at random, so they come back while its last part is still served and
    the server never idles between), at least ``limits.retry_after``, at most
    ``MAX_RETRY_AFTER``."""
    half_drained = math.ceil(waiting * turn_gap / 2)
    return max(limits.retry_after, min(MAX_RETRY_AFTER, half_drained))


@dataclass
class ViewGate:
    """At most ``max_concurrent_views`` holders; a bounded FIFO of view requests, served
    first, then a FIFO of patient waiters (event loop only: no locks)."""

    limits: LoadLimits
    clock: Callable[[], float] = time.monotonic
    running: int = 0
    waiting: collections.deque[asyncio.Future[None]] = field(default_factory=collections.deque)
    # waiters of ``wait_turn``: after every view request, not counted against its bound
    patient_waiting: collections.deque[asyncio.Future[None]] = field(
        default_factory=collections.deque)
    turn_gap: float = 0.0  # running mean of the time between two turns ending, busy (s)
    closed: bool = False  # the server is stopping: no more turns
    _last_leave: float | None = None

    @property
    def patient(self) -> int:
        return len(self.patient_waiting)

    def close(self) -> None:
        """The server is stopping: every waiter is let go at once (a view request is
        answered 503, a woken watch goes without its view) and no turn is given again."""
        self.closed = True
        for queue in (self.waiting, self.patient_waiting):
            while queue:
                queue.popleft().cancel()

    def queue_full(self, patience: float) -> bool:
        """Whether a view request that waits up to ``patience`` seconds would be refused
        rather than wait (see the module)."""
        waiting = len(self.waiting)
        if waiting >= self.limits.max_waiting_views:
            return True
        if waiting < self.limits.max_queued_views:
            return False
        if patience > self.limits.view_queue_timeout:
            # it said it waits that long: it does, and is refused only if its turn does not
            # come by then (the pace of the last turns foretells it badly: full views at a
            # start are slower than the deltas after, agents parsing share the cores)
            return False
        if self.turn_gap == 0:  # no pace known yet: the bound alone
            return True
        return waiting * self.turn_gap >= patience / 2

    def retry_after(self) -> int:
        """What a view refused now is told to wait (``backlog_retry_after``)."""
        return backlog_retry_after(self.limits, len(self.waiting), self.turn_gap)

    def try_enter(self) -> bool:
        """Take a turn if one is free and nobody waits for one (True), without waiting."""
        if self.running < self.limits.max_concurrent_views and not self.waiting \
                and not self.patient_waiting and not self.closed:
            self.running += 1
            return True
        return False

    async def enter(self, gone: asyncio.Future[Any], patience: float | None = None) -> bool:
        """Wait for a turn, up to ``patience`` seconds (None: ``view_queue_timeout``): True
        with one held, False when the client left meanwhile; ``ServiceUnavailable`` when
        too many wait or the wait is too long."""
        if patience is None:
            patience = self.limits.view_queue_timeout
        if self.try_enter():
            return True
        if self.closed:
            raise shutting_down()
        if self.queue_full(patience):
            raise overloaded(self.limits, "too many views queued", self.retry_after())
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(turn)
        await asyncio.wait({turn, gone}, timeout=patience,
                           return_when=asyncio.FIRST_COMPLETED)
        if turn.cancelled():  # let go by ``close``
            raise shutting_down()
        if not turn.done():
            turn.cancel()
            self.waiting.remove(turn)
            if gone.done():
                return False
            raise overloaded(self.limits, "a view waited too long", self.retry_after())
        if gone.done():  # handed a turn, but nobody waits for the answer any more
            self.leave()
            return False
        return True

    async def wait_turn(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a turn, after every view request and not
        counted against their bound: True with a turn held, False when none came."""
        if self.try_enter():
            return True
        if self.closed:
            return False
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.patient_waiting.append(turn)
        try:
            await asyncio.wait({turn}, timeout=timeout)
        except BaseException:  # cancelled: a turn handed over meanwhile goes on
            if turn.done() and not turn.cancelled():
                self.leave()
            raise
        finally:
            if not turn.done():  # timed out, or the waiter was cancelled
                turn.cancel()
                self.patient_waiting.remove(turn)
            # (a turn cancelled by ``close`` has already left the queue)
        return not turn.cancelled()

    def leave(self) -> None:
        """Give the turn to the first waiter, or free it."""
        now = self.clock()
        # the pace is the server's when busy: a gap after which views were waiting (an idle
        # spell before a burst would make the backlog look slower than it drains)
        if self._last_leave is not None and (self.waiting or self.patient_waiting):
            gap = min(now - self._last_leave, LONGEST_TURN_GAP)
            self.turn_gap += TURN_GAP_WEIGHT * (gap - self.turn_gap)
        self._last_leave = now
        for queue in (self.waiting, self.patient_waiting):
            while queue:
                turn = queue.popleft()
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
        if scope["method"] == "GET" and COSTLY_PATHS.match(scope["path"]):
            await self._gated(scope, receive, send)
            return
        if self.pending >= self.limits.max_pending_requests:
            await error_response(overloaded(self.limits, "too many requests"))(
                scope, receive, send
            )
            return
        self.pending += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.pending -= 1

    async def _gated(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            patience = view_patience(HTTPConnection(scope), self.limits)
        except NeutronError as error:
            await error_response(error)(scope, receive, send)
            return
        request = await receive()  # a GET's (empty) body; the next message is the disconnect
        gone = asyncio.ensure_future(receive())
        try:
            try:
                admitted = await self.views.enter(gone, patience)
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


def view_patience(request: HTTPConnection, limits: LoadLimits) -> float:
    """How long a view request may wait for its turn: its ``wait`` (a number of seconds,
    at most ``max_view_patience``), else ``view_queue_timeout``."""
    if "wait" not in request.query_params:
        return limits.view_queue_timeout
    return min(number_param(request, "wait", 0.0), limits.max_view_patience)


def _replay(first: Message, gone: asyncio.Future[Any]) -> Receive:
    """A ``receive`` that gives the already-read request message, then the disconnect."""
    messages = [first]

    async def receive() -> Message:
        if messages:
            return messages.pop()
        return await asyncio.shield(gone)

    return receive
