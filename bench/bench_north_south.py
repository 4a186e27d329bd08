"""North/south and legacy-router performance of the lab, side by side in ONE run (issue 9).

Throughput paths (iperf3 TCP, the data flows from the first named end to the second):
  fip_in     outside  -> orange-1's floating IP  (DNAT on compute-2; the issue's FIP case)
  fip_out    orange-1 -> outside                 (leaves compute-2 from its FIP)
  snat_out   blue-1   -> outside                 (no FIP: SNAT in network-1's snat- ns)
  ew_legacy  lg-1 (compute-1) -> lg-2 (compute-2), two new subnets on a legacy router
  ew_dvr     dv-1 (compute-1) -> dv-2 (compute-2), two new subnets on a distributed router
Each round runs every path once, in turn (interleaved), each a short ping train then
``iperf3 -t SECONDS``; packets seen by network-1's namespaces of the path's router are
counted around each case, to show which paths cross network-1.

Association latency: ``blue-2`` gets a floating IP, which is then disassociated; per run the
FIP's neighbour entry in ``outside`` is flushed, a prober starts a ``ping -D -c1 -W0.3``
every 15 ms from ``outside`` without waiting for the last, and the floating IP is associated
through the API.  The latency is the reply's kernel timestamp minus the moment before the
API call.  The FIP is then disassociated and the run waits for it to stop answering (that
time is recorded too).

    sudo .venv/bin/python bench/bench_north_south.py --name bns --api-port 9798
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchlab import BenchLab, LineWatcher, iperf3, run_in
from benchlib import conditions, fmt, machine, summary, wait_for_quiet

NETWORK_NODE = "network-1"
PROBE_EVERY_S = 0.015
PROBE_TIMEOUT_S = 0.3
REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from")
RESULTS_JSON = Path(__file__).resolve().parent / "results.json"


@dataclass(frozen=True)
class EastWest:
    """Two new subnets on one router of the given kind, a VM in each."""

    kind: str  # "legacy" | "dvr"
    router: str
    networks: tuple[tuple[str, str], tuple[str, str]]  # (name, cidr) x 2
    vms: tuple[tuple[str, str], tuple[str, str]]  # (name, host) x 2


EAST_WEST = (
    EastWest("legacy", "ew-legacy", (("lg-a", "198.19.10.0/24"), ("lg-b", "198.19.11.0/24")),
             (("lg-1", "compute-1"), ("lg-2", "compute-2"))),
    EastWest("dvr", "ew-dvr", (("dv-a", "198.19.12.0/24"), ("dv-b", "198.19.13.0/24")),
             (("dv-1", "compute-1"), ("dv-2", "compute-2"))),
)


@dataclass(frozen=True)
class Flow:
    key: str
    label: str
    client: str  # iperf3 client and ping source: the data's sender
    server: str  # where the iperf3 server runs
    router: str  # the router whose network-1 namespaces are counted


class Topology:
    """What the benchmark adds to the lab: the two routers, four subnets, four VMs, the FIP
    of orange-1; and the addresses of every path's destination."""

    def __init__(self, bench: BenchLab):
        self.bench = bench
        self.client = bench.lab.client()
        self.router_ids: dict[str, str] = {"demo": bench.record.router_id}
        self.fip = ""

    def build(self) -> None:
        for ew in EAST_WEST:
            router = self.client.create("routers", "router", {
                "name": ew.router, "distributed": ew.kind == "dvr"})
            self.router_ids[ew.kind] = router["id"]
            for name, cidr in ew.networks:
                net = self.client.create("networks", "network", {"name": name})
                subnet = self.client.create("subnets", "subnet", {
                    "name": f"{name}-subnet", "network_id": net["id"], "cidr": cidr,
                    "ip_version": 4})
                self.client.add_router_interface(router["id"], subnet["id"])
            for (vm, host), (network, _cidr) in zip(ew.vms, ew.networks, strict=True):
                self.bench.lab.vm_add(vm, network, host)
        self.fip = self.bench.lab.fip_add("orange-1")

    def ip(self, target: str) -> str:
        return self.bench.lab.resolve_ip(target)

    def paths(self) -> tuple[Flow, ...]:
        return (
            Flow("fip_in", "outside → orange-1's FIP (compute-2)", "outside", "orange-1",
                  "demo"),
            Flow("fip_out", "orange-1 (FIP) → outside", "orange-1", "outside", "demo"),
            Flow("snat_out", "blue-1 (SNAT via network-1) → outside", "blue-1", "outside",
                  "demo"),
            Flow("ew_legacy", "lg-1 → lg-2, legacy router", "lg-1", "lg-2", "legacy"),
            Flow("ew_dvr", "dv-1 → dv-2, distributed router", "dv-1", "dv-2", "dvr"),
        )

    def destination(self, path: Flow) -> str:
        return self.fip if path.key == "fip_in" else self.ip(path.server)

    def close(self) -> None:
        self.client.close()


