"""Assemble pieces into one DesiredState.

The assembly counts references: two pieces may produce the same flow (two local routers
attached to one subnet both drop ARP for its gateway IP) and the flow stays until the last
of them goes.  ``build`` depends only on the multiset of pieces added, never on the order,
so a full computation and an incremental one that hold the same pieces build equal states.
Each bridge's flow set, port tuple and the namespace tuple are rebuilt only when a piece
that touched them changed.
"""

from __future__ import annotations

from collections.abc import Mapping

from dvr.agent.desired.config import DesiredConfig
from dvr.agent.desired.pieces import Piece
from dvr.agent.desired.state import BridgeState, DesiredState, Flow, NamespaceState, OvsPort


class _Counter:
    """A multiset: item -> count."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict = {}

    def add(self, item: object) -> None:
        self.counts[item] = self.counts.get(item, 0) + 1

    def remove(self, item: object) -> None:
        left = self.counts[item] - 1
        if left:
            self.counts[item] = left
        else:
            del self.counts[item]


class Assembly:
    def __init__(self, config: DesiredConfig) -> None:
        self.config = config
        self._flows: dict[str, _Counter] = {}
        self._ports: dict[str, dict[str, _Counter]] = {}  # bridge -> port name -> variants
        self._namespaces: dict[str, _Counter] = {}  # name -> variants
        self._dirty_bridges: set[str] = set()
        self._namespaces_dirty = True
        self._built_flows: dict[str, frozenset[Flow]] = {}
        self._built_ports: dict[str, tuple[OvsPort, ...]] = {}
        self._built_namespaces: tuple[NamespaceState, ...] = ()

    # --- mutation -----------------------------------------------------------------------------
    def add(self, piece: Piece) -> None:
        self._apply(piece, adding=True)

    def remove(self, piece: Piece) -> None:
        self._apply(piece, adding=False)

    def _apply(self, piece: Piece, adding: bool) -> None:
        for bridge, flow in piece.flows:
            counter = self._flows.get(bridge)
            if counter is None:
                counter = self._flows[bridge] = _Counter()
            if adding:
                counter.add(flow)
            else:
                counter.remove(flow)
            self._dirty_bridges.add(bridge)
        for bridge, port in piece.ports:
            by_name = self._ports.setdefault(bridge, {})
            variants = by_name.get(port.name)
            if variants is None:
                variants = by_name[port.name] = _Counter()
            if adding:
                variants.add(port)
            else:
                variants.remove(port)
                if not variants.counts:
                    del by_name[port.name]
            self._dirty_bridges.add(bridge)
        for namespace in piece.namespaces:
            variants = self._namespaces.get(namespace.name)
            if variants is None:
                variants = self._namespaces[namespace.name] = _Counter()
            if adding:
                variants.add(namespace)
            else:
                variants.remove(namespace)
                if not variants.counts:
                    del self._namespaces[namespace.name]
            self._namespaces_dirty = True

    # --- output -------------------------------------------------------------------------------
    def _bridge_names(self) -> list[str]:
        first = [self.config.integration_bridge, self.config.tunnel_bridge]
        used = {name for name, counter in self._flows.items() if counter.counts}
        used |= {name for name, by_name in self._ports.items() if by_name}
        return first + sorted(used - set(first))

    def _refresh(self) -> None:
        for bridge in self._dirty_bridges:
            counter = self._flows.get(bridge)
            self._built_flows[bridge] = frozenset(counter.counts) if counter else frozenset()
            by_name = self._ports.get(bridge, {})
            # one port per name; conflicting variants (a bug upstream) resolve to the least
            self._built_ports[bridge] = tuple(
                min(by_name[name].counts) for name in sorted(by_name)
            )
        self._dirty_bridges.clear()
        if self._namespaces_dirty:
            self._built_namespaces = tuple(
                min(self._namespaces[name].counts, key=repr) for name in sorted(self._namespaces)
            )
            self._namespaces_dirty = False

    def build(self, host: str, revision: int, local_vlans: Mapping[str, int]) -> DesiredState:
        self._refresh()
        config = self.config
        bridges = tuple(
            BridgeState(
                name=name,
                ports=self._built_ports.get(name, ()),
                flows=self._built_flows.get(name, frozenset()),
                datapath_type=config.datapath_type,
            )
            for name in self._bridge_names()
        )
        return DesiredState(
            host=host,
            revision=revision,
            bridges=bridges,
            namespaces=self._built_namespaces,
            local_vlans=tuple(sorted(local_vlans.items())),
        )
