"""The inference techniques: each turns the trained reference into the model that is served.

One registry (`TECHNIQUES`), one signature (`technique.Technique`); the steps live in `pruning.py`,
`quantization.py` and `modules.py`. Each technique is set up on the fastest path measured for it on
that device (the evidence: docs/validation/technique-notes.md); where the platform lacks the kernel it
is skipped with the reason, never run on a slower stand-in.
"""

from __future__ import annotations

import importlib.util

from bench_lib.platform import Platform
from bench_lib.techniques.gemlite import gemlite_step
from bench_lib.techniques.int4 import split_int4_phases
from bench_lib.techniques.modules import CsrLinear, Int8WeightOnlyLinear, swap_linears
from bench_lib.techniques.pruning import cut_heads, cut_units, prune_24, prune_l1, to_semi_structured
from bench_lib.techniques.quantization import (
    fp8_config,
    fp8_weight_only_config,
    int4_config,
    int8_dynamic_config,
    int8_weight_only_config,
    pt2e_static,
    quantize_dynamic,
    semi_structured_fp8,
    torchao_step,
)
from bench_lib.techniques.technique import Technique, chain

__all__ = ["TECHNIQUES", "skip_reason"]


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
        Technique("int8_dynamic", "torch.ao.quantization.quantize_dynamic (fbgemm). "
                  "DEPRECATED (torch.ao.quantization is to be removed; torchao's replacement is "
                  "int8_dynamic_torchao), yet still the fastest int8 path on AVX2 CPUs",
                  devices=("cpu",), convert=quantize_dynamic),
        Technique("int8_dynamic_torchao", "torchao quantize_(Int8DynamicActivationInt8WeightConfig), the "
                  "replacement of quantize_dynamic; eager on CPU (torch._int_mm has no fast AVX2 kernel, "
                  "compiling does not help), " + _GPU_TORCHAO,
                  convert=torchao_step(int8_dynamic_config), compiled_on=("cuda",)),
        Technique("int8_weight_only", "torchao quantize_(Int8WeightOnlyConfig), eager: compiled, it is far slower "
                  "than bf16 on GPU; slower than fp32 on AVX2 CPUs",
                  convert=torchao_step(int8_weight_only_config)),
        Technique("int8_weight_only_inductor", "int8 weights, per-channel scales, dequantized inside the "
                  "matmul (gpt-fast's WeightOnlyInt8Linear), compiled. With coordinate-descent tuning (decode's "
                  "graphs_tuned) inductor turns a one-row matmul into a reduction that reads the int8 weights; "
                  "under inductor's defaults its weight-only pattern calls aten._weight_int8pack_mm, as torchao "
                  "0.18's Int8WeightOnlyConfig does (far slower than bf16). From 16 rows (prefill) the weight is "
                  "scaled to bf16 first, then the dense GEMM",
                  convert=swap_linears(Int8WeightOnlyLinear),
                  compiled_on=("cpu", "cuda")),
        Technique("int8_static_pt2e", "static int8: torch.export + PT2E (torchao.quantization.pt2e) with "
                  "X86InductorQuantizer, calibrated on max(64, 4 x batch) training rows, torch.compile with "
                  "freezing (global, while it compiles)",
                  devices=("cpu",), convert=pt2e_static),
        Technique("fp8_dynamic", "torchao Float8DynamicActivationFloat8WeightConfig, e4m3, per-row dynamic "
                  "scales, compiled; Linears with in/out divisible by 16", devices=("cuda",),
                  convert=torchao_step(fp8_config(), 16, 16), compiled_on=("cuda",), min_capability=(8, 9)),
        Technique("fp8_weight_only", "torchao Float8WeightOnlyConfig, e4m3 weights with per-row scales, bf16 "
                  "activations (the matmul runs in bf16), compiled; Linears with in/out divisible by 16",
                  devices=("cuda",), convert=torchao_step(fp8_weight_only_config, 16, 16), compiled_on=("cuda",),
                  min_capability=(8, 9)),
        Technique("int4_weight_only", "torchao Int4WeightOnlyConfig, group 128, tinygemm packing "
                  "(tile_packed_to_4d), compiled; Linears with in % 128 == 0 and out % 8 == 0. Below 16 rows "
                  "tinygemm's kernel (aten._weight_int4pack_mm); from 16 rows (prefill) the same packed weight "
                  "dequantized to bf16 in the compiled graph, then the dense GEMM",
                  devices=("cuda",), convert=chain(torchao_step(int4_config, 128, 8), split_int4_phases),
                  compiled_on=("cuda",),
                  min_capability=(8, 0)),
        Technique("int4_weight_only_gemlite", "gemlite's int4 (Triton, PyPI gemlite), group 128, asymmetric "
                  "min/max per group, bf16 activations, compiled: one packed weight, gemlite's GEMV below 5 rows, "
                  "its split-K GEMM to 63, its GEMM from 64 (prefill). Linears with in % 128 == 0. A named "
                  "variant beside int4_weight_only's tinygemm", devices=("cuda",), convert=gemlite_step(4),
                  compiled_on=("cuda",), min_capability=(8, 0), requires="gemlite"),
        Technique("int8_weight_only_gemlite", "gemlite's int8 weight-only (Triton, PyPI gemlite: A16W8_INT8), "
                  "symmetric per output channel, bf16 activations, compiled; its GEMV to 2 rows, split-K GEMM to "
                  "63, GEMM from 64. A named variant beside int8_weight_only_inductor", devices=("cuda",),
                  convert=gemlite_step(8), compiled_on=("cuda",), min_capability=(8, 0), requires="gemlite"),
        Technique("l1_unstructured", "torch.nn.utils.prune.l1_unstructured on every "
                  "Linear, no fine-tune, dense kernels: no speedup expected", prepare=prune_l1,
                  params=_SPARSITIES),
        Technique("l1_unstructured_csr", "l1_unstructured, weights stored as sparse CSR and multiplied by "
                  "torch.sparse.mm (MKL on CPU, cuSPARSE on GPU)", prepare=prune_l1, convert=swap_linears(CsrLinear),
                  params=_SPARSITIES),
        Technique("structured", "hidden units with the smallest L2 norm removed (smaller dense layers), "
                  "then a short fine-tune on the training data (digits: 5 epochs; LM: 30 steps; "
                  "random-weight shapes: none), its weights cached across cases",
                  prepare=cut_units, params=_STRUCTURED),
        Technique("structured_heads", "attention heads pruned: the KV-head groups (a kv head and the query heads "
                  "reading it) with the smallest L2 norm removed, so fewer heads and a smaller KV cache; then the "
                  "same short fine-tune as structured (Llama workloads; others skip)", prepare=cut_heads,
                  params=_STRUCTURED, workload_needs="remove_heads"),
        Technique("structured_int8", "structured, then quantize_dynamic (deprecated torch.ao, the fastest "
                  "int8 on AVX2)", devices=("cpu",), prepare=cut_units, convert=quantize_dynamic,
                  params=_STRUCTURED),
        Technique("semi_structured_24", "2:4 magnitude pruning (no fine-tune) of Linears with dims divisible "
                  "by 64, torch.sparse.to_sparse_semi_structured (cuSPARSELt), eager", devices=("cuda",),
                  prepare=prune_24, convert=to_semi_structured, min_capability=(8, 0)),
        Technique("semi_structured_24_fp8", "2:4 magnitude pruning + torchao fp8 with the 2:4 sparse CUTLASS "
                  "packing (sparse_2d_data_2d_metadata), eager", devices=("cuda",), prepare=prune_24,
                  convert=semi_structured_fp8, min_capability=(9, 0)),
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
    if technique.requires and importlib.util.find_spec(technique.requires) is None:
        return f"{technique.name} needs {technique.requires}, not installed here (pip install {technique.requires})"
    cap = platform.cuda_capability if platform else None
    if device.startswith("cuda") and technique.min_capability and cap and tuple(cap) < technique.min_capability:
        need = ".".join(map(str, technique.min_capability))
        return f"{technique.name} needs compute capability >= {need}; this GPU has {cap[0]}.{cap[1]}"
    return None
