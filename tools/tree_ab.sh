#!/usr/bin/env bash
# A/B of this tree against the tree in .oldwt (its bsk_cupy/, kernels_cu/, tools/ and precompiled
# .bskcache) on the dispatcher's own plans: tools/dispatched_ab.py (the dispatched spec alone) from each tree
# in turn, ROUNDS times (default 3: old, new, old, new, old, new), each process timing every shape
# --rounds 3 times by CUDA-graph replay; then the mean per shape and tree over all of it, and the change.
# For kernel changes that no KernelSpec field switches (else dispatched_ab.py's --variant in one process).
#   OUT=/tmp/out [ROUNDS=3] tools/tree_ab.sh B,H,S,D[,DENSITY] ...
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?set OUT to the log directory}
export PYTHONUNBUFFERED=1
for round in $(seq "${ROUNDS:-3}"); do
    for tree in .oldwt .; do
        name=$([ "$tree" = . ] && echo new || echo old)
        (cd "$tree" && PYTHONPATH=. BSK_CACHE_DIR=$PWD/.bskcache timeout 200 python tools/dispatched_ab.py \
            --rounds 3 --variant - "$@" > "$out/tree_ab_$name$round.log" 2>&1)
        echo "== $name, round $round (exit $?)"; tail -n $(($# + 1)) "$out/tree_ab_$name$round.log"
    done
done
python - "$out" <<'PY'
import re, sys
from collections import defaultdict
from pathlib import Path
times = defaultdict(lambda: defaultdict(list))
for log in sorted(Path(sys.argv[1]).glob("tree_ab_*.log")):
    tree = "new" if log.name.startswith("tree_ab_new") else "old"
    for m in re.finditer(r"^round \d+ (.+?): ([\d.]+)$", log.read_text(), re.M):
        times[m.group(1)][tree].append(float(m.group(2)))
print(f"\n{'shape':<28}{'old us':>10}{'new us':>10}{'change':>9}  (means of every timing, old / new counts)")
for shape, t in times.items():
    old, new = (sum(t[k]) / len(t[k]) for k in ("old", "new"))
    print(f"{shape:<28}{old:>10.1f}{new:>10.1f}{(new / old - 1) * 100:>+8.1f}%  ({len(t['old'])} / {len(t['new'])})")
PY
