"""Compression techniques: each turns the trained reference into the model that is served.

One registry, one signature. A technique is at most two steps, both `(model, ctx) -> model`:
`prepare` runs in fp32 on the case's device (pruning, fine-tuning), then the suite casts the
model to the serving dtype, then `convert` runs (quantize, sparsify, lower), then the suite
wraps it in `torch.compile` on the devices in `compiled_on`. Each technique is set up on the
fastest path measured for it on that device (see the notes and ../shared/anchors); where the
platform lacks the kernel it is skipped with the reason, never run on a slower stand-in.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from bench_lib.platform import Platform
from bench_lib.results.case import CaseSpec, SkipCase
from bench_lib.techniques.structured import remove_units
from bench_lib.workloads.base import Workload
from bench_lib.workloads.cache import cached_state_dict

__all__ = ["Context", "Technique", "TECHNIQUES", "skip_reason", "serving_dtype"]


@dataclass(frozen=True)
class Context:
    """What a step may look at besides the model."""

    case: CaseSpec
    workload: Workload
    device: str
    dtype: torch.dtype
    batch: int

    def param(self, key: str) -> float:
        return float(self.case.param(key))


Step = Callable[[nn.Module, Context], nn.Module]


@dataclass(frozen=True)
class Technique:
    name: str
    note: str
    devices: tuple[str, ...] = ("cpu", "cuda")
    prepare: Step | None = None
    convert: Step | None = None
    compiled_on: tuple[str, ...] = ()
    compile_mode: str | None = None  # torch.compile's mode where compiled; None: inductor's default
    dtype: str = "auto"  # auto: fp32 on CPU, bf16 on GPU (each device's baseline)
    params: dict[str, tuple] = field(default_factory=dict)
    min_capability: tuple[int, int] | None = None
    unsupported: str = ""  # set when no build of this stack can run it: the skip reason
    workload_needs: str = ""  # a method the workload must offer (e.g. remove_heads); else the case is skipped


def serving_dtype(technique: Technique, device: str) -> torch.dtype:
    if technique.dtype != "auto":
        return getattr(torch, technique.dtype)
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def _linears(model: nn.Module, multiple_in: int = 1, multiple_out: int = 1) -> list[tuple[str, nn.Linear]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)
            and m.in_features % multiple_in == 0 and m.out_features % multiple_out == 0]


# --- prepare steps (fp32) -------------------------------------------------------------------------

def _prune_l1(model: nn.Module, ctx: Context) -> nn.Module:
    """The user's example: `prune.l1_unstructured` on every Linear weight, made permanent (no fine-tune)."""
    from torch.nn.utils import prune

    for _, module in _linears(model):
        prune.l1_unstructured(module, name="weight", amount=ctx.param("sparsity"))
        prune.remove(module, "weight")
    return model


