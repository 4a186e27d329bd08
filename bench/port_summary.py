"""Merge the JSON files of several bench_port.py runs with the same label and print one
table (median, min–max, n over all their runs), grouped by label (and by mode, for runs
made with ``--modes``).

    .venv/bin/python bench/port_summary.py /tmp/port-*.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

from bench_port import NUMERIC
from benchlib import fmt, summary

PHASES = ("start", "wait_ms", "fetch_ms", "inputs_ms", "compute_ms", "observe_ms",
          "observe_switch_ms", "observe_kernel_ms", "observe_nat_ms", "plan_ms",
          "apply_ms", "apply_ovsdb_ms", "apply_flows_ms", "apply_linux_ms", "ms")

ROWS = ("a_flow_from_t0_ms", "a_flow_from_plug_ms", "b_neighbor_from_t0_ms",
        "c_first_reply_from_t0_ms", "c_first_reply_from_plug_ms")


def reconcile_fields(line: str) -> dict[str, float]:
    """``start=+46ms end=+372ms k=v ...`` (bench_port's summary of an agent log line)."""
    fields = {}
    for token in line.split():
        key, _, value = token.partition("=")
        try:
            fields[key] = float(value.removeprefix("+").removesuffix("ms"))
        except ValueError:
            continue
    return fields


def breakdown(runs: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Per phase, the values of the reconcile that did the work: on the port's host the
    first one that added flows (the port's table-1 flow), on the other host the first one
    that set a neighbor."""
    found: dict[str, dict[str, list[float]]] = {"host (a)": defaultdict(list),
                                                "other (b)": defaultdict(list)}
    for run in runs:
        for side, lines, key in (("host (a)", run["reconciles_host"], "flows_added"),
                                 ("other (b)", run["reconciles_other"], "neighbors_set")):
            for line in lines:
                fields = reconcile_fields(line)
                if fields.get(key):
                    for phase in PHASES:
                        if phase in fields:
                            found[side][phase].append(fields[phase])
                    break
    return found


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--all", action="store_true", help="every measurement, not just a/b/c")
    p.add_argument("--breakdown", action="store_true",
                   help="also the agents' phases (ms, median) of the reconcile that did it")
    args = p.parse_args()
    runs: dict[str, list[dict]] = defaultdict(list)
    loads: dict[str, list[str]] = defaultdict(list)
    for name in args.files:
        with open(name) as f:
            data = json.load(f)
        label = data.get("label") or name
        for run in data["runs"]:
            runs[" ".join(filter(None, (label, run.get("mode"))))].append(run)
        for group in {" ".join(filter(None, (label, r.get("mode")))) for r in data["runs"]}:
            loads[group] += [data["before"]["loadavg"], data["after"]["loadavg"]]
    labels = sorted(runs)
    rows = NUMERIC if args.all else ROWS
    print("| measurement | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for key in rows:
        cells = [fmt(summary([r[key] for r in runs[label] if isinstance(r.get(key), float)]),
                     " ms", 0) for label in labels]
        print(f"| {key} | " + " | ".join(cells) + " |")
    print("| load averages (1/5/15 min) seen | "
          + " | ".join("; ".join(loads[label]) for label in labels) + " |")
    if args.breakdown:
        found = {label: breakdown(runs[label]) for label in labels}
        columns = [(label, side) for label in labels for side in ("host (a)", "other (b)")]
        print("\n| phase (median ms) | " + " | ".join(f"{lb} {sd}" for lb, sd in columns) + " |")
        print("|---|" + "---|" * len(columns))
        for phase in PHASES:
            cells = []
            for label, side in columns:
                values = found[label][side].get(phase, [])
                cells.append(f"{summary(values)['median']:.0f}" if values else "—")
            name = "start after t0" if phase == "start" else phase
            print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
