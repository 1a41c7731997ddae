"""Timers, statistics and memory: how a figure is measured."""

from bench_lib.measure.stats import Measurement, median_ci
from bench_lib.measure.timers import MeasureConfig, blocked_autorange, timer_for

__all__ = ["Measurement", "median_ci", "MeasureConfig", "blocked_autorange", "timer_for"]
