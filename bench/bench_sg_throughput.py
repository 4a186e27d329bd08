"""TCP throughput and RTT of a cross-host DVR-routed path with the default security group vs
port security off, side by side in one run (issue 13, performance: target ratio >= 0.9).

Two VM pairs in a lab of the benchmark's own (``--name``), the same path for both:

  default  sg-1 (blue, compute-1) -> sg-2 (orange, compute-2): both ports in the project's
           ``default`` group only (group-mates are let in, statefully: conntrack on both hosts)
  off      open-1 (blue, compute-1) -> open-2 (orange, compute-2): ``port_security_enabled``
           false, no group (no firewall, no anti-spoofing)

Routed on compute-1 (DVR), one VXLAN hop.  Each round measures both cases, alternating
which goes first (ABBA...): a ping train (``--pings`` probes 10 ms apart, after a warm-up),
then ``iperf3 -t SECONDS``.  Around every iperf3 run the userspace datapath's counters of
both hosts (``ovs-appctl dpif-netdev/pmd-stats-show``, cleared first) say how many
datapath passes (recirculations) and cycles a packet costs, which is where a firewall's
cost shows.  Reported: median Gbit/s per case, RTT p50/p99 per case, and the ratios
default/off (``sg_tcp_default_over_off``, ``sg_rtt_p50_default_over_off``).

    sudo .venv/bin/python bench/bench_sg_throughput.py                # about 4 minutes
    sudo .venv/bin/python bench/bench_sg_throughput.py --rounds 6 --seconds 10 --write

``main(argv)`` returns the results (``make bench`` stores them); run as a script with
``--write`` it also stores them under ``sg_throughput`` in bench/results.json.  Importing
this module needs no root and starts nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlab import BenchLab, iperf3, run_in
from benchlib import REPO, conditions, fmt, machine, summary, wait_for_quiet

from dvr.lab.security import DEFAULT_GROUP, LAB_VM, VmSecurity, find_group

RESULTS_JSON = Path(__file__).resolve().parent / "results.json"
RESULTS_KEY = "sg_throughput"
TARGET_RATIO = 0.9
HOSTS = ("compute-1", "compute-2")
PING_INTERVAL_S = 0.01


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    source: tuple[str, str, str]  # VM name, network, host
    destination: tuple[str, str, str]
    port_security: bool
    iperf_port: int


CASES = (
    Case("default", "default group", ("sg-1", "blue", "compute-1"),
         ("sg-2", "orange", "compute-2"), True, 5201),
    Case("off", "port security off", ("open-1", "blue", "compute-1"),
         ("open-2", "orange", "compute-2"), False, 5202),
)


# --- pure parts: statistics, the datapath's counters, the table ----------------------------


def percentile(values: Sequence[float], pct: int) -> float | None:
    """The pct-th percentile (1..99) of a series (exclusive method; None when empty)."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100)[pct - 1]


_COUNTER = re.compile(r"^\s*([a-z][a-z. ]*[a-z]):\s*([0-9.]+)", re.MULTILINE)
COUNTED = ("packets received", "packet recirculations", "megaflow hits", "emc hits",
           "smc hits", "miss with success upcall", "processing cycles")


def pmd_counters(text: str) -> dict[str, float]:
    """``dpif-netdev/pmd-stats-show``'s counts summed over its threads (main and PMDs)."""
    totals = dict.fromkeys(COUNTED, 0.0)
    for name, value in _COUNTER.findall(text):
        if name in totals:
            totals[name] += float(value)
    return totals


def per_packet(counters: dict[str, float]) -> dict[str, float | None]:
    """Datapath passes and processing cycles per received packet (None: no packet)."""
    received = counters["packets received"]
    if not received:
        return {"packets": 0.0, "passes_per_packet": None, "cycles_per_packet": None}
    return {
        "packets": received,
        "passes_per_packet": (received + counters["packet recirculations"]) / received,
        "cycles_per_packet": (counters["processing cycles"] / received
                              if counters["processing cycles"] else None),
        "upcalls": counters["miss with success upcall"],
    }


