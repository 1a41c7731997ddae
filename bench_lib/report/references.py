"""Reference collective figures (nccl-tests, or a plain torch.distributed loop, one run on each
machine below), shown beside a run only when the run's machine matches the one they were
measured on: a figure from another machine is no reference."""

from __future__ import annotations

from dataclasses import dataclass

from bench_lib.results.environment import comparability_key

__all__ = ["Reference", "REFERENCES", "machine_tag", "references_for"]

_KIB, _MIB, _GIB = 2**10, 2**20, 2**30


@dataclass(frozen=True)
class Reference:
    machine: str
    backend: str
    op: str
    size_bytes: int
    source: str
    latency_s: float | None = None
    busbw_GBps: float | None = None
    world_size: int = 2


_NCCLTESTS = "nccl-tests 2.19.6 all_reduce_perf"
_LOOP = "plain torch.distributed loop"

REFERENCES: tuple[Reference, ...] = (
    Reference("2x H200", "nccl", "all_reduce", _KIB, _NCCLTESTS, latency_s=13.6e-6),
    Reference("2x H200", "nccl", "all_reduce", 64 * _MIB, _NCCLTESTS, busbw_GBps=270.5),
    Reference("2x H200", "nccl", "all_reduce", 256 * _MIB, _NCCLTESTS, busbw_GBps=300.8),
    Reference("2x H200", "nccl", "all_reduce", _GIB, _NCCLTESTS, busbw_GBps=330.3),
    Reference("2x H200", "gloo_cpu", "all_reduce", _KIB, _LOOP, latency_s=170e-6),
    Reference("2x H200", "gloo_cpu", "all_reduce", 64 * _MIB, _LOOP, busbw_GBps=2.58),
    Reference("2x H200", "gloo_cpu", "all_reduce", 256 * _MIB, _LOOP, busbw_GBps=2.49),
    Reference("2x H200", "gloo_cuda", "all_reduce", _KIB, _LOOP, latency_s=312e-6),
    Reference("2x H200", "gloo_cuda", "all_reduce", 64 * _MIB, _LOOP, busbw_GBps=2.07),
    Reference("2x H200", "gloo_cuda", "all_reduce", 256 * _MIB, _LOOP, busbw_GBps=2.18),
    Reference("2x H200", "gloo_cuda", "all_reduce", _GIB, _LOOP, busbw_GBps=2.33),
    Reference("1x H100", "gloo_cuda", "all_reduce", 4 * _KIB, _LOOP, latency_s=413e-6),
    Reference("1x H100", "gloo_cuda", "all_reduce", _MIB, _LOOP, latency_s=0.90e-3, busbw_GBps=1.17),
    Reference("1x H100", "gloo_cuda", "all_reduce", 64 * _MIB, _LOOP, latency_s=39.1e-3, busbw_GBps=1.71),
    Reference("2-core CPU", "gloo_cpu", "all_reduce", _KIB, _LOOP, latency_s=883e-6),
    Reference("2-core CPU", "gloo_cpu", "all_reduce", 4 * _KIB, _LOOP, latency_s=357e-6),
    Reference("2-core CPU", "gloo_cpu", "all_reduce", _MIB, _LOOP, latency_s=785e-6, busbw_GBps=1.34),
    Reference("2-core CPU", "gloo_cpu", "all_reduce", 16 * _MIB, _LOOP, latency_s=10.9e-3, busbw_GBps=1.53),
    Reference("2-core CPU", "gloo_cpu", "all_reduce", 64 * _MIB, _LOOP, latency_s=36.8e-3, busbw_GBps=1.83),
)


def machine_tag(env: dict) -> str | None:
    """Which machine with reference figures an environment is, if any."""
    key = comparability_key(env)
    gpu = key["gpu"] or ""
    if "H200" in gpu and key["gpu_count"] >= 2:
        return "2x H200"
    if "H100" in gpu:
        return "1x H100"
    if not gpu and key["cpu_count"] == 2 and "EPYC" in str(key["cpu_model"]):
        return "2-core CPU"
    return None


def references_for(env: dict) -> list[Reference]:
    tag = machine_tag(env)
    return [r for r in REFERENCES if r.machine == tag]
