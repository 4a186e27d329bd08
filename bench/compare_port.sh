#!/bin/sh
# Before/after of the new-port reconcile (bench_port.py), interleaved so both builds see
# the same machine load.  "before" runs the agent (and server) of commit BASE, extracted
# with `git archive` into a scratch directory and put first on PYTHONPATH; "after" runs
# the working tree.  Each bench_port.py call brings up and takes down a lab of its own.
#   sudo bench/compare_port.sh [BASE_COMMIT] [ROUNDS] [RUNS_PER_ROUND]
set -eu
BASE=${1:-f35659b}
ROUNDS=${2:-2}
RUNS=${3:-6}
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mktemp -d /tmp/dvr-bench-port.XXXXXX)
mkdir -p "$OUT/base"
git -C "$REPO" archive "$BASE" src | tar -x -C "$OUT/base"
cd "$REPO"
round=1
while [ "$round" -le "$ROUNDS" ]; do
  for delay in 0 0.5; do
    PYTHONPATH="$OUT/base/src" .venv/bin/python bench/bench_port.py --runs "$RUNS" \
      --plug-delay "$delay" --name bpbase --api-port 19841 --label "before plug-delay=$delay" \
      --json "$OUT/before-$delay-$round.json" > "$OUT/before-$delay-$round.txt" 2>&1
    .venv/bin/python bench/bench_port.py --runs "$RUNS" \
      --plug-delay "$delay" --name bpnew --api-port 19842 --label "after plug-delay=$delay" \
      --json "$OUT/after-$delay-$round.json" > "$OUT/after-$delay-$round.txt" 2>&1
  done
  round=$((round + 1))
done
.venv/bin/python bench/port_summary.py "$OUT"/*.json
rm -rf "$OUT/base"
echo "raw results: $OUT"
