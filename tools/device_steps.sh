# Steps shared by the device-run scripts (sourced, not run): the environment they run under, the whole GPU
# suite on 4 pytest workers, the attention tests alone, compute-sanitizer memcheck, an A/B against the tree
# in .oldwt and variants listed both ways in one tree, each with its own time limit (gpu_suite and
# attention_tests take another as their first argument, attention_tests further pytest arguments after
# it), logs in $out.
export PYTHONPATH=. PYTHONUNBUFFERED=1 BSK_CACHE_DIR=${BSK_CACHE_DIR:-/tmp/bskc} XLA_PYTHON_CLIENT_PREALLOCATE=false
out=${OUT:?set OUT to the log directory}

gpu_suite() {
    timeout "${1:-240}" python -m pytest -m gpu -q -n 4 -rfE -p no:cacheprovider tests/ > "$out/tests.log" 2>&1
    echo "tests: exit $?"; grep -E "^(FAILED|ERROR)" "$out/tests.log" | head -20; tail -1 "$out/tests.log"
}

memcheck() {
    timeout 120 compute-sanitizer --tool memcheck python tools/sanitize_shapes.py > "$out/memcheck.log" 2>&1
    echo "memcheck: exit $?"; grep -c cuGetProcAddress "$out/memcheck.log"; tail -1 "$out/memcheck.log"
}

# The attention and kernel-variant GPU tests alone (what a kernel A/B must pass before its timings count).
attention_tests() {
    timeout "${1:-150}" python -m pytest -m gpu -q -n 4 -rfE -p no:cacheprovider tests/test_attention_gpu.py \
        tests/test_kernel_variants_gpu.py "${@:2}" > "$out/tests.log" 2>&1
    echo "tests: exit $?"; grep -E "^(FAILED|ERROR)" "$out/tests.log" | head -10; tail -1 "$out/tests.log"
}

# ab NAME OLD_VARIANTS NEW_VARIANTS CONFIG...: tools/ab_against_checkout.sh against the tree in .oldwt,
# logged to $out/ab_NAME.log and printed.
ab() {
    local name=$1; shift
    OUT=$out timeout 240 tools/ab_against_checkout.sh .oldwt "$@" > "$out/ab_$name.log" 2>&1
    echo "A/B $name: exit $?"; cat "$out/ab_$name.log"
}

# both_listings LOG LINES "VARIANT ..." ARGS...: benchmarks/compare_variants.py on the variants and then on
# them reversed, each listing in its own process (within one process the first- or last-listed variant can
# read 3-7% apart on the same kernel: RESULTS.md, seventeenth session), appended to $out/LOG.log; prints the
# last LINES lines of the log after each.
both_listings() {
    local log="$out/$1.log" lines=$2 order
    local -a variants=($3) reversed=()
    shift 3
    for ((i = ${#variants[@]} - 1; i >= 0; i--)); do reversed+=("${variants[i]}"); done
    for order in "${variants[*]}" "${reversed[*]}"; do
        timeout 280 python benchmarks/compare_variants.py $order "$@" >> "$log" 2>&1
        echo "== $order (exit $?)"; tail -n "$lines" "$log"
    done
}
