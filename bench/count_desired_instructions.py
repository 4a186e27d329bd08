"""One process for counting the instructions (or CPU time) of a full desired-state computation.

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
``--east-west`` passes ``DesiredConfig(east_west=...)`` (trees from before that option
always built the ``namespace`` design).  ``--cold`` leaves out the warm-up (``--computes 1
--cold``: a process's first computation, with nothing cached).  ``--cpu`` prints the CPU
time per computation of the ``--computes`` runs and the collector's share
(``gc.callbacks``), for comparing trees in interleaved runs without valgrind:

    for round in 1 2 3; do for gc in default agent; do
      .venv/bin/python bench/count_desired_instructions.py --src ../old/src --gc $gc \\
          --computes 10 --cpu
      .venv/bin/python bench/count_desired_instructions.py --gc $gc --computes 10 --cpu \\
          --east-west namespace
    done; done
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

AGENT_YOUNG_THRESHOLD = 10_000  # dvr.gc_tuning.GC_YOUNG_THRESHOLD (older trees lack it)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", type=Path, default=Path(__file__).parent.parent / "src")
    parser.add_argument("--computes", type=int, default=1)
    parser.add_argument("--gc", choices=("default", "agent", "off"), default="default")
    parser.add_argument("--east-west", choices=("namespace", "openflow"))
    parser.add_argument("--cpu", action="store_true",
                        help="print CPU time per computation and the collector's share")
    parser.add_argument("--cold", action="store_true",
                        help="no warm-up: the first of the --computes is the process's first")
    args = parser.parse_args()
    sys.path[:0] = [str(args.src), str(Path(__file__).parent)]
    import bench_desired

    from dvr.agent.desired import HostInputs, compute_desired_state
    from dvr.agent.desired.config import DesiredConfig

    config = DesiredConfig() if args.east_west is None else DesiredConfig(
        east_west=args.east_west)

    if args.gc == "agent":
        gc.collect()
        gc.freeze()
        gc.set_threshold(AGENT_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    view, plugged = bench_desired.build_view(200, 2, 5, 1000, 1)
    inputs = HostInputs(plugged=plugged)
    if not args.cold:
        compute_desired_state(view, inputs, config)
    if args.gc == "off":
        gc.disable()
    collector = CollectorClock()
    started = time.process_time()
    for _ in range(args.computes):
        state = compute_desired_state(view, inputs, config)
    if args.cpu and args.computes:
        elapsed = time.process_time() - started
        flows = sum(len(b.flows) for b in state.bridges)
        label = f"{args.src} gc={args.gc}{' cold' if args.cold else ''}"
        print(f"{label}: {elapsed / args.computes * 1000:.1f} ms per compute "
              f"(collector {collector.seconds / args.computes * 1000:.1f} ms, "
              f"{collector.full / args.computes:.1f} full collections), {flows} flows, "
              f"load average {os.getloadavg()[0]:.2f}")


class CollectorClock:
    """CPU time the cyclic collector spends from now on, and its full collections."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._started = 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started
            self.full += info["generation"] == 2


if __name__ == "__main__":
    main()
