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
    "PROCESS_WARN_THRESHOLD",
    "MIN_SAMPLES_PER_PROCESS",
    "student_t_ppf",
    "Measurement",
    "median_ci",
    "process_medians",
    "process_ci",
    "median_interval",
    "state_sd",
    "STATE_WINDOWS",
]

# Spread (IQR / median) above which a measurement is flagged, as torch.utils.benchmark does.
IQR_WARN_THRESHOLD = 0.10
IQR_GROSS_WARN_THRESHOLD = 0.25
# Largest quotient of two processes' medians of one case above which the processes are said to disagree.
PROCESS_WARN_THRESHOLD = 0.10
# A process's median counts towards the between-process interval once it rests on this many rounds.
MIN_SAMPLES_PER_PROCESS = 2
CONFIDENCE = 0.95
NORMAL_95 = 1.959964  # two-sided 95% quantile of the normal law


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


@lru_cache(maxsize=1024)
def student_t_ppf(q: float, df: int) -> float:
    """The q quantile (q >= 1/2) of Student's t law with an integer number of degrees of freedom.

    The same as scipy.stats.t.ppf(q, df), without importing scipy.stats (see `binom_half_ppf`):
    bisection on the closed form of P(|T| <= t) (Abramowitz & Stegun 26.7.3 and 26.7.4).
    """
    if df < 1 or not 0.5 <= q < 1:
        raise ValueError(f"need df >= 1 and 1/2 <= q < 1, got df={df}, q={q}")
    two_sided = 2 * q - 1

    def inside(t: float) -> float:  # P(|T| <= t)
        theta = math.atan(t / math.sqrt(df))
        c2 = math.cos(theta) ** 2
        if df % 2:
            term, total = 1.0, 1.0 if df > 1 else 0.0
            for k in range(1, (df - 1) // 2):  # 1 + 2/3 c^2 + (2*4)/(3*5) c^4 + ...
                term *= c2 * (2 * k) / (2 * k + 1)
                total += term
            return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
        term, total = 1.0, 1.0
        for k in range(1, df // 2):  # 1 + 1/2 c^2 + (1*3)/(2*4) c^4 + ...
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return math.sin(theta) * total

    lo, hi = 0.0, 1.0
    while inside(hi) < two_sided:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if inside(mid) < two_sided else (lo, mid)
        if hi - lo < 1e-12 * hi:
            break
    return (lo + hi) / 2


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


def process_medians(samples: np.ndarray, processes: np.ndarray,
                    min_samples: int = MIN_SAMPLES_PER_PROCESS) -> dict[int, float]:
    """Each process's median, for processes with at least `min_samples` samples (1 where each sample is a
    unit of its own, as a training speedup's paired stretches are)."""
    x, p = np.asarray(samples, dtype=float), np.asarray(processes)
    return {int(k): float(np.median(x[p == k])) for k in np.unique(p) if np.count_nonzero(p == k) >= min_samples}


def process_ci(samples: np.ndarray, processes: np.ndarray, confidence: float = CONFIDENCE,
               min_samples: int = MIN_SAMPLES_PER_PROCESS) -> tuple[float, float]:
    """Interval of the median with the measuring process as a random effect.

    A process carries a bias of its own for its whole life (memory layout, what it built
    before, the state the machine was in while it compiled), as large as
    the changes to be judged (docs/validation/ab-validation). Samples of one process share it, so their spread
    says nothing about where another process, a rerun, would land. On the log scale the
    processes' medians are a sample of that bias; the interval is the median of all samples
    +- t(P-1) standard errors of their mean. With three processes t is 4.3: honest about
    how little three processes tell. (0, inf) with fewer than two processes.
    """
    medians = list(process_medians(samples, processes, min_samples).values())
    if len(medians) < 2:
        return 0.0, math.inf
    y = np.log(medians)
    center = math.log(float(np.median(np.asarray(samples, dtype=float))))
    half = student_t_ppf(0.5 + confidence / 2, len(y) - 1) * float(np.std(y, ddof=1)) / math.sqrt(len(y))
    return math.exp(center - half), math.exp(center + half)


def median_interval(samples: np.ndarray, processes: np.ndarray | None = None,
                    min_samples: int = MIN_SAMPLES_PER_PROCESS) -> tuple[float, float]:
    """The distribution-free interval of the median, widened to `process_ci` where two or more
    processes took the samples: never narrower than either."""
    lo, hi = median_ci(samples)
    if processes is not None and len(process_medians(samples, processes, min_samples)) > 1:
        p_lo, p_hi = process_ci(samples, processes, min_samples=min_samples)
        lo, hi = min(lo, p_lo), max(hi, p_hi)
    return lo, hi


STATE_WINDOWS = 6


def state_sd(series: list[tuple[float, float]], windows: int = STATE_WINDOWS) -> float:
    """How far the machine's speed wandered over a run: the standard deviation, over `windows`
    consecutive stretches of the run, of the median log deviation of every round in the stretch
    from its own case's median (a speed index common to all cases). `series` holds (time,
    log deviation) of every round of every case.

    On a loaded machine this index can be the largest term of a figure's variance
    (docs/validation/rerun-validation), common to
    every case of a run, and invisible to intervals over its processes, which all lived through
    the same states. Adjacent stretches share a state, so the spread of the stretches is not
    divided by their count: it stands for how far the next run's mean state may lie.
    """
    if len(series) < 2 * windows:
        return 0.0
    t = np.array([a for a, _ in series], dtype=float)
    y = np.array([b for _, b in series], dtype=float)
    edges = np.quantile(t, np.linspace(0, 1, windows + 1))
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, windows - 1)
    index = [float(np.median(y[which == w])) for w in range(windows) if np.any(which == w)]
    return float(np.std(index, ddof=1)) if len(index) > 1 else 0.0


@dataclass(frozen=True)
class Measurement:
    """Raw samples of one quantity (seconds per call) and their statistics.

    The samples are the truth; every statistic is derived lazily from them, so a
    Measurement loaded from a file and one measured now behave the same. `unit_of_sample`
    names the unit of the interval that took each sample, a `unit_kind`: the process of an
    interleaved run's round, a launch, a training stretch or a seed; where there are several
    units, the interval treats the unit as a random effect (`process_ci`).
    """

    samples: tuple[float, ...]
    number_per_sample: int = 1
    unit: str = "s"
    unit_of_sample: tuple[int, ...] | None = None
    state_sd: float = 0.0  # log-scale sd of the run's machine state (`state_sd`), added to the interval
    unit_kind: str = "process"  # what a `unit_of_sample` label names: a process, launch, stretch or seed

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("a Measurement needs at least one sample")
        if any(not math.isfinite(s) or s < 0 for s in self.samples):
            raise ValueError("samples must be finite and non-negative")
        if self.unit_of_sample is not None and len(self.unit_of_sample) != len(self.samples):
            raise ValueError(f"{len(self.samples)} samples but {len(self.unit_of_sample)} unit labels")

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
    def per_unit_median(self) -> dict[int, float]:
        return {} if self.unit_of_sample is None else process_medians(self._x, np.asarray(self.unit_of_sample))

    @property
    def unit_spread(self) -> float:
        """Largest quotient of two units' medians (nan below two units): 1.0 = no unit bias seen."""
        m = list(self.per_unit_median.values())
        return max(m) / min(m) if len(m) > 1 and min(m) > 0 else math.nan

    @cached_property
    def ci95(self) -> tuple[float, float]:
        lo, hi = median_interval(self._x, None if self.unit_of_sample is None else np.asarray(self.unit_of_sample))
        if self.state_sd > 0 and lo > 0:
            z = float(NORMAL_95)
            lo = self.median * math.exp(-math.hypot(math.log(self.median / lo), z * self.state_sd))
            hi = self.median * math.exp(math.hypot(math.log(hi / self.median), z * self.state_sd))
        return lo, hi

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
        if self.unit_spread > 1 + PROCESS_WARN_THRESHOLD:
            plural = self.unit_kind + ("es" if self.unit_kind.endswith(("s", "ch")) else "s")
            out.append(f"{plural} disagree: their medians differ by up to {self.unit_spread - 1:.0%}")
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
            **({} if self.unit_of_sample is None else {  # stored under the keys files have always had
                "machine_state_sd": self.state_sd,
                "processes": len(set(self.unit_of_sample)),
                "per_process_median": {str(k): v for k, v in self.per_unit_median.items()},
                "process_spread": self.unit_spread,
                "interval": f"{self.unit_kind} as a random effect (t over per-{self.unit_kind} medians), never "
                            "narrower than the distribution-free interval of the samples, widened in quadrature by "
                            "1.96 x the run's machine-state sd"}),
        }
