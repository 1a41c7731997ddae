"""The training suite's launches merged in the parent: each case's stretches pooled over the launches (the
units of its interval), paired speedups and wall-clock figures over every launch, and the convergence
cases' seeds from every launch summarized together."""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from dataclasses import replace

from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.suites.distributed.pace import Pace
from bench_lib.suites.distributed.stretches import SPEEDUP_KEYS, Stretches, paired_stretch_speedup, stretch_state_sd
from bench_lib.suites.distributed.training.plan import REFERENCE, is_convergence

__all__ = ["SPEEDUP_KEYS", "merge_stretches", "convergence_results", "merge_convergence"]



def merge_stretches(merged: dict[CaseSpec, CaseResult], launches: list[dict[CaseSpec, CaseResult]],
                    launch_key: Callable[[CaseSpec], Hashable]) -> dict[CaseSpec, CaseResult]:
    """The throughput cases of `merged` (the launches' samples pooled) rebuilt from their stretches: the run's
    machine state over every case's stretches, speedups from the stretches paired in every launch, and the
    wall-clock figures over every launch's timed steps; losses, memory and energy from the first launch."""
    pooled = {}
    for case in merged:
        parts = [_stretches_of_result(launch[case]) for launch in launches]
        if all(p is not None for p in parts):
            pooled[case] = functools.reduce(Stretches.then, parts)
    state = stretch_state_sd(list(pooled.values()))
    paces = {c: _wall_pace([launch[c] for launch in launches]) for c in pooled}

    def same_group(case: CaseSpec, variant: str) -> CaseSpec | None:
        return next((c for c in pooled if c.variant == variant and c.workload == case.workload
                     and launch_key(c) == launch_key(case)), None)

    for case, stretches in pooled.items():
        results = [launch[case] for launch in launches]
        m = stretches.measurement(state)
        pace = paces[case]
        metrics = {**results[0].metrics, **stretches.metrics(),
                   "step_time_median_s": m.median, "step_time_p90_s": m.p90, "step_time_wall_s": pace.per_step_s,
                   "timed_steps": pace.steps, "timed_wall_s": pace.wall_s,
                   "launches": {"count": len(results), "median_s": [r.measurement.median for r in results],
                                "step_time_wall_s": [r.metrics.get("step_time_wall_s") for r in results],
                                "wall_s": [r.wall_s for r in results]}}
        if metrics.get("global_batch"):
            tokens_per_sample = (metrics["tokens_per_s"] or 0) / metrics["samples_per_s"]
            metrics["samples_per_s"] = pace.rate(metrics["global_batch"])
            metrics["tokens_per_s"] = metrics["samples_per_s"] * tokens_per_sample or None
        sync, nocomm, ref = (same_group(case, v) for v in ("sync", "nocomm", REFERENCE))
        for key in SPEEDUP_KEYS:  # the first launch's, from its stretches alone
            metrics.pop(key, None)
        if sync is not None and sync != case:
            metrics.update(paired_stretch_speedup(stretches, pooled[sync]), speedup_baseline=sync.id)
            if case.variant != REFERENCE:
                metrics["speedup_over_sync"] = paces[sync].per_step_s / pace.per_step_s
                metrics["speedup_over_sync_by_stretch"] = [
                    s / own for s, own in zip(pooled[sync].paces, stretches.paces, strict=True)]
        if nocomm is not None and case.variant != REFERENCE:
            metrics["exposed_comm_s"] = pace.per_step_s - paces[nocomm].per_step_s
        if case.variant == "nocomm" and ref is not None:
            metrics["harness_overhead"] = pace.per_step_s / paces[ref].per_step_s - 1
        merged[case] = replace(results[0], measurement=m, metrics=metrics,
                               measure_config={**results[0].measure_config, "launches": len(results)},
                               wall_s=sum(r.wall_s for r in results))
    return merged


def _wall_pace(results: list[CaseResult]) -> Pace:
    """The timed steps of every launch over their wall time."""
    return Pace(sum(int(r.metrics["timed_steps"]) for r in results), sum(r.metrics["timed_wall_s"] for r in results))