def network_node_packets(bench: BenchLab, router_id: str) -> int:
    """Packets received by every non-loopback device of the router's namespaces
    (``qrouter-``, ``snat-``) on network-1."""
    listed = bench.host_run(NETWORK_NODE, ["ip", "netns", "list"]).stdout
    present = {line.split()[0] for line in listed.splitlines() if line.strip()}
    total = 0
    for ns in (f"qrouter-{router_id}", f"snat-{router_id}"):
        if ns not in present:
            continue
        out = bench.host_run(NETWORK_NODE, ["ip", "-n", ns, "-j", "-s", "link", "show"]).stdout
        total += sum(link.get("stats64", {}).get("rx", {}).get("packets", 0)
                     for link in json.loads(out) if link["ifname"] != "lo")
    return total


def wait_reachable(bench: BenchLab, source: str, ip: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run_in(bench, source, ["ping", "-c", "1", "-W", "1", ip], check=False).returncode == 0:
            return
    raise RuntimeError(f"{source} cannot reach {ip} after {timeout:.0f}s")


def ping_train(bench: BenchLab, source: str, ip: str, count: int) -> list[float]:
    run_in(bench, source, ["ping", "-c", "5", "-i", "0.05", "-W", "1", ip], check=False)
    out = run_in(bench, source, ["ping", "-n", "-c", str(count), "-i", "0.01", "-W", "1", ip],
                 check=False).stdout
    return [float(t) for t in re.findall(r"time=([0-9.]+) ms", out)]


def one_path(bench: BenchLab, topo: Topology, path: Flow, index: int, seconds: int,
             pings: int) -> dict[str, object]:
    ip = topo.destination(path)
    router_id = topo.router_ids[path.router]
    before = network_node_packets(bench, router_id)
    rtts = ping_train(bench, path.client, ip, pings)
    throughput = iperf3(bench, path.client, path.server, ip, 5301 + index, seconds)
    after = network_node_packets(bench, router_id)
    return {"rtts_ms": rtts, **throughput, "via_network_1_packets": after - before}


# --- association latency ------------------------------------------------------------------

def answers(bench: BenchLab, ip: str) -> bool:
    return run_in(bench, "outside", ["ping", "-n", "-c", "1", "-W", str(PROBE_TIMEOUT_S), ip],
                  check=False).returncode == 0


def wait_silent(bench: BenchLab, ip: str, timeout: float = 10.0) -> float:
    """Seconds until two probes in a row to ``ip`` go unanswered."""
    started = time.time()
    misses = 0
    while time.time() - started < timeout:
        misses = 0 if answers(bench, ip) else misses + 1
        if misses == 2:
            return time.time() - started
    raise RuntimeError(f"{ip} still answers {timeout:.0f}s after disassociation")


def prober(bench: BenchLab, ip: str) -> LineWatcher:
    """From ``outside``: a ``ping -D -c1`` every PROBE_EVERY_S, not waiting for the last."""
    loop = (f"while :; do ping -D -n -c 1 -W {PROBE_TIMEOUT_S} {ip} & "
            f"sleep {PROBE_EVERY_S}; done")
    command, env = bench.vm_command("outside", ["sh", "-c", loop])
    return LineWatcher(command, env)


def association_runs(bench: BenchLab, runs: int, vm: str) -> list[dict[str, float]]:
    port_id = bench.record.vms[vm].port_id
    ip = bench.lab.fip_add(vm)
    results = []
    with bench.lab.client() as client:
        fip_id = client.list("floatingips", port_id=port_id)[0]["id"]
        wait_reachable(bench, "outside", ip)  # warm: the fip- namespace exists on the host
        client.update("floatingips", "floatingip", fip_id, {"port_id": None})
        wait_silent(bench, ip)
        for run in range(runs):
            run_in(bench, "outside", ["ip", "neigh", "flush", "to", ip], check=False)
            with prober(bench, ip) as probe:
                time.sleep(0.1)
                started = time.time()
                client.update("floatingips", "floatingip", fip_id, {"port_id": port_id})
                api_s = time.time() - started
                first = probe.wait_for(REPLY.match, after=started, timeout=10.0)
            if first is None:
                raise RuntimeError(f"run {run + 1}: {ip} did not answer within 10 s")
            reply_at = float(REPLY.match(first[1]).group(1))
            client.update("floatingips", "floatingip", fip_id, {"port_id": None})
            silent_s = wait_silent(bench, ip)
            r = {"first_answer_s": reply_at - started, "api_call_s": api_s,
                 "stops_answering_s": silent_s}
            results.append(r)
            print(f"association {run + 1}: first answer {r['first_answer_s']:.3f} s "
                  f"(API call {api_s:.3f} s); silent {silent_s:.2f} s after disassociation",
                  flush=True)
        client.delete("floatingips", fip_id)
    return results


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method, as the median is)."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