def case_stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rtts = [t for run in runs for t in run["rtts_ms"]]
    hosts = {host: {key: summary([run["datapath"][host][key] for run in runs
                                  if run["datapath"][host].get(key) is not None])
                    for key in ("passes_per_packet", "cycles_per_packet")}
             for host in HOSTS}
    return {
        "gbps": summary([run["sent_gbps"] for run in runs]),
        "received_gbps": summary([run["received_gbps"] for run in runs]),
        "retransmits": summary([run["retransmits"] for run in runs]),
        "rtt_ms": summary(rtts) | {"p50": percentile(rtts, 50), "p99": percentile(rtts, 99),
                                   "lost": sum(run["pings_lost"] for run in runs)},
        "datapath": hosts,
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def ratios(stats: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    on, off = stats["default"], stats["off"]
    return {
        "sg_tcp_default_over_off": ratio(on["gbps"].get("median"), off["gbps"].get("median")),
        "sg_rtt_p50_default_over_off": ratio(on["rtt_ms"]["p50"], off["rtt_ms"]["p50"]),
        "sg_rtt_p99_default_over_off": ratio(on["rtt_ms"]["p99"], off["rtt_ms"]["p99"]),
    }


def _cell(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def table(stats: dict[str, dict[str, Any]], found: dict[str, float | None]) -> list[str]:
    """Markdown lines: one row per case, then the ratios."""
    lines = ["| case | TCP Gbit/s median (min–max, n) | retransmits / run | RTT ms p50 | "
             "RTT ms p99 | datapath passes / packet (compute-1, compute-2) | "
             "cycles / packet (compute-1, compute-2) |",
             "|---|---|---|---|---|---|---|"]
    for case in CASES:
        s = stats[case.key]
        passes = ", ".join(_cell(s["datapath"][h]["passes_per_packet"].get("median"), 2)
                           for h in HOSTS)
        cycles = ", ".join(_cell(s["datapath"][h]["cycles_per_packet"].get("median"), 0)
                           for h in HOSTS)
        lines.append(
            f"| {case.label}: {case.source[0]} → {case.destination[0]} "
            f"| {fmt(s['gbps'], '', 3)} | {fmt(s['retransmits'], '', 0)} "
            f"| {_cell(s['rtt_ms']['p50'])} | {_cell(s['rtt_ms']['p99'])} "
            f"(lost {s['rtt_ms']['lost']}) | {passes} | {cycles} |")
    lines += ["", "| ratio default / off | value | target |", "|---|---|---|",
              f"| TCP throughput (`sg_tcp_default_over_off`) "
              f"| {_cell(found['sg_tcp_default_over_off'])} | ≥ {TARGET_RATIO} |",
              f"| RTT p50 (`sg_rtt_p50_default_over_off`) "
              f"| {_cell(found['sg_rtt_p50_default_over_off'])} | — (1.0: no cost) |",
              f"| RTT p99 (`sg_rtt_p99_default_over_off`) "
              f"| {_cell(found['sg_rtt_p99_default_over_off'])} | — |"]
    return lines


# --- the lab -------------------------------------------------------------------------------


def wait_until(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


class SgBench:
    """The lab's two VM pairs and the measurements on them."""

    def __init__(self, bench: BenchLab, args: argparse.Namespace):
        self.bench = bench
        self.args = args

    def build(self) -> None:
        """Add the four VMs; the default pair keeps only the project's default group."""
        for case in CASES:
            security = LAB_VM if case.port_security else VmSecurity(port_security=False)
            for name, network, host in (case.source, case.destination):
                if name not in self.bench.record.vms:
                    self.bench.lab.vm_add(name, network, host, security)
        with self.bench.lab.client() as client:
            default = find_group(client, DEFAULT_GROUP)
            for case in CASES:
                for name, _network, _host in (case.source, case.destination):
                    port_id = self.bench.record.vms[name].port_id
                    body = ({"security_groups": [default]} if case.port_security
                            else {"security_groups": [], "port_security_enabled": False})
                    client.update("ports", "port", port_id, body)
            wait_until(lambda: self._in_sync(client), "every agent to apply the groups", 30)
        for case in CASES:
            self._wait_reachable(case)

    @staticmethod
    def _in_sync(client: Any) -> bool:
        hosts = client.get("/dvr/v1/topology")["hosts"]
        return all(h["in_sync"] for h in hosts if h["registered"])

    def _ip(self, vm: str) -> str:
        return self.bench.record.vms[vm].ip_address

    def _wait_reachable(self, case: Case) -> None:
        source, destination = case.source[0], self._ip(case.destination[0])
        wait_until(lambda: run_in(self.bench, source, ["ping", "-c", "1", "-W", "1",
                                                        destination], check=False
                                  ).returncode == 0,
                   f"{source} to reach {case.destination[0]}", 30)

    def ping(self, case: Case) -> tuple[list[float], int]:
        """A warm-up, then the ping train: its RTTs (ms) and how many probes were lost."""
        source, destination = case.source[0], self._ip(case.destination[0])
        run_in(self.bench, source, ["ping", "-c", "5", "-i", "0.05", "-W", "1", destination],
               check=False)
        out = run_in(self.bench, source, ["ping", "-n", "-c", str(self.args.pings), "-i",
                                          str(PING_INTERVAL_S), "-W", "1", destination],
                     timeout=self.args.pings * PING_INTERVAL_S + 30, check=False).stdout
        rtts = [float(t) for t in re.findall(r"time=([0-9.]+) ms", out)]
        return rtts, self.args.pings - len(rtts)

    def _appctl(self, host: str, *argv: str) -> str:
        """``ovs-appctl`` on a host ("" when it fails: the counters are a diagnosis)."""
        result = self.bench.host_run(host, ["ovs-appctl", *argv], check=False)
        if result.returncode != 0:
            print(f"  ({host}: ovs-appctl {' '.join(argv)}: {result.stderr.strip()})")
            return ""
        return result.stdout

    def one_case(self, case: Case) -> dict[str, Any]:
        rtts, lost = self.ping(case)
        for host in HOSTS:
            self._appctl(host, "dpif-netdev/pmd-stats-clear")
        throughput = iperf3(self.bench, case.source[0], case.destination[0],
                            self._ip(case.destination[0]), case.iperf_port, self.args.seconds)
        datapath = {host: per_packet(pmd_counters(self._appctl(host,
                                                               "dpif-netdev/pmd-stats-show")))
                    for host in HOSTS}
        return {"rtts_ms": rtts, "pings_lost": lost, **throughput, "datapath": datapath}


# --- entry points --------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="rounds; each measures both cases")
    p.add_argument("--seconds", type=int, default=5, help="iperf3 -t")
    p.add_argument("--pings", type=int, default=200, help="probes per ping train")
    p.add_argument("--name", default="benchsg", help="lab name (its own lab)")
    p.add_argument("--api-port", type=int, default=19871)
    p.add_argument("--keep-lab", action="store_true")
    p.add_argument("--wait-idle", type=float, metavar="LOAD",
                   help="first wait (up to --wait-max s) for the 1-min load average < LOAD")
    p.add_argument("--wait-max", type=float, default=300.0)
    p.add_argument("--write", action="store_true",
                   help=f"store the results under '{RESULTS_KEY}' in {RESULTS_JSON.name}")
    args = p.parse_args(argv)
    if not (1 <= args.rounds <= 10 and 1 <= args.seconds <= 30 and 20 <= args.pings <= 1000
            and 0 <= args.wait_max <= 900):
        p.error("--rounds 1..10, --seconds 1..30, --pings 20..1000, --wait-max 0..900")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns its results (ratios, per-case statistics, per-round raw
    figures without the RTT samples, machine and load, a markdown ``table``)."""
    args = parse(argv)
    runs: dict[str, list[dict[str, Any]]] = {case.key: [] for case in CASES}
    with BenchLab(args.name, args.api_port, keep=args.keep_lab) as bench:
        runner = SgBench(bench, args)
        runner.build()
        print(f"waiting for a quieter machine: {wait_for_quiet(args.wait_idle, args.wait_max)}",
              flush=True)
        before = conditions(args.name)
        for number in range(args.rounds):
            order = CASES if number % 2 == 0 else CASES[::-1]
            for case in order:
                run = runner.one_case(case)
                runs[case.key].append(run)
                passes = ", ".join(_cell(run["datapath"][h]["passes_per_packet"], 2)
                                   for h in HOSTS)
                print(f"round {number + 1} {case.key:>7}: {run['sent_gbps']:.3f} Gbit/s "
                      f"retr={run['retransmits']:.0f} "
                      f"rtt_p50={_cell(percentile(run['rtts_ms'], 50))} ms "
                      f"lost={run['pings_lost']} passes/packet={passes}", flush=True)
        after = conditions(args.name)
    stats = {case.key: case_stats(runs[case.key]) for case in CASES}
    found = ratios(stats)
    met = found["sg_tcp_default_over_off"] is not None and (
        found["sg_tcp_default_over_off"] >= TARGET_RATIO)
    result = {
        **found,
        "targets": {"sg_tcp_default_over_off": {"target": f">= {TARGET_RATIO}", "met": met}},
        "cases": {case.key: {"label": case.label, "source": case.source[0],
                             "destination": case.destination[0], **stats[case.key]}
                  for case in CASES},
        "rounds": {key: [{k: v for k, v in run.items() if k != "rtts_ms"} for run in found_runs]
                   for key, found_runs in runs.items()},
        "args": {k: v for k, v in vars(args).items() if k != "write"},
        "machine": machine(), "before": before, "after": after,
        "table": table(stats, found),
    }
    print("\n".join(["", *result["table"]]), flush=True)
    if args.write:
        write_results(result)
    return result


def commit() -> str:
    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *argv], text=True,
                              capture_output=True, check=False).stdout.strip()
    dirty = " (uncommitted changes)" if git("status", "--porcelain") else ""
    return git("rev-parse", "--short", "HEAD") + dirty


def write_results(result: dict[str, Any]) -> None:
    doc = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    doc[RESULTS_KEY] = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                        "command": shlex.join([sys.executable, *sys.argv]),
                        "commit": commit(), **result}
    RESULTS_JSON.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"stored under '{RESULTS_KEY}' in {RESULTS_JSON}", flush=True)


if __name__ == "__main__":
    main()
    sys.exit(0)
