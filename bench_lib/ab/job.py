"""An A/B job's pairs, on the round scheduler's adaptive policy (`execution/schedule.py`): randomized,
paired, adaptive, bounded in time.

In each block every still-undecided case gets one pair, its two rounds back to back in a random
order (so drift and slow machine states hit both sides alike), and a suspect (undecided after the
minimum pairs, its median ratio beyond half the bar: a possible regression) gets
SUSPECT_EXTRA_PAIRS more. A case leaves the schedule once its verdict is decided; the job ends when
all have, or when the time budget is spent. A case whose pairs first say slower or faster moves to
fresh servers (new processes), and the verdict stands only once they agree (`verdict.confirmed`).

Why suspects first: on a slow machine a budget shared evenly gives each case few pairs, and a slowed
case stays undecided while the budget goes to cases that look unchanged (docs/validation/ab-validation).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench_lib.ab.verdict import ABRule, PairedVerdict, confirmed, judge
from bench_lib.execution.schedule import MAX_FAILED_ROUNDS, adaptive_block, run_blocks
from bench_lib.results.case import CaseResult, CaseSpec

__all__ = ["CaseTrial", "is_suspect", "run_trials", "measure_energy"]

Measure = Callable[[str, CaseSpec, int], CaseResult]  # (side, case, server generation)


@dataclass
class CaseTrial:
    case: CaseSpec
    base: list[float] = field(default_factory=list)
    new: list[float] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # which side went first in each pair
    servers: list[tuple[int, int]] = field(default_factory=list)  # (BASE, NEW) server of each pair
    generations: list[int] = field(default_factory=list)  # server generation of each pair: 1 = fresh servers
    generation: int = 0  # where the next rounds go: 1 once the pairs have pointed one way, to confirm it
    last: dict[str, CaseResult] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    verdict: PairedVerdict | None = None
    energy_j_per_sample: dict[str, float] = field(default_factory=dict)  # per side, where measured

    @property
    def failed(self) -> bool:
        return len(self.failures) >= MAX_FAILED_ROUNDS

    @property
    def skipped_reason(self) -> str | None:
        return next((r.reason for r in self.last.values() if r.status == "skipped"), None)

    @property
    def failed_sides(self) -> list[str]:
        return sorted({f.split(":")[0] for f in self.failures})

    @property
    def active(self) -> bool:
        return not self.failed and self.skipped_reason is None and not (self.verdict and self.verdict.decided)


def _round(trial: CaseTrial, measure: Measure, first: str) -> None:
    sides = (first, "new" if first == "base" else "base")
    results = {side: measure(side, trial.case, trial.generation) for side in sides}
    trial.last.update(results)
    bad = [f"{s}: {r.reason.splitlines()[0]}" for s, r in results.items() if r.status == "failed"]
    if bad:
        trial.failures.extend(bad)
        return
    if any(r.status != "ok" for r in results.values()):
        return
    trial.base.append(results["base"].measurement.median)
    trial.new.append(results["new"].measurement.median)
    trial.order.append(first)
    trial.servers.append((int(results["base"].metrics.get("ab_server", 0)),
                          int(results["new"].metrics.get("ab_server", 0))))
    trial.generations.append(trial.generation)


def _verdict(trial: CaseTrial, rule: ABRule) -> PairedVerdict:
    fresh = [n / b for b, n, g in zip(trial.base, trial.new, trial.generations, strict=True) if g > 0]
    return confirmed(judge(trial.case.id, trial.base, trial.new, rule, trial.servers), fresh, rule)


def is_suspect(trial: CaseTrial, rule: ABRule) -> bool:
    """Undecided after the minimum pairs, with a median ratio past half the bar: it may be slower."""
    v = trial.verdict
    return (v is not None and trial.active and v.pairs >= rule.min_pairs
            and v.ratio > 1.0 + rule.threshold / 2)


def run_trials(trials: list[CaseTrial], measure: Measure, rule: ABRule, budget_s: float, seed: int | None = None,
               on_block: Callable[[int, list[CaseTrial]], None] | None = None,
               clock: Callable[[], float] = time.monotonic) -> list[CaseTrial]:
    """Measure until every case is decided or the budget is spent; every pair's order is random.

    The trials are the caller's and are filled in place, so that an interrupt (Ctrl-C, SIGTERM)
    leaves the caller every pair finished before it, judged.
    """
    rng = random.Random(seed)
    deadline = clock() + budget_s

    def pair(trial: CaseTrial) -> None:
        if not trial.active:  # decided earlier in this block
            return
        _round(trial, measure, rng.choice(("base", "new")))
        trial.verdict = _verdict(trial, rule)
        if trial.verdict.unconfirmed:
            trial.generation = 1

    def block(done: int) -> list[CaseTrial]:
        return adaptive_block([t for t in trials if t.active], lambda t: is_suspect(t, rule))

    def after(done: int) -> None:
        if on_block:
            on_block(done, trials)

    try:
        run_blocks(rng, block, pair, after, stop=lambda: clock() >= deadline)
    finally:
        for t in trials:
            t.verdict = _verdict(t, rule)
    return trials


def measure_energy(trials: list[CaseTrial], characterize: Measure,
                   has_counter: Callable[[CaseSpec], bool]) -> None:
    """After the pairs: one energy window per side of each case that has pairs, where the device has
    an energy counter (`Suite.characterize`, which measures it over a window of its own). One window
    a side gives no interval, so energy is shown beside the verdicts and never judged."""
    for trial in trials:
        if not (trial.base and trial.new and has_counter(trial.case)):
            continue
        for side in ("base", "new"):
            value = characterize(side, trial.case, 0).metrics.get("energy_j_per_sample")
            if isinstance(value, (int, float)) and value > 0:
                trial.energy_j_per_sample[side] = float(value)