# --- main -----------------------------------------------------------------------------------

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="rounds over every throughput path")
    p.add_argument("--seconds", type=int, default=5, help="iperf3 -t")
    p.add_argument("--pings", type=int, default=50, help="probes per ping train")
    p.add_argument("--associations", type=int, default=20, help="FIP association runs")
    p.add_argument("--name", default="bns", help="lab name (its own lab)")
    p.add_argument("--api-port", type=int, default=9798)
    p.add_argument("--keep-lab", action="store_true")
    p.add_argument("--wait-idle", type=float, metavar="LOAD",
                   help="first wait (up to --wait-max s) for the 1-min load average < LOAD")
    p.add_argument("--wait-max", type=float, default=300.0)
    p.add_argument("--json", help="write the raw results here")
    p.add_argument("--update-results", action="store_true",
                   help=f"store the summary under 'north_south' in {RESULTS_JSON.name}")
    args = p.parse_args()
    if not (1 <= args.rounds <= 10 and 1 <= args.seconds <= 60 and 10 <= args.pings <= 1000
            and 1 <= args.associations <= 100):
        p.error("--rounds 1..10, --seconds 1..60, --pings 10..1000, --associations 1..100")

    with BenchLab(args.name, args.api_port, keep=args.keep_lab) as bench:
        topo = Topology(bench)
        try:
            topo.build()
            paths = topo.paths()
            for path in paths:
                wait_reachable(bench, path.client, topo.destination(path))
            print(f"waiting for a quieter machine: {wait_for_quiet(args.wait_idle, args.wait_max)}",
                  flush=True)
            before = conditions(args.name)
            results: dict[str, list[dict]] = {path.key: [] for path in paths}
            for rnd in range(args.rounds):
                for index, path in enumerate(paths):
                    r = one_path(bench, topo, path, index, args.seconds, args.pings)
                    results[path.key].append(r)
                    print(f"round {rnd + 1} {path.key:>9}: {r['sent_gbps']:.3f} Gbit/s "
                          f"retr={r['retransmits']:.0f} rtt_median="
                          f"{statistics.median(r['rtts_ms'] or [float('nan')]):.3f} ms "
                          f"via_network_1={r['via_network_1_packets']}", flush=True)
            middle = conditions(args.name)
            assoc = association_runs(bench, args.associations, "blue-2")
            after = conditions(args.name)
        finally:
            topo.close()

    stats = {path.key: {
        "label": path.label,
        "gbps": summary([r["sent_gbps"] for r in results[path.key]]),
        "retransmits": summary([r["retransmits"] for r in results[path.key]]),
        "rtt_ms": summary([t for r in results[path.key] for t in r["rtts_ms"]]),
        "via_network_1_packets": summary([float(r["via_network_1_packets"])
                                          for r in results[path.key]]),
    } for path in paths}

    def ratio(a: str, b: str) -> float:
        return stats[a]["gbps"]["median"] / stats[b]["gbps"]["median"]

    first = [r["first_answer_s"] for r in assoc]
    latency = {
        "first_answer_s": summary(first) | {"p50": percentile(first, 50),
                                            "p95": percentile(first, 95)},
        "api_call_s": summary([r["api_call_s"] for r in assoc]),
        "stops_answering_s": summary([r["stops_answering_s"] for r in assoc]),
    }
    ratios = {"fip_in_vs_snat_out": ratio("fip_in", "snat_out"),
              "fip_out_vs_snat_out": ratio("fip_out", "snat_out"),
              "dvr_vs_legacy_east_west": ratio("ew_dvr", "ew_legacy")}

    print(f"\nmachine: {json.dumps(machine())}\nbefore: {json.dumps(before)}\n"
          f"after throughput: {json.dumps(middle)}\nafter associations: {json.dumps(after)}\n")
    print("| path | TCP Gbit/s median (min–max, n) | retransmits / run | RTT ms median "
          "| packets via network-1 / run (median) |")
    print("|---|---|---|---|---|")
    for path in paths:
        s = stats[path.key]
        print(f"| {path.key}: {path.label} | {fmt(s['gbps'], '', 3)} "
              f"| {fmt(s['retransmits'], '', 0)} | {s['rtt_ms'].get('median', float('nan')):.3f} "
              f"| {s['via_network_1_packets']['median']:.0f} |")
    print("\nratios (TCP medians): " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    f = latency["first_answer_s"]
    print(f"FIP association → first answer from outside: p50 {f['p50']:.3f} s, "
          f"p95 {f['p95']:.3f} s, max {f['max']:.3f} s (n={f['n']}; target p95 < 0.5 s); "
          f"API call median {latency['api_call_s']['median']:.3f} s; stops answering "
          f"after disassociation: median {latency['stops_answering_s']['median']:.2f} s, "
          f"max {latency['stops_answering_s']['max']:.2f} s")

    summary_doc = {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                        time.gmtime()),
                   "machine": machine(), "before": before, "after_throughput": middle,
                   "after": after, "throughput": stats, "ratios": ratios,
                   "fip_association": latency}
    if args.json:
        with open(args.json, "w") as out:
            json.dump(summary_doc | {"raw": {"throughput": results, "associations": assoc}},
                      out, indent=1)
    if args.update_results:
        doc = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
        doc["north_south"] = summary_doc
        RESULTS_JSON.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
