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
  how many flows the bundle carries.  Not measured here: reading the switch (the agent's
  observe) and applying the bundle on a real OVS.

Run:  .venv/bin/python bench/bench_firewall.py [--ports 200] [--rules 50] [--repeat 5] [--write]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

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
RESULTS_JSON = Path(__file__).resolve().parent / "results.json"
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


def rule_change(base: HostView, repeat: int) -> dict[str, object]:
    """Wall-clock and CPU (``time.process_time``: what this process used, the better figure
    on a shared machine) milliseconds of the update and the plan."""
    grown = with_rule(base)
    runs: list[tuple[float, float, float, float]] = []  # update, plan: wall, cpu
    bundle = 0
    for _ in range(repeat):
        cache = DesiredStateCache()
        before = cache.update(base, inputs(base))
        observed = as_installed(before)
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        after = cache.update(grown, inputs(base))
        wall_updated, cpu_updated = time.perf_counter(), time.process_time()
        plan = plan_changes(after, observed)
        runs.append(((wall_updated - wall) * 1000, (cpu_updated - cpu) * 1000,
                     (time.perf_counter() - wall_updated) * 1000,
                     (time.process_time() - cpu_updated) * 1000))
        bundle = sum(len(b.add) + len(b.delete) for b in plan.of_type(FlowBundle))

    def median(index: int) -> float:
        return statistics.median(run[index] for run in runs)

    totals = [run[0] + run[2] for run in runs]
    cpu_totals = [run[1] + run[3] for run in runs]
    print(f"one rule added, {len(base.ports)} ports, bundle of {bundle} flows: "
          f"desired update {median(0):.1f} ms wall / {median(1):.1f} ms CPU, plan "
          f"{median(2):.1f} / {median(3):.1f}; total median {statistics.median(totals):.1f} "
          f"ms wall (min {min(totals):.1f}), {statistics.median(cpu_totals):.1f} ms CPU "
          f"(min {min(cpu_totals):.1f})")
    return {"runs": repeat, "bundle_flows": bundle,
            "update_ms_wall": round(median(0), 1), "update_ms_cpu": round(median(1), 1),
            "plan_ms_wall": round(median(2), 1), "plan_ms_cpu": round(median(3), 1),
            "total_ms_wall": round(statistics.median(totals), 1),
            "total_ms_wall_min": round(min(totals), 1),
            "total_ms_cpu": round(statistics.median(cpu_totals), 1),
            "total_ms_cpu_min": round(min(cpu_totals), 1)}


def reference_ms() -> float:
    """CPU ms of a fixed pure-Python loop (a million dict inserts; about 70 ms on an idle
    modern core): how fast this machine runs Python right now, to read the others by."""
    started = time.process_time()
    table = {}
    for i in range(1_000_000):
        table[i] = i
    return round((time.process_time() - started) * 1000, 1)


def write_results(results: dict[str, object]) -> None:
    """Merge ``results`` into bench/results.json (other keys kept)."""
    saved = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    saved.update(results)
    RESULTS_JSON.write_text(json.dumps(saved, indent=1, ensure_ascii=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=200)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="record in bench/results.json")
    args = parser.parse_args()

    per_port: dict[str, dict[str, int]] = {}
    for members in (10, args.ports):
        own, shared, _ = flow_counts(view(1, args.rules, members))
        per_port[f"{members}_members"] = {"own": own, "shared_per_network": shared}
        print(f"flows per port, {args.rules}-rule group, {members} members: {own} own "
              f"+ {shared} shared by the network's ports")
    base = view(args.ports, args.rules)
    own, shared, total = flow_counts(base)
    print(f"host with {args.ports} ports: {own} flows per port + {shared} shared, "
          f"{total} br-int flows")
    reference = reference_ms()
    change = rule_change(base, args.repeat)
    reference = min(reference, reference_ms())
    print(f"reference: a million dict inserts take {reference:.0f} ms CPU here now")
    if args.write:
        write_results({
            f"fw_flows_per_port_{args.rules}_rules": own,
            f"fw_rule_change_reconcile_ms_{args.ports}_ports": change["total_ms_cpu"],
            "firewall": {
                "command": "bench/bench_firewall.py " + " ".join(sys.argv[1:]),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                "reference_ms_cpu_million_dict_inserts": reference,
                "flows_per_port": per_port,
                f"br_int_flows_{args.ports}_ports": total,
                "rule_change": change,
            },
        })


if __name__ == "__main__":
    main()
