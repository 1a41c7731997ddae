"""Convergence runs on the ranks: every strategy of a workload trains for the same wall-clock budget, per seed,
its held-out loss evaluated at the same checkpoint times.

For each seed of this launch, one `StrategyRun` per strategy (the seed's initial weights and data order,
the same for every strategy) advances checkpoint by checkpoint, the strategies taking turns: checkpoint k
of every strategy before checkpoint k+1 of any, so that a slow moment of the machine hits them alike. A run
reaches a checkpoint in stretches whose step counts come from its own pace on the clock the ranks agreed
(so every rank runs the same steps): as many steps as the time left to the checkpoint holds, then one
more stretch if it fell short, so the step that crosses the checkpoint ends at most about one step after
it; the wall time of that step is stored beside the nominal checkpoint. The held-out loss is evaluated
between stretches, off the clock. A periodic strategy's replicas (local SGD, DiLoCo) are averaged on a copy
first, as their final synchronization would do, without touching the run; sync's and async_stale's
replicas are identical; nocomm's rank 0 replica is evaluated (it never communicates).

Seeds are shared out over the run's launches (seed s in launch s mod launches), so that seeds meet
different moments of the machine and a run costs the profile's seeds once; the parent pools them
(training/merge.py, `merge_convergence`) and computes the figures over every seed (convergence.py).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn

from bench_lib.suites.distributed.base import RankContext
from bench_lib.suites.distributed.tasks import TrainTask
from bench_lib.suites.distributed.train_runs import MemoryShare, StrategyRun

__all__ = ["LAUNCH_ENV", "seeds_of_launch", "converge", "launch_index"]

# Set by `effbench run` in each launch's environment: which launch (0, 1, ...) of the run this is.
LAUNCH_ENV = "EFFBENCH_LAUNCH"
_FIRST_STRETCH = 3  # steps of a run's first stretch, which give its first pace
_NEVER = 1 << 62  # a convergence run's plan: it stops at its budget, not at a step count


def launch_index() -> int:
    return int(os.environ.get(LAUNCH_ENV) or 0)


def seeds_of_launch(seeds: int, launch: int, launches: int) -> list[int]:
    """Seed s runs in launch s mod launches (under pytest or torchrun, one launch runs them all)."""
    return [s for s in range(seeds) if s % launches == launch % launches]


def _steps_toward(run: StrategyRun, checkpoint_s: float) -> int:
    """Steps that should end just short of the checkpoint at the run's pace so far (at least 1)."""
    if run.steps == 0:
        return _FIRST_STRETCH
    per_step = run.clock_s / run.steps
    return max(1, math.floor((checkpoint_s - run.clock_s) / per_step)) if per_step > 0 else 1


def _eval_model(run: StrategyRun, periodic: bool, ctx: RankContext) -> nn.Module:
    """The model to evaluate now: for a periodic strategy the replicas' average, on a copy."""
    if not periodic:
        return run.model
    model = copy.deepcopy(run.model)
    with torch.no_grad():
        for p in model.parameters():
            dist.all_reduce(p.data)
            p.data /= ctx.world_size
    return model


def converge(task: TrainTask, ctx: RankContext, variants: list[str], sync_every: dict[str, int],
             checkpoints: list[float], seed: int, before: Callable[[int], None]) -> dict[str, dict]:
    """One seed of every strategy, to the last checkpoint; per strategy its curve
    ([checkpoint_s, wall_s, step, eval_loss, eval_accuracy] per checkpoint, time 0 first) and its pace."""
    from bench_lib.techniques.strategies import STRATEGIES

    share = MemoryShare(ctx.is_cuda, 0)
    runs = {v: StrategyRun(task, ctx, share, _NEVER, v, sync_every.get(v, 1), log_every=_NEVER, seed=seed)
            for v in variants}
    curves: dict[str, list[list[float]]] = {v: [] for v in variants}
    for checkpoint_s in checkpoints:
        for i, (variant, run) in enumerate(runs.items()):
            before(i)
            while run.clock_s < checkpoint_s:
                run.stretch(_steps_toward(run, checkpoint_s))
            model = _eval_model(run, STRATEGIES[variant].periodic, ctx)
            figures = task.evaluate(model, ctx.device, autocast=ctx.is_cuda)
            curves[variant].append([checkpoint_s, run.clock_s, run.steps, figures["eval_loss"],
                                    figures["eval_accuracy"]])
    out = {}
    for variant, run in runs.items():
        run.strategy.finish()
        out[variant] = {"seed": seed, "curve": curves[variant], "steps": run.steps, "wall_s": run.clock_s,
                        # seconds per step between consecutive checkpoints: the case's samples
                        "interval_paces": [(b[1] - a[1]) / (b[2] - a[2]) for a, b in
                                           zip(curves[variant], curves[variant][1:], strict=False) if b[2] > a[2]]}
    return out
