"""Project data-parallel step time from a measured 2-rank run to many GPUs.

Assumptions, each named and overridable (the command prints them with every table):
- weak scaling: the per-GPU batch and so the compute time per step stay as measured;
- within a node the links behave as the fitted ones (or `intra_bw`); across nodes each GPU has
  its own NIC of `inter_bw` and each hop costs `inter_alpha`;
- all_reduce is hierarchical beyond one node, as NCCL does it: reduce-scatter inside the node,
  a ring all_reduce of the node's shard across nodes, then all-gather inside the node;
- a strategy's communication hides behind compute as it did in the measured run:
  `sync` exposes the same multiple of the modelled all_reduce as it did when measured (below 1:
  overlap with backward; above 1: costs beyond the link model, such as core contention),
  `async_stale` hides up to one full step of compute,
  `local_sgd` and `diloco` average (blocking) once every H steps, `nocomm` never talks.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench_lib.projection.alphabeta import RING

__all__ = ["Links", "MeasuredStrategy", "allreduce_time", "project_step", "exposure_ratio"]


@dataclass(frozen=True)
class Links:
    intra_alpha_s: float
    intra_bw_Bps: float
    inter_alpha_s: float
    inter_bw_Bps: float
    gpus_per_node: int = 8

    def __post_init__(self) -> None:
        if min(self.intra_bw_Bps, self.inter_bw_Bps) <= 0 or self.gpus_per_node < 1:
            raise ValueError("bandwidths must be positive and gpus_per_node >= 1")


def allreduce_time(size_bytes: float, n: int, links: Links) -> float:
    """Ring inside one node; hierarchical (RS intra, AR inter on a shard, AG intra) beyond it."""
    if n <= 1:
        return 0.0
    steps, factor = RING["all_reduce"]
    g = min(n, links.gpus_per_node)
    intra = steps(g) * links.intra_alpha_s + factor(g) * size_bytes / links.intra_bw_Bps
    if n <= links.gpus_per_node:
        return intra
    nodes = -(-n // g)
    shard = size_bytes / g
    inter = steps(nodes) * links.inter_alpha_s + factor(nodes) * shard / links.inter_bw_Bps
    return intra + inter


@dataclass(frozen=True)
class MeasuredStrategy:
    """What was measured for one strategy: its step time, and what it communicates."""

    strategy: str
    step_s: float
    compute_s: float  # nocomm's step time in the same run
    comm_bytes: float  # bytes all-reduced per synchronization (gradients or parameters)
    sync_every: int = 1


def exposure_ratio(run: MeasuredStrategy, measured_n: int, links: Links) -> float:
    """The measured `sync` step's exposed communication over the modelled all_reduce time."""
    predicted = allreduce_time(run.comm_bytes, measured_n, links)
    return max(run.step_s - run.compute_s, 0.0) / predicted if predicted > 0 else 1.0


def project_step(run: MeasuredStrategy, n: int, links: Links, sync_exposure: float) -> float:
    """Step time of `run.strategy` at n GPUs."""
    comm = allreduce_time(run.comm_bytes, n, links)
    if run.strategy == "nocomm":
        return run.compute_s
    if run.strategy == "async_stale":
        return run.compute_s + max(comm - run.compute_s, 0.0)
    if run.strategy in ("local_sgd", "diloco"):
        return run.compute_s + comm / max(run.sync_every, 1)
    # sync and its compression variants (sync_bf16, sync_powersgd): every step, exposed as measured.
    return run.compute_s + comm * sync_exposure
