"""The inference suite: technique x workload x batch size, speed and quality in one case.

Each case loads the trained (cached) reference, applies the technique, times the served
model, profiles a few calls (the kernels it spends its time in), and judges its outputs on
held-out real data against the reference's, so a speed figure never travels without its
quality figure and its evidence.
"""

from __future__ import annotations

import copy
import gc
import time
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, field, replace
from functools import partial

import torch

from bench_lib.measure import memory
from bench_lib.measure.flops import CallCount, count_call, not_counted, work
from bench_lib.measure.timers import MeasureConfig
from bench_lib.platform import DeviceKind, Platform, device_kind
from bench_lib.profiles import measure_config
from bench_lib.results.case import CaseResult, CaseSpec, SkipCase
from bench_lib.results.roofline import compute_dtype
from bench_lib.suites.served import Served, ServedSuite, measure_window, sync, use_all_cores
from bench_lib.suites.served.size import layer_kinds, model_size
from bench_lib.techniques.inference import TECHNIQUES, skip_reason
from bench_lib.techniques.technique import Context, serving_dtype
from bench_lib.workloads.base import feed
from bench_lib.workloads.user import workload_of
from bench_lib.workloads.user.spec import ModelSpec

__all__ = ["InferenceSuite", "Grid", "MATRIX"]


@dataclass(frozen=True)
class Grid:
    """Workloads x techniques (None: every technique, those this device lacks listed as skipped) x batches."""

    workloads: tuple[str, ...]
    batches: tuple[int, ...]
    techniques: tuple[str, ...] | None = None
    params: dict[str, tuple] = field(default_factory=dict)  # overrides the techniques' own parameter values


_CPU_ONLY = ("fp32", "fp32_compile", "int8_dynamic", "int8_static_pt2e", "structured_int8")  # listed as skips
_GPU_ONLY = ("bf16", "bf16_compile", "bf16_cudagraphs", "fp16", "fp16_compile", "fp8_dynamic", "fp8_weight_only",
             "int4_weight_only", "int4_weight_only_24", "semi_structured_24", "semi_structured_24_fp8",
             "semi_structured_24_int8", "int4_weight_only_gemlite", "int8_weight_only_gemlite")  # listed as skips

