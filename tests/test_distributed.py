"""The distributed suites: what they plan and skip, the correctness check, a training run end to end,
and the same rank code under torchrun."""

from __future__ import annotations

import itertools
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO, effbench

from bench_lib.execution.session import plan
from bench_lib.platform import Platform
from bench_lib.results.store import load_run
from bench_lib.suites.distributed.collectives import _buffers, _wrong_elements, bus_factor
from bench_lib.suites.distributed.pace import Pace, group_ends, step_times
from bench_lib.suites.distributed.train_runs import WARMUP_STEPS, MemoryShare, StrategyRun
from bench_lib.suites.distributed.training import (
    LAUNCHES,
    MAX_EXTENSION,
    STRETCHES,
    extended_steps,
    is_convergence,
    take_turns,
)
from bench_lib.suites.distributed.training.losses import loss_at, smoothed, time_to

CPU_ONLY = Platform(cuda_devices=0, cuda_capability=None, gloo=True, nccl=False)
ONE_GPU = Platform(cuda_devices=1, cuda_capability=(9, 0), gloo=True, nccl=True)


def test_bus_factors_are_nccl_tests():
    assert bus_factor("all_reduce", 8) == pytest.approx(2 * 7 / 8)
    assert bus_factor("all_gather", 4) == bus_factor("reduce_scatter", 4) == bus_factor("all_to_all", 4) == 0.75
    assert bus_factor("broadcast", 8) == 1.0


def test_cpu_plan_runs_gloo_and_lists_nccl_as_skipped():
    planned = plan(["collectives", "training"], "quick", "cpu", "all", platform=CPU_ONLY)
    runnable = [p.case for p in planned if not p.skip_reason]
    nccl = [p for p in planned if p.case.workload == "nccl" or p.case.param("backend") == "nccl"]
    assert nccl and all("no CUDA device" in p.skip_reason for p in nccl)
    assert {c.workload for c in runnable if c.suite == "collectives"} == {"gloo_cpu"}
    assert {c.param("dtype") for c in runnable if c.suite == "collectives"} == {"float32", "bfloat16"}
    strategies = [c.variant for c in runnable if c.suite == "training" and c.workload == "gpt_bytes"]
    assert strategies[:2] == ["nocomm", "sync"]  # the baselines run first in their launch
    assert strategies[-1] == "reference"  # the bare loop, for the harness's overhead
    assert {"local_sgd", "diloco", "async_stale", "sync_powersgd"} <= set(strategies)
    assert "sync_bf16" not in strategies  # DDP's bf16 hook is NCCL-only: skipped with the reason


def test_one_gpu_runs_gloo_on_cuda_and_skips_nccl_with_the_reason():
    planned = plan(["collectives"], "quick", "cuda", "all", platform=ONE_GPU)
    by_workload = {p.case.workload: p.skip_reason for p in planned}
    assert by_workload["gloo_cuda"] is None
    assert "Duplicate GPU detected" in by_workload["nccl"]


@pytest.mark.parametrize("op", ["all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all"])
def test_the_check_counts_wrong_elements(op):
    b = _buffers(op, 64, torch.bfloat16, "cpu", rank=1, n=2)
    b.output.copy_(b.expected)
    assert _wrong_elements(b, "bfloat16") == 0
    b.output[:3] += 1
    assert _wrong_elements(b, "bfloat16") == 3


def test_loss_curve_helpers():
    curve = [[0.5 * i, i, 4.0 - i] for i in range(4)]  # losses 4, 3, 2, 1 at 0, 0.5, 1, 1.5 s
    smooth = smoothed(curve, window=2)
    assert [loss for _, loss in smooth] == [4.0, 3.5, 2.5, 1.5]
    assert time_to(smooth, 2.5) == 1.0 and time_to(smooth, 1.0) is None
    assert loss_at(smooth, 1.2) == 2.5 and loss_at(smooth, 3.0) is None


def test_throughput_from_the_wall_counts_a_periodic_averaging_step():
    # Local SGD, H=16: 15 steps of 35 ms, then one of 250 ms that averages the parameters.
    ends = list(itertools.accumulate(([0.035] * 15 + [0.250]) * 4))
    pace = Pace.after_warmup(ends, 0)
    assert statistics.median(step_times(ends)) == pytest.approx(0.035)  # the median never sees the averaging
    assert pace.per_step_s == pytest.approx((15 * 0.035 + 0.250) / 16)
    assert pace.rate(4096) == pytest.approx(4096 / 0.0484375)  # 84.6k tokens/s, not the median's 117k
    assert Pace.after_warmup(ends, 16) == Pace(48, pytest.approx(3 * (15 * 0.035 + 0.250)))


