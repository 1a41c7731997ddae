"""A Llama-architecture decoder as it is served: RMSNorm, rotary positions, SwiGLU, grouped-query
attention and a static KV cache, in the manner of gpt-fast (static shapes, so that a decode step
compiles once and replays as a CUDA graph).

Shapes: Llama-3.1-8B and Llama-3.2-1B with random weights (speed shapes: they say so in every
result), a ~100M shape for CPUs, and a small byte-level model trained on the Python standard
library's sources (`text.stdlib_bytes`), so that quality is measured on a model that has learnt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from bench_lib.workloads.base import Prunable
from bench_lib.workloads.cache import cached_state_dict
from bench_lib.workloads.text import stdlib_bytes, train_lm

__all__ = ["LlamaShape", "RopeScaling", "Llama", "LlamaLM", "DECODE_WORKLOADS", "remove_kv_groups",
           "rope_frequencies"]


@dataclass(frozen=True)
class RopeScaling:
    """A checkpoint's scaling of the rotary frequencies: "linear" divides every frequency by `factor`;
    "llama3" (Llama 3.1's) divides the low frequencies (wavelengths over `original_max_positions` /
    `low_freq_factor`) by `factor`, keeps the high ones (under `original_max_positions` /
    `high_freq_factor`) and blends the two in between."""

    kind: str
    factor: float
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_positions: int = 8192


@dataclass(frozen=True)
class LlamaShape:
    vocab: int
    d: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    rope_theta: float = 500_000.0
    tied: bool = False
    norm_eps: float = 1e-5
    # What a checkpoint of the Llama family may add (`workloads.hf_llama`); out of the repr, so that
    # the built-in shapes' cache keys (`repr(shape)`) stay as they were.
    qkv_bias: bool = field(default=False, repr=False)  # Qwen2's q, k and v projections
    out_bias: bool = field(default=False, repr=False)  # Llama's attention_bias: q, k, v and the output
    rope_scaling: RopeScaling | None = field(default=None, repr=False)
    explicit_head_dim: int = field(default=0, repr=False)  # a config's head_dim where it is not d // heads

    @property
    def head_dim(self) -> int:
        return self.explicit_head_dim or self.d // self.heads


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class KVCache(nn.Module):
    """Keys and values of every position, (batch, kv_heads, seq, head_dim): written in place."""

    def __init__(self, batch: int, seq: int, kv_heads: int, head_dim: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        super().__init__()
        shape = (batch, kv_heads, seq, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.k.index_copy_(2, pos, k.to(self.k.dtype))
        self.v.index_copy_(2, pos, v.to(self.v.dtype))
        return self.k, self.v


def rope_frequencies(s: LlamaShape, device: torch.device) -> torch.Tensor:
    """The rotary frequency of each pair of a head's dimensions (as transformers computes them)."""
    inv = 1.0 / s.rope_theta ** (torch.arange(0, s.head_dim, 2, device=device).float() / s.head_dim)
    r = s.rope_scaling
    if r is None:
        return inv
    if r.kind == "linear":
        return inv / r.factor
    wavelen = 2 * math.pi / inv
    low = torch.where(wavelen > r.original_max_positions / r.low_freq_factor, inv / r.factor, inv)
    smooth = (r.original_max_positions / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor)
    medium = (wavelen >= r.original_max_positions / r.high_freq_factor) & (
        wavelen <= r.original_max_positions / r.low_freq_factor)
    return torch.where(medium, (1 - smooth) * low / r.factor + smooth * low, low)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]) of each head by the position's angles; x is (b, t, h, hd)."""
    xf = x.float().unflatten(-1, (-1, 2))
    a, b = xf[..., 0], xf[..., 1]
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), -1).flatten(-2).type_as(x)


