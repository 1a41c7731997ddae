"""A decode step's attention as one Triton kernel: rotary embedding of the new query and key, the new
key and value written into the static cache, and grouped-query attention over the cached positions.

Compiled, the step's attention was five to six small kernels a layer (rotations, two cache writes, the
scores, the softmax, the mix), each a few microseconds over a few hundred kilobytes, and a gap before
each in the CUDA graph: about a tenth of a bf16 step of the 8B shape, the largest share of its time
outside the weight-reading GEMVs (docs/validation/decode-step-breakdown). One program a query head
rotates its query, takes the new key and value from registers for its own position (the first head
of each group writes them to the cache; no program reads that slot, so nothing races) and runs an
online softmax over the positions before it: it reads only the filled part of the cache, in order,
as FlashDecoding's kernels do, where the masked matmuls read all of it.

Launched as a user-defined Triton kernel, which Dynamo traces into the compiled step (the mutation
of the cache seen from the kernel's stores), so it replays inside the step's CUDA graph.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["fused_kernel", "decode_attention"]

_BLOCK_S = 64  # cached positions a loop iteration reads


@functools.cache
def _kernel() -> object | None:
    """The Triton kernel, or None where Triton does not import."""
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None

    @triton.jit
    def decode_attention_kernel(qkv_ptr, cos_ptr, sin_ptr, k_ptr, v_ptr, pos_ptr, out_ptr, scale, SEQ: tl.constexpr,  # noqa: N803 - constexpr
                                HEADS: tl.constexpr, KV_HEADS: tl.constexpr,  # noqa: N803 - constexpr
                                HEAD_DIM: tl.constexpr, BLOCK_S: tl.constexpr):  # noqa: N803 - constexpr
        b, h = tl.program_id(0), tl.program_id(1)
        scale = scale.to(tl.float32)  # inductor passes a Python float as fp64
        groups: tl.constexpr = HEADS // KV_HEADS
        kvh = h // groups
        half = tl.arange(0, HEAD_DIM // 2)
        dims = tl.arange(0, HEAD_DIM)
        pos = tl.load(pos_ptr)
        cos, sin = tl.load(cos_ptr + half), tl.load(sin_ptr + half)
        row = qkv_ptr + b * (HEADS + 2 * KV_HEADS) * HEAD_DIM
        dtype = k_ptr.dtype.element_ty
        # Rotate pairs (2i, 2i + 1), rounded to the model's dtype as the modules round them.
        qa = tl.load(row + h * HEAD_DIM + 2 * half).to(tl.float32)
        qb = tl.load(row + h * HEAD_DIM + 2 * half + 1).to(tl.float32)
        q_even = (qa * cos - qb * sin).to(dtype).to(tl.float32)
        q_odd = (qa * sin + qb * cos).to(dtype).to(tl.float32)
        ka = tl.load(row + (HEADS + kvh) * HEAD_DIM + 2 * half).to(tl.float32)
        kb = tl.load(row + (HEADS + kvh) * HEAD_DIM + 2 * half + 1).to(tl.float32)
        k_even, k_odd = (ka * cos - kb * sin).to(dtype), (ka * sin + kb * cos).to(dtype)
        v_new = tl.load(row + (HEADS + KV_HEADS + kvh) * HEAD_DIM + dims).to(dtype)
        cache = (b * KV_HEADS + kvh) * SEQ * HEAD_DIM
        if h % groups == 0:
            tl.store(k_ptr + cache + pos * HEAD_DIM + 2 * half, k_even)
            tl.store(k_ptr + cache + pos * HEAD_DIM + 2 * half + 1, k_odd)
            tl.store(v_ptr + cache + pos * HEAD_DIM + dims, v_new)
        # The new position first, then the cached ones before it: an online softmax.
        m = tl.sum(q_even * k_even.to(tl.float32) + q_odd * k_odd.to(tl.float32), 0) * scale
        total = tl.full((), 1.0, tl.float32)
        acc = v_new.to(tl.float32)
        # The loop runs over the whole cache and skips the blocks past `pos`, which read nothing (Triton's
        # interpreter, which the tests run on a CPU, takes no runtime bound for a loop).
        for start in range(0, SEQ, BLOCK_S):
            if start < pos:
                s = start + tl.arange(0, BLOCK_S)
                filled = s < pos
                at = cache + s[:, None] * HEAD_DIM
                ke = tl.load(k_ptr + at + 2 * half[None, :], mask=filled[:, None], other=0.0).to(tl.float32)
                ko = tl.load(k_ptr + at + 2 * half[None, :] + 1, mask=filled[:, None], other=0.0).to(tl.float32)
                scores = tl.sum(ke * q_even[None, :] + ko * q_odd[None, :], 1) * scale
                scores = tl.where(filled, scores, float("-inf"))
                m_new = tl.maximum(m, tl.max(scores, 0))
                alpha = tl.exp(m - m_new)
                p = tl.exp(scores - m_new)
                v = tl.load(v_ptr + at + dims[None, :], mask=filled[:, None], other=0.0).to(tl.float32)
                acc = acc * alpha + tl.sum(p[:, None] * v, 0)
                total = total * alpha + tl.sum(p, 0)
                m = m_new
        tl.store(out_ptr + (b * HEADS + h) * HEAD_DIM + dims, (acc / total).to(out_ptr.dtype.element_ty))

    return decode_attention_kernel


def fused_kernel(device: torch.device) -> object | None:
    """The kernel for a step on `device`: None but on a CUDA device with Triton. Looked up once, outside
    the compiled step, and handed to `decode_attention`."""
    return _kernel() if device.type == "cuda" else None


def decode_attention(kernel: object, qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, k_cache: torch.Tensor,
                     v_cache: torch.Tensor, pos: torch.Tensor, heads: int) -> torch.Tensor:
    """Attention output (b, 1, heads * head_dim) of one new token per row.

    `qkv` (b, 1, (heads + 2 kv_heads) head_dim): the fused projection's output, unrotated; `cos`, `sin`
    (1, head_dim / 2) float32: the angles at `pos`; caches (b, kv_heads, seq, head_dim), written at `pos`
    (a one-element device tensor) and read before it."""
    b, kv_heads, seq, head_dim = k_cache.shape
    out = torch.empty(b, 1, heads * head_dim, dtype=qkv.dtype, device=qkv.device)
    kernel[(b, heads)](qkv.contiguous(), cos.contiguous(), sin.contiguous(), k_cache, v_cache, pos, out,
                       head_dim ** -0.5, SEQ=seq, HEADS=heads, KV_HEADS=kv_heads, HEAD_DIM=head_dim, BLOCK_S=_BLOCK_S)
    return out
