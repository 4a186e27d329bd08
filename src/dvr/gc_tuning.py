"""CPython's cyclic garbage collector, tuned for processes that build large acyclic values.

A HostView (in the server) and a DesiredState (in the agent) are thousands of small frozen
objects with no reference cycles.  With the default thresholds, building one runs dozens of
young collections and, every few builds, a full one that walks every object of the process.
``tune_garbage_collector`` is called once after start-up by ``dvr-server`` and ``dvr-agent``:
what exists then is frozen (left out of every later collection; it lives as long as the
process anyway), and the young generation is collected less often.  Reference counting still
frees everything that is not in a cycle at once; cycles are still collected, later.
"""

from __future__ import annotations

import gc

GC_YOUNG_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)
