"""Per-host change streams: long-poll waiting woken in-process when a write commits.

``ChangeHub.publish(revision)`` is called (in the event loop) after a write commits; every
waiter wakes and re-reads its host's change rows.  To see writes made by other server
replicas sharing one PostgreSQL database, a single poller task per hub re-reads the
current revision every ``poll_interval`` seconds while anyone is waiting, and publishes
when it moved.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass
class ChangeHub:
    read_revision: Callable[[], Awaitable[int]]
    poll_interval: float = 1.0
    latest: int = 0
    _event: asyncio.Event | None = None
    _waiters: int = 0
    _poller: asyncio.Task | None = None
    _closed: bool = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _current_event(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    def publish(self, revision: int) -> None:
        """A write committed ``revision``: wake every waiter."""
        if revision > self.latest:
            self.latest = revision
        event, self._event = self._current_event(), asyncio.Event()
        event.set()

    def snapshot(self) -> asyncio.Event:
        """The event the next publish will set (take it BEFORE checking the database)."""
        return self._current_event()

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait until ``event`` is set or ``timeout``; True when woken by a publish."""
        if self._closed:
            return False
        self._waiters += 1
        self._ensure_poller()
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters -= 1

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while self._waiters > 0 and not self._closed:
            await asyncio.sleep(self.poll_interval)
            try:
                revision = await self.read_revision()
            except Exception:  # noqa: BLE001 - a failed poll is retried on the next tick
                continue
            if revision > self.latest:
                self.publish(revision)

    async def close(self) -> None:
        """Wake everyone and stop polling (server shutdown)."""
        self._closed = True
        self.publish(self.latest)
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poller
