"""Port -> first ping: dvr against OVN 23.03 in ONE run (issue 14; ``make bench``'s
``port_to_ping``).

Two labs on this machine, up at the same time (dvr's own lab, and ``ovnlab.OvnLab``: same
fabric, hosts, userspace OVS and VM plumbing, one logical router; with ``--ovn-firewall``,
the default, its VMs and the new port in a port group with stateful ACLs, as dvr's new
port is in the default security group).  ``--runs`` repetitions, each one run of either
system, the order swapped every repetition.  A run is the same on both sides
(``portprobe``): the guest prepared before t0 (namespace, veth NIC), the probe ``ping -D -i
0.015`` started in ``blue-1`` on compute-1; t0 = the northbound write (dvr: POST
/v2.0/ports bound to compute-2, bench_port.py; OVN: ``ovn-nbctl lsp-add`` +
``lsp-set-addresses``, bench_port_ovn.py), then the VIF plugged into compute-2's br-int with
``external_ids:iface-id``; measured until the first echo reply, routed; then the port is
removed and the next run waits until the removal has reached the other host.

Results: ``port_to_ping_p50_s``/``_p95_s`` (dvr), ``port_to_ping_ovn_p50_s``/``_p95_s``,
``port_to_ping_dvr_over_ovn`` = dvr p95 / OVN p95 (nearest-rank percentiles over the runs
with a reply; lost replies are counted apart).

    sudo .venv/bin/python bench/bench_port_pair.py --runs 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from bench_port import PortBench
from bench_port_ovn import OvnPortBench
from benchlab import BenchLab
from benchlib import conditions, wait_for_quiet
from ovnlab import OvnLab
from portprobe import port_to_ping

from dvr.lab.vm import DEFAULT_PLUMBING, VmPlumbing

SYSTEMS = ("dvr", "ovn")
WRITE = {"dvr": ("api_create_ms", "POST /v2.0/ports"),
         "ovn": ("nb_write_ms", "ovn-nbctl lsp-add + lsp-set-addresses")}
P95_TARGET_S = 0.06
RATIO_TARGET = 1.0


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def headline(runs: dict[str, list[dict]]) -> dict[str, object]:
    """The issue's keys: each system's p50/p95 (seconds), dvr p95 / OVN p95, lost replies,
    and whether each target is met."""
    dvr, ovn = port_to_ping(runs.get("dvr", [])), port_to_ping(runs.get("ovn", []))
    ratio = None
    if dvr["port_to_ping_p95_s"] is not None and ovn["port_to_ping_p95_s"]:
        ratio = round(dvr["port_to_ping_p95_s"] / ovn["port_to_ping_p95_s"], 3)
    out: dict[str, object] = {
        "port_to_ping_p50_s": _seconds(dvr["port_to_ping_p50_s"]),
        "port_to_ping_p95_s": _seconds(dvr["port_to_ping_p95_s"]),
        "port_to_ping_ovn_p50_s": _seconds(ovn["port_to_ping_p50_s"]),
        "port_to_ping_ovn_p95_s": _seconds(ovn["port_to_ping_p95_s"]),
        "port_to_ping_dvr_over_ovn": ratio,
        "port_to_ping_lost": {"dvr": dvr["lost"], "ovn": ovn["lost"]},
    }
    p95 = out["port_to_ping_p95_s"]
    out["targets"] = {
        "port_to_ping_p95_s": {"target": f"< {P95_TARGET_S}",
                               "met": p95 is not None and p95 < P95_TARGET_S},
        "port_to_ping_dvr_over_ovn": {"target": f"<= {RATIO_TARGET} (dvr p95 / OVN p95)",
                                      "met": ratio is not None and ratio <= RATIO_TARGET},
        "port_to_ping_lost": {"target": "0", "met": dvr["lost"] == 0 and ovn["lost"] == 0},
    }
    return out


def _median_ms(runs: list[dict], key: str) -> str:
    values = [r[key] for r in runs if isinstance(r.get(key), float)]
    return f"{statistics.median(values):.0f} ms" if values else "—"


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.0f} ms"


def table(runs: dict[str, list[dict]], figures: dict[str, object]) -> list[str]:
    """Markdown rows: per system, the port -> first reply percentiles and the medians of
    its parts."""
    lines = ["| system | runs (replies) | port → first reply p50 | p95 | min–max "
             "| northbound write (median) | plug (median) | first reply after the plug "
             "(median) |", "|---|---|---|---|---|---|---|---|"]
    for name in SYSTEMS:
        system_runs = runs.get(name, [])
        if not system_runs:
            continue
        ping = port_to_ping(system_runs)
        replies = [r["c_first_reply_from_t0_ms"] for r in system_runs
                   if isinstance(r.get("c_first_reply_from_t0_ms"), float)]
        spread = f"{min(replies):.0f}–{max(replies):.0f} ms" if replies else "—"
        key, write = WRITE[name]
        lines.append(f"| {name} | {len(system_runs)} ({ping['n']}) "
                     f"| {_ms(ping['port_to_ping_p50_s'])} | {_ms(ping['port_to_ping_p95_s'])} "
                     f"| {spread} | {_median_ms(system_runs, key)} ({write}) "
                     f"| {_median_ms(system_runs, 'plug_ms')} "
                     f"| {_median_ms(system_runs, 'c_first_reply_from_plug_ms')} |")
    dvr = runs.get("dvr", [])
    ratio = figures.get("port_to_ping_dvr_over_ovn")
    slowest = " (fewer than 20 runs: the p95 is the slowest)" if len(dvr) < 20 else ""
    lines += ["", "t0 = the northbound write; p50/p95: nearest rank over the runs with a "
              f"reply{slowest}. `port_to_ping_dvr_over_ovn` = dvr p95 ÷ OVN p95 = "
              f"{'—' if ratio is None else f'{ratio:.3f}'}."]
    if dvr:
        lines.append(f"dvr, medians from t0: the port's br-int flow on compute-2 "
                     f"{_median_ms(dvr, 'a_flow_from_t0_ms')}, its neighbor in compute-1's "
                     f"qrouter namespace {_median_ms(dvr, 'b_neighbor_from_t0_ms')}.")
    return lines


def progress(name: str, number: int, runs: int, result: dict) -> str:
    key, _write = WRITE[name]
    reply = result.get("c_first_reply_from_t0_ms")
    if not isinstance(reply, float):
        return f"run {number}/{runs} {name:>3}: no reply within the wait"
    return (f"run {number}/{runs} {name:>3}: port -> first reply {reply:.0f} ms "
            f"(write {result[key]:.0f} ms, plug {result['plug_ms']:.0f} ms, "
            f"after the plug {result['c_first_reply_from_plug_ms']:.0f} ms, "
            f"icmp_seq {result['first_reply_seq']})")


def stored(result: dict) -> dict:
    """A run as kept in the results: the agents' reconcile lines left out."""
    return {k: v for k, v in result.items() if not k.startswith("reconciles")}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=8, help="runs of each system")
    p.add_argument("--vm-plumbing", type=VmPlumbing, choices=list(VmPlumbing),
                   default=DEFAULT_PLUMBING,
                   help="both labs' VM NICs and host uplinks (the new port is a veth in both)")
    p.add_argument("--ovn-firewall", action=argparse.BooleanOptionalAction, default=True,
                   help="OVN VMs and the new port in a port group with stateful ACLs, like "
                        "dvr's default security group (default on)")
    p.add_argument("--name", default="benchpp", help="the dvr lab's name (its own lab)")
    p.add_argument("--api-port", type=int, default=19861)
    p.add_argument("--ovn-workdir", type=Path, default=Path("/var/lib/dvr-lab-ovn/benchpp"))
    p.add_argument("--ovn-nb-port", type=int, default=16661,
                   help="the OVN lab's NB (and +1 SB) TCP port on 127.0.0.1")
    p.add_argument("--host", default="compute-2", help="where the new port is bound")
    p.add_argument("--network", default="orange", help="the new port's network")
    p.add_argument("--source", default="blue-1", help="the VM that pings (on the other host)")
    p.add_argument("--settle", type=float, default=1.5,
                   help="seconds after dvr's reply for the agents' reconcile lines")
    p.add_argument("--pause", type=float, default=1.0, help="seconds between runs")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--wait-idle", type=float, metavar="LOAD",
                   help="first wait (up to --wait-max s) for the 1-min load average < LOAD")
    p.add_argument("--wait-max", type=float, default=600.0)
    p.set_defaults(plug_delay=0.0)  # bench_port's PortBench: plugged right after the write
    args = p.parse_args(argv)
    if not 1 <= args.runs <= 40:
        p.error("--runs must be 1..40")
    return args


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse(argv)
    say = lambda m: print(f"  {m}", flush=True)  # noqa: E731
    runs: dict[str, list[dict]] = {name: [] for name in SYSTEMS}
    with ExitStack() as labs:  # both labs come down whatever happens, Ctrl-C included
        say(f"dvr lab {args.name!r} ({args.vm_plumbing.value} NICs)")
        bench = labs.enter_context(BenchLab(args.name, args.api_port,
                                            plumbing=args.vm_plumbing))
        say(f"OVN lab in {args.ovn_workdir} ({args.vm_plumbing.value} NICs)")
        ovn = OvnLab(args.name, args.ovn_workdir, args.vm_plumbing, nb_port=args.ovn_nb_port,
                     firewall=args.ovn_firewall, out=lambda m: say(f"ovn: {m}"))
        labs.callback(ovn.down)
        ovn.up()
        dvr_bench = PortBench(bench, args)
        labs.callback(dvr_bench.client.close)
        benches = {"dvr": dvr_bench,
                   "ovn": OvnPortBench(ovn, args.host, args.network, args.source, args.seed)}
        time.sleep(2.0)  # the agents' first reconciles after `up` are done
        say(f"waiting for a quieter machine: {wait_for_quiet(args.wait_idle, args.wait_max)}")
        before = conditions(args.name)
        for run in range(args.runs):
            for name in SYSTEMS if run % 2 == 0 else reversed(SYSTEMS):
                result = benches[name].one_run(run)
                runs[name].append(stored(result))
                say(progress(name, run + 1, args.runs, result))
                time.sleep(args.pause)
        after = conditions(args.name)
    figures = headline(runs)
    return {**figures, "args": {k: str(v) for k, v in vars(args).items()}, "before": before,
            "after": after, "table": table(runs, figures), "runs": runs}


if __name__ == "__main__":
    import json

    result = main(sys.argv[1:])
    print("\n".join(result["table"]))
    print(json.dumps({k: v for k, v in result.items() if k not in ("runs", "table")},
                     indent=1))