def test_a_step_of_the_group_ends_when_its_last_rank_ends_it():
    # Two ranks that drift apart (no collective between steps), slow on alternate steps: 9 s for 6 steps each.
    r0 = list(itertools.accumulate([1, 2, 1, 2, 1, 2]))
    r1 = list(itertools.accumulate([2, 1, 2, 1, 2, 1]))
    per_step_max = [max(a, b) for a, b in zip(step_times(r0), step_times(r1), strict=True)]
    assert statistics.median(per_step_max) == 2 > 9 / 6  # the maximum of durations overshoots the pace
    ends = group_ends([r0, r1])
    assert ends == [2, 3, 5, 6, 8, 9] and sum(step_times(ends)) == 9
    assert statistics.median(step_times(ends)) == 1.5 == Pace.after_warmup(ends, 0).per_step_s


def test_a_strategy_faster_than_sync_trains_on_until_sync_s_wall_time():
    pace = Pace(64, 1.0)  # 1/64 s a step
    assert extended_steps(120, pace, wall_s=1.0, sync_wall_s=2.0) == 120 + 68  # 1 s more: 64 steps, 5% over
    assert extended_steps(120, pace, wall_s=2.5, sync_wall_s=2.0) == 120  # slower than sync: no more steps
    assert extended_steps(120, pace, wall_s=1.0, sync_wall_s=100.0) == 120 * (1 + MAX_EXTENSION)


def test_strategies_take_turns_stretch_by_stretch():
    done = []

    class Run:
        def __init__(self, name: str, planned: int) -> None:
            self.name, self.planned, self.steps = name, planned, 0

        def stretch(self, n: int) -> None:
            done.append(f"{self.name}{n}")
            self.steps += n

    runs = [Run("a", 10), Run("b", 10), Run("c", 7)]
    take_turns(runs, 4, lambda i: done.append(i))
    assert done == [0, "a4", 1, "b4", 2, "c4", 0, "a4", 1, "b4", 2, "c3", 0, "a2", 1, "b2"]  # ABCABC, to each plan
    runs[2].planned = 12  # c extended to sync's wall time: it takes its turns alone
    take_turns(runs, 4, lambda i: None)
    assert done[16:] == ["c4", "c1"]


def test_each_stretch_s_pace_counts_only_its_own_steps():
    # 3 warm-up steps, then stretches of 1 ms and 2 ms steps: the second stretch's clock picks up where
    # the first one stopped (the other strategies' turns in between are not this run's time).
    ends = list(itertools.accumulate([0.001] * 10 + [0.002] * 10))
    run = SimpleNamespace(ends=ends, bounds=[10, 20])
    assert StrategyRun.stretch_paces(run, 20) == pytest.approx([0.001, 0.002])
    assert StrategyRun.stretch_paces(run, 10) == pytest.approx([0.001])  # extension stretches are not timed
    assert WARMUP_STEPS < 10


def test_a_run_s_peak_memory_leaves_out_what_the_other_runs_hold(monkeypatch):
    from bench_lib.suites.distributed import train_runs

    rss = {"current": 100, "peak": 100}
    monkeypatch.setattr(train_runs.memory, "current_rss_bytes", lambda: rss["current"])
    monkeypatch.setattr(train_runs.memory, "peak_rss_bytes", lambda: rss["peak"])
    monkeypatch.setattr(train_runs.memory, "reset_peak_rss", lambda: True)
    share = MemoryShare(cuda=False, before_runs=100)
    share.begin()  # built: 30 of its own, 50 at the peak
    rss.update(peak=150, current=130)
    share.end()
    rss.update(current=150)  # meanwhile another run grew by 20
    share.begin()  # a stretch: 80 of its own at the peak
    rss.update(peak=200, current=160)
    share.end()
    assert (share.own, share.own_peak, share.peak) == (40, 80, 180)


@pytest.fixture(scope="module")
def training_run(tmp_path_factory: pytest.TempPathFactory):
    """One quick training run on the CPU for the tests of its throughput cases and of its convergence cases: a
    workload's two groups share the run's launches (the ranks' start is most of a quick run's time)."""
    env = {**os.environ, "EFFBENCH_PEAKS": "off", "EFFBENCH_CONVERGENCE_BUDGET_S": "0.3"}
    proc = effbench("run", "--suite", "training", "--profile", "quick", "--backend", "gloo", "--device", "cpu",
                    "-k", "digits_mlp and ((nocomm or sync-backend or async_stale or reference) and not convergence"
                    " or convergence and (sync-backend or local_sgd))",
                    "--out", str(tmp_path_factory.mktemp("training")), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run] = load_run(Path(proc.stdout.strip().splitlines()[-1]))
    return run


