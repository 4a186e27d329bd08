"""What slows a VIF plug right after its port is created (issue 14: port -> first ping).

`bench_port.py` times the plug (``ovs-vsctl add-port`` into br-int, which waits until
ovs-vswitchd has added the port) at 17-20 ms after a POST, against 11-14 ms in the OVN lab
and alone.  This measures where the difference comes from, on a lab of its own: per run,
every condition once, in a random order, each the same plug of one veth end (a fresh
``iface-id`` each time) into compute-2's br-int:

  alone        no port created: the plug on a quiet lab
  post         POST /v2.0/ports bound to compute-2, then the plug at once (as bench_port)
  post-stop-X  the same with the agents of the hosts in X stopped (SIGSTOP, by PID) from
               before the POST until the plug returned; X: all, compute-1, compute-2,
               network-1, remote (compute-1 and network-1)

Then the port is deleted, the agents continued and the VIF unplugged.  The machine has 2
cores and the lab runs every host's agent and ovs-vswitchd on them: what a condition saves
is the CPU that the stopped agents' reactions to the POST take from the plug meanwhile.

    sudo .venv/bin/python bench/bench_plug.py --runs 15
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from contextlib import ExitStack

from benchlab import BenchLab
from benchlib import fmt, machine, summary

HOST = "compute-2"
NETWORK = "orange"
DEVICE = "bplug0"
STOPPED = {"post": (), "post-stop-all": ("compute-1", "compute-2", "network-1"),
           "post-stop-compute-1": ("compute-1",), "post-stop-compute-2": ("compute-2",),
           "post-stop-network-1": ("network-1",),
           "post-stop-remote": ("compute-1", "network-1")}
CONDITIONS = ("alone", *STOPPED)


class PlugBench:
    def __init__(self, bench: BenchLab):
        self.bench = bench
        self.client = bench.lab.client()
        self.host = bench.lab.host_env(bench.host(HOST))
        self.network_id = self.client.list("networks", name=NETWORK)[0]["id"]
        self.agents = {name: record.agent["pid"] for name, record in bench.record.hosts.items()
                       if record.agent}

    def prepare(self) -> None:
        self.host.run(["ip", "link", "add", DEVICE, "type", "veth", "peer", "name",
                       DEVICE + "p"])
        for device in (DEVICE, DEVICE + "p"):
            self.host.run(["ip", "link", "set", device, "up"])

    def remove(self) -> None:
        self.unplug()
        self.host.run(["ip", "link", "del", DEVICE], check=False)

    def plug(self, iface_id: str) -> float:
        started = time.perf_counter()
        self.host.run(["ovs-vsctl", f"--db={self.host.ovsdb}", "add-port", "br-int", DEVICE,
                       "--", "set", "interface", DEVICE, f"external_ids:iface-id={iface_id}"])
        return (time.perf_counter() - started) * 1000

    def unplug(self) -> None:
        self.host.run(["ovs-vsctl", f"--db={self.host.ovsdb}", "--if-exists", "del-port",
                       "br-int", DEVICE], check=False)

    def signal_agents(self, hosts: tuple[str, ...], sig: signal.Signals) -> None:
        for host in hosts:
            os.kill(self.agents[host], sig)

    def one(self, condition: str, index: int) -> float:
        if condition == "alone":
            ms = self.plug(f"bplug-none-{index}")
            self.unplug()
            return ms
        stopped = STOPPED[condition]
        port_id = ""
        try:
            self.signal_agents(stopped, signal.SIGSTOP)
            port_id = self.client.create("ports", "port", {
                "name": f"bplug{index}", "network_id": self.network_id,
                "device_owner": "compute:nova", "device_id": f"bplug{index}",
                "binding:host_id": HOST})["id"]
            return self.plug(port_id)
        finally:
            self.signal_agents(stopped, signal.SIGCONT)
            time.sleep(0.3)  # the continued agents catch up before the undo
            self.unplug()
            if port_id:
                self.client.delete("ports", port_id)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=15, help="rounds of every condition")
    p.add_argument("--name", default="bplug", help="lab name (its own lab)")
    p.add_argument("--api-port", type=int, default=19883)
    p.add_argument("--pause", type=float, default=0.7, help="seconds between plugs")
    p.add_argument("--seed", type=int, default=14)
    args = p.parse_args(argv)
    if not 1 <= args.runs <= 100:
        p.error("--runs 1..100")
    rng = random.Random(args.seed)
    times: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    with ExitStack() as stack:
        bench = stack.enter_context(BenchLab(args.name, args.api_port))
        plugs = PlugBench(bench)
        plugs.prepare()
        stack.callback(plugs.remove)
        stack.callback(plugs.signal_agents, tuple(plugs.agents), signal.SIGCONT)
        time.sleep(2.0)
        for run in range(args.runs):
            order = list(CONDITIONS)
            rng.shuffle(order)
            for condition in order:
                times[condition].append(plugs.one(condition, run * len(CONDITIONS)
                                                  + order.index(condition)))
                time.sleep(args.pause)
            print(f"  run {run + 1}/{args.runs}: " + " ".join(
                f"{c}={times[c][-1]:.1f}" for c in CONDITIONS), flush=True)
    print(f"\nmachine: {machine()}\n")
    print("| condition | plug, ms: median (min–max, n) |\n|---|---|")
    for condition in CONDITIONS:
        print(f"| {condition} | {fmt(summary(times[condition]))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
