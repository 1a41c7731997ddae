"""Stored runs as histories: per machine and case, one point per commit in commit order.

Runs are ordered by the time of the commit they measured (`commit_info.time`; the run's own
capture time where the commit's is unknown), then by when they ran. Runs of one clean commit
on one machine make one point; a dirty tree or an unknown commit is code of its own, so each
such run is a point of its own. Machines are told apart by hardware only (CPU model and count,
GPUs): a new torch on the same machine is a change the history should show, not a new history.

Each case has its absolute series (its time). A technique case measured in an interleaved run
also stores its paired speedup over its baseline in the same run, with a 95% interval
(`speedup`, `speedup_ci95_low`, `speedup_ci95_high` in its metrics, as `compare` judges them):
that figure is a series of its own, the relative series. A technique and its baseline alternate
in ~10 ms blocks, so the run's machine state, which moves whole runs against each other,
cancels from it; a slowdown of the technique is a drop of its speedup. Both kinds of series go
through the same detection (detect.py), each with its own between-run spread.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from statistics import NormalDist
from typing import Literal

from bench_lib.history.detect import Change, detect_changes
from bench_lib.measure.paired import PairedRatio
from bench_lib.report.load import Run
from bench_lib.results.case import CaseSpec

__all__ = ["Commit", "Point", "Series", "History", "histories", "machine_label", "stored_speedup"]

Figure = Literal["time", "speedup"]

_Z = NormalDist().inv_cdf(0.975)  # stored intervals are 95%: their half-width is _Z standard errors
_UNKNOWN = datetime.min.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Commit:
    """The code a run measured; `label` is what the tables and the x axis show."""

    id: str
    dirty: bool
    time: str
    label: str


@dataclass(frozen=True)
class Point:
    """One commit's runs of one case: their figures and 95% intervals (`medians`: the runs' median
    times in seconds, or their paired speedups in a relative series)."""

    commit: Commit
    runs: tuple[str, ...]
    medians: tuple[float, ...]
    lows: tuple[float, ...]
    highs: tuple[float, ...]

    @property
    def log_value(self) -> float:
        return sum(math.log(m) for m in self.medians) / len(self.medians)

    @property
    def value(self) -> float:
        """Geometric mean of the runs' figures."""
        return math.exp(self.log_value)

    @property
    def band(self) -> tuple[float, float]:
        """Geometric means of the runs' interval bounds: what the plot shades."""
        n = len(self.runs)
        return (math.exp(sum(math.log(x) for x in self.lows) / n), math.exp(sum(math.log(x) for x in self.highs) / n))

    @property
    def own_variance(self) -> float:
        """Variance of `log_value` that the runs' own intervals allow (log scale)."""
        v = [(math.log(h / lo) / (2 * _Z)) ** 2 for lo, h in zip(self.lows, self.highs, strict=True)]
        return sum(v) / len(v) ** 2


@dataclass(frozen=True)
class Series:
    """One case's history on one machine, and the changes found in it.

    `figure` is "time" (the case's median time) or "speedup" (its paired speedup over `baseline`
    in the same run). A change's ratio is the figure after over before either way, so a slower
    case is a ratio above 1 in a time series and below 1 in a speedup series: ask `slower`.
    """

    machine: str
    case: CaseSpec
    points: tuple[Point, ...]
    changes: tuple[Change, ...]
    figure: Figure = "time"
    baseline: str = ""

    @property
    def latest_change(self) -> Change | None:
        return self.changes[-1] if self.changes else None

    def slower(self, change: Change) -> bool:
        """Whether the change made the case slower: its time rose, or its speedup fell."""
        return change.ratio > 1 if self.figure == "time" else change.ratio < 1


@dataclass(frozen=True)
class History:
    """Every case measured on one machine, over the commits its runs measured (in order):
    `series` its times, `relative` the paired speedups of the technique cases that store them."""

    machine: str
    commits: tuple[Commit, ...]
    series: tuple[Series, ...]
    relative: tuple[Series, ...] = ()

    @property
    def runs(self) -> int:
        return len({r for s in (*self.series, *self.relative) for p in s.points for r in p.runs})


