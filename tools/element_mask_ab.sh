#!/usr/bin/env bash
# A/B of the element-mask code against the tree in .oldwt (its bsk_cupy/, kernels_cu/ and precompiled
# .bskcache): tools/element_mask_ab.py from this tree on each package, alternated ROUNDS times (default 2:
# old, new, old, new) on one warm GPU. Steps (default: tests ab): tests (the attention and kernel-variant
# GPU tests), ab. Logs in $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache [ROUNDS=2] tools/element_mask_ab.sh [tests] [ab]
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
for step in ${*:-tests ab}; do
    case $step in
        tests) attention_tests 200 ;;
        ab)
            for round in $(seq ${ROUNDS:-2}); do
                for tree in .oldwt .; do
                    log="$out/element_mask_$([ $tree = . ] && echo new || echo old)$round.log"
                    PYTHONPATH=$tree BSK_CACHE_DIR=$tree/.bskcache timeout 150 python tools/element_mask_ab.py > "$log" 2>&1
                    echo "== $tree, round $round (exit $?)"; cat "$log"
                done
            done ;;
        *) echo "unknown step $step"; exit 2 ;;
    esac
done
