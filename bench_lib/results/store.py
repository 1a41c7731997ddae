"""The result store: one directory per run, one pytest-benchmark-compatible JSON file per suite.

Files are rewritten atomically after every finished case (temporary file, fsync, then
os.replace), so an interrupted or crashed run keeps every result it finished and never
leaves a half-written file. Measured cases go to `benchmarks[]` in pytest-benchmark's
layout, so its own `compare` and the CI tools that read that format work on them; skipped
and failed cases live under the `effbench` key beside them, since those tools expect every
benchmark entry to carry timing stats. Loading validates and never unpickles.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench_lib.atomic import atomic_write_text
from bench_lib.measure.stats import Measurement
from bench_lib.results.case import CaseResult, CaseSpec

__all__ = [
    "SCHEMA_VERSION",
    "ResultFormatError",
    "RunData",
    "RunWriter",
    "new_run_dir",
    "load_run",
    "record_of",
    "result_of",
    "safe_label",
]

SCHEMA_VERSION = 1
TOOL_VERSION = "0.1.0"


class ResultFormatError(Exception):
    """A results path that is missing, foreign or malformed; the message names it."""


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


def result_to_entry(result: CaseResult) -> dict:
    """A measured result as a pytest-benchmark `benchmarks[]` entry."""
    case, m = result.case, result.measurement
    assert m is not None
    return {
        "group": case.group,
        "name": case.name,
        "fullname": case.fullname,
        "params": case.as_params(),
        "param": case.id,
        "extra_info": {
            "effbench_schema": SCHEMA_VERSION,
            "unit": m.unit,
            "summary": m.summary(),
            "metrics": result.metrics,
            "wall_s": result.wall_s,
            **({} if m.unit_of_sample is None else {"process_of_sample": list(m.unit_of_sample),
                                                    "machine_state_sd": m.state_sd, "process_kind": m.unit_kind}),
        },
        "options": {"timer": result.timer, **result.measure_config},
        "stats": m.as_pytest_benchmark_stats(),
    }


def _outcome(result: CaseResult) -> dict:
    return {"name": result.case.name, "group": result.case.group, "params": result.case.as_params(),
            "status": result.status, "reason": result.reason, "metrics": result.metrics,
            "wall_s": result.wall_s}


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
        for result in results:
            if result.case in index:
                self.results[index[result.case]] = result
            else:
                index[result.case] = len(self.results)
                self.results.append(result)
        self.flush()

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
                "outcomes": [_outcome(r) for r in self.results],
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


def _require(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise ResultFormatError(f"{path}: {what}")


def _upgrade(doc: dict, path: Path) -> dict:
    """Bring an older effbench schema up to the current one (none exist yet)."""
    version = doc["effbench"].get("schema_version")
    _require(isinstance(version, int), path, "effbench.schema_version is not an integer")
    _require(version <= SCHEMA_VERSION, path,
             f"schema version {version} is newer than this effbench understands ({SCHEMA_VERSION})")
    return doc


def _entry_to_result(entry: dict, path: Path) -> CaseResult:
    _require(isinstance(entry, dict), path, "a benchmarks[] entry is not an object")
    stats = entry.get("stats")
    _require(isinstance(stats, dict) and isinstance(stats.get("data"), list) and stats["data"], path,
             f"benchmark {entry.get('name')!r} has no raw samples in stats.data")
    extra = entry.get("extra_info") or {}
    units = extra.get("process_of_sample")  # the key files have always had, whatever the units' kind
    try:
        case = CaseSpec.from_params(entry.get("params") or {})
        m = Measurement(tuple(float(x) for x in stats["data"]), int(stats.get("iterations", 1)),
                        extra.get("unit", "s"), None if units is None else tuple(int(p) for p in units),
                        float(extra.get("machine_state_sd") or 0.0), str(extra.get("process_kind") or "process"))
    except (TypeError, ValueError) as e:
        raise ResultFormatError(f"{path}: benchmark {entry.get('name')!r}: {e}") from None
    options = dict(entry.get("options") or {})
    timer = str(options.pop("timer", ""))
    return CaseResult(case, "ok", m, dict(extra.get("metrics") or {}), "", timer, options,
                      float(extra.get("wall_s") or 0.0))


def _outcome_to_result(item: dict, path: Path) -> CaseResult:
    _require(isinstance(item, dict) and item.get("status") in ("skipped", "failed"), path,
             "an effbench.outcomes item has no valid status")
    try:
        case = CaseSpec.from_params(item.get("params") or {})
    except (TypeError, ValueError) as e:
        raise ResultFormatError(f"{path}: outcome {item.get('name')!r}: {e}") from None
    return CaseResult(case, item["status"], None, dict(item.get("metrics") or {}),
                      str(item.get("reason") or "unknown"), wall_s=float(item.get("wall_s") or 0.0))


def load_run_file(path: Path) -> RunData:
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise ResultFormatError(f"{path}: cannot read ({e.strerror})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ResultFormatError(f"{path}: not valid JSON ({e})") from None
    _require(isinstance(doc, dict), path, "not a JSON object")
    _require(isinstance(doc.get("effbench"), dict), path,
             "not an effbench result file (no 'effbench' section; a plain pytest-benchmark file?)")
    doc = _upgrade(doc, path)
    meta = doc["effbench"]
    _require(isinstance(doc.get("benchmarks"), list), path, "'benchmarks' is not a list")
    _require(isinstance(meta.get("outcomes", []), list), path, "'effbench.outcomes' is not a list")
    results = [_entry_to_result(e, path) for e in doc["benchmarks"]]
    results += [_outcome_to_result(o, path) for o in meta.get("outcomes", []) if o.get("status") != "ok"]
    return RunData(path, str(meta.get("suite", "")), dict(meta.get("run") or {}),
                   dict(meta.get("environment") or {}), dict(doc.get("commit_info") or {}), results)


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


def record_of(result: CaseResult) -> dict:
    """A result as the JSON record the worker protocol carries (the store's own shapes)."""
    if result.status == "ok":
        return {"status": "ok", "entry": result_to_entry(result)}
    return {"status": result.status, "outcome": _outcome(result)}


def result_of(record: dict, origin: Path) -> CaseResult:
    _require(isinstance(record, dict), origin, "a result record is not an object")
    if record.get("status") == "ok":
        return _entry_to_result(record.get("entry"), origin)
    return _outcome_to_result(record.get("outcome"), origin)


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_label(text: str) -> str:
    """A string fit for a directory name."""
    return _SAFE.sub("-", text).strip("-")[:40]
