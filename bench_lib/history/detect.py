"""Change points in one case's history: pure statistics, no I/O, pandas or printing.

A history is a sequence of points, one per commit in commit order. A point's value is the log
of its figure (the mean of its runs' log medians) and its own variance comes from its runs'
stored 95% intervals. Those intervals cover a rerun in the same state of the machine, but a CI
machine also moves between jobs (docs/validation/compare-rates), so the noise a step must beat is
the larger of the point's own variance and the between-run variance measured over the history
itself: half the squared robust spread (MAD) of successive differences, which a few steps or a
slow drift barely move.

First a point far from the running median of its neighbours (one run in a slow state of the
machine, 2.5x) is pulled back to OUTLIER_SD of its noise: a spike narrower than MIN_SEGMENT points
is not a step, and must not pull a segment's mean. The model is then piecewise constant, found
by binary segmentation: in a stretch of history, the split that best separates the weighted
means of its two sides is a step only if

- its z score beats a Student t quantile at FALSE_ALARM_RATE, Bonferroni-corrected for the
  number of splits tried (a history of 20 points tries 15: one lucky split must not pass);
- each side holds at least MIN_SEGMENT points: a step at the newest commit is reported once
  MIN_SEGMENT commits show it;
- its size is beyond the threshold, as `effbench compare` asks;
- a straight line does not fit the stretch as well: a slow drift that a split happens to cut is
  reported as a drift over the stretch, never blamed on one commit.

Then both sides are searched again. The step's location is uncertain where neighbouring splits
explain the data nearly as well: every split whose z^2 lies within the 95% chi-square quantile
of the best one is plausible, and the step names the range from the last commit before the
earliest plausible split (last good) to the commit at the latest (first bad).

As in compare, a stretch without a change does not prove that nothing changed: a change smaller
than the noise can hide there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as _st

from bench_lib.measure.stats import CONFIDENCE

__all__ = [
    "FALSE_ALARM_RATE",
    "MIN_SEGMENT",
    "OUTLIER_SD",
    "Change",
    "between_run_variance",
    "point_variances",
    "clip_outliers",
    "detect_changes",
]

# Chance, per case and history, that noise alone yields a step (before the size bar); the
# inference suite has 28 cases, so a history of identical code is flagged anywhere ~3% of the time.
FALSE_ALARM_RATE = 0.001
# Fewest points on either side of a step. Slow states of the machine come in episodes: with 2, two
# slow runs in a row made a step up and down in 16% of simulated identical-code histories (one run
# in ten slowed 1.3-2.5x), with 3 in 4%, for the same detection of a 15% step (50%).
MIN_SEGMENT = 3
# A point further than this many of its standard deviations from the running median around it
# is pulled back to that distance (clip_outliers).
OUTLIER_SD = 3.0
_MAD_TO_SD = 1.4826  # MAD of a normal sample times this estimates its standard deviation
# The MAD is robust but noisy: it estimates a normal scale as well as the standard deviation of
# 37% as many points would. A step's interval uses Student's t with as few degrees of freedom,
# which brought its coverage from 92% to 94-97% in simulated histories (12-40 points, a 15% step). The
# detection quantile keeps n - 2: with the Bonferroni correction it flagged 0 of 1000 pure-noise
# histories, as FALSE_ALARM_RATE says.
_MAD_EFFICIENCY = 0.37
# Noise floor of a point (relative s.d., 0.01%): below any timer's resolution, it keeps the
# weights finite when identical samples give a zero-width interval.
_MIN_SD = 1e-4
_PLAUSIBLE = float(_st.chi2.ppf(CONFIDENCE, 1))

ChangeKind = Literal["step", "drift"]


@dataclass(frozen=True)
class Change:
    """A step between points `last_good` and `first_bad`, or a drift over [start, end].

    `ratio` is the figure after over before (time: > 1 is slower) with its 95% interval. For a
    step, `last_good` and `first_bad` bound the plausible location: adjacent when it is certain.
    For a drift, `last_good` is the first point of the stretch and `first_bad` its last.
    """

    kind: ChangeKind
    last_good: int
    first_bad: int
    ratio: float
    low: float
    high: float
    z: float

    @property
    def slower(self) -> bool:
        """The figure rose: slower for a time; for a speedup it is faster (ask `Series.slower`)."""
        return self.ratio > 1


def between_run_variance(y: Sequence[float]) -> float:
    """Variance of a point about its level, from the MAD of successive differences (nan below 3 points)."""
    d = np.diff(np.asarray(y, dtype=float))
    if d.size < 2:
        return math.nan
    mad = float(np.median(np.abs(d - np.median(d))))
    return (_MAD_TO_SD * mad) ** 2 / 2


def point_variances(own: Sequence[float], y: Sequence[float]) -> np.ndarray:
    """Each point's noise: its own interval's variance, raised to the history's between-run variance."""
    spread = between_run_variance(y)
    own_v = np.maximum(np.asarray(own, dtype=float), _MIN_SD**2)
    return own_v if math.isnan(spread) else np.maximum(own_v, spread)


