"""Throughput and latency of the lab's dataplane, every path side by side in ONE run.

Paths (default topology plus ``blue-3`` on compute-2):
  i    same subnet, same host       blue-2 -> blue-3     (compute-2 only)
  ii   same subnet, cross host      blue-1 -> blue-2     (the reference: ratios are vs ii)
  iii  DVR routed, cross host       blue-1 -> orange-1   (routed on compute-1, one tunnel)
  iv   DVR routed, same host        orange-1 -> blue-2   (routed on compute-2, no tunnel)
  v    centralized, cross host      blue-1 -> orange-1 via a plain router namespace on
       network-1 (two ports bound there through the API, ip_forward on, /32 routes in the two
       VMs for the duration of the case): two tunnel hops, like a legacy Neutron router.
       No product code is involved; --no-centralized skips it.

Each repetition runs every path once, in turn: a ping train (``--pings`` probes, 10 ms
apart, after a warm-up) then ``iperf3 -t SECONDS`` TCP with its retransmits; ``--runs``
repetitions.  The legacy router's forwarded-packet counter is read around each case to
prove that v goes through network-1 and iii does not.  The lab is its own (``--name``) and
is taken down at the end, with everything the benchmark added.

    sudo .venv/bin/python bench/bench_dataplane.py --runs 3 --seconds 5
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from benchlab import BenchLab, iperf3, run_in
from benchlib import conditions, fmt, machine, summary, wait_for_quiet

LEGACY_HOST = "network-1"
LEGACY_NS = "vm-legacyrtr"


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    source: str
    destination: str
    centralized: bool = False


CASES = (
    Case("i", "same subnet, same host", "blue-2", "blue-3"),
    Case("ii", "same subnet, cross host", "blue-1", "blue-2"),
    Case("iii", "DVR routed, cross host", "blue-1", "orange-1"),
    Case("iv", "DVR routed, same host", "orange-1", "blue-2"),
    Case("v", "centralized (router ns on network-1), cross host", "blue-1", "orange-1",
         centralized=True),
)


class LegacyRouter:
    """A plain router namespace on network-1 with one port on blue and one on orange."""

    def __init__(self, bench: BenchLab):
        self.bench = bench
        self.client = bench.lab.client()
        self.ports: dict[str, dict] = {}  # network -> port
        self.taps: list[str] = []
        self.env = bench.lab.host_env(bench.host(LEGACY_HOST))

    def _free_ip(self, network_id: str, cidr: str) -> str:
        used = {ip["ip_address"] for p in self.client.list("ports", network_id=network_id)
                for ip in p["fixed_ips"]}
        net = ipaddress.ip_network(cidr)
        return next(str(net.network_address + o) for o in range(250, 200, -1)
                    if str(net.network_address + o) not in used)

    def build(self) -> None:
        self.env.run(["ip", "netns", "add", LEGACY_NS])
        self.env.run(["ip", "-n", LEGACY_NS, "link", "set", "lo", "up"])
        self.env.run(["ip", "netns", "exec", LEGACY_NS, "sysctl", "-qw",
                      "net.ipv4.ip_forward=1"])
        for index, network in enumerate(("blue", "orange")):
            net = self.client.list("networks", name=network)[0]
            subnet = self.client.list("subnets", network_id=net["id"], ip_version=4)[0]
            ip = self._free_ip(net["id"], subnet["cidr"])
            port = self.client.create("ports", "port", {
                "name": f"legacy-{network}", "network_id": net["id"],
                "device_owner": "compute:nova", "device_id": "legacy-router",
                "binding:host_id": LEGACY_HOST,
                "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": ip}]})
            self.ports[network] = port
            tap, peer, nic = f"lgtap{index}", f"lgv{index}", f"eth-{network}"
            prefix = ipaddress.ip_network(subnet["cidr"]).prefixlen
            script = "; ".join([
                "set -e",
                f"ip link add {tap} mtu 1450 type veth peer name {peer} mtu 1450",
                f"ip link set {peer} netns {LEGACY_NS}",
                f"ip -n {LEGACY_NS} link set {peer} name {nic}",
                f"ip -n {LEGACY_NS} link set {nic} address {port['mac_address']} up",
                f"ip -n {LEGACY_NS} addr add {ip}/{prefix} dev {nic}",
                f"ip netns exec {LEGACY_NS} ethtool -K {nic} tx off >/dev/null",
                f"ip link set {tap} up",
            ])
            self.env.run(["sh", "-c", script])
            self.taps.append(tap)
            self.env.run(["ovs-vsctl", f"--db={self.env.ovsdb}", "add-port", "br-int", tap,
                          "--", "set", "interface", tap,
                          f"external_ids:iface-id={port['id']}",
                          f"external_ids:attached-mac={port['mac_address']}",
                          "external_ids:iface-status=active",
                          "external_ids:vm-id=legacy-router"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            statuses = {self.client.show("ports", "port", p["id"])["status"]
                        for p in self.ports.values()}
            if statuses == {"ACTIVE"}:
                return
            time.sleep(0.2)
        raise RuntimeError("the legacy router's ports did not become ACTIVE")

    def ip(self, network: str) -> str:
        return self.ports[network]["fixed_ips"][0]["ip_address"]

    def forwarded(self) -> int:
        """Packets received on the router's two NICs so far."""
        out = self.env.run(["ip", "-n", LEGACY_NS, "-j", "-s", "link", "show"]).stdout
        return sum(link.get("stats64", {}).get("rx", {}).get("packets", 0)
                   for link in json.loads(out) if link["ifname"].startswith("eth-"))

    def teardown(self) -> None:
        for tap in self.taps:
            self.env.run(["ovs-vsctl", f"--db={self.env.ovsdb}", "--if-exists", "del-port",
                          "br-int", tap], check=False)
            self.env.run(["ip", "link", "del", tap], check=False)
        self.env.run(["ip", "netns", "del", LEGACY_NS], check=False)
        for port in self.ports.values():
            try:
                self.client.delete("ports", port["id"])
            except Exception as exc:  # noqa: BLE001 - the lab goes down anyway
                print(f"  (could not delete port {port['id']}: {exc})")
        self.client.close()


