"""The training suite's figures from its stretches: the stretch (of every launch) as the unit of a figure's
interval, the run's machine state, speedups from paired stretches, and launches pooled into one result
that `effbench compare` judges by those units."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from bench_lib.measure.paired import PairedRatio
from bench_lib.measure.stats import Measurement
from bench_lib.report.compare import by_process, compare_runs
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.store import _entry_to_result, result_to_entry
from bench_lib.suites.distributed.stretches import Stretches, paired_stretch_speedup, stretch_state_sd
from bench_lib.suites.distributed.training import STRETCHES, TrainingSuite, launch_plan, take_turns

STEPS = 15  # timed steps a stretch


def _stretches(levels: list[float], rng: np.random.Generator, start: float = 0.0, noise: float = 0.01,
               launch: int = 0) -> Stretches:
    """Stretches of STEPS steps each, stretch k's steps around levels[k] seconds, one second apart."""
    samples = [lvl * math.exp(noise * rng.standard_normal()) for lvl in levels for _ in range(STEPS)]
    units = [k for k in range(len(levels)) for _ in range(STEPS)]
    paces = [float(np.mean(samples[k * STEPS:(k + 1) * STEPS])) for k in range(len(levels))]
    return Stretches.one_launch(samples, units, paces, [start + k for k in range(len(levels))], launch)


def test_the_interval_from_stretches_is_wider_than_the_steps_when_stretches_disagree():
    rng = np.random.default_rng(0)
    disagree = _stretches([1.0, 1.25, 0.85, 1.15, 0.9, 1.2, 0.95, 1.1], rng)
    steps_lo, steps_hi = Measurement(disagree.samples).ci95  # every step an independent sample
    lo, hi = disagree.measurement(0.0).ci95
    assert lo <= steps_lo and hi >= steps_hi
    assert math.log(hi / lo) > 1.5 * math.log(steps_hi / steps_lo)  # far wider: eight units, not 120 samples
    assert any(w.startswith("stretches disagree") for w in disagree.measurement(0.0).warnings)
    # Stretches that agree leave the interval about as narrow as the steps' own.
    agree = _stretches([1.0] * 8, rng)
    a_lo, a_hi = agree.measurement(0.0).ci95
    s_lo, s_hi = Measurement(agree.samples).ci95
    assert math.log(a_hi / a_lo) < 2 * math.log(s_hi / s_lo) < 0.05
    # The run's machine state widens it in quadrature, as the inference suite's figures.
    w_lo, w_hi = agree.measurement(0.05).ci95
    assert math.log(w_hi / w_lo) == pytest.approx(
        math.hypot(math.log(a_hi / agree.measurement(0.0).median), 1.959964 * 0.05)
        + math.hypot(math.log(agree.measurement(0.0).median / a_lo), 1.959964 * 0.05), rel=1e-6)


def test_the_stretch_interval_covers_where_the_figure_lies_and_the_step_interval_does_not():
    """Stretch levels drawn from a law with a 10% sd around 1: the steps of one run cannot see it."""
    rng = np.random.default_rng(1)
    covered = {"steps": 0, "stretches": 0}
    rerun_inside = {"steps": 0, "stretches": 0}
    for _ in range(200):
        first, rerun = (_stretches(list(np.exp(0.1 * rng.standard_normal(8))), rng) for _ in range(2))
        median = rerun.measurement(0.0).median
        for name, (lo, hi) in (("steps", Measurement(first.samples).ci95), ("stretches", first.measurement(0.0).ci95)):
            covered[name] += lo <= 1.0 <= hi
            rerun_inside[name] += lo <= median <= hi
    assert covered["stretches"] >= 0.88 * 200 and covered["steps"] <= 0.5 * 200
    # A rerun's median has a spread of its own: an interval for the median holds it less often (about
    # 83% for a normal law), which is why the run's machine state is added on top (stretch_state_sd).
    assert rerun_inside["stretches"] >= 0.7 * 200 and rerun_inside["steps"] <= 0.35 * 200


def test_launches_pool_into_renumbered_stretches():
    rng = np.random.default_rng(2)
    a, b = _stretches([1.0, 1.1], rng), _stretches([1.2, 1.3, 1.4], rng, start=10)
    both = a.then(b)
    assert both.launch_of_unit == (0, 0, 1, 1, 1) and both.launches == 2
    assert both.unit_of_sample == (0,) * STEPS + (1,) * STEPS + (2,) * STEPS + (3,) * STEPS + (4,) * STEPS
    assert both.paces == a.paces + b.paces and both.starts == (0, 1, 10, 11, 12)
    assert both.then(a).launch_of_unit[-1] == 2
    with pytest.raises(ValueError, match="stretch labels"):
        Stretches((1.0,), (), (1.0,), (0.0,), (0,))


