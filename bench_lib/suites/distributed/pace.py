"""A training run's pace from the wall clock, with the per-step distribution beside it.

Throughput is tokens over the wall time of the timed steps, not over the median step: a periodic
strategy (local SGD, DiLoCo: H cheap steps, then an averaging step) has a median step that leaves the
averaging out, and so overstates its throughput by the averaging steps' share of the wall time
(docs/validation/training-harness-h200).

A step of the group ends when its last rank ends it. Each rank records when its steps end, counted
from a start the ranks share (the barrier before the timed steps); the group's step ends are the
maxima over ranks. They never decrease, their differences (the group's step times) add up to the
group's wall time, and their median cannot climb above the pace by stacking each rank's slowest
steps, as the maximum over ranks of each step's *duration* does when ranks drift apart between
collectives (nocomm, local SGD): there a median of per-step maxima exceeds the pace the wall clock
gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Pace", "group_ends", "step_times"]


def group_ends(rank_ends: Sequence[Sequence[float]]) -> list[float]:
    """Per step, the latest end over ranks (each rank's ends counted from the shared start)."""
    return [max(ends) for ends in zip(*rank_ends, strict=True)]


def step_times(ends: Sequence[float], start: float = 0.0) -> list[float]:
    """The time each step took: the difference of consecutive ends, the first from `start`."""
    return [b - a for a, b in zip([start, *ends[:-1]], ends, strict=True)]


@dataclass(frozen=True)
class Pace:
    """Timed steps and the wall time they took together."""

    steps: int
    wall_s: float

    @classmethod
    def after_warmup(cls, ends: Sequence[float], warmup: int) -> Pace:
        """The steps after the first `warmup`, timed from the end of the last warm-up step."""
        if len(ends) <= warmup:
            raise ValueError(f"{len(ends)} steps leave none to time after {warmup} warm-up steps")
        return cls(len(ends) - warmup, ends[-1] - (ends[warmup - 1] if warmup else 0.0))

    @property
    def per_step_s(self) -> float:
        return self.wall_s / self.steps

    def rate(self, per_step: float) -> float:
        """`per_step` things a step (samples, tokens) in one second of wall time."""
        return per_step / self.per_step_s
