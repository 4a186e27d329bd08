"""dvr with br-tun on its own bridge against dvr with br-tun folded into br-int, and OVN, in
one run (issue 12: `--tunnel-layout folded`, docs/design.md §11).

Three labs up side by side, as `make bench` builds its two (the default topology plus
``blue-3`` and the centralized router's VMs, so every host polls as many VM NICs): dvr
(``dvr lab up``), dvr folded (``dvr lab up --tunnel-layout folded``) and the OVN reference
lab.  Agents and controllers run.  Each round measures every system once, the order
rotated per round, on the two cross-host paths (TCP, ``--seconds``); medians and ratios
at the end.

    sudo .venv/bin/python bench/bench_layouts.py --runs 6 --seconds 6
"""

from __future__ import annotations

import argparse
import statistics
import sys
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
from benchlib import load_average, machine


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    stream_arguments(p, runs=6, seconds=6)
    p.add_argument("--ovn-workdir", type=Path, default=Path("/var/lib/dvr-lab-ovn/benchly"))
    args = checked_stream_arguments(p, argv, pings=10)
    gbps: dict[str, dict[str, list[float]]] = {}
    with ExitStack() as labs:
        systems: dict[str, System] = {
            "dvr": dvr_bench_lab(labs, "benchlyb", 19896, tunnel_layout="bridge"),
            "dvr folded": dvr_bench_lab(labs, "benchlyf", 19897, tunnel_layout="folded"),
            "ovn": ovn_bench_lab(labs, "benchly", args.ovn_workdir,
                                 out=lambda m: print(f"  ovn: {m}", flush=True)),
        }
        load_before = load_average()
        names = list(systems)
        for run in range(args.runs):
            order = names[run % len(names):] + names[:run % len(names)]
            for name in order:
                for index, path in enumerate(CROSS_HOST_PATHS):
                    result = measure(systems[name], path, args, 5201 + index, profile=False)
                    gbps.setdefault(name, {}).setdefault(path.key, []).append(
                        result["sent_gbps"])
                    print(f"  run {run + 1}/{args.runs} {name:>10} {path.key:<24} "
                          f"{result['sent_gbps']:.3f} Gbit/s", flush=True)
        load_after = load_average()
    medians = {name: {key: statistics.median(v) for key, v in paths.items()}
               for name, paths in gbps.items()}
    print(f"\nmachine: {machine()}\nload average before: {load_before}; after: {load_after}\n")
    print("| system | cross host, same subnet (Gbit/s, median) | cross host, routed | "
          "routed / OVN routed |\n|---|---|---|---|")
    for name, paths in medians.items():
        print(f"| {name} | {paths['cross_host_same_subnet']:.3f} | "
              f"{paths['cross_host_routed']:.3f} | "
              f"{paths['cross_host_routed'] / medians['ovn']['cross_host_routed']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
