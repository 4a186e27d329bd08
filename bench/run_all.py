"""`make bench`: run the benchmark suites, merge their results into bench/results.json and
append a dated section to bench/RESULTS.md.

Every suite is a module of this directory with ``main(argv) -> dict``; ``SUITES`` is the
one list of them (a suite whose module is absent is skipped, and said so).  Its result
is stored under its key in results.json, with the date, commit, command, machine and
load average before and after; the keys of every other suite are kept.  If the result
has a ``table`` (markdown lines), RESULTS.md shows it, then its ``targets``.

    sudo make bench                                  # the default: about 10 minutes
    sudo make bench BENCH_ARGS="--runs 5 --seconds 10"
    sudo .venv/bin/python bench/run_all.py --suite east_west --vm-plumbing veth
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchlib import REPO, load_average, machine

BENCH = Path(__file__).resolve().parent
RESULTS_JSON = BENCH / "results.json"
RESULTS_MD = BENCH / "RESULTS.md"


@dataclass(frozen=True)
class Suite:
    key: str  # its key in results.json
    module: str  # bench/<module>.py, with main(argv) -> dict
    argv: Callable[[argparse.Namespace], list[str]]  # its arguments, from run_all's


def _labs_argv(args: argparse.Namespace) -> list[str]:
    """How both labs (dvr's and OVN's) are built, for the suites that compare them."""
    return ["--vm-plumbing", args.vm_plumbing,
            "--ovn-firewall" if args.ovn_firewall else "--no-ovn-firewall"]


def _dataplane_argv(args: argparse.Namespace) -> list[str]:
    return ["--runs", str(args.runs), "--seconds", str(args.seconds), "--pings",
            str(args.pings), *_labs_argv(args)]


def _port_argv(args: argparse.Namespace) -> list[str]:
    return ["--runs", str(args.runs), *_labs_argv(args)]


SUITES = (
    Suite("east_west", "bench_dataplane", _dataplane_argv),
    Suite("port_to_ping", "bench_port_pair", _port_argv),
    Suite("sg_throughput", "bench_sg_throughput", lambda args: []),
)


def commit() -> str:
    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *argv], text=True,
                              capture_output=True).stdout.strip()
    return git("rev-parse", "--short", "HEAD") + (" (uncommitted changes)"
                                                  if git("status", "--porcelain") else "")


def ovn_version() -> str:
    out = subprocess.run(["ovn-nbctl", "--version"], text=True, capture_output=True,
                         check=False).stdout
    return out.splitlines()[0] if out else "?"


def memory_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return 0.0


def merge_json(path: Path, key: str, value: dict) -> None:
    """Set ``key`` in the JSON object at ``path``, keeping every other key."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)


def without_samples(value: object) -> object:
    """The result as stored: per-probe RTT lists dropped (the statistics stay)."""
    if isinstance(value, dict):
        return {k: without_samples(v) for k, v in value.items() if k != "rtts_ms"}
    if isinstance(value, list):
        return [without_samples(v) for v in value]
    return value


def section(date: str, command: str, context: dict, results: dict[str, dict]) -> str:
    m = context["machine"]
    lines = [
        "", f"## `make bench` on {date}", "",
        f"Command: `{command}` (commit {context['commit']}).",
        f"Machine: {m['cpus']} CPUs (`nproc`), {context['memory_gb']} GB memory, {m['cpu']}, "
        f"Linux {m['kernel']}, {m['ovs']}, {context['ovn']}.",
        f"Load average before: {context['load_before']}; after: {context['load_after']}.", ""]
    for key, result in results.items():
        lines += [f"### {key}", ""]
        if "error" in result:
            lines += [f"Failed: `{result['error']}`", ""]
            continue
        lines += [*result.get("table", []), ""]
        targets = result.get("targets", {})
        for name, target in targets.items():
            value = result.get(name)
            shown = json.dumps(value) if not isinstance(value, float) else f"{value:.3f}"
            lines.append(f"- `{name}` = {shown} (target {target['target']}: "
                         f"{'met' if target['met'] else 'MISSED'})")
        if targets:
            lines.append("")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", action="append", choices=[s.key for s in SUITES],
                   help="run only this suite (repeatable; default: all)")
    p.add_argument("--runs", type=int, default=3,
                   help="repetitions (east_west), runs of each system (port_to_ping)")
    p.add_argument("--seconds", type=int, default=5, help="iperf3 -t (east_west)")
    p.add_argument("--pings", type=int, default=100, help="idle ping train (east_west)")
    p.add_argument("--vm-plumbing", choices=("tap", "veth"), default="tap",
                   help="both labs' VM NICs and host uplinks (east_west, port_to_ping)")
    p.add_argument("--ovn-firewall", action=argparse.BooleanOptionalAction, default=True,
                   help="OVN VMs get stateful ACLs like dvr's security groups, as dvr's lab "
                        "VMs are in (east_west, port_to_ping; default on)")
    p.add_argument("--no-write", action="store_true",
                   help="print, but change neither results.json nor RESULTS.md")
    return p.parse_args(argv)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds every lab's teardown


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    command = os.environ.get("BENCH_COMMAND") or shlex.join([sys.executable, *sys.argv])
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    context = {"commit": commit(), "machine": machine(), "memory_gb": memory_gb(),
               "ovn": ovn_version(), "load_before": load_average()}
    suites = [s for s in SUITES if not args.suite or s.key in args.suite]
    results: dict[str, dict] = {}
    for number, suite in enumerate(suites, 1):
        if not (BENCH / f"{suite.module}.py").exists():
            print(f"[{number}/{len(suites)}] {suite.key}: bench/{suite.module}.py is absent, "
                  f"skipped", flush=True)
            continue
        suite_argv = suite.argv(args)
        print(f"[{number}/{len(suites)}] {suite.key}: bench/{suite.module}.py "
              f"{shlex.join(suite_argv)}", flush=True)
        started = time.monotonic()
        try:
            result = importlib.import_module(suite.module).main(suite_argv)
        except Exception as exc:  # noqa: BLE001 - one suite's failure is reported, not fatal
            print(f"[{number}/{len(suites)}] {suite.key} FAILED: {exc!r}", flush=True)
            result = {"error": repr(exc)}
        print(f"[{number}/{len(suites)}] {suite.key} done in "
              f"{time.monotonic() - started:.0f}s", flush=True)
        results[suite.key] = result
    context["load_after"] = load_average()
    text = section(date, command, context, results)
    print(text)
    # a failed suite leaves its earlier results in place (the failure is printed above)
    measured = {key: result for key, result in results.items() if "error" not in result}
    if measured and not args.no_write:
        for key, result in measured.items():
            merge_json(RESULTS_JSON, key, {"date": date, "command": command, **context,
                                           **without_samples(result)})
        with RESULTS_MD.open("a") as out:
            out.write(text + "\n")
        print(f"\nwrote {RESULTS_JSON.relative_to(REPO)} ({', '.join(measured)}) and "
              f"appended to {RESULTS_MD.relative_to(REPO)}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
