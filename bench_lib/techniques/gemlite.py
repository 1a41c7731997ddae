"""Weight-only int4 and int8 through gemlite's Triton kernels (PyPI `gemlite`): named variants beside
the default paths of `int4_weight_only` (tinygemm at decode, dequantize-then-GEMM at prefill) and
`int8_weight_only_inductor`, so that a report shows what the other pip-installable kernel family buys.

gemlite picks its kernel (GEMV, split-K GEMV or GEMM) from the rows of each call, so one packed
weight serves both phases, and its forward is a `torch.library` custom op that compiles and replays
inside a CUDA graph. Weights are quantized here as gemlite's HQQ layout reads them: w = (q - zero) *
scale, int4 asymmetric min/max per group of `group` columns; int8 symmetric per output channel
(gemlite's own `A16W8_INT8`).
"""

from __future__ import annotations

import torch
from torch import nn

from bench_lib.results.case import SkipCase
from bench_lib.techniques.technique import Context, Step, linears

__all__ = ["gemlite_step", "quantize_groups"]


def quantize_groups(weight: torch.Tensor, bits: int, group: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q uint8 [N, K], scale [N, K/group], zero [N, K/group]) with weight ~ (q - zero) * scale: asymmetric
    round-to-nearest over each group's min and max."""
    n, k = weight.shape
    w = weight.detach().float().reshape(n, k // group, group)
    lo, hi = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
    top = 2 ** bits - 1
    scale = ((hi - lo) / top).clamp_min(1e-8)
    zero = (-lo / scale).round()
    q = (w / scale + zero).round().clamp(0, top).to(torch.uint8)
    return q.reshape(n, k), scale.reshape(n, -1), zero.reshape(n, -1)


def _packed(linear: nn.Linear, bits: int, group: int, dtype: torch.dtype) -> nn.Module:
    from gemlite.helper import A16W8_INT8, A16Wn

    device = str(linear.weight.device)
    bias = None if linear.bias is None else linear.bias.detach()
    if bits == 8:
        return A16W8_INT8(device=device, dtype=dtype).from_weights(linear.weight.detach(), bias)
    q, scale, zero = quantize_groups(linear.weight, bits, group)
    return A16Wn(device=device, dtype=dtype).from_weights(q, scale.to(dtype), zero.to(dtype), W_nbits=bits,
                                                          group_size=group, bias=bias)


def gemlite_step(bits: int, group: int = 128) -> Step:
    """Every Linear whose input features divide into groups (int4) swapped for gemlite's packed layer."""

    def step(model: nn.Module, ctx: Context) -> nn.Module:
        eligible = linears(model, group if bits == 4 else 1, 1)
        if not eligible:
            raise SkipCase(f"no Linear of {ctx.case.workload} has in_features divisible by {group}, "
                           "as gemlite's grouped int4 needs")
        dtype = next(model.parameters()).dtype
        for name, linear in eligible:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, _packed(linear, bits, group, dtype))
        return model

    return step
