"""Structured pruning that removes hidden units: the layers become smaller dense layers.

Zeroing rows (`torch.nn.utils.prune.ln_structured`) leaves the GEMMs their full size; here the
rows of the producer and the matching columns of the consumer are cut out, so every kernel
does less work. The workload names the layer pairs (`Workload.prunable`).
"""

from __future__ import annotations

import torch
from torch import nn

from bench_lib.workloads.base import Prunable

__all__ = ["remove_units"]


def _cut(layer: nn.Module, keep: torch.Tensor, dim: int) -> None:
    """Keep only the indices `keep` of the weight along `dim` (0: outputs, 1: inputs), in place."""
    layer.weight = nn.Parameter(layer.weight.detach().index_select(dim, keep).clone())
    if dim == 0 and layer.bias is not None:
        layer.bias = nn.Parameter(layer.bias.detach()[keep].clone())
    size = len(keep)
    if isinstance(layer, nn.Linear):
        setattr(layer, "out_features" if dim == 0 else "in_features", size)
    elif isinstance(layer, nn.Conv2d):
        setattr(layer, "out_channels" if dim == 0 else "in_channels", size)
    else:
        raise TypeError(f"cannot prune {type(layer).__name__}: only Linear and Conv2d")


def remove_units(pairs: list[Prunable], fraction: float) -> int:
    """Remove `fraction` of each producer's output units (lowest L2 norm first); returns units removed."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    removed = 0
    for pair in pairs:
        rows = pair.producer.weight.detach().flatten(1)
        units = rows.shape[0] // pair.halves
        norms = rows.view(pair.halves, units, -1).norm(dim=2).norm(dim=0)
        for other in pair.also:
            norms = torch.stack([norms, other.weight.detach().flatten(1).norm(dim=1)]).norm(dim=0)
        kept = max(1, round(len(norms) * (1 - fraction)))
        keep = norms.topk(kept).indices.sort().values
        cols = (keep[:, None] * pair.group + torch.arange(pair.group, device=keep.device)).flatten()
        halves = (torch.arange(pair.halves, device=keep.device)[:, None] * units + keep).flatten()
        _cut(pair.producer, halves, 0)
        for other in pair.also:
            _cut(other, keep, 0)
        _cut(pair.consumer, cols, 1)
        removed += len(norms) - kept
    return removed
