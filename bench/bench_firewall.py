"""Benchmark: the firewall's desired state (issue 13 performance targets).

Scenario (defaults): one host with 200 plugged, firewalled ports on one network, all in
one stateful group of 50 rules (ingress TCP ports from the group itself, i.e. conjunctions
over 200 member addresses; plus egress any and ICMP in).

Measured:
- flows per port for the 50-rule group, for 10 and 200 members: the flows the port owns
  (linear in its rules, nothing per member) and the clauses its network shares
  (``firewall:<network>``: one per member address and one per rule's protocol/ports);
  and the host's br-int total;
- one rule added to the group: the reconcile time of the change without the switch, i.e.
  ``DesiredStateCache.update`` (every port of the group gets its new rule) plus
  ``plan_changes`` against the switch as it was (the previous state, as installed), and
  how many flows the bundle carries;
- with ``--ovs`` (root, Open vSwitch running; take the lab lock): the same change applied
  by the real OVS driver to a scratch bridge holding the 200 ports' flows (``ovs-ofctl
  --bundle``), observe + plan + apply, as the agent's reconcile pass does it.

Run:  .venv/bin/python bench/bench_firewall.py [--ports 200] [--rules 50] [--repeat 5] [--ovs]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from dataclasses import replace

from dvr.agent.desired import DesiredStateCache, HostInputs, compute_desired_state
from dvr.agent.desired.state import DesiredState
from dvr.agent.reconcile.commands import FlowBundle
from dvr.agent.reconcile.observed import ObservedBridge, ObservedFlow, ObservedPort, ObservedState
from dvr.agent.reconcile.plan import plan_changes
from dvr.model.hostview import (
    AddressSetView,
    FixedIp,
    HostView,
    NetworkView,
    PortView,
    SecurityGroupRuleView,
    SecurityGroupView,
    SubnetView,
)

GROUP = "sg-bench"
NET, SUBNET = "net-bench", "sub-bench"


def rules(count: int) -> tuple[SecurityGroupRuleView, ...]:
    found = [SecurityGroupRuleView("r-egress", "egress", "IPv4"),
             SecurityGroupRuleView("r-icmp", "ingress", "IPv4", protocol=1)]
    found += [SecurityGroupRuleView(f"r-{i:03d}", "ingress", "IPv4", protocol=6,
                                    port_range_min=1000 + i, port_range_max=1000 + i,
                                    remote_group_id=GROUP) for i in range(count - 2)]
    return tuple(sorted(found, key=lambda r: r.id))


def view(ports: int, rule_count: int, members: int | None = None) -> HostView:
    def ip(i: int) -> str:
        return f"198.18.{i // 250}.{i % 250 + 1}"

    port_views = tuple(
        PortView(f"p{i:05d}", NET, f"fa:16:3e:00:{i // 256:02x}:{i % 256:02x}",
                 (FixedIp(SUBNET, ip(i)),), "compute:nova", f"vm{i}", "h",
                 port_security_enabled=True, security_group_ids=(GROUP,))
        for i in range(ports))
    addresses = tuple(sorted(f"{ip(i)}/32" for i in range(members or ports)))
    return HostView(
        host="h", revision=1, agent_mode="dvr", host_mac="fa:16:3f:00:00:01",
        tunnel_ip="198.18.255.1", ports=port_views,
        networks=(NetworkView(NET, "bench", "vxlan", 100, 1450, False, None,
                              (SubnetView(SUBNET, NET, "198.18.0.0/15", None, 4),), ()),),
        routers=(), peer_host_macs=(),
        security_groups=(SecurityGroupView(GROUP, True, rules(rule_count)),),
        address_sets=(AddressSetView(GROUP, "security_group", addresses),),
    )


def inputs(v: HostView) -> HostInputs:
    return HostInputs(plugged={p.id: f"tap{p.id}" for p in v.ports})


def flow_counts(v: HostView) -> tuple[int, int, int]:
    """(flows port p00000 owns, flows its network shares, br-int flows)."""
    flows = compute_desired_state(v, inputs(v)).bridge("br-int").flows
    own = sum(1 for f in flows if f.owner == "port:p00000")
    shared = sum(1 for f in flows if f.owner == f"firewall:{NET}")
    return own, shared, len(flows)


def with_rule(base: HostView) -> HostView:
    group = base.security_groups[0]
    extra = SecurityGroupRuleView("r-zzz", "ingress", "IPv4", protocol=17,
                                  port_range_min=53, port_range_max=53)
    return replace(base, security_groups=(replace(group, rules=group.rules + (extra,)),))


def as_installed(state: DesiredState) -> ObservedState:
    """What the switch reports once ``state`` is installed (every port present)."""
    return ObservedState(bridges=tuple(
        ObservedBridge(
            bridge.name, bridge.datapath_type, bridge.fail_mode, bridge.external_ids,
            tuple(ObservedPort(p.name, p.type, p.options, p.tag, p.external_ids, ofport)
                  for ofport, p in enumerate(bridge.ports, start=1)),
            tuple(ObservedFlow(f.cookie, f.table, f.priority, ports=tuple(sorted(f.ports)))
                  for f in bridge.flows))
        for bridge in state.bridges))


def rule_change(base: HostView, repeat: int) -> None:
    grown = with_rule(base)
    updates, plans, bundle = [], [], 0
    for _ in range(repeat):
        cache = DesiredStateCache()
        before = cache.update(base, inputs(base))
        observed = as_installed(before)
        gc.collect()
        started = time.perf_counter()
        after = cache.update(grown, inputs(base))
        updated = time.perf_counter()
        plan = plan_changes(after, observed)
        done = time.perf_counter()
        updates.append((updated - started) * 1000)
        plans.append((done - updated) * 1000)
        bundle = sum(len(b.add) + len(b.delete) for b in plan.of_type(FlowBundle))
    total = [u + p for u, p in zip(updates, plans, strict=True)]
    print(f"one rule added, {len(base.ports)} ports: desired update median "
          f"{statistics.median(updates):.1f} ms + plan {statistics.median(plans):.1f} ms = "
          f"{statistics.median(total):.1f} ms (min {min(total):.1f}); bundle of {bundle} flows")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=200)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ovs", action="store_true", help="also apply on real OVS (root)")
    args = parser.parse_args()

    for members in (10, args.ports):
        own, shared, _ = flow_counts(view(1, args.rules, members))
        print(f"flows per port, {args.rules}-rule group, {members} members: {own} own "
              f"+ {shared} shared by the network's ports")
    base = view(args.ports, args.rules)
    own, shared, total = flow_counts(base)
    print(f"host with {args.ports} ports: {own} flows per port + {shared} shared, "
          f"{total} br-int flows")
    rule_change(base, args.repeat)
    if args.ovs:
        from bench_firewall_ovs import rule_change_on_ovs
        rule_change_on_ovs(base, with_rule(base), inputs, args.repeat)


if __name__ == "__main__":
    main()