def _digest(model: nn.Module) -> str:
    """The weights' names, shapes and bytes: a cached fine-tune is reused only from the same cut model (a
    changed architecture or reference once loaded a stale cache: `w1`/`w3` weights into a fused `w13`)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _recover(model: nn.Module, ctx: Context, kind: str) -> nn.Module:
    """A short fine-tune on the training data after a structural cut (trained workloads only).

    The cut is deterministic, so the fine-tuned weights are cached like the reference's: only
    the first case of a workload and sparsity pays for the fine-tune (in its prepare_s).
    """
    if not ctx.workload.trained_weights:
        return model
    key = {"name": f"{ctx.case.workload}-{kind}", "workload": repr(ctx.workload), "fraction": ctx.param("sparsity"),
           "device": ctx.device.split(":")[0], "cut_weights": _digest(model)}
    model.load_state_dict(cached_state_dict(key, lambda: ctx.workload.fine_tune(model).state_dict()))
    return model.eval()


def _remove_units(model: nn.Module, ctx: Context) -> nn.Module:
    """Cut the hidden units out (smaller dense layers), then fine-tune briefly."""
    remove_units(ctx.workload.prunable(model), ctx.param("sparsity"))
    return _recover(model, ctx, "structured")


def _remove_heads(model: nn.Module, ctx: Context) -> nn.Module:
    """Cut whole groups of attention heads out, then fine-tune briefly."""
    ctx.workload.remove_heads(model, ctx.param("sparsity"))
    return _recover(model, ctx, "structured_heads")


def _prune_24(model: nn.Module, ctx: Context) -> nn.Module:
    """Keep the 2 largest of every 4 consecutive input weights of each eligible Linear (no fine-tune)."""
    with torch.no_grad():
        for _, m in _linears(model, 64, 64):
            w = m.weight.view(m.out_features, -1, 4)
            drop = w.abs().topk(2, dim=-1, largest=False).indices
            w.scatter_(-1, drop, 0.0)
    return model


# --- convert steps (serving dtype) ----------------------------------------------------------------

def _quantize_dynamic(model: nn.Module, ctx: Context) -> nn.Module:
    """`torch.ao.quantization.quantize_dynamic` on every Linear: fbgemm's int8 kernels (x86 engine)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def _torchao(make_config: Callable[[], object], multiple_in: int = 1, multiple_out: int = 1) -> Step:
    """`torchao.quantization.quantize_` on the Linears whose shape its kernels accept.

    Every config gets `set_inductor_config=False`: torchao's recommended inductor settings
    (coordinate-descent autotuning) took 224 s to compile one int8 case on an H100 (probe run,
    results/20261125T010621Z-inference-quick-cuda), too long for a suite; inductor defaults here.
    """

    def step(model: nn.Module, ctx: Context) -> nn.Module:
        from torchao.quantization import quantize_

        eligible = {name for name, _ in _linears(model, multiple_in, multiple_out)}
        if not eligible:
            raise SkipCase(f"no Linear of {ctx.case.workload} has in/out features divisible by "
                           f"{multiple_in}/{multiple_out}, as this kernel needs")
        quantize_(model, make_config(), filter_fn=lambda m, fqn: fqn in eligible)
        return model

    return step


def _int8_dyn_config() -> object:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig

    return Int8DynamicActivationInt8WeightConfig(set_inductor_config=False)


def _int8_wo_config() -> object:
    from torchao.quantization import Int8WeightOnlyConfig

    return Int8WeightOnlyConfig(set_inductor_config=False)


def _fp8_config(packing: str = "plain") -> Callable[[], object]:
    def make() -> object:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow
        from torchao.quantization.quantize_.workflows.float8.float8_packing_format import Float8PackingFormat

        return Float8DynamicActivationFloat8WeightConfig(granularity=PerRow(), set_inductor_config=False,
                                                         packing_format=Float8PackingFormat(packing))

    return make


def _fp8_wo_config() -> object:
    from torchao.quantization import Float8WeightOnlyConfig

    return Float8WeightOnlyConfig(set_inductor_config=False)


def _int4_config() -> object:
    from torchao.quantization import Int4WeightOnlyConfig

    # tinygemm's packing runs on torch's own `_weight_int4pack_mm`; the default (plain) packing
    # needs the separate `mslk` kernels package.
    return Int4WeightOnlyConfig(group_size=128, int4_packing_format="tile_packed_to_4d", set_inductor_config=False)


