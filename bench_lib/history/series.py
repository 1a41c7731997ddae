"""Stored runs as histories: per machine and case, one point per commit in commit order.

Runs are ordered by the time of the commit they measured (`commit_info.time`; the run's own
capture time where the commit's is unknown), then by when they ran. Runs of one clean commit
on one machine make one point; a dirty tree or an unknown commit is code of its own, so each
such run is a point of its own. Machines are told apart by hardware only (CPU model and count,
GPUs): a new torch on the same machine is a change the history should show, not a new history.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from statistics import NormalDist

from bench_lib.history.detect import Change, detect_changes
from bench_lib.report.load import Run
from bench_lib.results.case import CaseSpec

__all__ = ["Commit", "Point", "Series", "History", "histories", "machine_label"]

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
    """One commit's runs of one case: their medians and 95% intervals (seconds)."""

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
        """Geometric mean of the runs' medians."""
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
    """One case's history on one machine, and the changes found in it."""

    machine: str
    case: CaseSpec
    points: tuple[Point, ...]
    changes: tuple[Change, ...]

    @property
    def latest_change(self) -> Change | None:
        return self.changes[-1] if self.changes else None


@dataclass(frozen=True)
class History:
    """Every case measured on one machine, over the commits its runs measured (in order)."""

    machine: str
    commits: tuple[Commit, ...]
    series: tuple[Series, ...]

    @property
    def runs(self) -> int:
        return len({r for s in self.series for p in s.points for r in p.runs})


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


def histories(runs: list[Run], threshold: float) -> list[History]:
    """Every measured case's history per machine, with its changes (threshold as in detect_changes)."""
    ordered = sorted(runs, key=lambda r: (_when(_commit(r).time), _when(str(r.environment.get("captured_at") or "")),
                                          r.name))
    cells: dict[tuple[str, CaseSpec], dict[Commit, list[tuple[str, float, float, float]]]] = defaultdict(dict)
    commits: dict[str, dict[Commit, None]] = defaultdict(dict)  # insertion-ordered sets
    for run in ordered:
        commit, machine = _commit(run), machine_label(run.environment)
        commits[machine][commit] = None
        for case, result in run.results.items():
            m = result.measurement
            if result.status != "ok" or m is None or not _usable(m.ci95[0], m.median, m.ci95[1]):
                continue
            cells[(machine, case)].setdefault(commit, []).append((run.name, m.median, *m.ci95))
    series: dict[str, list[Series]] = defaultdict(list)
    for (machine, case), by_commit in sorted(cells.items(), key=lambda kv: (kv[0][1].suite, kv[0][1].id)):
        points = tuple(Point(commit, *(tuple(col) for col in zip(*rows, strict=True)))
                       for commit, rows in by_commit.items())
        changes = detect_changes([p.log_value for p in points], [p.own_variance for p in points], threshold)
        series[machine].append(Series(machine, case, points, tuple(changes)))
    return [History(m, tuple(commits[m]), tuple(series[m])) for m in sorted(series)]
