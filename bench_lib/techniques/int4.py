"""int4 weight-only with one copy of the weights and a kernel for each phase.

torchao's tinygemm packing (`Int4WeightOnlyConfig(int4_packing_format="tile_packed_to_4d")`) is the
fastest int4 GEMV here at one to a few rows, and 14-23x slower than bf16 at prefill's hundreds of rows
(its kernel is a GEMV tiled for few rows). Its packed order is a fixed permutation of each 8 x 128
tile of nibbles, so the packed weight unpacks by reshape and permute alone: at `PREFILL_ROWS` rows or
more, the layer dequantizes its own packed weight to bf16 inside the compiled graph (inductor writes
one pointwise kernel) and multiplies with the dense GEMM, without a second copy of the weights.
The permutation is checked against `aten._convert_weight_to_int4pack` on the device before a model
is converted; a torch whose packing differs is refused with the reason.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn import functional as F

from bench_lib.results.case import SkipCase
from bench_lib.techniques.technique import Context, linears

__all__ = ["PREFILL_ROWS", "TinyGemmInt4Linear", "unpack_tinygemm", "split_int4_phases"]

#: At this many rows (batch x tokens) or more a layer takes the dequantize-then-GEMM path.
PREFILL_ROWS = 16
_INNER_K_TILES = 8  # torchao's tile_packed_to_4d packing


def unpack_tinygemm(qdata: torch.Tensor) -> torch.Tensor:
    """[N/8, K/128, 32, 4] int32 in tinygemm's order -> [N, K] int4 values (0..15) as int32.

    Within a tile, the packed nibble at p = ((a * 4 + b) * 8 + nibble) holds row r and column c with
    r = a >> 2, c = ((b * 4 + nibble % 4) * 4 + a % 4) * 2 + nibble // 4, written as a permutation of
    the bit fields of p: reshape into them, permute into (r, c) order."""
    n8, k128 = qdata.shape[:2]
    shifts = torch.arange(0, 32, 4, device=qdata.device, dtype=torch.int32)
    nib = (qdata.unsqueeze(-1) >> shifts) & 15  # [n8, k128, 32, 4, 8]
    fields = nib.reshape(n8, k128, 8, 4, 4, 2, 4)  # a>>2, a%4, b, nibble//4, nibble%4
    return fields.permute(0, 2, 1, 4, 6, 3, 5).reshape(n8 * 8, k128 * 128)


@functools.cache
def _triton_dequantizer() -> object | None:
    """A Triton kernel that dequantizes whole tiles (group 128: one scale and zero per row and tile):
    each program loads a tile's 128 words once and permutes the nibbles in registers, where inductor's
    kernel for `dequantized` computes every element's word and shift apart, and moves fewer bytes a
    second (docs/validation/quantized-prefill). None without Triton."""
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None

    @triton.jit
    def dequant_tiles(q_ptr, sz_ptr, out_ptr, n, k, k_tiles, TILES: tl.constexpr):  # noqa: N803 - constexpr
        pid_n = tl.program_id(0)
        for t in range(TILES):
            pid_k = tl.program_id(1) * TILES + t
            words = tl.load(q_ptr + (pid_n * k_tiles + pid_k) * 128 + tl.arange(0, 128))
            nib = (words[:, None] >> (tl.arange(0, 8) * 4)[None, :]) & 15
            q = tl.reshape(tl.permute(tl.reshape(nib, (8, 4, 4, 2, 4)), (0, 2, 4, 1, 3)), (8, 128))
            rows = pid_n * 8 + tl.arange(0, 8)
            scale = tl.load(sz_ptr + (pid_k * n + rows) * 2).to(tl.float32)
            zero = tl.load(sz_ptr + (pid_k * n + rows) * 2 + 1).to(tl.float32)
            w = (q.to(tl.float32) - 8.0) * scale[:, None] + zero[:, None]
            cols = pid_k * 128 + tl.arange(0, 128)
            tl.store(out_ptr + rows[:, None] * k + cols[None, :], w.to(out_ptr.dtype.element_ty))

    return dequant_tiles


@functools.cache
def _packing_agrees(device: str) -> bool:
    q = torch.randint(0, 16, (16, 256), device=device, dtype=torch.int32)
    packed = torch.ops.aten._convert_weight_to_int4pack((q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8), _INNER_K_TILES)
    return bool((unpack_tinygemm(packed) == q).all())


class TinyGemmInt4Linear(nn.Module):
    """A Linear with torchao's tinygemm-packed int4 weight (group size `group`): tinygemm's kernel
    below `PREFILL_ROWS` rows, the dequantized weight into the dense GEMM from there."""

    def __init__(self, qdata: torch.Tensor, scale_and_zero: torch.Tensor, group: int, out_features: int,
                 in_features: int, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.register_buffer("qdata", qdata)
        self.register_buffer("scale_and_zero", scale_and_zero)  # [K/group, N, 2]: scale, zero
        self.register_buffer("bias", bias)
        self.group, self.out_features, self.in_features = group, out_features, in_features
        self.kernel = None  # the Triton dequantizer, once `use_triton` has checked it on this device

    @property
    def prefill_path(self) -> str:
        return ("Triton tile dequantizer (effbench), then the dense GEMM" if self.kernel is not None
                else "inductor-generated dequantization, then the dense GEMM")

    def use_triton(self) -> bool:
        """Take the Triton dequantizer where it loads and agrees with `dequantized` on this layer."""
        kernel = _triton_dequantizer() if self.qdata.is_cuda and self.group == 128 else None
        if kernel is None:
            return False
        reference = self.dequantized(torch.bfloat16)
        self.kernel = kernel
        try:
            agrees = bool(torch.allclose(self.dequantized(torch.bfloat16).float(), reference.float(),
                                         rtol=1e-2, atol=1e-3))
        except Exception:  # noqa: BLE001 - a kernel that does not build leaves the inductor path
            agrees = False
        if not agrees:
            self.kernel = None
        return agrees

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        """tinygemm's affine int4: w = (q - 8) * scale + zero, per group of `group` columns."""
        if self.kernel is not None:
            n8, k_tiles = self.qdata.shape[:2]
            w = torch.empty(n8 * 8, k_tiles * 128, dtype=dtype, device=self.qdata.device)
            tiles = 4 if k_tiles % 4 == 0 else 1
            self.kernel[(n8, k_tiles // tiles)](self.qdata, self.scale_and_zero, w, n8 * 8, k_tiles * 128, k_tiles,
                                                TILES=tiles)
            return w[: self.out_features, : self.in_features]
        q = unpack_tinygemm(self.qdata).to(dtype)
        n, k = q.shape
        scale, zero = (t.t().to(dtype)[..., None] for t in self.scale_and_zero.unbind(-1))
        w = ((q.view(n, k // self.group, self.group) - 8) * scale + zero).view(n, k)
        return w[: self.out_features, : self.in_features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows >= PREFILL_ROWS:
            return F.linear(x, self.dequantized(x.dtype), self.bias)
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        padded = self.qdata.shape[1] * 128
        if padded != flat.shape[-1]:
            flat = F.pad(flat, (0, padded - flat.shape[-1]))
        y = torch.ops.aten._weight_int4pack_mm(flat, self.qdata, self.group, self.scale_and_zero)
        y = y[:, : self.out_features].reshape(*x.shape[:-1], self.out_features).to(x.dtype)
        return y if self.bias is None else y + self.bias


def split_int4_phases(model: nn.Module, ctx: Context) -> nn.Module:
    """Swap each Linear that torchao quantized to tinygemm's int4 for a `TinyGemmInt4Linear` holding
    the same packed weight (the same numbers at decode; prefill then reads them dequantized)."""
    if not _packing_agrees(str(ctx.device)):
        raise SkipCase(f"tinygemm's int4 packing of torch {torch.__version__} is not the order effbench "
                       "unpacks for its prefill path")
    for name, linear in linears(model):
        weight = linear.weight
        if not hasattr(weight, "scale_and_zero"):
            continue
        layer = TinyGemmInt4Linear(weight.qdata, weight.scale_and_zero, weight.block_size[-1], weight.shape[0],
                                   weight.shape[1], None if linear.bias is None else linear.bias.detach())
        layer.use_triton()
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer)
    return model
