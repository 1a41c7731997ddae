"""The verdict statistics, called with literal samples (no files, no timing)."""

import math

import numpy as np
import pytest

from bench_lib.measure.paired import PairedRatio
from bench_lib.measure.stats import Measurement
from bench_lib.report.compare import (
    SINGLE_RUN_FLOOR,
    RatioEstimate,
    baseline_of,
    between_run_interval,
    classify,
    compare_runs,
    hierarchical,
    ratio_of_sides,
    stored_relative,
)
from bench_lib.results.case import CaseResult, CaseSpec

FP32 = CaseSpec.make("inference", "mlp", "fp32", "cpu", batch=64)
INT8 = CaseSpec.make("inference", "mlp", "int8_dynamic", "cpu", batch=64)
PRUNE = CaseSpec.make("inference", "mlp", "l1_unstructured", "cpu", batch=64, sparsity=0.5)
# Eleven samples spread +-5% around 10 ms: within-run noise only.
STEADY = tuple(10e-3 * (1 + d) for d in (-0.05, -0.04, -0.03, -0.02, -0.01, 0.0, 0.01, 0.02, 0.03, 0.04, 0.05))


def _scaled(samples, factor):
    return tuple(s * factor for s in samples)


def _run(**cases):
    return {case: CaseResult(case, "ok", Measurement(samples)) for case, samples in cases.values()}


def test_identical_sides_give_ratio_one_and_an_interval_around_it():
    est = ratio_of_sides([STEADY], [STEADY])
    assert est.ratio == 1.0 and est.low < 1.0 < est.high
    assert est.single_run


def test_a_uniform_scale_moves_the_ratio_exactly_and_the_interval_excludes_one():
    est = ratio_of_sides([STEADY], [_scaled(STEADY, 1.25)])
    assert est.ratio == pytest.approx(1.25)
    assert est.low > 1.1


def test_between_run_spread_widens_the_interval():
    """Two runs a side differing by 2x: the hierarchical interval must cover that spread."""
    base = [STEADY, _scaled(STEADY, 2.0)]
    new = [_scaled(STEADY, 1.1), _scaled(STEADY, 2.2)]
    pooled_within = ratio_of_sides([STEADY], [_scaled(STEADY, 1.1)])
    est = ratio_of_sides(base, new)
    assert not est.single_run
    assert (est.high - est.low) > 5 * (pooled_within.high - pooled_within.low)
    assert est.low < 1.0 < est.high


def test_hierarchical_with_one_run_is_the_within_run_bootstrap():
    reps = np.array([[1.0, 2.0, 3.0]])
    point, out = hierarchical([2.0], reps, np.random.default_rng(0))
    assert point == 2.0 and list(out) == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("ratio, low, high, runs, kind", [
    (1.25, 1.20, 1.30, 2, "slower"),             # beyond 10% with evidence
    (1.25, 0.95, 1.60, 2, "within noise"),       # beyond 10% but the interval holds 1
    (1.05, 1.03, 1.07, 2, "within noise"),       # significant but under the threshold
    (0.80, 0.75, 0.85, 2, "faster"),
    (1.15, 1.12, 1.18, 1, "within noise"),       # one run a side: under the single-run floor
    (1.25, 1.22, 1.28, 1, "slower"),             # one run a side: beyond the floor
])
def test_classify_needs_the_bar_and_the_evidence(ratio, low, high, runs, kind):
    est = RatioEstimate(ratio, low, high, 1.0, ratio, runs, runs)
    v = classify(FP32, est, threshold=0.10)
    assert v.kind == kind
    assert v.bar == (max(0.10, SINGLE_RUN_FLOOR) if runs == 1 else 0.10)
    assert ("between-run noise unknown" in v.note) == (runs == 1)


def test_baseline_is_the_same_run_fp32_with_matching_params():
    available = {FP32, INT8, PRUNE, CaseSpec.make("inference", "mlp", "fp32", "cpu", batch=1)}
    assert baseline_of(INT8, available) == FP32
    assert baseline_of(PRUNE, available) == FP32
    assert baseline_of(FP32, available) is None
    assert baseline_of(CaseSpec.make("collectives", "nccl", "all_reduce", "cuda"), available) is None
    bf16 = CaseSpec.make("inference", "mlp", "bf16", "cuda", batch=8)
    fp8 = CaseSpec.make("inference", "mlp", "fp8_dynamic", "cuda", batch=8)
    assert baseline_of(fp8, {bf16, fp8, FP32}) == bf16          # the GPU baseline is bf16 eager


def test_compare_runs_flags_a_slowed_case_and_keeps_its_relative_speedup():
    base = _run(a=(FP32, STEADY), b=(INT8, _scaled(STEADY, 0.5)))
    new = _run(a=(FP32, STEADY), b=(INT8, _scaled(STEADY, 0.5 * 1.25)))
    cmp = compare_runs([base], [new], 0.10)
    kinds = {v.case: v.kind for v in cmp.verdicts}
    assert kinds == {FP32: "within noise", INT8: "slower"}
    [rel] = cmp.relative
    assert rel.case == INT8 and rel.baseline == FP32 and rel.kind == "slower"
    assert rel.estimate.base == pytest.approx(0.5) and rel.estimate.ratio == pytest.approx(1.25)
    assert cmp.regressions


