"""Pruning steps: unstructured (L1), structured (units, heads; then a short cached fine-tune) and 2:4."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from bench_lib.results.case import SkipCase
from bench_lib.techniques.structured import remove_units
from bench_lib.techniques.technique import Context, linears
from bench_lib.workloads.cache import cached_state_dict

__all__ = ["prune_l1", "digest", "cut_units", "cut_heads", "prune_24", "to_semi_structured"]


def prune_l1(model: nn.Module, ctx: Context) -> nn.Module:
    """The user's example: `prune.l1_unstructured` on every Linear weight, made permanent (no fine-tune)."""
    from torch.nn.utils import prune

    for _, module in linears(model):
        prune.l1_unstructured(module, name="weight", amount=ctx.param("sparsity"))
        prune.remove(module, "weight")
    return model


def digest(model: nn.Module) -> str:
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
           "device": ctx.device.split(":")[0], "cut_weights": digest(model)}
    model.load_state_dict(cached_state_dict(key, lambda: ctx.workload.fine_tune(model).state_dict()))
    return model.eval()


def cut_units(model: nn.Module, ctx: Context) -> nn.Module:
    """Cut the hidden units out (smaller dense layers), then fine-tune briefly; a model without layer pairs
    to cut (a user's architecture `Workload.prunable` does not know) skips the case."""
    pairs = ctx.workload.prunable(model)
    if not pairs:
        raise SkipCase(f"{ctx.case.workload} has no layer pairs whose hidden units structured pruning can remove "
                       f"({type(ctx.workload).__name__}.prunable found none)")
    remove_units(pairs, ctx.param("sparsity"))
    return _recover(model, ctx, "structured")


def cut_heads(model: nn.Module, ctx: Context) -> nn.Module:
    """Cut whole groups of attention heads out, then fine-tune briefly."""
    ctx.workload.remove_heads(model, ctx.param("sparsity"))
    return _recover(model, ctx, "structured_heads")


def prune_24(model: nn.Module, ctx: Context) -> nn.Module:
    """Keep the 2 largest of every 4 consecutive input weights of each eligible Linear (no fine-tune); a model
    with none (a user's, of small layers) skips the case rather than time its dense self as 2:4."""
    eligible = linears(model, 64, 64)
    if not eligible:
        raise SkipCase(f"no Linear of {ctx.case.workload} has in/out features divisible by 64, as the 2:4 "
                       "sparse kernels need")
    with torch.no_grad():
        for _, m in eligible:
            w = m.weight.view(m.out_features, -1, 4)
            drop = w.abs().topk(2, dim=-1, largest=False).indices
            w.scatter_(-1, drop, 0.0)
    return model


def to_semi_structured(model: nn.Module, ctx: Context) -> nn.Module:
    """`to_sparse_semi_structured` on the 2:4-pruned Linears (cuSPARSELt where present, else CUTLASS)."""
    from torch.sparse import to_sparse_semi_structured

    for _, m in linears(model, 64, 64):
        m.weight = nn.Parameter(to_sparse_semi_structured(m.weight.detach()), requires_grad=False)
    return model
