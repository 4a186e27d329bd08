"""The views served to agents, kept so that the next answer can be a delta (docs/API.md).

An agent that asks ``view?since=R`` holds the view it was last served at revision R.  The
server keeps, per host, the last few views it served to such requests, by revision, in a
bounded LRU, and answers with ``diff(served view at R, fresh view)`` when it has it, else
with the full view.  A delta is only made from a view this process served to that host,
so it is never made from a view the agent does not hold (``view_answer`` adds the one
exception: an empty delta when nothing concerning the host changed since R); ``since=0``
means the caller holds nothing yet.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from dvr.model.hostview import HostView
from dvr.model.hostview_delta import HOLDS_NO_VIEW, HostViewDelta, UnsortedView, diff

log = logging.getLogger("dvr.server")

@dataclass
class ServedViews:
    """The last ``per_host`` views served to each of the last ``hosts`` hosts."""

    per_host: int = 3
    hosts: int = 10_000
    _views: OrderedDict[str, OrderedDict[int, HostView]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def served(self, host: str, revision: int) -> HostView | None:
        with self._lock:
            return self._views.get(host, {}).get(revision)

    def remember(self, view: HostView) -> None:
        """``view`` was served: what its host holds from now on (it replaces any other view
        served at the same revision)."""
        with self._lock:
            views = self._views.pop(view.host, None) or OrderedDict()
            self._views[view.host] = views
            views.pop(view.revision, None)
            views[view.revision] = view
            while len(views) > self.per_host:
                views.popitem(last=False)
            while len(self._views) > self.hosts:
                self._views.popitem(last=False)


def view_update(served: ServedViews, view: HostView, since: int) -> HostView | HostViewDelta:
    """What to send to a caller that holds ``view.host``'s view at ``since``: the delta to
    ``view`` when this process served that view, else ``view`` itself."""
    base = None if since == HOLDS_NO_VIEW else served.served(view.host, since)
    served.remember(view)
    if base is None:
        return view
    try:
        return diff(base, view)
    except UnsortedView as exc:  # a bug of the view's builder: the full view is still right
        log.error("no delta for host %s (%s): sending the full view", view.host, exc)
        return view