def machine_label(env: dict) -> str:
    gpus = env.get("gpus") or []
    gpu = f", {len(gpus)} x {gpus[0].get('name')}" if gpus else ""
    return f"{env.get('cpu_model') or 'unknown CPU'} ({env.get('cpu_count') or '?'} cores){gpu}"


def _commit(run: Run) -> Commit:
    c, ran = run.commit, str(run.environment.get("captured_at") or "")
    cid, dirty = str(c.get("id") or ""), bool(c.get("dirty"))
    if not cid or dirty:
        label = f"{cid[:8]}+dirty ({run.name})" if cid else run.name
        return Commit(f"{cid}:{run.name}", dirty, str(c.get("time") or ran), label)
    return Commit(cid, False, str(c.get("time") or ran), cid[:8])


def _when(text: str) -> datetime:
    """An ISO time as an aware UTC datetime (naive ones are taken as UTC); unknown sorts first."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return _UNKNOWN
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _usable(lo: float, median: float, hi: float) -> bool:
    return 0 < lo <= median <= hi < math.inf


def stored_speedup(metrics: dict) -> tuple[float, float, float] | None:
    """(speedup, low, high) as a run stores them for a technique case (`PairedRatio`), else None."""
    s = PairedRatio.from_metrics(metrics)
    return (s.ratio, s.low, s.high) if s is not None and _usable(s.low, s.ratio, s.high) else None


Cells = dict[tuple[str, CaseSpec], dict[Commit, list[tuple[str, float, float, float]]]]


def _series(cells: Cells, threshold: float, figure: Figure, baselines: dict[tuple[str, CaseSpec], str]
            ) -> dict[str, list[Series]]:
    out: dict[str, list[Series]] = defaultdict(list)
    for (machine, case), by_commit in sorted(cells.items(), key=lambda kv: (kv[0][1].suite, kv[0][1].id)):
        points = tuple(Point(commit, *(tuple(col) for col in zip(*rows, strict=True)))
                       for commit, rows in by_commit.items())
        changes = detect_changes([p.log_value for p in points], [p.own_variance for p in points], threshold)
        out[machine].append(Series(machine, case, points, tuple(changes), figure,
                                   baselines.get((machine, case), "")))
    return out


def histories(runs: list[Run], threshold: float) -> list[History]:
    """Every measured case's history per machine, its times and its stored paired speedups, with
    their changes (threshold as in detect_changes)."""
    ordered = sorted(runs, key=lambda r: (_when(_commit(r).time), _when(str(r.environment.get("captured_at") or "")),
                                          r.name))
    cells: Cells = defaultdict(dict)
    speedups: Cells = defaultdict(dict)
    baselines: dict[tuple[str, CaseSpec], str] = {}  # the newest run's, where a case's baseline was renamed
    commits: dict[str, dict[Commit, None]] = defaultdict(dict)  # insertion-ordered sets
    for run in ordered:
        commit, machine = _commit(run), machine_label(run.environment)
        commits[machine][commit] = None
        for case, result in run.results.items():
            m = result.measurement
            if result.status != "ok" or m is None or not _usable(m.ci95[0], m.median, m.ci95[1]):
                continue
            cells[(machine, case)].setdefault(commit, []).append((run.name, m.median, *m.ci95))
            paired = stored_speedup(result.metrics)
            if paired:
                speedups[(machine, case)].setdefault(commit, []).append((run.name, *paired))
                baselines[(machine, case)] = str(result.metrics.get("speedup_baseline") or "")
    series = _series(cells, threshold, "time", {})
    relative = _series(speedups, threshold, "speedup", baselines)
    return [History(m, tuple(commits[m]), tuple(series[m]), tuple(relative[m])) for m in sorted(series)]
