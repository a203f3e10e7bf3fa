#!/usr/bin/env bash
# Host-time A/B of the sparse calls between this tree and an older copy of bsk_cupy/ + kernels_cu/ in DIR
# (e.g. .oldwt, from `git archive OLD bsk_cupy kernels_cu`), on one machine, alternated twice (old, new, old,
# new): tools/sparse_host_overhead.py --calls-only from this tree, importing each tree's package.
#   OUT=/tmp/out tools/host_ab_run.sh DIR
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?set OUT to the log directory}
other=$1
export PYTHONUNBUFFERED=1 BSK_CACHE_DIR=${BSK_CACHE_DIR:-$PWD/.bskcache}
for round in 1 2; do
    PYTHONPATH=$other timeout 150 python tools/sparse_host_overhead.py --calls-only > "$out/host_old$round.log" 2>&1
    echo "== $other, round $round"; tail -15 "$out/host_old$round.log"
    PYTHONPATH=. timeout 150 python tools/sparse_host_overhead.py --calls-only > "$out/host_new$round.log" 2>&1
    echo "== this tree, round $round"; tail -15 "$out/host_new$round.log"
done
