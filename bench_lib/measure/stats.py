"""Summary statistics of raw timing samples: pure functions, no I/O, torch or pandas.

Medians with distribution-free confidence intervals are used throughout because timing
samples are skewed (a long right tail of preemptions) and means are pulled by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property, lru_cache

import numpy as np

__all__ = [
    "IQR_WARN_THRESHOLD",
    "IQR_GROSS_WARN_THRESHOLD",
    "Measurement",
    "median_ci",
]

# Spread (IQR / median) above which a measurement is flagged, as torch.utils.benchmark does.
IQR_WARN_THRESHOLD = 0.10
IQR_GROSS_WARN_THRESHOLD = 0.25
CONFIDENCE = 0.95


@lru_cache(maxsize=4096)
def binom_half_ppf(q: float, n: int) -> int:
    """Smallest k with P(X <= k) >= q for X ~ Binomial(n, 1/2), in exact integer arithmetic.

    The same as scipy.stats.binom.ppf(q, n, 0.5), without importing scipy.stats (about a
    second per worker process, paid by every case and rank).
    """
    target = Fraction(q) * 2**n
    cum, term = 0, 1  # term = C(n, k)
    for k in range(n + 1):
        cum += term
        if cum >= target:
            return k
        term = term * (n - k) // (k + 1)
    return n


def median_ci(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Distribution-free interval for the median from binomial order statistics.

    The interval [x_(j), x_(k)] covers the true median with probability >= `confidence`
    for any continuous distribution. With too few samples for that coverage (n < 6 at
    95%), the full range is returned: the caller sees a wide interval, not a false one.
    """
    x = np.sort(np.asarray(samples, dtype=float))
    n = x.size
    if n == 0:
        return (math.nan, math.nan)
    alpha = 1.0 - confidence
    # The 1-based lower order statistic is binom.ppf(alpha/2); the upper one mirrors it
    # (binom.isf(alpha/2) = binom.ppf(1 - alpha/2) for a discrete law).
    lo = max(binom_half_ppf(alpha / 2, n) - 1, 0)
    hi = min(binom_half_ppf(1 - alpha / 2, n), n - 1)
    if lo == 0 and hi == n - 1:
        return (float(x[0]), float(x[-1]))
    return (float(x[lo]), float(x[hi]))


@dataclass(frozen=True)
class Measurement:
    """Raw samples of one quantity (seconds per call) and their statistics.

    The samples are the truth; every statistic is derived lazily from them, so a
    Measurement loaded from a file and one measured now behave the same.
    """

    samples: tuple[float, ...]
    number_per_sample: int = 1
    unit: str = "s"

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("a Measurement needs at least one sample")
        if any(not math.isfinite(s) or s < 0 for s in self.samples):
            raise ValueError("samples must be finite and non-negative")

    @cached_property
    def _x(self) -> np.ndarray:
        return np.asarray(self.samples, dtype=float)

    @property
    def n(self) -> int:
        return len(self.samples)

    @cached_property
    def median(self) -> float:
        return float(np.median(self._x))

    @cached_property
    def mean(self) -> float:
        return float(np.mean(self._x))

    @cached_property
    def stddev(self) -> float:
        return float(np.std(self._x, ddof=1)) if self.n > 1 else 0.0

    @cached_property
    def q1(self) -> float:
        return float(np.percentile(self._x, 25))

    @cached_property
    def q3(self) -> float:
        return float(np.percentile(self._x, 75))

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @cached_property
    def p90(self) -> float:
        return float(np.percentile(self._x, 90))

    @cached_property
    def p99(self) -> float:
        return float(np.percentile(self._x, 99))

    @cached_property
    def ci95(self) -> tuple[float, float]:
        return median_ci(self._x)

    @property
    def relative_spread(self) -> float:
        """IQR over median: the noise figure the warnings and the stop rule use."""
        return self.iqr / self.median if self.median > 0 else math.inf

    def meets_confidence(self, threshold: float = IQR_WARN_THRESHOLD) -> bool:
        return self.relative_spread < threshold

    @property
    def warnings(self) -> tuple[str, ...]:
        out = []
        if self.n < 6:
            out.append(f"only {self.n} samples: the 95% interval is the full range")
        if not self.meets_confidence(IQR_GROSS_WARN_THRESHOLD):
            out.append(f"very noisy: IQR is {self.relative_spread:.0%} of the median")
        elif not self.meets_confidence(IQR_WARN_THRESHOLD):
            out.append(f"noisy: IQR is {self.relative_spread:.0%} of the median")
        return tuple(out)

    @property
    def has_warnings(self) -> bool:
        return bool(self.warnings)

    def outliers(self) -> tuple[int, int]:
        """Counts of (Tukey IQR outliers, samples beyond one stddev of the mean), as pytest-benchmark."""
        lo, hi = self.q1 - 1.5 * self.iqr, self.q3 + 1.5 * self.iqr
        tukey = int(np.sum((self._x < lo) | (self._x > hi)))
        sd = int(np.sum(np.abs(self._x - self.mean) > self.stddev)) if self.n > 1 else 0
        return tukey, sd

    def as_pytest_benchmark_stats(self) -> dict:
        """The `stats` block of pytest-benchmark's JSON, raw samples in `data`."""
        x = self._x
        lo, hi = self.q1 - 1.5 * self.iqr, self.q3 + 1.5 * self.iqr
        inside = x[(x >= lo) & (x <= hi)]
        tukey, sd = self.outliers()
        return {
            "min": float(x.min()),
            "max": float(x.max()),
            "mean": self.mean,
            "stddev": self.stddev,
            "rounds": self.n,
            "median": self.median,
            "iqr": self.iqr,
            "q1": self.q1,
            "q3": self.q3,
            "iqr_outliers": tukey,
            "stddev_outliers": sd,
            "outliers": f"{sd};{tukey}",
            "ld15iqr": float(inside.min()) if inside.size else float(x.min()),
            "hd15iqr": float(inside.max()) if inside.size else float(x.max()),
            "ops": 1.0 / self.mean if self.mean > 0 else 0.0,
            "total": float(x.sum() * self.number_per_sample),
            "iterations": self.number_per_sample,
            "data": [float(v) for v in x],
        }

    def summary(self) -> dict:
        """effbench's own statistics, beside pytest-benchmark's."""
        lo, hi = self.ci95
        return {
            "median": self.median,
            "ci95_low": lo,
            "ci95_high": hi,
            "iqr": self.iqr,
            "p90": self.p90,
            "p99": self.p99,
            "n": self.n,
            "number_per_sample": self.number_per_sample,
            "relative_spread": self.relative_spread,
            "warnings": list(self.warnings),
        }
