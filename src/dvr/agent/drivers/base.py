"""The narrow interfaces every dataplane driver implements (real and fake alike).

A driver observes what is there (``dvr.agent.reconcile.observed``) and carries out commands
(``dvr.agent.reconcile.commands``); it decides no policy: *which* namespaces, bridges and
links to look at is passed in.  Those value types live with the reconciler, so the pure
planner never imports a driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from dvr.agent.desired.state import NatRule
from dvr.agent.reconcile.commands import FlowBundle, LinuxOp, NatOp, OvsdbOp
from dvr.agent.reconcile.observed import ObservedBridge, ObservedLinux


class DriverError(Exception):
    """A command the dataplane refused (the message says which and why)."""


@dataclass(frozen=True)
class LinuxScope:
    """What a Linux observation covers."""

    namespace_prefixes: tuple[str, ...]  # namespaces whose names start with one of these
    namespaces: tuple[str, ...] = ()  # and these, by exact name
    host_links: tuple[str, ...] = ()  # links of the host's own namespace, by name
    sysctl_keys: tuple[str, ...] = ()  # read in every observed namespace


class OvsDriver(Protocol):
    def observe(self, bridges: Iterable[str], with_flows: bool = True
                ) -> tuple[ObservedBridge, ...]:
        """The named bridges that exist, with their ports and (unless told not to, which is
        much cheaper) their flows: every flow change made before this call is in them."""
        ...

    def transact(self, ops: Sequence[OvsdbOp]) -> None:
        """All of ``ops`` in one OVSDB transaction (all or nothing)."""
        ...

    def apply_flows(self, bundle: FlowBundle) -> None:
        """One atomic OpenFlow bundle (all or nothing)."""
        ...

    def on_port_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from any thread; it must be quick) whenever a port of a
        bridge appears, goes, or changes what ``observe`` reports about it."""
        ...


class LinuxDriver(Protocol):
    def observe(self, scope: LinuxScope) -> ObservedLinux: ...

    def apply(self, op: LinuxOp) -> None: ...


class NatDriver(Protocol):
    """nftables in router namespaces: each namespace's ``ip dvr`` table."""

    def observe(self, namespaces: Iterable[str]) -> dict[str, tuple[NatRule, ...] | None]:
        """namespace -> its table's rules (``()``: no table), None if the table holds
        something else; namespaces that do not exist are left out."""
        ...

    def apply(self, op: NatOp) -> None: ...


@dataclass(frozen=True)
class Drivers:
    ovs: OvsDriver
    linux: LinuxDriver
    nat: NatDriver | None = None
