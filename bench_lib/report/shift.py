"""The shift common to every case of a comparison: how far NEW moved as a whole against BASE.

When a whole run moves (the machine was in another state, or a path every case shares changed: the
interpreter, torch, a common kernel, the harness), each case's ratio carries the same factor. Alone, each
case's interval is too wide to call it (one run a side: the single-run floor and the machine-state widening);
together, the cases measure it well. The common factor is the median of the cases' NEW/BASE ratios. Its
interval is a hierarchical bootstrap (`compare.hierarchical`): resample the cases, then draw each chosen case's
log ratio from its own 95% interval (normal on the log scale, each side of the ratio with its own half-width);
never narrower than `paired.paired_ratio`'s interval of the median with the case as a random effect (the
distribution-free interval of the median over cases, widened to Student's t over them). Cases that
share one run share its machine state, so the interval is about the factor, not about its cause: stored runs
cannot tell a machine-state shift from a change to a shared path. Only `effbench ab`, which alternates the two
in paired rounds on one machine, can.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bench_lib.measure.paired import paired_ratio
from bench_lib.measure.stats import CONFIDENCE, NORMAL_95
from bench_lib.report.compare import BOOTSTRAP_RESAMPLES, RatioEstimate, hierarchical

__all__ = ["MIN_CASES", "CommonShift", "common_shift"]

MIN_CASES = 3  # below this, a "common" factor is one or two cases' own


@dataclass(frozen=True)
class CommonShift:
    """The median NEW/BASE ratio over the cases (time: > 1 is slower) with its 95% interval; `cases` judged,
    `same_way` of them on the same side of 1 as the factor."""

    ratio: float
    low: float
    high: float
    cases: int
    same_way: int
    threshold: float

    @property
    def kind(self) -> Literal["slower", "faster"] | None:
        """"slower" / "faster" where the factor is beyond the threshold and its interval excludes 1 (the rule a
        case's verdict follows), else None: no shift common to the cases is shown."""
        if self.ratio > 1 + self.threshold and self.low > 1:
            return "slower"
        if self.ratio < 1 / (1 + self.threshold) and self.high < 1:
            return "faster"
        return None


def _draws(est: RatioEstimate, z: np.ndarray) -> np.ndarray:
    """Log ratios drawn from one case's interval: its lower half-width below the ratio, its upper above."""
    centre = math.log(est.ratio)
    down = (centre - math.log(est.low)) / NORMAL_95 if est.low > 0 else 0.0
    up = (math.log(est.high) - centre) / NORMAL_95 if math.isfinite(est.high) else 0.0
    return centre + np.where(z < 0, z * down, z * up)


def common_shift(estimates: Sequence[RatioEstimate], threshold: float, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = 0) -> CommonShift | None:
    """The common factor of the cases' NEW/BASE estimates (see the module), or None below MIN_CASES."""
    usable = [e for e in estimates if e.ratio > 0 and math.isfinite(e.ratio)]
    if len(usable) < MIN_CASES:
        return None
    rng = np.random.default_rng(seed)
    logs = np.log([e.ratio for e in usable])
    replicates = np.stack([_draws(e, rng.standard_normal(resamples)) for e in usable])
    centre, reps = hierarchical(logs, replicates, rng)
    alpha = (1 - CONFIDENCE) / 2
    low, high = (math.exp(float(q)) for q in np.quantile(reps, [alpha, 1 - alpha]))
    over_cases = paired_ratio(np.exp(logs), units=list(range(len(usable))), min_per_unit=1)
    if over_cases is not None:
        low, high = min(low, over_cases.low), max(high, over_cases.high)
    ratio = math.exp(centre)
    same_way = sum(1 for x in logs if (x > 0) == (centre > 0) and x != 0)
    return CommonShift(ratio, low, high, len(usable), same_way, threshold)