def _pt2e_static(model: nn.Module, ctx: Context) -> nn.Module:
    """Export at the case's batch shape, X86InductorQuantizer (static int8), calibrate on training data in
    batches of that shape, convert, compile with freezing (here, so conversion time includes the compile).

    `torch.compile(options={"freezing": True})` fails in onednn.qlinear_prepack (anchors, 2026-11-25),
    so freezing is set in the global inductor config, but only while this model compiles: left on, it
    froze every model compiled after it in the same process (in an `effbench ab` server, fp32_compile
    at batch 64 then ran in 10.9 ms instead of 12.4 ms, depending on which case that server had
    prepared first).
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    example = ctx.workload.example_input(ctx.batch)
    exported = torch.export.export(model, (example,)).module()
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for x in ctx.workload.calibration_batches(ctx.batch, rows=max(64, 4 * ctx.batch)):
            prepared(x)
    converted = convert_pt2e(prepared)
    compiled = torch.compile(converted, dynamic=False)
    with torch._inductor.config.patch(freezing=True), torch.no_grad():
        compiled(example)  # compiles now, while freezing is on
    return compiled


class Int8WeightOnlyLinear(nn.Module):
    """gpt-fast's int8 weight-only Linear: int8 weights and a per-output-channel scale, converted to
    the activation dtype inside the product. Compiled, inductor fuses that conversion into the
    matmul's reads (at one row, a reduction), so a decode step reads one byte per weight."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127
        self.register_buffer("weight", (w / scale[:, None]).round().clamp(-128, 127).to(torch.int8))
        self.register_buffer("scales", scale.to(linear.weight.dtype))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.linear(x, self.weight.to(x.dtype)) * self.scales
        return y if self.bias is None else y + self.bias


def _swap_linears(kind: type[nn.Module]) -> Step:
    def step(model: nn.Module, ctx: Context) -> nn.Module:
        for name, linear in _linears(model):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, kind(linear))
        return model

    return step


