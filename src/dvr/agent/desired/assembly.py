"""Assemble pieces into one DesiredState.

The assembly counts references: two pieces may produce the same flow (two local routers
attached to one subnet both drop ARP for its gateway IP) and the flow stays until the last
of them goes.  ``build`` depends only on the multiset of pieces added, never on the order,
so a full computation and an incremental one that hold the same pieces build equal states.
Each bridge's flow set, each bridge's port tuple and the namespace tuple are rebuilt only
when a piece that touched them changed.

Two different ports (or namespaces) with one name would be a bug upstream; the assembly
still resolves it deterministically (the least by value wins) instead of emitting both.
"""

from __future__ import annotations

from collections import _count_elements  # the C helper of Counter.update
from collections.abc import Mapping

from dvr.agent.desired.config import DesiredConfig
from dvr.agent.desired.folding import fold_piece
from dvr.agent.desired.pieces import Piece
from dvr.agent.desired.state import BridgeState, DesiredState, Flow, NamespaceState, OvsPort


def count_change(counts: dict, item: object, delta: int) -> bool:
    """Change ``item``'s count; True when it entered or left the multiset."""
    before = counts.get(item, 0)
    left = before + delta
    if left:
        counts[item] = left
    else:
        del counts[item]
    return not before or not left


def _pick_port(variants: dict[OvsPort, int]) -> OvsPort:
    if len(variants) == 1:
        return next(iter(variants))
    return min(variants)


def _pick_namespace(variants: dict[NamespaceState, int]) -> NamespaceState:
    if len(variants) == 1:
        return next(iter(variants))
    return min(variants, key=repr)


class Assembly:
    def __init__(self, config: DesiredConfig) -> None:
        self.config = config
        self._flows: dict[str, dict[Flow, int]] = {}  # bridge -> flow -> count
        self._ports: dict[str, dict[str, dict[OvsPort, int]]] = {}  # bridge -> name -> variants
        self._namespaces: dict[str, dict[NamespaceState, int]] = {}  # name -> variants
        self._dirty_flows: set[str] = set()
        self._dirty_ports: set[str] = set()
        self._namespaces_dirty = True
        self._built_flows: dict[str, frozenset[Flow]] = {}
        self._built_ports: dict[str, tuple[OvsPort, ...]] = {}
        self._built_namespaces: tuple[NamespaceState, ...] = ()

    # --- mutation -----------------------------------------------------------------------------
    def add(self, piece: Piece) -> None:
        self._apply(piece, 1)

    def remove(self, piece: Piece) -> None:
        self._apply(piece, -1)

    def replace(self, before: Piece | None, after: Piece | None) -> None:
        """Swap one piece for its new version.  Adding first means items present in both
        only change count, so untouched bridges and namespaces are not rebuilt."""
        if after is not None:
            self._apply(after, 1)
        if before is not None:
            self._apply(before, -1)

    def _apply(self, piece: Piece, delta: int) -> None:
        piece_flows, piece_ports = piece.flows, piece.ports
        if self.config.folded:
            piece_flows, piece_ports = fold_piece(piece_flows, piece_ports, self.config)
        for bridge, flows in piece_flows:
            counts = self._flows.get(bridge)
            if counts is None:
                counts = self._flows[bridge] = {}
            if delta == 1:
                # counts each flow with one hash, in C; a flow entered iff the dict grew
                size = len(counts)
                _count_elements(counts, flows)
                changed = len(counts) != size
            else:
                changed = False
                for flow in flows:
                    changed = count_change(counts, flow, delta) or changed
            if changed:
                self._dirty_flows.add(bridge)
        for bridge, ports in piece_ports:
            by_name = self._ports.get(bridge)
            if by_name is None:
                by_name = self._ports[bridge] = {}
            for port in ports:
                variants = by_name.get(port.name)
                if variants is None:
                    variants = by_name[port.name] = {}
                if count_change(variants, port, delta):
                    self._dirty_ports.add(bridge)
                if not variants:
                    del by_name[port.name]
        for namespace in piece.namespaces:
            variants = self._namespaces.get(namespace.name)
            if variants is None:
                variants = self._namespaces[namespace.name] = {}
            if count_change(variants, namespace, delta):
                self._namespaces_dirty = True
            if not variants:
                del self._namespaces[namespace.name]

    # --- output -------------------------------------------------------------------------------
    def _bridge_names(self) -> list[str]:
        first = list(self.config.switch_bridges)
        used = {name for name, counts in self._flows.items() if counts}
        used |= {name for name, by_name in self._ports.items() if by_name}
        return first + sorted(used - set(first))

    def _refresh(self) -> None:
        for bridge in self._dirty_flows:
            self._built_flows[bridge] = frozenset(self._flows.get(bridge, ()))
        self._dirty_flows.clear()
        for bridge in self._dirty_ports:
            by_name = self._ports.get(bridge, {})
            self._built_ports[bridge] = tuple(
                _pick_port(by_name[name]) for name in sorted(by_name)
            )
        self._dirty_ports.clear()
        if self._namespaces_dirty:
            self._built_namespaces = tuple(
                _pick_namespace(self._namespaces[name]) for name in sorted(self._namespaces)
            )
            self._namespaces_dirty = False

    def build(self, host: str, revision: int, local_vlans: Mapping[str, int]) -> DesiredState:
        self._refresh()
        for name in self.config.switch_bridges:
            self._built_flows.setdefault(name, frozenset())
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
            retired_bridges=config.retired_bridges,
        )
