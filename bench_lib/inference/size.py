"""How big a model is: on disk (serialized state_dict) and in memory (its tensors' storage)."""

from __future__ import annotations

import io
from typing import Any

import torch
from torch import nn

__all__ = ["model_size"]


def _tensor_bytes(obj: Any) -> int:
    """Bytes of the data a tensor holds: packed, sparse and subclass (torchao) tensors included."""
    if isinstance(obj, (tuple, list)):
        return sum(_tensor_bytes(o) for o in obj)
    if not isinstance(obj, torch.Tensor):
        return 0
    if type(obj) is not torch.Tensor and hasattr(obj, "__tensor_flatten__"):
        names, _ = obj.__tensor_flatten__()
        return sum(_tensor_bytes(getattr(obj, n)) for n in names)
    if obj.layout == torch.sparse_csr:
        return _tensor_bytes([obj.crow_indices(), obj.col_indices(), obj.values()])
    if obj.layout == torch.sparse_coo:
        obj = obj.coalesce()
        return _tensor_bytes([obj.indices(), obj.values()])
    return obj.element_size() * obj.numel()


def _nonzero_fraction(model: nn.Module) -> float | None:
    weights = [m.weight for m in model.modules() if isinstance(getattr(m, "weight", None), torch.Tensor)
               and isinstance(m, (nn.Linear, nn.Conv2d)) and m.weight.layout == torch.strided]
    total = sum(w.numel() for w in weights)
    return sum(int(torch.count_nonzero(w)) for w in weights) / total if total else None


def model_size(model: nn.Module) -> dict[str, Any]:
    """Serialized bytes of the state_dict, in-memory bytes of its tensors, nonzero weight fraction."""
    state = model.state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    return {
        "serialized_bytes": buf.getbuffer().nbytes,
        "in_memory_bytes": sum(_tensor_bytes(v) for v in state.values()),
        "nonzero_weight_fraction": _nonzero_fraction(model),
    }
