"""Verdicts from paired ratios: pure functions, literal samples in, records out.

Each pair is one round of BASE and one of NEW, measured back to back in random order, so
the machine's slow states (up to 2.5x between runs on the 2-core CI box) hit both sides of
a pair and cancel in the ratio NEW/BASE. The median ratio's interval comes from binomial
order statistics (distribution-free), as for every median in effbench.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from bench_lib.measure.stats import median_ci

__all__ = ["ABRule", "PairedVerdict", "judge"]

Verdict = Literal["slower", "faster", "within noise", "undecided"]


@dataclass(frozen=True)
class ABRule:
    """A change is a regression only if the median ratio exceeds 1 + threshold AND its 95%
    interval excludes 1; it is 'within noise' once the interval fits inside the threshold band."""

    threshold: float = 0.05
    min_pairs: int = 8

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be a fraction in (0, 1), got {self.threshold}")
        if self.min_pairs < 6:
            raise ValueError(f"min_pairs must be >= 6 for a 95% interval of the median, got {self.min_pairs}")


@dataclass(frozen=True)
class PairedVerdict:
    case_id: str
    verdict: Verdict
    ratio: float
    ci_low: float
    ci_high: float
    pairs: int

    @property
    def decided(self) -> bool:
        return self.verdict != "undecided"


def judge(case_id: str, base: list[float], new: list[float], rule: ABRule) -> PairedVerdict:
    """Verdict for one case from its paired round statistics (seconds, same order on both sides).

    'undecided' means: keep measuring, or, once the budget is spent, the evidence was not enough.
    """
    if len(base) != len(new):
        raise ValueError(f"{case_id}: {len(base)} BASE rounds but {len(new)} NEW rounds")
    n = len(base)
    if n == 0:
        return PairedVerdict(case_id, "undecided", float("nan"), float("nan"), float("nan"), 0)
    ratios = np.asarray(new, dtype=float) / np.asarray(base, dtype=float)
    ratio = float(np.median(ratios))
    lo, hi = median_ci(ratios)
    up, down = 1.0 + rule.threshold, 1.0 / (1.0 + rule.threshold)
    verdict: Verdict = "undecided"
    if n >= rule.min_pairs:
        if ratio > up and lo > 1.0:
            verdict = "slower"
        elif ratio < down and hi < 1.0:
            verdict = "faster"
        elif down < lo and hi < up:
            verdict = "within noise"
    return PairedVerdict(case_id, verdict, ratio, lo, hi, n)
