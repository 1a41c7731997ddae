"""The training suite: what each data-parallel strategy costs per step and buys in loss per second.

A run launches the suite's cases LAUNCHES times (new ranks each time, the workloads and the strategies'
turns in a new random order), each launch training every strategy for its share of the profile's steps:
the profile's timed steps are cut into STRETCHES stretches of equal length, STRETCHES / LAUNCHES in each
launch (the first of a launch also runs the warm-up steps). In a launch every strategy of a workload
runs on the same ranks, taking turns: stretch 1 of every strategy runs before stretch 2 of any (ABCABC),
so that a state of the machine that lasts a minute hits every strategy alike. Each strategy keeps its
model, optimizer and data stream across its stretches, and its clock counts only its own stretches. A
figure's interval has the stretch (of every launch) as its unit and a strategy's speedup over sync comes
from paired stretches (stretches.py). Two launches rather than one: on the 2-core box, with the same 8
stretches in one launch a rerun's median fell inside the interval in 29 of 42 cases and compare of
identical code flagged 2 of 3 pairs; in two launches 100 of 112 and 2 of 8 (rerun-validation.md), for
about 4 s more a quick run. `nocomm`'s pace is the compute-only baseline that exposed communication is
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
import functools
import gc
import itertools
import math
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bench_lib.measure import energy
from bench_lib.platform import Platform, detect, device_kind
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.suites.distributed.base import DistributedSuite, RankContext, backends_for, default_world_size
from bench_lib.suites.distributed.pace import Pace
from bench_lib.suites.distributed.stretches import INTERVAL_NOTE, Stretches, paired_stretch_speedup, stretch_state_sd

if TYPE_CHECKING:
    from bench_lib.suites.distributed.tasks import TrainTask
    from bench_lib.suites.distributed.train_runs import BareRun, MemoryShare, StrategyRun

__all__ = ["TrainingSuite", "SYNC_EVERY", "REFERENCE", "CONVERGENCE_PARAM", "extended_steps", "take_turns",
           "launch_plan", "is_convergence", "convergence_results"]

SYNC_EVERY = {"quick": 8, "full": 16}
STRETCHES = 8  # a run's stretches of each strategy's timed steps, shared by its launches, taking turns with the others
LAUNCHES = 2  # a run's launches (`Suite.LAUNCHES`): each a launch bias and a moment of the machine of its own
SPEEDUP_KEYS = ("speedup", "speedup_ci95_low", "speedup_ci95_high", "speedup_pairs", "speedup_processes",
                "speedup_units", "speedup_by_launch", "speedup_baseline")
# Set by `effbench run` in each launch's environment: how many launches share the profile's steps.
LAUNCHES_ENV = "EFFBENCH_LAUNCHES"
REFERENCE = "reference"
REFERENCE_NOTE = "bare loop: same model, optimizer and batches, one replica per rank, none of the harness"
LOSS_POINTS = 40  # about this many loss-curve points per run
LOSS_WINDOW = 8
MAX_EXTENSION = 3  # a strategy faster than sync may run up to (1 + this) x the profile's steps
CONVERGENCE_PARAM = "convergence_seeds"  # marks a convergence case (and says how many seeds it runs)
CONVERGENCE_EVAL_NOTE = ("held-out loss of rank 0's replica, evaluated off the clock; a periodic strategy's replicas "
                         "averaged first, on a copy")


def is_convergence(case: CaseSpec) -> bool:
    """A convergence case (its strategy over seeds for a wall-clock budget), not a throughput case."""
    return case.param(CONVERGENCE_PARAM) is not None


def _group_key(case: CaseSpec) -> tuple[str, bool]:
    """The cases that train together in a launch: a workload's throughput cases, or its convergence cases."""
    return case.workload, is_convergence(case)


