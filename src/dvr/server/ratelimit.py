"""Failed authentications per client address in a sliding window: over the limit, the
address gets 429 with Retry-After until its oldest failure leaves the window."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from dvr.server.config import AuthLimits


class FailureLimiter:
    def __init__(self, limits: AuthLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str) -> deque[float]:
        times = self.failures.get(address, deque())
        horizon = self.clock() - self.limits.window_seconds
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            self.failures.pop(address, None)
        return times

    def retry_after(self, address: str) -> int | None:
        """Whole seconds the address must wait (None: it may try)."""
        times = self._recent(address)
        if len(times) < self.limits.max_failures:
            return None
        wait = times[0] + self.limits.window_seconds - self.clock()
        return max(1, math.ceil(wait))

    def record_failure(self, address: str) -> None:
        times = self._recent(address)
        times.append(self.clock())
        self.failures[address] = times
        self.failures.move_to_end(address)
        while len(self.failures) > self.limits.tracked_addresses:
            self.failures.popitem(last=False)
