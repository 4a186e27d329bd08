"""Benchmark: the firewall's desired state (issue 13 performance targets).

Scenario (defaults): one host with 200 plugged, firewalled ports on one network, all in
one stateful group of 50 rules (ingress TCP ports from the group itself, i.e. conjunctions
over 200 member addresses; plus egress any and ICMP in).

Measured:
- flows per port for the 50-rule group, for 10 and 200 members: the flows the port owns
  (linear in its rules, nothing per member) and the clauses its network shares
  (``firewall:<network>``: one per member address and one per rule's protocol/ports);
  and the host's br-int total;
- one rule added to the group: the reconcile time of the change without the switch's I/O,
  i.e. ``DesiredStateCache.update`` (every port of the group gets its new rule), reading
  the flow mirror (a ``FlowTable`` holding the previous state as installed: its snapshot)
  and ``plan_changes`` against it from the basis of the previous pass (the agent's steady
  state: the previous pass found nothing to do), and how many flows the bundle carries.
  For comparison, the same plan made in full (no basis: every flow of the bridge walked),
  and the next pass's read of the mirror once the switch has applied the bundle (its new
  flows parsed: the cost a following reconcile pays in its observe).
  Not measured here: the OVSDB read and mirror barrier of the agent's observe, and
  applying the bundle on a real OVS.

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
from dvr.agent.drivers.flow_mirror import FlowTable
from dvr.agent.drivers.openflow import FlowEvent, monitored_flow
from dvr.agent.reconcile.commands import FlowBundle
from dvr.agent.reconcile.observed import (
    DEFAULT_OWNERSHIP,
    ObservedBridge,
    ObservedPort,
    ObservedState,
)
from dvr.agent.reconcile.plan import plan_changes
from dvr.gc_tuning import tune_garbage_collector
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


class InstalledSwitch:
    """The switch once ``state`` is installed (every port present, numbered in order), its
    flows held by one flow mirror per bridge as the agent's OVS driver keeps them."""

    def __init__(self, state: DesiredState) -> None:
        self.state = state
        self.mirrors: dict[str, tuple[FlowTable, dict[int, str]]] = {}
        for bridge in state.bridges:
            numbers = {p.name: n for n, p in enumerate(bridge.ports, start=1)}
            table = FlowTable()
            for flow in bridge.flows:
                table.apply(FlowEvent("INITIAL", monitored_flow(flow, numbers)))
            names = {n: name for name, n in numbers.items()}
            table.flows(names)  # parsed once, as the agent's first observation does
            self.mirrors[bridge.name] = (table, names)

    def install(self, bundle: FlowBundle) -> None:
        """The monitor's events of ``bundle`` applied by the switch."""
        table, names = self.mirrors[bundle.bridge]
        numbers = {name: n for n, name in names.items()}
        installed = {f.cookie: f for f in self.state.bridge(bundle.bridge).flows}
        for ref in bundle.delete:
            table.apply(FlowEvent("DELETED", monitored_flow(installed[ref.cookie], numbers)))
        for flow in bundle.add:
            table.apply(FlowEvent("ADDED", monitored_flow(flow, numbers)))

    def observe(self) -> ObservedState:
        """What the agent's observe reports (its flows part: the mirrors' snapshots)."""
        bridges = []
        for bridge in self.state.bridges:
            table, names = self.mirrors[bridge.name]
            ports = tuple(ObservedPort(
                p.name, p.type, p.options, p.tag,
                (*p.external_ids, DEFAULT_OWNERSHIP.managed_marker) if p.managed
                else p.external_ids, n) for n, p in enumerate(bridge.ports, start=1))
            bridges.append(ObservedBridge(
                bridge.name, bridge.datapath_type, bridge.fail_mode, bridge.external_ids,
                ports, table.flows(names), table.snapshot(names)))
        return ObservedState(bridges=tuple(bridges))


def rule_change(base: HostView, repeat: int) -> dict[str, object]:
    """Wall-clock and CPU (``time.process_time``: what this process used, the better figure
    on a shared machine) milliseconds of the update, the mirror read and the plan."""
    grown = with_rule(base)
    first = DesiredStateCache()
    switch = InstalledSwitch(first.update(base, inputs(base)))
    runs: list[tuple[float, ...]] = []  # update, read, plan, full plan: wall, cpu each
    bundle = 0
    for _ in range(repeat):
        cache = DesiredStateCache()
        before = cache.update(base, inputs(base))
        settled = plan_changes(before, switch.observe())  # the previous pass: in sync
        assert not settled.commands, settled.summary()
        gc.collect()
        marks = [(time.perf_counter(), time.process_time())]
        after = cache.update(grown, inputs(base))
        marks.append((time.perf_counter(), time.process_time()))
        observed = switch.observe()
        marks.append((time.perf_counter(), time.process_time()))
        plan = plan_changes(after, observed, basis=settled.basis)
        marks.append((time.perf_counter(), time.process_time()))
        full = plan_changes(after, observed)
        marks.append((time.perf_counter(), time.process_time()))
        assert plan == full and all(b.incremental for b in plan.basis.values())
        runs.append(tuple(
            (marks[i + 1][clock] - marks[i][clock]) * 1000
            for i in range(4) for clock in (0, 1)))
        bundle = sum(len(b.add) + len(b.delete) for b in plan.of_type(FlowBundle))
    # the next pass's read of the mirror, once the switch has applied the change (once:
    # it changes the mirror): every flow of the bundle parsed, then placed
    for flow_bundle in plan.of_type(FlowBundle):
        switch.install(flow_bundle)
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    switch.observe()
    read_after = ((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000)

    def median(index: int) -> float:
        return statistics.median(run[index] for run in runs)

    totals = [run[0] + run[4] for run in runs]  # update + plan
    cpu_totals = [run[1] + run[5] for run in runs]
    print(f"one rule added, {len(base.ports)} ports, bundle of {bundle} flows: "
          f"desired update {median(0):.1f} ms wall / {median(1):.1f} ms CPU, mirror read "
          f"{median(2):.1f} / {median(3):.1f}, plan {median(4):.1f} / {median(5):.1f} "
          f"(in full: {median(6):.1f} / {median(7):.1f}); update + plan median "
          f"{statistics.median(totals):.1f} ms wall (min {min(totals):.1f}), "
          f"{statistics.median(cpu_totals):.1f} ms CPU (min {min(cpu_totals):.1f}); the "
          f"next pass's mirror read, once the bundle is applied: {read_after[0]:.1f} ms wall "
          f"/ {read_after[1]:.1f} ms CPU")
    return {"runs": repeat, "bundle_flows": bundle,
            "update_ms_wall": round(median(0), 1), "update_ms_cpu": round(median(1), 1),
            "mirror_read_ms_wall": round(median(2), 1),
            "mirror_read_ms_cpu": round(median(3), 1),
            "plan_ms_wall": round(median(4), 1), "plan_ms_cpu": round(median(5), 1),
            "plan_in_full_ms_wall": round(median(6), 1),
            "plan_in_full_ms_cpu": round(median(7), 1),
            "next_mirror_read_ms_wall": round(read_after[0], 1),
            "next_mirror_read_ms_cpu": round(read_after[1], 1),
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
    tune_garbage_collector()  # as dvr-agent does at start

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
