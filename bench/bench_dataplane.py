"""East/west throughput and latency: dvr against OVN 23.03, every path, in ONE run.

Two labs on this machine, up at the same time and measured alternately (each repetition
runs every path of one system, then of the other, the order swapped every repetition):

- dvr: its own lab (``--name``; the default topology plus ``blue-3`` on compute-2, and a
  legacy router ``--distributed false`` on network-1 between two subnets of their own with
  ``cl-1`` on compute-1 and ``cl-2`` on compute-2, made through the API);
- OVN: ``ovnlab.OvnLab``, same fabric, hosts, userspace OVS, VM and uplink plumbing, one logical
  router between two switches, the same VM placement (``cl-1`` and ``cl-2`` idle on a switch
  of their own, so each host polls as many VM NICs as dvr's), and (unless
  ``--no-ovn-firewall``) stateful ACLs like dvr's security groups, which dvr's lab VMs are in.

Paths (source -> destination):
  same_host_same_subnet    blue-2 -> blue-3     (compute-2 only)
  cross_host_same_subnet   blue-1 -> blue-2     (the reference)
  cross_host_routed        blue-1 -> orange-1   (routed on compute-1)
  same_host_routed         orange-1 -> blue-2   (routed on compute-2)
  centralized              cl-1 -> cl-2         (dvr only: through network-1's legacy router)

Per path and repetition: a ping train (``--pings`` probes 10 ms apart, after a warm-up:
RTT p50/p99), then ``iperf3 -t SECONDS`` TCP (Gbit/s, retransmits) with a ping train
(20 ms apart) running on the same path meanwhile: the pings lost under load.  The last
repetition also reads the source host's ``dpif-netdev/pmd-stats-show`` around the
cross-host routed stream: datapath passes and processing cycles per packet.

``main(argv)`` returns the results (``bench/run_all.py`` merges them into results.json);
run alone it prints the table:

    sudo .venv/bin/python bench/bench_dataplane.py --runs 3 --seconds 5
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from benchlab import BenchLab, VmRunner, iperf3
from benchlib import conditions, summary, wait_for_quiet
from ovnlab import OvnLab

from dvr.lab.hostenv import HostEnv
from dvr.lab.vm import DEFAULT_PLUMBING, VmPlumbing
from dvr.model.hostview import DEFAULT_TUNNEL_LAYOUT, TUNNEL_LAYOUTS

LEGACY_ROUTER = "ew-central"
CENTRAL_NETWORKS = (("cl-a", "198.19.20.0/24", "cl-1", "compute-1"),
                    ("cl-b", "198.19.21.0/24", "cl-2", "compute-2"))


@dataclass(frozen=True)
class BenchPath:
    key: str
    label: str
    source: str
    destination: str
    source_host: str


PATHS = (
    BenchPath("same_host_same_subnet", "same host, same subnet", "blue-2", "blue-3", "compute-2"),
    BenchPath("cross_host_same_subnet", "cross host, same subnet", "blue-1", "blue-2",
          "compute-1"),
    BenchPath("cross_host_routed", "cross host, routed", "blue-1", "orange-1", "compute-1"),
    BenchPath("same_host_routed", "same host, routed", "orange-1", "blue-2", "compute-2"),
)
CENTRALIZED = BenchPath("centralized", "cross host, centralized router on network-1", "cl-1",
                    "cl-2", "compute-1")
PROFILED = "cross_host_routed"
# the two paths the experiments on the gap to OVN measure (bench_bridges, _layouts, ...)
CROSS_HOST_PATHS = tuple(p for p in PATHS if p.key.startswith("cross_host_"))


class System(VmRunner, Protocol):
    """What the measurements need of a lab: run a command in a VM, a VM's address, a host."""

    def vm_ip(self, vm: str) -> str: ...

    def host_env(self, host: str) -> HostEnv: ...


