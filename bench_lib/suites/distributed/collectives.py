"""The collectives suite: op x dtype x message size over Gloo (CPU and CUDA tensors) and NCCL.

Measured as nccl-tests measures: the size of a case is the full buffer (all_gather's output,
reduce_scatter's input), algbw = size / time, busbw = algbw x the op's bus factor, and each case
first checks the result on known data and counts the wrong elements. Each sample is the slowest
rank's time (the samples of all ranks are max-reduced). On CPU every iteration is one sample,
timed on the host with no barrier in the loop; on CUDA a sample is a block of iterations between
CUDA events, and NCCL's small messages are replayed from a CUDA graph, which removes the per-call
launch cost that nccl-tests also avoids.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench_lib.platform import detect
from bench_lib.results.case import CaseResult, CaseSpec, SkipCase
from bench_lib.suites.distributed.base import (
    TRANSPORTS,
    DistributedSuite,
    RankContext,
    backends_for,
    default_world_size,
)

if TYPE_CHECKING:
    from bench_lib.workloads.user.spec import ModelSpec

__all__ = ["CollectivesSuite", "OPS", "SIZES", "bus_factor"]

OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all")
DTYPES = ("float32", "bfloat16")
SIZES = {
    "quick": tuple(4096 * 4**k for k in range(7)),  # 4 KiB .. 16 MiB, x4 steps
    "full": tuple(2**k for k in range(3, 31)),  # 8 B .. 1 GiB, x2 steps as nccl-tests -f 2
}
GRAPH_MAX_BYTES = 1 << 20  # NCCL messages up to here are replayed from a CUDA graph


@dataclass(frozen=True)
class Timing:
    """How long each case measures: a target time, bounded iteration counts."""

    target_s: float
    min_iters: int
    max_iters: int
    warmup: int
    samples_per_case: int  # CUDA: iterations are grouped into this many event-timed blocks
    max_s: float  # a slow message (Gloo at 1 GiB) takes fewer than min_iters, but never fewer than FLOOR_ITERS

    def iterations(self, pilot_s: float) -> int:
        wanted = min(max(math.ceil(self.target_s / max(pilot_s, 1e-7)), self.min_iters), self.max_iters)
        return max(min(wanted, int(self.max_s / max(pilot_s, 1e-7))), FLOOR_ITERS)


FLOOR_ITERS = 5
# Per launch: a run launches each group twice (LAUNCHES), so a case's figure rests on twice this.
TIMING = {"quick": Timing(0.05, 8, 150, 2, 10, 1.0), "full": Timing(0.5, 20, 10000, 5, 25, 3.0)}


def bus_factor(op: str, n: int) -> float:
    """nccl-tests' factor from algorithm bandwidth to bus bandwidth (PERFORMANCE.md there)."""
    return {"all_reduce": 2 * (n - 1) / n, "broadcast": 1.0}.get(op, (n - 1) / n)


def _pattern(rank: int, index, dtype):
    """Small integers, exact in bf16 and in sums of a few ranks: (i mod 7) + rank + 1."""
    return ((index % 7) + rank + 1).to(dtype)


@dataclass
class _Buffers:
    run: Callable[[], object]
    output: object
    expected: object
    reset: Callable[[], None]


