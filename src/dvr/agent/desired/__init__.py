"""Pure desired state: HostView (+ observed inputs) -> DesiredState.  No I/O in here.

Public entry points:
- ``compute_desired_state(view, inputs, config)``: the full computation;
- ``DesiredStateCache(config).update(view, inputs)``: the same result, recomputing only the
  pieces whose inputs changed since the previous call.
"""

from dvr.agent.desired.compute import compute_desired_state
from dvr.agent.desired.config import DesiredConfig, HostInputs
from dvr.agent.desired.incremental import DesiredStateCache, UpdateStats
from dvr.agent.desired.vlans import LocalVlanExhausted, allocate_local_vlans

__all__ = [
    "DesiredConfig",
    "DesiredStateCache",
    "HostInputs",
    "LocalVlanExhausted",
    "UpdateStats",
    "allocate_local_vlans",
    "compute_desired_state",
]
