"""The global change stream for the web view: ``GET /dvr/v1/events``.

Built on the server's own mechanism: the global revision (bumped by every write that
changes some host's view) and the in-process ``ChangeHub`` wake-up (plus its poller that
sees other replicas' writes).  Two forms:

- Server-Sent Events (``Accept: text/event-stream``, what ``EventSource`` sends): an
  ``event: revision`` with ``{"revision": N}`` on connect and whenever the revision moves,
  an ``event: tick`` every ``keepalive`` seconds without a change (liveness and heartbeats
  change without a revision: a page refreshes them on a tick), and the stream ends after
  ``timeout`` seconds (``EventSource`` reconnects by itself after ``retry`` ms).
- long poll (any other Accept): ``?since=N&timeout=S`` answers ``{"revision": R,
  "changed": R != N}`` as soon as the revision differs from ``N``, or after ``S`` seconds.

Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from dvr.server.context import ServerContext


@dataclass(frozen=True)
class EventStreamLimits:
    default_duration: float = 300.0  # an SSE stream ends after this; the browser reconnects
    max_duration: float = 3600.0
    default_keepalive: float = 10.0  # a tick after this long without a revision change
    min_keepalive: float = 0.05
    reconnect_ms: int = 2000


def format_event(name: str, data: dict[str, Any], event_id: int | None = None) -> str:
    """One Server-Sent Event, terminated by a blank line."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {name}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return "\n".join(lines) + "\n\n"


async def revision_events(
    context: ServerContext, duration: float, keepalive: float, reconnect_ms: int
) -> AsyncIterator[str]:
    """The SSE stream: the revision now, then each time it moves, ticks in between."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration
    yield f"retry: {reconnect_ms}\n\n"
    sent: int | None = None
    while True:
        woken_by = context.hub.snapshot_any()  # taken BEFORE reading, so no change slips by
        revision = await context.read_revision()
        if revision != sent:
            yield format_event("revision", {"revision": revision}, event_id=revision)
            sent = revision
        remaining = deadline - loop.time()
        if remaining <= 0 or context.hub.closed:
            return
        woken = await context.hub.wait(woken_by, min(keepalive, remaining))
        if not woken and loop.time() < deadline:
            yield format_event("tick", {"revision": sent})


async def wait_for_revision_change(context: ServerContext, since: int, timeout: float) -> int:
    """The current revision, as soon as it differs from ``since`` or after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        woken_by = context.hub.snapshot_any()
        revision = await context.read_revision()
        remaining = deadline - loop.time()
        if revision != since or remaining <= 0 or context.hub.closed:
            return revision
        await context.hub.wait(woken_by, remaining)
