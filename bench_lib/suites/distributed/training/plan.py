"""The training suite's plan: its case matrix, the constants of a run, and how a launch shares out the steps."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from bench_lib.platform import detect, device_kind
from bench_lib.results.case import CaseSpec
from bench_lib.suites.distributed.base import backends_for, default_world_size
from bench_lib.suites.distributed.pace import Pace

if TYPE_CHECKING:
    from bench_lib.workloads.user.spec import ModelSpec

__all__ = ["SYNC_EVERY", "STRETCHES", "LAUNCHES", "LAUNCHES_ENV", "REFERENCE", "REFERENCE_NOTE", "MAX_EXTENSION",
           "CONVERGENCE_PARAM", "CONVERGENCE_EVAL_NOTE", "is_convergence", "group_key", "training_cases",
           "extended_steps", "launch_plan", "run_launches"]

SYNC_EVERY = {"quick": 8, "full": 16}
STRETCHES = 8  # a run's stretches of each strategy's timed steps, shared by its launches, taking turns with the others
LAUNCHES = 2  # a run's launches (`Suite.LAUNCHES`): each a launch bias and a moment of the machine of its own
# Set by `effbench run` in each launch's environment: how many launches share the profile's steps.
LAUNCHES_ENV = "EFFBENCH_LAUNCHES"
REFERENCE = "reference"
REFERENCE_NOTE = "bare loop: same model, optimizer and batches, one replica per rank, none of the harness"
MAX_EXTENSION = 3  # a strategy faster than sync may run up to (1 + this) x the profile's steps
CONVERGENCE_PARAM = "convergence_seeds"  # marks a convergence case (and says how many seeds it runs)
CONVERGENCE_EVAL_NOTE = ("held-out loss of rank 0's replica, evaluated off the clock; a periodic strategy's replicas "
                         "averaged first, on a copy")


def is_convergence(case: CaseSpec) -> bool:
    """A convergence case (its strategy over seeds for a wall-clock budget), not a throughput case."""
    return case.param(CONVERGENCE_PARAM) is not None


def group_key(case: CaseSpec) -> tuple[str, bool]:
    """The cases that train together in a launch: a workload's throughput cases, or its convergence cases."""
    return case.workload, is_convergence(case)


def training_cases(suite: str, profile: str, device: str, backend: str,
                   models: tuple[ModelSpec, ...] = ()) -> list[CaseSpec]:
    """Every case of `suite` for the profile, device and backend filter: each strategy and the reference per
    workload, then the convergence cases. With `models`, those user's models' strategies and reference only,
    each case carrying the spec as given (`params["model"]`), from which every rank loads it."""
    from bench_lib.suites.distributed.tasks import CONVERGENCE, TASKS, convergence_budget_s
    from bench_lib.techniques.strategies import STRATEGIES

    platform = detect()
    out = []
    for dist_backend, dev in backends_for(device, backend):
        world = default_world_size(dev, platform)
        kind = device_kind(dev)
        workloads = {m.name: {"model": m.text} for m in models} or {w: {} for w in TASKS[(profile, kind)]}
        for workload, own in workloads.items():
            for name in (*STRATEGIES, REFERENCE):
                periodic = name in STRATEGIES and STRATEGIES[name].periodic
                extra = {"sync_every": SYNC_EVERY[profile]} if periodic else {}
                out.append(CaseSpec.make(suite, workload, name, dev, backend=dist_backend,
                                         world_size=world, **own, **extra))
        if models:
            continue
        # Convergence cases: one per strategy (not the reference, which has no strategy), its seeds inside.
        for workload, plan in CONVERGENCE[(profile, kind)].items():
            for name, info in STRATEGIES.items():
                extra = {"sync_every": SYNC_EVERY[profile]} if info.periodic else {}
                out.append(CaseSpec.make(suite, workload, name, dev, backend=dist_backend, world_size=world,
                                         budget_s=convergence_budget_s(plan), **{CONVERGENCE_PARAM: plan.seeds},
                                         **extra))
    return out


def extended_steps(min_steps: int, pace: Pace, wall_s: float, sync_wall_s: float) -> int:
    """Steps to reach sync's wall time at this wall-clock pace (5% over, so as not to stop just short), at
    most MAX_EXTENSION x min_steps more. The ends are the group's, so every rank reaches the same answer."""
    if wall_s >= sync_wall_s:
        return min_steps
    extra = math.ceil((sync_wall_s - wall_s) / pace.per_step_s * 1.05)
    return min_steps + min(extra, MAX_EXTENSION * min_steps)


def launch_plan(min_steps: int, launches: int, warmup: int) -> tuple[int, int]:
    """(steps of one launch, steps of a stretch): the profile's timed steps (`min_steps` less the
    warm-up) in STRETCHES equal stretches, rounded up, shared by the launches; a launch's first
    stretch runs the warm-up steps as well."""
    stretch = max(math.ceil((min_steps - warmup) / STRETCHES), 2)
    return warmup + stretch * max(STRETCHES // launches, 1), stretch


def run_launches() -> int:
    """How many launches of this run share the profile's steps (1 under torchrun or pytest)."""
    return max(1, int(os.environ.get(LAUNCHES_ENV) or 1))
