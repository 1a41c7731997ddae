"""Profiles: how much a run measures. `quick` fits `nox -s bench` on 2 CPU cores in minutes."""

from __future__ import annotations

from dataclasses import dataclass

from bench_lib.measure.timers import MeasureConfig

__all__ = ["PROFILES", "ROUND", "VISIT", "Interleave", "INTERLEAVE", "measure_config", "interleave_plan"]

PROFILES: dict[str, MeasureConfig] = {
    "quick": MeasureConfig(warmup_s=0.1, min_run_time_s=0.4, max_run_time_s=4.0, min_samples=10),
    "full": MeasureConfig(warmup_s=0.5, min_run_time_s=2.0, max_run_time_s=30.0, min_samples=30),
}

# One A/B round (`effbench ab`): short, because a verdict rests on many pairs of rounds and on
# enough of them per server process (the noise between rounds and between processes dwarfs the
# noise within a round), and at least 5 calls, so that a 150 ms case does not spend 1.5 s a round.
ROUND = MeasureConfig(warmup_s=0.03, min_run_time_s=0.1, max_run_time_s=2.0, min_samples=5)

# Each case's share of one visit of an interleaved run (`effbench run`): its ~10 ms blocks alternate
# with the other cases' of the visit, so a short share suffices for a paired ratio; a figure's
# variance comes from the visits' different machine states, so visits are many and short (with
# 0.1 s shares, as ROUND, the quick inference suite took 35% longer than before interleaving).
VISIT = MeasureConfig(warmup_s=0.02, min_run_time_s=0.05, max_run_time_s=1.0, min_samples=5)


def measure_config(profile: str) -> MeasureConfig:
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}") from None


@dataclass(frozen=True)
class Interleave:
    """How `effbench run` spreads an interleaved suite's cases: over `processes` long-lived
    processes, each visiting every case `rounds_per_process` times (a VISIT share each time)."""

    processes: int
    rounds_per_process: int

    def __post_init__(self) -> None:
        if self.processes < 1:
            raise ValueError(f"--processes must be >= 1, got {self.processes}")
        if self.rounds_per_process < 1:
            raise ValueError(f"rounds per process must be >= 1, got {self.rounds_per_process}")


# Three processes: the fewest whose spread estimates a process's bias (t with 2 df); each
# process's median rests on 4 rounds in quick (12 a case), 10 in full (30 a case).
INTERLEAVE: dict[str, Interleave] = {"quick": Interleave(3, 4), "full": Interleave(3, 10)}


def interleave_plan(profile: str, processes: int | None = None, gpu: bool = False) -> Interleave:
    """The profile's plan, or `processes` of it. A run on a GPU defaults to one process with the
    same rounds in all: each process keeps every case's model, and one GPU's memory holds one
    process's (three processes with the 8B shape's eight served models ran out of an H200's)."""
    base = INTERLEAVE[profile]
    if processes is None and gpu:
        return Interleave(1, base.processes * base.rounds_per_process)
    return base if processes is None else Interleave(processes, base.rounds_per_process)
