"""ObservedState: the part of a host's dataplane the agent looks at, and how it is read.

The values (``ObservedState``, ``Ownership``) live in ``dvr.agent.reconcile.observed``, so
the pure planner reads them without reaching the drivers; this module does the reading.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from dvr.agent.desired.state import DesiredState
from dvr.agent.drivers.base import Drivers, LinuxScope
from dvr.agent.reconcile.observed import DEFAULT_OWNERSHIP, ObservedState, Ownership


def observation_scope(desired: DesiredState, ownership: Ownership) -> LinuxScope:
    peers = sorted({link.peer for ns in desired.namespaces for link in ns.links})
    sysctl_keys = sorted({key for ns in desired.namespaces for key, _ in ns.sysctls})
    return LinuxScope(
        namespace_prefixes=ownership.namespace_prefixes,
        namespaces=tuple(ns.name for ns in desired.namespaces),
        host_links=tuple(peers),
        sysctl_keys=tuple(sysctl_keys),
    )


def observe(
    drivers: Drivers, desired: DesiredState, ownership: Ownership = DEFAULT_OWNERSHIP
) -> ObservedState:
    """Read the bridges of ``desired`` (its retired ones without their flows: they are only
    emptied and deleted), the owned namespaces and the veth bridge ends."""
    return observe_timed(drivers, desired, ownership)[0]


def observe_timed(
    drivers: Drivers, desired: DesiredState, ownership: Ownership = DEFAULT_OWNERSHIP
) -> tuple[ObservedState, dict[str, float]]:
    """``observe``, and how long each part took (ms): ``switch`` (ports and flows),
    ``kernel`` (namespaces and host links, read side by side with the switch), ``nat``.

    The switch and the kernel are read side by side (the switch's side mostly waits for
    ovs-ofctl); the result is the same as reading one after the other."""
    names = [b.name for b in desired.bridges]
    switch: dict[str, object] = {}
    timings: dict[str, float] = {}

    def read_switch() -> None:
        started = time.perf_counter()
        try:
            retired = drivers.ovs.observe(desired.retired_bridges, with_flows=False) \
                if desired.retired_bridges else ()
            switch["bridges"] = (*drivers.ovs.observe(names), *retired)
        except BaseException as error:  # re-raised in the caller's thread
            switch["error"] = error
        timings["switch"] = (time.perf_counter() - started) * 1000

    reader = threading.Thread(target=read_switch, name="dvr-observe-ovs", daemon=True)
    reader.start()
    started = time.perf_counter()
    try:
        linux = drivers.linux.observe(observation_scope(desired, ownership))
    finally:
        timings["kernel"] = (time.perf_counter() - started) * 1000
        reader.join()
    if "error" in switch:
        raise switch["error"]  # type: ignore[misc]
    namespaces = linux.namespaces
    started = time.perf_counter()
    if drivers.nat is not None and namespaces:
        tables = drivers.nat.observe([n.name for n in namespaces])
        namespaces = tuple(replace(n, nat=tables.get(n.name, ())) for n in namespaces)
    timings["nat"] = (time.perf_counter() - started) * 1000
    observed = ObservedState(
        bridges=switch["bridges"],  # type: ignore[arg-type]
        namespaces=namespaces, host_links=linux.host_links,
    )
    return observed, timings
