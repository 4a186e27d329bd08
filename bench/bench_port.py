"""Reconcile of one new port on real OVS (issue 3: port bound -> flows and ARP < 300 ms).

Per run, on a lab of its own (default topology):
1. before the clock starts, the "guest" is prepared like a hypervisor would (portprobe.py,
   the same for the OVN side in bench_port_ovn.py): namespace
   ``vm-bp<N>`` on HOST with its NIC (a veth, MAC/IP chosen by the benchmark, TX checksum
   off, default route), and three watchers are started: ``ovs-ofctl monitor br-int
   watch:table=1`` on HOST, ``ip monitor neigh`` in the ``qrouter-`` namespace of the OTHER
   compute host, and ``ping -i 0.015`` from SOURCE (a VM on the other host, routed) — one
   probe every 15 ms without waiting for the last, so a lost probe costs 15 ms, not a
   timeout (docs/design.md §3);
2. t0: POST /v2.0/ports bound to HOST (binding:host_id, the chosen MAC and IP); then the VIF
   is plugged into br-int (one ``ovs-vsctl add-port`` with ``external_ids:iface-id``), at
   once or ``--plug-delay`` seconds later (then the agent has programmed everything but
   the VIF before it is plugged, and the plug alone must be noticed);
3. measured: (a) the port's br-int table-1 flow ADDED on HOST, (b) its PERMANENT neighbor in
   the other host's qrouter namespace, (c) the first echo reply — each from t0 and (a), (c)
   also from the plug; the agents' reconcile lines since t0 give the breakdown;
4. the port is unplugged and deleted, the guest namespace removed, and the run waits until
   the neighbor is gone again.

``--modes mirror,dump`` compares the agents' two ways of observing flows in one run, on one
lab: the runs alternate, and before each run whose mode differs from the last, both
agents are restarted with ``flow_mirror = true|false`` in their settings file (a flow
monitor per bridge, or ``dump-flows`` for every reconcile); ``--modes fast,observe`` the
same with ``fast_phase = true|false`` (every pass sends what it can plan from what it
knows before it observes, or observes first).  ``--results FILE`` records the figures
under "port" there (``port_to_ping_p50_s``/``_p95_s``: the first mode's (c) from t0); the
headline keys of that name are `make bench`'s suite ``port_to_ping``, against OVN.

    sudo .venv/bin/python bench/bench_port.py --runs 10
    sudo .venv/bin/python bench/bench_port.py --runs 20 --modes mirror,dump --json /tmp/p.json
    sudo .venv/bin/python bench/bench_port.py --runs 20 --modes fast,observe
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import re
import sys
import time
from datetime import UTC, datetime

from benchlab import BenchLab, LineWatcher, ReconcileLine, reconcile_lines
from benchlib import conditions, fmt, machine, summary, wait_for_quiet
from portprobe import (
    PROBE_HEAD_START,
    WAIT,
    Guest,
    first_reply,
    guest_ip,
    guest_mac,
    is_reply,
    ms,
    port_to_ping,
    start_probe,
)

from dvr.lab.topology import TENANT_MTU

# --modes name -> the agent setting it sets
MODES = {"mirror": ("flow_mirror", True), "dump": ("flow_mirror", False),
         "fast": ("fast_phase", True), "observe": ("fast_phase", False)}


def with_setting(settings: str, name: str, on: bool) -> str:
    """An agent's TOML settings with the boolean ``name`` set (replacing any earlier
    value)."""
    spelled = name.replace("_", "[_-]")
    kept = [line for line in settings.splitlines()
            if not re.match(rf"\s*{spelled}\s*=", line)]
    return "\n".join([*kept, f"{name} = {'true' if on else 'false'}"]) + "\n"


def reconcile_summary(lines: list[ReconcileLine], t0: float) -> list[str]:
    out = []
    for line in lines:
        keep = {k: v for k, v in line.fields.items() if k not in ("host",)}
        out.append(f"start=+{(line.started_at - t0) * 1000:.0f}ms "
                   f"end=+{(line.logged_at - t0) * 1000:.0f}ms "
                   + " ".join(f"{k}={v}" for k, v in keep.items()))
    return out


class PortBench:
    def __init__(self, bench: BenchLab, args: argparse.Namespace):
        self.bench = bench
        self.args = args
        self.client = bench.lab.client()
        record = bench.record
        self.router_id = record.router_id
        network = self.client.list("networks", name=args.network)[0]
        self.network_id = network["id"]
        self.mtu = min(network.get("mtu") or TENANT_MTU, TENANT_MTU)  # as the lab's VMs
        self.subnet = self.client.list("subnets", network_id=self.network_id, ip_version=4)[0]
        self.source_vm = record.vms[args.source]
        self.other_host = self.source_vm.host
        if self.other_host == args.host:
            raise SystemExit("--source must be a VM on another compute host than --host")
        self.rng = random.Random(args.seed)

    def free_ip(self, index: int) -> str:
        used = {ip["ip_address"] for p in self.client.list("ports", network_id=self.network_id)
                for ip in p["fixed_ips"]}
        for n in range(index, 50):
            candidate = guest_ip(self.subnet["cidr"], n)
            if candidate not in used:
                return candidate
        raise RuntimeError("no free address in .200-.249")

    def remove_guest(self, guest: Guest) -> None:
        host = self.bench.lab.host_env(self.bench.host(self.args.host))
        for argv in guest.remove_argvs(host.ovsdb):
            host.run(argv, check=False)

    def set_mode(self, mode: str) -> None:
        """Restart both agents with the setting of ``mode``; returns once each has
        reconciled after its restart."""
        since = time.time()
        for host in (self.args.host, self.other_host):
            path = self.bench.lab.paths.agent_config(host)
            path.write_text(with_setting(path.read_text(), *MODES[mode]))
            self.bench.lab.restart_agent(host)
        deadline = time.time() + 30
        for host in (self.args.host, self.other_host):
            while not any(line.fields.get("errors") == "0" for line in
                          reconcile_lines(self.bench.agent_log(host), since)):
                if time.time() > deadline:
                    raise RuntimeError(f"the agent on {host} did not reconcile after restart")
                time.sleep(0.2)
        time.sleep(1.0)  # the first reconciles' follow-ups (VIF events, heartbeats) are over

    def one_run(self, index: int) -> dict[str, object]:
        args = self.args
        guest = Guest(index, guest_mac(self.rng), self.free_ip(index),
                      ipaddress.ip_network(self.subnet["cidr"]).prefixlen,
                      self.subnet["gateway_ip"], self.mtu)
        ip, mac = guest.ip, guest.mac
        host = self.bench.lab.host_env(self.bench.host(args.host))
        host.run(guest.prepare_argv())
        qrouter = f"qrouter-{self.router_id}"
        flow_cmd = ["ovs-ofctl", "monitor", "br-int", "watch:table=1"]
        neigh_cmd, neigh_env = self.bench.host_command(
            self.other_host, ["ip", "netns", "exec", qrouter, "ip", "monitor", "neigh"])
        port_id = ""
        result: dict[str, object] = {"ip": ip, "mac": mac}
        with (LineWatcher(flow_cmd, self.bench.ovs_env(args.host)) as flows,
              LineWatcher(neigh_cmd, neigh_env) as neighbors):
            try:
                time.sleep(0.3)  # both monitors connected
                with start_probe(self.bench, args.source, ip) as ping:
                    time.sleep(PROBE_HEAD_START)
                    t0 = time.time()
                    port = self.client.create("ports", "port", {
                        "name": f"bp{index}", "network_id": self.network_id,
                        "device_owner": "compute:nova", "device_id": f"bp{index}",
                        "binding:host_id": args.host, "mac_address": mac,
                        "fixed_ips": [{"subnet_id": self.subnet["id"], "ip_address": ip}]})
                    t_created = time.time()
                    port_id = port["id"]
                    if args.plug_delay:  # Nova binds first and plugs later
                        time.sleep(args.plug_delay)
                    host.run(guest.plug_argv(host.ovsdb, port_id))
                    t_plugged = time.time()
                    flow = flows.wait_for(lambda s: "ADDED" in s and f"dl_dst={mac}" in s,
                                          t0, WAIT)
                    neighbor = neighbors.wait_for(
                        lambda s: s.startswith(ip + " ") and "PERMANENT" in s and not
                        s.startswith("Deleted"), t0, WAIT)
                    reply = ping.wait_for(is_reply, t0, WAIT + 2)
                time.sleep(args.settle)  # let the last reconciles of both hosts be logged
                result.update(self._times(t0, t_created, t_plugged, flow, neighbor, reply))
                result["reconciles_host"] = reconcile_summary(
                    reconcile_lines(self.bench.agent_log(args.host), t0), t0)
                result["reconciles_other"] = reconcile_summary(
                    reconcile_lines(self.bench.agent_log(self.other_host), t0), t0)
            finally:  # undo, and wait until the other host has dropped the neighbor again
                t_undo = time.time()
                self.remove_guest(guest)
                if port_id:
                    self.client.delete("ports", port_id)
            gone = neighbors.wait_for(lambda s: s.startswith("Deleted " + ip + " "), t_undo,
                                      WAIT)
            result["cleanup_neighbor_removed_ms"] = None if gone is None else ms(gone[0],
                                                                                   t_undo)
        return result

    @staticmethod
    def _times(t0, t_created, t_plugged, flow, neighbor, reply) -> dict[str, object]:
        flow_at = flow[0] if flow else None
        neighbor_at = neighbor[0] if neighbor else None
        return {
            "api_create_ms": ms(t_created, t0),
            "plug_ms": ms(t_plugged, t_created),
            "a_flow_from_t0_ms": ms(flow_at, t0),
            "a_flow_from_plug_ms": ms(flow_at, t_plugged),
            "b_neighbor_from_t0_ms": ms(neighbor_at, t0),
            **first_reply(t0, t_plugged, reply),
        }


NUMERIC = ("api_create_ms", "plug_ms", "a_flow_from_t0_ms", "a_flow_from_plug_ms",
           "b_neighbor_from_t0_ms", "c_first_reply_from_t0_ms", "c_first_reply_from_plug_ms",
           "cleanup_neighbor_removed_ms")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--name", default="benchport", help="lab name (its own lab)")
    p.add_argument("--api-port", type=int, default=19831)
    p.add_argument("--keep-lab", action="store_true", help="leave the lab up afterwards")
    p.add_argument("--host", default="compute-2", help="where the new port is bound")
    p.add_argument("--network", default="orange")
    p.add_argument("--source", default="blue-1", help="VM that pings (on the other host)")
    p.add_argument("--settle", type=float, default=1.5, help="seconds after the last event")
    p.add_argument("--pause", type=float, default=1.0, help="seconds between runs")
    p.add_argument("--plug-delay", type=float, default=0.0,
                   help="seconds between the port create and the plug (0: back to back)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--modes", default="",
                   help="comma list of mirror|dump|fast|observe: alternate the agents' "
                        "setting per run (default: leave the agents as they are)")
    p.add_argument("--results", help="record port_to_ping_p50_s/_p95_s in this JSON file "
                                     "(e.g. bench/results.json)")
    p.add_argument("--json", help="write the raw results here")
    p.add_argument("--label", default="", help="a note stored with the results")
    p.add_argument("--wait-idle", type=float, metavar="LOAD",
                   help="first wait (up to --wait-max s) for the 1-min load average < LOAD")
    p.add_argument("--wait-max", type=float, default=600.0)
    args = p.parse_args()
    if not 1 <= args.runs <= 40:
        p.error("--runs must be 1..40")
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in MODES for m in modes):
        p.error(f"--modes: each one of {', '.join(MODES)}")

    runs = []
    with BenchLab(args.name, args.api_port, keep=args.keep_lab) as bench:
        time.sleep(2.0)  # the agents' first reconciles after `up` are done
        print(f"waiting for a quieter machine: {wait_for_quiet(args.wait_idle, args.wait_max)}",
              flush=True)
        before = conditions(args.name)
        pb = PortBench(bench, args)
        current = None
        for i in range(args.runs):
            mode = modes[i % len(modes)] if modes else ""
            if mode and mode != current:
                pb.set_mode(mode)
                current = mode
            r = pb.one_run(i)
            r["mode"] = mode
            runs.append(r)
            print(f"run {i + 1}: " + " ".join(
                f"{k}={v:.0f}" if isinstance(v, float) else f"{k}={v}"
                for k, v in r.items() if not k.startswith("reconciles")), flush=True)
            for side in ("reconciles_host", "reconciles_other"):
                for line in r[side]:
                    print(f"    {side[11:]:5} {line}")
            time.sleep(args.pause)
        after = conditions(args.name)
        pb.client.close()

    by_mode = {m: [r for r in runs if r["mode"] == m] for m in (modes or [""])}
    stats = {m: {k: summary([r[k] for r in rs if isinstance(r.get(k), float)])
                 for k in NUMERIC} for m, rs in by_mode.items()}
    print(f"\nmachine: {json.dumps(machine())}\nbefore: {json.dumps(before)}\n"
          f"after:  {json.dumps(after)}\n")
    print("| measurement, median (min–max, n) | " + " | ".join(m or "runs" for m in by_mode)
          + " |\n|---|" + "---|" * len(by_mode))
    for k in NUMERIC:
        print(f"| {k} | " + " | ".join(fmt(stats[m][k], " ms", 0) for m in by_mode) + " |")
    ping = {m: port_to_ping(rs) for m, rs in by_mode.items()}
    for m, figures in ping.items():
        print(f"port -> first ping {m or ''}: {json.dumps(figures)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"label": args.label, "machine": machine(), "before": before,
                       "after": after, "args": vars(args), "runs": runs, "stats": stats,
                       "port_to_ping": ping}, f, indent=1)
    if args.results:
        record_results(args, next(iter(ping.values())), ping, before, after)
    return 0


def record_results(args: argparse.Namespace, headline: dict, ping: dict, before: dict,
                   after: dict) -> None:
    """The figures under "port" in ``args.results`` (the headline ``port_to_ping_*`` keys
    are `make bench`'s suite ``port_to_ping``, measured against OVN in the same run)."""
    try:
        with open(args.results) as f:
            results = json.load(f)
    except FileNotFoundError:
        results = {}
    results["port"] = {
        **{k: headline[k] for k in ("port_to_ping_p50_s", "port_to_ping_p95_s")},
        "command": "bench/" + " ".join(sys.argv).split("bench/", 1)[-1],
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "before": before, "after": after, "by_mode": ping}
    with open(args.results, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
