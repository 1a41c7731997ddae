"""Convergence figures across seeds: time to target and held-out loss at equal wall time, with t intervals.

The training suite's convergence cases (training/, `convergence_runs.py`) train each strategy for the
same wall-clock budget, once per seed, and evaluate the held-out loss at the same checkpoint times (the
budget cut into equal parts, and time 0). A seed's curve is a list of checkpoint rows
`[checkpoint_s, wall_s, step, eval_loss, eval_accuracy]`: `checkpoint_s` is the nominal time, the same
for every strategy and seed; `wall_s` is when the step that crossed it ended on the run's clock (at most
about one step later). This module turns the seeds' curves into the figures; pure functions of stored
numbers, no torch, so that a run's launches (each with some of the seeds) are pooled in the parent.

- The target is the held-out loss that *every* seed of `sync` reached at its final checkpoint: the
  largest of sync's final losses. With the median, sync itself would miss its own target in about
  half of its seeds; with the largest, "reaches the target" means "as good as sync surely is at the end
  of the budget" (`TARGET_DEFINITION`).
- A seed's time to target is when its held-out loss first fell to the target, linearly interpolated
  in wall time between the checkpoint above it and the first at or below it; a seed that never got
  there within the budget has None. A strategy's time to target is a number only if every seed reached
  it; otherwise it is "not reached" with the count of seeds that did.
- Loss at equal wall time is each seed's held-out loss at the final checkpoint (the budget).
- Both are summarized as the mean over seeds with its 95% Student t interval over seeds
  (mean +- t(n-1) s / sqrt(n), a time's lower end clamped at 0): seeds are the unit, since a seed's
  initial weights and data order decide its curve; with 3 seeds t is 4.30, so the interval says how little 3 seeds tell.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from bench_lib.measure.stats import CONFIDENCE, student_t_ppf

__all__ = ["TARGET_DEFINITION", "CURVE_COLUMNS", "t_interval", "time_to_target", "target_loss",
           "aligned_checkpoints", "median_band", "summarize"]

TARGET_DEFINITION = ("the largest of sync's held-out losses at its final checkpoint over seeds "
                     "(the loss every seed of sync reached within the budget)")
CURVE_COLUMNS = ("checkpoint_s", "wall_s", "step", "eval_loss", "eval_accuracy")
_CHECK, _WALL, _STEP, _LOSS = 0, 1, 2, 3


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): the mean over seeds with its two-sided Student t interval. With one value the
    interval is (nan, nan): one seed says nothing about the next."""
    if not values:
        return math.nan, math.nan, math.nan
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = student_t_ppf(0.5 + confidence / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def time_to_target(curve: Sequence[Sequence[float]], target: float) -> float | None:
    """Wall time at which the held-out loss first fell to `target`, interpolated linearly between the
    checkpoint before and the first at or below it; None if no checkpoint got there."""
    before = None
    for row in curve:
        wall, loss = row[_WALL], row[_LOSS]
        if loss <= target:
            if before is None or before[1] <= loss:
                return float(wall)
            w0, l0 = before
            return float(w0 + (wall - w0) * (l0 - target) / (l0 - loss))
        before = (wall, loss)
    return None


def target_loss(sync_curves: Sequence[Sequence[Sequence[float]]]) -> float | None:
    """`TARGET_DEFINITION`: the largest final held-out loss of sync's seeds (None without sync)."""
    finals = [c[-1][_LOSS] for c in sync_curves if c]
    return max(finals) if finals else None


def aligned_checkpoints(curves: Sequence[Sequence[Sequence[float]]]) -> list[float]:
    """The checkpoint times the curves share; ValueError if any curve has other checkpoints (a figure
    at "equal wall time" compares only curves evaluated at the same times)."""
    if not curves:
        return []
    first = [row[_CHECK] for row in curves[0]]
    for c in curves[1:]:
        times = [row[_CHECK] for row in c]
        if len(times) != len(first) or any(not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
                                           for a, b in zip(times, first, strict=False)):
            raise ValueError(f"checkpoints differ between seeds or strategies: {first} vs {times}")
    return first


def median_band(curves: Sequence[Sequence[Sequence[float]]]) -> list[tuple[float, float, float, float]]:
    """Per shared checkpoint: (checkpoint_s, median, min, max) of the seeds' held-out losses."""
    times = aligned_checkpoints(curves)
    out = []
    for i, t in enumerate(times):
        losses = [c[i][_LOSS] for c in curves]
        out.append((t, statistics.median(losses), min(losses), max(losses)))
    return out


def summarize(curves_by_strategy: dict[str, Sequence[Sequence[Sequence[float]]]],
              baseline: str = "sync") -> dict[str, dict]:
    """Per strategy, the figures the result stores beside its seeds' curves. Every curve of every
    strategy must share the checkpoints (`aligned_checkpoints`). Without the baseline there is no
    target, so no time to target (the loss at equal wall time stands alone)."""
    aligned_checkpoints([c for curves in curves_by_strategy.values() for c in curves])
    target = target_loss(curves_by_strategy.get(baseline, []))
    out = {}
    for name, curves in curves_by_strategy.items():
        finals = [c[-1][_LOSS] for c in curves]
        mean, lo, hi = t_interval(finals)
        metrics = {
            "convergence_seeds": len(curves),
            "convergence_budget_s": curves[0][-1][_CHECK] if curves else None,
            "eval_loss_at_budget": mean, "eval_loss_at_budget_ci95_low": lo, "eval_loss_at_budget_ci95_high": hi,
            "eval_loss_at_budget_by_seed": finals,
            "eval_loss_band": [list(row) for row in median_band(curves)],
            "convergence_target_loss": target,
            "convergence_target_definition": TARGET_DEFINITION if target is not None else None,
            "convergence_interval": "mean over seeds +- Student t(n-1) x sd / sqrt(n), 95%",
        }
        if target is not None:
            times = [time_to_target(c, target) for c in curves]
            reached = [t for t in times if t is not None]
            t_mean, t_lo, t_hi = t_interval(reached) if len(reached) == len(times) else (None, None, None)
            t_lo = max(t_lo, 0.0) if t_lo is not None and math.isfinite(t_lo) else t_lo  # no time is negative
            metrics.update(time_to_target_by_seed=times, time_to_target_reached=len(reached),
                           time_to_target_mean_s=t_mean, time_to_target_ci95_low_s=t_lo,
                           time_to_target_ci95_high_s=t_hi)
        out[name] = metrics
    return out
