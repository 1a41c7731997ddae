"""Study only, not effbench's path (`fused_attention.py` measured it slower): a decode step's attention
as Triton kernels: rotary embedding of the new query and key, the new key and value written into the
static cache, and grouped-query attention over the cached positions.

Compiled, the step's attention is six small kernels a layer (rotations and cache writes, the scores,
the softmax, the mix), each a few microseconds. Here, FlashDecoding's split: one program a key-value
head and block of 32 positions rotates the new key (taken from registers at its own position; the
block that holds it writes it to the cache, and no other program reads that slot), loads the block
once for the group's query heads and writes each head's partial softmax; a second kernel merges the
blocks. Only the filled part of the cache is read. Launched as user-defined Triton kernels, which
Dynamo traces into the compiled step, so they replay inside the step's CUDA graph.

On the H200 the first kernel took 11 us a layer, the merge 1.7 us: together more than the six
kernels they replace (`fused_attention.py`); kept here as that study's evidence.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["fused_kernel", "decode_attention"]

_BLOCK_S = 32  # cached positions a program reads: a split of FlashDecoding's


@functools.cache
def _kernels() -> tuple[object, object] | None:
    """The two Triton kernels (partial attention of each block of positions, then their merge), or None
    where Triton does not import."""
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None

    @triton.jit
    def decode_attention_blocks(qkv_ptr, cos_ptr, sin_ptr, k_ptr, v_ptr, pos_ptr, m_ptr, l_ptr, acc_ptr,
                                SEQ: tl.constexpr, HEADS: tl.constexpr, KV_HEADS: tl.constexpr,  # noqa: N803
                                HEAD_DIM: tl.constexpr, BLOCK_S: tl.constexpr, SPLITS: tl.constexpr):  # noqa: N803
        bk, split = tl.program_id(0), tl.program_id(1)
        b, kvh = bk // KV_HEADS, bk % KV_HEADS
        groups: tl.constexpr = HEADS // KV_HEADS
        scale = 1.0 / tl.sqrt(tl.full((), HEAD_DIM, tl.float32))  # as the modules: head_dim ** -0.5
        pos = tl.load(pos_ptr)
        if split * BLOCK_S <= pos:
            half = tl.arange(0, HEAD_DIM // 2)
            dims = tl.arange(0, HEAD_DIM)
            cos, sin = tl.load(cos_ptr + half), tl.load(sin_ptr + half)
            row = qkv_ptr + b * (HEADS + 2 * KV_HEADS) * HEAD_DIM
            dtype = k_ptr.dtype.element_ty
            # The new key, rotated over pairs (2i, 2i + 1) and rounded as the modules round it, and value.
            ka = tl.load(row + (HEADS + kvh) * HEAD_DIM + 2 * half).to(tl.float32)
            kb = tl.load(row + (HEADS + kvh) * HEAD_DIM + 2 * half + 1).to(tl.float32)
            k_even, k_odd = (ka * cos - kb * sin).to(dtype), (ka * sin + kb * cos).to(dtype)
            v_new = tl.load(row + (HEADS + KV_HEADS + kvh) * HEAD_DIM + dims).to(dtype)
            cache = (b * KV_HEADS + kvh) * SEQ * HEAD_DIM
            s = split * BLOCK_S + tl.arange(0, BLOCK_S)
            at = cache + s[:, None] * HEAD_DIM
            before = (s < pos)[:, None]
            # Cached positions before `pos` from memory, `pos` itself from registers, none after it.
            ke = tl.load(k_ptr + at + 2 * half[None, :], mask=before, other=0.0)
            ko = tl.load(k_ptr + at + 2 * half[None, :] + 1, mask=before, other=0.0)
            v = tl.load(v_ptr + at + dims[None, :], mask=before, other=0.0)
            new = (s == pos)[:, None]
            ke = tl.where(new, k_even[None, :], ke).to(tl.float32)
            ko = tl.where(new, k_odd[None, :], ko).to(tl.float32)
            v = tl.where(new, v_new[None, :], v).to(tl.float32)
            if split * BLOCK_S + BLOCK_S > pos:  # the block that holds `pos` writes its key and value
                tl.store(k_ptr + cache + pos * HEAD_DIM + 2 * half, k_even)
                tl.store(k_ptr + cache + pos * HEAD_DIM + 2 * half + 1, k_odd)
                tl.store(v_ptr + cache + pos * HEAD_DIM + dims, v_new)
            for g in tl.static_range(groups):  # the query heads of this key-value head share its loads
                h = kvh * groups + g
                qa = tl.load(row + h * HEAD_DIM + 2 * half).to(tl.float32)
                qb = tl.load(row + h * HEAD_DIM + 2 * half + 1).to(tl.float32)
                q_even = (qa * cos - qb * sin).to(dtype).to(tl.float32)
                q_odd = (qa * sin + qb * cos).to(dtype).to(tl.float32)
                scores = tl.sum(ke * q_even[None, :] + ko * q_odd[None, :], 1) * scale
                scores = tl.where(s <= pos, scores, float("-inf"))
                m = tl.max(scores, 0)
                p = tl.exp(scores - m)
                at_out = (b * HEADS + h) * SPLITS + split
                tl.store(m_ptr + at_out, m)
                tl.store(l_ptr + at_out, tl.sum(p, 0))
                tl.store(acc_ptr + at_out * HEAD_DIM + dims, tl.sum(p[:, None] * v, 0))

    @triton.jit
    def decode_attention_merge(pos_ptr, m_ptr, l_ptr, acc_ptr, out_ptr, BLOCK_S: tl.constexpr,  # noqa: N803
                               HEAD_DIM: tl.constexpr, SPLITS: tl.constexpr, SPLITS_P2: tl.constexpr):  # noqa: N803
        bh = tl.program_id(0)
        pos = tl.load(pos_ptr)
        split = tl.arange(0, SPLITS_P2)
        filled = split * BLOCK_S <= pos  # blocks past `pos` wrote nothing
        m = tl.load(m_ptr + bh * SPLITS + split, mask=filled, other=float("-inf"))
        total = tl.load(l_ptr + bh * SPLITS + split, mask=filled, other=0.0)
        dims = tl.arange(0, HEAD_DIM)
        acc = tl.load(acc_ptr + (bh * SPLITS + split)[:, None] * HEAD_DIM + dims[None, :], mask=filled[:, None],
                      other=0.0)
        w = tl.where(filled, tl.exp(m - tl.max(m, 0)), 0.0)
        out = tl.sum(w[:, None] * acc, 0) / tl.sum(w * total, 0)
        tl.store(out_ptr + bh * HEAD_DIM + dims, out.to(out_ptr.dtype.element_ty))

    return decode_attention_blocks, decode_attention_merge


def fused_kernel(device: torch.device) -> object | None:
    """The kernel for a step on `device`: None but on a CUDA device with Triton. Looked up once, outside
    the compiled step, and handed to `decode_attention`."""
    return _kernels() if device.type == "cuda" else None


def decode_attention(kernel: object, qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, k_cache: torch.Tensor,
                     v_cache: torch.Tensor, pos: torch.Tensor, heads: int) -> torch.Tensor:
    """Attention output (b, 1, heads * head_dim) of one new token per row.

    `qkv` (b, 1, (heads + 2 kv_heads) head_dim): the fused projection's output, unrotated; `cos`, `sin`
    (1, head_dim / 2) float32: the angles at `pos`; caches (b, kv_heads, seq, head_dim), written at `pos`
    (a one-element device tensor) and read before it."""
    b, kv_heads, seq, head_dim = k_cache.shape
    blocks, merge = kernel
    splits = -(-seq // _BLOCK_S)
    m = torch.empty(b, heads, splits, dtype=torch.float32, device=qkv.device)
    total = torch.empty_like(m)
    acc = torch.empty(b, heads, splits, head_dim, dtype=torch.float32, device=qkv.device)
    blocks[(b * kv_heads, splits)](qkv.contiguous(), cos.contiguous(), sin.contiguous(), k_cache, v_cache, pos, m,
                                   total, acc, SEQ=seq, HEADS=heads, KV_HEADS=kv_heads, HEAD_DIM=head_dim,
                                   BLOCK_S=_BLOCK_S, SPLITS=splits)
    out = torch.empty(b, 1, heads * head_dim, dtype=qkv.dtype, device=qkv.device)
    merge[(b * heads,)](pos, m, total, acc, out, BLOCK_S=_BLOCK_S, HEAD_DIM=head_dim, SPLITS=splits,
                        SPLITS_P2=max(2, 1 << (splits - 1).bit_length()))
    return out