# quick must fit `nox -s bench` on 2 cores (with the distributed suites, under 10 minutes): every
# CPU technique on the linear-heavy MLP at batch 1 and 64 (one worker process per technique),
# the pruning sweep at 64, the main paths on the CNN and the LM. full sweeps batches and
# sparsities; on GPU it times the GEMM-bound shape.
MATRIX: dict[tuple[str, DeviceKind], tuple[Grid, ...]] = {
    ("quick", "cpu"): (
        Grid(("digits_mlp_wide",), (1, 64), ("fp32", "fp32_compile", "int8_dynamic", "int8_dynamic_torchao",
                                             "int8_weight_only", "int8_static_pt2e", "structured", "structured_int8"),
             params={"sparsity": (0.5,)}),
        Grid(("digits_mlp_wide",), (64,), ("l1_unstructured", "l1_unstructured_csr", "int8_weight_only_inductor",
                                           "structured_heads", *_GPU_ONLY)),
        Grid(("digits_mlp",), (1,), ("fp32", "int8_dynamic")),
        Grid(("digits_cnn",), (64,), ("fp32", "int8_dynamic", "structured")),
        Grid(("byte_gpt",), (8,), ("fp32", "int8_dynamic", "structured")),
    ),
    ("full", "cpu"): (
        Grid(("digits_mlp", "digits_mlp_wide", "digits_cnn"), (1, 8, 64, 256)),
        Grid(("byte_gpt",), (1, 8, 32)),
    ),
    ("quick", "cuda"): (
        Grid(("byte_gpt_d2048_random",), (8,), ("bf16", "bf16_compile", "int8_dynamic_torchao", "fp8_dynamic",
                                                "structured", "semi_structured_24"), params={"sparsity": (0.5,)}),
        Grid(("byte_gpt",), (8,), ("bf16", "bf16_cudagraphs", "fp8_dynamic", "structured"),
             params={"sparsity": (0.5,)}),
    ),
    # Sized for a GPU lent in 10-minute calls: two calls, `-k "byte_gpt- or batch1"` and its negation
    # (a worker's start and each compile dominate a case's cost: docs/validation/h100-between-runs).
    # The GEMM-bound shape (8 x 512 tokens) and one sequence for the main paths first, then
    # quality on the trained LM, then the remaining paths at 8 x 512.
    # Left out: CSR on the large shape (hundreds of times slower than bf16) and fp16_compile (no faster than
    # fp16 eager), each measured once (docs/validation/h100-between-runs).
    ("full", "cuda"): (
        Grid(("byte_gpt_d2048_random",), (1, 8), ("bf16", "bf16_compile", "bf16_cudagraphs", "int8_dynamic_torchao",
                                                  "fp8_dynamic", "structured"), params={"sparsity": (0.5,)}),
        Grid(("byte_gpt",), (8,), ("bf16", "bf16_cudagraphs", "fp8_dynamic", "int8_dynamic_torchao", "structured",
                                   "semi_structured_24", "l1_unstructured_csr"), params={"sparsity": (0.5,)}),
        Grid(("byte_gpt_d2048_random",), (8,), ("fp16", "int8_weight_only", "int4_weight_only",
                                                "int4_weight_only_gemlite", "int8_weight_only_gemlite",
                                                "l1_unstructured", "semi_structured_24", "semi_structured_24_fp8",
                                                *_CPU_ONLY, "semi_structured_24_int8"), params={"sparsity": (0.5,)}),
    ),
}


# A user's model: the techniques that apply to any model of Linear layers (torchao's where it imports, 2:4 where
# the GPU has it, structured where `Workload.prunable` finds layer pairs: else the case skips with the reason),
# one sequence of the eval text per call unless the run asks for other batch sizes.
USER_MATRIX: dict[tuple[str, DeviceKind], Grid] = {
    ("quick", "cpu"): Grid((), (1,), ("fp32", "int8_dynamic", "int8_dynamic_torchao", "l1_unstructured",
                                      "structured"), params={"sparsity": (0.5,)}),
    ("full", "cpu"): Grid((), (1, 8), ("fp32", "fp32_compile", "int8_dynamic", "int8_dynamic_torchao",
                                       "int8_weight_only", "l1_unstructured", "structured", "structured_int8"),
                          params={"sparsity": (0.5,)}),
    ("quick", "cuda"): Grid((), (1,), ("bf16", "bf16_compile", "int8_dynamic_torchao", "fp8_dynamic",
                                       "int4_weight_only", "semi_structured_24", "l1_unstructured", "structured"),
                            params={"sparsity": (0.5,)}),
    ("full", "cuda"): Grid((), (1, 8), ("bf16", "bf16_compile", "bf16_cudagraphs", "int8_dynamic_torchao",
                                        "int8_weight_only", "fp8_dynamic", "int4_weight_only", "semi_structured_24",
                                        "semi_structured_24_fp8", "l1_unstructured", "structured"),
                           params={"sparsity": (0.5,)}),
}


@dataclass
class _Served(Served):
    """A compressed model ready to time, and what its quality is judged against."""

    model: torch.nn.Module
    x: torch.Tensor
    dtype: torch.dtype
    eval_x: object
    ref_out: object