def test_the_machine_state_is_what_every_case_shares_over_time():
    rng = np.random.default_rng(3)
    steady = [_stretches([lvl] * 4, rng, 0).then(_stretches([lvl] * 4, rng, 10)) for lvl in (1.0, 2.0, 5.0)]
    assert stretch_state_sd(steady) < 0.01
    # The second launch ran 20% slower for every case: a state the next run may land in.
    slow = [_stretches([lvl] * 4, rng, 0).then(_stretches([1.2 * lvl] * 4, rng, 10)) for lvl in (1.0, 2.0, 5.0)]
    assert 0.07 < stretch_state_sd(slow) < 0.15
    # One case alone slower in its second launch is that case's spread, not the machine's.
    own = [*steady[:2], _stretches([5.0] * 4, rng, 0).then(_stretches([6.0] * 4, rng, 10))]
    assert stretch_state_sd(own) < 0.01


def test_speedups_come_from_stretches_paired_in_the_same_round():
    rng = np.random.default_rng(4)
    drift = [1.0, 1.4, 0.8, 1.2]  # the machine's state, shared by the two stretches of a round
    sync = _stretches([d for d in drift], rng, 0).then(_stretches([0.9 * d for d in drift], rng, 10))
    fast = _stretches([d / 2 for d in drift], rng, 0).then(_stretches([0.9 * d / 2 for d in drift], rng, 10))
    s = paired_stretch_speedup(fast, sync)
    assert s["speedup"] == pytest.approx(2.0, rel=0.01) and s["speedup_pairs"] == s["speedup_processes"] == 8
    assert 1.95 < s["speedup_ci95_low"] <= s["speedup"] <= s["speedup_ci95_high"] < 2.05  # the drift cancels
    assert s["speedup_by_launch"] == pytest.approx([2.0, 2.0], rel=0.01)
    # Unpaired, the same paces would give the ratio of two medians with the drift's whole spread.
    ratios = np.array(sync.paces) / np.array(fast.paces)
    assert ratios.min() > 1.95
    assert max(sync.paces) / min(sync.paces) > 1.7
    # Pairs whose ratios disagree widen the interval.
    noisy = _stretches([d / 2 * f for d, f in zip(drift, [1, 1.3, 0.8, 1.1], strict=True)], rng, 0).then(
        _stretches([0.9 * d / 2 for d in drift], rng, 10))
    n = paired_stretch_speedup(noisy, sync)
    assert n["speedup_ci95_high"] / n["speedup_ci95_low"] > 1.1
    # Stretches of other launches are never paired.
    assert paired_stretch_speedup(_stretches(drift, rng, 0), sync) == {}


def test_a_launch_s_steps_are_its_share_of_the_profile_in_equal_stretches():
    assert STRETCHES == 8
    assert launch_plan(40, 2, 3) == (3 + 4 * 5, 5)  # 37 timed steps: 2 launches x 4 stretches of 5
    assert launch_plan(120, 2, 3) == (3 + 4 * 15, 15)
    assert launch_plan(40, 1, 3) == (3 + 8 * 5, 5)  # one launch (torchrun): the same stretches in a row
    assert launch_plan(5, 2, 3)[1] == 2  # never a stretch of one step


def test_a_run_s_first_stretch_also_runs_its_warm_up():
    done = []

    class Run:
        def __init__(self, planned: int) -> None:
            self.planned, self.steps = planned, 0

        def stretch(self, n: int) -> None:
            done.append(n)
            self.steps += n

    take_turns([Run(11), Run(11)], 4, lambda i: None, first_extra=3)
    assert done == [7, 7, 4, 4]


def test_a_launch_keeps_each_workload_s_cases_together_in_a_new_order():
    suite = TrainingSuite()
    cases = suite.cases("quick", "cpu", "gloo")
    orders = [suite.launch_order(cases, random.Random(seed)) for seed in range(6)]
    for order in orders:
        assert sorted(order, key=cases.index) == cases
        workloads = [c.workload for c in order]
        assert workloads == sorted(workloads, key=workloads.index)  # contiguous: one group of turns each
    assert len({tuple(o) for o in orders}) > 1


