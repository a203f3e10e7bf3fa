"""The speed-target analysis used by validate and benchmarks/perf.py (pure arithmetic, no GPU)."""

from bsk_cupy.bench import TARGET_CONFIGS, BenchRow, analyze, format_table, load_targets


def _row(config, us, eager_us=10.0):
    return BenchRow(*config, dtype="float16", ours_us=us, ours_eager_us=eager_us, cudnn_us=None, flash_us=None)


def test_targets_file_covers_the_issue_table():
    targets = load_targets()
    assert len(targets["gpu"]) == 7 and targets["eager"][0]["target"] == 15.0
    assert (1, 8, 512, 64, False) in TARGET_CONFIGS


def test_time_targets_met_and_missed():
    verdicts = {(v.config, v.kind): v for v in analyze([_row((1, 8, 512, 64, False), 4.9, eager_us=16.0)])}
    assert verdicts[((1, 8, 512, 64, False), "gpu")].met
    assert not verdicts[((1, 8, 512, 64, False), "eager")].met


def test_rate_targets_use_causal_halved_flops():
    config = (4, 32, 4096, 128, True)
    flops = 4 * 4 * 32 * 4096 * 4096 * 128 / 2
    at_target = flops / 560e12 * 1e6  # microseconds that give exactly 560 TFLOPS
    (ok,) = analyze([_row(config, at_target * 0.99)])
    (missed,) = analyze([_row(config, at_target * 1.05)])
    assert ok.met and not missed.met and missed.measured < 560


def test_table_shows_the_eager_time_with_out_next_to_the_plain_one():
    plain = _row((1, 8, 512, 64, False), 7.0, eager_us=20.0)
    with_out = BenchRow(1, 8, 512, 64, False, "float16", ours_us=7.0, ours_eager_us=20.0, cudnn_us=9.0,
                        flash_us=None, ours_eager_out_us=14.5)
    header, _, first, second = format_table([plain, with_out]).splitlines()
    assert header.split(" | ")[6:8] == ["ours µs (eager)", "eager, out="]
    assert first.split(" | ")[6:8] == ["20.0", "—"] and second.split(" | ")[6:8] == ["20.0", "14.5"]
