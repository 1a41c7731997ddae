"""A training figure from its stretches: the units of its interval, the run's machine state, paired speedups.

The training suite's strategies take turns in stretches of a few steps (training.py). The steps of one
stretch are not independent samples: they share the stretch's moment of the machine and their launch's
ranks, so an interval built from the steps alone is far too narrow: a rerun's median falls outside it far
more often than one time in twenty (docs/validation/rerun-validation). Here
the stretch is the unit, in the spirit of the inference suite's processes (`stats.process_ci`):

- a case's figure is the median of its step times; its interval treats each stretch (of every launch)
  as a random effect (`stats.median_interval`, with the stretch as the "process" of each step), and
  adds, in quadrature, 1.96 x the spread of the run's machine-state index over the stretches of every
  case (`stats.state_sd`, fed with each stretch's log deviation from its case's median pace), as
  `Measurement.ci95` does for the inference suite;
- a strategy's speedup over sync comes from paired stretches: stretch k of the strategy and stretch k
  of sync ran in the same round of turns of the same launch; the speedup is the median of the paired
  pace ratios, its interval over the pairs, each pair a unit (`measure.paired`).

Pure functions of stored figures, so that a run's launches can be pooled (`Stretches.then`) and the
figures rebuilt from files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench_lib.measure.paired import STORED_KEYS, paired_ratio
from bench_lib.measure.stats import Measurement, state_sd

__all__ = ["Stretches", "stretch_state_sd", "paired_stretch_speedup", "SPEEDUP_KEYS", "INTERVAL_NOTE"]

# Every metric a training case's speedup over sync is stored under (`paired_stretch_speedup`, and its baseline).
SPEEDUP_KEYS = (*STORED_KEYS, "speedup_by_launch", "speedup_baseline")

INTERVAL_NOTE = ("stretch as a random effect (t over per-stretch medians of step times, stretches of every "
                 "launch), never narrower than the distribution-free interval of the steps, widened in quadrature "
                 "by 1.96 x the run's machine-state sd over every case's stretches")


@dataclass(frozen=True)
class Stretches:
    """One case's timed stretches in one or more launches, and the samples timed in them.

    `unit_of_sample[i]` is the stretch (numbered over the launches) sample i fell in; `paces[u]`,
    `starts[u]` and `launch_of_unit[u]` are stretch u's seconds per step, start (unix seconds) and launch.
    The reference's samples are its stretches' paces, one a stretch.
    """

    samples: tuple[float, ...]
    unit_of_sample: tuple[int, ...]
    paces: tuple[float, ...]
    starts: tuple[float, ...]
    launch_of_unit: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.samples) != len(self.unit_of_sample):
            raise ValueError(f"{len(self.samples)} samples but {len(self.unit_of_sample)} stretch labels")
        if not len(self.paces) == len(self.starts) == len(self.launch_of_unit):
            raise ValueError("paces, starts and launches must have one entry per stretch")
        if any(not 0 <= u < len(self.paces) for u in self.unit_of_sample):
            raise ValueError(f"a sample's stretch is not one of the {len(self.paces)} stretches")

    @classmethod
    def one_launch(cls, samples: Sequence[float], unit_of_sample: Sequence[int], paces: Sequence[float],
                   starts: Sequence[float], launch: int = 0) -> Stretches:
        return cls(tuple(samples), tuple(unit_of_sample), tuple(paces), tuple(starts), (launch,) * len(paces))

    def then(self, other: Stretches) -> Stretches:
        """These stretches followed by another launch's (its stretches and launches renumbered after these)."""
        first_launch = max(self.launch_of_unit, default=-1) + 1
        return Stretches(self.samples + other.samples,
                         self.unit_of_sample + tuple(len(self.paces) + u for u in other.unit_of_sample),
                         self.paces + other.paces, self.starts + other.starts,
                         self.launch_of_unit + tuple(first_launch + launch for launch in other.launch_of_unit))

    @property
    def launches(self) -> int:
        return len(set(self.launch_of_unit))

    def measurement(self, machine_state_sd: float) -> Measurement:
        """The figure: the samples with their stretches as the units of the interval."""
        return Measurement(self.samples, unit_of_sample=self.unit_of_sample, state_sd=machine_state_sd,
                           unit_kind="stretch")

    def deviations(self) -> list[tuple[float, float]]:
        """(start, log of the stretch's pace over this case's median pace) per stretch."""
        med = float(np.median(self.paces))
        return [(t, math.log(p / med)) for t, p in zip(self.starts, self.paces, strict=True) if p > 0 and med > 0]

    def metrics(self) -> dict:
        """What the result stores beside the samples (their stretches are `process_of_sample`)."""
        return {"stretch_step_s": list(self.paces), "stretch_started_s": list(self.starts),
                "stretch_launch": list(self.launch_of_unit)}


def stretch_state_sd(cases: Sequence[Stretches]) -> float:
    """The run's machine-state spread (`stats.state_sd`) over the stretches of every case, in time order."""
    return state_sd([d for s in cases for d in s.deviations()])


def paired_stretch_speedup(case: Stretches, base: Stretches) -> dict:
    """The metrics of the case's speedup over base, base pace over the case's from stretches of the same
    round (stretch k of each, same launch): the paired pace ratios' estimate (`paired_ratio`) with every
    pair a unit of its own (t over the pairs' log ratios, never narrower than the distribution-free
    interval), inverted; {} where the stretches do not pair. The common machine state cancels in a pair;
    with two launches, the launch as a random effect of its own would rest on t(1) (12.7) and a spread of
    two medians, an interval of no use: the per-launch speedups are stored beside it instead."""
    if len(case.paces) != len(base.paces) or case.launch_of_unit != base.launch_of_unit:
        return {}
    pairs = [(c / b, launch) for c, b, launch in zip(case.paces, base.paces, case.launch_of_unit, strict=True)
             if b > 0 and c > 0]
    time_ratio = paired_ratio([r for r, _ in pairs], range(len(pairs)), "stretch", min_per_unit=1)
    if time_ratio is None:
        return {}
    ratios, launches = np.array([r for r, _ in pairs]), [launch for _, launch in pairs]
    return {**time_ratio.inverse().to_metrics(),
            "speedup_by_launch": [1 / float(np.median(ratios[np.array(launches) == k])) for k in sorted(set(launches))]}