def _launch(cases: dict[str, CaseSpec], levels: dict[str, float], rng: np.random.Generator, start: float,
            slow: float = 1.0) -> dict[CaseSpec, CaseResult]:
    """One launch's results as the ranks send them: its share of STRETCHES a case, a shared drift."""
    drift = list(np.exp(0.05 * rng.standard_normal(STRETCHES // 2)))
    out = {}
    for variant, case in cases.items():
        s = _stretches([levels[variant] * slow * d for d in drift], rng, start, noise=0.03)
        wall = float(sum(s.samples))
        metrics = {**s.metrics(), "timed_steps": len(s.samples), "timed_wall_s": wall, "global_batch": 64,
                   "samples_per_s": 64 * len(s.samples) / wall, "tokens_per_s": None,
                   "step_time_wall_s": wall / len(s.samples), "loss_curve": [[0.1, 0, 2.0]], "speedup": 99.0}
        out[case] = CaseResult(case, "ok", s.measurement(0.0), metrics, wall_s=wall)
    return out


def _run(cases: dict[str, CaseSpec], levels: dict[str, float], seed: int, slow: float = 1.0):
    rng = np.random.default_rng(seed)
    launches = [_launch(cases, levels, rng, 0.0), _launch(cases, levels, rng, 100.0, slow)]
    return TrainingSuite().merge_launches(launches), launches


def _cases() -> dict[str, CaseSpec]:
    return {c.variant: c for c in TrainingSuite().cases("quick", "cpu", "gloo")
            if c.workload == "digits_mlp" and c.variant in ("nocomm", "sync", "local_sgd", "reference")}


def test_launches_merge_into_one_figure_per_case_with_their_stretches_as_units():
    cases = _cases()
    levels = {"nocomm": 0.002, "sync": 0.004, "local_sgd": 0.0025, "reference": 0.0019}
    merged, launches = _run(cases, levels, 5, slow=1.2)
    local, sync = merged[cases["local_sgd"]], merged[cases["sync"]]
    m = local.measurement
    assert len(set(m.unit_of_sample)) == STRETCHES and m.n == STRETCHES * STEPS
    assert m.state_sd > 0.05  # the second launch ran 20% slower for every case
    assert local.metrics["stretch_launch"] == [0] * (STRETCHES // 2) + [1] * (STRETCHES // 2)
    # The speedup from the pairs of both launches, not the first launch's stale figure.
    assert local.metrics["speedup"] == pytest.approx(1.6, rel=0.05)
    assert local.metrics["speedup_baseline"] == sync.case.id and local.metrics["speedup_pairs"] == STRETCHES
    assert "speedup" not in sync.metrics
    # Wall-clock figures over both launches' timed steps.
    walls = [launch[cases["local_sgd"]].metrics["timed_wall_s"] for launch in launches]
    assert local.metrics["timed_wall_s"] == pytest.approx(sum(walls))
    assert local.metrics["samples_per_s"] == pytest.approx(64 * m.n / sum(walls))
    assert local.metrics["speedup_over_sync"] == pytest.approx(
        sync.metrics["step_time_wall_s"] / local.metrics["step_time_wall_s"])
    nocomm, ref = merged[cases["nocomm"]].metrics, merged[cases["reference"]].metrics
    assert nocomm["harness_overhead"] == pytest.approx(nocomm["step_time_wall_s"] / ref["step_time_wall_s"] - 1)
    assert local.metrics["loss_curve"] == launches[0][cases["local_sgd"]].metrics["loss_curve"]  # the first launch's
    # compare judges the case by its stretches, and the speedup by the stored pairs; they survive the file.
    assert len(by_process(m)) == STRETCHES
    stored = _entry_to_result(result_to_entry(local), Path("x.json")).measurement
    assert stored.unit_of_sample == m.unit_of_sample and stored.state_sd == m.state_sd and stored.unit_kind == "stretch"
    assert stored.ci95 == m.ci95
    speedup = PairedRatio.from_metrics(_entry_to_result(result_to_entry(local), Path("x.json")).metrics)
    assert speedup.unit_kind == "stretch" and speedup.units == speedup.pairs == STRETCHES
    assert speedup.ratio == local.metrics["speedup"] and speedup.low < speedup.ratio < speedup.high


def test_a_failed_launch_fails_the_case_and_leaves_the_others_pooled():
    cases = _cases()
    levels = {"nocomm": 0.002, "sync": 0.004, "local_sgd": 0.0025, "reference": 0.0019}
    rng = np.random.default_rng(6)
    launches = [_launch(cases, levels, rng, 0.0), _launch(cases, levels, rng, 100.0)]
    launches[1][cases["sync"]] = CaseResult.failed(cases["sync"], "rank 1 died")
    merged = TrainingSuite().merge_launches(launches)
    assert merged[cases["sync"]].status == "failed" and "launch 2 of 2" in merged[cases["sync"]].reason
    local = merged[cases["local_sgd"]]
    assert len(set(local.measurement.unit_of_sample)) == STRETCHES and "speedup" not in local.metrics


def test_compare_of_two_runs_of_identical_code_finds_no_regression():
    """Two runs whose launches sit in different machine states (10% apart) and whose strategies move
    with them: within noise, by the stretch units and the stored paired speedups."""
    cases = _cases()
    levels = {"nocomm": 0.002, "sync": 0.004, "local_sgd": 0.0025, "reference": 0.0019}
    a, _ = _run(cases, levels, 7, slow=1.1)
    b, _ = _run(cases, {k: 1.12 * v for k, v in levels.items()}, 8, slow=0.95)
    cmp = compare_runs([a], [b])
    assert not cmp.regressions, [(v.case.id, v.kind, v.estimate) for v in (*cmp.verdicts, *cmp.relative)]
    rel = {v.case.variant: v for v in cmp.relative}
    assert rel["local_sgd"].estimate.base_runs == STRETCHES  # the stored speedup's pairs
    # A real 40% slowdown of one strategy is caught, in its figure and in its speedup.
    slower = dict(levels, local_sgd=1.4 * levels["local_sgd"])
    c, _ = _run(cases, slower, 9)
    cmp = compare_runs([a], [c])
    kinds = {(v.case.variant, v in cmp.relative): v.kind for v in (*cmp.verdicts, *cmp.relative)}
    assert kinds[("local_sgd", False)] == "slower" and kinds[("local_sgd", True)] == "slower"
