"""The result store: one directory per run, one pytest-benchmark-compatible JSON file per suite.

Files are rewritten atomically after every finished case (temporary file, fsync, then
os.replace), so an interrupted or crashed run keeps every result it finished and never
leaves a half-written file. Measured cases go to `benchmarks[]` in pytest-benchmark's
layout, so its own `compare` and the CI tools that read that format work on them; skipped
and failed cases live under the `effbench` key beside them, since those tools expect every
benchmark entry to carry timing stats. Every reading goes through the schema
(`results/schema.py`): a file or record that does not follow it is refused with the path of the
bad field. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench_lib.atomic import atomic_write_text
from bench_lib.measure.stats import Measurement
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.record import SCHEMA_VERSION, outcome_of, result_to_entry
from bench_lib.results.roofline import roofline_block
from bench_lib.results.schema import Benchmark, Outcome, Params, ResultFile, ResultFormatError, parse

__all__ = [
    "SCHEMA_VERSION",
    "ResultFormatError",
    "RunData",
    "RunWriter",
    "new_run_dir",
    "load_run",
    "result_of",
    "safe_label",
]

TOOL_VERSION = "0.1.0"


def new_run_dir(root: Path, label: str = "") -> Path:
    """A fresh directory under root, named by UTC time (and label); never an existing one."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{label}" if label else stamp
    for i in range(1000):
        candidate = root / (base if i == 0 else f"{base}-{i}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            continue
    raise OSError(f"cannot create a new run directory under {root}")


def _pytest_benchmark_version() -> str:
    try:
        from pytest_benchmark import __version__
    except ImportError:
        return "5.2.3"
    return __version__


def _json_safe(value: Any) -> Any:
    """NaN and infinities are not JSON: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class RunWriter:
    """Accumulates a suite's results and rewrites its file atomically after each one."""

    run_dir: Path
    suite: str
    run_meta: dict
    machine: dict
    commit: dict
    environment: dict
    results: list[CaseResult] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.run_dir / f"{self.suite}.json"

    def add(self, result: CaseResult) -> None:
        self.put([result])

    def put(self, results: list[CaseResult]) -> None:
        """Add results, each replacing an earlier one of the same case (an interleaved run
        stores its figures again after every block), and rewrite the file once."""
        index = {r.case: i for i, r in enumerate(self.results)}
        for result in map(self._with_roofline, results):
            if result.case in index:
                self.results[index[result.case]] = result
            else:
                index[result.case] = len(self.results)
                self.results.append(result)
        self.flush()

    def _with_roofline(self, result: CaseResult) -> CaseResult:
        """A measured result whose worker counted its work gets its roofline against the run's peaks."""
        work = result.metrics.get("work")
        if result.status != "ok" or not isinstance(work, dict) or result.measurement is None:
            return result
        block = roofline_block(work, result.measurement.median, result.case.device,
                               self.environment.get("peaks") or {})
        return replace(result, metrics={**result.metrics, "roofline": block})

    def document(self) -> dict:
        return {
            "machine_info": self.machine,
            "commit_info": self.commit,
            "benchmarks": [result_to_entry(r) for r in self.results if r.status == "ok"],
            "datetime": datetime.now(timezone.utc).isoformat(),
            "version": _pytest_benchmark_version(),
            "effbench": {
                "schema_version": SCHEMA_VERSION,
                "tool_version": TOOL_VERSION,
                "suite": self.suite,
                "run": self.run_meta,
                "environment": self.environment,
                "outcomes": [outcome_of(r) for r in self.results],
            },
        }

    def flush(self) -> None:
        atomic_write_text(self.path, json.dumps(_json_safe(self.document()), indent=1))


@dataclass
class RunData:
    """One suite file of one run, validated."""

    path: Path
    suite: str
    run_meta: dict
    environment: dict
    commit: dict
    results: list[CaseResult]

    @property
    def run_dir(self) -> Path:
        return self.path.parent


def _case(params: Params, origin: object, name: str) -> CaseSpec:
    try:
        return CaseSpec.from_params(params.model_dump())
    except (TypeError, ValueError) as e:
        raise ResultFormatError(f"{origin}: case {name!r}: {e}") from None


def _measured(entry: Benchmark, origin: object) -> CaseResult:
    extra, stats = entry.extra_info, entry.stats
    labels = None if extra.process_of_sample is None else tuple(extra.process_of_sample)
    m = Measurement(tuple(stats.data), stats.iterations, extra.unit, labels, extra.machine_state_sd or 0.0,
                    extra.process_kind or "process")
    options = dict(entry.options)
    timer = str(options.pop("timer", ""))
    metrics = extra.metrics.model_dump(exclude_unset=True)
    return CaseResult(_case(entry.params, origin, entry.name), "ok", m, metrics, "", timer, options, extra.wall_s)


def _unmeasured(item: Outcome, origin: object) -> CaseResult:
    return CaseResult(_case(item.params, origin, item.name), item.status, None, item.metrics,
                      item.reason or "unknown", wall_s=item.wall_s)


def _entry_to_result(entry: object, origin: object) -> CaseResult:
    return _measured(parse(Benchmark, entry, origin, "entry"), origin)


def load_run_file(path: Path) -> RunData:
    """One result file, validated against the schema (`results/schema.py`). Raises ResultFormatError."""
    try:
        text = path.read_bytes()
    except OSError as e:
        raise ResultFormatError(f"{path}: cannot read ({e.strerror})") from None
    file = parse(ResultFile, text, path)
    meta = file.effbench
    results = [_measured(b, path) for b in file.benchmarks]
    results += [_unmeasured(o, path) for o in meta.outcomes if o.status != "ok"]
    return RunData(path, meta.suite, meta.run, meta.environment.model_dump(exclude_unset=True),
                   file.commit_info.model_dump(exclude_unset=True), results)


def load_run(path: Path) -> list[RunData]:
    """Every suite file of a run directory (or one file). Raises ResultFormatError."""
    path = Path(path)
    if path.is_file():
        return [load_run_file(path)]
    if not path.is_dir():
        raise ResultFormatError(f"{path}: no such results file or directory")
    files = sorted(p for p in path.glob("*.json") if not p.name.startswith("."))
    if not files:
        raise ResultFormatError(f"{path}: no result files (*.json) in this directory")
    return [load_run_file(p) for p in files]


def result_of(record: object, origin: object) -> CaseResult:
    """A worker's or server's record (`record.record_of`), validated as the store's own shapes."""
    if not isinstance(record, dict) or record.get("status") not in ("ok", "skipped", "failed"):
        raise ResultFormatError(f"{origin}: a result record is not an object with a status")
    if record["status"] == "ok":
        return _entry_to_result(record.get("entry"), origin)
    item = parse(Outcome, record.get("outcome"), origin, "outcome")
    if item.status == "ok":
        raise ResultFormatError(f"{origin}: outcome.status: a {record['status']} record holds an ok outcome")
    return _unmeasured(item, origin)


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_label(text: str) -> str:
    """A string fit for a directory name."""
    return _SAFE.sub("-", text).strip("-")[:40]
