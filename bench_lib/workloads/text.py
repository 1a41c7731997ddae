"""A GPT-style byte-level language model and the text it reads: Python's own standard library.

The sources under `os.path.dirname(os.__file__)` ship with every Python, so the corpus needs
no download. A small model trains on it in seconds on a CPU (for perplexity and top-1
agreement); larger shapes of the same architecture keep random weights and exist to time
GEMM-bound inference on a GPU, where only their change against the reference means anything.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from bench_lib.workloads.base import Prunable, Workload, relative_error
from bench_lib.workloads.cache import cached_state_dict

__all__ = ["stdlib_bytes", "GPT", "ByteLM"]

_CORPUS_BYTES = 4_000_000
_EVAL_FRACTION = 0.1


@lru_cache(maxsize=1)
def stdlib_bytes() -> tuple[torch.Tensor, torch.Tensor, str]:
    """(train, held-out) byte tensors and a digest of the text: the stdlib's top-level .py files, sorted.

    The held-out bytes come from the last files, so no held-out sequence was seen in training.
    """
    root = Path(os.path.dirname(os.__file__))
    text = b"\n".join(p.read_bytes() for p in sorted(root.glob("*.py")))[:_CORPUS_BYTES]
    data = torch.frombuffer(bytearray(text), dtype=torch.uint8).long()
    cut = int(len(data) * (1 - _EVAL_FRACTION))
    return data[:cut], data[cut:], hashlib.sha256(text).hexdigest()[:16]


class Block(nn.Module):
    """Pre-norm transformer block: causal multi-head attention (SDPA), then a 4x GELU MLP."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class GPT(nn.Module):
    """Byte embeddings + learned positions, `layers` blocks, final norm, untied byte head."""

    def __init__(self, d: int, layers: int, heads: int, seq: int) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(256, d), nn.Embedding(seq, d)
        self.blocks = nn.Sequential(*(Block(d, heads) for _ in range(layers)))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, 256)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        return self.head(self.ln_f(self.blocks(x)))


def _windows(data: torch.Tensor, count: int, seq: int) -> torch.Tensor:
    """`count` windows of seq+1 bytes at an even stride over `data` (fixed, no randomness)."""
    stride = max(1, (len(data) - seq - 1) // count)
    return torch.stack([data[i * stride: i * stride + seq + 1] for i in range(count)])


def train_lm(model: nn.Module, steps: int, seq: int, seed: int, lr: float, batch: int = 32,
             forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None) -> nn.Module:
    """AdamW on random windows of the training bytes, cosine-decayed learning rate, on the model's device.
    `forward(model, x)` gives the logits where the model needs more than the tokens (default `model(x)`)."""
    train, _, _ = stdlib_bytes()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / steps)))
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(train) - seq - 1, (batch,), generator=gen)
        window = torch.stack([train[s:s + seq + 1] for s in starts.tolist()]).to(device)
        logits = forward(model, window[:, :-1]) if forward else model(window[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@dataclass(frozen=True)
class ByteLM(Workload):
    """GPT over bytes; `steps=0` keeps random weights (a speed shape, labelled so in every result)."""

    d: int = 64
    layers: int = 2
    heads: int = 2
    seq: int = 64
    steps: int = 200
    lr: float = 3e-3
    fine_tune_steps: int = 30
    eval_seqs: int = 64
    seed: int = 0

    @property
    def trained_weights(self) -> bool:
        return self.steps > 0

    def architecture(self) -> GPT:
        torch.manual_seed(self.seed)
        return GPT(self.d, self.layers, self.heads, self.seq)

    def reference(self) -> nn.Module:
        model = self.architecture()
        if self.trained_weights:
            key = {"name": f"byte_lm_d{self.d}_l{self.layers}", "heads": self.heads, "seq": self.seq,
                   "steps": self.steps, "lr": self.lr, "seed": self.seed, "corpus": stdlib_bytes()[2]}
            state = cached_state_dict(key, lambda: train_lm(self.architecture(), self.steps, self.seq, self.seed,
                                                            self.lr).state_dict())
            model.load_state_dict(state)
        return model.eval()

    def _eval_windows(self) -> torch.Tensor:
        return _windows(stdlib_bytes()[1], self.eval_seqs, self.seq)

    def example_input(self, batch: int) -> torch.Tensor:
        x = self._eval_windows()[:, :-1]
        return x.repeat(-(-batch // x.shape[0]), 1)[:batch].contiguous()

    def eval_inputs(self) -> torch.Tensor:
        return self._eval_windows()[:, :-1].contiguous()

    def train_inputs(self) -> torch.Tensor:
        return _windows(stdlib_bytes()[0], 256, self.seq)[:, :-1].contiguous()

    def quality(self, out: torch.Tensor, ref: torch.Tensor) -> dict[str, Any]:
        """Perplexity on held-out bytes, next-byte accuracy, and top-1 agreement with the reference."""
        y = self._eval_windows()[:, 1:]

        def ppl(logits: torch.Tensor) -> float:
            return math.exp(float(F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1))))

        pred, ref_pred = out.argmax(-1), ref.argmax(-1)
        accuracy = float((pred == y).float().mean())
        ref_accuracy = float((ref_pred == y).float().mean())
        return {"perplexity": ppl(out), "reference_perplexity": ppl(ref),
                "accuracy": accuracy, "reference_accuracy": ref_accuracy, "accuracy_delta": accuracy - ref_accuracy,
                "agreement_with_reference": float((pred == ref_pred).float().mean()),
                "output_rel_error": relative_error(out, ref), "eval_tokens": int(y.numel()),
                "accuracy_metric": "next-byte top-1 accuracy; agreement = top-1 next-byte agreement"}

    def fine_tune(self, model: nn.Module) -> nn.Module:
        if not self.trained_weights:
            return model
        return train_lm(model, self.fine_tune_steps, self.seq, self.seed + 1, self.lr / 3)

    def prunable(self, model: nn.Module) -> list[Prunable]:
        """The MLP hidden units of every block (attention heads are kept)."""
        return [Prunable(block.fc1, block.fc2) for block in model.blocks]
