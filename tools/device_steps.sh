# Steps shared by the device-run scripts (sourced, not run): the environment they run under, the whole GPU
# suite on 4 pytest workers and compute-sanitizer memcheck, each with its own time limit, logs in $out.
export PYTHONPATH=. PYTHONUNBUFFERED=1 BSK_CACHE_DIR=${BSK_CACHE_DIR:-/tmp/bskc} XLA_PYTHON_CLIENT_PREALLOCATE=false
out=${OUT:?set OUT to the log directory}

gpu_suite() {
    timeout 240 python -m pytest -m gpu -q -n 4 -rfE -p no:cacheprovider tests/ > "$out/tests.log" 2>&1
    echo "tests: exit $?"; grep -E "^(FAILED|ERROR)" "$out/tests.log" | head -20; tail -1 "$out/tests.log"
}

memcheck() {
    timeout 120 compute-sanitizer --tool memcheck python tools/sanitize_shapes.py > "$out/memcheck.log" 2>&1
    echo "memcheck: exit $?"; grep -c cuGetProcAddress "$out/memcheck.log"; tail -1 "$out/memcheck.log"
}