def clip_outliers(y: Sequence[float], sd: Sequence[float]) -> np.ndarray:
    """Each point pulled to within OUTLIER_SD of the median of the 2*MIN_SEGMENT-1 points around it.

    A running median keeps a step's edge where it is but drops a spike narrower than MIN_SEGMENT
    points (one run in a slow state of the machine), which would otherwise pull a segment's mean.
    """
    y = np.asarray(y, dtype=float)
    width = 2 * MIN_SEGMENT - 1
    if y.size < width:
        return y
    half = width // 2
    starts = np.clip(np.arange(y.size) - half, 0, y.size - width)  # the window stays whole at the edges
    local = np.array([np.median(y[i:i + width]) for i in starts])
    bound = OUTLIER_SD * np.asarray(sd, dtype=float)
    return np.clip(y, local - bound, local + bound)


def _split_scores(y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every split k = 1 .. n-1 (left = y[:k]), at index k - 1: the z score of the right mean
    minus the left mean, the difference and its standard error; weights w are inverse variances."""
    cw, cwy = np.cumsum(w)[:-1], np.cumsum(w * y)[:-1]
    tw, twy = w.sum(), (w * y).sum()
    diff = (twy - cwy) / (tw - cw) - cwy / cw
    se = np.sqrt(1 / cw + 1 / (tw - cw))
    return diff / se, diff, se


def _line_rss(y: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Weighted least squares of y on the point index: residual sum of squares, slope, its s.e."""
    x = np.arange(y.size, dtype=float)
    xm, ym = np.average(x, weights=w), np.average(y, weights=w)
    sxx = float((w * (x - xm) ** 2).sum())
    slope = float((w * (x - xm) * (y - ym)).sum()) / sxx
    rss = float((w * (y - ym - slope * (x - xm)) ** 2).sum())
    return rss, slope, 1 / math.sqrt(sxx)


def _quantile(p: float, df: float) -> float:
    return float(_st.t.ppf(p, max(df, 1)))


def _search(y: np.ndarray, w: np.ndarray, start: int, threshold: float, points: int) -> list[Change]:
    n = y.size
    candidates = n - 2 * MIN_SEGMENT + 1
    if candidates < 1:
        return []
    z, diff, se = _split_scores(y, w)
    lo = MIN_SEGMENT - 1  # index of split k = MIN_SEGMENT; the window ends at k = n - MIN_SEGMENT
    window = slice(lo, lo + candidates)
    best = lo + int(np.argmax(np.abs(z[window])))
    crit = _quantile(1 - FALSE_ALARM_RATE / (2 * candidates), points - 2)
    if abs(z[best]) < crit or abs(diff[best]) < math.log1p(threshold):
        return []
    total_rss = float((w * (y - np.average(y, weights=w)) ** 2).sum())
    step_rss = total_rss - float(z[best]) ** 2  # what a split of weighted means explains is its z^2
    line_rss, slope, slope_se = _line_rss(y, w)
    half = _quantile(0.5 + CONFIDENCE / 2, _MAD_EFFICIENCY * (points - 2))
    if line_rss <= step_rss:
        span = n - 1
        if abs(slope) * span < math.log1p(threshold) or abs(slope) < half * slope_se:
            return []
        return [Change("drift", start, start + span, *(math.exp(b * span) for b in
                                                        (slope, slope - half * slope_se, slope + half * slope_se)),
                       slope / slope_se)]
    z2 = z[window] ** 2
    plausible = np.flatnonzero(z2 >= z2.max() - _PLAUSIBLE) + lo + 1  # split k: first bad point is k
    d, s = float(diff[best]), float(se[best])
    step = Change("step", start + int(plausible.min()) - 1, start + int(plausible.max()), math.exp(d),
                  math.exp(d - half * s), math.exp(d + half * s), float(z[best]))
    k = best + 1
    return [*_search(y[:k], w[:k], start, threshold, points), step,
            *_search(y[k:], w[k:], start + k, threshold, points)]


def detect_changes(log_values: Sequence[float], own_variances: Sequence[float], threshold: float) -> list[Change]:
    """Steps and drifts in a history, oldest first.

    `log_values[i]` is point i's log figure and `own_variances[i]` the variance of it that its
    runs' intervals allow; `threshold` is the smallest relative change that counts (0.1: 10%).
    """
    y = np.asarray(log_values, dtype=float)
    if y.size != len(own_variances):
        raise ValueError(f"{y.size} values but {len(own_variances)} variances")
    v = point_variances(own_variances, y)
    if not np.all(np.isfinite(y)) or not np.all(np.isfinite(v)):
        raise ValueError("log values and variances must be finite")
    return _search(clip_outliers(y, np.sqrt(v)), 1 / v, 0, threshold, y.size)
