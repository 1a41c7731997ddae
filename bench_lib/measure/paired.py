"""One paired estimator: the median of paired ratios, its interval with the measuring unit as a random effect.

A pair is two figures measured back to back in the same conditions: a technique's round and its baseline's in
one process visit (`effbench run`), stretch k of a strategy and stretch k of sync in one round of turns
(training), a round of NEW and one of BASE (`effbench ab`). Whatever slowed the machine for that moment hit both
and cancels in their ratio, so the median of the ratios is far tighter than the ratio of two medians. What does
not cancel is a bias that a unit carries for its whole life (a process, a server): the ratios of one unit share
it, so the interval treats the unit as a random effect (`stats.median_interval`: t over the units' median
ratios, never narrower than the distribution-free interval of the median).

Results store a speedup, the baseline's time over the technique's: the inverse of the time ratio that the pairs
give, its interval (1/high, 1/low). The stored keys (`speedup`, `speedup_ci95_low`, ...) are written and read
here only, so that files of every version read alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from bench_lib.measure.stats import MIN_SAMPLES_PER_PROCESS, median_interval

__all__ = ["UnitKind", "PairedRatio", "paired_ratio", "STORED_KEYS"]

UnitKind = Literal["process", "stretch", "server"]

# How a result names its speedup's units (`speedup_units`); a process, the first kind, is named by no key at all.
_STORED_UNITS: dict[UnitKind, str | None] = {"process": None, "stretch": "paired stretches", "server": "servers"}
_KIND_OF = {name: kind for kind, name in _STORED_UNITS.items()}
STORED_KEYS = ("speedup", "speedup_ci95_low", "speedup_ci95_high", "speedup_pairs", "speedup_processes",
               "speedup_units")


def _number(value: object) -> float | None:
    """A stored value as a finite float, else None (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class PairedRatio:
    """The median of paired ratios a/b with its 95% interval [low, high], from `pairs` ratios measured in
    `units` units of `unit_kind` (a stretch unit is one pair of stretches). Which figure is a and which is b
    is the caller's: a time ratio (technique over baseline, NEW over BASE), or its `inverse`, a speedup."""

    ratio: float
    low: float
    high: float
    pairs: int
    units: int
    unit_kind: UnitKind = "process"

    def inverse(self) -> PairedRatio:
        """b/a: its interval's ends swap places, an end at 0 becomes infinite and an infinite one 0."""
        return replace(self, ratio=1 / self.ratio, low=1 / self.high if self.high > 0 else 0.0,
                       high=1 / self.low if self.low > 0 else math.inf)

    def widened(self, low: float, high: float) -> PairedRatio:
        """The interval stretched to cover [low, high] as well: never narrower than either."""
        return replace(self, low=min(self.low, low), high=max(self.high, high))

    def to_metrics(self) -> dict[str, float | int | str]:
        """This ratio, a speedup (baseline over technique), under the keys a result stores it by."""
        metrics: dict[str, float | int | str] = {
            "speedup": self.ratio, "speedup_ci95_low": self.low, "speedup_ci95_high": self.high,
            "speedup_pairs": self.pairs, "speedup_processes": self.units}
        units = _STORED_UNITS[self.unit_kind]
        if units is not None:
            metrics["speedup_units"] = units
        return metrics

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, object]) -> PairedRatio | None:
        """The speedup (baseline over technique) that a result's metrics store, or None where they store none:
        a figure or an end of its interval missing or not a finite number, or units this version does not know.
        Files from before the pairs and units were stored read with 0 of each."""
        ratio, low, high, pairs, units = (_number(metrics.get(k)) for k in STORED_KEYS[:5])
        named = metrics.get("speedup_units")
        kind = _KIND_OF.get(named) if named is None or isinstance(named, str) else None
        if kind is None or ratio is None or low is None or high is None:
            return None
        return cls(ratio, low, high, 0 if pairs is None else int(pairs), 0 if units is None else int(units), kind)


def paired_ratio(ratios: Sequence[float] | np.ndarray, units: Sequence[int] | None = None,
                 unit_kind: UnitKind = "process", min_per_unit: int = MIN_SAMPLES_PER_PROCESS) -> PairedRatio | None:
    """The median of paired ratios, and its interval with the unit (`units[i]`: pair i's) as a random effect:
    `stats.median_interval`, where a unit counts once it holds `min_per_unit` pairs (1 where every pair is a
    unit of its own). Without units, the pairs are one unit's: the distribution-free interval alone.
    None without pairs."""
    if len(ratios) == 0:
        return None
    x = np.asarray(ratios, dtype=float)
    if units is not None and len(units) != x.size:
        raise ValueError(f"{x.size} paired ratios but {len(units)} unit labels")
    labels = None if units is None else np.asarray(units)
    low, high = median_interval(x, labels, min_per_unit)
    count = 1 if labels is None else len(set(labels.tolist()))
    return PairedRatio(float(np.median(x)), low, high, x.size, count, unit_kind)
