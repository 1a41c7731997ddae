"""A training run's energy: each rank's window, summed over the devices of all ranks."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bench_lib.measure import energy
from bench_lib.suites.distributed.base import RankContext

if TYPE_CHECKING:
    from bench_lib.suites.distributed.tasks import TrainTask
    from bench_lib.suites.distributed.train_runs import BareRun, StrategyRun

__all__ = ["counter_sharers", "energy_over_ranks", "run_energy"]


def counter_sharers(ctx: RankContext) -> int:
    """How many of this node's ranks read the energy counter this rank reads: those on its GPU
    (`init_rank` puts local rank r on GPU r % device_count), or all of them on the CPU package."""
    if not ctx.is_cuda:
        return ctx.local_world_size
    import torch

    gpus, mine = torch.cuda.device_count(), torch.device(ctx.device).index
    return sum(1 for r in range(ctx.local_world_size) if r % gpus == mine)


def energy_over_ranks(mine: energy.EnergyWindow | str, ctx: RankContext, work: dict[str, float]) -> dict:
    """The training loop's energy summed over the devices of all ranks (`energy.sum_over_devices`),
    each rank's own reading beside it; not measured if any rank could not measure (rank 0 says why)."""
    import torch
    import torch.distributed as dist

    row = [math.nan] * 4 if isinstance(mine, str) else [mine.joules, mine.seconds, mine.updates, mine.span_s]
    local = torch.tensor([*row, counter_sharers(ctx)], dtype=torch.float64, device=ctx.meta_device)
    gathered = [torch.empty_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, local)
    rows = [g.cpu().tolist() for g in gathered]
    missing = [r for r, row in enumerate(rows) if math.isnan(row[0])]
    if isinstance(mine, str) or missing:
        return energy.energy_metrics(mine if isinstance(mine, str) else f"not measured on ranks {missing}", {})
    windows = [energy.EnergyWindow(j, s, int(u), span, mine.source) for j, s, u, span, _ in rows]
    total = energy.sum_over_devices(windows, [int(row[4]) for row in rows])
    return {**energy.energy_metrics(total, work), "energy_j_per_rank": [w.joules for w in windows]}


def run_energy(run: StrategyRun | BareRun, task: TrainTask, ctx: RankContext) -> dict:
    """The run's energy per step, sample and token over a window of its own (`energy_window`), in the
    first launch only: the merged result takes its energy from there."""
    from bench_lib.suites.distributed.convergence_runs import launch_index

    if launch_index() != 0:
        return {}
    window, steps = run.energy_window(energy.ENERGY_WINDOW_S)
    samples = steps * ctx.world_size * task.batch
    return energy_over_ranks(window, ctx, {"step": steps, "sample": samples,
                                            "token": samples * (task.tokens_per_sample or 0)})
