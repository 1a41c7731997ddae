"""The round scheduler: blocks, each visiting its entries in a fresh random order, so that drift and the
machine's slow states fall on every entry alike rather than on whichever came last. Two policies say
what a block holds:

- fixed interleaved blocks (`effbench run`, `fixed_blocks`): every (unit, process) once per block, for a
  set number of blocks; a unit is a baseline and the techniques measured against it, visited back to
  back in one process, so that each technique's rounds pair with its baseline's;
- adaptive budgeted pairs (`effbench ab`, `adaptive_block`): every still-undecided case once per block,
  and a suspect (a case that may have slowed) SUSPECT_EXTRA_PAIRS more times, until every case is
  decided or the time budget is spent (`stop`).

What a visit measures, and when an entry is done, is the caller's: `interleaved.InterleavedRun` for
`run`, `ab.job.run_trials` (pairs back to back in random order, fresh servers to confirm) for `ab`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from bench_lib.results.case import CaseSpec

__all__ = ["MAX_FAILED_ROUNDS", "SUSPECT_EXTRA_PAIRS", "Unit", "units_of", "fixed_blocks", "adaptive_block",
           "run_blocks"]

# A case whose rounds failed this many times is failed: one failure may be the machine's, two are the case's.
MAX_FAILED_ROUNDS = 2
SUSPECT_EXTRA_PAIRS = 2

T = TypeVar("T")


@dataclass(frozen=True)
class Unit:
    """Cases measured back to back in one process visit: a baseline (or None) and its techniques."""

    cases: tuple[CaseSpec, ...]
    baseline: CaseSpec | None = None


def units_of(cases: list[CaseSpec], baseline_of: Callable[[CaseSpec], CaseSpec | None]) -> list[Unit]:
    """Group each case with its baseline where the run has it; the rest are units of one."""
    present = set(cases)
    grouped: dict[CaseSpec, list[CaseSpec]] = {}
    for case in cases:
        base = baseline_of(case)
        key = base if base in present else case
        grouped.setdefault(key, []).append(case)
    return [Unit(tuple(members), key if key in members and len(members) > 1 else None)
            for key, members in grouped.items()]


def fixed_blocks(units: list[Unit], processes: int, rounds: int) -> Callable[[int], list[tuple[Unit, int]]]:
    """`rounds` blocks, each holding every (unit, process) once."""
    return lambda block: [(u, p) for u in units for p in range(processes)] if block < rounds else []


def adaptive_block(active: list[T], suspect: Callable[[T], bool]) -> list[T]:
    """Every active entry once, a suspect SUSPECT_EXTRA_PAIRS more times."""
    return active + [t for t in active if suspect(t) for _ in range(SUSPECT_EXTRA_PAIRS)]


def run_blocks(rng: random.Random, block: Callable[[int], list[T]], visit: Callable[[T], None],
               on_block: Callable[[int], None] = lambda done: None, stop: Callable[[], bool] = lambda: False) -> None:
    """Block after block until `block(n)` (n: blocks done) is empty or `stop()`: each block shuffled, then
    visited in that order; `stop` is asked before every block and every visit, `on_block(done)` after each
    block, a cut one included."""
    done = 0
    while not stop():
        entries = block(done)
        if not entries:
            break
        rng.shuffle(entries)
        for entry in entries:
            if stop():
                break
            visit(entry)
        done += 1
        on_block(done)
