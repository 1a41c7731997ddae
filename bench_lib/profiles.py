"""Profiles: how much a run measures. `quick` fits `nox -s bench` on 2 CPU cores in minutes."""

from __future__ import annotations

from bench_lib.measure.timers import MeasureConfig

__all__ = ["PROFILES", "ROUND", "measure_config"]

PROFILES: dict[str, MeasureConfig] = {
    "quick": MeasureConfig(warmup_s=0.1, min_run_time_s=0.4, max_run_time_s=4.0, min_samples=10),
    "full": MeasureConfig(warmup_s=0.5, min_run_time_s=2.0, max_run_time_s=30.0, min_samples=30),
}

# One A/B round (`effbench ab`): short, because a verdict rests on many pairs of rounds and on
# enough of them per server process (the noise between rounds and between processes dwarfs the
# noise within a round), and at least 5 calls, so that a 150 ms case does not spend 1.5 s a round.
ROUND = MeasureConfig(warmup_s=0.03, min_run_time_s=0.1, max_run_time_s=2.0, min_samples=5)


def measure_config(profile: str) -> MeasureConfig:
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}") from None
