"""The views a watch answer brings (``watch?view_since=R``), between the agent's watch thread
and its loop.

The watch asks for the update from the newest view the agent has: the one the loop holds,
or one an earlier watch answer brought that the loop has not taken yet (the watch asks
again at once, usually before the loop has taken what it brought).  It applies the update
to that view itself and leaves the result for the loop, which takes it instead of asking
the server when it is as new as the view it holds and every revision the watch told of.
A delta that does not apply is dropped: the loop then asks the server as before.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Literal

from dvr.client import ViewAnswer
from dvr.model.hostview import HostView
from dvr.model.hostview_delta import DeltaRefused, apply

log = logging.getLogger("dvr.agent")

ViewKind = Literal["delta", "full", "pushed-delta", "pushed-full", "held"]


@dataclass(frozen=True)
class FetchedView:
    """The view one reconcile works on, and how it came: ``kind`` is "delta" (patched from
    the view held before) or "full", "pushed-" when a watch answer brought it, "held" when
    the view held was still current (a local change only); ``size``
    counts the bytes of the server's answers."""

    view: HostView
    kind: ViewKind
    size: int


class PushedViews:
    """The newest view the agent has (what the watch asks updates from) and the view the
    last watch answer brought, until the loop takes it; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = threading.Condition(self._lock)  # notified when a view is held
        self._newest: HostView | None = None
        self._brought: FetchedView | None = None

    def base(self) -> HostView | None:
        """The view to ask the next update from (None: the agent has none yet)."""
        with self._lock:
            return self._newest

    def wait_for_base(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until there is a view to ask updates from."""
        with self._held:
            return self._held.wait_for(lambda: self._newest is not None, timeout)

    def hold(self, view: HostView | None) -> None:
        """The loop holds ``view`` (None: it dropped its view; what was brought goes too)."""
        with self._lock:
            if view is None:
                self._newest, self._brought = None, None
            elif self._newest is None or view.revision >= self._newest.revision:
                self._newest = view
                self._held.notify_all()

    def bring(self, base: HostView | None, answer: ViewAnswer) -> None:
        """A watch answer asked from ``base`` brought ``answer``: the view it gives is left
        for the loop (unless the agent already has a newer one)."""
        if isinstance(answer.update, HostView):
            brought = FetchedView(answer.update, "pushed-full", answer.size)
        elif base is None:
            return
        else:
            try:
                brought = FetchedView(apply(base, answer.update), "pushed-delta", answer.size)
            except DeltaRefused as exc:
                log.warning("pushed delta refused (%s): the loop will ask for the view", exc)
                return
        with self._lock:
            if self._newest is not None and brought.view.revision < self._newest.revision:
                return
            self._newest, self._brought = brought.view, brought

    def take(self, at_least: int) -> FetchedView | None:
        """The view brought, if its revision is ``at_least`` or newer (else None); either
        way it is gone: a view is taken once."""
        with self._lock:
            brought, self._brought = self._brought, None
        if brought is None or brought.view.revision < at_least:
            return None
        return brought