def _work(case: CaseSpec, model: torch.nn.Module, x: torch.Tensor, reference: CallCount, weight_bytes: int) -> dict:
    """One call's work (`measure.flops`): counted on the served model run eagerly; on the uncompressed
    reference where the served model shows the counter no layer (an exported graph of quantized ops)."""
    dtype = compute_dtype(case.variant, device_kind(case.device))
    eager = getattr(model, "_orig_mod", model)  # a compiled model's module: the counter sees eager ops
    try:
        with torch.no_grad():
            count = count_call(lambda: eager(x), eager)
    except Exception as e:  # noqa: BLE001 - a kernel the counter breaks on: the case keeps its other figures
        return not_counted(e, dtype)
    note = ""
    if count.flops == 0 and reference.flops:
        count = replace(reference, activation_bytes=count.activation_bytes or reference.activation_bytes)
        note = "the uncompressed reference's FLOPs (the served model has no layer the counter or its shapes see)"
    return work(count, dtype, {"weights": weight_bytes, "activations": count.activation_bytes}, note=note)


class InferenceSuite(ServedSuite):
    NAME = "inference"
    DEFAULT_TIMEOUT_S = 300.0

    def cases(self, profile: str, device: str, backend: str, models: tuple[ModelSpec, ...] = ()) -> list[CaseSpec]:
        """The built-in matrix; with `models`, `USER_MATRIX`'s grid for each user's model instead."""
        kind = device_kind(device)
        if models:
            grid = USER_MATRIX[(profile, kind)]
            return [case for m in models for case in self._grid_cases(grid, m.name, device, {"model": m.text})]
        return [case for grid in MATRIX[(profile, kind)] for workload in grid.workloads
                for case in self._grid_cases(grid, workload, device, {})]

    def _grid_cases(self, grid: Grid, workload: str, device: str, fixed: dict) -> list[CaseSpec]:
        out = []
        for name in grid.techniques or tuple(TECHNIQUES):
            technique = TECHNIQUES[name]
            combos: list[dict] = [{}]
            for key, values in technique.params.items():
                combos = [{**c, key: v} for c in combos for v in grid.params.get(key, values)]
            for extra in combos:
                for batch in grid.batches:
                    out.append(CaseSpec.make(self.NAME, workload, name, device, batch=batch, **extra, **fixed))
        return out

    def launch_key(self, case: CaseSpec) -> Hashable:
        """The batch sizes of one workload and technique share a worker process (start-up paid once)."""
        return case.workload, case.variant, case.device, tuple(p for p in case.params if p[0] != "batch")

    def rescale_metrics(self, case: CaseSpec, metrics: dict, median: float, p90: float, p99: float) -> dict:
        old = metrics.get("latency_median_s")
        out = {"latency_median_s": median, "latency_p90_s": p90, "latency_p99_s": p99}
        for key in ("throughput_samples_per_s", "throughput_tokens_per_s"):
            if key in metrics and old:
                out[key] = metrics[key] * old / median  # work per call over time per call
        if "gpu_kernel_s_per_call" in metrics:
            out["gpu_busy_fraction"] = metrics["gpu_kernel_s_per_call"] / median
        return out

    def skip_reason(self, case: CaseSpec, platform: Platform) -> str | None:
        """A user's model is not built here (a factory may raise: its cases fail at run time, the others go
        on), so what a technique needs of it is checked when the case is served."""
        workload = None if case.param("model") is not None else workload_of(case)
        return super().skip_reason(case, platform) or skip_reason(TECHNIQUES[case.variant], case.device, platform,
                                                                  workload)

    def serve(self, case: CaseSpec, judge: bool) -> _Served:
        """The reference's outputs, and the compressed model ready to serve (its first call made);
        every case is judged (`measure_served`), whatever `judge` says."""
        rss_before_build = memory.current_rss_bytes()
        threads = use_all_cores()
        device, batch = case.device, int(case.param("batch"))
        workload, technique = workload_of(case), TECHNIQUES[case.variant]
        if technique.workload_needs and not hasattr(workload, technique.workload_needs):
            raise SkipCase(skip_reason(technique, device, None, workload))
        dtype = serving_dtype(technique, device)
        ctx = Context(case, workload, device, dtype, batch)

        reference = workload.reference().to(device)
        eval_x = workload.eval_inputs()
        ref_out = workload.outputs(reference, eval_x, batch, device, torch.float32)
        ref_x = feed(workload.example_input(batch), device, torch.float32)
        with torch.no_grad():
            ref_count = count_call(partial(reference, ref_x), reference)

        started = time.perf_counter()
        model = copy.deepcopy(reference)
        del reference
        if technique.prepare:
            model = technique.prepare(model, ctx)
        sync(device)
        prepared = time.perf_counter()
        model = model.to(dtype).eval()
        if technique.convert:
            model = technique.convert(model, ctx)
        size, kinds = model_size(model), layer_kinds(model)
        if device in technique.compiled_on:
            # Static shapes, as served at one batch size: Dynamo caches per code object, so without
            # this a second batch size of the same architecture in one process (a launch group, an
            # A/B server) recompiles with a dynamic batch dimension (fp32 MLP, batch 64: 13.0 vs 12.4 ms).
            model = torch.compile(model, dynamic=False, mode=technique.compile_mode)
        sync(device)
        converted = time.perf_counter()
        gc.collect()

        x = feed(workload.example_input(batch), device, dtype)
        with torch.no_grad():
            first = time.perf_counter()
            model(x)  # compiles where the model is compiled: timed apart from the runs
            sync(device)
            first_call_s = time.perf_counter() - first
        facts = {**size, "layers": kinds, "prepare_s": prepared - started, "convert_s": converted - prepared,
                 "first_call_s": first_call_s, "rss_before_build_bytes": rss_before_build,
                 "work": _work(case, model, x, ref_count, size["in_memory_bytes"])}
        return _Served(threads=threads, started=started, facts=facts, model=model, x=x, dtype=dtype, eval_x=eval_x,
                       ref_out=ref_out)

    def timed_call(self, served: _Served, case: CaseSpec) -> Callable[[], object]:
        return lambda: served.model(served.x)

    def execute(self, case: CaseSpec, profile: str) -> CaseResult:
        """A case measured alone is built afresh and not kept: the batch sizes of a launch group
        (`launch_key`) are served one at a time, not all resident together."""
        return self.measure_served(self.serve(case, judge=True), case, measure_config(profile))

    def measure_served(self, served: _Served, case: CaseSpec, cfg: MeasureConfig) -> CaseResult:
        model, x, dtype, device, batch = served.model, served.x, served.dtype, case.device, int(case.param("batch"))
        workload, technique = workload_of(case), TECHNIQUES[case.variant]
        tokens = 0 if x.is_floating_point() else x.numel()
        with torch.no_grad():
            rss_reset = memory.reset_peak_rss()
            rss_before = memory.current_rss_bytes()
            window = measure_window(lambda: model(x), device, cfg, {"call": 1, "sample": batch, "token": tokens})
        quality = workload.quality(workload.outputs(model, served.eval_x, batch, device, dtype), served.ref_out)
        measurement = window.measurement
        metrics = {
            "latency_median_s": measurement.median,
            "latency_p90_s": measurement.p90,
            "latency_p99_s": measurement.p99,
            "throughput_samples_per_s": batch / measurement.median,
            **({} if x.is_floating_point() else {"throughput_tokens_per_s": x.numel() / measurement.median}),
            "peak_rss_bytes": window.peak_rss_bytes,
            "rss_before_bytes": rss_before,
            "peak_rss_scope": "timed loop" if rss_reset else "process lifetime",
            **served.facts,
            "compiled": device in technique.compiled_on,
            "serving_dtype": str(dtype).removeprefix("torch."),
            **quality,
            "weights": "trained" if workload.trained_weights else "random (speed shape: quality = change only)",
            **({} if case.param("model") is None else {"model_source": case.param("model")}),
            **workload.identity(),
            **self.served_metrics(case, served, window),
        }
        return CaseResult(case, "ok", measurement, metrics, timer=window.timer,
                          measure_config=asdict(cfg), wall_s=time.perf_counter() - served.started)
