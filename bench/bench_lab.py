"""`dvr lab up` / `dvr lab down` wall time (issue 4: up < 30 s), with a breakdown by phase.

Each run: ``dvr lab up --name NAME --api-port PORT`` (the default topology: 3 hosts, 2
tenant networks + external, 1 distributed router, 3 VMs, ports ACTIVE), one routed
cross-host ping (outside the timing, to prove the lab works), then ``dvr lab down``.  The
phases come from the time each progress line of `up` arrives.  A lab of our own name is
always taken down at the end, also after a failure.

    sudo .venv/bin/python bench/bench_lab.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from benchlib import DVR, conditions, fmt, lab_down, machine, run_dvr, summary

# (phase name, the progress text that starts it)
PHASES = (
    ("server", "starting dvr-server"),
    ("fabric+hosts (OVS)", "building the underlay fabric"),
    ("agents register", "starting dvr-agent on"),
    ("cloud objects (API)", "creating network"),
    ("VMs + ports ACTIVE", "creating VM"),
    ("end", "is up in"),
)


def timed_up(name: str, api_port: int, computes: int, timeout: float) -> dict[str, float]:
    started = time.monotonic()
    marks: dict[str, float] = {}
    argv = [DVR, "lab", "up", "--name", name, "--api-port", str(api_port),
            "--computes", str(computes)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    deadline = started + timeout
    for line in proc.stdout:  # `up` prints a line per step, then the status table
        lines.append(line.rstrip())
        now = time.monotonic()
        for phase, text in PHASES:
            if text in line and phase not in marks:
                marks[phase] = now - started
        if now > deadline:
            proc.kill()
            break
    code = proc.wait(timeout=30)
    total = time.monotonic() - started
    if code != 0 or "end" not in marks:
        raise RuntimeError(f"`dvr lab up` failed ({code}):\n" + "\n".join(lines[-20:]))
    result = {"up_s": marks["end"], "up_with_status_s": total}
    names = [p for p, _ in PHASES]
    for here, after in zip(names, names[1:], strict=False):
        if here in marks and after in marks:
            result[f"phase {here}"] = marks[after] - marks[here]
    return result


def one_run(args: argparse.Namespace) -> dict[str, float]:
    result = timed_up(args.name, args.api_port, args.computes, args.timeout)
    ping = run_dvr(["lab", "ping", "--name", args.name, "--api-port", str(args.api_port),
                    "blue-1", "orange-1", "-c", "1"])
    result["ping_ok"] = float(ping.returncode == 0)
    started = time.monotonic()
    down = run_dvr(["lab", "down", "--name", args.name, "--api-port", str(args.api_port)])
    result["down_s"] = time.monotonic() - started
    if down.returncode != 0:
        raise RuntimeError(f"`dvr lab down` failed: {down.stderr}")
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--name", default="benchup", help="lab name (must not be in use)")
    p.add_argument("--api-port", type=int, default=19821)
    p.add_argument("--computes", type=int, default=2)
    p.add_argument("--timeout", type=float, default=120.0, help="per `up`, seconds")
    p.add_argument("--pause", type=float, default=3.0, help="seconds between runs")
    p.add_argument("--json", help="also write the raw results here")
    args = p.parse_args()
    if not 1 <= args.runs <= 20:
        p.error("--runs must be 1..20")

    before = conditions(args.name)
    runs: list[dict[str, float]] = []
    try:
        lab_down(args.name, args.api_port)  # a leftover of an interrupted run
        for i in range(args.runs):
            result = one_run(args)
            runs.append(result)
            print(f"run {i + 1}: " + " ".join(f"{k}={v:.2f}" for k, v in result.items()),
                  flush=True)
            time.sleep(args.pause)
    finally:
        lab_down(args.name, args.api_port)
    after = conditions(args.name)

    keys = list(runs[0])
    stats = {k: summary([r[k] for r in runs if k in r]) for k in keys}
    print(f"\nmachine: {json.dumps(machine())}")
    print(f"before: {json.dumps(before)}\nafter:  {json.dumps(after)}\n")
    print("| measurement | median (min–max, n) |\n|---|---|")
    for k in keys:
        if k != "ping_ok":
            print(f"| {k} | {fmt(stats[k], ' s', 2)} |")
    print(f"| routed ping after up | {int(sum(r['ping_ok'] for r in runs))}/{len(runs)} ok |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "before": before, "after": after, "runs": runs,
                       "stats": stats}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