@pytest.mark.slow
def test_training_run_stores_every_figure(training_run):
    by = {r.case.variant: r for r in training_run.results if not is_convergence(r.case)}
    assert set(by) == {"nocomm", "sync", "async_stale", "reference"} and all(r.status == "ok" for r in by.values())
    sync, stale = by["sync"].metrics, by["async_stale"].metrics
    for key in ("step_time_median_s", "step_time_p90_s", "step_time_wall_s", "samples_per_s", "exposed_comm_s",
                "peak_memory_bytes", "eval_loss", "eval_accuracy", "target_loss"):
        assert sync[key] is not None and stale[key] is not None, key
    assert sync["loss_at_equal_wall"] == sync["target_loss"]
    assert "loss_at_equal_wall" in stale and "time_to_target_s" in stale  # None when not reached: timing-dependent
    assert by["nocomm"].metrics["exposed_comm_s"] == 0
    bare = by["reference"].metrics
    assert by["nocomm"].metrics["harness_overhead"] == pytest.approx(
        by["nocomm"].metrics["step_time_wall_s"] / bare["step_time_wall_s"] - 1)
    assert bare["timed_steps"] == by["nocomm"].metrics["timed_steps"] and "loss_curve" not in bare
    for r in by.values():  # throughput from the wall clock of the timed steps
        m = r.metrics
        assert m["samples_per_s"] == pytest.approx(2 * 32 * m["timed_steps"] / m["timed_wall_s"])
        if r.case.variant != "reference":  # which the group's step times add up to
            assert sum(r.measurement.samples) == pytest.approx(m["timed_wall_s"])
    assert stale["target_loss"] == sync["target_loss"] == sync["final_train_loss"]
    assert stale["equal_wall_s"] == sync["train_wall_s"]
    # Taking turns in STRETCHES stretches over the launches, each stretch a unit of the interval.
    assert len(stale["stretch_step_s"]) == len(stale["speedup_over_sync_by_stretch"]) == STRETCHES
    assert stale["stretch_launch"] == sorted(stale["stretch_launch"]) and len(set(stale["stretch_launch"])) == LAUNCHES
    assert len(set(by["async_stale"].measurement.unit_of_sample)) == STRETCHES
    assert stale["speedup_pairs"] == STRETCHES and stale["speedup_baseline"] == by["sync"].case.id
    assert stale["speedup_ci95_low"] <= stale["speedup"] <= stale["speedup_ci95_high"]
    assert stale["speedup_over_sync"] == pytest.approx(sync["step_time_wall_s"] / stale["step_time_wall_s"])
    walls = [w for w, _, _ in stale["loss_curve"]]
    assert walls == sorted(walls) and len(walls) > 10
    assert 0 < sync["eval_accuracy"] <= 1
    # One step's model FLOPs in every result, the bare-loop reference's and the convergence cases' too (MFU)
    assert {r.metrics["work"]["flops_per_call"] for r in training_run.results} == {sync["work"]["flops_per_call"]}
    assert sync["work"]["flops_per_call"] > 0 and len(training_run.results) == 6


@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
                    reason="torchrun not installed")
@pytest.mark.slow
def test_the_rank_code_runs_under_torchrun(tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    proc = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "bench_lib.execution.rank",
                           "--suite", "collectives", "--backend", "gloo", "--device", "cpu",
                           "-k", "float32 and size_bytes4096- and (all_reduce or all_gather)", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run] = load_run(Path(proc.stdout.strip().splitlines()[-1]))
    assert sorted(r.case.variant for r in run.results) == ["all_gather", "all_reduce"]
    assert all(r.status == "ok" and r.metrics["wrong_elements"] == 0 for r in run.results)
    assert run.results[0].metrics["busbw_GBps"] > 0


def test_iteration_counts_follow_the_pilot_within_bounds():
    from bench_lib.suites.distributed.collectives import TIMING

    full = TIMING["full"]
    assert full.iterations(1e-6) == full.max_iters  # tiny messages: capped
    assert full.iterations(0.01) == 50  # target_s / pilot (per launch: a run launches each group twice)
    assert full.iterations(0.5) == 6  # min_iters would take 10 s: held to max_s
    assert full.iterations(10.0) == 5  # never fewer than the floor


@pytest.mark.slow
def test_convergence_cases_share_checkpoints_and_pool_seeds_over_launches(training_run):
    by = {r.case.variant: r for r in training_run.results if is_convergence(r.case)}
    assert set(by) == {"sync", "local_sgd"} and all(r.status == "ok" for r in by.values())
    sync, local = by["sync"].metrics, by["local_sgd"].metrics
    assert sync["convergence_seeds"] == local["convergence_seeds"] == 3
    assert sorted({r["launch"] for r in sync["convergence_runs"]}) == [0, 1]  # seeds shared out over the launches
    times = {tuple(row[0] for row in r["curve"]) for m in (sync, local) for r in m["convergence_runs"]}
    assert len(times) == 1 and len(next(iter(times))) == 6  # the same checkpoints for every strategy and seed
    assert all(row[1] >= row[0] for r in sync["convergence_runs"] for row in r["curve"])  # crossed, not before
    assert sync["time_to_target_reached"] == 3 and sync["time_to_target_mean_s"] is not None
    assert sync["convergence_target_loss"] == max(sync["eval_loss_at_budget_by_seed"])
