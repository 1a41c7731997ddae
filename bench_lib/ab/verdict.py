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

__all__ = ["ABRule", "PairedVerdict", "judge", "server_bootstrap_ci", "server_spread"]

Verdict = Literal["slower", "faster", "within noise", "undecided"]


@dataclass(frozen=True)
class ABRule:
    """A change is a regression only if the median ratio exceeds 1 + threshold AND its 95%
    interval lies above 1 + threshold/2; it is 'within noise' once the interval fits inside the
    threshold band."""

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
    server_spread: float = float("nan")  # see server_spread(); nan with one server a side

    @property
    def decided(self) -> bool:
        return self.verdict != "undecided"


SERVER_RESAMPLES = 1000


def server_bootstrap_ci(ratios: np.ndarray, servers: list[tuple[int, int]], confidence: float = 0.95,
                        resamples: int = SERVER_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Interval of the median ratio with each side's server as a random effect.

    Resample BASE servers and NEW servers (with replacement), keep the pairs measured by a drawn
    combination (as often as it was drawn), resample those pairs, take the median. A bias that
    belongs to one process then widens the interval instead of deciding the verdict.
    """
    rng = np.random.default_rng(seed)
    cells = np.asarray(servers, dtype=int)
    base_ids, new_ids = np.unique(cells[:, 0]), np.unique(cells[:, 1])
    medians = []
    for _ in range(resamples):
        drawn_b = rng.choice(base_ids, size=base_ids.size)
        drawn_n = rng.choice(new_ids, size=new_ids.size)
        weight = (np.bincount(drawn_b, minlength=cells[:, 0].max() + 1)[cells[:, 0]]
                  * np.bincount(drawn_n, minlength=cells[:, 1].max() + 1)[cells[:, 1]])
        pool = np.repeat(ratios, weight)
        if pool.size:
            medians.append(np.median(rng.choice(pool, size=pool.size)))
    alpha = (1 - confidence) / 2
    return float(np.quantile(medians, alpha)), float(np.quantile(medians, 1 - alpha))


MIN_PAIRS_PER_SERVER = 3


def server_spread(ratios: np.ndarray, servers: list[tuple[int, int]]) -> float:
    """How far apart one side's servers put the same code: the largest quotient of two servers'
    median paired ratios, on either side (1.0 = no process bias seen; nan = fewer than two servers
    with MIN_PAIRS_PER_SERVER pairs). Where it exceeds the threshold, one job cannot tell a change
    of that size from a process's luck, and the interval says so by staying wide."""
    cells = np.asarray(servers, dtype=int)
    spreads = []
    for side in (0, 1):
        medians = [np.median(ratios[cells[:, side] == s]) for s in np.unique(cells[:, side])
                   if np.count_nonzero(cells[:, side] == s) >= MIN_PAIRS_PER_SERVER]
        if len(medians) > 1:
            spreads.append(max(medians) / min(medians))
    return float(max(spreads)) if spreads else float("nan")


def judge(case_id: str, base: list[float], new: list[float], rule: ABRule,
          servers: list[tuple[int, int]] | None = None) -> PairedVerdict:
    """Verdict for one case from its paired round statistics (seconds, same order on both sides).

    `servers` names the (BASE, NEW) server of each pair; where a side used more than one, the
    interval treats the server as a random effect (`server_bootstrap_ci`), else it is the
    distribution-free interval of the median of the pairs.
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
    spread = float("nan")
    if servers is not None and len(set(servers)) > 1:
        if len(servers) != n:
            raise ValueError(f"{case_id}: {n} pairs but {len(servers)} server labels")
        boot_lo, boot_hi = server_bootstrap_ci(ratios, servers)
        lo, hi = min(lo, boot_lo), max(hi, boot_hi)
        spread = server_spread(ratios, servers)
    up, down = 1.0 + rule.threshold, 1.0 / (1.0 + rule.threshold)
    verdict: Verdict = "undecided"
    # The interval must clear half the threshold, not just 1: with few servers a side, the
    # server bootstrap's lower end sits near 1 whenever one of them is unbiased.
    clear_up, clear_down = 1.0 + rule.threshold / 2, 1.0 / (1.0 + rule.threshold / 2)
    if n >= rule.min_pairs:
        if ratio > up and lo > clear_up:
            verdict = "slower"
        elif ratio < down and hi < clear_down:
            verdict = "faster"
        elif down < lo and hi < up:
            verdict = "within noise"
    return PairedVerdict(case_id, verdict, ratio, lo, hi, n, spread)
