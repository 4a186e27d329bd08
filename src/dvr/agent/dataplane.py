"""The agent's host dataplane: observed inputs -> desired state (pure) -> reconcile.

``host_inputs`` (pure) reads the few observed facts the desired state depends on from the
integration bridge: which VIFs are plugged (by ``external_ids:iface-id``) and which local
VLANs are already in use (the tags of ports of known networks), so that an agent restart
keeps every VLAN — and therefore every flow — exactly as it was.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dvr.agent.config import AgentConfig
from dvr.agent.desired import DesiredConfig, DesiredStateCache, HostInputs
from dvr.agent.desired.state import DesiredState
from dvr.agent.drivers.base import Drivers
from dvr.agent.loop import ApplyOutcome
from dvr.agent.reconcile.executor import ExecutionReport, execute_plan
from dvr.agent.reconcile.known import beyond_flows_and_vif_tags, plan_from_known
from dvr.agent.reconcile.observed import DEFAULT_OWNERSHIP, IFACE_ID, ObservedBridge, Ownership
from dvr.agent.reconcile.plan import FlowBasis
from dvr.agent.reconcile.reconciler import reconcile
from dvr.model.hostview import HostView

log = logging.getLogger(__name__)

# ``settle(seconds, news)``: wait up to that long until ``news()`` (``WakeSignal.until``)
Settle = Callable[[float, Callable[[], bool]], object]


def port_networks(view: HostView) -> dict[str, str]:
    """port id -> network id for every port this host may have on its integration bridge."""
    networks = {p.id: p.network_id for p in view.ports}
    for router in view.routers:
        networks.update({i.port_id: i.network_id for i in router.interfaces})
        networks.update({s.port_id: s.network_id for s in router.snat_ports})
    return networks


def plugged_vifs(bridge: ObservedBridge | None,
                 ownership: Ownership = DEFAULT_OWNERSHIP) -> dict[str, str]:
    """iface-id -> OVS port name of the VIFs others plugged (the agent's own ports excluded)."""
    if bridge is None:
        return {}
    return {
        iface_id: port.name
        for port in bridge.ports
        if (iface_id := port.external_id(IFACE_ID))
        and not ownership.owns_port(port)
        and port.ofport not in (None, -1)
    }


def vif_fingerprint(bridge: ObservedBridge | None,
                    ownership: Ownership = DEFAULT_OWNERSHIP) -> frozenset[str]:
    """One ``iface-id port-name ofport`` string per VIF plugged by others: it changes when a
    VIF is plugged, unplugged, or replugged under the same name (a new OpenFlow number)."""
    if bridge is None:
        return frozenset()
    return frozenset(
        f"{iface_id} {port.name} {port.ofport}"
        for port in bridge.ports
        if (iface_id := port.external_id(IFACE_ID))
        and not ownership.owns_port(port)
        and port.ofport not in (None, -1)
    )


def host_inputs(view: HostView, bridge: ObservedBridge | None,
                remembered_vlans: Mapping[str, int],
                ownership: Ownership = DEFAULT_OWNERSHIP) -> HostInputs:
    """The observed inputs of the desired state.

    Local VLANs: what this process remembers wins; after a restart, the tags that ports of
    known networks carry on the bridge are taken back.
    """
    previous: dict[str, int] = {}
    if bridge is not None:
        networks = port_networks(view)
        for port in bridge.ports:
            network_id = networks.get(port.external_id(IFACE_ID) or "")
            if network_id and port.tag is not None and port.tag > 0:
                previous.setdefault(network_id, port.tag)
    previous.update(remembered_vlans)
    return HostInputs(plugged=plugged_vifs(bridge, ownership), previous_local_vlans=previous)


class HostDataplane:
    """Implements the loop's ``Dataplane`` with real (or fake) drivers.

    A pass has two phases.  The fast one computes the desired state and sends at once
    what can be planned from what the last pass left (``reconcile.known``: VIF tags and
    flow bundles, no observation).  The full one observes the switch and the kernel,
    plans everything and applies the rest; after a fast phase it normally finds the flows
    it sent installed.  ``reconcile_local`` (a VIF plugged or unplugged, the view held)
    leaves the full phase out when the fast one covered everything that changed."""

    def __init__(self, config: AgentConfig, drivers: Drivers):
        self.config = config
        self.drivers = drivers
        self.desired_config = DesiredConfig(
            integration_bridge=config.integration_bridge,
            tunnel_bridge=config.tunnel_bridge,
            datapath_type=config.datapath,
            agent_mode=config.mode,
            bridge_mappings=config.parsed_bridge_mappings(),
            east_west=config.east_west,
            tunnel_layout=config.tunnel_layout,
        )
        self.cache = DesiredStateCache(self.desired_config)
        self._flow_basis: FlowBasis | None = None  # the last plan's, for the next one
        self._bridges: tuple[str, ...] = ()  # the bridges the last reconcile observed
        self._vlans: dict[str, int] = {}
        # the desired state the dataplane holds after the last pass, when it had no error
        # and ran (or could leave out) its full phase; None: the next pass runs it
        self._settled: DesiredState | None = None
        self._known = False  # the flow basis is what the switch holds: fast phases may run
        self._interrupt: Callable[[], bool] | None = None  # see ``interrupt_with``
        self._settle: Settle | None = None  # see ``interrupt_with``
        self._deferred = False  # the last pass left its full phase for this one
        self.last_log_line = ""

    def _integration_bridge(self) -> ObservedBridge | None:
        """br-int's ports (no flows: this is read every poll interval)."""
        found = self.drivers.ovs.observe([self.config.integration_bridge], with_flows=False)
        return found[0] if found else None

    def _switch_ports(self) -> dict[str, ObservedBridge]:
        """The ports of br-int and of the bridges the last pass observed (no flows)."""
        names = dict.fromkeys((self.config.integration_bridge, *self._bridges))
        return {b.name: b for b in self.drivers.ovs.observe(list(names), with_flows=False)}

    def plugged_vifs(self) -> frozenset[str]:
        """The fingerprint of the plugged VIFs (``vif_fingerprint``): iface-id, port, number."""
        return vif_fingerprint(self._integration_bridge())

    def on_local_change(self, callback: Callable[[], None]) -> None:
        """``callback()`` whenever a port of a bridge changes (a VIF plugged, unplugged,
        renumbered), if the OVS driver can tell; otherwise the loop's polling finds it."""
        subscribe = getattr(self.drivers.ovs, "on_port_change", None)
        if subscribe is not None:
            subscribe(callback)

    def interrupt_with(self, check: Callable[[], bool], settle: Settle | None = None) -> None:
        """``check()`` tells whether something new waits for the loop (a change the server
        told of).  Then, or when the plugged VIFs changed meanwhile, a pass whose fast
        phase went well leaves its full phase to the next pass, which the loop runs at
        once (``ApplyOutcome.verified`` False) -- never two passes in a row.
        ``settle(seconds, news)`` waits up to that long until ``news()`` (asked again at each
        poke or nudge): a pass whose fast phase sent changes first gives the next change
        ``full_phase_grace`` to come (a VIF plugged just after its port was bound), so
        that change's own fast phase is not held behind this pass's observation.  A VIF
        counts once the switch numbered it: the OVSDB row of a port being added comes
        first, and the pass waits on for its number."""
        self._interrupt = check
        self._settle = settle

    def reconcile(self, view: HostView) -> ApplyOutcome:
        """The fast phase, then the full one."""
        return self._pass(view, full=True)

    def reconcile_local(self, view: HostView) -> ApplyOutcome:
        """A pass for a local change (VIFs plugged or unplugged) on the view of the last
        pass: the fast phase, and the full one only when the fast phase may not have done
        everything -- a bridge it could not plan (a port gone or renumbered, no basis), a
        change beyond flows and VIF tags (an orphan VIF's tag is one of those it sets), an
        error in this pass or the last."""
        return self._pass(view, full=False)

    def _pass(self, view: HostView, full: bool) -> ApplyOutcome:
        started = time.perf_counter()
        switch = self._switch_ports()
        integration_bridge = switch.get(self.config.integration_bridge)
        inputs = host_inputs(view, integration_bridge, self._vlans)
        read_inputs = time.perf_counter()
        desired = self.cache.update(view, inputs)
        computed = time.perf_counter()
        fast = None
        if self._known and self.config.fast_phase:
            fast = self._fast_phase(desired, tuple(switch.values()))
        fasted = time.perf_counter()
        timings = {"inputs": (read_inputs - started) * 1000,
                   "compute": (computed - read_inputs) * 1000}
        counts: Counter[str] = Counter()
        failures: tuple[str, ...] = ()
        if fast is not None:
            timings["fast"] = (fasted - computed) * 1000
            timings.update({f"fast_{kind}": ms for kind, ms in fast.report.timings})
            counts.update(dict(fast.report.counts))
        settled, self._settled = self._settled, None
        needs_full = (full or fast is None or not fast.done or settled is None
                      or beyond_flows_and_vif_tags(settled, desired))
        may_defer = needs_full and fast is not None and fast.done
        if may_defer and fast.report.counts and not self._deferred:
            self._wait_for_news(integration_bridge)
        deferred = may_defer and self._news(integration_bridge)
        if needs_full and not deferred:
            # the flows are observed as they are from now: with what the fast phase sent
            result = reconcile(desired, self.drivers, basis=self._flow_basis)
            self._flow_basis = result.plan.basis
            self._bridges = tuple(b.name for b in desired.bridges)
            timings.update(result.timings())
            self.last_log_line = result.log_line()
            counts.update(dict(result.report.counts))
            failures = tuple(str(f) for f in result.report.failures)
        self._deferred = deferred
        self._known = not failures
        if not failures and not deferred:
            self._settled = desired
        self._vlans = dict(desired.local_vlans)
        local = {p.id for p in view.ports}
        vifs = {pid: name for pid, name in inputs.plugged.items() if pid in local}
        return ApplyOutcome(
            counts=dict(counts),
            errors=failures,
            ports_up=tuple(sorted(vifs)) if not failures else (),
            vifs=vifs,
            local_vlans=dict(desired.local_vlans),
            plugged=vif_fingerprint(integration_bridge),
            timings=timings,
            verified=not deferred,
        )

    def _wait_for_news(self, integration_bridge: ObservedBridge | None) -> None:
        grace = self.config.full_phase_grace
        if self._settle is not None and grace > 0:
            self._settle(grace, lambda: self._news(integration_bridge))

    def _news(self, integration_bridge: ObservedBridge | None) -> bool:
        """Whether the full phase may wait: something new waits for the loop, or the VIFs
        changed since this pass read them (and the last pass did not defer already)."""
        if self._interrupt is None or self._deferred:
            return False
        return self._interrupt() or self.plugged_vifs() != vif_fingerprint(integration_bridge)

    def _fast_phase(self, desired: DesiredState, switch: tuple[ObservedBridge, ...]
                    ) -> FastPhase:
        """Plan from what is known and send it (``reconcile.known``).  Its basis is the
        next plan's, unless it failed: then the next plan starts afresh."""
        known = plan_from_known(desired, switch, self._flow_basis or {})
        report = execute_plan(known.plan, self.drivers)
        self._flow_basis = known.plan.basis if report.ok else None
        for failure in report.failures:  # the full phase follows and plans it all again
            log.warning("fast phase: %s", failure)
        return FastPhase(report, done=report.ok and not known.unplanned)


@dataclass(frozen=True)
class FastPhase:
    """What a pass's fast phase did: its report; ``done``: it planned every bridge and
    all it sent was applied."""

    report: ExecutionReport
    done: bool