def _stretches_of_result(result: CaseResult) -> Stretches | None:
    """A stored result's stretches (None: stored before its stretches were, or not measured)."""
    m, metrics = result.measurement, result.metrics
    if result.status != "ok" or m is None or m.unit_of_sample is None or "stretch_started_s" not in metrics:
        return None
    return Stretches(m.samples, m.unit_of_sample, tuple(metrics["stretch_step_s"]), tuple(metrics["stretch_started_s"]),
                     tuple(metrics.get("stretch_launch") or [0] * len(metrics["stretch_step_s"])))


def convergence_results(records: dict[CaseSpec, list[dict]], extra: dict, timer: str) -> dict[CaseSpec, CaseResult]:
    """The convergence cases of one workload from their seeds' records (`convergence_runs.converge`, each
    with its launch): the figures over seeds (convergence.py), the records kept beside them. The samples
    are the seconds per step between consecutive checkpoints, each seed a unit of the interval."""
    from bench_lib.measure.stats import Measurement
    from bench_lib.suites.distributed.convergence import summarize
    from bench_lib.techniques.strategies import STRATEGIES

    records = {case: sorted(runs, key=lambda r: r["seed"]) for case, runs in records.items()}
    ran = {case: runs for case, runs in records.items() if runs}
    summary = summarize({case.variant: [r["curve"] for r in runs] for case, runs in ran.items()})
    out = {}
    for case, runs in records.items():
        if not runs:
            out[case] = CaseResult.skipped(case, "no seed of this case ran in this launch (fewer seeds than launches)")
            continue
        samples = [(p, i) for i, r in enumerate(runs) for p in r["interval_paces"]]
        m = Measurement(tuple(p for p, _ in samples), unit_of_sample=tuple(i for _, i in samples), unit_kind="seed")
        metrics = {**extra, **summary[case.variant],
                   "convergence_runs": runs,
                   "steps_by_seed": [r["steps"] for r in runs],
                   "sync_every": case.param("sync_every"),
                   "strategy_note": STRATEGIES[case.variant].note}
        out[case] = CaseResult(case, "ok", m, metrics, timer=timer,
                               measure_config={"seeds": [r["seed"] for r in runs],
                                               "launches": len({r["launch"] for r in runs})},
                               wall_s=sum(r["wall_s"] for r in runs))
    return out


def merge_convergence(launches: list[dict[CaseSpec, CaseResult]]) -> dict[CaseSpec, CaseResult]:
    """Every convergence case's seeds from every launch, their figures computed over all of them (per workload
    and launch group: the target comes from sync's seeds). A launch that failed decides its case's outcome."""
    groups: dict[tuple, dict[CaseSpec, list[CaseResult]]] = {}
    for case in launches[0]:
        if is_convergence(case) and any("convergence_runs" in launch[case].metrics for launch in launches
                                        if case in launch):
            key = (case.workload, case.device, case.param("backend"), case.param("world_size"))
            groups.setdefault(key, {})[case] = [launch[case] for launch in launches if case in launch]
    out = {}
    for by_case in groups.values():
        failed = {c: next(r for r in rs if r.status == "failed") for c, rs in by_case.items()
                  if any(r.status == "failed" for r in rs)}
        ok = {c: rs for c, rs in by_case.items() if c not in failed}
        records = {c: [run for r in rs if r.status == "ok" for run in r.metrics.get("convergence_runs", [])]
                   for c, rs in ok.items()}
        first = {c: next((r for r in rs if r.status == "ok"), rs[0]) for c, rs in ok.items()}
        merged = convergence_results(records, {}, "") if records else {}
        for c, r in merged.items():
            if r.status == "ok":
                base = first[c]
                keep = {k: v for k, v in base.metrics.items() if k not in r.metrics}
                merged[c] = replace(r, metrics={**keep, **r.metrics}, timer=base.timer)
            elif first[c].status != "ok":
                merged[c] = first[c]
        out.update(merged)
        out.update(failed)
    return out
