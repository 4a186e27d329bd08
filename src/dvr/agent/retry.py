"""How the agent retries: capped exponential backoff with jitter for errors that can pass,
and no retry at all for errors that retrying cannot fix.

- **Transient** (the server restarting or overloaded, the network, a timeout, a switch
  operation that failed): retried after 0.5 s, 1 s, 2 s ... capped at ``max_backoff``.  Each
  wait is drawn at random from the upper half of that step, so agents that failed together
  (every agent, when the server restarts) do not come back together.  A connection the
  server's host refused or could not make (nobody is serving: a server restarting) costs
  the server nothing, so it is asked again sooner: that backoff is capped at
  ``CONNECT_BACKOFF_CAP`` (a restart is then followed within seconds, not after up to
  ``max_backoff``).  When the server says
  how long to wait (503 or 429 with ``Retry-After``: it is shedding load, or its database
  is unreachable) the wait is at least that, plus up to half of it again at random.
- **Permanent** (the server refused the request itself: a 4xx other than 408/429; more
  networks on this host than local VLANs): the same request gets the same answer, so it is
  not retried on a timer.  It is logged once (again only when it changes) and the caller
  waits for something to change instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx

from dvr.agent.desired import LocalVlanExhausted
from dvr.client import ServerError

# 4xx answers that do say "try again later"
RETRYABLE_CLIENT_STATUSES = frozenset({408, 425, 429})
MAX_EXPONENT = 32  # 0.5 s * 2**32 is beyond any cap; keeps the arithmetic finite
CONNECT_BACKOFF_CAP = 4.0  # seconds: the longest backoff after a connection failure


class IncompleteReconcile(Exception):
    """A reconcile ran but some dataplane operations failed (each already logged)."""

    def __init__(self, errors: tuple[str, ...]):
        super().__init__(f"{len(errors)} dataplane operation(s) failed")
        self.errors = errors


def retrying_can_fix(error: BaseException) -> bool:
    """False for errors that the same request would meet again."""
    if isinstance(error, ServerError):
        return not 400 <= error.status < 500 or error.status in RETRYABLE_CLIENT_STATUSES
    return not isinstance(error, LocalVlanExhausted)


def backoff_delay(failures: int, maximum: float, random: Callable[[], float]) -> float:
    """The wait after ``failures`` transient failures in a row: a random point in the upper
    half of min(``maximum``, 0.5 s * 2**(failures - 1)); ``random()`` is in [0, 1)."""
    if failures <= 0:
        return 0.0
    step = min(maximum, 0.5 * 2.0 ** min(failures - 1, MAX_EXPONENT))
    return step * (0.5 + 0.5 * random())


def honoured_delay(retry_after: float, random: Callable[[], float]) -> float:
    """The wait a server's ``Retry-After`` asks for, jittered: never earlier, and spread over
    the following half of it so that the agents it refused together come back apart."""
    return retry_after * (1.0 + 0.5 * random())


def retry_delay(error: Exception, failures: int, maximum: float,
                random: Callable[[], float]) -> float:
    """The wait before trying again after ``failures`` transient failures, the last
    ``error``: the backoff (capped lower when no connection could be made), or longer when
    the server asked for it."""
    if isinstance(error, httpx.ConnectError):
        maximum = min(maximum, CONNECT_BACKOFF_CAP)
    delay = backoff_delay(failures, maximum, random)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        delay = max(delay, honoured_delay(retry_after, random))
    return delay


class Retries:
    """The failures of one activity (register, watch, reconcile) and what to do after each.

    ``failed(error)`` logs the failure and answers how long to wait before trying again, or
    None when retrying cannot fix it; ``succeeded()`` starts over.
    """

    def __init__(self, activity: str, maximum: float, random: Callable[[], float],
                 log: logging.Logger) -> None:
        self.activity = activity
        self.maximum = maximum
        self.random = random
        self.log = log
        self.failures = 0  # transient failures in a row
        self.permanent: str | None = None  # the permanent error last logged, if unresolved

    def failed(self, error: Exception) -> float | None:
        if not retrying_can_fix(error):
            self.failures = 0
            if str(error) != self.permanent:
                self.permanent = str(error)
                self.log.error("%s failed and retrying cannot fix it: %s; waiting for a change",
                               self.activity, error)
            return None
        self.permanent = None
        self.failures += 1
        delay = retry_delay(error, self.failures, self.maximum, self.random)
        expected = isinstance(error, ServerError | httpx.HTTPError | OSError
                              | IncompleteReconcile)
        self.log.warning("%s failed (%s); retrying in %.1fs", self.activity, error, delay,
                         exc_info=None if expected else error)
        return delay

    def longest_delay(self) -> float:
        """The capped wait, jittered: for asking again what retrying cannot fix when asking
        is the only way to notice that something changed."""
        return backoff_delay(MAX_EXPONENT, self.maximum, self.random)

    def succeeded(self) -> None:
        if self.permanent is not None or self.failures:
            self.log.info("%s works again", self.activity)
        self.failures = 0
        self.permanent = None
