"""An experiment, not a mode of dvr: br-tun folded into br-int, against OVN (issue 12).

`bench/RESULTS.md` (2026-12-03) traced the last gap to OVN in `ew_dvr_over_ovn` to the cost
of every bridge in the userspace datapath's main loop (a dvr host has four bridges, an OVN
host two), and measured it by giving OVN dvr's extra bridges.  This measures the other
direction on dvr's own lab: br-tun's flows, tunnel ports and patch port moved into br-int
by hand, so the host runs br-int, br-ex and br-phy only, as OVN with an external bridge
would.  On compute-1 and compute-2 (the hosts of the paths measured):

1. every agent is stopped (SIGSTOP, by PID) for the whole run, in both phases alike, so
   that nothing puts br-tun back;
2. phase 1: dvr as it is, against the OVN reference lab (``ovnlab.OvnLab``, as `make bench`
   builds it), alternated, ``--runs`` rounds of both paths;
3. the fold: br-tun's flows are read (``dump-flows --names``), their tables and resubmits
   moved up by ``OFFSET`` (Neutron's br-tun tables 0-22 become br-int tables 200-222; the
   ``learn`` action's table too); br-tun is deleted and its ports (``patch-int``, the VXLAN
   ports) added to br-int with the dead VLAN tag 4095, so that br-int's NORMAL action never
   sends to them; one table-0 flow per such port resubmits what it receives to table 200.
   ``patch-tun`` (br-int) and ``patch-int`` are now peers on the same bridge: a frame NORMAL
   sends to ``patch-tun`` enters br-int again at ``patch-int`` with its registers cleared,
   as it entered br-tun before;
4. phase 2: the folded dvr against OVN, the same way;
5. with ``--drop-external``, phase 3: br-ex deleted too on both hosts (none of the paths
   measured uses it; their floating IPs stop working), against OVN again: what is left of
   the gap once dvr's hosts have OVN's bridges.

    sudo .venv/bin/python bench/bench_bridges.py --runs 4 --seconds 6
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench_dataplane import (
    CROSS_HOST_PATHS,
    System,
    checked_stream_arguments,
    dvr_bench_lab,
    measure,
    ovn_bench_lab,
    stream_arguments,
)
from benchlib import machine

from dvr.lab.hostenv import HostEnv

OFFSET = 200
DEAD_VLAN = 4095
FOLDED_HOSTS = ("compute-1", "compute-2")


def moved_up(flow: str) -> str:
    """One ``dump-flows`` line of br-tun as a br-int flow: its table, resubmits and learn
    table moved up by OFFSET (a line without ``table=`` is table 0's)."""
    match, _, actions = flow.partition("actions=")
    if "table=" not in match:
        match = "table=0, " + match
    match = re.sub(r"table=(\d+)", lambda m: f"table={int(m.group(1)) + OFFSET}", match)
    actions = re.sub(r"resubmit\(,(\d+)\)", lambda m: f"resubmit(,{int(m.group(1)) + OFFSET})",
                     actions)
    actions = re.sub(r"learn\(table=(\d+)", lambda m: f"learn(table={int(m.group(1)) + OFFSET}",
                     actions)
    return f"{match}actions={actions}"


def fold_tunnel_bridge(env: HostEnv) -> dict[str, int]:
    """Move br-tun into br-int on one host (see the module's docstring, step 3)."""
    dump = env.run(["ovs-ofctl", "dump-flows", "br-tun", "--no-stats", "--names"]).stdout
    flows = [moved_up(line.strip()) for line in dump.splitlines()
             if "actions=" in line and not line.startswith(("NXST", "OFPST"))]
    ports = []
    for name in env.run(["ovs-vsctl", "list-ports", "br-tun"]).stdout.split():
        kind = env.run(["ovs-vsctl", "get", "interface", name, "type"]).stdout.strip()
        options = env.run(["ovs-vsctl", "get", "interface", name, "options"]).stdout.strip()
        ports.append((name, kind, options))
    env.run(["ovs-vsctl", "del-br", "br-tun"])
    for name, kind, options in ports:
        env.run(["ovs-vsctl", "add-port", "br-int", name, f"tag={DEAD_VLAN}", "--", "set",
                 "interface", name, f"type={kind}", f"options={options}"])
    dispatch = [f"table=0,priority=1000,in_port={name},actions=resubmit(,{OFFSET})"
                for name, _, _ in ports]
    with tempfile.NamedTemporaryFile("w", suffix=".flows") as file:
        file.write("\n".join(flows + dispatch) + "\n")
        file.flush()
        env.run(["ovs-ofctl", "add-flows", "br-int", file.name])
    return {"ports": len(ports), "flows": len(flows)}


def rounds(label_a: str, a: System, label_b: str, b: System, runs: int,
           args: argparse.Namespace, out: dict[str, dict[str, list[float]]]) -> None:
    for run in range(runs):
        order = [(label_a, a), (label_b, b)]
        if run % 2:
            order.reverse()
        for label, system in order:
            for index, path in enumerate(CROSS_HOST_PATHS):
                result = measure(system, path, args, 5201 + index, profile=False)
                out.setdefault(label, {}).setdefault(path.key, []).append(result["sent_gbps"])
                print(f"  {label:>11} {path.key:<24} {result['sent_gbps']:.3f} Gbit/s",
                      flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    stream_arguments(p, runs=4, seconds=6)
    p.add_argument("--name", default="benchbr", help="the dvr lab's name (its own lab)")
    p.add_argument("--api-port", type=int, default=19893)
    p.add_argument("--drop-external", action="store_true", help="a third phase without br-ex")
    p.add_argument("--ovn-workdir", type=Path, default=Path("/var/lib/dvr-lab-ovn/benchbr"))
    args = checked_stream_arguments(p, argv, pings=10)
    gbps: dict[str, dict[str, list[float]]] = {}
    with ExitStack() as labs:
        dvr = dvr_bench_lab(labs, args.name, args.api_port)  # `make bench`'s, every VM NIC
        bench = dvr.bench
        ovn = ovn_bench_lab(labs, args.name, args.ovn_workdir,
                            out=lambda m: print(f"  ovn: {m}", flush=True))
        agents = [h.agent["pid"] for h in bench.record.hosts.values() if h.agent]
        for pid in agents:
            os.kill(pid, signal.SIGSTOP)
        labs.callback(lambda: [os.kill(pid, signal.SIGCONT) for pid in agents])
        time.sleep(1.0)
        rounds("ovn", ovn, "dvr", dvr, args.runs, args, gbps)
        for host in FOLDED_HOSTS:
            print(f"  folded {host}: {fold_tunnel_bridge(dvr.host_env(host))}", flush=True)
        rounds("ovn (again)", ovn, "dvr, folded", dvr, args.runs, args, gbps)
        if args.drop_external:
            for host in FOLDED_HOSTS:
                dvr.host_env(host).run(["ovs-vsctl", "del-br", "br-ex"])
            rounds("ovn (third)", ovn, "dvr, folded, no br-ex", dvr, args.runs, args, gbps)
    medians = {label: {key: round(statistics.median(v), 3) for key, v in paths.items()}
               for label, paths in gbps.items()}
    print(f"\nmachine: {machine()}\n")
    print("| system | cross host, same subnet (Gbit/s, median) | cross host, routed |"
          "\n|---|---|---|")
    for label, paths in medians.items():
        print(f"| {label} | {paths['cross_host_same_subnet']} | {paths['cross_host_routed']} |")
    pairs = (("dvr", "ovn"), ("dvr, folded", "ovn (again)"),
             ("dvr, folded, no br-ex", "ovn (third)"))
    for key in ("cross_host_same_subnet", "cross_host_routed"):
        print(f"{key}: " + ", ".join(f"{mine} / OVN {medians[mine][key] / medians[ovn][key]:.3f}"
                                     for mine, ovn in pairs if mine in medians))
    return 0


if __name__ == "__main__":
    sys.exit(main())
