"""Regression verdicts between two sets of runs: pure statistics, no I/O, pandas or printing.

A side (BASE or NEW) is one or more runs of the same cases; a run gives each case its raw
samples. The statistic of a side is the median of its runs' medians, a run's median being the one
`run` prints and `report` shows (`Measurement.median`, of all its samples). Its 95% interval comes
from a hierarchical bootstrap: resample the runs, then the samples inside each chosen run,
so that the spread *between* runs, which on a noisy CI machine dwarfs the spread within one
(docs/validation/compare-rates), is in the interval.
A bootstrap over two or three runs is too narrow, so where both sides have several runs the
interval is widened to cover Welch's t interval on the log run statistics as well.

A run of `effbench run` measures each case in several processes (rounds interleaved over the
run, `process_of_sample` in the file); there the process is the unit resampled, as a run is, so
that one run a side already has the between-process spread in its interval. With a single run
of a single process on a side the spread between runs is unknown, and no within-run test can
stand in for it. The verdict then says so and raises the bar to SINGLE_RUN_FLOOR.

As in asv, "slower" needs both the change beyond the threshold and statistical evidence
(the interval excludes 1). A verdict that is not "slower" does not prove there was no
slowdown: it might be hidden in the noise. Only the CLI turns verdicts into exit codes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as _st

from bench_lib.measure.paired import PairedRatio
from bench_lib.measure.stats import CONFIDENCE, MIN_SAMPLES_PER_PROCESS, NORMAL_95, Measurement
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.techniques.baselines import baseline_variant

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "DEFAULT_THRESHOLD",
    "SINGLE_RUN_FLOOR",
    "Kind",
    "RatioEstimate",
    "Verdict",
    "EnergyChange",
    "Comparison",
    "run_replicates",
    "hierarchical",
    "between_run_interval",
    "ratio_of_sides",
    "relative_ratio",
    "stored_relative",
    "with_machine_states",
    "on_figures",
    "side_figure",
    "classify",
    "compare_runs",
    "energy_changes",
    "baseline_of",
]

Kind = Literal["faster", "slower", "within noise", "failed", "not comparable"]

DEFAULT_THRESHOLD = 0.10
BOOTSTRAP_RESAMPLES = 2000
# The bar a change must clear when a side has one run, so between-run noise is unknown.
# Above what one run a side of identical code gives on a steady case and a machine's common slow
# states, below a 25% slowdown, which stays detectable; longer slow episodes and a machine shared
# with other jobs still pass it: pass several runs a side there (docs/validation/compare-rates).
# The same bar applies to same-run relative speedups: slow states move them too, less than the times.
SINGLE_RUN_FLOOR = 0.20
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class RatioEstimate:
    """NEW/BASE ratio of a statistic (time: > 1 is slower) with its 95% interval."""

    ratio: float
    low: float
    high: float
    base: float
    new: float
    base_runs: int  # units: runs, or the processes of runs that measured in several
    new_runs: int

    @property
    def single_run(self) -> bool:
        """True when a side has one unit (a run, or a process of a multi-process run): the
        interval holds within-process noise only."""
        return min(self.base_runs, self.new_runs) < 2


@dataclass(frozen=True)
class Verdict:
    """One case's (or one relative speedup's) outcome, with the numbers behind it."""

    case: CaseSpec
    kind: Kind
    estimate: RatioEstimate | None = None
    bar: float = 0.0
    note: str = ""
    baseline: CaseSpec | None = None

    @property
    def is_regression(self) -> bool:
        return self.kind in ("slower", "failed")


@dataclass(frozen=True)
class EnergyChange:
    """A case's energy per sample on both sides, the median over each side's runs. Shown, never
    judged: a run holds one energy figure per case, so there are no samples to give it an interval."""

    case: CaseSpec
    base_j: float
    new_j: float
    base_runs: int
    new_runs: int

    @property
    def ratio(self) -> float:
        return self.new_j / self.base_j


@dataclass(frozen=True)
class Comparison:
    """Every verdict of a BASE/NEW comparison and the environments of both sides."""

    verdicts: tuple[Verdict, ...]
    relative: tuple[Verdict, ...]
    threshold: float
    base_envs: tuple[dict, ...]
    new_envs: tuple[dict, ...]
    energy: tuple[EnergyChange, ...] = ()

    @property
    def regressions(self) -> tuple[Verdict, ...]:
        return tuple(v for v in (*self.verdicts, *self.relative) if v.is_regression)


def run_replicates(samples: Sequence[float], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap medians of one run's samples (resampled with replacement)."""
    x = np.asarray(samples, dtype=float)
    chunk = max(1, _CHUNK_ELEMENTS // x.size)  # bounds memory for runs of many thousand samples
    return np.concatenate([np.median(x[rng.integers(0, x.size, size=(min(chunk, resamples - i), x.size))], axis=1)
                           for i in range(0, resamples, chunk)])


def hierarchical(points: Sequence[float], replicates: np.ndarray, rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """Median over runs, and its bootstrap replicates: resample runs, then each run's samples.

    `points[r]` is run r's statistic and `replicates[r]` its within-run bootstrap replicates.
    Each outer replicate draws as many runs as there are, with replacement, and for each draw
    one of that run's within-run replicates; its value is the median of the draws. With one
    run this is the within-run bootstrap alone. With few runs the percentile interval is
    too narrow (54% false alarms at 2 runs a side in compare-rates.md), which is why
    `between_run_interval` widens it.
    """
    reps = np.asarray(replicates, dtype=float)
    runs, resamples = reps.shape
    point = float(np.median(points))
    if runs == 1:
        return point, reps[0]
    pick_run = rng.integers(0, runs, size=(resamples, runs))
    pick_rep = rng.integers(0, resamples, size=(resamples, runs))
    return point, np.median(reps[pick_run, pick_rep], axis=1)


Side = tuple[list[float], float, np.ndarray]  # run statistics, the side's statistic, its replicates


def _side(runs: Sequence[Sequence[float]], resamples: int, rng: np.random.Generator) -> Side:
    points = [float(np.median(s)) for s in runs]
    reps = np.stack([run_replicates(s, resamples, rng) for s in runs])
    return points, *hierarchical(points, reps, rng)


def _relative_side(pairs: Sequence[tuple[Sequence[float], Sequence[float]]], resamples: int,
                   rng: np.random.Generator) -> Side:
    """Per run the ratio technique/baseline of medians, then across runs as `_side` does."""
    points = [float(np.median(t) / np.median(b)) for t, b in pairs]
    reps = np.stack([run_replicates(t, resamples, rng) / run_replicates(b, resamples, rng) for t, b in pairs])
    return points, *hierarchical(points, reps, rng)


def between_run_interval(base_points: Sequence[float], new_points: Sequence[float],
                         confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Welch's t interval of the ratio, on the log of each run's statistic; None below 2 runs a side.

    The bootstrap over runs is too narrow with 2 or 3 runs (it cannot draw a run state it
    has not seen); Student's t pays for the few runs with its heavy quantiles (12.7 at one
    degree of freedom). Unequal run counts and spreads are what Welch's form is for.
    """
    if min(len(base_points), len(new_points)) < 2:
        return None
    b, n = np.log(np.asarray(base_points, float)), np.log(np.asarray(new_points, float))
    vb, vn = b.var(ddof=1) / b.size, n.var(ddof=1) / n.size
    se2 = vb + vn
    if se2 <= 0:
        return None
    df = se2**2 / ((vb**2 / (b.size - 1) if vb else 0.0) + (vn**2 / (n.size - 1) if vn else 0.0))
    half = float(_st.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(se2)
    diff = float(n.mean() - b.mean())
    return math.exp(diff - half), math.exp(diff + half)


def _estimate(base: Side, new: Side) -> RatioEstimate:
    """The ratio of the side statistics; the interval is the hierarchical bootstrap's, widened to
    cover Welch's between-run interval where both sides have several runs."""
    (b_pts, b, b_reps), (n_pts, n, n_reps) = base, new
    alpha = (1 - CONFIDENCE) / 2
    low, high = (float(q) for q in np.quantile(n_reps / b_reps, [alpha, 1 - alpha]))
    welch = between_run_interval(b_pts, n_pts)
    if welch is not None:
        low, high = min(low, welch[0]), max(high, welch[1])
    return RatioEstimate(n / b, low, high, b, n, len(b_pts), len(n_pts))


def ratio_of_sides(base: Sequence[Sequence[float]], new: Sequence[Sequence[float]],
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> RatioEstimate:
    """NEW/BASE ratio of the median of run medians, each side a list of runs' raw samples."""
    rng = np.random.default_rng(seed)
    return _estimate(_side(base, resamples, rng), _side(new, resamples, rng))


def relative_ratio(base: Sequence[tuple[Sequence[float], Sequence[float]]],
                   new: Sequence[tuple[Sequence[float], Sequence[float]]],
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> RatioEstimate:
    """How a technique's time relative to its same-run baseline moved, NEW over BASE.

    Each side is a list of runs, each run a pair (technique samples, baseline samples). The
    estimate's `base`/`new` are the time ratios technique/baseline (1/speedup) of each side.
    """
    rng = np.random.default_rng(seed)
    return _estimate(_relative_side(base, resamples, rng), _relative_side(new, resamples, rng))


def stored_relative(base: dict, new: dict) -> RatioEstimate | None:
    """How a technique's paired speedup moved, NEW over BASE as a time ratio, from the speedups and
    intervals that runs store (`PairedRatio`: paired rounds over several processes, or paired training
    stretches: tighter than any ratio of two cases' figures, since the pairs cancel the run's machine state). The two
    sides' log-scale half-widths add in quadrature. None unless both metrics hold them, with their units."""
    b, n = PairedRatio.from_metrics(base), PairedRatio.from_metrics(new)  # speedups: baseline over technique
    if b is None or n is None or not all(x > 0 for s in (b, n) for x in (s.ratio, s.low, s.high, s.units)):
        return None
    ratio = b.ratio / n.ratio
    # NEW/BASE time ratio rises when NEW's speedup falls: NEW's low end and BASE's high end widen it upward.
    up = math.hypot(math.log(b.high / b.ratio), math.log(n.ratio / n.low))
    down = math.hypot(math.log(b.ratio / b.low), math.log(n.high / n.ratio))
    return RatioEstimate(ratio, ratio * math.exp(-down), ratio * math.exp(up), 1 / b.ratio, 1 / n.ratio,
                         b.units, n.units)


def with_machine_states(est: RatioEstimate, base_sd: float, new_sd: float) -> RatioEstimate:
    """The interval widened, in quadrature on the log scale, by 1.96 x the two runs' machine-state
    spreads (`stats.state_sd`): one run a side, measured in several processes, still shares one
    machine state per side, which its per-process units cannot show (whole runs move against each
    other: docs/validation/rerun-validation)."""
    extra = NORMAL_95 * math.hypot(base_sd, new_sd)
    if extra == 0 or est.low <= 0:
        return est
    low = est.ratio * math.exp(-math.hypot(math.log(est.ratio / est.low), extra))
    high = est.ratio * math.exp(math.hypot(math.log(est.high / est.ratio), extra))
    return RatioEstimate(est.ratio, low, high, est.base, est.new, est.base_runs, est.new_runs)


def classify(case: CaseSpec, est: RatioEstimate, threshold: float, floor: float = SINGLE_RUN_FLOOR,
             baseline: CaseSpec | None = None) -> Verdict:
    """faster / slower / within noise: a change beyond the bar AND an interval that excludes 1.

    The bar is the threshold, raised to `floor` when a side has a single run.
    """
    bar = max(threshold, floor) if est.single_run else threshold
    notes = []
    if est.single_run:
        notes.append(f"one run of one process on a side: between-run noise unknown, bar raised to {bar:.0%}")
    if est.ratio > 1 + bar and est.low > 1:
        kind: Kind = "slower"
    elif est.ratio < 1 / (1 + bar) and est.high < 1:
        kind = "faster"
    else:
        kind = "within noise"
        beyond = est.ratio > 1 + bar or est.ratio < 1 / (1 + bar)
        significant = est.low > 1 or est.high < 1
        if beyond:
            notes.append("change beyond the bar but the interval holds 1")
        elif significant:
            notes.append("significant but smaller than the bar")
    return Verdict(case, kind, est, bar, "; ".join(notes), baseline)


def _status_verdict(case: CaseSpec, base: list[CaseResult], new: list[CaseResult]) -> Verdict | None:
    """A verdict decided by presence and status alone (None: both sides measured it)."""
    if not base:
        return Verdict(case, "not comparable", note="only in NEW")
    if not new:
        return Verdict(case, "not comparable", note="only in BASE")
    new_failed = [r for r in new if r.status == "failed"]
    base_ok = any(r.status == "ok" for r in base)
    if new_failed and base_ok:
        return Verdict(case, "failed", note=f"failed in NEW: {new_failed[0].reason.splitlines()[0][:160]}")
    if new_failed:
        return Verdict(case, "not comparable", note="failed on both sides")
    if any(r.status == "failed" for r in base):
        return Verdict(case, "not comparable", note="failed in BASE, ok in NEW (fixed?)")
    skipped = [r for r in (*base, *new) if r.status == "skipped"]
    if skipped:
        return Verdict(case, "not comparable", note=f"skipped: {skipped[0].reason.splitlines()[0][:160]}")
    return None


def baseline_of(case: CaseSpec, available: set[CaseSpec]) -> CaseSpec | None:
    """The same-run baseline of a technique: same suite, workload and device, the suite's
    baseline variant, and every param the baseline has equal to the case's (batch, backend...)."""
    variant = baseline_variant(case.suite, case.device)
    if variant is None or case.variant == variant:
        return None
    mine = dict(case.params)
    for other in available:
        if (other.suite, other.workload, other.device, other.variant) == (case.suite, case.workload, case.device,
                                                                           variant) \
                and all(mine.get(k) == v for k, v in other.params):
            return other
    return None


RunResults = dict[CaseSpec, CaseResult]


def by_process(m: Measurement) -> dict[int, tuple[float, ...]]:
    """A measurement's samples per process (processes with MIN_SAMPLES_PER_PROCESS or more);
    one entry, all samples, where one process took them."""
    if m.unit_of_sample is None:
        return {0: m.samples}
    groups: dict[int, list[float]] = {}
    for sample, process in zip(m.samples, m.unit_of_sample, strict=True):
        groups.setdefault(process, []).append(sample)
    kept = {p: tuple(v) for p, v in groups.items() if len(v) >= MIN_SAMPLES_PER_PROCESS}
    return kept if len(kept) > 1 else {0: m.samples}


def _samples(runs: Sequence[RunResults], case: CaseSpec) -> list[tuple[float, ...]]:
    """The units of a side: each run's samples, split by process where the run has several."""
    return [g for r in runs if case in r and r[case].status == "ok" for g in by_process(r[case].measurement).values()]


def _paired_units(runs: Sequence[RunResults], case: CaseSpec, ref: CaseSpec
                  ) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    """(technique samples, baseline samples) per run, or per process where both were measured in
    the same processes (an interleaved run): the technique is judged against its baseline as the
    same process measured it."""
    out = []
    for r in runs:
        if case in r and ref in r and r[case].status == r[ref].status == "ok":
            mine, theirs = by_process(r[case].measurement), by_process(r[ref].measurement)
            common = mine.keys() & theirs.keys()
            out += [(mine[p], theirs[p]) for p in sorted(common)] if len(common) > 1 else \
                [(r[case].measurement.samples, r[ref].measurement.samples)]
    return out


def on_figures(est: RatioEstimate, base: float, new: float) -> RatioEstimate:
    """The estimate moved onto the sides' figures (`side_figure`), its interval's log-scale half-widths kept,
    as `stats.process_ci` centres its interval over processes on the median of all samples: the
    figures `compare` prints are then those `run` printed and `report` shows."""
    ratio = new / base
    shift = ratio / est.ratio
    return RatioEstimate(ratio, est.low * shift, est.high * shift, base, new, est.base_runs, est.new_runs)


def side_figure(runs: Sequence[RunResults], case: CaseSpec) -> float:
    """A side's figure of a case: its run's median (`Measurement.median`, the median of all its samples,
    which its interval is built around), the median over runs where the side has several."""
    return float(np.median([r[case].measurement.median for r in runs if case in r and r[case].status == "ok"]))


def compare_runs(base: Sequence[RunResults], new: Sequence[RunResults], threshold: float = DEFAULT_THRESHOLD,
                 base_envs: Sequence[dict] = (), new_envs: Sequence[dict] = (), seed: int = 0) -> Comparison:
    """Verdicts for every case on either side, plus relative-speedup verdicts per technique."""
    if not base or not new:
        raise ValueError("each side needs at least one run")
    cases = sorted({c for r in (*base, *new) for c in r}, key=lambda c: (c.suite, c.workload, c.variant, c.id))
    verdicts = []
    measured = set()
    for case in cases:
        b = [r[case] for r in base if case in r]
        n = [r[case] for r in new if case in r]
        decided = _status_verdict(case, b, n)
        if decided is None:
            est = on_figures(ratio_of_sides(_samples(base, case), _samples(new, case), seed=seed),
                             side_figure(base, case), side_figure(new, case))
            if len(base) == len(new) == 1:
                est = with_machine_states(est, base[0][case].measurement.state_sd, new[0][case].measurement.state_sd)
            decided = classify(case, est, threshold)
            measured.add(case)
        verdicts.append(decided)
    relative = []
    for case in sorted(measured, key=lambda c: (c.suite, c.workload, c.variant, c.id)):
        ref = baseline_of(case, measured)
        if ref is None:
            continue
        stored = (stored_relative(base[0][case].metrics, new[0][case].metrics)
                  if len(base) == len(new) == 1 else None)
        pairs = [_paired_units(side, case, ref) for side in (base, new)]
        if stored is None and (not pairs[0] or not pairs[1]):
            continue
        est = stored or relative_ratio(pairs[0], pairs[1], seed=seed)
        relative.append(classify(case, est, threshold, baseline=ref))
    return Comparison(tuple(verdicts), tuple(relative), threshold, tuple(base_envs), tuple(new_envs),
                      energy_changes(base, new, cases))


def _energies(runs: Sequence[RunResults], case: CaseSpec) -> list[float]:
    values = [r[case].metrics.get("energy_j_per_sample") for r in runs if case in r and r[case].status == "ok"]
    return [v for v in values if isinstance(v, (int, float)) and v > 0]


def energy_changes(base: Sequence[RunResults], new: Sequence[RunResults],
                   cases: Sequence[CaseSpec]) -> tuple[EnergyChange, ...]:
    """Energy per sample of the cases that both sides measured it for (`EnergyChange`)."""
    out = []
    for case in cases:
        b, n = _energies(base, case), _energies(new, case)
        if b and n:
            out.append(EnergyChange(case, float(np.median(b)), float(np.median(n)), len(b), len(n)))
    return tuple(out)