@dataclass
class _Baselines:
    """What nocomm and sync of the same workload established in this launch."""

    nocomm_step_s: float | None = None
    sync_step_s: float | None = None
    sync_stretch_paces: list[float] | None = None
    sync_wall_s: float | None = None
    target_loss: float | None = None

    @classmethod
    def of(cls, runs: dict[str, StrategyRun | BareRun], timed_steps: int) -> _Baselines:
        base = cls()
        if "nocomm" in runs:
            base.nocomm_step_s = runs["nocomm"].pace(timed_steps).per_step_s
        if "sync" in runs:
            sync = runs["sync"]
            base.sync_step_s = sync.pace(timed_steps).per_step_s
            base.sync_stretch_paces = sync.stretch_paces(timed_steps)
            base.sync_wall_s, base.target_loss = sync.clock_s, smoothed(sync.loss_curve())[-1][1]
        return base


def smoothed(curve: list[list[float]], window: int = LOSS_WINDOW) -> list[tuple[float, float]]:
    """(wall_s, trailing mean of the last `window` logged losses) per logged point."""
    out = []
    for i, (wall, _, _) in enumerate(curve):
        recent = [loss for _, _, loss in curve[max(0, i - window + 1):i + 1]]
        out.append((wall, sum(recent) / len(recent)))
    return out


