"""Modules that replace a model's Linears: int8 weight-only (gpt-fast's), sparse CSR, and a 2-D row feeder."""

from __future__ import annotations

import torch
from torch import nn

from bench_lib.techniques.int4 import PREFILL_ROWS
from bench_lib.techniques.technique import Context, Step, linears

__all__ = ["Int8WeightOnlyLinear", "CsrLinear", "Rows2d", "swap_linears"]


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
        if x.numel() // x.shape[-1] >= PREFILL_ROWS:
            # scaled before the product: inductor's weight-only pattern, which sends the product
            # `linear(x, w.to(dtype)) * scales` to aten._weight_int8pack_mm, does not match, and the
            # dense GEMM reads the weight dequantized in one pointwise kernel
            return torch.nn.functional.linear(x, self.weight.to(x.dtype) * self.scales[:, None], self.bias)
        y = torch.nn.functional.linear(x, self.weight.to(x.dtype)) * self.scales
        return y if self.bias is None else y + self.bias


def swap_linears(kind: type[nn.Module]) -> Step:
    def step(model: nn.Module, ctx: Context) -> nn.Module:
        for name, linear in linears(model):
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


class Rows2d(nn.Module):
    """Feeds a Linear 2-D rows: torchao's fp8 2:4 CUTLASS kernel refuses 3-D activations
    ("Expected Xq scale argument to be 2D tensor, got 3 dims")."""

    def __init__(self, linear: nn.Module) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x.reshape(-1, x.shape[-1]))
        return y.reshape(*x.shape[:-1], y.shape[-1])
