"""A result as JSON: the `benchmarks[]` entry of a measured case and the outcome of every case,
as the store writes them into files and workers send them to the process that runs them.

This is the writing side only, apart from the reading side (store.py loads through schema.py's
pydantic models), so that a worker or rank process starts without importing pydantic.
"""

from __future__ import annotations

from bench_lib.results.case import CaseResult

__all__ = ["SCHEMA_VERSION", "result_to_entry", "outcome_of", "record_of"]

# The version of the layout this effbench writes, and the only one it reads (schema.py).
SCHEMA_VERSION = 1


def result_to_entry(result: CaseResult) -> dict:
    """A measured result as a pytest-benchmark `benchmarks[]` entry.

    The sampling units go under the keys files have always had (`process_of_sample`,
    `process_kind`), whatever their kind, so that every stored file keeps one layout.
    """
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


def outcome_of(result: CaseResult) -> dict:
    """Any result's outcome (the file's `effbench.outcomes[]`): status, reason, metrics."""
    return {"name": result.case.name, "group": result.case.group, "params": result.case.as_params(),
            "status": result.status, "reason": result.reason, "metrics": result.metrics,
            "wall_s": result.wall_s}


def record_of(result: CaseResult) -> dict:
    """A result as the JSON record the worker protocol carries (the store's own shapes); the
    receiving side reads it back with `store.result_of`."""
    if result.status == "ok":
        return {"status": "ok", "entry": result_to_entry(result)}
    return {"status": result.status, "outcome": outcome_of(result)}
