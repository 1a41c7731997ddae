"""Convergence figures over seeds (distributed/convergence.py) and their way through the launches and the report,
on synthetic curves."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pandas as pd
import pytest

from bench_lib.report.frames import convergence_table, training_table
from bench_lib.report.load import results_frame
from bench_lib.results.case import CaseSpec
from bench_lib.results.store import _entry_to_result, result_to_entry
from bench_lib.suites.distributed.convergence import aligned_checkpoints, summarize, t_interval, time_to_target
from bench_lib.suites.distributed.convergence_runs import seeds_of_launch
from bench_lib.suites.distributed.tasks import ConvergencePlan
from bench_lib.suites.distributed.training import CONVERGENCE_PARAM, TrainingSuite, convergence_results, is_convergence


def _curve(losses: list[float], budget: float = 1.0, late: float = 0.0) -> list[list[float]]:
    """Checkpoints at equal parts of the budget (time 0 first), each crossed `late` seconds after it."""
    n = len(losses) - 1
    return [[budget * k / n, budget * k / n + (late if k else 0.0), 10 * k, loss, 0.5] for k, loss in enumerate(losses)]


def test_the_interval_is_student_t_over_seeds():
    mean, lo, hi = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert hi - mean == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) x sd / sqrt(3)
    assert mean - lo == pytest.approx(hi - mean)
    assert all(math.isnan(x) for x in t_interval([2.0])[1:])  # one seed: no interval


def test_time_to_target_interpolates_between_checkpoints_and_says_none_when_not_reached():
    curve = _curve([2.0, 1.0, 0.5, 0.4])  # checkpoints at 0, 1/3, 2/3, 1
    assert time_to_target(curve, 0.75) == pytest.approx(0.5)  # halfway from 1.0 (1/3 s) to 0.5 (2/3 s)
    assert time_to_target(curve, 0.5) == pytest.approx(2 / 3)
    assert time_to_target(curve, 0.3) is None
    assert time_to_target(_curve([2.0, 1.0], late=0.05), 1.0) == pytest.approx(1.05)  # the crossing step's time


def test_a_strategy_that_misses_the_target_in_any_seed_has_no_time_to_target():
    sync = [_curve([2.0, 1.0, 0.5]), _curve([2.0, 0.9, 0.6]), _curve([2.0, 1.1, 0.55])]
    slow = [_curve([2.0, 1.5, 0.59]), _curve([2.0, 1.5, 0.7]), _curve([2.0, 1.5, 0.58])]
    fast = [_curve([2.0, 0.6, 0.3]), _curve([2.0, 0.5, 0.3]), _curve([2.0, 0.55, 0.3])]
    figures = summarize({"sync": sync, "slow": slow, "fast": fast})
    assert figures["sync"]["convergence_target_loss"] == 0.6  # the worst sync seed's final loss
    assert figures["sync"]["time_to_target_reached"] == 3  # so every sync seed reaches it
    assert figures["slow"]["time_to_target_reached"] == 2
    assert figures["slow"]["time_to_target_mean_s"] is None
    assert figures["slow"]["time_to_target_by_seed"][1] is None
    assert figures["fast"]["time_to_target_mean_s"] < figures["sync"]["time_to_target_mean_s"]
    finals = [0.59, 0.7, 0.58]
    assert figures["slow"]["eval_loss_at_budget"] == pytest.approx(statistics.fmean(finals))
    assert figures["slow"]["eval_loss_at_budget_ci95_low"] < min(finals)
    assert figures["fast"]["eval_loss_at_budget_ci95_low"] == pytest.approx(0.3)  # no spread, no width
    assert figures["fast"]["eval_loss_band"][1][1:] == [0.55, 0.5, 0.6]  # median, min, max at checkpoint 1


def test_without_sync_there_is_no_target():
    figures = summarize({"nocomm": [_curve([2.0, 1.0]), _curve([2.0, 0.8])]})
    assert figures["nocomm"]["convergence_target_loss"] is None
    assert "time_to_target_mean_s" not in figures["nocomm"]


def test_curves_must_share_their_checkpoints():
    assert aligned_checkpoints([_curve([2.0, 1.0, 0.5]), _curve([2.0, 1.0, 0.4], late=0.01)]) == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="checkpoints differ"):
        summarize({"sync": [_curve([2.0, 1.0, 0.5])], "local_sgd": [_curve([2.0, 1.0, 0.5], budget=2.0)]})
    with pytest.raises(ValueError, match="checkpoints differ"):
        summarize({"sync": [_curve([2.0, 1.0, 0.5]), _curve([2.0, 0.5])]})


def test_the_plan_s_checkpoints_and_the_seeds_over_launches():
    assert ConvergencePlan(1.0, checkpoints=4).checkpoint_times() == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ValueError):
        ConvergencePlan(0.0)
    assert [seeds_of_launch(3, k, 2) for k in range(2)] == [[0, 2], [1]]
    assert seeds_of_launch(3, 0, 1) == [0, 1, 2]


def _case(variant: str) -> CaseSpec:
    return CaseSpec.make("training", "digits_mlp", variant, "cpu", backend="gloo", world_size=2, budget_s=1.0,
                         **{CONVERGENCE_PARAM: 3})


def _records(losses_by_seed: list[list[float]], launch_of: list[int]) -> list[dict]:
    return [{"seed": s, "launch": launch, "curve": _curve(losses), "steps": 20, "wall_s": 1.0,
             "interval_paces": [0.05, 0.05 + 0.01 * s]} for s, (losses, launch) in enumerate(
                 zip(losses_by_seed, launch_of, strict=True))]


def test_launches_pool_their_seeds_and_the_figures_are_recomputed_over_all():
    sync, local = _case("sync"), _case("local_sgd")
    seeds_sync = [[2.0, 1.0, 0.5], [2.0, 0.9, 0.6], [2.0, 1.1, 0.55]]
    seeds_local = [[2.0, 0.8, 0.45], [2.0, 0.7, 0.5], [2.0, 0.75, 0.7]]
    launches = []
    for seeds in ([0, 2], [1]):
        records = {sync: [r for r in _records(seeds_sync, [0, 1, 0]) if r["seed"] in seeds],
                   local: [r for r in _records(seeds_local, [0, 1, 0]) if r["seed"] in seeds]}
        launches.append(convergence_results(records, {"backend": "gloo"}, "perf_counter per step"))
    assert launches[0][sync].metrics["convergence_target_loss"] == 0.55  # launch 0 alone: seeds 0 and 2
    merged = TrainingSuite().merge_launches(launches)
    assert is_convergence(sync) and merged[sync].metrics["convergence_seeds"] == 3
    assert merged[sync].metrics["convergence_target_loss"] == 0.6
    assert merged[local].metrics["time_to_target_reached"] == 2  # seed 2 ends at 0.7 > 0.6
    assert merged[local].metrics["backend"] == "gloo"
    assert sorted(set(merged[sync].measurement.unit_of_sample)) == [0, 1, 2]  # each seed a unit of the interval
    again = _entry_to_result(result_to_entry(merged[local]), Path("t.json"))  # and it survives the store
    assert again.metrics["time_to_target_by_seed"][2] is None


def test_the_report_tables_keep_convergence_apart_and_say_not_reached():
    class _Run:
        name = "r1"

        def __init__(self, results: dict) -> None:
            self.results = results

    sync, local = _case("sync"), _case("local_sgd")
    records = {sync: _records([[2.0, 1.0, 0.5], [2.0, 0.9, 0.6], [2.0, 1.1, 0.55]], [0, 0, 0]),
               local: _records([[2.0, 0.8, 0.45], [2.0, 0.7, 0.5], [2.0, 0.75, 0.7]], [0, 0, 0])}
    df = results_frame([_Run(convergence_results(records, {}, ""))])
    table = convergence_table(df)
    cells = dict(zip(table["strategy"], table["time to target (s) [95% CI]"], strict=True))
    assert cells["local_sgd"] == "not reached (2 of 3 seeds did)"
    assert cells["sync"].count("[") == 1 and "not reached" not in cells["sync"]
    assert set(table["seeds"]) == {"3"}
    throughput, _ = training_table(pd.concat([df]))
    assert throughput.empty  # no throughput case among them
