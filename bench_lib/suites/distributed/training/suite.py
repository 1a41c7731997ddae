"""The training suite: what each data-parallel strategy costs per step and buys in loss per second.

A run launches the suite's cases LAUNCHES times (new ranks each time, the workloads and the strategies'
turns in a new random order), each launch training every strategy for its share of the profile's steps:
the profile's timed steps are cut into STRETCHES stretches of equal length, STRETCHES / LAUNCHES in each
launch (the first of a launch also runs the warm-up steps). In a launch every strategy of a workload
runs on the same ranks, taking turns: stretch 1 of every strategy runs before stretch 2 of any (ABCABC),
so that a state of the machine that lasts a minute hits every strategy alike. Each strategy keeps its
model, optimizer and data stream across its stretches, and its clock counts only its own stretches. A
figure's interval has the stretch (of every launch) as its unit and a strategy's speedup over sync comes
from paired stretches (stretches.py). Two launches rather than one: a launch's ranks carry
a bias of their own, as a process does, which the stretches of one launch share and their interval cannot
see; a second launch shows it, for a few seconds more a quick run (docs/validation/rerun-validation).
`nocomm`'s pace is the compute-only baseline that exposed communication is
measured against; `sync`'s loss is the target, and its wall time the budget for the equal-wall
comparison. Every strategy starts from the same weights and sees the same per-rank batches. Once every
strategy has run its launch's steps, a strategy faster than sync trains on (at most 4x the steps, in
stretches taking turns again) until it has used sync's wall time, so `loss_at_equal_wall` compares
what each buys in the same time; the timed figures come from the profile's steps only, which every
strategy ran in the same turns.

Convergence cases (a `convergence_seeds` param) are a separate group of each workload: one case per strategy,
its seeds inside, each seed a run of a fixed wall-clock budget whose held-out loss is evaluated at shared
checkpoint times (convergence_runs.py); the figures over seeds (convergence.py) are recomputed when the
launches, each with its share of the seeds, are merged. A param rather than a variant of their own, so that
a convergence case names its strategy as its variant and `-k convergence` or `-k sync` select as expected;
apart from the throughput cases because a budget in wall time and pauses for evaluation would disturb the
paired stretches, and the throughput cases' losses (one seed, training loss, the first launch) cannot say
whether a strategy converges sooner.

A user's causal LM (`--model`, `user_task.py`) is a workload of its own: its throughput cases only (the
convergence cases' wall-clock budgets are planned for the built-in tasks), trained from its own weights on the
eval text. Each rank loads the model from the spec its cases carry; a group whose model a rank cannot load or
train (`turns.prepared`) fails (or skips) its cases with the reason, and the launch goes on to the next group.

`reference` is the bare training loop (train_runs.BareRun) on the same model, optimizer and batches,
one replica per rank, taking its turns with the others: nocomm's pace over it is the harness's overhead.

Throughput, exposed communication and the equal-wall budget come from the wall clock of the timed
steps (pace.py says why not from the median step), over every launch; the per-step distribution is
stored beside it. Losses are rank 0's training losses in the first launch, smoothed by a trailing mean
over LOSS_WINDOW logged points before they are compared with the target; the held-out loss is measured
once at the end of it.
"""

from __future__ import annotations

import collections
import itertools
import os
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bench_lib.platform import Platform
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.suites.distributed.base import DistributedSuite, RankContext
from bench_lib.suites.distributed.training.merge import merge_convergence, merge_stretches
from bench_lib.suites.distributed.training.plan import (
    CONVERGENCE_PARAM,
    LAUNCHES,
    group_key,
    is_convergence,
    training_cases,
)
from bench_lib.suites.distributed.training.turns import converge_together, prepared, train_together

if TYPE_CHECKING:
    from bench_lib.workloads.user.spec import ModelSpec

__all__ = ["TrainingSuite"]


class TrainingSuite(DistributedSuite):
    NAME = "training"
    LAUNCHES = LAUNCHES

    def launch_order(self, cases: list[CaseSpec], rng: random.Random) -> list[CaseSpec]:
        """The workloads in a random order, each workload's cases together (they take turns in one group),
        in a random order of turns."""
        groups = {group_key(c): [] for c in cases}
        for case in cases:
            groups[group_key(case)].append(case)
        order = rng.sample(list(groups.values()), len(groups))
        return [c for group in order for c in rng.sample(group, len(group))]

    def merge_launches(self, launches: list[dict[CaseSpec, CaseResult]]) -> dict[CaseSpec, CaseResult]:
        """Each case over the launches: its stretches pooled (the units of its interval), the run's machine
        state over every case's stretches, speedups from the stretches paired in every launch, and the
        wall-clock figures over every launch's timed steps; losses, memory and energy from the first launch."""
        merged = super().merge_launches(launches)
        merged.update(merge_convergence(launches))
        return merge_stretches(merged, launches, self.launch_key)

    def cases(self, profile: str, device: str, backend: str, models: tuple[ModelSpec, ...] = ()) -> list[CaseSpec]:
        return training_cases(self.NAME, profile, device, backend, models)

    def skip_reason(self, case: CaseSpec, platform: Platform) -> str | None:
        if case.variant == "sync_bf16" and self.backend_of(case) != "nccl":
            return ("DDP's bf16_compress_hook needs NCCL (torch refuses it on Gloo: 'BF16 all reduce communication "
                    "hook required CUDA 11+ and NCCL 2.10+')")
        return super().skip_reason(case, platform)

    def timeout_s(self, case: CaseSpec, profile: str) -> float:
        """A convergence case runs its seeds' budgets: 3x their total on top of the usual timeout."""
        base = super().timeout_s(case, profile)
        if is_convergence(case) and "EFFBENCH_DIST_TIMEOUT_S" not in os.environ:
            return base + 3 * float(case.param("budget_s")) * int(case.param(CONVERGENCE_PARAM))
        return base

    def launch_timeouts(self, cases: list[CaseSpec], profile: str) -> list[float]:
        """A workload's cases take turns, so the first result comes once all of them are done: each
        case may take its group's total (a relaunch after a fault starts another such group)."""
        per_group = collections.Counter(group_key(c) for c in cases)
        return [self.timeout_s(c, profile) * per_group[group_key(c)] for c in cases]

    def run_on_rank(self, cases: list[CaseSpec], profile: str, ctx: RankContext) -> Iterator[CaseResult]:
        first = 0
        for (_, convergence), group in itertools.groupby(cases, key=group_key):
            group = list(group)
            unprepared = list(prepared(profile, ctx, group))
            if unprepared:
                yield from unprepared
            else:
                train = converge_together if convergence else train_together
                yield from train(group, first, profile, ctx)
            first += len(group)
