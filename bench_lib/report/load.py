"""Stored runs as pandas frames: one row per case result, one row per run environment.

The frames are what every table and plot reads; nothing downstream touches RunData.
Metrics become columns; structured ones (a loss curve) stay Python objects in their cells.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd

from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.environment import comparability_key
from bench_lib.results.store import ResultFormatError, RunData, load_run

__all__ = ["Run", "load_spec", "RUN_SPEC_HELP", "group_runs", "results_frame", "environment_frame", "CASE_COLUMNS"]

CASE_COLUMNS = ["run", "suite", "workload", "variant", "device"]


class Run:
    """Every suite file of one run directory: the unit that compare resamples."""

    def __init__(self, run_dir: Path, files: list[RunData]) -> None:
        self.run_dir = run_dir
        self.files = files

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def results(self) -> dict[CaseSpec, CaseResult]:
        return {r.case: r for f in self.files for r in f.results}

    @property
    def environment(self) -> dict:
        return self.files[0].environment if self.files else {}

    @property
    def commit(self) -> dict:
        return self.files[0].commit if self.files else {}


def group_runs(files: list[RunData]) -> list[Run]:
    """Files grouped by their run directory; a file named twice counts once."""
    by_dir: dict[Path, dict[Path, RunData]] = defaultdict(dict)
    for f in files:
        by_dir[f.run_dir].setdefault(f.path.resolve(), f)
    return [Run(d, list(fs.values())) for d, fs in by_dir.items()]


def _expand(path: Path) -> list[Path]:
    """A run directory or file as is; a directory of run directories as its runs."""
    if path.is_dir() and not any(path.glob("*.json")):
        subs = sorted(p for p in path.iterdir() if p.is_dir() and any(p.glob("*.json")))
        if subs:
            return subs
    return [path]


def load_spec(*specs: str) -> list[Run]:
    """The runs that run specs name: the one way every command reads results.

    A spec is a run directory, a result file, a directory of run directories, or a
    comma-separated list of these; several specs (a command's positional arguments) add up.
    Raises ResultFormatError (from the store) for anything missing, foreign or malformed,
    and when the specs name no run at all.
    """
    paths = [Path(p) for spec in specs for p in str(spec).split(",") if p]
    if not paths:
        raise ResultFormatError(f"no run named by {', '.join(map(repr, specs)) or 'an empty list'}")
    return group_runs([f for p in paths for sub in _expand(p) for f in load_run(sub)])


RUN_SPEC_HELP = ("a run directory, a result file, a directory of run directories, or a comma-separated list "
                 "of these")


def results_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per case result: identity, params, status, timing statistics and metrics."""
    rows = []
    for run in runs:
        for case, r in run.results.items():
            row: dict = {"run": run.name, "suite": case.suite, "workload": case.workload, "variant": case.variant,
                         "device": case.device, "case_id": case.id, "status": r.status, "reason": r.reason,
                         **{f"param.{k}": v for k, v in case.params}}
            m = r.measurement
            if m is not None:
                lo, hi = m.ci95
                row.update(median_s=m.median, ci_low_s=lo, ci_high_s=hi, iqr_s=m.iqr, p90_s=m.p90, p99_s=m.p99,
                           n=m.n, spread=m.relative_spread, warnings="; ".join(m.warnings), samples=m.samples)
            row.update(r.metrics)
            rows.append(row)
    return pd.DataFrame(rows)


def environment_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run: what it ran on and which code."""
    rows = []
    for run in runs:
        env, commit = run.environment, run.commit
        key = comparability_key(env)
        rows.append({
            "run": run.name,
            "cpu": f"{key['cpu_model']} ({key['cpu_count']} cores)",
            "gpu": f"{key['gpu_count']} x {key['gpu']}" if key["gpu"] else "none",
            "python": env.get("python") or "-",
            "torch": env.get("torch") or "-",
            "cuda": env.get("cuda") or "-",
            "nccl": env.get("nccl") or "-",
            "torchao": env.get("torchao") or "-",
            "threads": env.get("num_threads") or "-",
            "cpu_capability": env.get("cpu_capability") or "-",
            "commit": (str(commit.get("id") or "?")[:10] + ("+dirty" if commit.get("dirty") else "")),
            "captured": env.get("captured_at", ""),
        })
    return pd.DataFrame(rows)
