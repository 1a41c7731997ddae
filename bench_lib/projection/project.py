"""From stored collectives and training results to a scaling table, validated on what was measured."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench_lib.projection.alphabeta import RING, Fit, fit_alpha_beta
from bench_lib.projection.scaling import Links, MeasuredStrategy, allreduce_time, exposure_ratio, project_step
from bench_lib.results.case import CaseResult
from bench_lib.results.store import RunData
from bench_lib.suites.distributed.training import REFERENCE, is_convergence

__all__ = ["Assumptions", "Projection", "CollectiveProjection", "fits_from_runs", "project_runs",
           "project_collectives", "TRANSPORT"]

# training (backend, device) -> the collectives workload that measured its links
TRANSPORT = {("gloo", "cpu"): "gloo_cpu", ("gloo", "cuda"): "gloo_cuda", ("nccl", "cuda"): "nccl"}


@dataclass(frozen=True)
class Assumptions:
    """Overridable; None means: take it from the fitted measurement."""

    gpus: tuple[int, ...] = (8, 64, 512)
    gpus_per_node: int = 8
    intra_bw_GBps: float | None = None
    inter_bw_GBps: float = 50.0  # one 400 Gb/s NIC per GPU (InfiniBand NDR class)
    inter_latency_us: float = 5.0


@dataclass
class Projection:
    workload: str
    backend: str
    device: str
    measured_n: int
    fit: Fit
    links: Links
    sync_exposure: float
    rows: list[dict] = field(default_factory=list)


def _sweeps(runs: list[RunData], dtype: str) -> dict[tuple[str, str, int], list[tuple[float, float]]]:
    """(transport, op, ranks) -> sorted (size bytes, median seconds) of its measured sweep."""
    sweeps: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
    for run in runs:
        for r in run.results:
            c = r.case
            if c.suite == "collectives" and r.status == "ok" and c.param("dtype") == dtype:
                key = (c.workload, c.variant, int(c.param("world_size", 2)))
                sweeps.setdefault(key, []).append((float(c.param("size_bytes")), r.measurement.median))
    return {key: sorted(points) for key, points in sorted(sweeps.items()) if len(points) >= 2 and key[1] in RING}


def fits_from_runs(runs: list[RunData], dtype: str = "float32") -> dict[tuple[str, str], Fit]:
    """(transport, op) -> alpha-beta fit of its measured size sweep (median latencies)."""
    fits = {}
    for (transport, op, n), points in _sweeps(runs, dtype).items():
        sizes, times = zip(*points, strict=True)
        fits[(transport, op)] = fit_alpha_beta(op, list(sizes), list(times), n)
    return fits


@dataclass
class CollectiveProjection:
    """A collective's sweep measured on `measured_n` ranks and its ring model's bus bandwidth at other
    rank counts inside one node: a prediction that a larger machine's run can check size by size."""

    transport: str
    op: str
    measured_n: int
    fit: Fit
    gpus: tuple[int, ...]
    rows: list[dict] = field(default_factory=list)


def project_collectives(runs: list[RunData], a: Assumptions, dtype: str = "float32") -> list[CollectiveProjection]:
    """Bus bandwidth (nccl-tests' definition: algbw x the op's factor) measured, modelled at the measured
    size, and projected to each of `a.gpus` within one node (across nodes the links are assumptions only)."""
    out = []
    for (transport, op, n), points in _sweeps(runs, dtype).items():
        sizes, times = zip(*points, strict=True)
        fit = fit_alpha_beta(op, list(sizes), list(times), n)
        gpus = tuple(g for g in a.gpus if 2 <= g <= a.gpus_per_node)
        factor = RING[op][1]
        proj = CollectiveProjection(transport, op, n, fit, gpus)
        for size, measured in points:
            row = {"size_bytes": size, "measured_s": measured, "busbw_Bps": factor(n) * size / measured,
                   "model_busbw_Bps": factor(n) * size / fit.predict(size, n)}
            for g in gpus:
                row[f"time_s@{g}"] = t = fit.predict(size, g)
                row[f"busbw_Bps@{g}"] = factor(g) * size / t
            proj.rows.append(row)
        out.append(proj)
    return out


def _comm_bytes(result: CaseResult) -> float | None:
    m = result.metrics
    for key in ("comm_bytes_per_sync", "grad_bytes", "param_bytes"):
        if m.get(key):
            return float(m[key])
    return float(m["param_count"]) * 4 if m.get("param_count") else None


def _step_s(result: CaseResult) -> float:
    """The wall-clock pace (periodic averaging included), or the median step of results stored before it."""
    return float(result.metrics.get("step_time_wall_s") or result.measurement.median)


def project_runs(runs: list[RunData], a: Assumptions) -> list[Projection]:
    """One projection per (training workload, backend, device) that has nocomm, sync and a link fit."""
    fits = fits_from_runs(runs)
    groups: dict[tuple[str, str, str, int], dict[str, CaseResult]] = {}
    for run in runs:
        for r in run.results:
            c = r.case
            # The bare loop has no strategy; a convergence case's pace includes its evaluations' pauses' effects.
            if c.suite == "training" and r.status == "ok" and c.variant != REFERENCE and not is_convergence(c):
                key = (c.workload, str(c.param("backend")), c.device.split(":")[0], int(c.param("world_size", 2)))
                groups.setdefault(key, {})[c.variant] = r
    out = []
    for (workload, backend, device, n), by_strategy in sorted(groups.items()):
        fit = fits.get((TRANSPORT.get((backend, device), ""), "all_reduce"))
        if fit is None or "nocomm" not in by_strategy or "sync" not in by_strategy:
            continue
        intra_bw = a.intra_bw_GBps * 1e9 if a.intra_bw_GBps else fit.bandwidth_Bps
        links = Links(fit.alpha_s, intra_bw, a.inter_latency_us * 1e-6, a.inter_bw_GBps * 1e9, a.gpus_per_node)
        compute = _step_s(by_strategy["nocomm"])
        runs_ = {s: MeasuredStrategy(s, _step_s(r), compute, _comm_bytes(r) or 0.0,
                                int(r.case.param("sync_every", 1) or 1)) for s, r in by_strategy.items()}
        exposure = exposure_ratio(runs_["sync"], n, links)
        proj = Projection(workload, backend, device, n, fit, links, exposure)
        for strategy, sr in runs_.items():
            # Each DDP variant (sync, and sync with a compression hook) keeps its own measured exposure.
            own = exposure_ratio(sr, n, links) if strategy.startswith("sync") else exposure
            predicted_n = project_step(sr, n, links, own)
            row = {"strategy": strategy, "comm_bytes": sr.comm_bytes, "sync_every": sr.sync_every,
                   "measured_step_s": sr.step_s, "predicted_measured_step_s": predicted_n,
                   "validation_error": predicted_n / sr.step_s - 1,
                   "calibrated": strategy == "nocomm" or strategy.startswith("sync")}
            for g in a.gpus:
                step = project_step(sr, g, links, own)
                row[f"step_s@{g}"] = step
                row[f"exposed_comm_s@{g}"] = step - compute
                row[f"efficiency@{g}"] = compute / step
                row[f"allreduce_s@{g}"] = allreduce_time(sr.comm_bytes, g, links)
            proj.rows.append(row)
        out.append(proj)
    return out