class CsrLinear(nn.Module):
    """A Linear whose weight is stored as sparse CSR and multiplied by `torch.sparse.mm`."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.register_buffer("weight", linear.weight.detach().to_sparse_csr())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        y = torch.sparse.mm(self.weight, flat.t()).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], y.shape[-1])


def _to_semi_structured(model: nn.Module, ctx: Context) -> nn.Module:
    """`to_sparse_semi_structured` on the 2:4-pruned Linears (cuSPARSELt where present, else CUTLASS)."""
    from torch.sparse import to_sparse_semi_structured

    for _, m in _linears(model, 64, 64):
        m.weight = nn.Parameter(to_sparse_semi_structured(m.weight.detach()), requires_grad=False)
    return model


class Rows2d(nn.Module):
    """Feeds a Linear 2-D rows: torchao's fp8 2:4 CUTLASS kernel refuses 3-D activations
    ("Expected Xq scale argument to be 2D tensor, got 3 dims", H100 run 2026-11-25)."""

    def __init__(self, linear: nn.Module) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x.reshape(-1, x.shape[-1]))
        return y.reshape(*x.shape[:-1], y.shape[-1])


def _semi_structured_fp8(model: nn.Module, ctx: Context) -> nn.Module:
    import torchao  # noqa: F401 - registers torch.ops.torchao

    if not hasattr(torch.ops.torchao, "rowwise_scaled_linear_sparse_cutlass_f8f8"):
        raise SkipCase("torchao's sm90a CUTLASS extension (_C_cutlass_90a, which holds the fp8 2:4 kernel) "
                       f"did not load with torch {torch.__version__}")
    model = _torchao(_fp8_config("sparse_2d_data_2d_metadata"), 64, 64)(model, ctx)
    for name, linear in _linears(model, 64, 64):
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, Rows2d(linear))
    return model


def _compose(*steps: Step) -> Step:
    def step(model: nn.Module, ctx: Context) -> nn.Module:
        for s in steps:
            model = s(model, ctx)
        return model

    return step


_SPARSITIES = {"sparsity": (0.5, 0.9)}
_STRUCTURED = {"sparsity": (0.5,)}
_GPU_TORCHAO = "compiled on GPU (torchao's fast path there)"

TECHNIQUES: dict[str, Technique] = {
    t.name: t
    for t in [
        Technique("fp32", "uncompressed reference, eager", devices=("cpu",)),
        Technique("fp32_compile", "torch.compile (inductor, default mode)", devices=("cpu",), compiled_on=("cpu",)),
        Technique("bf16", "bf16 weights and activations, eager: the GPU baseline", devices=("cuda",)),
        Technique("bf16_compile", "bf16, torch.compile (inductor, default mode)", devices=("cuda",),
                  compiled_on=("cuda",)),
        Technique("bf16_cudagraphs", "bf16, torch.compile mode='reduce-overhead' (inductor, then CUDA graphs: "
                  "one graph replay a call): the remedy for launch-bound serving", devices=("cuda",),
                  compiled_on=("cuda",), compile_mode="reduce-overhead"),
        Technique("fp16", "fp16 weights and activations, eager", devices=("cuda",), dtype="float16"),
        Technique("fp16_compile", "fp16, torch.compile (inductor, default mode)", devices=("cuda",),
                  dtype="float16", compiled_on=("cuda",)),
        Technique("int8_dynamic", "the user's example: torch.ao.quantization.quantize_dynamic (fbgemm). "
                  "DEPRECATED (torch.ao.quantization is to be removed; torchao's replacement is "
                  "int8_dynamic_torchao), yet still the fastest int8 path on AVX2 CPUs",
                  devices=("cpu",), convert=_quantize_dynamic),
        Technique("int8_dynamic_torchao", "torchao quantize_(Int8DynamicActivationInt8WeightConfig), the "
                  "replacement of quantize_dynamic; eager on CPU (torch._int_mm has no fast AVX2 kernel, "
                  "compiling does not help), " + _GPU_TORCHAO,
                  convert=_torchao(_int8_dyn_config), compiled_on=("cuda",)),
        Technique("int8_weight_only", "torchao quantize_(Int8WeightOnlyConfig), eager: compiled it ran "
                  "1789 ms a call at 8x512 tokens on an H100 (probe run, 570x bf16; anchors: 788 ms at 2048 "
                  "rows) and is slower than fp32 on AVX2 CPUs", convert=_torchao(_int8_wo_config)),
        Technique("int8_weight_only_inductor", "int8 weights, per-channel scales, dequantized inside the "
                  "matmul (gpt-fast's WeightOnlyInt8Linear), compiled. With coordinate-descent tuning (decode's "
                  "graphs_tuned) inductor turns a one-row matmul into a reduction that reads the int8 weights "
                  "(1.14x bf16's equally tuned step for an 8B model on an H200, at 40% of peak bandwidth against "
                  "bf16's 69%); under inductor's defaults, and at prefill, its "
                  "weight-only pattern calls aten._weight_int8pack_mm, as torchao 0.18's Int8WeightOnlyConfig "
                  "does (0.10x)", convert=_swap_linears(Int8WeightOnlyLinear),
                  compiled_on=("cpu", "cuda")),
        Technique("int8_static_pt2e", "static int8: torch.export + PT2E (torchao.quantization.pt2e) with "
                  "X86InductorQuantizer, calibrated on max(64, 4 x batch) training rows, torch.compile with "
                  "freezing (global, while it compiles)",
                  devices=("cpu",), convert=_pt2e_static),
        Technique("fp8_dynamic", "torchao Float8DynamicActivationFloat8WeightConfig, e4m3, per-row dynamic "
                  "scales, compiled; Linears with in/out divisible by 16", devices=("cuda",),
                  convert=_torchao(_fp8_config(), 16, 16), compiled_on=("cuda",), min_capability=(8, 9)),
        Technique("fp8_weight_only", "torchao Float8WeightOnlyConfig, e4m3 weights with per-row scales, bf16 "
                  "activations (the matmul runs in bf16), compiled; Linears with in/out divisible by 16",
                  devices=("cuda",), convert=_torchao(_fp8_wo_config, 16, 16), compiled_on=("cuda",),
                  min_capability=(8, 9)),
        Technique("int4_weight_only", "torchao Int4WeightOnlyConfig, group 128, tinygemm packing "
                  "(tile_packed_to_4d), compiled; Linears with in % 128 == 0 and out % 8 == 0",
                  devices=("cuda",), convert=_torchao(_int4_config, 128, 8), compiled_on=("cuda",),
                  min_capability=(8, 0)),
        Technique("l1_unstructured", "the user's example: torch.nn.utils.prune.l1_unstructured on every "
                  "Linear, no fine-tune, dense kernels: no speedup expected", prepare=_prune_l1,
                  params=_SPARSITIES),
        Technique("l1_unstructured_csr", "l1_unstructured, weights stored as sparse CSR and multiplied by "
                  "torch.sparse.mm (MKL on CPU, cuSPARSE on GPU)", prepare=_prune_l1, convert=_swap_linears(CsrLinear),
                  params=_SPARSITIES),
        Technique("structured", "hidden units with the smallest L2 norm removed (smaller dense layers), "
                  "then a short fine-tune on the training data (digits: 5 epochs; LM: 30 steps; "
                  "random-weight shapes: none), its weights cached across cases",
                  prepare=_remove_units, params=_STRUCTURED),
        Technique("structured_heads", "attention heads pruned: the KV-head groups (a kv head and the query heads "
                  "reading it) with the smallest L2 norm removed, so fewer heads and a smaller KV cache; then the "
                  "same short fine-tune as structured (Llama workloads; others skip)", prepare=_remove_heads,
                  params=_STRUCTURED, workload_needs="remove_heads"),
        Technique("structured_int8", "structured, then quantize_dynamic (deprecated torch.ao, the fastest "
                  "int8 on AVX2)", devices=("cpu",), prepare=_remove_units, convert=_quantize_dynamic,
                  params=_STRUCTURED),
        Technique("semi_structured_24", "2:4 magnitude pruning (no fine-tune) of Linears with dims divisible "
                  "by 64, torch.sparse.to_sparse_semi_structured (cuSPARSELt), eager", devices=("cuda",),
                  prepare=_prune_24, convert=_to_semi_structured, min_capability=(8, 0)),
        Technique("semi_structured_24_fp8", "2:4 magnitude pruning + torchao fp8 with the 2:4 sparse CUTLASS "
                  "packing (sparse_2d_data_2d_metadata), eager", devices=("cuda",), prepare=_prune_24,
                  convert=_semi_structured_fp8, min_capability=(9, 0)),
        Technique("int4_weight_only_24", "2:4 sparsity + int4 weight-only", devices=("cuda",),
                  unsupported="torchao 0.18 has no int4 with 2:4 sparsity: the Marlin sparse layout went with "
                  "version 1 of Int4WeightOnlyConfig, and no packing format of version 2 is sparse"),
        Technique("semi_structured_24_int8", "2:4 sparsity + int8", devices=("cuda",),
                  unsupported="torchao 0.18 removed int8 with 2:4 sparsity (SemiSparseLayout went with "
                  "version 1 of Int8DynamicActivationInt8WeightConfig); its 2:4 + quantization path is fp8: "
                  "see semi_structured_24_fp8"),
    ]
}


def skip_reason(technique: Technique, device: str, platform: Platform | None = None,
                workload: object = None) -> str | None:
    """Why `technique` cannot run on `device` of this platform (or on `workload`), known before running;
    None if it can."""
    if technique.unsupported:
        return technique.unsupported
    if technique.workload_needs and workload is not None and not hasattr(workload, technique.workload_needs):
        return f"{technique.name} needs a workload with {technique.workload_needs} (grouped attention heads)"
    if device not in technique.devices:
        return f"{technique.name} has no {device} path (runs on {', '.join(technique.devices)})"
    cap = platform.cuda_capability if platform else None
    if device.startswith("cuda") and technique.min_capability and cap and tuple(cap) < technique.min_capability:
        need = ".".join(map(str, technique.min_capability))
        return f"{technique.name} needs compute capability >= {need}; this GPU has {cap[0]}.{cap[1]}"
    return None
