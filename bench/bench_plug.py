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

``--rt`` adds ``alone-rt`` and ``post-rt``: the same plugs with the plug's own processes
(``nsenter``, ``ovs-vsctl``) at real-time priority (``chrt -f 50``), so that nothing else
on the machine can keep them waiting for a CPU.  For every plug, the port host's
ovs-vswitchd main thread and ovsdb-server are read from ``/proc/PID/task/*/schedstat``
before the condition starts (before its POST) and after the plug: what they ran (on-CPU)
and how long they waited for a CPU (run queue) meanwhile.

    sudo .venv/bin/python bench/bench_plug.py --runs 15 [--rt]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

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
REAL_TIME = ("alone-rt", "post-rt")  # --rt: the plug's processes at chrt -f 50
WATCHED = ("ovs-vswitchd", "ovsdb-server")  # the port host's daemons, by pidfile


@dataclass(frozen=True)
class SchedStat:
    """A thread's (or threads') scheduler counters, ns: on a CPU, waiting for one."""

    on_cpu: int
    run_queue: int

    def __sub__(self, other: SchedStat) -> SchedStat:
        return SchedStat(self.on_cpu - other.on_cpu, self.run_queue - other.run_queue)


def parse_schedstat(text: str) -> SchedStat:
    """``/proc/PID/task/TID/schedstat``: on-CPU ns, run-queue wait ns, timeslices."""
    on_cpu, run_queue, _slices = text.split()
    return SchedStat(int(on_cpu), int(run_queue))


def read_schedstat(pid: int, main_thread_only: bool) -> SchedStat:
    tasks = [str(pid)] if main_thread_only else os.listdir(f"/proc/{pid}/task")
    stats = [parse_schedstat(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text())
             for tid in tasks]
    return SchedStat(sum(s.on_cpu for s in stats), sum(s.run_queue for s in stats))


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

    def plug(self, iface_id: str, real_time: bool = False) -> float:
        argv = self.host.command(["ovs-vsctl", f"--db={self.host.ovsdb}", "add-port",
                                  "br-int", DEVICE, "--", "set", "interface", DEVICE,
                                  f"external_ids:iface-id={iface_id}"])
        started = time.perf_counter()
        subprocess.run(["chrt", "-f", "50", *argv] if real_time else argv,
                       env=self.host.env(), check=True, capture_output=True, timeout=30)
        return (time.perf_counter() - started) * 1000

    def daemons(self) -> dict[str, SchedStat]:
        """The port host's ovs-vswitchd main thread and ovsdb-server (all threads)."""
        pids = {name: int((self.host.rundir / f"{name}.pid").read_text().split()[0])
                for name in WATCHED}
        return {name: read_schedstat(pid, main_thread_only=name == "ovs-vswitchd")
                for name, pid in pids.items()}

    def unplug(self) -> None:
        self.host.run(["ovs-vsctl", f"--db={self.host.ovsdb}", "--if-exists", "del-port",
                       "br-int", DEVICE], check=False)

    def signal_agents(self, hosts: tuple[str, ...], sig: signal.Signals) -> None:
        for host in hosts:
            os.kill(self.agents[host], sig)

    def one(self, condition: str, index: int) -> tuple[float, dict[str, SchedStat]]:
        """The plug's ms, and the port host's daemons' counters from the start to the plug."""
        real_time = condition.endswith("-rt")
        before = self.daemons()
        if condition.startswith("alone"):
            ms = self.plug(f"bplug-none-{index}", real_time)
            after = self.daemons()
            self.unplug()
            return ms, {name: after[name] - before[name] for name in WATCHED}
        stopped = STOPPED.get(condition, ())
        port_id = ""
        try:
            self.signal_agents(stopped, signal.SIGSTOP)
            port_id = self.client.create("ports", "port", {
                "name": f"bplug{index}", "network_id": self.network_id,
                "device_owner": "compute:nova", "device_id": f"bplug{index}",
                "binding:host_id": HOST})["id"]
            ms = self.plug(port_id, real_time)
            after = self.daemons()
            return ms, {name: after[name] - before[name] for name in WATCHED}
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
    p.add_argument("--rt", action="store_true",
                   help="also plug with the plug's processes at real-time priority")
    args = p.parse_args(argv)
    if not 1 <= args.runs <= 100:
        p.error("--runs 1..100")
    rng = random.Random(args.seed)
    conditions = (*CONDITIONS, *(REAL_TIME if args.rt else ()))
    times: dict[str, list[float]] = {c: [] for c in conditions}
    daemons: dict[str, list[dict[str, SchedStat]]] = {c: [] for c in conditions}
    with ExitStack() as stack:
        bench = stack.enter_context(BenchLab(args.name, args.api_port))
        plugs = PlugBench(bench)
        plugs.prepare()
        stack.callback(plugs.remove)
        stack.callback(plugs.signal_agents, tuple(plugs.agents), signal.SIGCONT)
        time.sleep(2.0)
        for run in range(args.runs):
            order = list(conditions)
            rng.shuffle(order)
            for condition in order:
                ms, counters = plugs.one(condition, run * len(conditions)
                                         + order.index(condition))
                times[condition].append(ms)
                daemons[condition].append(counters)
                time.sleep(args.pause)
            print(f"  run {run + 1}/{args.runs}: " + " ".join(
                f"{c}={times[c][-1]:.1f}" for c in conditions), flush=True)
    print(f"\nmachine: {machine()}\n")
    print(f"| condition | plug, ms: median (min–max, n) | {HOST}'s ovs-vswitchd main thread: "
          "on CPU / run queue, ms (median) | its ovsdb-server: on CPU / run queue |")
    print("|---|---|---|---|")
    for condition in conditions:
        cells = " | ".join(median_ms(daemons[condition], name) for name in WATCHED)
        print(f"| {condition} | {fmt(summary(times[condition]))} | {cells} |")
    return 0


def median_ms(counters: list[dict[str, SchedStat]], name: str) -> str:
    """'on / run queue' of ``name`` over the plugs, medians in ms."""
    on_cpu = statistics.median(c[name].on_cpu for c in counters) / 1e6
    run_queue = statistics.median(c[name].run_queue for c in counters) / 1e6
    return f"{on_cpu:.2f} / {run_queue:.2f}"


if __name__ == "__main__":
    sys.exit(main())