def _buffers(op: str, count: int, dtype, device: str, rank: int, n: int) -> _Buffers:
    """Input, output and expected output of one op on patterned data; `reset` refills the input."""
    import torch
    import torch.distributed as dist

    idx = torch.arange(count, dtype=torch.int32, device=device)  # counts stay below 2**31 up to 1 GiB
    chunk = count // n
    mine = _pattern(rank, idx, dtype)

    def of(r, lo, hi):
        return _pattern(r, idx[lo:hi], torch.float32)  # exact: small integers

    if op == "all_reduce":
        buf = mine.clone()
        expected = sum(of(r, 0, count) for r in range(n))
        return _Buffers(lambda: dist.all_reduce(buf), buf, expected, lambda: buf.copy_(mine))
    if op == "broadcast":
        buf = mine.clone()
        return _Buffers(lambda: dist.broadcast(buf, src=0), buf, of(0, 0, count), lambda: buf.copy_(mine))
    if op == "all_gather":
        inp, out = mine[:chunk].clone(), torch.empty(count, dtype=dtype, device=device)
        expected = torch.cat([of(r, 0, chunk) for r in range(n)])
        return _Buffers(lambda: dist.all_gather_into_tensor(out, inp), out, expected, lambda: None)
    if op == "reduce_scatter":
        out = torch.empty(chunk, dtype=dtype, device=device)
        expected = sum(of(r, rank * chunk, (rank + 1) * chunk) for r in range(n))
        return _Buffers(lambda: dist.reduce_scatter_tensor(out, mine), out, expected, lambda: None)
    if op == "all_to_all":
        out = torch.empty(count, dtype=dtype, device=device)
        expected = torch.cat([of(r, rank * chunk, (rank + 1) * chunk) for r in range(n)])
        return _Buffers(lambda: dist.all_to_all_single(out, mine), out, expected, lambda: None)
    raise ValueError(f"unknown op {op!r}; choose from {', '.join(OPS)}")


def _wrong_elements(buffers: _Buffers, dtype_name: str) -> int:
    import torch

    got = buffers.output.to(torch.float32)
    tol = 1e-2 if dtype_name == "bfloat16" else 1e-5
    return int(((got - buffers.expected).abs() > tol * buffers.expected.abs().clamp(min=1)).sum())


def _max_over_ranks(values: list[float], device: str) -> list[float]:
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.cpu().tolist()


def _sum_over_ranks(value: int, device: str) -> int:
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t)
    return int(t.item())


