"""Benchmark: the firewall's desired state (issue 13 performance targets, the pure part).

Scenario (defaults): one host with 200 plugged, firewalled ports on one network, all in
one stateful group of 50 rules (ingress TCP ports from the group itself, i.e. conjunctions
over 200 member addresses; plus egress any and ICMP in).

Measured:
- flows per port for the 50-rule group (and the host's br-int total), for 10 and 200
  members: growth is per member address, not rules x members;
- one rule added to the group: ``DesiredStateCache.update`` time (every port of the group
  is recomputed) and how many flows change (what the OVS bundle must carry).  The target
  "< 100 ms to reconcile a rule change on 200 ports" also includes the OVS bundle, which
  this pure benchmark does not apply.

Run:  .venv/bin/python bench/bench_firewall.py [--ports 200] [--rules 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

from dvr.agent.desired import DesiredStateCache, HostInputs, compute_desired_state
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


def port_flow_count(v: HostView) -> tuple[int, int]:
    state = compute_desired_state(v, inputs(v))
    flows = state.bridge("br-int").flows
    return sum(1 for f in flows if f.owner == "port:p00000"), len(flows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=200)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    for members in (10, args.ports):
        per_port, total = port_flow_count(view(1, args.rules, members))
        print(f"flows per port, {args.rules}-rule group, {members} members: {per_port}")
    base = view(args.ports, args.rules)
    per_port, total = port_flow_count(base)
    print(f"host with {args.ports} ports: {per_port} flows per port, {total} br-int flows")

    group = base.security_groups[0]
    extra = SecurityGroupRuleView("r-zzz", "ingress", "IPv4", protocol=17,
                                  port_range_min=53, port_range_max=53)
    grown = replace(base, security_groups=(replace(group, rules=group.rules + (extra,)),))
    times, changed = [], 0
    for _ in range(args.repeat):
        cache = DesiredStateCache()
        before = cache.update(base, inputs(base))
        started = time.perf_counter()
        after = cache.update(grown, inputs(base))
        times.append((time.perf_counter() - started) * 1000)
        changed = len(before.bridge("br-int").flows ^ after.bridge("br-int").flows)
    print(f"one rule added, {args.ports} ports recomputed: median "
          f"{statistics.median(times):.1f} ms (min {min(times):.1f}), {changed} flows change")


if __name__ == "__main__":
    main()