def time_to(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((wall for wall, loss in curve if loss <= target), None)


def loss_at(curve: list[tuple[float, float]], wall_s: float) -> float | None:
    """The smoothed loss at wall_s, or None if the run ended before it."""
    if not curve or curve[-1][0] < wall_s * 0.98:
        return None
    return [loss for wall, loss in curve if wall <= wall_s][-1]


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


def _launches() -> int:
    """How many launches of this run share the profile's steps (1 under torchrun or pytest)."""
    return max(1, int(os.environ.get(LAUNCHES_ENV) or 1))


def _warm_up(profile: str, ctx: RankContext, workload: str, steps: int = 2) -> None:
    """A few local steps of a throw-away model, so that one-time costs (CUDA context, library
    handles, kernel selection for these shapes) stay out of the first strategy's clock and curve."""
    import torch

    from bench_lib.suites.distributed.tasks import task_for

    task, _ = task_for(profile, ctx.device, workload)
    model = task.model().to(ctx.device)
    opt = torch.optim.AdamW(model.parameters(), lr=task.lr, **({"fused": True} if ctx.is_cuda else {}))
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = task.sample(gen, ctx.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=ctx.is_cuda):
            loss = task.loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if ctx.is_cuda:
        torch.cuda.synchronize()


def _counter_sharers(ctx: RankContext) -> int:
    """How many of this node's ranks read the energy counter this rank reads: those on its GPU
    (`init_rank` puts local rank r on GPU r % device_count), or all of them on the CPU package."""
    if not ctx.is_cuda:
        return ctx.local_world_size
    import torch

    gpus, mine = torch.cuda.device_count(), torch.device(ctx.device).index
    return sum(1 for r in range(ctx.local_world_size) if r % gpus == mine)


def _energy_over_ranks(mine: energy.EnergyWindow | str, ctx: RankContext, work: dict[str, float]) -> dict:
    """The training loop's energy summed over the devices of all ranks (`energy.sum_over_devices`),
    each rank's own reading beside it; not measured if any rank could not measure (rank 0 says why)."""
    import torch
    import torch.distributed as dist

    row = [math.nan] * 4 if isinstance(mine, str) else [mine.joules, mine.seconds, mine.updates, mine.span_s]
    local = torch.tensor([*row, _counter_sharers(ctx)], dtype=torch.float64, device=ctx.meta_device)
    gathered = [torch.empty_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, local)
    rows = [g.cpu().tolist() for g in gathered]
    missing = [r for r, row in enumerate(rows) if math.isnan(row[0])]
    if isinstance(mine, str) or missing:
        return energy.energy_metrics(mine if isinstance(mine, str) else f"not measured on ranks {missing}", {})
    windows = [energy.EnergyWindow(j, s, int(u), span, mine.source) for j, s, u, span, _ in rows]
    total = energy.sum_over_devices(windows, [int(row[4]) for row in rows])
    return {**energy.energy_metrics(total, work), "energy_j_per_rank": [w.joules for w in windows]}


def _energy(run: StrategyRun | BareRun, task: TrainTask, ctx: RankContext) -> dict:
    """The run's energy per step, sample and token over a window of its own (`energy_window`), in the
    first launch only: the merged result takes its energy from there."""
    from bench_lib.suites.distributed.convergence_runs import launch_index

    if launch_index() != 0:
        return {}
    window, steps = run.energy_window(energy.ENERGY_WINDOW_S)
    samples = steps * ctx.world_size * task.batch
    return _energy_over_ranks(window, ctx, {"step": steps, "sample": samples,
                                            "token": samples * (task.tokens_per_sample or 0)})


class TrainingSuite(DistributedSuite):
    NAME = "training"
    LAUNCHES = LAUNCHES

    def launch_order(self, cases: list[CaseSpec], rng: random.Random) -> list[CaseSpec]:
        """The workloads in a random order, each workload's cases together (they take turns in one group),
        in a random order of turns."""
        groups = {_group_key(c): [] for c in cases}
        for case in cases:
            groups[_group_key(case)].append(case)
        order = rng.sample(list(groups.values()), len(groups))
        return [c for group in order for c in rng.sample(group, len(group))]

    def merge_launches(self, launches: list[dict[CaseSpec, CaseResult]]) -> dict[CaseSpec, CaseResult]:
        """Each case over the launches: its stretches pooled (the units of its interval), the run's machine
        state over every case's stretches, speedups from the stretches paired in every launch, and the
        wall-clock figures over every launch's timed steps; losses, memory and energy from the first launch."""
        merged = super().merge_launches(launches)
        merged.update(_merge_convergence(launches))
        pooled = {}
        for case in merged:
            parts = [_stretches_of_result(launch[case]) for launch in launches]
            if all(p is not None for p in parts):
                pooled[case] = functools.reduce(Stretches.then, parts)
        state = stretch_state_sd(list(pooled.values()))
        paces = {c: _wall_pace([launch[c] for launch in launches]) for c in pooled}

        def same_group(case: CaseSpec, variant: str) -> CaseSpec | None:
            return next((c for c in pooled if c.variant == variant and c.workload == case.workload
                         and self.launch_key(c) == self.launch_key(case)), None)

        for case, stretches in pooled.items():
            results = [launch[case] for launch in launches]
            m = stretches.measurement(state)
            pace = paces[case]
            metrics = {**results[0].metrics, **stretches.metrics(),
                       "step_time_median_s": m.median, "step_time_p90_s": m.p90, "step_time_wall_s": pace.per_step_s,
                       "timed_steps": pace.steps, "timed_wall_s": pace.wall_s,
                       "launches": {"count": len(results), "median_s": [r.measurement.median for r in results],
                                    "step_time_wall_s": [r.metrics.get("step_time_wall_s") for r in results],
                                    "wall_s": [r.wall_s for r in results]}}
            if metrics.get("global_batch"):
                tokens_per_sample = (metrics["tokens_per_s"] or 0) / metrics["samples_per_s"]
                metrics["samples_per_s"] = pace.rate(metrics["global_batch"])
                metrics["tokens_per_s"] = metrics["samples_per_s"] * tokens_per_sample or None
            sync, nocomm, ref = (same_group(case, v) for v in ("sync", "nocomm", REFERENCE))
            for key in SPEEDUP_KEYS:  # the first launch's, from its stretches alone
                metrics.pop(key, None)
            if sync is not None and sync != case:
                metrics.update(paired_stretch_speedup(stretches, pooled[sync]), speedup_baseline=sync.id)
                if case.variant != REFERENCE:
                    metrics["speedup_over_sync"] = paces[sync].per_step_s / pace.per_step_s
                    metrics["speedup_over_sync_by_stretch"] = [
                        s / own for s, own in zip(pooled[sync].paces, stretches.paces, strict=True)]
            if nocomm is not None and case.variant != REFERENCE:
                metrics["exposed_comm_s"] = pace.per_step_s - paces[nocomm].per_step_s
            if case.variant == "nocomm" and ref is not None:
                metrics["harness_overhead"] = pace.per_step_s / paces[ref].per_step_s - 1
            merged[case] = replace(results[0], measurement=m, metrics=metrics,
                                   measure_config={**results[0].measure_config, "launches": len(results)},
                                   wall_s=sum(r.wall_s for r in results))
        return merged

    def cases(self, profile: str, device: str, backend: str) -> list[CaseSpec]:
        from bench_lib.suites.distributed.tasks import CONVERGENCE, TASKS, convergence_budget_s
        from bench_lib.techniques.strategies import STRATEGIES

        platform = detect()
        out = []
        for dist_backend, dev in backends_for(device, backend):
            world = default_world_size(dev, platform)
            kind = device_kind(dev)
            for workload in TASKS[(profile, kind)]:
                for name in (*STRATEGIES, REFERENCE):
                    periodic = name in STRATEGIES and STRATEGIES[name].periodic
                    extra = {"sync_every": SYNC_EVERY[profile]} if periodic else {}
                    out.append(CaseSpec.make(self.NAME, workload, name, dev, backend=dist_backend,
                                             world_size=world, **extra))
            # Convergence cases: one per strategy (not the reference, which has no strategy), its seeds inside.
            for workload, plan in CONVERGENCE[(profile, kind)].items():
                for name, info in STRATEGIES.items():
                    extra = {"sync_every": SYNC_EVERY[profile]} if info.periodic else {}
                    out.append(CaseSpec.make(self.NAME, workload, name, dev, backend=dist_backend, world_size=world,
                                             budget_s=convergence_budget_s(plan), **{CONVERGENCE_PARAM: plan.seeds},
                                             **extra))
        return out

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
        per_group = collections.Counter(_group_key(c) for c in cases)
        return [self.timeout_s(c, profile) * per_group[_group_key(c)] for c in cases]

    def run_on_rank(self, cases: list[CaseSpec], profile: str, ctx: RankContext) -> Iterator[CaseResult]:
        first = 0
        for (workload, convergence), group in itertools.groupby(cases, key=_group_key):
            group = list(group)
            _warm_up(profile, ctx, workload)
            train = self._converge_together if convergence else self._train_together
            yield from train(group, first, profile, ctx)
            first += len(group)

    def _converge_together(self, cases: list[CaseSpec], first: int, profile: str,
                           ctx: RankContext) -> Iterator[CaseResult]:
        """The convergence cases of one workload (convergence_runs.py): this launch's seeds, each seed's
        strategies taking turns checkpoint by checkpoint; one result per case, in order."""
        from bench_lib.suites.distributed.convergence_runs import converge, launch_index, seeds_of_launch
        from bench_lib.suites.distributed.tasks import CONVERGENCE, ConvergencePlan, task_for

        kind = "cuda" if ctx.is_cuda else "cpu"
        task, _ = task_for(profile, ctx.device, cases[0].workload)
        plan = ConvergencePlan(float(cases[0].param("budget_s")), CONVERGENCE[(profile, kind)][cases[0].workload]
                               .checkpoints, int(cases[0].param(CONVERGENCE_PARAM)))

        def turn(i: int) -> None:
            ctx.on_case(first + i, cases[i])

        launch = launch_index()
        records: dict[CaseSpec, list[dict]] = {c: [] for c in cases}
        for seed in seeds_of_launch(plan.seeds, launch, _launches()):
            gc.collect()
            by_variant = converge(task, ctx, [c.variant for c in cases],
                                  {c.variant: int(c.param("sync_every", 1)) for c in cases},
                                  plan.checkpoint_times(), seed, turn)
            for case in cases:
                records[case].append({**by_variant[case.variant], "launch": launch})
        extra = {"world_size": ctx.world_size, "backend": ctx.backend, "global_batch": ctx.world_size * task.batch,
                 "autocast": "bf16" if ctx.is_cuda else None, "convergence_eval": CONVERGENCE_EVAL_NOTE,
                 "eval_accuracy_metric": "next-byte top-1" if task.tokens_per_sample else "top-1 class"}
        timer = "cuda_events per step" if ctx.is_cuda else "perf_counter per step"
        results = convergence_results(records, extra, timer)
        yield from (results[c] for c in cases)

    def _train_together(self, cases: list[CaseSpec], first: int, profile: str,
                        ctx: RankContext) -> Iterator[CaseResult]:
        """Every case of one workload (cases[0] is case `first` of the launch), their stretches taking turns;
        one result per case, in order. Each turn is announced, so that a fault is laid at its case."""
        import torch

        from bench_lib.measure import memory
        from bench_lib.suites.distributed.tasks import task_for
        from bench_lib.suites.distributed.train_runs import WARMUP_STEPS, MemoryShare

        task, profile_steps = task_for(profile, ctx.device, cases[0].workload)
        min_steps, stretch = launch_plan(profile_steps, _launches(), WARMUP_STEPS)
        gc.collect()  # the last workload's runs, where reference cycles hold them, out of this one's memory
        if ctx.is_cuda:
            torch.cuda.synchronize()
        before_runs = torch.cuda.memory_allocated() if ctx.is_cuda else memory.current_rss_bytes()

        def turn(i: int) -> None:  # an injected fault (tests) fires at the case's first turn, when it is built
            ctx.on_case(first + i, cases[i])

        runs = {}
        for i, case in enumerate(cases):
            turn(i)
            runs[case.variant] = _build_run(case, task, min_steps, ctx, MemoryShare(ctx.is_cuda, before_runs))

        take_turns(list(runs.values()), stretch, turn, first_extra=WARMUP_STEPS)
        base = _Baselines.of(runs, min_steps)
        if base.sync_wall_s is not None:
            for variant, run in runs.items():
                if variant not in ("sync", "nocomm", REFERENCE):
                    run.planned = extended_steps(min_steps, run.pace(min_steps), run.clock_s, base.sync_wall_s)
            take_turns(list(runs.values()), stretch, turn)
        stretches = {variant: _stretches_of_run(run, min_steps) for variant, run in runs.items()}
        state = stretch_state_sd(list(stretches.values()))
        sync_id = next((c.id for c in cases if c.variant == "sync"), None)
        results = [self._result(case, runs[case.variant], task, min_steps, ctx, base, runs.get(REFERENCE),
                                stretches, state, sync_id) for case in cases]
        for case, result in zip(cases, results, strict=True):  # after every figure is read: its steps train on
            result.metrics.update(_energy(runs[case.variant], task, ctx))
        yield from results

    def _result(self, case: CaseSpec, run: StrategyRun | BareRun, task: TrainTask, min_steps: int,
                ctx: RankContext, base: _Baselines, reference: BareRun | None, stretches: dict[str, Stretches],
                state: float, sync_id: str | None) -> CaseResult:
        import torch
        import torch.distributed as dist

        from bench_lib.suites.distributed.train_runs import WARMUP_STEPS

        pace = run.pace(min_steps)
        mine = stretches[case.variant]
        m = mine.measurement(state)
        peak = torch.tensor([run.memory.peak], dtype=torch.int64, device=ctx.meta_device)
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
        samples_per_s = pace.rate(ctx.world_size * task.batch)
        metrics = {
            "step_time_median_s": m.median,
            "step_time_p90_s": m.p90,
            "step_time_wall_s": pace.per_step_s,
            "timed_steps": pace.steps,
            "timed_wall_s": pace.wall_s,
            **mine.metrics(),
            "interval": INTERVAL_NOTE,
            "samples_per_s": samples_per_s,
            "tokens_per_s": samples_per_s * task.tokens_per_sample if task.tokens_per_sample else None,
            "peak_memory_bytes": int(peak.item()),
            "peak_memory_kind": run.memory.kind + " per rank, max over ranks (this run's share, as if alone)",
            "train_wall_s": run.clock_s,
            "steps": run.steps,
            "world_size": ctx.world_size,
            "backend": ctx.backend,
            "global_batch": ctx.world_size * task.batch,
            "model_params": sum(p.numel() for p in run.model.parameters()),
            "stretches": STRETCHES,
            "autocast": "bf16" if ctx.is_cuda else None,
            "torch_threads": torch.get_num_threads(),
        }
        if "sync" in stretches and case.variant != "sync":
            metrics.update(paired_stretch_speedup(mine, stretches["sync"]), speedup_baseline=sync_id)
        if case.variant == REFERENCE:
            metrics["strategy_note"] = REFERENCE_NOTE
        else:
            metrics.update(self._training_metrics(case, run, task, ctx, base, min_steps))
            if case.variant == "nocomm" and reference is not None:
                metrics["harness_overhead"] = pace.per_step_s / reference.pace(min_steps).per_step_s - 1
        clock = "cuda_events" if ctx.is_cuda else "perf_counter"
        timer = f"{clock} per {'stretch' if case.variant == REFERENCE else 'step'}"
        return CaseResult(case, "ok", m, metrics, timer=timer,
                          measure_config={"min_steps": min_steps, "warmup_steps": WARMUP_STEPS,
                                          "stretches": STRETCHES, "launches": _launches()},
                          wall_s=run.clock_s)

    @staticmethod
    def _training_metrics(case: CaseSpec, run: StrategyRun, task: TrainTask, ctx: RankContext, base: _Baselines,
                          min_steps: int) -> dict:
        """The strategy's loss and comparison figures (the reference has none: it is a speed yardstick)."""
        from bench_lib.techniques.strategies import STRATEGIES

        run.strategy.finish()
        evaluation = task.evaluate(run.model, ctx.device, autocast=ctx.is_cuda)
        curve = run.loss_curve()
        smooth = smoothed(curve)
        at_sync_wall = loss_at(smooth, base.sync_wall_s) if base.sync_wall_s else None
        pace, by_stretch = run.pace(min_steps), base.sync_stretch_paces or []
        return {
            "exposed_comm_s": pace.per_step_s - base.nocomm_step_s if base.nocomm_step_s is not None else None,
            # Paired by stretch: stretch k of sync and of this strategy ran in the same round.
            "speedup_over_sync": base.sync_step_s / pace.per_step_s if base.sync_step_s else None,
            "speedup_over_sync_by_stretch": [s / own for s, own in zip(by_stretch, run.stretch_paces(min_steps),
                                                                        strict=True)] if by_stretch else None,
            "loss_curve": curve,
            **evaluation,
            "eval_accuracy_metric": "next-byte top-1" if task.tokens_per_sample else "top-1 class",
            "target_loss": base.target_loss,
            "time_to_target_s": time_to(smooth, base.target_loss) if base.target_loss is not None else None,
            "loss_at_equal_wall": at_sync_wall,
            "loss_gap_at_equal_wall": at_sync_wall - base.target_loss if at_sync_wall is not None else None,
            "equal_wall_s": base.sync_wall_s,
            "final_train_loss": smooth[-1][1],
            "sync_every": run.strategy.sync_every if STRATEGIES[case.variant].periodic else None,
            "strategy_note": STRATEGIES[case.variant].note,
            "loss_smoothing": f"trailing mean of {LOSS_WINDOW} logged rank-0 training losses",
        }


def _build_run(case: CaseSpec, task: TrainTask, min_steps: int, ctx: RankContext,
               share: MemoryShare) -> StrategyRun | BareRun:
    """The case's model, optimizer and strategy, built while `share` counts what they take."""
    from bench_lib.suites.distributed.train_runs import BareRun, StrategyRun

    share.begin()
    if case.variant == REFERENCE:
        run = BareRun(task, ctx, share, min_steps)
    else:
        run = StrategyRun(task, ctx, share, min_steps, case.variant, int(case.param("sync_every", 1)),
                          log_every=max(1, min_steps // LOSS_POINTS))
    share.end()
    return run


def take_turns(runs: list[StrategyRun | BareRun], stretch: int, before: Callable[[int], None],
               first_extra: int = 0) -> None:
    """Round after round, the next stretch of every run that has steps left to its plan, in case order;
    `before(i)` ahead of run i's stretch. A run's first stretch is `first_extra` steps longer (its warm-up)."""
    while any(r.steps < r.planned for r in runs):
        for i, r in enumerate(runs):
            if r.steps < r.planned:
                before(i)
                r.stretch(min(stretch + (first_extra if r.steps == 0 else 0), r.planned - r.steps))


def _stretches_of_run(run: StrategyRun | BareRun, timed_steps: int) -> Stretches:
    return Stretches.one_launch(run.step_times(timed_steps), run.step_stretches(timed_steps),
                                run.stretch_paces(timed_steps), run.stretch_starts(timed_steps))


def _wall_pace(results: list[CaseResult]) -> Pace:
    """The timed steps of every launch over their wall time."""
    return Pace(sum(int(r.metrics["timed_steps"]) for r in results), sum(r.metrics["timed_wall_s"] for r in results))


def _stretches_of_result(result: CaseResult) -> Stretches | None:
    """A stored result's stretches (None: stored before its stretches were, or not measured)."""
    m, metrics = result.measurement, result.metrics
    if result.status != "ok" or m is None or m.processes is None or "stretch_started_s" not in metrics:
        return None
    return Stretches(m.samples, m.processes, tuple(metrics["stretch_step_s"]), tuple(metrics["stretch_started_s"]),
                     tuple(metrics.get("stretch_launch") or [0] * len(metrics["stretch_step_s"])))


def convergence_results(records: dict[CaseSpec, list[dict]], extra: dict, timer: str) -> dict[CaseSpec, CaseResult]:
    """The convergence cases of one workload from their seeds' records (`convergence_runs.converge`, each
    with its launch): the figures over seeds (convergence.py), the records kept beside them. The samples
    are the seconds per step between consecutive checkpoints, each seed a unit of the interval."""
    from bench_lib.measure.stats import Measurement
    from bench_lib.suites.distributed.convergence import summarize
    from bench_lib.techniques.strategies import STRATEGIES

    records = {case: sorted(runs, key=lambda r: r["seed"]) for case, runs in records.items()}
    ran = {case: runs for case, runs in records.items() if runs}
    summary = summarize({case.variant: [r["curve"] for r in runs] for case, runs in ran.items()})
    out = {}
    for case, runs in records.items():
        if not runs:
            out[case] = CaseResult.skipped(case, "no seed of this case ran in this launch (fewer seeds than launches)")
            continue
        samples = [(p, i) for i, r in enumerate(runs) for p in r["interval_paces"]]
        m = Measurement(tuple(p for p, _ in samples), processes=tuple(i for _, i in samples), process_kind="seed")
        metrics = {**extra, **summary[case.variant],
                   "convergence_runs": runs,
                   "steps_by_seed": [r["steps"] for r in runs],
                   "sync_every": case.param("sync_every"),
                   "strategy_note": STRATEGIES[case.variant].note}
        out[case] = CaseResult(case, "ok", m, metrics, timer=timer,
                               measure_config={"seeds": [r["seed"] for r in runs],
                                               "launches": len({r["launch"] for r in runs})},
                               wall_s=sum(r["wall_s"] for r in runs))
    return out


def _merge_convergence(launches: list[dict[CaseSpec, CaseResult]]) -> dict[CaseSpec, CaseResult]:
    """Every convergence case's seeds from every launch, their figures computed over all of them (per workload
    and launch group: the target comes from sync's seeds). A launch that failed decides its case's outcome."""
    groups: dict[tuple, dict[CaseSpec, list[CaseResult]]] = {}
    for case in launches[0]:
        if is_convergence(case) and any("convergence_runs" in launch[case].metrics for launch in launches
                                        if case in launch):
            key = (case.workload, case.device, case.param("backend"), case.param("world_size"))
            groups.setdefault(key, {})[case] = [launch[case] for launch in launches if case in launch]
    out = {}
    for by_case in groups.values():
        failed = {c: next(r for r in rs if r.status == "failed") for c, rs in by_case.items()
                  if any(r.status == "failed" for r in rs)}
        ok = {c: rs for c, rs in by_case.items() if c not in failed}
        records = {c: [run for r in rs if r.status == "ok" for run in r.metrics.get("convergence_runs", [])]
                   for c, rs in ok.items()}
        first = {c: next((r for r in rs if r.status == "ok"), rs[0]) for c, rs in ok.items()}
        merged = convergence_results(records, {}, "") if records else {}
        for c, r in merged.items():
            if r.status == "ok":
                base = first[c]
                keep = {k: v for k, v in base.metrics.items() if k not in r.metrics}
                merged[c] = replace(r, metrics={**keep, **r.metrics}, timer=base.timer)
            elif first[c].status != "ok":
                merged[c] = first[c]
        out.update(merged)
        out.update(failed)
    return out
