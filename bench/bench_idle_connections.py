"""What an idle OpenFlow connection costs the userspace datapath (issue 12's last gap).

Every dvr agent holds two OpenFlow connections per bridge (its flow monitor and its bundle
connection); ovs-vswitchd's main loop, which also forwards every packet of the lab's
AF_PACKET and tap ports, services each connection on every iteration.  This measures that
cost on `make bench`'s dvr lab (``bench_dataplane.dvr_bench_lab``), agents running:
alternating rounds without and with ``--extra`` more idle connections on each of
compute-1 and compute-2 (``ovs-ofctl monitor BRIDGE watch:`` over br-int, br-tun and br-ex,
stopped by PID after the round), each round one iperf3 stream per path.

    sudo .venv/bin/python bench/bench_idle_connections.py --runs 6 --seconds 5 --extra 6
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack

from bench_dataplane import (
    CROSS_HOST_PATHS,
    checked_stream_arguments,
    dvr_bench_lab,
    measure,
    stream_arguments,
)
from benchlib import machine

HOSTS = ("compute-1", "compute-2")
BRIDGES = ("br-int", "br-tun", "br-ex")


def idle_monitors(dvr, count: int) -> list[subprocess.Popen]:  # type: ignore[no-untyped-def]
    """``count`` idle flow monitors on each measured host, over its bridges in turn."""
    started = []
    for host in HOSTS:
        env = dvr.host_env(host)
        for index in range(count):
            bridge = BRIDGES[index % len(BRIDGES)]
            started.append(subprocess.Popen(
                env.command(["ovs-ofctl", "monitor", bridge, "watch:"]), env=env.env(),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(0.5)  # connected
    return started


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    stream_arguments(p, runs=6, seconds=5)
    p.add_argument("--extra", type=int, default=6, help="idle connections added per host")
    p.add_argument("--name", default="benchconn", help="the dvr lab's name (its own lab)")
    p.add_argument("--api-port", type=int, default=19894)
    args = checked_stream_arguments(p, argv, pings=5)
    if not 1 <= args.extra <= 30:
        p.error("--extra 1..30")
    gbps: dict[tuple[str, str], list[float]] = {}
    with ExitStack() as labs:
        dvr = dvr_bench_lab(labs, args.name, args.api_port)
        for run in range(args.runs):
            for label in (("base", "extra") if run % 2 == 0 else ("extra", "base")):
                extra = idle_monitors(dvr, args.extra) if label == "extra" else []
                try:
                    for index, path in enumerate(CROSS_HOST_PATHS):
                        result = measure(dvr, path, args, 5201 + index, profile=False)
                        gbps.setdefault((label, path.key), []).append(result["sent_gbps"])
                        print(f"  {label:>5} {path.key:<24} {result['sent_gbps']:.3f} Gbit/s",
                              flush=True)
                finally:
                    stop(extra)
    print(f"\nmachine: {machine()}\n")
    for path in CROSS_HOST_PATHS:
        base = statistics.median(gbps[("base", path.key)])
        extra = statistics.median(gbps[("extra", path.key)])
        print(f"{path.key}: {base:.3f} -> {extra:.3f} Gbit/s with {args.extra} more idle "
              f"connections per host ({extra / base:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
