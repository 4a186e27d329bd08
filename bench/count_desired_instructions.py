"""One process for counting the instructions of a full desired-state computation.

Builds the default ``bench_desired`` view, computes the state once (warm-up: imports,
caches), then ``--computes`` more times.  Run it under ``valgrind --tool=callgrind`` with
``PYTHONHASHSEED=0`` once with ``--computes 1`` and once with ``--computes 4``: the
difference / 3 is the cost of one full computation, whatever the machine's load.
``--src`` picks the tree whose ``dvr`` is measured (another checkout's ``src``), so two
versions can be compared on the same view-building code:

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/count_desired_instructions.py --src ../old/src --computes 4

``--gc`` chooses the collector: ``default`` (CPython's thresholds), ``agent`` (what
``dvr.gc_tuning`` does in dvr-agent, applied before the view is built), ``off``.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

AGENT_YOUNG_THRESHOLD = 10_000  # dvr.gc_tuning.GC_YOUNG_THRESHOLD (older trees lack it)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", type=Path, default=Path(__file__).parent.parent / "src")
    parser.add_argument("--computes", type=int, default=1)
    parser.add_argument("--gc", choices=("default", "agent", "off"), default="default")
    args = parser.parse_args()
    sys.path[:0] = [str(args.src), str(Path(__file__).parent)]
    import bench_desired

    from dvr.agent.desired import HostInputs, compute_desired_state

    if args.gc == "agent":
        gc.collect()
        gc.freeze()
        gc.set_threshold(AGENT_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    view, plugged = bench_desired.build_view(200, 2, 5, 1000, 1)
    inputs = HostInputs(plugged=plugged)
    compute_desired_state(view, inputs)
    if args.gc == "off":
        gc.disable()
    for _ in range(args.computes):
        compute_desired_state(view, inputs)


if __name__ == "__main__":
    main()