def test_a_whole_machine_slowdown_cancels_in_the_relative_speedup():
    base = _run(a=(FP32, STEADY), b=(INT8, _scaled(STEADY, 0.5)))
    new = _run(a=(FP32, _scaled(STEADY, 2.0)), b=(INT8, _scaled(STEADY, 1.0)))
    cmp = compare_runs([base], [new], 0.10)
    assert all(v.kind == "slower" for v in cmp.verdicts)
    [rel] = cmp.relative
    assert rel.kind == "within noise" and rel.estimate.ratio == pytest.approx(1.0)


def test_status_verdicts_failed_skipped_missing():
    case_ok, case_gone = FP32, INT8
    failing = CaseSpec.make("inference", "mlp", "x", "cpu", batch=64)
    skipped = CaseSpec.make("inference", "mlp", "y", "cuda", batch=64)
    base = {case_ok: CaseResult(case_ok, "ok", Measurement(STEADY)),
            case_gone: CaseResult(case_gone, "ok", Measurement(STEADY)),
            failing: CaseResult(failing, "ok", Measurement(STEADY)),
            skipped: CaseResult.skipped(skipped, "no CUDA device")}
    new = {case_ok: CaseResult(case_ok, "ok", Measurement(STEADY)),
           failing: CaseResult.failed(failing, "worker crashed\nTraceback ...\nRuntimeError: boom"),
           skipped: CaseResult.skipped(skipped, "no CUDA device")}
    cmp = compare_runs([base], [new])
    by_case = {v.case: v for v in cmp.verdicts}
    assert by_case[case_ok].kind == "within noise"
    assert by_case[case_gone].kind == "not comparable" and by_case[case_gone].note == "only in BASE"
    assert by_case[failing].kind == "failed" and "worker crashed" in by_case[failing].note
    assert by_case[skipped].kind == "not comparable" and "no CUDA device" in by_case[skipped].note
    assert [v.case for v in cmp.regressions] == [failing]


def test_welch_interval_pays_for_few_runs():
    assert between_run_interval([1.0], [1.0, 1.1]) is None          # one run a side: unknown
    assert between_run_interval([1.0, 1.0], [1.0, 1.0]) is None     # no spread at all
    # Two runs a side, NEW 25% slower, runs 2% apart: clearly above 1.
    lo, hi = between_run_interval([1.0, 1.02], [1.25, 1.275])
    assert 1.0 < lo < 1.25 < hi
    # The same mean change, but one NEW run in a 2.5x slow state: the interval must hold 1.
    lo, hi = between_run_interval([1.0, 1.02], [1.0, 2.5])
    assert lo < 1.0 < hi


def test_two_runs_a_side_with_a_slow_state_are_within_noise():
    """BASE both fast, NEW one fast one 2.5x slow: the bootstrap alone would call it slower."""
    base = [STEADY, _scaled(STEADY, 1.01)]
    new = [_scaled(STEADY, 1.0), _scaled(STEADY, 2.5)]
    est = ratio_of_sides(base, new)
    assert est.low < 1.0
    assert classify(FP32, est, 0.10).kind == "within noise"


def test_the_one_run_caution_names_only_the_cases_that_one_process_measured():
    from bench_lib.report.render_compare import render_comparison

    spread = Measurement(STEADY * 3, unit_of_sample=(0,) * 11 + (1,) * 11 + (2,) * 11)  # an interleaved run's case
    ref = CaseSpec.make("training", "mlp", "reference", "cpu")  # measured by one process, as training's reference
    run = {FP32: CaseResult(FP32, "ok", spread), ref: CaseResult(ref, "ok", Measurement(STEADY))}
    text = render_comparison(compare_runs([run], [run]), ["b"], ["n"], ["c"], ["c"])
    assert "> [!NOTE]" in text                                     # FP32's intervals have its processes as units
    caution = text.split("> [!CAUTION]\n")[1].splitlines()[0]
    assert caution.startswith(f"> One run of one process on a side for 1 case(s) (`{ref.id}`)")
    assert FP32.id not in caution


def test_stored_speedups_are_judged_by_their_intervals_and_units():
    base = PairedRatio(2.0, 1.9, 2.1, 8, 8, "stretch").to_metrics()
    new = PairedRatio(1.6, 1.5, 1.7, 8, 8, "stretch").to_metrics()
    est = stored_relative(base, new)  # the technique's time over its baseline's rose by 2.0/1.6
    assert est.ratio == 2.0 / 1.6 and (est.base, est.new) == (1 / 2.0, 1 / 1.6) and not est.single_run
    assert est.low == pytest.approx(1.25 / math.exp(math.hypot(math.log(2.0 / 1.9), math.log(1.7 / 1.6))))
    assert est.high == pytest.approx(1.25 * math.exp(math.hypot(math.log(2.1 / 2.0), math.log(1.6 / 1.5))))
    # Without the units they rest on, or with an open end, the rounds decide instead.
    assert stored_relative({k: v for k, v in base.items() if k != "speedup_processes"}, new) is None
    assert stored_relative(base, {**new, "speedup_ci95_low": 0.0}) is None