def _host_samples(fn: Callable[[], object], iters: int) -> list[float]:
    out = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _graph_of(fn: Callable[[], object], per_block: int) -> Callable[[], object]:
    """`per_block` calls captured once into a CUDA graph; replaying it costs one launch."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()  # warm up on a side stream, as torch.cuda.graphs' docs require before capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(per_block):
            fn()
    return graph.replay


def _cuda_samples(fn: Callable[[], object], iters: int, blocks: int, use_graph: bool
                  ) -> tuple[list[float], int, str]:
    """Event-timed blocks of `per_block` iterations, replayed from a CUDA graph if use_graph.

    A graph that cannot be captured is timed eagerly, and the timer name says so with the error.
    """
    import torch

    per_block = max(1, iters // blocks)

    def eager() -> None:
        for _ in range(per_block):
            fn()

    block, timer = eager, "cuda_event"
    if use_graph:
        try:
            block, timer = _graph_of(fn, per_block), "cuda_event+graph"
        except RuntimeError as e:
            timer = f"cuda_event (CUDA graph capture failed: {str(e).splitlines()[0][:200]})"
    block()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    out = []
    torch.cuda.synchronize()
    for _ in range(blocks):
        start.record()
        block()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end) / 1e3 / per_block)
    return out, per_block, timer


class CollectivesSuite(DistributedSuite):
    NAME = "collectives"
    # Two launches, each in its own random order of ops and sizes: one launch's ranks can carry a bias
    # of their own for their whole life, as the inference suite's processes do, which its samples cannot show.
    LAUNCHES = 2

    def rescale_metrics(self, case: CaseSpec, metrics: dict, median: float, p90: float, p99: float) -> dict:
        algbw = metrics["bytes"] / median / 1e9
        return {"algbw_GBps": algbw, "busbw_GBps": algbw * metrics["bus_factor"], "latency_median_s": median,
                "latency_p99_s": p99}

    def cases(self, profile: str, device: str, backend: str, models: tuple[ModelSpec, ...] = ()) -> list[CaseSpec]:
        """Collectives measure the interconnect, not a model: none for a user's model."""
        if models:
            return []
        platform = detect()
        out = []
        for dist_backend, dev in backends_for(device, backend):
            workload = "nccl" if dist_backend == "nccl" else f"gloo_{'cuda' if dev == 'cuda' else 'cpu'}"
            world = default_world_size(dev, platform)
            for op in OPS:
                for dtype in DTYPES:
                    for size in SIZES[profile]:
                        out.append(CaseSpec.make(self.NAME, workload, op, dev, dtype=dtype, size_bytes=size,
                                                 world_size=world))
        return out

    @staticmethod
    def backend_of(case: CaseSpec) -> str:
        return TRANSPORTS[case.workload][0]

    def run_on_rank(self, cases: list[CaseSpec], profile: str, ctx: RankContext) -> Iterator[CaseResult]:
        for case in cases:
            try:
                yield self._measure(case, profile, ctx)
            except SkipCase as e:
                yield CaseResult.skipped(case, str(e))

    def _measure(self, case: CaseSpec, profile: str, ctx: RankContext) -> CaseResult:
        import torch
        import torch.distributed as dist

        from bench_lib.measure.stats import Measurement

        started = time.perf_counter()
        timing = TIMING[profile]
        n, dtype_name = ctx.world_size, str(case.param("dtype"))
        dtype = getattr(torch, dtype_name)
        elem = torch.tensor([], dtype=dtype).element_size()
        count = max(n, int(case.param("size_bytes")) // elem // n * n)
        nbytes = count * elem
        buffers = _buffers(case.variant, count, dtype, ctx.device, ctx.rank, n)

        try:
            buffers.run()  # the check, on fresh patterned data, as nccl-tests' -c 1
        except (RuntimeError, TypeError, ValueError) as e:
            # An op or dtype the backend lacks is refused locally on every rank, before any transfer: a skip.
            # Anything else (a peer that died, a timeout) is a failure of the case.
            if isinstance(e, dist.DistError) or "support" not in str(e).lower():
                raise
            raise SkipCase(f"{ctx.backend} cannot run {case.variant} on {dtype_name} {ctx.device} tensors: "
                           f"{str(e).splitlines()[0][:300]}") from None
        wrong = _sum_over_ranks(_wrong_elements(buffers, dtype_name), ctx.meta_device)
        buffers.reset()
        if case.variant == "all_reduce":
            buffers.output.zero_()  # repeated in-place sums of the pattern would overflow to inf

        for _ in range(timing.warmup):
            buffers.run()
        run_synced = (lambda: (buffers.run(), torch.cuda.synchronize())) if ctx.is_cuda else buffers.run
        pilot = _max_over_ranks([sorted(_host_samples(run_synced, 3))[1]], ctx.meta_device)[0]
        iters = timing.iterations(pilot)
        use_graph = ctx.backend == "nccl" and nbytes <= GRAPH_MAX_BYTES
        if ctx.is_cuda:
            samples, per_sample, timer = _cuda_samples(buffers.run, iters, min(timing.samples_per_case, iters),
                                                       use_graph)
        else:
            samples, per_sample, timer = _host_samples(buffers.run, iters), 1, "perf_counter"
        samples = _max_over_ranks(samples, ctx.meta_device)
        m = Measurement(tuple(samples), number_per_sample=per_sample)
        algbw = nbytes / m.median / 1e9
        metrics = {
            "algbw_GBps": algbw,
            "busbw_GBps": algbw * bus_factor(case.variant, n),
            "latency_median_s": m.median,
            "latency_p99_s": m.p99,
            "wrong_elements": wrong,
            "iterations": len(samples) * per_sample,
            "bytes": nbytes,
            "elements": count,
            "bus_factor": bus_factor(case.variant, n),
            "timing": "max over ranks per sample; " + ("host timer per iteration" if timer == "perf_counter"
                                                       else f"{timer} over blocks of {per_sample}"),
            "torch_threads": torch.get_num_threads(),
        }
        return CaseResult(case, "ok", m, metrics, timer=timer,
                          measure_config={"target_s": timing.target_s, "min_iters": timing.min_iters,
                                          "warmup": timing.warmup},
                          wall_s=time.perf_counter() - started)
