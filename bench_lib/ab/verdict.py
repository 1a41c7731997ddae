"""Verdicts from paired ratios: pure functions, literal samples in, records out.

Each pair is one round of BASE and one of NEW, measured back to back in random order, so
the machine's slow states (which move whole runs: docs/validation/compare-rates) hit both sides of
a pair and cancel in the ratio NEW/BASE. The median ratio and its distribution-free interval
are the paired estimator's (`measure.paired`), as for every paired ratio in effbench; a job's
servers, two a pair, widen it with an interval of their own (`server_t_ci`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from bench_lib.measure.paired import paired_ratio

__all__ = ["ABRule", "PairedVerdict", "confirmed", "judge", "server_spread", "server_t_ci"]

Outcome = Literal["slower", "faster", "within noise", "undecided"]


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
    verdict: Outcome
    ratio: float
    ci_low: float
    ci_high: float
    pairs: int
    server_spread: float = float("nan")  # see server_spread(); nan with one server a side
    unconfirmed: Outcome | None = None  # where the pairs point, while fresh servers have not agreed (see confirmed())

    @property
    def decided(self) -> bool:
        return self.verdict != "undecided"


MIN_PAIRS_PER_SERVER = 2


def _server_medians(y: np.ndarray, cells: np.ndarray, side: int) -> list[float]:
    return [float(np.median(y[cells[:, side] == s])) for s in np.unique(cells[:, side])
            if np.count_nonzero(cells[:, side] == s) >= MIN_PAIRS_PER_SERVER]


def server_t_ci(ratios: np.ndarray, servers: list[tuple[int, int]],
                confidence: float = 0.95) -> tuple[float, float]:
    """Interval of the median ratio with each side's server as a random effect.

    On the log scale, each server's median paired ratio carries that process's bias; the spread of
    those medians within a side estimates the side's between-process variance s^2, and the
    interval is the median log ratio +- t(df) * sqrt(s_BASE^2/S_BASE + s_NEW^2/S_NEW), with
    Welch-Satterthwaite df. With three servers a side the t quantile is 2.8 to 4.3: honest about
    how little three processes can tell (a bootstrap over three servers understates it, and let a
    case whose three NEW processes all ran 10-40% slow be judged slower). (0, inf) while a side has
    fewer than two servers with MIN_PAIRS_PER_SERVER pairs.
    """
    from scipy.stats import t as student_t

    y, cells = np.log(ratios), np.asarray(servers, dtype=int)
    center = float(np.median(y))
    parts = []
    for side in (0, 1):
        medians = _server_medians(y, cells, side)
        if len(medians) < 2:
            return 0.0, math.inf
        parts.append((float(np.var(medians, ddof=1)) / len(medians), len(medians) - 1))
    se2 = sum(v for v, _ in parts)
    if se2 == 0.0:
        return math.exp(center), math.exp(center)
    df = se2**2 / sum(v**2 / d for v, d in parts if v > 0)
    half = float(student_t.ppf(0.5 + confidence / 2, df)) * math.sqrt(se2)
    return math.exp(center - half), math.exp(center + half)


def server_spread(ratios: np.ndarray, servers: list[tuple[int, int]]) -> float:
    """How far apart one side's servers put the same code: the largest quotient of two servers'
    median paired ratios, on either side (1.0 = no process bias seen; nan = fewer than two servers
    with MIN_PAIRS_PER_SERVER pairs). Where it exceeds the threshold, one job cannot tell a change
    of that size from a process's luck, and the interval says so by staying wide."""
    y, cells = np.log(ratios), np.asarray(servers, dtype=int)
    spreads = [math.exp(max(m) - min(m)) for m in (_server_medians(y, cells, side) for side in (0, 1)) if len(m) > 1]
    return float(max(spreads)) if spreads else float("nan")


def judge(case_id: str, base: list[float], new: list[float], rule: ABRule,
          servers: list[tuple[int, int]] | None = None) -> PairedVerdict:
    """Verdict for one case from its paired round statistics (seconds, same order on both sides).

    `servers` names the (BASE, NEW) server of each pair; where a side used more than one, the
    interval treats the server as a random effect (`server_t_ci`), else it is the
    distribution-free interval of the median of the pairs.
    'undecided' means: keep measuring, or, once the budget is spent, the evidence was not enough.
    """
    if len(base) != len(new):
        raise ValueError(f"{case_id}: {len(base)} BASE rounds but {len(new)} NEW rounds")
    n = len(base)
    ratios = np.asarray(new, dtype=float) / np.asarray(base, dtype=float)
    # The pairs' estimate as one server a side would give it. With several, a pair has a server on each side,
    # two crossed random effects that no one unit label carries: `server_t_ci` widens the interval to them.
    estimate = paired_ratio(ratios, unit_kind="server")
    if estimate is None:
        return PairedVerdict(case_id, "undecided", float("nan"), float("nan"), float("nan"), 0)
    spread = float("nan")
    if servers is not None and len(set(servers)) > 1:
        if len(servers) != n:
            raise ValueError(f"{case_id}: {n} pairs but {len(servers)} server labels")
        estimate = estimate.widened(*server_t_ci(ratios, servers))
        spread = server_spread(ratios, servers)
    ratio, lo, hi = estimate.ratio, estimate.low, estimate.high
    up, down = 1.0 + rule.threshold, 1.0 / (1.0 + rule.threshold)
    verdict: Outcome = "undecided"
    # The interval must clear half the threshold, not just 1: a margin for the many looks a job
    # takes (one after every pair) and for process biases the few servers did not reveal.
    clear_up, clear_down = 1.0 + rule.threshold / 2, 1.0 / (1.0 + rule.threshold / 2)
    if n >= rule.min_pairs:
        if ratio > up and lo > clear_up:
            verdict = "slower"
        elif ratio < down and hi < clear_down:
            verdict = "faster"
        elif down < lo and hi < up:
            verdict = "within noise"
    return PairedVerdict(case_id, verdict, ratio, lo, hi, n, spread)


def confirmed(verdict: PairedVerdict, fresh_ratios: Sequence[float], rule: ABRule) -> PairedVerdict:
    """A slower or faster verdict stands only once fresh servers point the same way.

    `fresh_ratios` are the case's paired ratios measured in new processes, started after its pairs
    first pointed that way. Three processes a side can share a bias by chance, and an unchanged
    case then looks changed while its servers agree with each other (docs/validation/ab-validation).
    New processes draw new biases; a real change keeps its direction in them. The verdict stands
    when all pairs still give it and the fresh pairs' median lies beyond half the threshold, the
    same way, after min_pairs // 2 of them; until then it is 'undecided', `unconfirmed` naming it.
    """
    if verdict.verdict not in ("slower", "faster"):
        return verdict
    if len(fresh_ratios) >= rule.min_pairs // 2:
        fresh = float(np.median(fresh_ratios))
        margin = 1.0 + rule.threshold / 2
        if fresh > margin if verdict.verdict == "slower" else fresh < 1.0 / margin:
            return verdict
    return replace(verdict, verdict="undecided", unconfirmed=verdict.verdict)