class DvrSystem:
    def __init__(self, bench: BenchLab):
        self.bench = bench

    def vm_command(self, vm: str, argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        return self.bench.vm_command(vm, argv)

    def vm_ip(self, vm: str) -> str:
        return self.bench.record.vms[vm].ip_address

    def host_env(self, host: str) -> HostEnv:
        return self.bench.lab.host_env(self.bench.host(host))

    def add_legacy_router(self) -> None:
        """Two subnets of their own on a legacy (centralized) router, a VM on each."""
        with self.bench.lab.client() as client:
            router = client.create("routers", "router", {"name": LEGACY_ROUTER,
                                                         "distributed": False})
            for network, cidr, _vm, _host in CENTRAL_NETWORKS:
                net = client.create("networks", "network", {"name": network})
                subnet = client.create("subnets", "subnet", {
                    "name": f"{network}-subnet", "network_id": net["id"], "cidr": cidr,
                    "ip_version": 4})
                client.add_router_interface(router["id"], subnet["id"])
        for network, _cidr, vm, host in CENTRAL_NETWORKS:
            self.bench.lab.vm_add(vm, network, host)


def dvr_bench_lab(stack: ExitStack, name: str, api_port: int,
                  plumbing: VmPlumbing = DEFAULT_PLUMBING,
                  tunnel_layout: str = DEFAULT_TUNNEL_LAYOUT) -> DvrSystem:
    """dvr's lab as this benchmark measures it (the default topology, ``blue-3`` on
    compute-2 and the legacy router with its two VMs), taken down with ``stack``."""
    bench = stack.enter_context(BenchLab(name, api_port, plumbing=plumbing,
                                         tunnel_layout=tunnel_layout))
    dvr = DvrSystem(bench)
    bench.lab.vm_add("blue-3", "blue", "compute-2")
    dvr.add_legacy_router()
    return dvr


def ovn_bench_lab(stack: ExitStack, name: str, workdir: Path,
                  plumbing: VmPlumbing = DEFAULT_PLUMBING, firewall: bool = True,
                  out: Callable[[str], None] = print) -> OvnLab:
    """The OVN reference lab beside it (``cl-1`` and ``cl-2``, dvr's centralized path,
    idle in OVN: as many VM NICs per host), up, taken down with ``stack``."""
    ovn = OvnLab(name, workdir, plumbing, firewall=firewall, out=out,
                 idle_vms=[(vm, host) for _net, _cidr, vm, host in CENTRAL_NETWORKS])
    stack.callback(ovn.down)
    ovn.up()
    return ovn


def _run(system: System, vm: str, argv: list[str],
         timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    command, env = system.vm_command(vm, argv)
    return subprocess.run(command, env=env, text=True, capture_output=True, timeout=timeout)


_SENT = re.compile(r"(\d+) packets transmitted, (\d+) received")


def ping_rtts(system: System, path: BenchPath, count: int) -> list[float]:
    ip = system.vm_ip(path.destination)
    _run(system, path.source, ["ping", "-c", "5", "-i", "0.05", "-W", "1", ip])  # warm-up
    out = _run(system, path.source, ["ping", "-n", "-c", str(count), "-i", "0.01", "-W", "1",
                                     ip]).stdout
    return [float(t) for t in re.findall(r"time=([0-9.]+) ms", out)]


def pmd_stats(system: System, host: str, clear: bool) -> dict[str, float]:
    """The host's userspace datapath counters (its main thread: the lab has no PMD port):
    cleared, or read as {name: value}."""
    env = system.host_env(host)
    if clear:
        env.run(["ovs-appctl", "dpif-netdev/pmd-stats-clear"], check=False)
        return {}
    out = env.run(["ovs-appctl", "dpif-netdev/pmd-stats-show"], check=False).stdout
    stats = {}
    for line in out.splitlines():
        name, _, value = line.strip().partition(":")
        number = re.match(r"\s*([0-9.]+)", value)
        if number and name:
            stats[name.strip()] = float(number.group(1))
    return stats


def measure(system: System, path: BenchPath, args: argparse.Namespace, port: int,
            profile: bool) -> dict[str, object]:
    rtts = ping_rtts(system, path, args.pings)
    # pings under load: every 20 ms for the stream's duration but its first and last second
    loaded_count = max(10, (args.seconds - 2) * 50)
    command, env = system.vm_command(path.source, [
        "sh", "-c", f"sleep 1; exec ping -n -q -c {loaded_count} -i 0.02 -W 1 "
                    f"{system.vm_ip(path.destination)}"])
    if profile:
        pmd_stats(system, path.source_host, clear=True)
    pinger = subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        tcp = iperf3(system, path.source, path.destination, system.vm_ip(path.destination),
                     port, args.seconds)
        out, _ = pinger.communicate(timeout=args.seconds + 10)
    finally:
        if pinger.poll() is None:
            pinger.kill()
            pinger.wait(timeout=5)
    sent = _SENT.search(out)
    lost = int(sent.group(1)) - int(sent.group(2)) if sent else loaded_count
    result: dict[str, object] = {"rtts_ms": rtts, **tcp, "loaded_pings": loaded_count,
                                 "loaded_pings_lost": lost}
    if profile:
        result["pmd_stats"] = pmd_stats(system, path.source_host, clear=False)
    return result


def percentile(values: list[float], q: int) -> float | None:
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100)[q - 1]


def path_stats(runs: list[dict]) -> dict[str, object]:
    rtts = [t for r in runs for t in r["rtts_ms"]]
    stats = {
        "gbps": summary([r["sent_gbps"] for r in runs]),
        "retransmits": summary([r["retransmits"] for r in runs]),
        "rtt_ms": {"n": len(rtts), "p50": percentile(rtts, 50), "p99": percentile(rtts, 99)},
        "lost_pings_under_tcp": sum(r["loaded_pings_lost"] for r in runs),
        "pings_under_tcp": sum(r["loaded_pings"] for r in runs),
    }
    profiled = [r["pmd_stats"] for r in runs if "pmd_stats" in r]
    if profiled:
        stats["pmd_stats"] = profiled[-1]
    return stats


def ratio(numerator: dict, denominator: dict) -> float | None:
    top, bottom = numerator.get("gbps", {}), denominator.get("gbps", {})
    if not top.get("n") or not bottom.get("n") or not bottom["median"]:
        return None
    return round(top["median"] / bottom["median"], 3)


TARGETS = {"ew_routed_over_same_subnet": 0.95, "ew_dvr_over_ovn": 1.0,
           "ew_dvr_over_centralized": 1.5}


def headline(stats: dict[str, dict[str, dict]]) -> dict[str, object]:
    """The issue's target keys (dvr/OVN TCP medians' ratios, lost pings per system)."""
    dvr, ovn = stats["dvr"], stats.get("ovn", {})
    out: dict[str, object] = {
        "ew_routed_over_same_subnet": ratio(dvr["cross_host_routed"],
                                            dvr["cross_host_same_subnet"]),
        "ew_dvr_over_ovn": ratio(dvr["cross_host_routed"], ovn.get("cross_host_routed", {})),
        "ew_dvr_over_ovn_same_host_routed": ratio(dvr["same_host_routed"],
                                                  ovn.get("same_host_routed", {})),
        "ew_dvr_over_centralized": ratio(dvr["cross_host_routed"], dvr.get("centralized", {})),
        "ew_lost_pings_under_tcp": {name: sum(s["lost_pings_under_tcp"]
                                              for s in system.values())
                                    for name, system in stats.items()},
        "medians_gbps": {name: {key: s["gbps"].get("median") for key, s in system.items()}
                         for name, system in stats.items()},
    }
    out["targets"] = {key: {"target": f">= {target}", "met": out[key] is not None
                            and out[key] >= target} for key, target in TARGETS.items()}
    out["targets"]["ew_lost_pings_under_tcp"] = {
        "target": "0", "met": not any(out["ew_lost_pings_under_tcp"].values())}
    return out


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def table(stats: dict[str, dict[str, dict]]) -> list[str]:
    """Markdown rows: every path of every system."""
    lines = ["| system | path | TCP Gbit/s median (min–max) | retransmits / run (median) "
             "| RTT p50 / p99 ms | pings lost under TCP |", "|---|---|---|---|---|---|"]
    labels = {p.key: f"{p.label}: {p.source} → {p.destination}" for p in (*PATHS, CENTRALIZED)}
    for name, system in stats.items():
        for key, s in system.items():
            g = s["gbps"]
            lines.append(
                f"| {name} | {labels[key]} | {g['median']:.3f} ({g['min']:.3f}–{g['max']:.3f}) "
                f"| {s['retransmits']['median']:.0f} "
                f"| {_ms(s['rtt_ms']['p50'])} / {_ms(s['rtt_ms']['p99'])} "
                f"| {s['lost_pings_under_tcp']} of {s['pings_under_tcp']} |")
    lines += ["", f"Source host's userspace datapath during one {PROFILED} stream "
                  "(`ovs-appctl dpif-netdev/pmd-stats-show`, main thread):", "",
              "| system | packets | recirculations | datapath passes / packet "
              "| EMC hits | megaflow hits | upcalls |", "|---|---|---|---|---|---|---|"]
    for name, system in stats.items():
        pmd = system.get(PROFILED, {}).get("pmd_stats", {})
        lines.append(f"| {name} | {pmd.get('packets received', 0):.0f} "
                     f"| {pmd.get('packet recirculations', 0):.0f} "
                     f"| {pmd.get('avg. datapath passes per packet', 0):.2f} "
                     f"| {pmd.get('emc hits', 0):.0f} "
                     f"| {pmd.get('megaflow hits', 0):.0f} "
                     f"| {pmd.get('miss with success upcall', 0):.0f} |")
    return lines


def stream_arguments(p: argparse.ArgumentParser, runs: int, seconds: int) -> None:
    """``--runs`` and ``--seconds`` of an experiment built on ``measure`` (its rounds of
    iperf3 streams); ``checked_stream_arguments`` parses them."""
    p.add_argument("--runs", type=int, default=runs, help="rounds")
    p.add_argument("--seconds", type=int, default=seconds, help="iperf3 -t")


def checked_stream_arguments(p: argparse.ArgumentParser, argv: list[str] | None,
                             pings: int) -> argparse.Namespace:
    """The parsed arguments, ``--runs`` 1..20 and ``--seconds`` 3..60 (else the parser's
    error), with ``pings``: the idle ping train ``measure`` sends before each stream."""
    args = p.parse_args(argv)
    if not (1 <= args.runs <= 20 and 3 <= args.seconds <= 60):
        p.error("--runs 1..20, --seconds 3..60")
    args.pings = pings
    return args


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="repetitions of every path")
    p.add_argument("--seconds", type=int, default=5, help="iperf3 -t")
    p.add_argument("--pings", type=int, default=100, help="probes per idle ping train")
    p.add_argument("--vm-plumbing", type=VmPlumbing, choices=list(VmPlumbing),
                   default=DEFAULT_PLUMBING, help="both labs' VM NICs and host uplinks")
    p.add_argument("--tunnel-layout", choices=TUNNEL_LAYOUTS, default=DEFAULT_TUNNEL_LAYOUT,
                   help="the dvr lab's agents keep br-tun's tables on br-tun or in br-int")
    p.add_argument("--name", default="benchdp", help="the dvr lab's name (its own lab)")
    p.add_argument("--api-port", type=int, default=19851)
    p.add_argument("--ovn-workdir", type=Path, default=Path("/var/lib/dvr-lab-ovn/benchdp"))
    p.add_argument("--no-ovn", action="store_true", help="measure dvr only")
    p.add_argument("--ovn-firewall", action=argparse.BooleanOptionalAction, default=True,
                   help="give the OVN VMs stateful ACLs like dvr's security groups (a port "
                        "group with allow-related rules): like for like (default on)")
    p.add_argument("--wait-idle", type=float, metavar="LOAD",
                   help="first wait (up to --wait-max s) for the 1-min load average < LOAD")
    p.add_argument("--wait-max", type=float, default=600.0)
    args = p.parse_args(argv)
    if not (1 <= args.runs <= 20 and 3 <= args.seconds <= 60 and 10 <= args.pings <= 1000):
        p.error("--runs 1..20, --seconds 3..60, --pings 10..1000")
    return args


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse(argv)
    say = lambda m: print(f"  {m}", flush=True)  # noqa: E731
    systems: dict[str, System] = {}
    raw: dict[str, dict[str, list[dict]]] = {}
    with ExitStack() as labs:  # both labs come down whatever happens, Ctrl-C included
        say(f"dvr lab {args.name!r} ({args.vm_plumbing.value} NICs)")
        dvr = dvr_bench_lab(labs, args.name, args.api_port, args.vm_plumbing,
                            args.tunnel_layout)
        systems["dvr"] = dvr
        if not args.no_ovn:
            say(f"OVN lab in {args.ovn_workdir} ({args.vm_plumbing.value} NICs)")
            systems["ovn"] = ovn_bench_lab(labs, args.name, args.ovn_workdir, args.vm_plumbing,
                                           args.ovn_firewall, lambda m: say(f"ovn: {m}"))
        time.sleep(1.0)
        say(f"waiting for a quieter machine: {wait_for_quiet(args.wait_idle, args.wait_max)}")
        before = conditions(args.name)
        for name in systems:
            raw[name] = {}
        for run in range(args.runs):
            order = list(systems) if run % 2 == 0 else list(reversed(systems))
            for name in order:
                paths = (*PATHS, CENTRALIZED) if name == "dvr" else PATHS
                for index, path in enumerate(paths):
                    r = measure(systems[name], path, args, 5201 + index,
                                profile=run == args.runs - 1 and path.key == PROFILED)
                    raw[name].setdefault(path.key, []).append(r)
                    say(f"run {run + 1}/{args.runs} {name:>3} {path.key:<24} "
                        f"{r['sent_gbps']:.3f} Gbit/s retr={r['retransmits']:.0f} "
                        f"rtt_p50={percentile(r['rtts_ms'], 50) or 0:.3f} ms "
                        f"lost_under_tcp={r['loaded_pings_lost']}/{r['loaded_pings']}")
        after = conditions(args.name)
    stats = {name: {key: path_stats(runs) for key, runs in paths.items()}
             for name, paths in raw.items()}
    return {**headline(stats), "args": {k: str(v) for k, v in vars(args).items()},
            "before": before, "after": after, "stats": stats, "table": table(stats),
            "raw": raw}


if __name__ == "__main__":
    import json

    result = main(sys.argv[1:])
    print("\n".join(result["table"]))
    print(json.dumps({k: v for k, v in result.items() if k not in ("raw", "stats", "table")},
                     indent=1))