class Attention(nn.Module):
    """Grouped-query attention; q, k and v from one fused projection (one GEMM, as gpt-fast)."""

    def __init__(self, s: LlamaShape) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = s.heads, s.kv_heads, s.head_dim
        self.wqkv = nn.Linear(s.d, (s.heads + 2 * s.kv_heads) * s.head_dim, bias=s.qkv_bias)
        self.wo = nn.Linear(s.heads * s.head_dim, s.d, bias=s.out_bias)
        self.cache: KVCache | None = None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor,
                pos: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        q, k, v = self.wqkv(x).split([q_size, kv_size, kv_size], dim=-1)
        q = _rope(q.view(b, t, self.heads, self.head_dim), cos, sin).transpose(1, 2)
        k = _rope(k.view(b, t, self.kv_heads, self.head_dim), cos, sin).transpose(1, 2)
        v = v.view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        if self.cache is not None:
            k, v = self.cache.update(pos, k, v)
        if t == 1 and torch.compiler.is_compiling():
            y = _decode_attention(q, k, v, mask)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=self.heads != self.kv_heads)
        return self.wo(y.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


def _decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One query per head: scores and mix as two batched matmuls over each KV group's heads, which
    inductor fuses into small kernels. SDPA's flash kernel, tiled for 64 query rows, wastes most
    of its work on one; this path makes the compiled step faster (docs/validation/decode-h200). Eager, its
    eight ops cost more than SDPA's one, so only compiled code takes it."""
    b, h, t, hd = q.shape
    groups = h // k.shape[1]
    scores = (q.reshape(b, k.shape[1], groups * t, hd) @ k.transpose(-1, -2)).float() * hd ** -0.5
    scores = scores.masked_fill(~mask.repeat(groups, 1), float("-inf"))
    return (scores.softmax(-1).to(v.dtype) @ v).reshape(b, h, t, hd)


class FeedForward(nn.Module):
    """SwiGLU, w2(silu(w1 x) * w3 x), with w1 (gate) and w3 (up) stacked in one weight `w13`, as
    vLLM's gate_up_proj: one GEMM reads both. Compiled with coordinate-descent tuning, the one
    GEMM makes the decode step faster (docs/validation/decode-h200)."""

    def __init__(self, s: LlamaShape) -> None:
        super().__init__()
        self.w13 = nn.Linear(s.d, 2 * s.ffn, bias=False)
        self.w2 = nn.Linear(s.ffn, s.d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w13(x).chunk(2, dim=-1)
        return self.w2(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, s: LlamaShape) -> None:
        super().__init__()
        self.attention_norm, self.ffn_norm = RMSNorm(s.d, s.norm_eps), RMSNorm(s.d, s.norm_eps)
        self.attention, self.feed_forward = Attention(s), FeedForward(s)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor,
                pos: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin, mask, pos)
        return x + self.feed_forward(self.ffn_norm(x))


class Llama(nn.Module):
    """`forward(idx, pos)`: tokens (b, t) at positions `pos` (t,), a device tensor so that a
    decode step's shapes never change; logits of every position, or of the last (serving)."""

    def __init__(self, s: LlamaShape) -> None:
        super().__init__()
        self.shape = s
        self.tok_embeddings = nn.Embedding(s.vocab, s.d)
        self.layers = nn.ModuleList(Block(s) for _ in range(s.layers))
        self.norm = RMSNorm(s.d, s.norm_eps)
        self.output = nn.Linear(s.d, s.vocab, bias=False)
        if s.tied:
            self.output.weight = self.tok_embeddings.weight
        self.max_seq = 0

    def setup_cache(self, batch: int | None, seq: int) -> None:
        """Rotary tables and causal mask for `seq` positions; KV caches of `batch` rows (None: no cache)."""
        s, emb = self.shape, self.tok_embeddings.weight  # embeddings stay unquantized: the activation dtype
        angles = torch.outer(torch.arange(seq, device=emb.device).float(), rope_frequencies(s, emb.device))
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        self.register_buffer("causal", torch.ones(seq, seq, dtype=torch.bool, device=emb.device).tril(),
                             persistent=False)
        for block in self.layers:
            block.attention.cache = None if batch is None else KVCache(
                batch, seq, block.attention.kv_heads, s.head_dim, emb.dtype, emb.device)
        self.max_seq = seq

    def forward(self, idx: torch.Tensor, pos: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        cached = self.layers[0].attention.cache is not None
        # With a cache, queries attend to every cached position up to their own; without, to the
        # sequence itself (training and perplexity).
        mask = self.causal[pos] if cached else self.causal[pos][:, pos]
        cos, sin = self.cos[pos], self.sin[pos]
        x = self.tok_embeddings(idx)
        for block in self.layers:
            x = block(x, cos, sin, mask, pos)
        if last_only:
            x = x[:, -1:]
        return self.logits(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The final norm and the output head: a function of its own, so a serving engine can compile it."""
        return self.output(self.norm(x))


def remove_kv_groups(attention: Attention, fraction: float) -> int:
    """Remove `fraction` of the attention's KV-head groups (a kv head and the query heads that read it),
    lowest L2 norm of their q, k and v rows first: fewer heads, and a KV cache smaller by the same
    fraction. Returns the groups removed."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    heads, kv, hd = attention.heads, attention.kv_heads, attention.head_dim
    per = heads // kv
    w = attention.wqkv.weight.detach()
    q, k, v = w[:heads * hd].view(kv, per * hd, -1), w[heads * hd:(heads + kv) * hd].view(kv, hd, -1), \
        w[(heads + kv) * hd:].view(kv, hd, -1)
    norms = torch.stack([t.flatten(1).norm(dim=1) for t in (q, k, v)]).norm(dim=0)
    kept = max(1, round(kv * (1 - fraction)))
    keep = norms.topk(kept).indices.sort().values
    rows = torch.cat([q[keep].flatten(0, 1), k[keep].flatten(0, 1), v[keep].flatten(0, 1)])
    cols = (keep[:, None] * per * hd + torch.arange(per * hd, device=keep.device)).flatten()
    if attention.wqkv.bias is not None:
        b = attention.wqkv.bias.detach()
        qb, kb, vb = b[:heads * hd].view(kv, -1), b[heads * hd:(heads + kv) * hd].view(kv, -1), \
            b[(heads + kv) * hd:].view(kv, -1)
        attention.wqkv.bias = nn.Parameter(torch.cat([qb[keep].flatten(), kb[keep].flatten(), vb[keep].flatten()]))
    attention.wqkv.weight = nn.Parameter(rows.clone())
    attention.wqkv.out_features = rows.shape[0]
    attention.wo.weight = nn.Parameter(attention.wo.weight.detach()[:, cols].clone())
    attention.wo.in_features = len(cols)
    attention.heads, attention.kv_heads = kept * per, kept
    return kv - kept


def _init_weights(model: Llama, seed: int) -> None:
    """Normal(0, 0.02) weights (depth-scaled on the residual projections), norms at one."""
    gen = torch.Generator(device=model.output.weight.device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                std = 0.02 / math.sqrt(2 * model.shape.layers) if name.endswith(("wo.weight", "w2.weight")) else 0.02
                p.normal_(0.0, std, generator=gen)


def train_llama(model: Llama, steps: int, seq: int, seed: int, lr: float, batch: int = 32) -> Llama:
    """`text.train_lm` (AdamW, cosine schedule, random windows of the stdlib bytes), without a KV cache."""
    model.setup_cache(None, seq)
    pos = torch.arange(seq, device=model.tok_embeddings.weight.device)
    return train_lm(model, steps, seq, seed, lr, batch, forward=lambda m, x: m(x, pos))


@dataclass(frozen=True)
class LlamaLM:
    """A Llama shape, its weights (trained on stdlib bytes when `steps` > 0, else random) and prompts.

    Random-weight shapes are built on the serving device in the serving dtype (an 8B model in fp32
    on the host would take 32 GB and minutes); trained ones are cached on disk like `ByteLM`'s.
    """

    shape: LlamaShape
    steps: int = 0
    train_seq: int = 128
    train_batch: int = 16
    lr: float = 3e-3
    fine_tune_steps: int = 30
    seed: int = 0

    @property
    def trained_weights(self) -> bool:
        return self.steps > 0

    def build(self, device: str, dtype: torch.dtype) -> Llama:
        """The reference model in `dtype` on `device`, in eval mode, without caches."""
        if not self.trained_weights:
            with torch.device(device):
                torch.manual_seed(self.seed)
                model = Llama(self.shape).to(dtype)
            _init_weights(model, self.seed)
            return model.eval()
        torch.manual_seed(self.seed)
        model = Llama(self.shape)
        key = {"name": f"llama_byte_d{self.shape.d}_l{self.shape.layers}", "shape": repr(self.shape),
               "steps": self.steps, "seq": self.train_seq, "batch": self.train_batch, "lr": self.lr, "seed": self.seed,
               "corpus": stdlib_bytes()[2], "ffn_layout": "w13"}
        model.load_state_dict(cached_state_dict(key, lambda: self._trained().state_dict()))
        return model.to(device=device, dtype=dtype).eval()

    def _trained(self) -> Llama:
        torch.manual_seed(self.seed)
        return train_llama(Llama(self.shape), self.steps, self.train_seq, self.seed, self.lr, self.train_batch)

    def prompts(self, batch: int, length: int) -> torch.Tensor:
        """`batch` prompts of `length` tokens: held-out stdlib bytes for a byte vocabulary, else
        the same bytes as token ids (a random-weight model reads any ids alike)."""
        held_out = stdlib_bytes()[1]
        stride = max(1, (len(held_out) - length) // max(batch, 1))
        return torch.stack([held_out[i * stride: i * stride + length] for i in range(batch)]).contiguous()

    def eval_windows(self, count: int, length: int) -> torch.Tensor:
        """`count` held-out windows of length + 1 bytes (inputs and next-byte targets)."""
        held_out = stdlib_bytes()[1]
        stride = max(1, (len(held_out) - length - 1) // count)
        return torch.stack([held_out[i * stride: i * stride + length + 1] for i in range(count)])

    # What `techniques.pruning.cut_units` needs of a workload.
    def prunable(self, model: nn.Module) -> list[Prunable]:
        """The SwiGLU hidden units of every block: both halves of w13 lose rows together, w2 the matching columns."""
        return [Prunable(b.feed_forward.w13, b.feed_forward.w2, halves=2) for b in model.layers]

    def remove_heads(self, model: nn.Module, fraction: float) -> int:
        """Structured pruning of attention: `fraction` of every block's KV-head groups."""
        return sum(remove_kv_groups(b.attention, fraction) for b in model.layers)

    def fine_tune(self, model: nn.Module) -> nn.Module:
        if not self.trained_weights:
            return model
        return train_llama(model, self.fine_tune_steps, self.train_seq, self.seed + 1, self.lr / 3, self.train_batch)

    def describe(self) -> dict[str, Any]:
        s = self.shape
        return {"architecture": "llama (RMSNorm, RoPE, SwiGLU, GQA, static KV cache)", "vocab": s.vocab, "d": s.d,
                "layers": s.layers, "heads": s.heads, "kv_heads": s.kv_heads, "ffn": s.ffn, "tied": s.tied,
                "weights": "trained on stdlib bytes" if self.trained_weights
                else "random (speed shape: quality = change against the reference only)"}


_LLAMA3 = {"vocab": 128_256, "rope_theta": 500_000.0}

DECODE_WORKLOADS: dict[str, LlamaLM] = {
    # Llama-3.1-8B's shape (8.03B parameters, ~16 GB in bf16): what the published decode figures use.
    "llama_8b_random": LlamaLM(LlamaShape(d=4096, layers=32, heads=32, kv_heads=8, ffn=14_336, **_LLAMA3)),
    # Llama-3.2-1B's shape (1.24B parameters, tied embeddings).
    "llama_1b_random": LlamaLM(LlamaShape(d=2048, layers=16, heads=32, kv_heads=8, ffn=8192, tied=True, **_LLAMA3)),
    # ~110M parameters: a decode shape a CPU can serve.
    "llama_100m_random": LlamaLM(LlamaShape(vocab=32_000, d=768, layers=12, heads=12, kv_heads=4, ffn=2048)),
    # Trained for a minute on the stdlib's bytes: perplexity and greedy agreement mean something.
    "llama_byte": LlamaLM(LlamaShape(vocab=256, d=128, layers=4, heads=4, kv_heads=2, ffn=384, rope_theta=10_000.0),
                          steps=200),
}
