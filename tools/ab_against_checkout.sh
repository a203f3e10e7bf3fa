#!/usr/bin/env bash
# A/B this tree's kernels against another commit's on one warm GPU: benchmarks/compare_variants.py from
# each tree, alternated twice (old, new, old, new) on the same shapes, cuDNN timed in every process.
# The other commit is a copy of its bsk_cupy/, kernels_cu/ and benchmarks/ in an ignored folder of this
# checkout (e.g. .oldwt, with its precompiled cache in .oldwt/.bskcache), carried to the device.
# CV_ARGS: further compare_variants arguments for both trees (e.g. "--density 0.1").
#   OUT=/tmp/out [CV_ARGS=...] tools/ab_against_checkout.sh DIR "OLD_VARIANTS" "NEW_VARIANTS" B,H,SQ,SK,D,CAUSAL ...
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?set OUT to the log directory}
other=$1 old_variants=$2 new_variants=$3; shift 3
configs=()
for c in "$@"; do configs+=(--config "$c"); done
export PYTHONUNBUFFERED=1
for round in 1 2; do
    (cd "$other" && PYTHONPATH=. BSK_CACHE_DIR=$PWD/.bskcache python benchmarks/compare_variants.py \
        $old_variants ${CV_ARGS:-} "${configs[@]}" > "$out/old$round.log" 2>&1)
    echo "== $other, round $round"; tail -n $(( $# + 1 )) "$out/old$round.log"
    PYTHONPATH=. BSK_CACHE_DIR=$PWD/.bskcache python benchmarks/compare_variants.py \
        $new_variants ${CV_ARGS:-} "${configs[@]}" > "$out/new$round.log" 2>&1
    echo "== this tree, round $round"; tail -n $(( $# + 1 )) "$out/new$round.log"
done
