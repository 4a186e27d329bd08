"""Process-level settings of a long-running ``dvr-server``."""

from __future__ import annotations

import gc

# allocations between two young-generation collections (CPython's default is 700)
GC_YOUNG_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """Keep CPython's cyclic garbage collector off the request path.

    A HostView is a few thousand small, acyclic objects (frozen dataclasses and tuples).
    With the default thresholds every build runs several young collections and, every few
    builds, a full one that walks every object of the process — SQLAlchemy's metadata and
    statement caches, the app, the imported modules — which doubled the p95 of a compute
    host's view at 10,000 ports (bench/RESULTS.md).  Called once after start-up: what exists
    then is frozen (left out of every later collection; it lives as long as the process),
    and the young generation is collected less often.  Reference counting still frees
    everything that is not in a cycle at once.
    """
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)
