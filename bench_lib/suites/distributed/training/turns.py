"""The training suite on the ranks: a launch's cases of one workload built, then taking turns in stretches, and
each case's result from its stretches, pace, losses and memory; the convergence cases' seeds likewise."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench_lib.results.case import CaseResult, CaseSpec, SkipCase
from bench_lib.suites.distributed.base import RankContext
from bench_lib.suites.distributed.stretches import INTERVAL_NOTE, Stretches, paired_stretch_speedup, stretch_state_sd
from bench_lib.suites.distributed.training.energy_sums import run_energy
from bench_lib.suites.distributed.training.losses import LOSS_POINTS, LOSS_WINDOW, loss_at, smoothed, time_to
from bench_lib.suites.distributed.training.merge import convergence_results
from bench_lib.suites.distributed.training.plan import (
    CONVERGENCE_EVAL_NOTE,
    CONVERGENCE_PARAM,
    REFERENCE,
    REFERENCE_NOTE,
    STRETCHES,
    extended_steps,
    launch_plan,
    run_launches,
)

if TYPE_CHECKING:
    from bench_lib.suites.distributed.tasks import TrainTask
    from bench_lib.suites.distributed.train_runs import BareRun, MemoryShare, StrategyRun

__all__ = ["warm_up", "prepared", "train_together", "converge_together", "case_result", "build_run", "take_turns"]


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


def warm_up(profile: str, ctx: RankContext, case: CaseSpec, steps: int = 2) -> None:
    """A few local steps of a throw-away model of the case's task, so that one-time costs (CUDA context, library
    handles, kernel selection for these shapes) stay out of the first strategy's clock and curve. The first
    thing a group does: a model that cannot load or train fails here, before any collective of its runs."""
    import torch

    from bench_lib.suites.distributed.user_task import task_of_case

    task, _ = task_of_case(profile, ctx.device, case)
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


def prepared(profile: str, ctx: RankContext, cases: list[CaseSpec]) -> Iterator[CaseResult]:
    """The group's warm-up (`warm_up`) on every rank, and the ranks' agreement on it: nothing if every rank
    warmed up, else one skipped or failed result per case, with the reason of the first rank that could not
    (a model a rank cannot load, a factory that raises), so that every rank moves on to the next group."""
    import time

    import torch.distributed as dist

    from bench_lib.suites import failure_text

    started = time.perf_counter()
    try:
        warm_up(profile, ctx, cases[0])
        outcome = None
    except SkipCase as e:
        outcome = ("skipped", str(e) or "skipped")
    except Exception as e:  # noqa: BLE001 - the group's cases fail with the reason; the launch goes on
        outcome = ("failed", failure_text(e))
    every: list[tuple[str, str] | None] = [None] * ctx.world_size
    dist.all_gather_object(every, outcome)
    rank, bad = next(((r, o) for r, o in enumerate(every) if o is not None), (0, None))
    if bad is None:
        return
    status, reason = bad
    reason = reason if rank == 0 else f"rank {rank}: {reason}"
    wall_s = time.perf_counter() - started
    for case in cases:
        yield (CaseResult.skipped(case, reason) if status == "skipped"
               else CaseResult.failed(case, reason, wall_s))


def converge_together(cases: list[CaseSpec], first: int, profile: str,
                      ctx: RankContext) -> Iterator[CaseResult]:
    """The convergence cases of one workload (convergence_runs.py): this launch's seeds, each seed's
    strategies taking turns checkpoint by checkpoint; one result per case, in order."""
    from bench_lib.suites.distributed.convergence_runs import converge, launch_index, seeds_of_launch
    from bench_lib.suites.distributed.tasks import CONVERGENCE, ConvergencePlan
    from bench_lib.suites.distributed.training.work import step_work
    from bench_lib.suites.distributed.user_task import task_of_case

    kind = "cuda" if ctx.is_cuda else "cpu"
    task, _ = task_of_case(profile, ctx.device, cases[0])
    plan = ConvergencePlan(float(cases[0].param("budget_s")), CONVERGENCE[(profile, kind)][cases[0].workload]
                           .checkpoints, int(cases[0].param(CONVERGENCE_PARAM)))

    def turn(i: int) -> None:
        ctx.on_case(first + i, cases[i])

    launch = launch_index()
    records: dict[CaseSpec, list[dict]] = {c: [] for c in cases}
    for seed in seeds_of_launch(plan.seeds, launch, run_launches()):
        gc.collect()
        by_variant = converge(task, ctx, [c.variant for c in cases],
                              {c.variant: int(c.param("sync_every", 1)) for c in cases},
                              plan.checkpoint_times(), seed, turn)
        for case in cases:
            records[case].append({**by_variant[case.variant], "launch": launch})
    extra = {"world_size": ctx.world_size, "backend": ctx.backend, "global_batch": ctx.world_size * task.batch,
             "autocast": "bf16" if ctx.is_cuda else None, "convergence_eval": CONVERGENCE_EVAL_NOTE,
             "eval_accuracy_metric": task.accuracy_metric}
    timer = "cuda_events per step" if ctx.is_cuda else "perf_counter per step"
    results = convergence_results(records, extra, timer)
    per_step = step_work(task, ctx)  # the steps are the same model's on the same batch: one count for all
    for result in results.values():
        result.metrics["work"] = per_step
    yield from (results[c] for c in cases)


def _cuda_allocated() -> int:
    import torch

    torch.cuda.synchronize()
    return torch.cuda.memory_allocated()


def train_together(cases: list[CaseSpec], first: int, profile: str,
                   ctx: RankContext) -> Iterator[CaseResult]:
    """Every case of one workload (cases[0] is case `first` of the launch), their stretches taking turns;
    one result per case, in order. Each turn is announced, so that a fault is laid at its case."""

    from bench_lib.measure import memory
    from bench_lib.suites.distributed.train_runs import WARMUP_STEPS, MemoryShare
    from bench_lib.suites.distributed.training.work import step_work
    from bench_lib.suites.distributed.user_task import task_of_case

    gc.collect()  # the last workload's runs, where reference cycles hold them, out of this one's memory
    # What the device still holds from earlier workloads of this process (PowerSGD's buffers, a solver's
    # workspace) is not this workload's: on a GPU its share starts from there. A CPU's figure is the
    # process's resident memory, interpreter and libraries included, as a process of this workload alone has.
    left_by_earlier = _cuda_allocated() if ctx.is_cuda else 0
    task, profile_steps = task_of_case(profile, ctx.device, cases[0])
    min_steps, stretch = launch_plan(profile_steps, run_launches(), WARMUP_STEPS)
    before_runs = _cuda_allocated() - left_by_earlier if ctx.is_cuda else memory.current_rss_bytes()

    def turn(i: int) -> None:  # an injected fault (tests) fires at the case's first turn, when it is built
        ctx.on_case(first + i, cases[i])

    runs = {}
    for i, case in enumerate(cases):
        turn(i)
        runs[case.variant] = build_run(case, task, min_steps, ctx, MemoryShare(ctx.is_cuda, before_runs))

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
    results = [case_result(case, runs[case.variant], task, min_steps, ctx, base, runs.get(REFERENCE),
                            stretches, state, sync_id) for case in cases]
    per_step = step_work(task, ctx)
    for result in results:  # every result's figure is seconds a step (the reference's, each stretch's pace)
        result.metrics["work"] = per_step
    for case, result in zip(cases, results, strict=True):  # after every figure is read: its steps train on
        result.metrics.update(run_energy(runs[case.variant], task, ctx))
    yield from results


def case_result(case: CaseSpec, run: StrategyRun | BareRun, task: TrainTask, min_steps: int,
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
        "tokens_per_s_per_device": samples_per_s * task.tokens_per_sample / ctx.world_size
        if task.tokens_per_sample else None,
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
        **task.identity(),
    }
    if "sync" in stretches and case.variant != "sync":
        metrics.update(paired_stretch_speedup(mine, stretches["sync"]), speedup_baseline=sync_id)
    if case.variant == REFERENCE:
        metrics["strategy_note"] = REFERENCE_NOTE
    else:
        metrics.update(_training_metrics(case, run, task, ctx, base, min_steps))
        if case.variant == "nocomm" and reference is not None:
            metrics["harness_overhead"] = pace.per_step_s / reference.pace(min_steps).per_step_s - 1
    clock = "cuda_events" if ctx.is_cuda else "perf_counter"
    timer = f"{clock} per {'stretch' if case.variant == REFERENCE else 'step'}"
    return CaseResult(case, "ok", m, metrics, timer=timer,
                      measure_config={"min_steps": min_steps, "warmup_steps": WARMUP_STEPS,
                                      "stretches": STRETCHES, "launches": run_launches()},
                      wall_s=run.clock_s)

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
        # Exposed communication two ways: the step's time over nocomm's (any strategy; noisy, may be < 0),
        # and, where DDP measures it, its own timers' communication not overlapped with the backward.
        "exposed_comm_s": pace.per_step_s - base.nocomm_step_s if base.nocomm_step_s is not None else None,
        **run.strategy.comm_figures(),
        # Paired by stretch: stretch k of sync and of this strategy ran in the same round.
        "speedup_over_sync": base.sync_step_s / pace.per_step_s if base.sync_step_s else None,
        "speedup_over_sync_by_stretch": [s / own for s, own in zip(by_stretch, run.stretch_paces(min_steps),
                                                                    strict=True)] if by_stretch else None,
        "loss_curve": curve,
        **evaluation,
        "eval_accuracy_metric": task.accuracy_metric,
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


def build_run(case: CaseSpec, task: TrainTask, min_steps: int, ctx: RankContext,
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