class Runner:
    def __init__(self, bench: BenchLab, args: argparse.Namespace,
                 legacy: LegacyRouter | None):
        self.bench = bench
        self.args = args
        self.legacy = legacy
        self.vms = bench.record.vms

    def vm(self, vm: str, argv: list[str], timeout: float = 60.0,
           check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_in(self.bench, vm, argv, timeout=timeout, check=check)

    def routes(self, case: Case, add: bool) -> None:
        """The /32 routes that send v's traffic through the legacy router (or remove them)."""
        assert self.legacy is not None
        src, dst = self.vms[case.source], self.vms[case.destination]
        verb = "replace" if add else "del"
        self.vm(case.source, ["ip", "route", verb, f"{dst.ip_address}/32", "via",
                              self.legacy.ip(src.network)], check=add)
        self.vm(case.destination, ["ip", "route", verb, f"{src.ip_address}/32", "via",
                                   self.legacy.ip(dst.network)], check=add)

    def ping(self, case: Case) -> list[float]:
        ip = self.vms[case.destination].ip_address
        self.vm(case.source, ["ping", "-c", "5", "-i", "0.05", "-W", "1", ip], check=False)
        out = self.vm(case.source, ["ping", "-n", "-c", str(self.args.pings), "-i", "0.01",
                                    "-W", "1", ip], check=False).stdout
        return [float(t) for t in re.findall(r"time=([0-9.]+) ms", out)]

    def iperf(self, case: Case, port: int) -> dict[str, float]:
        return iperf3(self.bench, case.source, case.destination,
                      self.vms[case.destination].ip_address, port, self.args.seconds)

    def one_case(self, case: Case, index: int) -> dict[str, object]:
        if case.centralized:
            self.routes(case, add=True)
        before = self.legacy.forwarded() if self.legacy else 0
        try:
            rtts = self.ping(case)
            throughput = self.iperf(case, 5201 + index)
        finally:
            after = self.legacy.forwarded() if self.legacy else 0
            if case.centralized:
                self.routes(case, add=False)
        return {"rtts_ms": rtts, **throughput, "via_network_1_packets": after - before}


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) >= 2 else values[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="repetitions of every path")
    p.add_argument("--seconds", type=int, default=5, help="iperf3 -t")
    p.add_argument("--pings", type=int, default=100, help="probes per ping train")
    p.add_argument("--name", default="benchdp", help="lab name (its own lab)")
    p.add_argument("--api-port", type=int, default=19851)
    p.add_argument("--keep-lab", action="store_true")
    p.add_argument("--no-centralized", action="store_true", help="skip path v")
    p.add_argument("--wait-idle", type=float, metavar="LOAD",
                   help="first wait (up to --wait-max s) for the 1-min load average < LOAD")
    p.add_argument("--wait-max", type=float, default=600.0)
    p.add_argument("--json", help="write the raw results here")
    args = p.parse_args()
    if not (1 <= args.runs <= 10 and 1 <= args.seconds <= 60 and 10 <= args.pings <= 1000):
        p.error("--runs 1..10, --seconds 1..60, --pings 10..1000")
    cases = [c for c in CASES if not (c.centralized and args.no_centralized)]

    results: dict[str, list[dict]] = {c.key: [] for c in cases}
    with BenchLab(args.name, args.api_port, keep=args.keep_lab) as bench:
        if "blue-3" not in bench.record.vms:
            bench.lab.vm_add("blue-3", "blue", "compute-2")
        legacy = None if args.no_centralized else LegacyRouter(bench)
        try:
            if legacy:
                legacy.build()
            runner = Runner(bench, args, legacy)
            time.sleep(1.0)
            print(f"waiting for a quieter machine: {wait_for_quiet(args.wait_idle, args.wait_max)}",
                  flush=True)
            before = conditions(args.name)
            for run in range(args.runs):
                for index, case in enumerate(cases):
                    r = runner.one_case(case, index)
                    results[case.key].append(r)
                    print(f"run {run + 1} {case.key:>3}: {r['sent_gbps']:.3f} Gbit/s "
                          f"retr={r['retransmits']:.0f} "
                          f"rtt_median={statistics.median(r['rtts_ms']):.3f} ms "
                          f"(n={len(r['rtts_ms'])}) via_network_1={r['via_network_1_packets']}",
                          flush=True)
            after = conditions(args.name)
        finally:
            if legacy:
                legacy.teardown()

    ref = "ii"
    stats: dict[str, dict] = {}
    for case in cases:
        runs = results[case.key]
        rtts = [t for r in runs for t in r["rtts_ms"]]
        stats[case.key] = {
            "gbps": summary([r["sent_gbps"] for r in runs]),
            "received_gbps": summary([r["received_gbps"] for r in runs]),
            "retransmits": summary([r["retransmits"] for r in runs]),
            "rtt_ms": summary(rtts) | {"p90": p90(rtts) if rtts else None,
                                       "lost": sum(args.pings - len(r["rtts_ms"])
                                                   for r in runs)},
            "via_network_1_packets": summary([float(r["via_network_1_packets"])
                                              for r in runs]),
        }
    print(f"\nmachine: {json.dumps(machine())}\nbefore: {json.dumps(before)}\n"
          f"after:  {json.dumps(after)}\n")
    print("| path | TCP Gbit/s median (min–max) | vs ii | retransmits / run median (min–max) "
          "| RTT ms median (p90) | vs ii | packets via network-1 / run |")
    print("|---|---|---|---|---|---|---|")
    for case in cases:
        s, r = stats[case.key], stats[ref]
        gbps_ratio = s["gbps"]["median"] / r["gbps"]["median"]
        rtt_ratio = s["rtt_ms"]["median"] / r["rtt_ms"]["median"]
        print(f"| {case.key} {case.label}: {case.source} → {case.destination} "
              f"| {fmt(s['gbps'], '', 3)} | {gbps_ratio:.2f} "
              f"| {fmt(s['retransmits'], '', 0)} "
              f"| {s['rtt_ms']['median']:.3f} ({s['rtt_ms']['p90']:.3f}), "
              f"lost {s['rtt_ms']['lost']} | {rtt_ratio:.2f} "
              f"| {s['via_network_1_packets']['median']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "before": before, "after": after,
                       "args": vars(args), "results": results, "stats": stats}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
